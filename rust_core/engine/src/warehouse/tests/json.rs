use super::super::json::{get, unique_members, ArrayReader, Document, JsonError, Node};
use super::super::json_text::{append_json, Nul};

/// Each element of a JSON array, re-written as the loader writes JSON text.
fn rewritten(input: &str) -> Result<Vec<String>, JsonError> {
    let mut pool = input.as_bytes().to_vec();
    let mut doc = Document::default();
    let mut reader = ArrayReader::new(input.as_bytes())?;
    let mut out = Vec::new();
    while let Some(node) = reader.next_element(&mut doc, &mut pool)? {
        let start = pool.len();
        append_json(&mut pool, &doc, node, Nul::Escape);
        out.push(String::from_utf8(pool[start..].to_vec()).unwrap());
    }
    Ok(out)
}

#[test]
fn numbers_read_as_orjson_reads_them() {
    let input = "[0, -0, 42, -9223372036854775808, 9223372036854775808, 18446744073709551615, \
                 18446744073709551616, 1.5, 1E2, -0.0, 1e-7]";
    let elements = rewritten(input).unwrap();
    assert_eq!(
        elements,
        [
            "0",
            "0",
            "42",
            "-9223372036854775808",
            "9223372036854775808",
            "18446744073709551615",
            "1.8446744073709552e+19",
            "1.5",
            "100.0",
            "-0.0",
            "1e-7"
        ]
    );
}

#[test]
fn json_text_is_compact_with_orjsons_escapes() {
    let input = r#"[ { "a" : [ 1 , "x\/y\u00e9\ud83d\ude00" ] , "b\n" : "\u0001\b\f\n\r\t\"\\\u007f" } ]"#;
    assert_eq!(
        rewritten(input).unwrap(),
        // DEL (U+007F) and non-ASCII stay as they are.
        ["{\"a\":[1,\"x/yé😀\"],\"b\\n\":\"\\u0001\\b\\f\\n\\r\\t\\\"\\\\\u{7f}\"}"]
    );
    // A NUL: escaped in an id's text, left out of a column's JSON.
    let input = r#"["a\u0000b"]"#;
    assert_eq!(rewritten(input).unwrap(), [r#""a\u0000b""#]);
    let mut pool = input.as_bytes().to_vec();
    let mut doc = Document::default();
    let node = ArrayReader::new(input.as_bytes())
        .unwrap()
        .next_element(&mut doc, &mut pool)
        .unwrap()
        .unwrap();
    let start = pool.len();
    append_json(&mut pool, &doc, node, Nul::Drop);
    assert_eq!(&pool[start..], br#""ab""#);
}

#[test]
fn a_repeated_key_keeps_its_first_place_and_last_value() {
    assert_eq!(
        rewritten(r#"[{"a":1,"b":2,"a":3}, {"k":{"x":1,"x":null}}]"#).unwrap(),
        [r#"{"a":3,"b":2}"#, r#"{"k":{"x":null}}"#]
    );
    let input = r#"[{"a":1,"b":2,"a":3}]"#;
    let mut pool = input.as_bytes().to_vec();
    let mut doc = Document::default();
    let Some(Node::Object { first, len }) = ArrayReader::new(input.as_bytes())
        .unwrap()
        .next_element(&mut doc, &mut pool)
        .unwrap()
    else {
        panic!("an object")
    };
    let members = doc.members(first, len);
    assert_eq!(unique_members(members, &pool).len(), 2);
    assert_eq!(get(members, &pool, "a"), Some(Node::Int(3)));
    assert_eq!(get(members, &pool, "c"), None);
}

#[test]
fn what_is_not_strict_json_is_refused_with_its_offset() {
    for (input, reason) in [
        ("{}", "expected a JSON array"),
        ("[1,]", "expected a value"),
        ("[01]", "leading zero in a number"),
        ("[1e400]", "number is infinite as a double"),
        ("[\"\\ud800\"]", "lone surrogate in \\u escape"),
        ("[\"a\nb\"]", "control character in a string"),
        ("[NaN]", "expected a value"),
        ("[1] 2", "trailing characters after the array"),
        ("[\"abc", "unterminated string"),
        ("[{\"a\" 1}]", "expected ':'"),
        ("[tru]", "invalid literal"),
    ] {
        assert_eq!(rewritten(input).unwrap_err().reason, reason, "{input:?}");
    }
    assert_eq!(rewritten("[1,]").unwrap_err().offset, 3);
    assert_eq!(ArrayReader::new(b"[\"\xff\"]").err().map(|e| e.offset), Some(2));
    let deep = format!("[{}{}]", "[".repeat(1100), "]".repeat(1100));
    assert_eq!(rewritten(&deep).unwrap_err().reason, "nested too deep");
}

#[test]
fn an_empty_array_has_no_elements() {
    assert_eq!(rewritten(" [ ] ").unwrap(), Vec::<String>::new());
}
