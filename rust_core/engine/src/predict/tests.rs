use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::proto::{Batch, Event};
use crate::{time, EngineConfig};

const DAY: i64 = 86_400_000;
/// 2020-01-01T00:00:00Z: every event of these tests is years before it arrives.
const T0: i64 = 1_577_836_800_000;

fn open(dir: &std::path::Path) -> Engine {
    Engine::open(EngineConfig::new(dir)).unwrap()
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
    assert!(outcome.rejections.is_empty(), "{:?}", outcome.rejections);
}

fn track(id: &str, user: &str, name: &str, ms: i64, revenue: Option<f64>) -> Event {
    Event {
        r#type: EventType::Track as i32,
        message_id: id.into(),
        user_id: user.into(),
        event: name.into(),
        timestamp: Some(time::from_ms(ms)),
        properties: revenue.map_or_else(Vec::new, |r| serde_json::to_vec(&json!({ "revenue": r })).unwrap()),
        ..Default::default()
    }
}

fn identify(id: &str, user: &str, traits: serde_json::Value, ms: i64) -> Event {
    Event {
        r#type: EventType::Identify as i32,
        message_id: id.into(),
        user_id: user.into(),
        timestamp: Some(time::from_ms(ms)),
        traits: serde_json::to_vec(&traits).unwrap(),
        ..Default::default()
    }
}

fn rows(engine: &Engine, names: &[&str], cutoff_ms: i64, label: Option<LabelRequest>) -> Table {
    engine
        .prediction_rows(&RowsRequest {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            traits: vec!["score".into(), "vip".into()],
            cutoff_ms,
            population: None,
            profiles: None,
            label,
            probe_leak: false,
            audit: false,
            max_profiles: None,
        })
        .unwrap()
}

/// The row of `user`'s profile, by column name.
fn row_of(engine: &Engine, table: &Table, user: &str) -> std::collections::BTreeMap<String, f32> {
    let state = engine.shared.profiles.lock();
    let identifier = crate::identifiers::Identifier::new("user_id", user);
    let root = state.graph.linked_root(&identifier).expect("a profile");
    let id = state.graph.id_at(root).unwrap().0;
    let at = table.ids.iter().position(|&i| i == id).expect("a row");
    let width = table.columns.len();
    table
        .columns
        .iter()
        .cloned()
        .zip(table.values[at * width..(at + 1) * width].iter().copied())
        .collect()
}

#[test]
fn a_rows_columns_are_what_its_known_events_say() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let t = T0 + 100 * DAY;
    send(
        &engine,
        vec![
            track("a1", "ann", "Order Completed", T0, Some(10.0)),
            track("a2", "ann", "Order Completed", t - 20 * DAY, Some(5.5)),
            track("a3", "ann", "Order Completed", t - 20 * DAY + 1, None),
            track("a4", "ann", "Viewed", t - 3 * DAY, None),
            track("a5", "ann", "Order Completed", t + 1, Some(1000.0)), // after the cutoff
            track("b1", "bob", "Viewed", t + DAY, None),                // only after: no row
        ],
    );
    let table = rows(&engine, &["Order Completed", "Viewed"], t, None);
    assert_eq!(table.ids.len(), 1, "bob had nothing by the cutoff");
    let ann = row_of(&engine, &table, "ann");
    let order = |c: &str| ann[&format!("Order Completed.{c}")];
    assert_eq!(
        (
            order("count_7d"),
            order("count_30d"),
            order("count_90d"),
            order("count_all")
        ),
        (0.0, 2.0, 2.0, 3.0)
    );
    assert_eq!((order("active_days_all"), order("active_days_365d")), (2.0, 2.0));
    assert_eq!(
        (order("days_since_last"), order("days_since_first")),
        (20.0 - 1.0 / DAY as f32, 100.0)
    );
    assert_eq!((order("revenue_30d"), order("revenue_all")), (5.5, 15.5));
    assert_eq!((order("week_2"), order("week_0")), (2.0, 0.0));
    assert_eq!(ann["Viewed.week_0"], 1.0);
    assert_eq!(
        (ann["tenure_days"], ann["days_since_last"], ann["events_total"]),
        (100.0, 3.0, 4.0)
    );
    assert_eq!(ann["gap_mean_days"], 97.0 / 3.0);
    assert_eq!(ann["gap_last_days"], 17.0 - 1.0 / DAY as f32);
    assert!(ann["Viewed.days_since_first"] == 3.0 && ann["Viewed.revenue_all"] == 0.0);
}

#[test]
fn an_event_that_came_after_the_log_passed_the_cutoff_counts_only_later() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let t = T0 + 10 * DAY;
    send(&engine, vec![track("a1", "ann", "Order Completed", T0, None)]);
    send(&engine, vec![track("c1", "cat", "Viewed", t + DAY, None)]); // the log passes t
                                                                      // Late: it happened before t, but came after the log had passed it.
    send(&engine, vec![track("a2", "ann", "Order Completed", t - DAY, None)]);
    let at_t = row_of(&engine, &rows(&engine, &["Order Completed"], t, None), "ann");
    assert_eq!(at_t["Order Completed.count_all"], 1.0);
    let later = row_of(&engine, &rows(&engine, &["Order Completed"], t + 2 * DAY, None), "ann");
    assert_eq!(later["Order Completed.count_all"], 2.0);
}

#[test]
fn a_trait_column_holds_the_value_known_at_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let t = T0 + 10 * DAY;
    send(
        &engine,
        vec![
            track("a1", "ann", "Viewed", T0, None),
            identify("a2", "ann", json!({"score": 3, "vip": true}), T0 + DAY),
            identify("a3", "ann", json!({"score": "4.5"}), T0 + 2 * DAY),
            track("b1", "bob", "Viewed", T0, None),
            identify("b2", "bob", json!({"score": "n/a"}), T0),
        ],
    );
    // After the cutoff: ann's score changes, and a late call dated before it is not known then.
    send(
        &engine,
        vec![identify("a4", "ann", json!({"score": 9, "vip": false}), t + DAY)],
    );
    send(&engine, vec![identify("a5", "ann", json!({"score": 7}), t - DAY)]);
    let at_t = rows(&engine, &["Viewed"], t, None);
    let ann = row_of(&engine, &at_t, "ann");
    assert_eq!(
        (ann["trait.score"], ann["trait.vip"]),
        (4.5, 1.0),
        "read back from the log"
    );
    assert!(row_of(&engine, &at_t, "bob")["trait.score"].is_nan(), "not a number");
    let now = row_of(&engine, &rows(&engine, &["Viewed"], t + 2 * DAY, None), "ann");
    assert_eq!((now["trait.score"], now["trait.vip"]), (9.0, 0.0), "the index's latest");
}

#[test]
fn labels_come_from_the_horizon_after_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let t = T0 + 50 * DAY;
    send(
        &engine,
        vec![
            track("a1", "ann", "Viewed", T0, None),
            track("b1", "bob", "Viewed", T0, None),
            track("c1", "cat", "Viewed", T0, None),
            track("b2", "bob", "Order Completed", t - DAY, Some(9.0)), // before the cutoff
        ],
    );
    send(
        &engine,
        vec![
            track("a2", "ann", "Order Completed", t + 5 * DAY, Some(30.0)),
            track("a3", "ann", "Order Completed", t + 40 * DAY, Some(70.0)), // past the horizon
            track("c2", "cat", "Order Completed", t + 2 * DAY, Some(1.0)),
        ],
    );
    let label = |condition: &str, negate| LabelRequest {
        horizon_ms: 30 * DAY,
        condition: Some(condition.to_owned()),
        negate,
        revenue_of: None,
    };
    let by_user = |table: &Table| -> Vec<(String, f64)> {
        ["ann", "bob", "cat"]
            .iter()
            .map(|user| {
                let state = engine.shared.profiles.lock();
                let root = state
                    .graph
                    .linked_root(&crate::identifiers::Identifier::new("user_id", user))
                    .unwrap();
                let id = state.graph.id_at(root).unwrap().0;
                let at = table.ids.iter().position(|&i| i == id).unwrap();
                ((*user).to_owned(), table.labels[at])
            })
            .collect()
    };
    let goal = "event('Order Completed').within(30 days).count() >= 1";
    let bought = rows(&engine, &["Viewed"], t, Some(label(goal, false)));
    assert_eq!(
        by_user(&bought),
        [("ann".into(), 1.0), ("bob".into(), 0.0), ("cat".into(), 1.0)]
    );
    let filtered = "event('Order Completed').where(property('revenue') > 10).within(30 days).count() >= 1";
    let big = rows(&engine, &["Viewed"], t, Some(label(filtered, false)));
    assert_eq!(
        by_user(&big),
        [("ann".into(), 1.0), ("bob".into(), 0.0), ("cat".into(), 0.0)]
    );
    let churned = rows(&engine, &["Viewed"], t, Some(label(goal, true)));
    assert_eq!(
        by_user(&churned),
        [("ann".into(), 0.0), ("bob".into(), 1.0), ("cat".into(), 0.0)]
    );
    let value = rows(
        &engine,
        &["Viewed"],
        t,
        Some(LabelRequest {
            horizon_ms: 30 * DAY,
            condition: None,
            negate: false,
            revenue_of: Some(vec!["Order Completed".into()]),
        }),
    );
    assert_eq!(
        by_user(&value),
        [("ann".into(), 30.0), ("bob".into(), 0.0), ("cat".into(), 1.0)]
    );
}

#[test]
fn a_sample_keeps_about_max_profiles_and_the_same_ones_at_every_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let orders = (0..2_000).map(|p| {
        track(
            &format!("o{p}"),
            &format!("u{p}"),
            "Order Completed",
            T0 + (p % 50) * DAY,
            None,
        )
    });
    send(&engine, orders.collect());
    let sample = |cutoff_ms: i64, max_profiles: Option<u64>| {
        engine
            .prediction_rows(&RowsRequest {
                names: vec!["Order Completed".into()],
                traits: Vec::new(),
                cutoff_ms,
                population: None,
                profiles: None,
                label: None,
                probe_leak: false,
                audit: false,
                max_profiles,
            })
            .unwrap()
            .ids
    };
    let everyone = sample(T0 + 60 * DAY, None);
    assert_eq!(everyone.len(), 2_000);
    assert_eq!(sample(T0 + 60 * DAY, Some(5_000)), everyone);
    let some = sample(T0 + 60 * DAY, Some(500));
    assert!((400..=600).contains(&some.len()), "{} rows", some.len());
    // At an earlier cutoff, the profiles of the sample that had an event by then.
    let earlier = sample(T0 + 20 * DAY, Some(500));
    assert!(!earlier.is_empty() && earlier.len() < some.len());
    assert!(earlier.iter().all(|id| some.contains(id)));
}

#[test]
fn the_leak_guard_finds_a_column_that_reads_past_the_cutoff_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let t = T0 + 60 * DAY;
    let user = |person: i64| format!("u{person}");
    let orders = (0..40).map(|p| track(&format!("o{p}"), &user(p), "Order Completed", T0 + p * DAY, Some(2.0)));
    send(&engine, orders.collect());
    let views = (0..40).map(|p| track(&format!("v{p}"), &user(p), "Viewed", t + 1 + p * 3_600_000, None));
    send(&engine, views.collect());
    let audited = |probe_leak| {
        engine
            .prediction_rows(&RowsRequest {
                names: vec!["Order Completed".into(), "Viewed".into()],
                traits: Vec::new(),
                cutoff_ms: t,
                population: None,
                profiles: None,
                label: None,
                probe_leak,
                audit: true,
                max_profiles: None,
            })
            .unwrap()
    };
    assert_eq!(audited(false).leaky, Vec::<String>::new());
    assert_eq!(audited(true).leaky, vec!["Viewed.leak_after_cutoff".to_owned()]);
}

/// Rows and score writes give the graph lock up after every profile while ingest waits: they
/// still go through every profile, and come out the same.
#[test]
fn rows_and_scores_made_while_ingest_waits_are_those_made_alone() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let users: Vec<String> = (0..40).map(|k| format!("u{k}")).collect();
    let events = users
        .iter()
        .enumerate()
        .flat_map(|(k, user)| {
            (0..=k % 3).map(move |n| track(&format!("{user}-{n}"), user, "Viewed", T0 + n as i64 * DAY, None))
        })
        .collect();
    send(&engine, events);
    let alone = rows(&engine, &["Viewed"], T0 + 5 * DAY, None);
    engine.shared.profiles.pretend_ingest_waits(true);
    let yielding = rows(&engine, &["Viewed"], T0 + 5 * DAY, None);
    let scores: Vec<Value> = (0..alone.ids.len()).map(|k| json!(k)).collect();
    let columns = vec![("buy_decile".to_owned(), scores)];
    let written = engine.write_prediction_scores("buy", time::now_ms(), &alone.ids, &columns);
    engine.shared.profiles.pretend_ingest_waits(false);
    assert_eq!(alone.ids.len(), users.len());
    let bits = |table: &Table| table.values.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    assert_eq!(yielding.ids, alone.ids);
    assert!(bits(&yielding) == bits(&alone), "the same rows, NaN for NaN");
    assert_eq!(written.unwrap(), (users.len() as u64, 0, 0));
    let again = engine.write_prediction_scores("buy", time::now_ms(), &alone.ids, &columns);
    assert_eq!(again.unwrap(), (0, users.len() as u64, 0), "every score was written");
}

#[test]
fn scores_become_traits_once_and_do_not_move_the_logs_clock() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    send(
        &engine,
        vec![
            track("a1", "ann", "Viewed", T0, None),
            track("b1", "bob", "Viewed", T0, None),
        ],
    );
    let table = rows(&engine, &["Viewed"], T0 + DAY, None);
    let clock = engine.shared.profiles.lock().engage.clock.clone();
    let columns = vec![
        ("buy_probability".to_owned(), vec![json!(0.25), json!(0.75)]),
        ("buy_decile".to_owned(), vec![json!(3), json!(8)]),
    ];
    let now = time::now_ms();
    assert_eq!(
        engine
            .write_prediction_scores("buy", now, &table.ids, &columns)
            .unwrap(),
        (2, 0, 0)
    );
    assert_eq!(
        engine
            .write_prediction_scores("buy", now, &table.ids, &columns)
            .unwrap(),
        (0, 2, 0)
    );
    let state = engine.shared.profiles.lock();
    assert_eq!(state.engage.clock, clock, "the scores' calls are Engage's own");
    drop(state);
    let value = |user: &str, name: &str| {
        engine
            .with_run(now, |run| {
                let graph = run.ev.graph;
                let root = graph
                    .linked_root(&crate::identifiers::Identifier::new("user_id", user))
                    .unwrap();
                let id = graph.id_at(root).unwrap().0;
                let row = table.ids.iter().position(|&i| i == id).unwrap();
                Ok((row, run.ev.user_trait(graph.members_at(root), name)))
            })
            .unwrap()
    };
    for user in ["ann", "bob"] {
        let (row, probability) = value(user, "buy_probability");
        assert_eq!(probability, Some(columns[0].1[row].clone()));
        assert_eq!(value(user, "buy_decile").1, Some(columns[1].1[row].clone()));
    }
}

/// Each user's profile id now.
fn ids_by_user(engine: &Engine) -> Vec<(String, Option<u128>)> {
    let state = engine.shared.profiles.lock();
    (0..6)
        .map(|user| {
            let identifier = crate::identifiers::Identifier::new("user_id", &format!("u{user}"));
            let id = state
                .graph
                .linked_root(&identifier)
                .and_then(|root| state.graph.id_at(root));
            (format!("u{user}"), id.map(|id| id.0))
        })
        .collect()
}

/// Each user's row (its values' bits), if any.
fn bits_by_user(table: &Table, ids: &[(String, Option<u128>)]) -> Vec<(String, Option<Vec<u32>>)> {
    let width = table.columns.len();
    ids.iter()
        .map(|(user, id)| {
            let row = id.and_then(|id| table.ids.iter().position(|&i| i == id));
            let bits = row.map(|at| {
                table.values[at * width..(at + 1) * width]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            });
            (user.clone(), bits)
        })
        .collect()
}

/// An event of the property test: (user, name, days after T0, revenue).
fn arb_event() -> impl Strategy<Value = (u8, u8, i64, Option<u16>)> {
    (0u8..6, 0u8..3, 0i64..200, proptest::option::of(0u16..500))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever comes after the log's clock has passed the cutoff — late events dated before it,
    /// events after it, new names, revenue — the rows at the cutoff stay bit-for-bit the same.
    #[test]
    fn events_known_after_the_cutoff_leave_its_rows_unchanged(
        before in proptest::collection::vec(arb_event(), 1..40),
        after in proptest::collection::vec(arb_event(), 0..40),
        cutoff_day in 1i64..200,
    ) {
        let names = ["Order Completed", "Viewed", "Signed Up"];
        // A third of the events set the trait `score` instead (to the revenue drawn, or null).
        let event = |tag: &str, i: usize, (user, name, day, revenue): (u8, u8, i64, Option<u16>)| {
            let (id, user, ms) = (format!("{tag}{i}"), format!("u{user}"), T0 + day * DAY + i as i64);
            if i % 3 == 2 {
                return identify(&id, &user, json!({ "score": revenue }), ms);
            }
            track(&id, &user, names[usize::from(name)], ms, revenue.map(f64::from))
        };
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path());
        let t = T0 + cutoff_day * DAY;
        send(&engine, before.iter().enumerate().map(|(i, e)| event("b", i, *e)).collect());
        // The log's clock passes the cutoff.
        send(&engine, vec![track("pass", "u0", "Viewed", t + 1_000, None)]);
        let first = rows(&engine, &names, t, None);
        let first_ids = ids_by_user(&engine);
        send(&engine, after.iter().enumerate().map(|(i, e)| event("a", i, *e)).collect());
        let again = rows(&engine, &names, t, None);
        let again_ids = ids_by_user(&engine);
        // By person: a late event dated first changes which event names a profile (its id).
        prop_assert_eq!(first.ids.len(), again.ids.len());
        prop_assert_eq!(first.columns.len() * first.ids.len(), first.values.len());
        prop_assert_eq!(bits_by_user(&first, &first_ids), bits_by_user(&again, &again_ids));
    }
}

#[test]
fn records_are_kept_listed_by_prefix_and_deleted_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let put = |key: &str, value: Option<&[u8]>| (key.to_owned(), value.map(<[u8]>::to_vec));
    engine
        .put_prediction_records(&[
            put("buy/model", Some(b"m")),
            put("buy/report", Some(b"r")),
            put("buyer/x", Some(b"x")),
        ])
        .unwrap();
    let keys = |prefix: &str| -> Vec<String> {
        engine
            .prediction_records(prefix)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(
        keys(""),
        ["buy/model", "buy/report", "buyer/x"],
        "an empty prefix lists everything"
    );
    assert_eq!(keys("buy/"), ["buy/model", "buy/report"]);
    // A filter sees every key under the prefix, in order; only the ones it takes are copied.
    let mut seen = Vec::new();
    let taken = engine
        .prediction_records_where("", |key| {
            seen.push(key.to_owned());
            key.ends_with("/report")
        })
        .unwrap();
    assert_eq!(seen, ["buy/model", "buy/report", "buyer/x"]);
    assert_eq!(taken, [("buy/report".to_owned(), b"r".to_vec())]);
    engine.put_prediction_records(&[put("buy/report", None)]).unwrap();
    assert_eq!(keys("buy/"), ["buy/model"]);
    assert_eq!(engine.delete_prediction_records("buy/").unwrap(), 1);
    assert_eq!(keys(""), ["buyer/x"]);
}
