use std::collections::HashMap;

use super::*;
use crate::identity::rules::{Limit, LimitWindow, TypeRule};
use crate::identity::separations::Separations;
use proptest::prelude::*;

const DAY_MS: i64 = 24 * 3600 * 1000;

fn id(text: &str) -> Identifier {
    Identifier::parse(text).unwrap()
}

struct Events {
    graph: IdentityGraph,
    next: u32,
    log: Log,
}

/// The events sent so far, by seq: what the engine's log is to the graph.
#[derive(Default, Clone)]
struct Log(HashMap<u64, StoredEvent>);

impl EventLoader for Log {
    fn load(&mut self, seqs: &[u64]) -> Vec<StoredEvent> {
        seqs.iter().filter_map(|seq| self.0.get(seq).cloned()).collect()
    }
}

impl Events {
    fn new() -> Self {
        Self::with_rules(IdentityRules::default())
    }

    fn with_rules(rules: IdentityRules) -> Self {
        Self {
            graph: IdentityGraph::new(rules),
            next: 0,
            log: Log::default(),
        }
    }

    fn at(&mut self, timestamp_ms: i64, ids: &[&str]) -> Option<Resolution> {
        self.next += 1;
        let event = StoredEvent {
            seq: u64::from(self.next),
            message_id: format!("message-{:04}", self.next),
            timestamp_ms,
            identifiers: ids.iter().map(|t| id(t)).collect(),
            sets_traits: false,
        };
        self.log.0.insert(event.seq, event.clone());
        self.graph.resolve(&event.identity(), &mut self.log)
    }

    fn send(&mut self, ids: &[&str]) -> Resolution {
        self.at(i64::from(self.next) * 1000, ids)
            .expect("a linkable identifier")
    }
}

#[test]
fn segment_worked_example_a_second_user_id_with_a_shared_email_makes_a_new_profile() {
    let mut events = Events::new();
    let first = events.send(&["user_id:abc123", "email:jane@x.com"]);
    let second = events.send(&["user_id:abc456", "email:jane@x.com"]);
    assert!(first.created && second.created);
    assert_ne!(first.profile, second.profile);
    assert_eq!(
        second.refused,
        vec![(id("email:jane@x.com"), Refusal::Limit { kind: "user_id".into() })]
    );
    assert_eq!(events.graph.profile_of(&id("email:jane@x.com")), Some(first.profile));
}

#[test]
fn a_shared_anonymous_id_never_merges_two_user_ids() {
    let mut events = Events::new();
    let u1 = events.send(&["user_id:u1", "anonymous_id:shared"]);
    let u2 = events.send(&["user_id:u2", "anonymous_id:shared"]);
    assert_ne!(u1.profile, u2.profile);
    assert_eq!(events.graph.profile_count(), 2);
    assert!(events.graph.merge_log().is_empty());
}

#[test]
fn anonymous_activity_merges_into_the_user_on_login_and_the_oldest_id_survives() {
    let mut events = Events::new();
    let anon = events.send(&["anonymous_id:a1"]);
    let user = events.send(&["user_id:u1", "email:u1@x.com"]);
    let login = events.send(&["user_id:u1", "anonymous_id:a1"]);
    assert_eq!(login.profile, anon.profile, "the older profile's id survives");
    assert_eq!(login.merged, vec![user.profile]);
    assert_eq!(events.graph.current_id(user.profile), anon.profile);
    assert_eq!(events.graph.merge_log()[0].message_id, "message-0003");
    let ids: Vec<String> = events
        .graph
        .identifiers(&id("email:u1@x.com"))
        .iter()
        .map(|(i, ..)| i.value.clone())
        .collect();
    assert_eq!(ids, vec!["a1", "u1", "u1@x.com"]);
}

#[test]
fn blocked_values_never_link() {
    let mut events = Events::new();
    let a = events.send(&["user_id:a", "anonymous_id:null"]);
    let b = events.send(&["user_id:b", "anonymous_id:null", "email:0000"]);
    assert_ne!(a.profile, b.profile);
    assert_eq!(b.refused.iter().filter(|(_, r)| *r == Refusal::Blocked).count(), 2);
    assert_eq!(events.graph.profile_of(&id("anonymous_id:null")), None);
    assert!(events.at(0, &["anonymous_id:undefined"]).is_none());
}

#[test]
fn windowed_limits_only_count_recent_values() {
    let rule = TypeRule {
        limit: Some(Limit {
            values: 1,
            window: LimitWindow::Weekly,
        }),
        ..TypeRule::default()
    };
    let rules = IdentityRules::new(HashMap::from([("anonymous_id".to_owned(), rule)])).unwrap();
    let mut events = Events::with_rules(rules);
    let first = events.at(0, &["user_id:u", "anonymous_id:a1"]).unwrap();
    let soon = events.at(DAY_MS, &["user_id:u", "anonymous_id:a2"]).unwrap();
    assert_eq!(
        soon.refused,
        vec![(
            id("anonymous_id:a2"),
            Refusal::Limit {
                kind: "anonymous_id".into()
            }
        )]
    );
    let later = events.at(9 * DAY_MS, &["user_id:u", "anonymous_id:a3"]).unwrap();
    assert!(later.refused.is_empty());
    assert_eq!(later.profile, first.profile);
}

#[test]
fn at_the_merge_cap_events_still_attach_but_nothing_merges() {
    let rule = TypeRule {
        limit: Some(Limit {
            values: 5_000,
            window: LimitWindow::Ever,
        }),
        ..TypeRule::default()
    };
    let rules = IdentityRules::new(HashMap::from([("device".to_owned(), rule)])).unwrap();
    let mut events = Events::with_rules(rules);
    let hub = events.send(&["email:hub@x.com"]);
    let others: Vec<Resolution> = (0..=MAX_MERGES)
        .map(|i| events.send(&[&format!("device:d{i}")]))
        .collect();
    for i in 0..MAX_MERGES {
        let merged = events.send(&["email:hub@x.com", &format!("device:d{i}")]);
        assert_eq!((merged.profile, merged.merged.len()), (hub.profile, 1));
    }
    let capped = events.send(&["email:hub@x.com", &format!("device:d{MAX_MERGES}")]);
    assert_eq!(capped.profile, hub.profile, "the event still resolves to the hub");
    assert!(capped.merged.is_empty());
    assert_eq!(
        capped.refused,
        vec![(id(&format!("device:d{MAX_MERGES}")), Refusal::MergeCap)]
    );
    let last = others.last().unwrap().profile;
    assert_eq!(
        events.graph.profile_of(&id(&format!("device:d{MAX_MERGES}"))),
        Some(last)
    );
    assert_eq!(events.graph.merge_log().len(), MAX_MERGES as usize);
}

#[test]
fn at_the_identifier_cap_nothing_new_links_and_the_newcomer_gets_a_profile_of_its_own() {
    let rule = TypeRule {
        limit: Some(Limit {
            values: 5_000,
            window: LimitWindow::Ever,
        }),
        ..TypeRule::default()
    };
    let rules = IdentityRules::new(HashMap::from([("device".to_owned(), rule)])).unwrap();
    let mut events = Events::with_rules(rules);
    let home = events.send(&["user_id:u"]);
    for i in 0..MAX_IDENTIFIERS - 1 {
        events.send(&["user_id:u", &format!("device:d{i}")]);
    }
    let full = events.send(&["user_id:u", "device:one-too-many"]);
    assert_eq!(full.profile, home.profile);
    assert_eq!(full.refused, vec![(id("device:one-too-many"), Refusal::IdentifierCap)]);
    let alone = events.graph.profile_of(&id("device:one-too-many")).unwrap();
    assert_ne!(alone, home.profile);
    assert_eq!(events.graph.identifiers(&id("device:one-too-many")).len(), 1);
}

#[test]
fn an_identifier_a_limit_keeps_out_still_resolves_to_a_profile_of_its_own() {
    let mut events = Events::new();
    for i in 0..5 {
        events.send(&["user_id:u", &format!("anonymous_id:a{i}")]);
    }
    let full = events.send(&["user_id:u", "anonymous_id:a5"]);
    assert_eq!(
        full.refused,
        vec![(
            id("anonymous_id:a5"),
            Refusal::Limit {
                kind: "anonymous_id".into()
            }
        )]
    );
    let a5 = events.graph.profile_of(&id("anonymous_id:a5")).unwrap();
    assert_ne!(a5, full.profile);
    // Its own later events go there.
    assert_eq!(events.send(&["anonymous_id:a5"]).profile, a5);
}

/// What a user found: `cdp profile remove user_id:u-001 user_id:u-001` (remove the identifier
/// that names the profile) left the email, only ever carried with that user id, in no profile.
#[test]
fn removing_the_most_important_identifier_keeps_the_rest_together_and_every_identifier_in_a_profile() {
    let mut events = Events::new();
    events.send(&["user_id:u-001", "email:u-001@shop.test", "anonymous_id:web-1"]);
    events.send(&["user_id:u-001", "email:u-001@shop.test"]);
    events.send(&["user_id:u-001"]);
    let before = events.graph.profile_of(&id("user_id:u-001")).unwrap();
    let mut log = events.log.clone();
    assert!(events.graph.isolate(&id("user_id:u-001"), &mut log));
    let user = events.graph.profile_of(&id("user_id:u-001")).unwrap();
    let email = events.graph.profile_of(&id("email:u-001@shop.test")).unwrap();
    assert_ne!(user, email);
    assert_eq!(events.graph.identifiers(&id("user_id:u-001")).len(), 1);
    // The removal takes the user id out; what it was carried with stays together.
    assert_eq!(events.graph.profile_of(&id("anonymous_id:web-1")), Some(email));
    assert!([user, email].contains(&events.graph.current_id(before)));
    // The user id's events since resolve to it alone; the rest still to the email's profile.
    let later = events.send(&["user_id:u-001", "email:u-001@shop.test"]);
    assert_eq!(later.profile, email);
    assert_eq!(later.refused, vec![(id("user_id:u-001"), Refusal::Separated)]);
    assert_eq!(events.graph.profile_of(&id("user_id:u-001")), Some(user));
}

#[test]
fn a_split_drops_one_of_the_pair_not_a_bystander() {
    let mut events = Events::new();
    events.send(&["user_id:ann", "email:shared@x.com", "anonymous_id:laptop"]);
    let mut log = events.log.clone();
    assert!(events
        .graph
        .separate(&id("user_id:ann"), &id("email:shared@x.com"), &mut log));
    let ann = events.graph.profile_of(&id("user_id:ann")).unwrap();
    let shared = events.graph.profile_of(&id("email:shared@x.com")).unwrap();
    assert_ne!(ann, shared);
    // The email (less important than the user id) was set aside; the laptop stays with Ann.
    assert_eq!(events.graph.profile_of(&id("anonymous_id:laptop")), Some(ann));
}

#[test]
fn profile_ids_read_like_tp_and_26_characters_and_parse_back() {
    for value in [0, 1, 2, 0xdead_beef, u128::MAX] {
        let text = ProfileId(value).to_string();
        assert_eq!((text.len(), &text[..3]), (29, "tp_"));
        assert_eq!(text.parse::<ProfileId>(), Ok(ProfileId(value)));
    }
    assert!("tp_short".parse::<ProfileId>().is_err());
    assert!("xx_0123456789abcdefghjkmnpqrs".parse::<ProfileId>().is_err());
    assert!(format!("tp_{}", "u".repeat(26)).parse::<ProfileId>().is_err());
}

/// Random small workloads over few values so that links, limits and merges all happen.
fn event_strategy() -> impl Strategy<Value = Vec<String>> {
    let one = prop_oneof![
        (0..4u8).prop_map(|v| format!("user_id:u{v}")),
        (0..6u8).prop_map(|v| format!("anonymous_id:a{v}")),
        (0..4u8).prop_map(|v| format!("email:e{v}@x.com")),
        Just("anonymous_id:null".to_owned()),
    ];
    prop::collection::vec(one, 1..4)
}

proptest! {
    #[test]
    fn invariants_hold_and_replay_rebuilds_the_same_graph(workload in prop::collection::vec(event_strategy(), 1..40)) {
        let mut events = Events::new();
        for ids in &workload {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            if let Some(resolution) = events.send_opt(&refs) {
                // Every linked identifier now lives in the resolved profile.
                for identifier in &resolution.linked {
                    prop_assert_eq!(events.graph.profile_of(identifier), Some(resolution.profile));
                }
            }
        }
        for ids in &workload {
            for text in ids {
                let identifier = id(text);
                if identifier.value != "null" {
                    prop_assert!(events.graph.profile_of(&identifier).is_some(), "{} is in no profile", text);
                }
            }
        }
        let snapshot = events.graph.snapshot();
        let mut seen = std::collections::HashSet::new();
        for (_, identifiers) in &snapshot {
            let user_ids = identifiers.iter().filter(|i| i.kind == "user_id").count();
            prop_assert!(user_ids <= 1, "a profile has {} user_ids", user_ids);
            for kind in ["anonymous_id", "email"] {
                prop_assert!(identifiers.iter().filter(|i| i.kind == kind).count() <= 5);
            }
            for identifier in identifiers {
                prop_assert!(identifier.value != "null", "a blocked value linked");
                prop_assert!(seen.insert(identifier.clone()), "{:?} is in two profiles", identifier);
            }
        }
        for merge in events.graph.merge_log() {
            let survivor = events.graph.current_id(merge.merged);
            prop_assert!(snapshot.iter().any(|(id, _)| *id == survivor));
        }
        let mut replay = Events::new();
        for ids in &workload {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            replay.send_opt(&refs);
        }
        prop_assert_eq!(replay.graph.snapshot(), snapshot);
    }
}

impl Events {
    fn send_opt(&mut self, ids: &[&str]) -> Option<Resolution> {
        self.at(i64::from(self.next) * 1000, ids)
    }
}

#[test]
fn explain_tells_how_two_identifiers_were_linked_or_why_not() {
    let mut events = Events::new();
    let anon = events.send(&["anonymous_id:a1"]);
    let user = events.send(&["user_id:u1", "email:u1@x.com"]);
    events.send(&["user_id:u1", "anonymous_id:a1"]);
    let other = events.send(&["user_id:u2", "email:u1@x.com"]);
    let why = events
        .graph
        .explain(&id("anonymous_id:a1"), &id("email:u1@x.com"))
        .unwrap();
    assert!(why.linked);
    assert_eq!(
        why.steps,
        vec![
            // Events are seq N, message mN: the first and second event joined them.
            LinkStep::Joined {
                identifier: id("anonymous_id:a1"),
                profile: anon.profile,
                first_seq: 1,
            },
            LinkStep::Joined {
                identifier: id("email:u1@x.com"),
                profile: user.profile,
                first_seq: 2,
            },
            LinkStep::Merged(events.graph.merge_log()[0].clone()),
        ]
    );
    let apart = events.graph.explain(&id("user_id:u2"), &id("email:u1@x.com")).unwrap();
    assert!(!apart.linked);
    assert_eq!((apart.profile_a, apart.profile_b), (other.profile, anon.profile));
    let LinkStep::Refused(record) = &apart.steps[0] else {
        panic!("{:?}", apart.steps)
    };
    assert_eq!(
        (&record.identifier, &record.reason, record.message_id.as_str()),
        (
            &id("email:u1@x.com"),
            &Refusal::Limit { kind: "user_id".into() },
            "message-0004"
        )
    );
    assert!(events.graph.explain(&id("user_id:nobody"), &id("user_id:u1")).is_none());
}

/// Sends stored events in the given order into a fresh graph.
fn resolve_all(events: &[StoredEvent], separations: &Separations) -> IdentityGraph {
    let mut log = Log(events.iter().map(|e| (e.seq, e.clone())).collect());
    let mut graph = IdentityGraph::with_separations(IdentityRules::default(), separations.clone());
    for event in events {
        graph.resolve(&event.identity(), &mut log);
    }
    graph
}

fn stored(seq: u64, timestamp_ms: i64, ids: &[&str]) -> StoredEvent {
    StoredEvent {
        seq,
        // A shared 8-byte prefix (ties are broken by the whole id, read back from the log), and
        // ids that do not follow the log order, as real ones do not.
        message_id: format!("message-{:05}", (seq * 7_919) % 10_007),
        timestamp_ms,
        identifiers: ids.iter().map(|t| id(t)).collect(),
        sets_traits: false,
    }
}

#[test]
fn a_late_event_replays_its_cluster_as_if_it_had_arrived_in_time() {
    // In time: the anonymous visitor logs in as u1 first, so u2 cannot take the device.
    let in_time = [
        stored(1, 1_000, &["anonymous_id:a1"]),
        stored(2, 2_000, &["anonymous_id:a1", "user_id:u1"]),
        stored(3, 3_000, &["anonymous_id:a1", "user_id:u2"]),
    ];
    let expected = resolve_all(&in_time, &Separations::default());
    // u2's event arrives first, then the older login: the cluster is rebuilt.
    let arrived = [in_time[0].clone(), in_time[2].clone(), in_time[1].clone()];
    let mut late = resolve_all(&arrived, &Separations::default());
    assert_eq!(late.snapshot(), expected.snapshot());
    assert_eq!(late.rebuilt_clusters(), 1);
    let u1 = late.profile_of(&id("user_id:u1")).unwrap();
    assert_eq!(late.profile_of(&id("anonymous_id:a1")), Some(u1));
    assert_ne!(late.profile_of(&id("user_id:u2")), Some(u1));
}

#[test]
fn a_late_event_that_links_earlier_what_a_later_one_linked_replays_nothing() {
    // In time: the visitor browses (1), logs in (2: links u1), browses again logged in (3).
    let in_time = [
        stored(1, 1_000, &["anonymous_id:a1"]),
        stored(2, 2_000, &["anonymous_id:a1", "user_id:u1"]),
        stored(3, 3_000, &["anonymous_id:a1", "user_id:u1", "email:u1@x.com"]),
        stored(4, 4_000, &["user_id:u1"]),
    ];
    let mut expected = resolve_all(&in_time, &Separations::default());
    // The login arrives last: it links u1 itself (before event 3 did), no replay needed.
    let arrived = [
        in_time[0].clone(),
        in_time[2].clone(),
        in_time[3].clone(),
        in_time[1].clone(),
    ];
    let mut late = resolve_all(&arrived, &Separations::default());
    assert_eq!(late.rebuilt_clusters(), 0);
    assert_eq!(late.snapshot(), expected.snapshot());
    let view = |graph: &mut IdentityGraph| {
        graph
            .view(&ProfileLookup::Identifier(id("user_id:u1")))
            .unwrap()
            .identifiers
    };
    let linked = view(&mut late);
    assert_eq!(linked, view(&mut expected));
    assert_eq!(
        linked,
        vec![
            (id("anonymous_id:a1"), 1),
            (id("user_id:u1"), 2),
            (id("email:u1@x.com"), 3)
        ],
        "u1 is linked by the login, in link order"
    );
}

#[test]
fn a_late_event_inside_a_settled_profile_changes_nothing_and_replays_nothing() {
    let mut events = Events::new();
    events.at(1_000, &["anonymous_id:a1", "user_id:u1"]);
    events.at(5_000, &["user_id:u1"]);
    let before = events.graph.snapshot();
    events.at(3_000, &["anonymous_id:a1", "user_id:u1"]);
    assert_eq!(events.graph.rebuilt_clusters(), 0);
    assert_eq!(events.graph.snapshot(), before);
    // Older than the profile's first link: the profile's id comes from it now.
    events.at(500, &["anonymous_id:a1"]);
    assert_eq!(events.graph.rebuilt_clusters(), 1);
    let now = events.graph.profile_of(&id("user_id:u1")).unwrap();
    assert_ne!(now, before[0].0);
    assert_eq!(
        events.graph.current_id(before[0].0),
        now,
        "the old id leads to the profile"
    );
}

#[test]
fn remove_identifier_rebuilds_the_profile_from_its_remaining_links() {
    let mut events = Events::new();
    events.send(&["anonymous_id:kiosk", "user_id:ann"]);
    events.send(&["anonymous_id:kiosk", "email:bob@x.com"]);
    events.send(&["anonymous_id:kiosk"]);
    let shared = events.graph.profile_of(&id("user_id:ann")).unwrap();
    assert_eq!(events.graph.profile_of(&id("email:bob@x.com")), Some(shared));
    let mut log = events.log.clone();
    assert!(events.graph.isolate(&id("anonymous_id:kiosk"), &mut log));
    let (ann, bob, kiosk) = (
        events.graph.profile_of(&id("user_id:ann")).unwrap(),
        events.graph.profile_of(&id("email:bob@x.com")).unwrap(),
        events.graph.profile_of(&id("anonymous_id:kiosk")).unwrap(),
    );
    assert!(ann != bob && bob != kiosk && ann != kiosk);
    assert_eq!(
        events.graph.view(&ProfileLookup::Id(kiosk)).unwrap().identifiers.len(),
        1
    );
    // The kiosk never links again.
    let again = events.send(&["anonymous_id:kiosk", "user_id:carl"]);
    assert_eq!(again.refused, vec![(id("anonymous_id:kiosk"), Refusal::Separated)]);
    assert!(!events.graph.isolate(&id("anonymous_id:nobody"), &mut log));
}

#[test]
fn split_keeps_two_identifiers_apart_and_explains_why() {
    let mut events = Events::new();
    events.send(&["user_id:ann", "email:shared@x.com"]);
    events.send(&["email:shared@x.com", "anonymous_id:a1"]);
    events.send(&["anonymous_id:a1"]);
    let mut log = events.log.clone();
    assert!(events
        .graph
        .separate(&id("user_id:ann"), &id("anonymous_id:a1"), &mut log));
    let ann = events.graph.profile_of(&id("user_id:ann")).unwrap();
    let a1 = events.graph.profile_of(&id("anonymous_id:a1")).unwrap();
    assert_ne!(ann, a1);
    assert_eq!(events.graph.profile_of(&id("email:shared@x.com")), Some(ann));
    let why = events
        .graph
        .explain(&id("user_id:ann"), &id("anonymous_id:a1"))
        .unwrap();
    assert!(!why.linked);
    assert!(why
        .steps
        .iter()
        .any(|step| matches!(step, LinkStep::Refused(r) if r.reason == Refusal::Separated)));
}

/// Random workloads whose events carry timestamps out of arrival order.
fn timed_workload() -> impl Strategy<Value = Vec<(i64, Vec<String>)>> {
    prop::collection::vec((0i64..50, event_strategy()), 1..40)
}

proptest! {
    #[test]
    fn the_graph_is_a_function_of_the_set_of_events(
        workload in timed_workload(),
        seed in any::<u64>(),
        split in prop::option::of((0usize..40, 0usize..40)),
        removal in prop::option::of(0usize..40),
    ) {
        let events: Vec<StoredEvent> = workload
            .iter()
            .enumerate()
            .map(|(i, (ts, ids))| {
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                stored(i as u64 + 1, ts * 1000, &refs)
            })
            .collect();
        let mut separations = Separations::default();
        if let Some((a, b)) = split {
            let (a, b) = (&events[a % events.len()].identifiers[0], &events[b % events.len()].identifiers[0]);
            if a != b {
                separations.separate(a.hash128(), b.hash128());
            }
        }
        if let Some(r) = removal {
            separations.isolate(events[r % events.len()].identifiers[0].hash128());
        }
        let mut sorted = events.clone();
        sorted.sort_by(|a, b| (a.timestamp_ms, &a.message_id).cmp(&(b.timestamp_ms, &b.message_id)));
        let reference = resolve_all(&sorted, &separations);
        let mut shuffled = events.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        // Each profile's merges, and its identifiers in link order with the event that linked
        // each (log seqs name the same events in every order here).
        type History = (Vec<(String, i64)>, Vec<(Identifier, u64)>);
        let histories = |graph: &mut IdentityGraph| -> Vec<History> {
            graph
                .snapshot()
                .into_iter()
                .map(|(id, _)| {
                    let view = graph.view(&ProfileLookup::Id(id)).expect("a live profile");
                    let merges = view.merge_history.into_iter().map(|m| (m.message_id, m.timestamp_ms)).collect();
                    (merges, view.identifiers)
                })
                .collect()
        };
        let mut reference_graph = resolve_all(&sorted, &separations);
        let expected_histories = histories(&mut reference_graph);
        for order in [&events, &shuffled] {
            let mut graph = resolve_all(order, &separations);
            prop_assert_eq!(graph.snapshot(), reference.snapshot());
            prop_assert_eq!(histories(&mut graph), expected_histories.clone());
            for event in &events {
                for identifier in &event.identifiers {
                    let mut reference_graph = resolve_all(&sorted, &separations);
                    prop_assert_eq!(graph.profile_of(identifier), reference_graph.profile_of(identifier));
                    // Every identifier that has events resolves to a profile (blocked ones aside).
                    if identifier.value != "null" {
                        prop_assert!(graph.profile_of(identifier).is_some(), "{:?} is in no profile", identifier);
                    }
                }
            }
        }
        // Separating after the fact gives the same graph as separating before any event.
        if let (Some((a, b)), None) = (split, removal) {
            let mut graph = resolve_all(&events, &Separations::default());
            let mut log = Log(events.iter().map(|e| (e.seq, e.clone())).collect());
            let (a, b) = (&events[a % events.len()].identifiers[0], &events[b % events.len()].identifiers[0]);
            if a != b && graph.profile_of(a).is_some() && graph.profile_of(b).is_some() {
                // A dry run of it (on the clusters involved) foretells every profile it moves.
                let mut preview = graph.preview_separations(separations.clone(), &[a, b], &mut log);
                let moved = graph.cluster_members(&[a, b]);
                graph.separate(a, b, &mut log);
                prop_assert_eq!(graph.snapshot(), reference.snapshot());
                for identifier in &moved {
                    prop_assert_eq!(preview.profile_of(identifier), graph.profile_of(identifier));
                }
            }
        }
        // Withdrawing every separation gives the graph of none.
        if !separations.is_empty() {
            let mut graph = resolve_all(&shuffled, &separations);
            let mut log = Log(events.iter().map(|e| (e.seq, e.clone())).collect());
            let named: Vec<&Identifier> = split
                .into_iter()
                .flat_map(|(a, b)| [a, b])
                .chain(removal)
                .map(|i| &events[i % events.len()].identifiers[0])
                .collect();
            graph.reseparate(Separations::default(), &named, &mut log);
            prop_assert_eq!(graph.snapshot(), resolve_all(&sorted, &Separations::default()).snapshot());
        }
        if let (None, Some(r)) = (split, removal) {
            let mut graph = resolve_all(&events, &Separations::default());
            let mut log = Log(events.iter().map(|e| (e.seq, e.clone())).collect());
            let removed = &events[r % events.len()].identifiers[0];
            if graph.profile_of(removed).is_some() {
                let mut preview = graph.preview_separations(separations.clone(), &[removed], &mut log);
                let moved = graph.cluster_members(&[removed]);
                graph.isolate(removed, &mut log);
                prop_assert_eq!(graph.snapshot(), reference.snapshot());
                for identifier in &moved {
                    prop_assert_eq!(preview.profile_of(identifier), graph.profile_of(identifier));
                }
            }
        }
    }
}

#[test]
fn merge_history_is_ordered_by_event_time_not_by_arrival() {
    // Two clusters merge on their own (in time within each), then one login joins them.
    let arrived = [
        stored(1, 4, &["user_id:u"]),
        stored(2, 3, &["anonymous_id:a3"]),
        stored(3, 20, &["user_id:u", "anonymous_id:a3"]),
        stored(4, 5, &["anonymous_id:a1", "email:e1@x.com"]),
        stored(5, 2, &["anonymous_id:a2"]),
        stored(6, 10, &["anonymous_id:a2", "email:e1@x.com"]),
        stored(7, 30, &["user_id:u", "anonymous_id:a1"]),
    ];
    let mut graph = resolve_all(&arrived, &Separations::default());
    assert_eq!(graph.rebuilt_clusters(), 0, "nothing arrived late for its cluster");
    let view = graph.view(&ProfileLookup::Identifier(id("user_id:u"))).unwrap();
    let times: Vec<i64> = view.merge_history.iter().map(|m| m.timestamp_ms).collect();
    assert_eq!(times, vec![10, 20, 30]);
}

proptest! {
    /// Erasing a person's events leaves the graph that the other events alone build, whatever
    /// order the events came in (late ones replayed their clusters).
    #[test]
    fn erasing_a_persons_events_leaves_the_graph_of_the_rest(
        workload in prop::collection::vec((event_strategy(), 0..20i64), 1..40),
        pick in 0..100usize,
    ) {
        let mut events = Events::new();
        for (ids, at) in &workload {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            events.at(at * 1000, &refs);
        }
        let texts: Vec<&String> = workload.iter().flat_map(|(ids, _)| ids).collect();
        let chosen = id(texts[pick % texts.len()]);
        let mut person: Vec<Identifier> = events.graph.identifiers(&chosen).into_iter().map(|(i, _)| i).collect();
        person.push(chosen);
        let erased: Vec<u64> = events.log.0.values()
            .filter(|e| e.identifiers.iter().any(|i| person.contains(i)))
            .map(|e| e.seq)
            .collect();
        let carried: Vec<Identifier> = erased.iter().flat_map(|seq| events.log.0[seq].identifiers.clone()).collect();
        for seq in &erased {
            events.log.0.remove(seq);
        }
        let roots = events.graph.clusters_of(&carried);
        let remaining: Vec<StoredEvent> = roots.iter()
            .flat_map(|&root| events.graph.cluster_events(root).to_vec())
            .filter_map(|seq| events.log.0.get(&seq).cloned())
            .collect();
        let mut log = events.log.clone();
        events.graph.erase(&roots, remaining, &mut log);
        let mut rest = Events::new();
        let mut kept: Vec<&StoredEvent> = events.log.0.values().collect();
        kept.sort_by_key(|e| e.seq);
        for event in kept {
            rest.log.0.insert(event.seq, event.clone());
            rest.graph.resolve(&event.identity(), &mut rest.log);
        }
        prop_assert_eq!(events.graph.snapshot(), rest.graph.snapshot());
        for identifier in &person {
            let still_carried = events.log.0.values().any(|e| e.identifiers.contains(identifier));
            prop_assert_eq!(events.graph.profile_of(identifier).is_some(), still_carried && identifier.value != "null");
        }
        // What the graph keeps for a snapshot names no identifier only the erased events had.
        let state = postcard::to_allocvec(&events.graph.state()).unwrap();
        for identifier in carried.iter().filter(|i| !events.log.0.values().any(|e| e.identifiers.contains(i))) {
            let value = identifier.value.as_bytes();
            prop_assert!(!state.windows(value.len()).any(|w| w == value), "{:?} is still in the graph's state", identifier);
        }
    }
}
