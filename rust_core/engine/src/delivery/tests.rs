use super::*;
use crate::config::EngineConfig;
use crate::proto::{Batch, DestinationFilters, EventType};

fn open(dir: &std::path::Path) -> Engine {
    Engine::open(EngineConfig {
        map_size: 1 << 20,
        ..EngineConfig::new(dir)
    })
    .unwrap()
}

fn track(id: &str, name: &str) -> Event {
    Event {
        r#type: EventType::Track as i32,
        message_id: id.into(),
        user_id: "u1".into(),
        event: name.into(),
        properties: br#"{"n":1}"#.to_vec(),
        ..Default::default()
    }
}

fn send(engine: &Engine, events: Vec<Event>) {
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
        .unwrap();
}

fn create(engine: &Engine, destination: Destination) -> Destination {
    let request = CreateDestinationRequest {
        destination: Some(destination),
    };
    let response = DestinationResponse::decode(&*engine.create_destination(&request.encode_to_vec()).unwrap()).unwrap();
    response.destination.unwrap()
}

fn hook(name: &str) -> Destination {
    Destination {
        name: name.into(),
        kind: "webhook".into(),
        settings: br#"{"url":"http://127.0.0.1:1/"}"#.to_vec(),
        ..Default::default()
    }
}

fn read(engine: &Engine, name: &str, after: u64, limit: usize) -> DeliveryBatch {
    engine
        .read_for_delivery(name, after, limit, 1 << 20, Duration::ZERO, 0)
        .unwrap()
}

#[test]
fn a_new_destination_starts_at_the_end_of_the_log_unless_asked_for_all_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    send(&engine, vec![track("old", "A")]);
    let now = create(&engine, hook("now"));
    let all = create(
        &engine,
        Destination {
            from_beginning: true,
            ..hook("all")
        },
    );
    assert_eq!(now.batch_size, DEFAULT_BATCH_SIZE, "defaults are filled in");
    assert_eq!(engine.destination_cursor(now.id).unwrap(), 1);
    assert_eq!(engine.destination_cursor(all.id).unwrap(), 0);
    send(&engine, vec![track("new", "A")]);
    let batch = read(&engine, "now", 1, 10);
    assert_eq!(batch.message_ids, vec!["new"]);
    let batch = read(&engine, "all", 0, 10);
    assert_eq!(batch.message_ids, vec!["old", "new"]);
    let json: Vec<serde_json::Value> = serde_json::from_slice(&batch.raw).unwrap();
    assert_eq!(json[0]["messageId"], "old");
    assert_eq!(json[1]["properties"]["n"], 1);
}

#[test]
fn reads_stop_at_the_limit_and_skip_filtered_events() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    create(
        &engine,
        Destination {
            filters: Some(DestinationFilters {
                drop_events: vec!["Noise".into()],
                ..Default::default()
            }),
            ..hook("d")
        },
    );
    let events = (0..10)
        .map(|i| track(&format!("m{i}"), if i % 2 == 0 { "Noise" } else { "Buy" }))
        .collect();
    send(&engine, events);
    let first = read(&engine, "d", 0, 2);
    assert_eq!(first.message_ids, vec!["m1", "m3"]);
    assert_eq!(first.seqs, vec![2, 4]);
    assert_eq!(first.position, 4);
    assert_eq!(first.filtered, 2);
    let rest = read(&engine, "d", first.position, 100);
    assert_eq!(rest.message_ids, vec!["m5", "m7", "m9"]);
    assert_eq!(rest.position, 10, "the trailing filtered event is passed too");
    let none = read(&engine, "d", rest.position, 100);
    assert!(none.seqs.is_empty());
    assert_eq!(none.raw, b"[]");
}

#[test]
fn settling_moves_the_cursor_and_keeps_dead_letters_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let engine = open(dir.path());
        let d = create(&engine, hook("d"));
        send(&engine, (0..5).map(|i| track(&format!("m{i}"), "A")).collect());
        let batch = read(&engine, "d", 0, 3);
        let dead = Dead {
            seqs: &batch.seqs[1..],
            message_ids: &batch.message_ids[1..],
            reason: "HTTP 400",
            attempts: 1,
            first_failed_ms: 5,
        };
        engine.settle(d.id, batch.position, &dead, &[], None).unwrap();
        engine.settle(d.id, 1, &Dead::default(), &[], None).unwrap();
        engine.close();
        d.id
    };
    let engine = open(dir.path());
    assert_eq!(engine.destination_cursor(id).unwrap(), 3, "a cursor never moves back");
    let (_, seqs) = engine.dead_letter_seqs("d", &[]).unwrap();
    assert_eq!(seqs, vec![2, 3]);
    let page = ListDeadLettersResponse::decode(
        &*engine
            .list_dead_letters(
                &ListDeadLettersRequest {
                    name: "d".into(),
                    limit: 1,
                    ..Default::default()
                }
                .encode_to_vec(),
            )
            .unwrap(),
    )
    .unwrap();
    assert_eq!(page.dead_letters.len(), 1);
    let letter = &page.dead_letters[0];
    assert_eq!(
        (letter.seq, letter.message_id.as_str(), letter.reason.as_str()),
        (2, "m1", "HTTP 400")
    );
    let event: serde_json::Value = serde_json::from_slice(&letter.event).unwrap();
    assert_eq!(event["messageId"], "m1");
    assert_eq!(page.next_after_seq, 2);
    // Delivered on a replay: they leave the store.
    engine.settle(id, 0, &Dead::default(), &[2], None).unwrap();
    assert_eq!(engine.dead_letter_seqs("d", &[]).unwrap().1, vec![3]);
    // Deleting the destination forgets its cursor and dead letters.
    engine
        .delete_destination(&DeleteDestinationRequest { name: "d".into() }.encode_to_vec())
        .unwrap();
    assert!(matches!(
        engine.dead_letter_seqs("d", &[]),
        Err(EngineError::NotFound(_))
    ));
    assert_eq!(engine.destination_cursor(id).unwrap(), 0);
}

#[test]
fn a_replay_selects_by_message_id_or_receive_time_and_forces_the_destination_on() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    create(&engine, hook("d"));
    let mut off = track("off", "A");
    off.integrations = br#"{"All":false}"#.to_vec();
    send(&engine, vec![track("a", "A"), off, track("b", "A")]);
    assert_eq!(
        read(&engine, "d", 0, 10).message_ids,
        vec!["a", "b"],
        "live: integrations apply"
    );
    let picked = engine
        .replay_selection("d", 0, 0, &["off".to_owned(), "b".to_owned()])
        .unwrap()
        .1;
    assert_eq!(picked, vec![2, 3]);
    let batch = engine.read_seqs_for_delivery("d", &picked).unwrap();
    let json: Vec<serde_json::Value> = serde_json::from_slice(&batch.raw).unwrap();
    assert_eq!(json[0]["integrations"], serde_json::json!({"All": false, "d": true}));
    let now = time::now_ms();
    assert_eq!(engine.replay_selection("d", 0, 0, &[]).unwrap().1, vec![1, 2, 3]);
    assert!(engine.replay_selection("d", now + 60_000, 0, &[]).unwrap().1.is_empty());
}

#[test]
fn definitions_are_checked_and_named_fields_reported() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let attempt = |d: Destination| {
        engine
            .create_destination(&CreateDestinationRequest { destination: Some(d) }.encode_to_vec())
            .map(|_| ())
    };
    for (bad, field) in [
        (hook("Bad Name"), "destination.name"),
        (
            Destination {
                batch_size: 5000,
                ..hook("d")
            },
            "destination.batch_size",
        ),
        (
            Destination {
                sources: vec!["nope".into()],
                ..hook("d")
            },
            "destination.sources",
        ),
        (
            Destination {
                settings: b"[1]".to_vec(),
                ..hook("d")
            },
            "destination.settings",
        ),
        (
            Destination {
                filters: Some(DestinationFilters {
                    types: vec!["click".into()],
                    ..Default::default()
                }),
                ..hook("d")
            },
            "destination.filters.types",
        ),
    ] {
        match attempt(bad) {
            Err(EngineError::InvalidRequest(message)) => assert!(message.starts_with(field), "{message}"),
            other => panic!("expected InvalidRequest on {field}, got {:?}", other.err()),
        }
    }
    attempt(hook("d")).unwrap();
    assert!(matches!(attempt(hook("d")), Err(EngineError::AlreadyExists(_))));
}

#[test]
fn the_batch_in_flight_at_a_crash_is_read_again_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let engine = open(dir.path());
        let d = create(&engine, hook("d"));
        send(&engine, (0..3).map(|i| track(&format!("a{i}"), "A")).collect());
        let first = read(&engine, "d", 0, 10);
        assert!(first.short, "it stopped at the log's end");
        assert!(
            !read(&engine, "d", 0, 2).short,
            "it stopped at its limit: a restart reads the same"
        );
        engine.begin_delivery(d.id, first.position).unwrap();
        // More events arrive while the batch is at the destination; then the server dies.
        send(&engine, (0..3).map(|i| track(&format!("b{i}"), "A")).collect());
        engine.close();
        d.id
    };
    let engine = open(dir.path());
    let (cursor, in_flight) = engine.delivery_position(id).unwrap();
    assert_eq!((cursor, in_flight), (0, 3));
    let again = engine
        .read_for_delivery("d", cursor, 10, 1 << 20, Duration::ZERO, in_flight)
        .unwrap();
    assert_eq!(
        again.message_ids,
        vec!["a0", "a1", "a2"],
        "the same batch, not a longer one"
    );
    assert!(!again.short, "bounded by its recorded end");
    // A settlement short of the batch's end keeps the record; one past it forgets it.
    engine.settle(id, 2, &Dead::default(), &[], None).unwrap();
    assert_eq!(engine.delivery_position(id).unwrap(), (2, 3));
    engine.settle(id, 6, &Dead::default(), &[], None).unwrap();
    assert_eq!(engine.delivery_position(id).unwrap(), (6, 0), "nothing in flight");
    // A replay's settlement (position 0) leaves the record alone.
    engine.begin_delivery(id, 9).unwrap();
    engine.settle(id, 0, &Dead::default(), &[], None).unwrap();
    assert_eq!(engine.delivery_position(id).unwrap(), (6, 9));
}

#[test]
fn a_replay_is_kept_until_done_and_finished_after_a_restart() {
    use crate::delivery::ReplayProgress;
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let engine = open(dir.path());
        let d = create(&engine, hook("d"));
        let first = engine.queue_replay(d.id, &[1, 2, 3], false).unwrap();
        let second = engine.queue_replay(d.id, &[7], true).unwrap();
        assert_eq!((first, second), (1, 2));
        // The first chunk of the first replay is delivered; the server stops.
        let progress = ReplayProgress {
            number: first,
            remaining: &[3],
        };
        engine.settle(d.id, 0, &Dead::default(), &[], Some(progress)).unwrap();
        engine.close();
        d.id
    };
    let engine = open(dir.path());
    assert_eq!(
        engine.pending_replays(id).unwrap(),
        vec![(1, false, vec![3]), (2, true, vec![7])]
    );
    let done = ReplayProgress {
        number: 1,
        remaining: &[],
    };
    engine.settle(id, 0, &Dead::default(), &[], Some(done)).unwrap();
    assert_eq!(engine.pending_replays(id).unwrap(), vec![(2, true, vec![7])]);
    assert_eq!(
        engine.queue_replay(id, &[9], false).unwrap(),
        3,
        "numbers are not reused"
    );
    engine
        .delete_destination(&DeleteDestinationRequest { name: "d".into() }.encode_to_vec())
        .unwrap();
    assert!(engine.pending_replays(id).unwrap().is_empty(), "deleting forgets them");
}
