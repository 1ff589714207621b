use super::super::plan::plan_batch;
use super::super::schema::{ColumnType, TableKind};
use super::{field, loaded, plan_json, Field};

fn names(plan: &super::BatchPlan) -> Vec<&str> {
    plan.tables().iter().map(|table| table.name()).collect()
}

fn text(value: &str) -> Field {
    Field::Text(value.to_owned())
}

#[test]
fn each_call_type_lands_in_its_tables_in_first_use_order() {
    let plan = plan_json(
        r#"[{"type":"identify","messageId":"m1","userId":"u1","traits":{"plan":"pro"}},
            {"type":"page","messageId":"m2","name":"Home"},
            {"type":"track","messageId":"m3","event":"Signed Up"},
            {"type":"screen","messageId":"m4","name":"Dash"},
            {"type":"group","messageId":"m5","groupId":"g1"},
            {"type":"alias","messageId":"m6","previousId":"a1"},
            {"type":"track","messageId":"m7","event":"Order Completed"},
            {"type":"bogus","messageId":"m8"},
            {"messageId":"m9"}]"#,
    );
    assert_eq!(
        names(&plan),
        [
            "identifies",
            "pages",
            "tracks",
            "signed_up",
            "screens",
            "groups",
            "aliases",
            "order_completed",
            "users"
        ]
    );
    assert_eq!(plan.skipped_events(), 2);
    let kinds: Vec<TableKind> = plan.tables().iter().map(|table| table.kind()).collect();
    assert_eq!(kinds[2], TableKind::Track);
    assert_eq!(kinds[8], TableKind::User);
    let (rows, _) = loaded(&plan, "tracks", &[]);
    assert_eq!(rows.len(), 2);
    assert_eq!(field(&rows[1], "event"), &text("order_completed"));
    assert_eq!(field(&rows[1], "event_text"), &text("Order Completed"));
}

#[test]
fn the_row_id_is_the_batchs_message_id_not_the_events() {
    let plan = plan_batch(br#"[{"type":"alias","messageId":"ignored"}]"#, &["given"]).unwrap();
    let (rows, _) = loaded(&plan, "aliases", &[]);
    assert_eq!(field(&rows[0], "id"), &text("given"));
    assert!(plan_batch(b"[]", &["one"]).is_err());
    assert!(plan_batch(b"[{}]", &[] as &[&str]).is_err());
}

#[test]
fn columns_are_sorted_and_typed_by_fixed_type_else_first_value() {
    let plan = plan_json(
        r#"[{"type":"track","messageId":"m1","event":"E","timestamp":5,"properties":{"b":null,"a":"x"},
             "context":{"when":"2024-05-01T12:00:00Z"}},
            {"type":"track","messageId":"m2","event":"E","properties":{"b":1.5,"a":1}}]"#,
    );
    let columns = plan.columns(1);
    assert_eq!(
        columns,
        [
            ("a", ColumnType::Text),
            ("b", ColumnType::Double),
            ("context_when", ColumnType::Timestamp),
            ("event", ColumnType::Text),
            ("event_text", ColumnType::Text),
            ("id", ColumnType::Text),
            ("timestamp", ColumnType::Timestamp), // fixed, whatever its first value
        ]
    );
}

#[test]
fn flattening_stops_at_three_levels_and_keeps_arrays_whole() {
    let plan = plan_json(
        r#"[{"type":"track","messageId":"m1","event":"E",
             "properties":{"a":{"b":{"c":{"d":1}}},"tags":["x",{"y":null}],"o":{},"n":null,"camelCase":{"innerKey":true}}}]"#,
    );
    let (rows, _) = loaded(&plan, "e", &[]);
    assert_eq!(field(&rows[0], "a_b_c"), &text(r#"{"d":1}"#));
    assert_eq!(field(&rows[0], "tags"), &text(r#"["x",{"y":null}]"#));
    assert_eq!(field(&rows[0], "camel_case_inner_key"), &Field::Boolean(true));
    let columns: Vec<&str> = plan.columns(1).into_iter().map(|(name, _)| name).collect();
    assert!(!columns.contains(&"o") && !columns.contains(&"n"));
}

#[test]
fn reserved_columns_are_discarded_and_counted_per_table_kind() {
    let plan = plan_json(
        r#"[{"type":"track","messageId":"m1","event":"E","properties":{"id":1,"event":2,"context":{"ip":3},"name":4}},
            {"type":"page","messageId":"m2","properties":{"name":"P","event":5,"user":{"id":6}}},
            {"type":"identify","messageId":"m3","traits":{"name":"N","uuid_ts":7,"groupId":8}},
            {"type":"group","messageId":"m4","groupId":"g","traits":{"group_id":9,"name":"G"}}]"#,
    );
    // Track: id, event, context_ip. Page: name, user_id. Identify: uuid_ts. Group: group_id.
    assert_eq!(plan.discarded(), 7);
    let (rows, _) = loaded(&plan, "e", &[]);
    assert_eq!(field(&rows[0], "name"), &Field::Bigint(4));
    assert_eq!(field(&rows[0], "id"), &text("m1"));
    let (rows, _) = loaded(&plan, "pages", &[]);
    assert_eq!(field(&rows[0], "name"), &text("P")); // the properties' name, as the call has none
    assert_eq!(field(&rows[0], "event"), &Field::Bigint(5));
    let (rows, _) = loaded(&plan, "identifies", &[]);
    assert_eq!(field(&rows[0], "group_id"), &Field::Bigint(8));
}

#[test]
fn a_pages_name_is_the_calls_unless_empty_and_ids_are_text() {
    let plan = plan_json(
        r#"[{"type":"page","messageId":"m1","name":"","properties":{"name":7}},
            {"type":"page","messageId":"m2","name":0,"properties":{"name":null}},
            {"type":"page","messageId":"m3","name":["Home"],"userId":42,"anonymousId":""},
            {"type":"page","messageId":"m4","name":"Call","userId":1.0,"anonymousId":false,"properties":{"name":"Props"}}]"#,
    );
    let (rows, _) = loaded(&plan, "pages", &[]);
    let named: Vec<&Field> = rows.iter().map(|row| field(row, "name")).collect();
    assert_eq!(named, [&text("7"), &Field::Null, &text(r#"["Home"]"#), &text("Call")]);
    let users: Vec<&Field> = rows.iter().map(|row| field(row, "user_id")).collect();
    assert_eq!(users, [&Field::Null, &Field::Null, &text("42"), &text("1.0")]);
    assert_eq!(field(&rows[2], "anonymous_id"), &Field::Null);
    assert_eq!(field(&rows[3], "anonymous_id"), &text("false"));
}

#[test]
fn users_fold_newest_first_and_older_calls_fill_gaps() {
    let plan = plan_json(
        r#"[{"type":"identify","messageId":"m1","userId":"u1","timestamp":"2024-05-01T10:00:00Z","traits":{"plan":"free","email":"a@x"}},
            {"type":"identify","messageId":"m2","userId":"u2","receivedAt":"2024-05-01T08:00:00Z","traits":{"plan":"team"}},
            {"type":"identify","messageId":"m3","userId":"u1","timestamp":"2024-05-01T12:00:00Z","traits":{"plan":"pro"}},
            {"type":"identify","messageId":"m4","userId":"u1","timestamp":"2024-05-01T09:00:00Z","traits":{"plan":"trial","company":"Initech"}},
            {"type":"identify","messageId":"m5","userId":"","traits":{"plan":"x"}},
            {"type":"identify","messageId":"m6","anonymousId":"a","traits":{"plan":"y"}}]"#,
    );
    let (rows, _) = loaded(&plan, "users", &[]);
    assert_eq!(rows.len(), 2);
    // 2024-05-01T00:00Z is 767,836,800 s after 2000-01-01.
    let at = |hour: i64| Field::Timestamp((767_836_800 + hour * 3600) * 1_000_000);
    assert_eq!(field(&rows[0], "id"), &text("u1"));
    assert_eq!(field(&rows[0], "plan"), &text("pro"));
    assert_eq!(field(&rows[0], "email"), &text("a@x"));
    assert_eq!(field(&rows[0], "company"), &text("Initech"));
    assert_eq!(field(&rows[0], "timestamp"), &at(12));
    // Without a timestamp, the receipt time stands in for it.
    assert_eq!(field(&rows[1], "id"), &text("u2"));
    assert_eq!(field(&rows[1], "timestamp"), &at(8));
    assert_eq!(field(&rows[1], "received_at"), &at(8));
    let columns: Vec<&str> = plan.columns(1).into_iter().map(|(name, _)| name).collect();
    assert!(!columns.contains(&"anonymous_id"));
}

#[test]
fn a_repeated_key_counts_once_with_its_last_value() {
    let plan = plan_json(
        r#"[{"type":"track","messageId":"m1","event":"E","event":"F","properties":{"a":1,"a":null,"id":1,"id":2,"firstName":"x","first_name":"y"}}]"#,
    );
    assert_eq!(plan.tables()[1].name(), "f");
    assert_eq!(plan.discarded(), 1);
    let (rows, _) = loaded(&plan, "f", &[]);
    assert_eq!(field(&rows[0], "a"), &Field::Null);
    assert_eq!(field(&rows[0], "first_name"), &text("y"));
}
