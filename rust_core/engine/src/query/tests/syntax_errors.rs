//! Lexical and syntax errors: position (the first occurrence of the quoted piece of text, see
//! `position_of`) and what the message says was found and expected; multi-line positions and
//! the caret.

use super::*;

const USERS: Kind = Kind::Users;
const TRAIT: Expect = Expect::ComputedTrait;

#[test]
fn lexical_errors_point_at_the_character() {
    assert_audience_error("trait('a') = 1 # note", "#", "the query language has no comments");
    assert_audience_error("trait('a') = 1 // note", "/", "no comments");
    assert_audience_error("trait('a') = @", "@", "unexpected character '@'");
    assert_audience_error("trait('a) = 1", "'a", "string not closed: expected a closing '");
    assert_audience_error("trait(\"a) = 1", "\"a", "string not closed: expected a closing \"");
    assert_audience_error(r"trait('a\q') = 1", r"\q", r"unknown escape \q");
    assert_audience_error(
        "trait('a') = 99999999999999999999",
        "999",
        "number 99999999999999999999 is out of range",
    );
    assert_audience_error("trait('a') ! 1", "!", "expected '!=' (differs) or NOT");
}

#[test]
fn syntax_errors_say_what_was_expected() {
    assert_audience_error("", "", "empty definition");
    assert_audience_error("   \n  ", "", "empty definition");
    let e = audience_error("   \n  ");
    assert_eq!((e.line, e.column), (2, 3));
    assert_audience_error(
        "trait('a') = 1 trait('b') = 2",
        "trait('b')",
        "expected AND, OR or the end of the definition, found 'trait'",
    );
    assert_audience_error(
        "(trait('a') = 1",
        "",
        "expected AND, OR or ')' to close the '(' at line 1, column 1, found end of input",
    );
    // An argument is an expression, so `'a' = 1` is read as one: the missing ')' shows at the end.
    assert_audience_error(
        "trait('a' = 1",
        "",
        "expected ',' or ')' after an argument of trait(, found end of input",
    );
    assert_audience_error(
        "trait('a' 'b') = 1",
        "'b'",
        "expected ',' or ')' after an argument of trait(, found 'b'",
    );
    assert_audience_error("trait 'a' = 1", "trait", "expected '(' after 'trait'");
    assert_audience_error("plan = 'pro'", "plan", "strings need quotes");
    assert_audience_error(
        "trait('a').",
        "",
        "expected a function name after '.', such as count, found end of input",
    );
    assert_audience_error(
        "trait('a') = 1 AND",
        "",
        "expected an expression such as event('Name'), trait('name') or a value, found end of input",
    );
    assert_audience_error(
        "AND trait('a') = 1",
        "AND",
        "expected an expression such as event('Name').count() >= 1",
    );
    assert_audience_error("trait('a') = = 1", "= 1", "found '='");
    assert_audience_error(
        "event('E').min(property('p') as)",
        "as|)",
        "expected a type after 'as': number, string or array, found ')'",
    );
    assert_audience_error("trait('a',) = 1", ")", "expected an expression");
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}trait('a') = 1{}", "(".repeat(100), ")".repeat(100));
    let e = audience_error(&deep);
    assert_eq!((e.line, e.column), (1, 33));
    assert!(e.message.contains("nesting deeper than 32 levels"), "{e}");
    let nots = format!("{}trait('a') = 1", "NOT ".repeat(1000));
    assert!(audience_error(&nots).message.contains("nesting deeper"));
    let calls = format!("{}1{}", "literal(".repeat(100), ")".repeat(100));
    assert!(error(&calls, USERS, TRAIT).message.contains("nesting deeper"));
}

#[test]
fn the_deepest_accepted_nesting_fits_a_small_stack() {
    // 32 levels, each a where(...) holding the next stream (the costliest nesting to check),
    // parsed, checked, rendered and dropped on a 256 KiB stack.
    let mut text = "trait('a') = 1".to_string();
    for _ in 0..super::super::parser::MAX_NESTING - 1 {
        text = format!("event('E').where({text}).count() >= 1");
    }
    let deepest = text.clone();
    let definition = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let d = parse_audience(&deepest, Kind::Users).unwrap();
            assert_eq!(render(&d), deepest);
            d.primary_expressions()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(definition, 32);
    // One more level is refused.
    let e = audience_error(&format!("event('E').where({text}).count() >= 1"));
    assert!(e.message.contains("nesting deeper than 32 levels"), "{e}");
}

#[test]
fn errors_on_later_lines_give_their_line_and_column() {
    let text = "trait('plan') = 'pro'\nAND event('Order Completed')\n\t.within(30 weeks)\n  .count() >= 3";
    let e = audience_error(text);
    assert_eq!((e.line, e.column), (3, 13));
    assert_eq!(e.message, "expected days or hours after the number, found 'weeks'");
    assert_eq!(
        e.to_string(),
        "line 3, column 13: expected days or hours after the number, found 'weeks'"
    );
    assert_eq!(e.caret(text), "\t.within(30 weeks)\n\t           ^");

    let text = "event('A')\r\n  .count() >=\r\n";
    let e = audience_error(text);
    assert_eq!((e.line, e.column), (3, 1));
    assert_eq!(e.caret(text), "\n^");

    // Columns count characters, not bytes.
    let text = "trait('é✓') = 1 AND trait('a') ? 2";
    let e = audience_error(text);
    assert_eq!((e.line, e.column), (1, 32));
    assert_eq!(e.caret(text), format!("{text}\n{}^", " ".repeat(31)));
}

#[test]
fn the_first_error_wins() {
    // Both the event name and the window are wrong: the first, reading left to right, is reported.
    assert_audience_error("event(1).within(2 weeks).count() >= 1", "1", "expected a quoted string");
    // A syntax error anywhere comes before any type error.
    assert_audience_error("property('p') = 1 AND trait('a' = 1", "", "expected ',' or ')'");
}
