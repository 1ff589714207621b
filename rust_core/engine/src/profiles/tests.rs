//! Replays of the log while it grows: no thread ever waits for a resize while it holds the
//! resize gate (see `store`), whatever late events make the graph read back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use prost::Message;

use super::*;
use crate::config::EngineConfig;
use crate::identity::graph::ProfileId;
use crate::ingest::Engine;
use crate::progress::Progress;
use crate::proto::identity_rules_progress::Phase;
use crate::proto::{Batch, EventType};

fn identify(message_id: &str, user: &str, anon: &str, timestamp_ms: i64, padding: usize) -> Event {
    Event {
        r#type: EventType::Identify as i32,
        message_id: message_id.into(),
        user_id: user.into(),
        anonymous_id: anon.into(),
        timestamp: Some(time::from_ms(timestamp_ms)),
        traits: format!(r#"{{"email":"{user}@x.com","pad":"{}"}}"#, "x".repeat(padding)).into_bytes(),
        ..Default::default()
    }
}

fn send(engine: &Engine, events: Vec<Event>) {
    let outcome = engine
        .submit(
            1,
            Batch {
                events,
                ..Default::default()
            },
        )
        .unwrap()
        .wait()
        .unwrap();
    assert!(outcome.rejections.is_empty());
}

fn open(dir: &std::path::Path, map_size: usize) -> Engine {
    Engine::open(EngineConfig {
        map_size,
        ..EngineConfig::new(dir)
    })
    .unwrap()
}

#[test]
fn catching_up_on_late_events_reads_the_log_without_holding_a_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), 1 << 20);
    // Each event sorts before the one logged before it: resolved in log order, every one is
    // late for its cluster and replays it from the log.
    let events = (0..20)
        .map(|i| {
            identify(
                &format!("m{i:02}"),
                "u1",
                &format!("a{}", i % 3),
                100_000 - i * 1_000,
                10,
            )
        })
        .collect();
    send(&engine, events);
    let store = &engine.shared.store;
    let custom = Arc::new(CustomIdentifiers::default());
    let mut state = ProfileState {
        graph: IdentityGraph::new(IdentityRules::default()),
        resolved_through: 0,
        links: AccountLinks::default(),
        engage: Default::default(),
        rules: proto::IdentityRules::default(),
        actions: Vec::new(),
        custom,
        deletions: 0,
    };
    Profiles::catch_up(&mut state, store).unwrap();
    assert!(
        state.graph.rebuilt_clusters() > 0,
        "the late events replayed their cluster"
    );
    assert_eq!(state.resolved_through, 20);
    let progress = Progress::default();
    let replayed = replay_log(
        store,
        IdentityRules::default(),
        &CustomIdentifiers::default(),
        Separations::default(),
        &progress,
    )
    .unwrap();
    assert_eq!(state.graph.snapshot(), replayed.graph.snapshot());
    let report = progress.report();
    assert_eq!(
        (report.phase(), report.running, report.done, report.total),
        (Phase::Resolving, true, 20, 20),
        "the replay counted every event it resolved"
    );
}

#[test]
fn replays_in_chunks_see_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), 1 << 20);
    let count = 3 * LOG_CHUNK as i64 + 7;
    for start in (0..count).step_by(1_000) {
        let events = (start..count.min(start + 1_000))
            .map(|i| {
                identify(
                    &format!("m{i:06}"),
                    &format!("u{}", i % 500),
                    &format!("a{}", i % 700),
                    i,
                    0,
                )
            })
            .collect();
        send(&engine, events);
    }
    let store = &engine.shared.store;
    let Replayed { graph, through, .. } = replay_log(
        store,
        IdentityRules::default(),
        &CustomIdentifiers::default(),
        Separations::default(),
        &Progress::default(),
    )
    .unwrap();
    assert_eq!(through, count as u64);
    let live = engine.shared.profiles.lock().graph.snapshot();
    assert_eq!(graph.snapshot(), live);
}

/// Ingest with late events into a tiny map (so the writer resizes it again and again) while
/// other threads re-resolve the whole log (UpdateIdentityRules, which catches up on late events
/// under the graph lock) and read profiles and events. Everything must finish, in bounded time,
/// with every event stored and resolved.
#[test]
fn late_events_rule_updates_and_reads_never_block_a_growing_map() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open(dir.path(), 1 << 16));
    let start_size = engine.map_size();
    let done = Arc::new(AtomicBool::new(false));
    let (finished, outcome) = mpsc::channel::<&'static str>();
    const ROUNDS: i64 = 60;
    const USERS: i64 = 25;

    let mut workers = Vec::new();
    {
        let (engine, done, finished) = (Arc::clone(&engine), Arc::clone(&done), finished.clone());
        workers.push(std::thread::spawn(move || {
            for round in 0..ROUNDS {
                // Each round sorts before the previous one: every cluster sees late events.
                let events = (0..USERS)
                    .map(|u| {
                        let at = 10_000_000 - round * 1_000 - u;
                        identify(
                            &format!("r{round}-u{u}"),
                            &format!("u{u}"),
                            &format!("a{u}-{}", round % 3),
                            at,
                            1_500,
                        )
                    })
                    .collect();
                send(&engine, events);
            }
            done.store(true, Ordering::Release);
            let _ = finished.send("ingest");
        }));
    }
    {
        let (engine, done, finished) = (Arc::clone(&engine), Arc::clone(&done), finished.clone());
        workers.push(std::thread::spawn(move || {
            let request = proto::UpdateIdentityRulesRequest {
                rules: Some(proto::IdentityRules::default()),
                dry_run: true,
            }
            .encode_to_vec();
            while !done.load(Ordering::Acquire) {
                engine.update_identity_rules(&request).unwrap();
            }
            let _ = finished.send("rules");
        }));
    }
    for reader in 0..2 {
        let (engine, done, finished) = (Arc::clone(&engine), Arc::clone(&done), finished.clone());
        workers.push(std::thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::Acquire) {
                let identifier = format!("user_id:u{}", (n + reader) % USERS);
                let profile = proto::GetProfileRequest {
                    identifier: identifier.clone(),
                    ..Default::default()
                };
                match engine.get_profile(&profile.encode_to_vec()) {
                    Ok(_) | Err(EngineError::NotFound(_)) => {}
                    Err(other) => panic!("{other}"),
                }
                let events = proto::ListEventsRequest {
                    identifier,
                    limit: 5,
                    profile: true,
                    ..Default::default()
                };
                match engine.list_events(&events.encode_to_vec()) {
                    Ok(_) | Err(EngineError::NotFound(_)) => {}
                    Err(other) => panic!("{other}"),
                }
                n += 1;
            }
            let _ = finished.send("reads");
        }));
    }
    drop(finished);
    for _ in 0..workers.len() {
        match outcome.recv_timeout(Duration::from_secs(120)) {
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("ingest, rule updates or reads are stuck (deadlock)"),
            // A worker panicked: join them all to report it.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for worker in workers {
        worker.join().expect("a worker failed");
    }
    assert!(engine.map_size() > start_size, "the map grew");
    assert!(engine.stats().map_grows.load(Ordering::Relaxed) > 0);
    assert_eq!(engine.event_count().unwrap(), (ROUNDS * USERS) as u64);
    let store = &engine.shared.store;
    let replayed = replay_log(
        store,
        IdentityRules::default(),
        &CustomIdentifiers::default(),
        Separations::default(),
        &Progress::default(),
    )
    .unwrap();
    let mut state = engine.shared.profiles.lock();
    assert_eq!(state.resolved_through, (ROUNDS * USERS) as u64);
    assert_eq!(state.graph.snapshot(), replayed.graph.snapshot());
    assert_eq!(state.graph.profile_count(), USERS as usize);
    let linked = state.graph.identifiers(&Identifier::new("user_id", "u0"));
    assert_eq!(linked.len(), 1 + 1 + 3, "u0, its email and its three anonymous ids");
}

/// A workload with merges, late events (older than what their cluster has seen) and account
/// links, in `parts` chunks: deterministic, so both runs store the same log.
fn snapshot_workload(parts: usize) -> Vec<Vec<Event>> {
    let mut events = Vec::new();
    for person in 0..120i64 {
        let (user, anon, device) = (format!("u{person}"), format!("a{person}"), format!("d{person}"));
        let base = 1_700_000_000_000 + person * 10_000;
        events.push(track_of(&format!("p{person}-1"), "", &anon, base + 5_000));
        events.push(identify(&format!("p{person}-2"), &user, &anon, base + 6_000, 3));
        // Late: before the identify, carrying a device id that joins the same person.
        let mut late = track_of(&format!("p{person}-3"), &user, &device, base + 1_000);
        late.properties = format!(r#"{{"revenue":{person}.5}}"#).into_bytes();
        late.context = format!(r#"{{"device":{{"id":"{device}"}}}}"#).into_bytes();
        events.push(late);
        if person % 7 == 0 {
            // Two people sharing a device: merged, unless a limit says no.
            events.push(track_of(
                &format!("p{person}-4"),
                &user,
                &format!("a{}", person + 1),
                base + 7_000,
            ));
        }
        if person % 5 == 0 {
            let mut group = track_of(&format!("p{person}-5"), &user, "", base + 8_000);
            group.r#type = EventType::Group as i32;
            group.group_id = format!("acct-{}", person % 3);
            group.event.clear();
            events.push(group);
        }
    }
    let size = events.len().div_ceil(parts);
    events.chunks(size).map(<[Event]>::to_vec).collect()
}

fn track_of(message_id: &str, user: &str, anon: &str, timestamp_ms: i64) -> Event {
    Event {
        r#type: EventType::Track as i32,
        message_id: message_id.into(),
        user_id: user.into(),
        anonymous_id: anon.into(),
        event: "Viewed".into(),
        timestamp: Some(time::from_ms(timestamp_ms)),
        ..Default::default()
    }
}

/// Profiles with their identifiers; a line per profile with its merges, first sightings,
/// trait events and accounts; the seq resolved through.
type IdentityPicture = (Vec<(ProfileId, Vec<Identifier>)>, Vec<String>, u64);

/// Everything a reader can see of the identity state, in a comparable form.
fn identity_picture(engine: &Engine) -> IdentityPicture {
    let mut state = engine.shared.profiles.lock();
    let mut histories = Vec::new();
    for (id, identifiers) in state.graph.snapshot() {
        let view = state
            .graph
            .view(&crate::identity::graph::ProfileLookup::Id(id))
            .expect("a live profile has a view");
        let mut traits = view.trait_events.clone();
        traits.sort_unstable();
        // Engage's view of the profile: its events per name, through the nodes it holds now.
        let mut events: std::collections::BTreeMap<&str, (u64, i64, i64)> = Default::default();
        let mut traits_seen: Vec<String> = Vec::new();
        let mut revenue: std::collections::BTreeMap<&str, f64> = Default::default();
        for identifier in &identifiers {
            let node = state
                .graph
                .primary_node(std::slice::from_ref(identifier))
                .expect("a node");
            for (name, name_id) in state.engage.events.name_ids() {
                if let Some(found) = state.engage.events.events(node, name_id) {
                    let entry = events.entry(name).or_insert((0, i64::MAX, i64::MIN));
                    entry.0 += found.total();
                    entry.1 = entry.1.min(found.first_ms().unwrap());
                    entry.2 = entry.2.max(found.last_ms().unwrap());
                    *revenue.entry(name).or_insert(0.0) += found.revenue().iter().sum::<f64>();
                }
            }
            for name in ["email", "pad"] {
                let index = &state.engage.traits;
                if let Some(entry) = index.trait_id(name).and_then(|id| index.entry(node, id)) {
                    traits_seen.push(format!(
                        "{}:{}.{name}={}@{}",
                        identifier.kind,
                        identifier.value,
                        index.value(entry),
                        entry.seq
                    ));
                }
            }
        }
        histories.push(format!(
            "{id}: {} merges {:?}; identifiers {:?}; traits {traits:?}; accounts {:?}; events {events:?}; revenue {revenue:?}; indexed traits {traits_seen:?}",
            view.merges,
            view.merge_history,
            view.identifiers,
            identifiers
                .iter()
                .map(|i| state.links.accounts.get(&i.hash128()).map(|a| a.len()))
                .collect::<Vec<_>>()
        ));
    }
    // The log's clock, which only the order of the log decides.
    histories.push(format!("clock {:?}", state.engage.clock));
    (state.graph.snapshot(), histories, state.resolved_through)
}

fn open_with(dir: &std::path::Path, snapshots: bool, every: u64) -> Engine {
    Engine::open(EngineConfig {
        snapshots,
        snapshot_every_events: every,
        ..EngineConfig::new(dir)
    })
    .unwrap()
}

#[test]
fn a_snapshot_and_the_log_after_it_give_what_a_full_replay_gives() {
    let dir = tempfile::tempdir().unwrap();
    let parts = snapshot_workload(4);
    // Parts 1-2 with periodic snapshots (one is taken mid-way), closed: a final snapshot.
    let engine = open_with(dir.path(), true, 50);
    for part in &parts[..2] {
        send(&engine, part.clone());
    }
    engine.close();
    drop(engine);
    assert!(dir.path().join("snapshots/profiles.snap").exists());
    // Parts 3-4 with snapshots off: the snapshot stays behind, so the next start has a tail
    // to replay, with late events for clusters the snapshot holds.
    let engine = open_with(dir.path(), false, 0);
    for part in &parts[2..] {
        send(&engine, part.clone());
    }
    drop(engine);

    let engine = open_with(dir.path(), true, 0);
    let loaded = engine.shared.profiles.loaded_snapshot.expect("the snapshot was used");
    assert!(
        loaded > 0 && loaded < engine.last_seq(),
        "a tail of the log after {loaded} was replayed"
    );
    let from_snapshot = identity_picture(&engine);
    drop(engine);
    let engine = open_with(dir.path(), false, 0);
    assert_eq!(engine.shared.profiles.loaded_snapshot, None);
    let full_replay = identity_picture(&engine);
    assert!(from_snapshot.0.len() > 100, "{} profiles", from_snapshot.0.len());
    assert!(
        from_snapshot
            .1
            .iter()
            .filter(|line| line.contains("\"Viewed\": ("))
            .count()
            > 100,
        "Engage counted the profiles' events"
    );
    assert_eq!(from_snapshot, full_replay);
}

#[test]
fn a_damaged_snapshot_is_ignored_and_the_log_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_with(dir.path(), true, 0);
    for part in snapshot_workload(2) {
        send(&engine, part);
    }
    let expected = identity_picture(&engine);
    drop(engine); // writes the snapshot
    let path = dir.path().join("snapshots/profiles.snap");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let engine = open_with(dir.path(), true, 0);
    assert_eq!(engine.shared.profiles.loaded_snapshot, None);
    assert_eq!(identity_picture(&engine), expected);
    engine.close(); // a new, whole snapshot
    drop(engine);
    assert!(open_with(dir.path(), true, 0).shared.profiles.loaded_snapshot.is_some());
    std::fs::write(&path, &bytes[..middle]).unwrap(); // a torn write
    let engine = open_with(dir.path(), true, 0);
    assert_eq!(engine.shared.profiles.loaded_snapshot, None);
    assert_eq!(identity_picture(&engine), expected);
}

#[test]
fn the_identity_fields_of_stored_bytes_are_those_of_the_whole_event() {
    let custom = CustomIdentifiers::default();
    let mut events = vec![
        identify("m1", "u1", "a1", 1_000, 10),
        Event {
            r#type: EventType::Group as i32,
            message_id: "m2".into(),
            user_id: "u2".into(),
            group_id: " acme ".into(),
            traits: br#"{"email":"billing@acme.test"}"#.to_vec(),
            timestamp: Some(time::from_ms(2_000)),
            ..Default::default()
        },
    ];
    events.push(Event {
        r#type: EventType::Track as i32,
        message_id: "m3".into(),
        anonymous_id: "a3".into(),
        event: "Viewed".into(),
        properties: br#"{"plan":"pro","revenue":"12.5"}"#.to_vec(),
        received_at: Some(time::from_ms(4_000)),
        context: br#"{"traits":{"email":"A3@Shop.Test"},"device":{"id":"d3","type":"ios"}}"#.to_vec(),
        integrations: br#"{"Google Analytics":{"clientId":"ga3"}}"#.to_vec(),
        timestamp: Some(time::from_ms(3_000)),
        ..Default::default()
    });
    for (seq, event) in events.iter().enumerate() {
        let seq = seq as u64 + 1;
        let mut stored = 7u32.to_le_bytes().to_vec();
        stored.extend(event.encode_to_vec());
        let Decoded {
            stored: lean,
            account,
            name,
            traits,
            revenue,
            received_ms,
            source,
        } = stored_identity(seq, &stored, &custom).unwrap();
        let full = Decoded::of(seq, event, &custom, crate::profile_reads::source_of(&stored));
        assert_eq!(
            (revenue, received_ms, source),
            (full.revenue, full.received_ms, full.source)
        );
        assert_eq!(traits.is_some(), sets_traits(event));
        let whole = stored_event(seq, event, &custom);
        assert!(!whole.identifiers.is_empty());
        assert_eq!(
            (lean.message_id, lean.timestamp_ms, lean.identifiers, lean.sets_traits),
            (
                whole.message_id,
                whole.timestamp_ms,
                whole.identifiers,
                whole.sets_traits
            )
        );
        assert_eq!(account.as_deref(), account_of(event));
        assert_eq!(name.as_deref(), crate::engage::event_name(event));
    }
}

#[test]
fn engage_counts_kept_live_equal_those_of_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_with(dir.path(), false, 0);
    for part in snapshot_workload(3) {
        send(&engine, part);
    }
    let live = identity_picture(&engine);
    drop(engine);
    let replayed = identity_picture(&open_with(dir.path(), false, 0));
    assert!(live.1.iter().any(|line| line.contains("\"Viewed\": (")));
    assert!(live.1.iter().any(|line| line.contains(".email=")), "{:?}", live.1);
    assert_eq!(live, replayed);
}
