//! Separations through the engine's byte API: made, previewed, listed, withdrawn, reopened.

use prost::Message;

use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::ingest::Engine;
use crate::proto::{self, Batch, Event, EventType};
use crate::time;

fn open(dir: &std::path::Path) -> Engine {
    Engine::open(EngineConfig {
        map_size: 1 << 20,
        ..EngineConfig::new(dir)
    })
    .unwrap()
}

fn event(kind: EventType, message_id: &str, at_ms: i64, user: &str, anon: &str, traits: &str) -> Event {
    Event {
        r#type: kind as i32,
        message_id: message_id.into(),
        user_id: user.into(),
        anonymous_id: anon.into(),
        event: if kind == EventType::Track {
            "Viewed".into()
        } else {
            String::new()
        },
        timestamp: Some(time::from_ms(at_ms)),
        traits: traits.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn send(engine: &Engine, events: Vec<Event>) {
    let batch = Batch {
        events,
        ..Default::default()
    };
    assert!(engine.submit(1, batch).unwrap().wait().unwrap().rejections.is_empty());
}

/// The id and sorted identifiers of an identifier's profile; `None` when it is in none.
fn profile(engine: &Engine, identifier: &str) -> Option<(String, Vec<String>)> {
    let request = proto::GetProfileRequest {
        identifier: identifier.into(),
        ..Default::default()
    };
    match engine.get_profile(&request.encode_to_vec()) {
        Ok(bytes) => {
            let profile = proto::GetProfileResponse::decode(bytes.as_slice())
                .unwrap()
                .profile
                .unwrap();
            let mut identifiers: Vec<String> = profile
                .identifiers
                .iter()
                .map(|i| format!("{}:{}", i.r#type, i.value))
                .collect();
            identifiers.sort();
            Some((profile.id, identifiers))
        }
        Err(EngineError::NotFound(_)) => None,
        Err(other) => panic!("{other}"),
    }
}

fn members(engine: &Engine, identifier: &str) -> Vec<String> {
    profile(engine, identifier)
        .map(|(_, identifiers)| identifiers)
        .unwrap_or_default()
}

fn remove(engine: &Engine, profile: &str, identifier: &str, dry_run: bool) -> proto::RemoveIdentifierResponse {
    let request = proto::RemoveIdentifierRequest {
        profile: profile.into(),
        identifier: identifier.into(),
        dry_run,
    };
    proto::RemoveIdentifierResponse::decode(engine.remove_identifier(&request.encode_to_vec()).unwrap().as_slice())
        .unwrap()
}

fn split(engine: &Engine, profile: &str, a: &str, b: &str, dry_run: bool) -> proto::SplitProfileResponse {
    let request = proto::SplitProfileRequest {
        profile: profile.into(),
        a: a.into(),
        b: b.into(),
        dry_run,
    };
    proto::SplitProfileResponse::decode(engine.split_profile(&request.encode_to_vec()).unwrap().as_slice()).unwrap()
}

fn listed(engine: &Engine) -> Vec<(String, String, String, String)> {
    let bytes = engine.list_separations(&[]).unwrap();
    let reply = proto::ListSeparationsResponse::decode(bytes.as_slice()).unwrap();
    reply
        .separations
        .into_iter()
        .map(|s| (s.a, s.b, s.profile_a, s.profile_b))
        .collect()
}

fn withdraw(
    engine: &Engine,
    a: &str,
    b: &str,
    dry_run: bool,
) -> Result<proto::WithdrawSeparationResponse, EngineError> {
    let request = proto::WithdrawSeparationRequest {
        a: a.into(),
        b: b.into(),
        dry_run,
    };
    let bytes = engine.withdraw_separation(&request.encode_to_vec())?;
    Ok(proto::WithdrawSeparationResponse::decode(bytes.as_slice()).unwrap())
}

fn shop(engine: &Engine) {
    send(
        engine,
        vec![
            event(
                EventType::Identify,
                "s1",
                1_000,
                "u-001",
                "web-1",
                r#"{"email":"u-001@shop.test"}"#,
            ),
            event(EventType::Track, "s2", 2_000, "u-001", "", ""),
            event(
                EventType::Identify,
                "s3",
                3_000,
                "u-001",
                "",
                r#"{"email":"u-001@shop.test","plan":"pro"}"#,
            ),
        ],
    );
}

#[test]
fn removing_the_identifier_that_names_the_profile_keeps_every_identifier_in_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    shop(&engine);
    let reply = remove(&engine, "user_id:u-001", "user_id:u-001", false);
    assert_eq!(members(&engine, "user_id:u-001"), vec!["user_id:u-001"]);
    assert_eq!(
        members(&engine, "email:u-001@shop.test"),
        vec!["anonymous_id:web-1", "email:u-001@shop.test"]
    );
    assert_eq!(reply.removed_profile_id, profile(&engine, "user_id:u-001").unwrap().0);
    assert_eq!(reply.profile_id, profile(&engine, "email:u-001@shop.test").unwrap().0);
    // Every identifier with events still lists them through its profile.
    let request = proto::ListEventsRequest {
        identifier: "email:u-001@shop.test".into(),
        profile: true,
        ..Default::default()
    };
    let events = proto::ListEventsResponse::decode(engine.list_events(&request.encode_to_vec()).unwrap().as_slice())
        .unwrap()
        .events;
    assert_eq!(events.len(), 2);
}

#[test]
fn a_dry_run_reports_what_applying_then_does_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    shop(&engine);
    let before = profile(&engine, "user_id:u-001").unwrap();
    let dry = remove(&engine, "user_id:u-001", "anonymous_id:web-1", true);
    assert!(!dry.applied);
    assert_eq!(
        profile(&engine, "user_id:u-001").unwrap(),
        before,
        "a dry run changes nothing"
    );
    assert!(listed(&engine).is_empty(), "nor stores anything");
    let change = dry.change.clone().unwrap();
    assert_eq!(change.before.len(), 1);
    assert_eq!(change.before[0].profile_id, before.0);
    assert_eq!(change.after.len(), 2);
    let applied = remove(&engine, "user_id:u-001", "anonymous_id:web-1", false);
    assert!(applied.applied);
    assert_eq!(
        (&applied.profile_id, &applied.removed_profile_id, &applied.change),
        (&dry.profile_id, &dry.removed_profile_id, &dry.change)
    );
    assert_eq!(members(&engine, "anonymous_id:web-1"), vec!["anonymous_id:web-1"]);
    // The same for a split.
    let dry = split(&engine, "user_id:u-001", "user_id:u-001", "email:u-001@shop.test", true);
    assert_eq!(
        members(&engine, "user_id:u-001"),
        vec!["email:u-001@shop.test", "user_id:u-001"]
    );
    let applied = split(
        &engine,
        "user_id:u-001",
        "user_id:u-001",
        "email:u-001@shop.test",
        false,
    );
    assert_eq!(
        (&applied.profile_a, &applied.profile_b, &applied.change),
        (&dry.profile_a, &dry.profile_b, &dry.change)
    );
    assert_ne!(applied.profile_a, applied.profile_b);
}

#[test]
fn separations_are_listed_and_withdrawn_and_withdrawing_re_resolves_the_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let whole = {
        let engine = open(dir.path());
        shop(&engine);
        let whole = profile(&engine, "user_id:u-001").unwrap();
        remove(&engine, "user_id:u-001", "anonymous_id:web-1", false);
        split(
            &engine,
            "user_id:u-001",
            "email:U-001@shop.test",
            "user_id:u-001",
            false,
        );
        let separations = listed(&engine);
        assert_eq!(separations.len(), 2);
        assert_eq!(
            (separations[0].0.as_str(), separations[0].1.as_str()),
            ("anonymous_id:web-1", "")
        );
        assert_eq!(
            (separations[1].0.as_str(), separations[1].1.as_str()),
            ("email:u-001@shop.test", "user_id:u-001")
        );
        assert_eq!(separations[1].2, profile(&engine, "email:u-001@shop.test").unwrap().0);
        assert_ne!(separations[1].2, separations[1].3);
        whole
    };
    // Kept with the data: a reopened engine lists and applies the same.
    let engine = open(dir.path());
    assert_eq!(listed(&engine).len(), 2);
    assert_eq!(members(&engine, "user_id:u-001"), vec!["user_id:u-001"]);
    // Withdrawing the split (named in either order) joins the user id and the email again.
    let dry = withdraw(&engine, "user_id:u-001", "email:u-001@shop.test", true).unwrap();
    assert!(!dry.applied && !dry.change.as_ref().unwrap().after.is_empty());
    assert_eq!(members(&engine, "user_id:u-001"), vec!["user_id:u-001"]);
    let done = withdraw(&engine, "user_id:u-001", "email:u-001@shop.test", false).unwrap();
    assert_eq!(done.change, dry.change);
    assert_eq!(
        members(&engine, "user_id:u-001"),
        vec!["email:u-001@shop.test", "user_id:u-001"]
    );
    assert_eq!(listed(&engine).len(), 1);
    assert!(matches!(
        withdraw(&engine, "email:u-001@shop.test", "user_id:u-001", false),
        Err(EngineError::NotFound(_))
    ));
    // Withdrawing the removal restores the profile as it was before any separation.
    withdraw(&engine, "anonymous_id:web-1", "", false).unwrap();
    assert_eq!(profile(&engine, "user_id:u-001").unwrap(), whole);
    assert!(listed(&engine).is_empty());
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(profile(&engine, "anonymous_id:web-1").unwrap(), whole);
    assert!(matches!(
        withdraw(&engine, "anonymous_id:web-1", "", false),
        Err(EngineError::NotFound(_))
    ));
    assert!(matches!(
        withdraw(&engine, "web-1", "", false),
        Err(EngineError::InvalidRequest(_))
    ));
}
