use super::super::names::{column_name, digest, event_table_name, fit_identifier, snake_case, MAX_IDENTIFIER_BYTES};

/// go-snakecase's own test table (segmentio/go-snakecase snake_test.go).
const GO_SNAKECASE_SAMPLES: [(&str, &str); 17] = [
    ("sample text", "sample_text"),
    ("sample-text", "sample_text"),
    ("sample_text", "sample_text"),
    ("sample___text", "sample_text"),
    ("sampleText", "sample_text"),
    ("inviteYourCustomersAddInvites", "invite_your_customers_add_invites"),
    ("sample 2 Text", "sample_2_text"),
    ("   sample   2    Text   ", "sample_2_text"),
    ("   $#$sample   2    Text   ", "sample_2_text"),
    ("SAMPLE 2 TEXT", "sample_2_text"),
    ("___$$Base64Encode", "base64_encode"),
    ("FOO:BAR$BAZ", "foo_bar_baz"),
    ("FOO#BAR#BAZ", "foo_bar_baz"),
    ("something.com", "something_com"),
    ("$something%", "something"),
    ("•¶§ƒ˚foo˙∆˚¬", "foo"),
    ("sample2Text", "sample_2text"), // the quirk kept on purpose
];

#[test]
fn snake_case_matches_go_snakecase() {
    for (name, expected) in GO_SNAKECASE_SAMPLES {
        assert_eq!(snake_case(name), expected, "{name:?}");
    }
}

#[test]
fn digests_are_the_python_loaders() {
    // hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    assert_eq!(digest(""), "1271cf25");
    assert_eq!(digest("日本語"), "2f370c8e");
    assert_eq!(digest("中文"), "3d8bb7a3");
    assert_eq!(digest("$"), "ff80dd40");
    assert_eq!(digest(&"x".repeat(100)), "02a82d32");
}

#[test]
fn names_without_a_letter_or_digit_become_digests() {
    assert_eq!(column_name("", "$"), "_ff80dd40");
    assert_eq!(column_name("context", ""), "context__1271cf25");
    assert_eq!(event_table_name("日本語"), "event_2f370c8e");
    assert_eq!(event_table_name(""), "event_1271cf25");
}

#[test]
fn event_tables_never_take_a_fixed_tables_name() {
    assert_eq!(event_table_name("Order Completed"), "order_completed");
    assert_eq!(event_table_name("Users"), "_users");
    assert_eq!(event_table_name("tracks"), "_tracks");
    assert_eq!(event_table_name("Pages"), "_pages");
}

#[test]
fn long_names_keep_54_bytes_and_a_digest_of_the_whole() {
    let long = "x".repeat(100);
    let fitted = fit_identifier(long.clone());
    assert_eq!(fitted, format!("{}_{}", &long[..54], digest(&long)));
    assert_eq!(fitted.len(), MAX_IDENTIFIER_BYTES);
    let column = column_name("context", &long);
    assert_eq!(
        column,
        format!("context_{}_{}", &long[..46], digest(&format!("context_{long}")))
    );
    let a = event_table_name("Checkout Step Viewed With A Very Long Suffix That Keeps Going And Going A");
    let b = event_table_name("Checkout Step Viewed With A Very Long Suffix That Keeps Going And Going B");
    assert!(a.len() <= MAX_IDENTIFIER_BYTES && b.len() <= MAX_IDENTIFIER_BYTES);
    assert_ne!(a, b);
    assert_eq!(fit_identifier("a".repeat(63)), "a".repeat(63));
}

#[test]
fn nested_keys_join_their_parents_name() {
    assert_eq!(column_name("context_library", "name"), "context_library_name");
    assert_eq!(column_name("", "firstName"), "first_name");
    assert_eq!(column_name("product_id", "SKU"), "product_id_sku");
}
