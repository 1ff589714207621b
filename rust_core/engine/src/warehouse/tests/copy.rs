use super::super::copy::encode_table;
use super::{field, loaded, plan_json, read_binary_copy, table_index, Field, LOAD_TIME_UNIX_MICROS};

fn casts(data_type: &str, values: &str) -> (Vec<Field>, u64) {
    let events: Vec<String> = values
        .split('|')
        .enumerate()
        .map(|(i, value)| format!(r#"{{"type":"track","messageId":"m{i}","event":"E","properties":{{"v":{value}}}}}"#))
        .collect();
    let plan = plan_json(&format!("[{}]", events.join(",")));
    let (rows, encoded) = loaded(&plan, "e", &[("v", data_type)]);
    let nulled = encoded.nulled.iter().find(|(c, _)| c == "v").map_or(0, |(_, n)| *n);
    (rows.iter().map(|row| field(row, "v").clone()).collect(), nulled)
}

#[test]
fn values_cast_to_their_columns_type_or_go_in_as_null_and_are_counted() {
    use Field::*;
    let text = |s: &str| Text(s.to_owned());
    assert_eq!(
        casts(
            "bigint",
            r#"1|"42"|3.0|1.5|true|"abc"|18446744073709551615|" 7 "|-9.223372036854776e18"#
        ),
        (
            vec![
                Bigint(1),
                Bigint(42),
                Bigint(3),
                Null,
                Null,
                Null,
                Null,
                Bigint(7),
                Bigint(i64::MIN)
            ],
            4
        )
    );
    assert_eq!(
        casts("double precision", r#"1.5|2|"2.5"|"abc"|false|"nan""#),
        (vec![Double(1.5), Double(2.0), Double(2.5), Null, Null, Null], 3)
    );
    assert_eq!(
        casts("boolean", r#"true|"false"|1|"yes"|" TRUE ""#),
        (vec![Boolean(true), Boolean(false), Null, Null, Boolean(true)], 2)
    );
    assert_eq!(
        casts(
            "text",
            r#""a"|42|1.5|true|["x",1]|1e-5|18446744073709551615|"a\u0000b""#
        ),
        (
            vec![
                text("a"),
                text("42"),
                text("1.5"),
                text("true"),
                text(r#"["x",1]"#),
                text("1e-05"),
                text("18446744073709551615"),
                text("ab")
            ],
            0
        )
    );
    let noon = (1_714_564_800 - 946_684_800) * 1_000_000;
    assert_eq!(
        casts(
            "timestamp with time zone",
            r#""2024-05-01T12:00:00Z"|"2024-05-01T12:00:00"|"2024-05-01T14:00:00+02:00"|"soon"|5"#
        ),
        (vec![Timestamp(noon), Timestamp(noon), Timestamp(noon), Null, Null], 2)
    );
}

#[test]
fn a_binary_payload_has_the_signature_one_tuple_a_row_and_the_trailer() {
    let plan = plan_json(r#"[{"type":"alias","messageId":"m1","previousId":"p"}]"#);
    let encoded = encode_table(&plan, 0, &["text", "text"], LOAD_TIME_UNIX_MICROS).unwrap();
    let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flags, header extension
    expected.extend_from_slice(&3i16.to_be_bytes()); // id, previous_id, uuid_ts
    expected.extend_from_slice(&[0, 0, 0, 2]);
    expected.extend_from_slice(b"m1");
    expected.extend_from_slice(&[0, 0, 0, 1]);
    expected.extend_from_slice(b"p");
    expected.extend_from_slice(&[0, 0, 0, 8]);
    expected.extend_from_slice(&((LOAD_TIME_UNIX_MICROS - 946_684_800_000_000).to_be_bytes()));
    expected.extend_from_slice(&(-1i16).to_be_bytes());
    assert_eq!(encoded.payload, expected);
    assert!(encoded.binary && encoded.nulled.is_empty());
}

#[test]
fn a_column_of_a_type_made_by_hand_makes_the_payload_text_for_the_server_to_cast() {
    let plan = plan_json(
        r#"[{"type":"track","messageId":"m1","event":"E","properties":{"total":19.999,"n":"7","when":"2024-05-01T14:00:00+02:00","ok":true,"note":"a\\b\tc\nd\re"}},
            {"type":"track","messageId":"m2","event":"E","properties":{"total":"n/a","n":"x"}}]"#,
    );
    let index = table_index(&plan, "e");
    let columns: Vec<&str> = plan.columns(index).into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        columns,
        ["event", "event_text", "id", "n", "note", "ok", "total", "when"]
    );
    let types = [
        "text",
        "text",
        "text",
        "bigint",
        "character varying",
        "boolean",
        "numeric",
        "timestamp with time zone",
    ];
    let encoded = encode_table(&plan, index, &types, LOAD_TIME_UNIX_MICROS).unwrap();
    assert!(!encoded.binary);
    let text = String::from_utf8(encoded.payload).unwrap();
    assert_eq!(
        text,
        "e\tE\tm1\t7\ta\\\\b\\tc\\nd\\re\tt\t19.999\t2024-05-01 12:00:00.000000+00\t2024-05-01 12:00:00.000000+00\n\
         e\tE\tm2\t\\N\t\\N\t\\N\tn/a\t\\N\t2024-05-01 12:00:00.000000+00\n"
    );
    // "n/a" goes to the server as it is (it fails the batch there); "x" did not fit bigint here.
    assert_eq!(encoded.nulled, [("n".to_owned(), 1)]);
}

#[test]
fn encoding_refuses_a_table_or_type_list_the_plan_does_not_have() {
    let plan = plan_json(r#"[{"type":"alias","messageId":"m1"}]"#);
    assert!(encode_table(&plan, 1, &["text"], 0).is_err());
    assert!(encode_table(&plan, 0, &["text", "text"], 0).is_err());
}

#[test]
fn every_row_ends_with_the_load_time() {
    let plan = plan_json(r#"[{"type":"alias","messageId":"m1"},{"type":"alias","messageId":"m2"}]"#);
    let encoded = encode_table(&plan, 0, &["text"], 0).unwrap();
    let rows = read_binary_copy(&encoded.payload, &["text", "timestamp with time zone"]);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|row| row[1] == Field::Timestamp(-946_684_800_000_000)));
}
