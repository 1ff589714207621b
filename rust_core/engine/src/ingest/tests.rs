use super::*;
use crate::proto::{Event, EventType};
use prost::Message;

fn open(dir: &std::path::Path) -> Engine {
    Engine::open(EngineConfig {
        map_size: 1 << 20,
        ..EngineConfig::new(dir)
    })
    .unwrap()
}

fn track(id: &str, user: &str, props: &str) -> Event {
    Event {
        r#type: EventType::Track as i32,
        message_id: id.into(),
        user_id: user.into(),
        event: "Viewed".into(),
        properties: props.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn send(engine: &Engine, events: Vec<Event>) -> BatchOutcome {
    engine
        .submit(
            1,
            Batch {
                events,
                ..Default::default()
            },
        )
        .unwrap()
        .wait()
        .unwrap()
}

fn statuses(outcome: &BatchOutcome) -> Vec<Stored> {
    outcome.stored.iter().map(|(_, _, s)| *s).collect()
}

#[test]
fn duplicates_are_acknowledged_not_stored_and_conflicts_counted() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let first = send(
        &engine,
        vec![track("a", "u1", "{}"), track("a", "u1", "{}"), track("b", "u1", "{}")],
    );
    assert_eq!(
        statuses(&first),
        vec![Stored::Accepted, Stored::Duplicate, Stored::Accepted]
    );
    let again = send(&engine, vec![track("a", "u1", "{}"), track("b", "u1", r#"{"x":1}"#)]);
    assert_eq!(statuses(&again), vec![Stored::Duplicate, Stored::Conflict]);
    assert_eq!(engine.event_count().unwrap(), 2);
    assert_eq!(engine.stats().conflicts.load(Ordering::Relaxed), 1);
}

#[test]
fn the_same_message_id_from_another_source_is_a_new_event() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    send(&engine, vec![track("a", "u1", "{}")]);
    let other = engine
        .submit(
            2,
            Batch {
                events: vec![track("a", "u1", "{}")],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(other.wait().unwrap().stored[0].2, Stored::Accepted);
}

#[test]
fn dedupe_window_expires() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        dedupe_window: Duration::from_millis(50),
        ..EngineConfig::new(dir.path())
    };
    let engine = Engine::open(config).unwrap();
    send(&engine, vec![track("a", "u1", "{}")]);
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(
        statuses(&send(&engine, vec![track("a", "u1", "{}")])),
        vec![Stored::Accepted]
    );
}

#[test]
fn map_full_grows_the_map_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let start = engine.map_size();
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(20_000));
    for round in 0..10 {
        let events = (0..10)
            .map(|i| track(&format!("{round}-{i}"), &format!("u{i}"), &big))
            .collect();
        assert_eq!(send(&engine, events).count(Stored::Accepted), 10);
    }
    assert!(engine.map_size() > start);
    assert_eq!(engine.event_count().unwrap(), 100);
}

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        send(&engine, vec![track("a", "u1", "{}"), track("b", "u2", "{}")]);
    }
    let engine = open(dir.path());
    assert_eq!(engine.last_seq(), 2);
    assert_eq!(
        statuses(&send(&engine, vec![track("a", "u1", "{}"), track("c", "u1", "{}")])),
        vec![Stored::Duplicate, Stored::Accepted]
    );
    let request = proto::ListEventsRequest {
        identifier: "user_id:u1".into(),
        ..Default::default()
    };
    let page =
        proto::ListEventsResponse::decode(engine.list_events(&request.encode_to_vec()).unwrap().as_slice()).unwrap();
    let ids: Vec<_> = page.events.iter().map(|e| e.message_id.as_str()).collect();
    assert_eq!(ids, vec!["c", "a"]);
}

#[test]
fn concurrent_callers_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open(dir.path()));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                for b in 0..20 {
                    let events = (0..50)
                        .map(|i| track(&format!("{t}-{b}-{i}"), &format!("u{i}"), "{}"))
                        .collect();
                    send(&engine, events);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(engine.event_count().unwrap(), 8 * 20 * 50);
    assert!(engine.stats().commits.load(Ordering::Relaxed) <= 160);
}

#[test]
fn a_page_of_events_fits_in_one_grpc_message_and_the_cursor_continues() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    let blob = format!(r#"{{"blob":"{}"}}"#, "x".repeat(30_000));
    for round in 0..4 {
        let events = (0..50).map(|i| track(&format!("{round}-{i}"), "u1", &blob)).collect();
        send(&engine, events);
    }
    let page = |cursor: String| {
        let request = proto::ListEventsRequest {
            identifier: "user_id:u1".into(),
            limit: 1000,
            cursor,
            ..Default::default()
        };
        proto::ListEventsResponse::decode(engine.list_events(&request.encode_to_vec()).unwrap().as_slice()).unwrap()
    };
    let first = page(String::new());
    assert!(first.encoded_len() < 4 << 20);
    assert!(first.events.len() < 200 && !first.next_cursor.is_empty());
    let second = page(first.next_cursor.clone());
    assert_eq!(first.events.len() + second.events.len(), 200);
    assert!(second.next_cursor.is_empty());
}

/// The message ids of every page of a `ListEvents` request, following its cursors.
fn pages_of_events(engine: &Engine, mut request: proto::ListEventsRequest) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    loop {
        let reply = engine.list_events(&request.encode_to_vec()).unwrap();
        let page = proto::ListEventsResponse::decode(reply.as_slice()).unwrap();
        pages.push(page.events.into_iter().map(|e| e.message_id).collect());
        if page.next_cursor.is_empty() {
            return pages;
        }
        request.cursor = page.next_cursor;
    }
}

#[test]
fn events_list_by_event_time_across_pages_and_a_whole_profile() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let at = |id: &str, user: &str, anon: &str, ms: i64| Event {
        anonymous_id: anon.into(),
        timestamp: Some(crate::time::from_ms(ms)),
        ..track(id, user, "{}")
    };
    // Arrival order differs from event time: a login (i2) joins the anonymous browsing, two
    // events share a timestamp (t4, t4b: arrival decides), and t0 is back-filled last.
    let arrivals = vec![
        at("t3", "u1", "", 3_000),
        identify("i1", "", "anon", 1_000, "{}"),
        identify("i2", "u1", "anon", 2_000, "{}"),
        at("t5", "u1", "", 5_000),
        at("t4", "", "anon", 4_000),
        at("t4b", "", "anon", 4_000),
        at("t0", "u1", "", 500),
    ];
    for event in arrivals {
        send(&engine, vec![event]);
    }
    let request = |identifier: &str, limit: u32| proto::ListEventsRequest {
        identifier: identifier.into(),
        limit,
        profile: true,
        by_event_time: true,
        ..Default::default()
    };
    let flat = |pages: Vec<Vec<String>>| pages.concat();
    assert_eq!(
        pages_of_events(&engine, request("user_id:u1", 3)),
        [vec!["t5", "t4b", "t4"], vec!["t3", "i2", "i1"], vec!["t0"]]
    );
    let oldest_first = proto::ListEventsRequest {
        oldest_first: true,
        ..request("anonymous_id:anon", 4)
    };
    assert_eq!(
        pages_of_events(&engine, oldest_first),
        [vec!["t0", "i1", "i2", "t3"], vec!["t4", "t4b", "t5"]]
    );
    let by_arrival = proto::ListEventsRequest {
        by_event_time: false,
        ..request("user_id:u1", 1000)
    };
    assert_eq!(
        flat(pages_of_events(&engine, by_arrival)),
        ["t0", "t4b", "t4", "t5", "i2", "i1", "t3"]
    );
    let only_identifier = proto::ListEventsRequest {
        profile: false,
        ..request("user_id:u1", 1000)
    };
    assert_eq!(
        flat(pages_of_events(&engine, only_identifier)),
        ["t5", "t3", "i2", "t0"]
    );
    let window = proto::ListEventsRequest {
        start: Some(crate::time::from_ms(1_000)),
        end: Some(crate::time::from_ms(4_000)),
        ..request("user_id:u1", 2)
    };
    assert_eq!(flat(pages_of_events(&engine, window)), ["t3", "i2", "i1"]);
    let arrival_cursor = proto::ListEventsRequest {
        cursor: "3".into(),
        ..request("user_id:u1", 2)
    };
    let refused = engine.list_events(&arrival_cursor.encode_to_vec()).unwrap_err();
    assert!(matches!(refused, EngineError::InvalidRequest(_)), "{refused}");
}

#[test]
fn a_second_engine_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path());
    let err = Engine::open(EngineConfig::new(dir.path())).err().unwrap();
    assert!(err.to_string().contains("in use by another Tributary process"), "{err}");
}

fn identify(id: &str, user: &str, anon: &str, ts_ms: i64, traits: &str) -> Event {
    Event {
        r#type: EventType::Identify as i32,
        message_id: id.into(),
        user_id: user.into(),
        anonymous_id: anon.into(),
        timestamp: Some(crate::time::from_ms(ts_ms)),
        traits: traits.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn profile(engine: &Engine, identifier: &str) -> Option<proto::Profile> {
    let request = proto::GetProfileRequest {
        identifier: identifier.into(),
        verbose: true,
        ..Default::default()
    };
    match engine.get_profile(&request.encode_to_vec()) {
        Ok(bytes) => proto::GetProfileResponse::decode(bytes.as_slice()).unwrap().profile,
        Err(EngineError::NotFound(_)) => None,
        Err(other) => panic!("{other}"),
    }
}

fn traits_of(profile: &proto::Profile) -> serde_json::Value {
    serde_json::from_slice(&profile.traits).unwrap()
}

#[test]
fn profiles_merge_on_login_and_traits_take_the_latest_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    send(
        &engine,
        vec![identify("m1", "", "anon-1", 1_000, r#"{"plan":"free","color":"red"}"#)],
    );
    let anonymous = profile(&engine, "anonymous_id:anon-1").unwrap();
    send(
        &engine,
        vec![identify(
            "m2",
            "u1",
            "",
            5_000,
            r#"{"plan":"pro","email":"U1@x.com","color":null}"#,
        )],
    );
    // An older identify arriving late does not override newer values.
    send(
        &engine,
        vec![identify(
            "m3",
            "u1",
            "anon-1",
            2_000,
            r#"{"plan":"team","city":"Delft"}"#,
        )],
    );
    let merged = profile(&engine, "email:u1@x.com").unwrap();
    assert_eq!(merged.id, anonymous.id, "the older profile's id survives");
    // Resolved in event-time order, the late login (2 s) comes before u1's own identify (5 s):
    // it attaches u1 to the anonymous profile, and the identify then adds the email. No merge.
    assert_eq!(merged.merges, 0);
    assert_eq!(
        traits_of(&merged),
        serde_json::json!({"plan": "pro", "email": "U1@x.com", "city": "Delft"})
    );
    let plan = merged.trait_sources.iter().find(|t| t.name == "plan").unwrap();
    assert_eq!((plan.message_id.as_str(), plan.source_id), ("m2", 1));
    assert_eq!(profile(&engine, &merged.id).unwrap().id, merged.id);
    assert!(profile(&engine, "user_id:nobody").is_none());
    let kinds: Vec<_> = merged.identifiers.iter().map(|i| i.r#type.as_str()).collect();
    assert_eq!(kinds, vec!["anonymous_id", "user_id", "email"]);
}

#[test]
fn the_identity_graph_is_rebuilt_from_the_log_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let engine = open(dir.path());
        send(
            &engine,
            vec![
                identify("m1", "u1", "a1", 1_000, r#"{"n":1}"#),
                identify("m2", "u2", "a1", 2_000, "{}"),
            ],
        );
        send(&engine, vec![track("m3", "u2", "{}")]);
        (
            profile(&engine, "user_id:u1").unwrap(),
            profile(&engine, "user_id:u2").unwrap(),
        )
    };
    let engine = open(dir.path());
    let after = (
        profile(&engine, "user_id:u1").unwrap(),
        profile(&engine, "user_id:u2").unwrap(),
    );
    assert_eq!(before, after);
    assert_ne!(
        after.0.id, after.1.id,
        "a shared anonymous id never merges two user ids"
    );
}

#[test]
fn merge_history_and_batch_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    send(
        &engine,
        vec![
            identify("m1", "", "a1", 1_000, "{}"),
            identify("m2", "u1", "", 2_000, "{}"),
        ],
    );
    send(&engine, vec![identify("m3", "u1", "a1", 3_000, r#"{"x":1}"#)]);
    let request = proto::GetMergeHistoryRequest {
        identifier: "user_id:u1".into(),
    };
    let history =
        proto::GetMergeHistoryResponse::decode(engine.get_merge_history(&request.encode_to_vec()).unwrap().as_slice())
            .unwrap();
    let survivor = profile(&engine, "anonymous_id:a1").unwrap().id;
    assert_eq!(history.profile_id, survivor);
    assert_eq!(history.merges.len(), 1);
    assert_eq!(
        (
            history.merges[0].survivor_id.as_str(),
            history.merges[0].message_id.as_str()
        ),
        (survivor.as_str(), "m3")
    );
    let batch = proto::BatchGetProfilesRequest {
        identifiers: vec![
            "user_id:u1".into(),
            "user_id:nobody".into(),
            "bad".into(),
            survivor.clone(),
        ],
        include: vec![],
    };
    let reply =
        proto::BatchGetProfilesResponse::decode(engine.batch_get_profiles(&batch.encode_to_vec()).unwrap().as_slice())
            .unwrap();
    let found: Vec<Option<&str>> = reply
        .results
        .iter()
        .map(|r| r.profile.as_ref().map(|p| p.id.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![Some(survivor.as_str()), None, None, Some(survivor.as_str())]
    );
    assert!(reply.results[2].error.contains("type:value"));
    assert!(reply.results[1].error.is_empty());
}

#[test]
fn a_group_calls_traits_describe_the_account_not_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let group = |id: &str, user: &str| Event {
        r#type: EventType::Group as i32,
        message_id: id.into(),
        user_id: user.into(),
        group_id: "acme".into(),
        traits: br#"{"email":"billing@acme.com"}"#.to_vec(),
        ..Default::default()
    };
    send(&engine, vec![group("g1", "u1"), group("g2", "u2")]);
    assert!(profile(&engine, "email:billing@acme.com").is_none());
    assert_ne!(
        profile(&engine, "user_id:u1").unwrap().id,
        profile(&engine, "user_id:u2").unwrap().id
    );
}

#[test]
fn a_key_stays_remembered_until_its_marker_is_swept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = || EngineConfig {
        dedupe_window: Duration::from_millis(300),
        ..EngineConfig::new(dir.path())
    };
    let engine = Engine::open(config()).unwrap();
    send(&engine, vec![track("a", "u1", "{}")]);
    engine.close();
    drop(engine);
    std::thread::sleep(Duration::from_millis(400));
    // The marker expired while the engine was down: the key is accepted again, then remembered.
    let engine = Engine::open(config()).unwrap();
    assert_eq!(
        statuses(&send(&engine, vec![track("a", "u1", "{}")])),
        vec![Stored::Accepted]
    );
    assert_eq!(
        statuses(&send(&engine, vec![track("a", "u1", "{}")])),
        vec![Stored::Duplicate]
    );
    engine.close();
    drop(engine);
    // Reopened at once: the new marker is loaded (the old one was swept, not the new one).
    let engine = Engine::open(config()).unwrap();
    assert_eq!(
        statuses(&send(&engine, vec![track("a", "u1", "{}")])),
        vec![Stored::Duplicate]
    );
    assert!(engine
        .memory_usage()
        .iter()
        .any(|(part, bytes)| *part == "dedupe" && *bytes > 0));
}

#[test]
fn refused_events_are_kept_with_their_reason_counted_and_trimmed_to_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        map_size: 1 << 20,
        max_rejected_kept: 3,
        ..EngineConfig::new(dir.path())
    };
    {
        let engine = Engine::open(config.clone()).unwrap();
        let mut anonymous = track("nobody", "", r#"{"plan":"pro"}"#);
        anonymous.user_id.clear();
        let outcome = send(&engine, vec![track("ok", "u1", "{}"), anonymous]);
        assert_eq!(statuses(&outcome), vec![Stored::Accepted]);
        assert_eq!(outcome.rejections[0].field, "userId");
        // A request of refused events only is kept too; a message that is not an event keeps its text.
        let json = br#"[{"type":"track","userId":"u2"}, 5]"#;
        engine
            .submit_json(2, json, &JsonOptions::default())
            .unwrap()
            .wait()
            .unwrap();

        let (records, next) = engine.rejected(0, 0, 10).unwrap();
        assert_eq!(next, 0);
        let reasons: Vec<_> = records.iter().map(|r| (r.id, r.source_id, r.field.as_str())).collect();
        assert_eq!(reasons, vec![(3, 2, "message"), (2, 2, "event"), (1, 1, "userId")]);
        assert_eq!(records[0].raw, b"5");
        let kept = records[2].event.as_ref().expect("the refused event is kept");
        assert_eq!(kept.message_id, "nobody");
        assert_eq!(kept.properties, br#"{"plan":"pro"}"#);
        assert_eq!(engine.rejected(2, 0, 10).unwrap().0.len(), 2, "one source's only");
        let (page, next) = engine.rejected(0, 0, 2).unwrap();
        assert_eq!((page.len(), next), (2, 2));
        assert_eq!(
            engine.rejected(0, next, 2).unwrap().0[0].id,
            1,
            "the next page is older"
        );
        assert_eq!(engine.last_rejected_id(), 3);
        assert_eq!(engine.stats().stored_by_source.lock().get(&1), Some(&1));

        // Past `max_rejected_kept` the oldest records go; the counts stay.
        for i in 0..2 {
            let mut anonymous = track(&format!("n{i}"), "", "{}");
            anonymous.user_id.clear();
            send(&engine, vec![anonymous]);
        }
        let ids: Vec<_> = engine.rejected(0, 0, 10).unwrap().0.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![5, 4, 3]);
    }
    let engine = Engine::open(config).unwrap();
    assert_eq!(engine.last_rejected_id(), 5, "ids go on after a restart");
    let counts: Vec<_> = engine
        .rejection_counts(0)
        .unwrap()
        .into_iter()
        .map(|c| (c.source_id, c.field, c.count))
        .collect();
    assert_eq!(
        counts,
        vec![
            (1, "userId".to_owned(), 3),
            (2, "event".to_owned(), 1),
            (2, "message".to_owned(), 1)
        ]
    );
}

#[test]
fn an_events_detail_says_which_profile_it_created_joined_or_merged() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let mut anonymous = track("a1", "", "{}");
    anonymous.user_id.clear();
    anonymous.anonymous_id = "anon".into();
    send(&engine, vec![anonymous.clone(), track("u1", "u1", "{}")]);
    let mut login = track("login", "u1", "{}");
    login.anonymous_id = "anon".into();
    send(&engine, vec![login, track("again", "u1", "{}")]);

    let created = engine.event_detail(1).unwrap().identity.unwrap();
    assert!(created.decision.starts_with("Created "), "{}", created.decision);
    assert_eq!(created.new_identifiers, vec!["anonymous_id:anon"]);
    let merged = engine.event_detail(3).unwrap();
    assert_eq!(merged.source_id, 1);
    assert_eq!(merged.event.message_id, "login");
    let identity = merged.identity.unwrap();
    assert_eq!(identity.merges.len(), 1);
    assert!(identity.decision.starts_with("Merged "), "{}", identity.decision);
    assert_eq!(identity.identifiers.len(), 2);
    assert_eq!(identity.profile_id, created.profile_id, "the oldest profile survives");
    let joined = engine.event_detail(4).unwrap().identity.unwrap();
    assert!(joined.decision.starts_with("Joined "), "{}", joined.decision);
    assert!(joined.merges.is_empty() && joined.new_identifiers.is_empty());
    assert!(matches!(engine.event_detail(99), Err(EngineError::NotFound(_))));
}
