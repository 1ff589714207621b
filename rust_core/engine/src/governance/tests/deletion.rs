//! Deletion end to end in one engine: every store, the data files, a restart.

use std::time::{Duration, Instant};

use super::*;
use crate::identifiers::Identifier;
use crate::proto::{CreateRegulationRequest, GetRegulationRequest, Regulation, RegulationStatus, RegulationType};

fn event(kind: EventType, id: &str, user: &str, anonymous: &str) -> Event {
    Event {
        r#type: kind as i32,
        message_id: id.into(),
        user_id: user.into(),
        anonymous_id: anonymous.into(),
        timestamp: Some(crate::time::from_ms(1_700_000_000_000 + id.len() as i64)),
        ..Default::default()
    }
}

fn identify(id: &str, user: &str, anonymous: &str, traits: Value) -> Event {
    Event {
        traits: traits.to_string().into_bytes(),
        ..event(EventType::Identify, id, user, anonymous)
    }
}

fn regulate(engine: &Engine, kind: RegulationType, identifiers: &[&str]) -> Regulation {
    let request = CreateRegulationRequest {
        r#type: kind as i32,
        identifiers: identifiers.iter().map(|s| (*s).to_owned()).collect(),
    };
    Regulation::decode(engine.create_regulation(&request.encode_to_vec()).unwrap().as_slice()).unwrap()
}

fn wait_finished(engine: &Engine, id: u64) -> Regulation {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let request = GetRegulationRequest { id };
        let regulation =
            Regulation::decode(engine.get_regulation(&request.encode_to_vec()).unwrap().as_slice()).unwrap();
        if regulation.finished_at_ms > 0 || Instant::now() > deadline {
            return regulation;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn profile_of(engine: &Engine, text: &str) -> Option<crate::identity::graph::ProfileId> {
    let identifier = Identifier::parse(text).unwrap();
    engine.shared.profiles.lock().graph.profile_of(&identifier)
}

fn indexed(engine: &Engine, text: &str) -> Option<Vec<u64>> {
    let key = Identifier::parse(text).unwrap().key();
    engine.shared.index.all(&engine.shared.store, &key).unwrap()
}

/// Every file under `dir` that holds one of `canaries`, with the canary.
fn traces(dir: &std::path::Path, canaries: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for canary in canaries {
            if bytes.windows(canary.len()).any(|w| w == canary.as_bytes()) {
                found.push(format!("{canary} in {}", path.display()));
            }
        }
    }
    found
}

#[test]
fn a_deletion_removes_the_person_from_every_store_and_the_data_files_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let canaries = [
        "ann-canary@example.com",
        "Annabel Canaryfield",
        "ann-device-7",
        "not-an-email-ann",
    ];
    let last_seq_before;
    {
        let engine = open(dir.path());
        let web = source(&engine, "web");
        put_plan(&engine, "shop", PLAN);
        set_policy(&engine, policy("web", UnplannedEvents::Allow, OnViolation::Flag));
        let ann = [
            identify(
                "ann-1",
                "ann",
                "ann-device-7",
                json!({"email": "ann-canary@example.com", "name": "Annabel Canaryfield"}),
            ),
            identify("ann-2", "ann", "", json!({"email": "not-an-email-ann"})),
            Event {
                event: "Order Completed".into(),
                properties: json!({"total": 12, "note": "Annabel Canaryfield"})
                    .to_string()
                    .into_bytes(),
                ..event(EventType::Track, "ann-3", "", "ann-device-7")
            },
            Event {
                group_id: "acme".into(),
                ..event(EventType::Group, "ann-4", "ann", "")
            },
        ];
        for e in ann {
            assert_eq!(send(&engine, web, e), Ok(Stored::Accepted));
        }
        // Refused (no event name) and kept in the rejected store, with her identifier.
        assert!(send(&engine, web, event(EventType::Track, "ann-5", "ann", "")).is_err());
        let bob = [
            identify("bob-1", "bob", "bob-phone", json!({"email": "bob@example.com"})),
            Event {
                group_id: "acme".into(),
                ..event(EventType::Group, "bob-2", "bob", "")
            },
        ];
        for e in bob {
            assert_eq!(send(&engine, web, e), Ok(Stored::Accepted));
        }
        let bob_before = profile_of(&engine, "user_id:bob").unwrap();
        assert!(profile_of(&engine, "user_id:ann").is_some());
        // The index has flushed Ann's postings (the deletion removes them from the file too).
        let flushed = Instant::now();
        while crate::index::IdentifierIndex::flushed_through(&engine.shared.store).unwrap() < engine.last_seq() {
            assert!(flushed.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(50));
        }
        last_seq_before = engine.last_seq();

        let made = regulate(
            &engine,
            RegulationType::SuppressWithDelete,
            &["email:ann-canary@example.com"],
        );
        assert!(made.identifiers[0].starts_with("sha256:"));
        let receipt = wait_finished(&engine, made.id);
        assert_eq!(receipt.status, RegulationStatus::Finished as i32, "{receipt:?}");
        for stage in &receipt.stores {
            assert_eq!(stage.status, RegulationStatus::Finished as i32, "{stage:?}");
        }
        let detail = |name: &str| receipt.stores.iter().find(|s| s.store == name).unwrap().detail.clone();
        assert!(
            detail("events and dedupe markers").starts_with("4 events removed"),
            "{receipt:?}"
        );
        assert!(detail("rejected events").starts_with("1 removed"), "{receipt:?}");
        assert!(
            detail("violation examples").starts_with("1 examples cleared"),
            "{receipt:?}"
        );
        assert!(receipt.engine_seconds > 0.0);

        for text in [
            "user_id:ann",
            "anonymous_id:ann-device-7",
            "email:ann-canary@example.com",
        ] {
            assert_eq!(profile_of(&engine, text), None, "{text}");
            assert_eq!(indexed(&engine, text), None, "{text}");
        }
        assert_eq!(
            profile_of(&engine, "user_id:bob"),
            Some(bob_before),
            "Bob keeps his profile and id"
        );
        assert_eq!(indexed(&engine, "user_id:bob").map(|seqs| seqs.len()), Some(2));
        {
            let state = engine.shared.profiles.lock();
            let users = &state.links.users["acme"];
            assert_eq!(users.len(), 1, "only Bob is linked to acme now");
            assert_eq!(users[0].0, Identifier::parse("user_id:bob").unwrap());
            assert_eq!(state.links.calls["acme"].len(), 1);
        }
        // Suppressed from now on; a new person is not.
        assert!(send(&engine, web, identify("ann-6", "ann", "", json!({}))).is_err());
        assert_eq!(
            send(&engine, web, identify("cy-1", "cy", "", json!({}))),
            Ok(Stored::Accepted)
        );
        engine.close();
    }
    assert_eq!(traces(dir.path(), &canaries), Vec::<String>::new());
    // After a restart: the snapshot (written after the deletion) and the log agree; the removed
    // seqs are not given out again.
    let engine = open(dir.path());
    assert_eq!(profile_of(&engine, "user_id:ann"), None);
    assert!(profile_of(&engine, "user_id:bob").is_some());
    let web = source_id(&engine, "web");
    assert_eq!(
        send(&engine, web, identify("dee-1", "dee", "", json!({}))),
        Ok(Stored::Accepted)
    );
    assert!(engine.last_seq() > last_seq_before + 1);
}

#[test]
fn delete_only_keeps_collecting_and_forgets_the_dedupe_markers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let web = source(&engine, "web");
    let first = identify("same-id", "zed", "", json!({"plan": "gold"}));
    assert_eq!(send(&engine, web, first.clone()), Ok(Stored::Accepted));
    assert_eq!(send(&engine, web, first.clone()), Ok(Stored::Duplicate));
    let made = regulate(&engine, RegulationType::DeleteOnly, &["user_id:zed"]);
    assert!(
        made.stores.iter().all(|s| s.store != "suppression list"),
        "DELETE_ONLY suppresses nothing"
    );
    let receipt = wait_finished(&engine, made.id);
    assert_eq!(receipt.status, RegulationStatus::Finished as i32, "{receipt:?}");
    assert_eq!(profile_of(&engine, "user_id:zed"), None);
    // The marker went with the event: the same message is new again, and so is Zed.
    assert_eq!(send(&engine, web, first), Ok(Stored::Accepted));
    assert!(profile_of(&engine, "user_id:zed").is_some());
}

fn source_id(engine: &Engine, name: &str) -> u32 {
    let store = &engine.shared.store;
    let txn = store.log.read().unwrap();
    for entry in store.log_dbs.sources.iter(&txn.txn).unwrap() {
        let (id, bytes) = entry.unwrap();
        if Source::decode(bytes).unwrap().name == name {
            return id;
        }
    }
    panic!("no source {name}")
}
