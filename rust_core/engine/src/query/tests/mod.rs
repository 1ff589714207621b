//! Tests of the query language: every construct (`constructs.rs`), canonical rendering
//! (`rendering.rs`), every error with its position and message (`syntax_errors.rs`,
//! `type_errors.rs`), and properties over random trees and random text (`properties.rs`). The
//! helpers below check the round trip on every definition they parse.

mod constructs;
mod properties;
mod rendering;
mod syntax_errors;
mod type_errors;

use super::*;

/// Parses a `USERS` audience, checking that its rendering parses back to the same tree.
fn audience(text: &str) -> Condition {
    match parsed(text, Kind::Users, Expect::Audience).body {
        Body::Audience(condition) => condition,
        Body::ComputedTrait(_) => unreachable!(),
    }
}

/// Parses an `ACCOUNTS` audience, checking its round trip.
fn accounts(text: &str) -> Condition {
    match parsed(text, Kind::Accounts, Expect::Audience).body {
        Body::Audience(condition) => condition,
        Body::ComputedTrait(_) => unreachable!(),
    }
}

/// Parses a `USERS` computed trait, checking its round trip.
fn computed(text: &str) -> Scalar {
    match parsed(text, Kind::Users, Expect::ComputedTrait).body {
        Body::ComputedTrait(scalar) => scalar,
        Body::Audience(_) => unreachable!(),
    }
}

fn parsed(text: &str, kind: Kind, expect: Expect) -> Definition {
    let definition =
        parse(text, kind, expect).unwrap_or_else(|e| panic!("{text:?} should parse, got {e}\n{}", e.caret(text)));
    let rendered = render(&definition);
    let again = parse(&rendered, kind, expect)
        .unwrap_or_else(|e| panic!("rendering {rendered:?} of {text:?} should parse, got {e}"));
    assert_eq!(again, definition, "{text:?} rendered as {rendered:?}");
    definition
}

/// The error a `USERS` audience gives.
fn audience_error(text: &str) -> QueryError {
    error(text, Kind::Users, Expect::Audience)
}

fn error(text: &str, kind: Kind, expect: Expect) -> QueryError {
    match parse(text, kind, expect) {
        Ok(definition) => panic!("{text:?} should be refused, parsed as {definition:?}"),
        Err(e) => {
            assert!(position_inside(text, &e), "{e} is outside {text:?}");
            e
        }
    }
}

/// Line and column (1-based, in characters) of the first occurrence of `needle`; with a `|`
/// in it, of the character after the `|` (`"sum(|)"`: the `)` of `sum()`); `""` means the end.
fn position_of(text: &str, needle: &str) -> (u32, u32) {
    let (prefix, rest) = needle.split_once('|').unwrap_or(("", needle));
    let offset = if needle.is_empty() {
        text.len()
    } else {
        let whole = format!("{prefix}{rest}");
        text.find(&whole).unwrap_or_else(|| panic!("{whole:?} not in {text:?}")) + prefix.len()
    };
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() as u32 + 1)
}

/// Asserts that `text`, as a `USERS` audience, fails at the first `at` with a message
/// containing `message`.
#[track_caller]
fn assert_audience_error(text: &str, at: &str, message: &str) {
    assert_error(text, Kind::Users, Expect::Audience, at, message);
}

#[track_caller]
fn assert_error(text: &str, kind: Kind, expect: Expect, at: &str, message: &str) {
    let e = error(text, kind, expect);
    assert_eq!((e.line, e.column), position_of(text, at), "{e} in {text:?}");
    assert!(e.message.contains(message), "{:?} lacks {message:?}", e.message);
}

/// The error's line exists and its column is at most one past that line's last character.
fn position_inside(text: &str, e: &QueryError) -> bool {
    let lines: Vec<&str> = text.split('\n').collect();
    e.line >= 1
        && e.column >= 1
        && (e.line as usize) <= lines.len()
        && (e.column as usize) <= lines[e.line as usize - 1].chars().count() + 1
}

// Builders for expected trees.

fn trait_(name: &str) -> Scalar {
    Scalar::Trait(name.to_string())
}

fn int(n: i64) -> Scalar {
    Scalar::Literal(Literal::Integer(n))
}

fn text(s: &str) -> Scalar {
    Scalar::Literal(Literal::String(s.to_string()))
}

fn property(name: &str) -> Field {
    Field::Property(name.to_string())
}

fn days(n: u32) -> Duration {
    Duration::new(n, TimeUnit::Days)
}

fn reduced(name: &str, filters: Vec<Filter>, reducer: Reducer) -> Scalar {
    Scalar::Reduced(Box::new(Reduction {
        stream: EventStream {
            name: name.to_string(),
            filters,
        },
        reducer,
    }))
}

fn compare(subject: Scalar, comparator: Comparator) -> Condition {
    Condition::Compare(Comparison { subject, comparator })
}

/// `event(name).count() >= n`
fn count_at_least(name: &str, n: i64) -> Condition {
    compare(reduced(name, vec![], Reducer::Count), Comparator::AtLeast(int(n)))
}
