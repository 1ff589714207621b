use super::super::iso_datetime::{is_timestamp_text, parse_datetime, write_postgres_timestamp};
use super::super::number_text::{parse_python_float, parse_python_int, write_json_float, write_python_float};

fn json_float(value: f64) -> String {
    let mut out = Vec::new();
    write_json_float(&mut out, value);
    String::from_utf8(out).unwrap()
}

fn python_float(value: f64) -> String {
    let mut out = Vec::new();
    write_python_float(&mut out, value);
    String::from_utf8(out).unwrap()
}

#[test]
fn floats_are_spelt_as_orjson_and_python_spell_them() {
    // (value, orjson.dumps, repr)
    let cases = [
        (1e16, "1e+16", "1e+16"),
        (1e15, "1000000000000000.0", "1000000000000000.0"),
        (0.0001, "0.0001", "0.0001"),
        (0.00001, "0.00001", "1e-05"),
        (1e-6, "1e-6", "1e-06"),
        (2.5e-6, "2.5e-6", "2.5e-06"),
        (1.5, "1.5", "1.5"),
        (12.0, "12.0", "12.0"),
        (-0.0, "-0.0", "-0.0"),
        (0.0, "0.0", "0.0"),
        (0.1 + 0.2, "0.30000000000000004", "0.30000000000000004"),
        (
            1.2345678901234568e20,
            "1.2345678901234568e+20",
            "1.2345678901234568e+20",
        ),
        (5e-324, "5e-324", "5e-324"),
        (
            1.7976931348623157e308,
            "1.7976931348623157e+308",
            "1.7976931348623157e+308",
        ),
        (9999000000000000.0, "9999000000000000.0", "9999000000000000.0"),
        (1.23e-18, "1.23e-18", "1.23e-18"),
        (-42.5, "-42.5", "-42.5"),
    ];
    for (value, orjson, repr) in cases {
        assert_eq!(json_float(value), orjson, "{value:e}");
        assert_eq!(python_float(value), repr, "{value:e}");
    }
}

#[test]
fn strings_cast_to_integers_as_python_int_reads_them() {
    let cases = [
        ("42", Some(42)),
        (" 42 ", Some(42)),
        ("+7", Some(7)),
        ("-0", Some(0)),
        ("007", Some(7)),
        ("1_000", Some(1000)),
        ("١٢", Some(12)),
        ("\u{3000}5\u{2028}", Some(5)),
        ("9223372036854775807", Some(i64::MAX)),
        ("9223372036854775808", None), // past bigint
        ("1__0", None),
        ("_1", None),
        ("1_", None),
        ("1.0", None),
        ("abc", None),
        ("", None),
        ("-", None),
        ("\x1c5", None), // str.isspace, but not stripped by int()
        ("4\u{0}2", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_python_int(text), expected, "{text:?}");
    }
}

#[test]
fn strings_cast_to_doubles_as_python_float_reads_them() {
    let cases = [
        ("2.5", Some(2.5)),
        (" 1e3 ", Some(1000.0)),
        (".5", Some(0.5)),
        ("5.", Some(5.0)),
        ("1.e5", Some(100000.0)),
        ("-1_000.5", Some(-1000.5)),
        ("1e1_0", Some(1e10)),
        ("１２.５", Some(12.5)),
        ("inf", None),
        ("nan", None),
        ("1e400", None),
        ("1._5", None),
        (".", None),
        ("e5", None),
        ("0x10", None),
        ("", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_python_float(text), expected, "{text:?}");
    }
}

#[test]
fn date_times_parse_as_python_fromisoformat_with_utc_for_no_zone() {
    // (text, microseconds since the Unix epoch per datetime.fromisoformat, zone-less as UTC)
    let cases = [
        ("2024-05-01T12:00:00Z", Some(1_714_564_800_000_000)),
        ("2024-05-01", Some(1_714_521_600_000_000)),
        ("20240501", Some(1_714_521_600_000_000)),
        ("2024-W18-3", Some(1_714_521_600_000_000)),
        ("2024W183", Some(1_714_521_600_000_000)),
        ("2024-W18", Some(1_714_348_800_000_000)),
        ("2024-05-01T12:00:00.123456789+02:00", Some(1_714_557_600_123_456)),
        ("2024-05-01 12:00", Some(1_714_564_800_000_000)),
        ("2024-05-01X1200", Some(1_714_564_800_000_000)),
        ("2024-05-01T12:00:00:30", Some(1_714_564_800_300_000)),
        ("2024-05-01T12:00:00.5+00:00:00.5", Some(1_714_564_800_500_000)),
        ("2024-05-01T12:00:00-00:30", Some(1_714_566_600_000_000)),
        ("2024-05-01é12:00Z", Some(1_714_564_800_000_000)),
        ("2020-W53-1", Some(1_609_113_600_000_000)),
        ("0001-01-01T00:00:00Z", Some(-62_135_596_800_000_000)),
        ("9999-12-31T23:59:59.999999Z", Some(253_402_300_799_999_999)),
        ("2024-05-01T12", Some(1_714_564_800_000_000)),
        ("2024-05-01T12:00:00+24:00", None),
        ("2024-05-01T24:00:00Z", None),
        ("2024-02-30T12:00:00Z", None),
        ("2024-05-01T12:00:00z", None),
        ("2021-W53-1", None),
        ("soon", None),
        ("2024-05", None),
        ("2024-05-01T", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_datetime(text), expected, "{text:?}");
    }
}

#[test]
fn only_rfc3339_date_times_make_a_timestamp_column() {
    for text in [
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00.123+02:00",
        "2024-05-01 12:00Z",
        "2024-05-01T12:00:00+0200",
    ] {
        assert!(is_timestamp_text(text), "{text:?}");
    }
    for text in [
        "2024-05-01",
        "2024-05-01T12:00:00",
        "2024-02-30T12:00:00Z",
        "2024-05-01T12:00:00z", // the pattern takes it, Python's parser does not
        "2024-05-01T12:00:00.1234567891Z",
        "hello",
    ] {
        assert!(!is_timestamp_text(text), "{text:?}");
    }
}

#[test]
fn timestamps_are_written_as_postgres_reads_them() {
    let mut out = Vec::new();
    write_postgres_timestamp(&mut out, 1_714_557_600_123_456);
    assert_eq!(out, b"2024-05-01 10:00:00.123456+00");
    out.clear();
    write_postgres_timestamp(&mut out, -62_135_596_800_000_000 - 3_600_000_000);
    assert_eq!(out, b"0001-12-31 23:00:00.000000+00 BC");
}
