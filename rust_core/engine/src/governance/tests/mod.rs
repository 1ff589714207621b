use prost::Message;
use serde_json::{json, Value};

use super::plan::CompiledPlan;
use crate::config::EngineConfig;
use crate::ingest::{Engine, Stored};
use crate::proto::{
    Batch, Event, EventType, GetSourcePolicyRequest, ListViolationsRequest, ListViolationsResponse, OnViolation,
    PutTrackingPlanRequest, SetSourcePolicyRequest, Source, SourcePolicy, TrackingPlan, UnplannedEvents,
};

const PLAN: &str = r#"{
    "events": {
        "Order Completed": {
            "type": "object",
            "properties": {"total": {"type": "number"}, "currency": {"enum": ["USD", "EUR"]}},
            "required": ["total"]
        },
        "Signed Up": {"type": "object", "additionalProperties": false, "properties": {"plan": {"type": "string"}}}
    },
    "identify": {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}}
}"#;

fn open(dir: &std::path::Path) -> Engine {
    Engine::open(EngineConfig {
        map_size: 1 << 22,
        ..EngineConfig::new(dir)
    })
    .unwrap()
}

/// A source named `name`; returns its id.
fn source(engine: &Engine, name: &str) -> u32 {
    let mut digest = [0u8; 32];
    for (i, b) in name.bytes().enumerate() {
        digest[i % 32] ^= b.wrapping_add(i as u8);
    }
    Source::decode(engine.create_source(name, &digest).unwrap().as_slice())
        .unwrap()
        .id
}

fn put_plan(engine: &Engine, name: &str, document: &str) -> TrackingPlan {
    let request = PutTrackingPlanRequest {
        name: name.into(),
        document: document.into(),
        create_only: false,
    };
    TrackingPlan::decode(engine.put_tracking_plan(&request.encode_to_vec()).unwrap().as_slice()).unwrap()
}

fn set_policy(engine: &Engine, policy: SourcePolicy) {
    let request = SetSourcePolicyRequest { policy: Some(policy) };
    engine.set_source_policy(&request.encode_to_vec()).unwrap();
}

fn policy(source: &str, unplanned: UnplannedEvents, on_violation: OnViolation) -> SourcePolicy {
    SourcePolicy {
        source: source.into(),
        plan: "shop".into(),
        unplanned_events: unplanned as i32,
        on_violation: on_violation as i32,
        transformations: String::new(),
        pii: Vec::new(),
    }
}

fn track(id: &str, name: &str, properties: Value) -> Event {
    Event {
        r#type: EventType::Track as i32,
        message_id: id.into(),
        user_id: "u1".into(),
        event: name.into(),
        properties: properties.to_string().into_bytes(),
        ..Default::default()
    }
}

/// Sends one event: what became of it (None: refused, with the reason).
fn send(engine: &Engine, source: u32, event: Event) -> Result<Stored, String> {
    let outcome = engine
        .submit(
            source,
            Batch {
                events: vec![event],
                ..Default::default()
            },
        )
        .unwrap()
        .wait()
        .unwrap();
    match (outcome.stored.first(), outcome.rejections.first()) {
        (Some((_, _, stored)), None) => Ok(*stored),
        (None, Some(rejection)) => Err(format!("{}: {}", rejection.field, rejection.reason)),
        other => panic!("one event, one outcome: {:?}", other.0),
    }
}

/// The newest stored event.
fn last_stored(engine: &Engine) -> Event {
    let store = &engine.shared.store;
    let txn = store.log.read().unwrap();
    let (_, value) = store.log_dbs.events.last(&txn.txn).unwrap().unwrap();
    Event::decode(&value[4..]).unwrap()
}

fn object(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return json!({});
    }
    serde_json::from_slice(bytes).unwrap()
}

fn violations(engine: &Engine, source: &str) -> Vec<(String, String, String, u64)> {
    let request = ListViolationsRequest {
        source: source.into(),
        ..Default::default()
    };
    let response =
        ListViolationsResponse::decode(engine.list_violations(&request.encode_to_vec()).unwrap().as_slice()).unwrap();
    let mut found: Vec<_> = response
        .violations
        .into_iter()
        .map(|v| (v.event, v.field, v.r#type, v.count))
        .collect();
    found.sort();
    found
}

#[test]
fn a_plan_that_does_not_compile_is_refused_naming_the_part() {
    for (document, expected) in [
        ("not json", "not JSON"),
        ("[]", "must be a JSON object"),
        (
            r#"{"events": {"A": {"type": "nope"}}}"#,
            "events.\"A\": invalid JSON Schema",
        ),
        (r#"{"events": {"A": 3}}"#, "events.\"A\""),
        (r#"{"identify": {"minimum": "x"}}"#, "identify: invalid JSON Schema"),
        (r#"{"tracks": {}}"#, "unknown key \"tracks\""),
    ] {
        let err = CompiledPlan::compile("p", 1, document).err().unwrap();
        assert!(err.contains(expected), "{document}: {err}");
    }
    assert_eq!(CompiledPlan::compile("p", 1, PLAN).unwrap().event_count(), 2);
}

#[test]
fn every_mode_does_what_it_says_for_valid_invalid_and_unplanned_events() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    put_plan(&engine, "shop", PLAN);
    let valid = json!({"total": 10, "currency": "USD"});
    let invalid = json!({"total": "ten", "currency": "USD", "note": "kept"});
    let mut n = 0;
    let mut id = || {
        n += 1;
        format!("m{n}")
    };
    // Invalid properties, in each mode.
    for (mode, name) in [
        (OnViolation::Allow, "allow"),
        (OnViolation::Flag, "flag"),
        (OnViolation::Omit, "omit"),
        (OnViolation::Block, "block"),
    ] {
        let src = source(&engine, name);
        set_policy(&engine, policy(name, UnplannedEvents::Allow, mode));
        // A valid event is stored as sent in every mode.
        assert_eq!(
            send(&engine, src, track(&id(), "Order Completed", valid.clone())),
            Ok(Stored::Accepted)
        );
        let stored = last_stored(&engine);
        assert_eq!(object(&stored.properties), valid);
        assert_eq!(object(&stored.context).get("protocols"), None);

        let outcome = send(&engine, src, track(&id(), "Order Completed", invalid.clone()));
        match mode {
            OnViolation::Block => {
                let reason = outcome.unwrap_err();
                assert!(
                    reason.starts_with("properties: blocked by tracking plan \"shop\" v1"),
                    "{reason}"
                );
                assert!(reason.contains("properties.total"), "{reason}");
            }
            _ => {
                assert_eq!(outcome, Ok(Stored::Accepted));
                let stored = last_stored(&engine);
                let protocols = object(&stored.context).get("protocols").cloned();
                let properties = object(&stored.properties);
                match mode {
                    OnViolation::Allow => {
                        assert_eq!(properties, invalid);
                        assert_eq!(protocols, None);
                    }
                    OnViolation::Flag => {
                        assert_eq!(properties, invalid);
                        let protocols = protocols.unwrap();
                        assert_eq!(protocols["sourceId"], json!(src.to_string()));
                        assert_eq!(protocols["violations"][0]["field"], json!("properties.total"));
                        assert_eq!(protocols["violations"][0]["type"], json!("Invalid Type"));
                    }
                    OnViolation::Omit => {
                        assert_eq!(properties, json!({"currency": "USD", "note": "kept"}));
                        let protocols = protocols.unwrap();
                        assert_eq!(protocols["omitted_on_violation"], json!(["properties.total"]));
                        assert_eq!(protocols["violations"].as_array().unwrap().len(), 1);
                    }
                    OnViolation::Block => unreachable!(),
                }
            }
        }
        // Counted in every mode, once.
        assert_eq!(
            violations(&engine, name),
            vec![(
                "Order Completed".into(),
                "properties.total".into(),
                "Invalid Type".into(),
                1
            )]
        );
    }
    // Unplanned events, in each mode.
    for (mode, name) in [
        (UnplannedEvents::Allow, "u-allow"),
        (UnplannedEvents::Flag, "u-flag"),
        (UnplannedEvents::Block, "u-block"),
    ] {
        let src = source(&engine, name);
        set_policy(&engine, policy(name, mode, OnViolation::Block));
        let outcome = send(&engine, src, track(&id(), "Cart Viewed", json!({"any": 1})));
        match mode {
            UnplannedEvents::Block => {
                let reason = outcome.unwrap_err();
                assert!(reason.starts_with("event: blocked by tracking plan"), "{reason}");
                assert!(
                    reason.contains("\"Cart Viewed\" is not in the tracking plan"),
                    "{reason}"
                );
            }
            _ => {
                assert_eq!(outcome, Ok(Stored::Accepted));
                let protocols = object(&last_stored(&engine).context).get("protocols").cloned();
                assert_eq!(protocols.is_some(), mode == UnplannedEvents::Flag);
            }
        }
        assert_eq!(
            violations(&engine, name),
            vec![("Cart Viewed".into(), "event".into(), "Unplanned Event".into(), 1)]
        );
        // Page calls are not planned: stored whatever the mode.
        let page = Event {
            r#type: EventType::Page as i32,
            message_id: id(),
            user_id: "u1".into(),
            name: "Home".into(),
            ..Default::default()
        };
        assert_eq!(send(&engine, src, page), Ok(Stored::Accepted));
    }
}

#[test]
fn traits_missing_required_and_unplanned_properties_are_reported_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    put_plan(&engine, "shop", PLAN);
    let src = source(&engine, "web");
    set_policy(&engine, policy("web", UnplannedEvents::Allow, OnViolation::Omit));
    let identify = Event {
        r#type: EventType::Identify as i32,
        message_id: "i1".into(),
        user_id: "u1".into(),
        traits: br#"{"email": "not an address", "name": "Ann"}"#.to_vec(),
        ..Default::default()
    };
    assert_eq!(send(&engine, src, identify), Ok(Stored::Accepted));
    assert_eq!(object(&last_stored(&engine).traits), json!({"name": "Ann"}));
    assert_eq!(
        send(&engine, src, track("t1", "Order Completed", json!({}))),
        Ok(Stored::Accepted)
    );
    assert_eq!(
        send(
            &engine,
            src,
            track("t2", "Signed Up", json!({"plan": "pro", "coupon": "X"}))
        ),
        Ok(Stored::Accepted)
    );
    assert_eq!(object(&last_stored(&engine).properties), json!({"plan": "pro"}));
    assert_eq!(
        violations(&engine, "web"),
        vec![
            (
                "Order Completed".into(),
                "properties.total".into(),
                "Required".into(),
                1
            ),
            (
                "Signed Up".into(),
                "properties.coupon".into(),
                "Unplanned Property".into(),
                1
            ),
            ("identify".into(), "traits.email".into(), "Invalid Value".into(), 1),
        ]
    );
}

#[test]
fn the_common_schema_checks_the_whole_event() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    put_plan(
        &engine,
        "shop",
        r#"{"common": {"type": "object", "required": ["context"],
             "properties": {"context": {"type": "object", "properties": {"ip": {"format": "ipv4"}}}}}}"#,
    );
    let src = source(&engine, "web");
    set_policy(&engine, policy("web", UnplannedEvents::Allow, OnViolation::Omit));
    let mut event = track("c1", "Anything", json!({"a": 1}));
    event.context = br#"{"ip": "not-an-ip", "locale": "en"}"#.to_vec();
    assert_eq!(send(&engine, src, event), Ok(Stored::Accepted));
    let context = object(&last_stored(&engine).context);
    assert_eq!(context["locale"], json!("en"));
    assert_eq!(context.get("ip"), None, "omitted");
    assert_eq!(context["protocols"]["omitted_on_violation"], json!(["context.ip"]));
    assert_eq!(
        violations(&engine, "web"),
        vec![("Anything".into(), "context.ip".into(), "Common Schema".into(), 1)]
    );
}

#[test]
fn transformations_run_after_validation_and_what_they_make_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    put_plan(&engine, "shop", PLAN);
    let src = source(&engine, "app");
    set_policy(
        &engine,
        SourcePolicy {
            transformations: json!([
                {"rename_property": {"event": "Order Completed", "from": "total", "to": "order.total"}},
                {"rename_event": {"from": "Order Completed", "to": "Order Placed"}},
                {"rename_property": {"from": "order.total", "to": "amount"}},
                {"rename_trait": {"from": "mail", "to": "email"}}
            ])
            .to_string(),
            ..policy("app", UnplannedEvents::Block, OnViolation::Block)
        },
    );
    // Validated as sent (Order Completed is planned), then renamed, in order.
    assert_eq!(
        send(
            &engine,
            src,
            track("r1", "Order Completed", json!({"total": 5, "x": 1}))
        ),
        Ok(Stored::Accepted)
    );
    let stored = last_stored(&engine);
    assert_eq!(stored.event, "Order Placed");
    assert_eq!(object(&stored.properties), json!({"amount": 5, "order": {}, "x": 1}));
    let identify = Event {
        r#type: EventType::Identify as i32,
        message_id: "r2".into(),
        user_id: "u1".into(),
        traits: br#"{"mail": "a@example.com"}"#.to_vec(),
        ..Default::default()
    };
    assert_eq!(send(&engine, src, identify), Ok(Stored::Accepted));
    assert_eq!(object(&last_stored(&engine).traits), json!({"email": "a@example.com"}));
    // A source without transformations or plan stores events byte for byte.
    let plain = source(&engine, "plain");
    let raw = br#"{"b": 1,  "a": 2}"#.to_vec();
    let mut event = track("r3", "Whatever", json!({}));
    event.properties.clone_from(&raw);
    assert_eq!(send(&engine, plain, event), Ok(Stored::Accepted));
    assert_eq!(last_stored(&engine).properties, raw);
}

#[test]
fn policies_and_plans_apply_to_the_next_request_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let src;
    {
        let engine = open(dir.path());
        put_plan(&engine, "shop", PLAN);
        src = source(&engine, "web");
        assert_eq!(
            send(&engine, src, track("a1", "Cart Viewed", json!({}))),
            Ok(Stored::Accepted)
        );
        set_policy(&engine, policy("web", UnplannedEvents::Block, OnViolation::Block));
        assert!(send(&engine, src, track("a2", "Cart Viewed", json!({}))).is_err());
        // A new version applies at once; a retry the plan allows is a duplicate, not a conflict
        // (the fingerprint is of what the client sent).
        let second = put_plan(&engine, "shop", r#"{"events": {"Cart Viewed": {}}}"#);
        assert_eq!(second.version, 2);
        assert_eq!(
            send(&engine, src, track("a1", "Cart Viewed", json!({}))),
            Ok(Stored::Duplicate)
        );
        assert_eq!(
            send(&engine, src, track("a3", "Cart Viewed", json!({}))),
            Ok(Stored::Accepted)
        );
        assert!(send(&engine, src, track("a4", "Order Completed", json!({"total": 1}))).is_err());
        engine.close();
    }
    let engine = open(dir.path());
    assert!(send(&engine, src, track("a5", "Order Completed", json!({"total": 1}))).is_err());
    let request = GetSourcePolicyRequest { source: "web".into() };
    let stored = SourcePolicy::decode(engine.get_source_policy(&request.encode_to_vec()).unwrap().as_slice()).unwrap();
    assert_eq!(stored.plan, "shop");
    assert_eq!(stored.unplanned_events, UnplannedEvents::Block as i32);
}

#[test]
fn bad_policies_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    put_plan(&engine, "shop", PLAN);
    source(&engine, "web");
    let try_set = |policy: SourcePolicy| {
        let request = SetSourcePolicyRequest { policy: Some(policy) };
        engine
            .set_source_policy(&request.encode_to_vec())
            .unwrap_err()
            .to_string()
    };
    let base = policy("web", UnplannedEvents::Allow, OnViolation::Allow);
    assert!(try_set(SourcePolicy {
        plan: "nope".into(),
        ..base.clone()
    })
    .contains("policy.plan: no tracking plan named \"nope\""));
    assert!(try_set(SourcePolicy {
        source: "ghost".into(),
        ..base.clone()
    })
    .contains("no source named \"ghost\""));
    assert!(try_set(SourcePolicy {
        on_violation: 9,
        ..base.clone()
    })
    .contains("policy.on_violation"));
    assert!(try_set(SourcePolicy {
        transformations: "[{\"rename_event\": {\"from\": \"a\"}}]".into(),
        ..base
    })
    .contains("policy.transformations"));
    let request = PutTrackingPlanRequest {
        name: "shop".into(),
        document: "{}".into(),
        create_only: true,
    };
    assert!(engine
        .put_tracking_plan(&request.encode_to_vec())
        .unwrap_err()
        .to_string()
        .contains("already exists"));
}

fn pii_rule(class: &str, action: crate::proto::PiiAction) -> crate::proto::PiiRule {
    crate::proto::PiiRule {
        class: class.into(),
        action: action as i32,
    }
}

#[test]
fn a_source_hashes_or_drops_classes_of_personal_data_before_storing() {
    use crate::proto::{PiiAction, PiiPattern, PiiSettings, SetPiiSettingsRequest};
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let src = source(&engine, "crm");
    let settings = SetPiiSettingsRequest {
        settings: Some(PiiSettings {
            patterns: vec![PiiPattern {
                name: "employee_id".into(),
                value_pattern: "^EMP-[0-9]+$".into(),
                key_pattern: String::new(),
            }],
        }),
    };
    engine.set_pii_settings(&settings.encode_to_vec()).unwrap();
    set_policy(
        &engine,
        SourcePolicy {
            source: "crm".into(),
            pii: vec![
                pii_rule("email", PiiAction::Hash),
                pii_rule("credit_card", PiiAction::Drop),
                pii_rule("employee_id", PiiAction::Drop),
                pii_rule("ip", PiiAction::Keep),
            ],
            ..Default::default()
        },
    );
    let identify = Event {
        r#type: EventType::Identify as i32,
        message_id: "p1".into(),
        user_id: "u1".into(),
        traits: br#"{"email": "Ann@Example.com", "badge": "EMP-7", "plan": "pro"}"#.to_vec(),
        context: br#"{"ip": "10.1.2.3"}"#.to_vec(),
        ..Default::default()
    };
    assert_eq!(send(&engine, src, identify), Ok(Stored::Accepted));
    let stored = last_stored(&engine);
    let hashed = super::pii::hashed(super::pii::Class::Email, &json!("ann@example.com"));
    assert_eq!(object(&stored.traits), json!({"email": hashed, "plan": "pro"}));
    assert_eq!(object(&stored.context), json!({"ip": "10.1.2.3"}), "ip is kept");
    let order = track("p2", "Order Completed", json!({"card": "4111111111111111", "total": 3}));
    assert_eq!(send(&engine, src, order), Ok(Stored::Accepted));
    assert_eq!(object(&last_stored(&engine).properties), json!({"total": 3}));

    // Rules naming a class that does not exist, and removing a pattern in use, are refused.
    let request = SetSourcePolicyRequest {
        policy: Some(SourcePolicy {
            source: "crm".into(),
            pii: vec![pii_rule("ssn", PiiAction::Drop)],
            ..Default::default()
        }),
    };
    let err = engine
        .set_source_policy(&request.encode_to_vec())
        .unwrap_err()
        .to_string();
    assert!(err.contains("policy.pii[0].class: \"ssn\" is not a class"), "{err}");
    let cleared = SetPiiSettingsRequest { settings: None };
    let err = engine
        .set_pii_settings(&cleared.encode_to_vec())
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"employee_id\" is used"), "{err}");
}

#[test]
fn the_inventory_finds_each_class_by_source_and_field_and_keeps_no_value() {
    use crate::proto::{ListPiiInventoryRequest, ListPiiInventoryResponse};
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let web = source(&engine, "web");
    let app = source(&engine, "app");
    for (i, src) in [web, web, app].into_iter().enumerate() {
        let mut event = track(
            &format!("v{i}"),
            "Order Completed",
            json!({"email": "x@example.com", "items": [{"card": "4111 1111 1111 1111"}], "total": 3}),
        );
        event.context = br#"{"ip": "192.168.0.1"}"#.to_vec();
        assert_eq!(send(&engine, src, event), Ok(Stored::Accepted));
    }
    let list = |source: &str| {
        let request = ListPiiInventoryRequest {
            source: source.into(),
            class: String::new(),
        };
        ListPiiInventoryResponse::decode(engine.list_pii_inventory(&request.encode_to_vec()).unwrap().as_slice())
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while list("").classified_through < engine.last_seq() {
        assert!(std::time::Instant::now() < deadline, "the inventory never caught up");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let found = |response: ListPiiInventoryResponse| {
        let mut rows: Vec<_> = response
            .fields
            .into_iter()
            .map(|f| (f.source, f.class, f.field, f.count))
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(
        found(list("web")),
        vec![
            ("web".into(), "credit_card".into(), "properties.items.$.card".into(), 2),
            ("web".into(), "email".into(), "properties.email".into(), 2),
            ("web".into(), "ip".into(), "context.ip".into(), 2),
        ]
    );
    assert_eq!(found(list("")).len(), 6);
    // Values are not kept anywhere in the inventory.
    let store = &engine.shared.store;
    let txn = store.index.read().unwrap();
    for entry in store.index_dbs.pii_inventory.iter(&txn.txn).unwrap() {
        let (key, value) = entry.unwrap();
        for secret in [&b"x@example.com"[..], b"4111", b"192.168"] {
            assert!(!key.windows(secret.len()).any(|w| w == secret));
            assert!(!value.windows(secret.len()).any(|w| w == secret));
        }
    }
}

mod deletion;
