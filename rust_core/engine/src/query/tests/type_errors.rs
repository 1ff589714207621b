//! Type errors (the checker's refusals): position (the first occurrence of the quoted piece of
//! text, see `position_of`) and what the message says was found and expected.

use super::*;

const USERS: Kind = Kind::Users;
const ACCOUNTS: Kind = Kind::Accounts;
const AUDIENCE: Expect = Expect::Audience;
const TRAIT: Expect = Expect::ComputedTrait;

#[test]
fn a_missing_comparator_names_what_was_found() {
    let e = audience_error("event('X').where(trait('a')).count() >= 1");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (1, 28, "expected a comparator such as >= or .at_least(...), found ')'")
    );
    assert_audience_error(
        "trait('a')",
        "",
        "expected a comparator such as >= or .at_least(...), found end of input",
    );
    let e = audience_error("trait('a')");
    assert_eq!((e.line, e.column), (1, 11));
    assert_audience_error(
        "trait('a') AND trait('b') = 1",
        "AND",
        "expected a comparator such as >= or .at_least(...), found 'AND'",
    );
}

#[test]
fn streams_must_be_reduced_before_comparison() {
    assert_audience_error(
        "event('x') >= 3",
        ">=",
        "cannot compare the event stream event('x'): reduce it first, as in .count() >= 3; found '>='",
    );
    assert_audience_error(
        "event('x').within(7 days).at_least(3)",
        "at_least",
        "reduce the event stream first",
    );
    assert_audience_error(
        "event('x').within(7 days)",
        "",
        "expected a reducer and a comparator after the event stream event('x').within(7 days), such as .count() >= 1, found end of input",
    );
    assert_audience_error("trait('a') = event('x')", "", "expected a reducer such as .count()");
    assert_error(
        "event('x').within(7 days)",
        USERS,
        TRAIT,
        "",
        "expected a reducer such as .count()",
    );
}

#[test]
fn lists_only_take_count() {
    assert_audience_error("event('x').unique(property('p')) = 'a'", "=", "cannot compare the list");
    assert_audience_error(
        "event('x').unique(property('p')).contains('a')",
        "contains",
        "only .count() may follow a list",
    );
    assert_audience_error(
        "trait('a') = event('x').unique(property('p'))",
        "",
        "expected .count() after unique(...)",
    );
}

#[test]
fn results_must_match_the_definition() {
    assert_error(
        "trait('a') >= 3",
        USERS,
        TRAIT,
        ">=",
        "a computed trait ends in a value",
    );
    assert_error(
        "trait('a').exists()",
        USERS,
        TRAIT,
        "exists",
        "found the comparator exists(...)",
    );
    assert_error("trait('a') AND trait('b')", USERS, TRAIT, "AND", "found 'AND'");
    assert_error("NOT trait('a')", USERS, TRAIT, "NOT", "found 'NOT'");
    assert_audience_error("trait('a').exists() = true", "=", "nothing may follow a comparator");
    assert_audience_error("trait('a').exists().count()", "count", "cannot follow a comparator");
    assert_audience_error(
        "trait('a') = trait('b').exists()",
        "trait('b')",
        "expected a value to compare with, found the condition",
    );
    assert_audience_error("trait('a').equals(trait('b') = 1)", "trait('b')", "found a condition");
}

#[test]
fn fields_need_an_event_in_scope() {
    assert_audience_error(
        "property('price') > 100",
        "property",
        "property('price') reads the event being filtered, so it is only allowed inside where(...)",
    );
    assert_audience_error(
        "context('page.url').contains('x')",
        "context",
        "context('page.url') reads the event being filtered",
    );
    assert_audience_error(
        "event('A').count() > property('n')",
        "property",
        "only allowed inside where",
    );
    assert_audience_error(
        "event('A').where(property(parent: 'sku') = 1).count() >= 1",
        "property",
        "property(parent: 'sku') reads the enclosing event, so it is only allowed in an event stream nested inside where(...)",
    );
    assert_error(
        "event('A').sum(property(parent: 'n'))",
        USERS,
        TRAIT,
        "property",
        "reads the enclosing event",
    );
    assert_audience_error(
        "event('A').where(context(parent: 'x') = 1).count() >= 1",
        "parent",
        "context(...) takes no 'parent:' label",
    );
}

#[test]
fn parent_windows_need_an_enclosing_event() {
    assert_audience_error(
        "event('A').within(parent: 5 days).count() >= 1",
        "parent",
        "within(parent: …) counts from an enclosing event, so it is only allowed on an event stream nested inside where(...)",
    );
    assert_audience_error(
        "event('A').within(since: 5 days).count() >= 1",
        "since",
        "within(...) takes no 'since:' label",
    );
    assert_audience_error(
        "event('A').between(parent: 1 day, 2 days).count() >= 1",
        "parent",
        "between(...) takes no 'parent:' label",
    );
}

#[test]
fn between_needs_its_start_before_its_end() {
    assert_audience_error(
        "event('A').between(10 days, 7 days).count() >= 1",
        "10 days",
        "between(A, B) needs A shorter than B (events between A and B ago), found 10 days and 7 days",
    );
    assert_audience_error(
        "event('A').between(2 days, 48 hours).count() >= 1",
        "2 days",
        "needs A shorter than B",
    );
    assert_audience_error(
        "event('A').between(2 days).count() >= 1",
        ").count",
        "between(...) needs more arguments, as in between(7 days, 10 days); found ')'",
    );
}

#[test]
fn durations_are_whole_days_or_hours() {
    assert_audience_error("event('A').within(7).count() >= 1", "7", "expected a duration such as 7 days or 12 hours in within(...), as in within(7 days) or within(parent: 5 days), found 7");
    assert_audience_error(
        "event('A').within(1.5 days).count() >= 1",
        "1.5",
        "expected a whole number of days or hours",
    );
    assert_audience_error("event('A').within(-1 days).count() >= 1", "-1", "not negative");
    assert_audience_error(
        "event('A').within(4294967296 days).count() >= 1",
        "429",
        "at most 4294967295",
    );
    assert_audience_error(
        "event('A').within(2 weeks).count() >= 1",
        "weeks",
        "expected days or hours after the number, found 'weeks'",
    );
    assert_audience_error(
        "trait('d').within_last('7 days')",
        "'7",
        "expected a duration such as 7 days",
    );
    assert_audience_error(
        "trait('a') = 7 days",
        "days",
        "expected AND, OR or the end of the definition, found 'days'",
    );
}

#[test]
fn dates_must_be_iso_8601() {
    assert_audience_error(
        "trait('d').before_date('yesterday')",
        "'yesterday'",
        "expected an ISO-8601 date in before_date(...)",
    );
    assert_audience_error(
        "trait('d').after_date('2024-02-30')",
        "'2024",
        "\"2024-02-30\" is not a valid date",
    );
    assert_audience_error(
        "trait('d').after_date('2024-05-01T10:00:00')",
        "'2024",
        "has no time zone",
    );
    assert_audience_error(
        "trait('d').after_date(20240501)",
        "2024",
        "expected a quoted string in after_date(...)",
    );
    assert_audience_error("trait('d').after_date(7 days)", "7 days", "expected a quoted string");
}

#[test]
fn reducers_take_the_arguments_they_need() {
    assert_audience_error(
        "event('A').sum() > 1",
        "sum(|)",
        "sum(...) needs more arguments, as in sum(property('price')); found ')'",
    );
    for name in ["avg", "min", "max", "first", "last", "unique", "mode"] {
        assert_audience_error(
            &format!("event('A').{name}() > 1"),
            &format!("{name}(|)"),
            "needs more arguments",
        );
    }
    assert_audience_error(
        "event('A').count(property('p')) > 1",
        "property",
        "count() takes no argument: expected ')', found property('p')",
    );
    assert_audience_error(
        "event('A').sum(trait('x')) > 1",
        "trait",
        "expected property('name') or context('path') in sum(...)",
    );
    assert_audience_error(
        "event('A').sum(property('a'), property('b')) > 1",
        "property('b')",
        "too many arguments to sum(...)",
    );
    assert_audience_error(
        "event('A').sum(property('a') as string) > 1",
        "string",
        "sum(...) takes no 'as' type",
    );
    assert_audience_error(
        "event('A').max(property('a') as array) > 1",
        "array",
        "expected number or string after 'as' in max(...), found 'array'",
    );
    assert_audience_error(
        "event('A').mode(property('a') as text, 1) = 1",
        "text",
        "expected string or number or array after 'as'",
    );
}

#[test]
fn mode_needs_a_minimum_frequency_of_at_least_one() {
    assert_audience_error(
        "event('A').mode(property('p'), 0) = 'x'",
        "0",
        "expected a minimum frequency, a whole number of at least 1, in mode(...)",
    );
    assert_audience_error(
        "event('A').mode(property('p'), 1.5) = 'x'",
        "1.5",
        "a whole number of at least 1",
    );
    assert_audience_error(
        "event('A').mode(property('p'), 'two') = 'x'",
        "'two'",
        "a minimum frequency",
    );
    assert_audience_error(
        "event('A').mode(property('p')) = 'x'",
        "'p')|)",
        "mode(...) needs more arguments",
    );
    assert_audience_error(
        "event('A').mode(property('p'), 2, 3) = 'x'",
        "3)",
        "too many arguments to mode(...)",
    );
}

#[test]
fn comparators_take_the_arguments_they_need() {
    assert_audience_error("trait('a').exists(1)", "1", "exists() takes no argument");
    assert_audience_error("trait('a').equals()", "equals(|)", "equals(...) needs more arguments");
    assert_audience_error("trait('a').equals(1, 2)", "2", "too many arguments to equals(...)");
    assert_audience_error(
        "trait('a').contains()",
        "contains(|)",
        "contains(...) needs more arguments",
    );
    assert_audience_error(
        "trait('a').contains('x', 5)",
        "5",
        "expected a quoted string in contains(...)",
    );
    assert_audience_error(
        "trait('a').starts_with(trait('b'))",
        "trait('b')",
        "expected a quoted string in starts_with(...)",
    );
    assert_audience_error(
        "trait('a').one_of(trait('b'))",
        "trait('b')",
        "expected a constant such as 'text', 5 or true in one_of(...)",
    );
    assert_audience_error(
        "trait('a').at_least(3 days)",
        "3 days",
        "expected an expression, not a duration,",
    );
    assert_audience_error(
        "trait('a').equals(1 as string)",
        "string",
        "equals(...) takes no 'as' type",
    );
}

#[test]
fn extractors_take_one_quoted_name() {
    assert_audience_error(
        "event(parent: 'x').count() >= 1",
        "parent",
        "event(...) takes no 'parent:' label",
    );
    assert_audience_error("trait('x' as number) = 1", "number", "trait(...) takes no 'as' type");
    assert_audience_error(
        "event('A').where(property('x' as string) = 1).count() >= 1",
        "string",
        "property(...) takes no 'as' type",
    );
    assert_audience_error("event(Shoes).count() >= 1", "Shoes", "expected '(' after 'Shoes'");
    assert_audience_error(
        "event(5).count() >= 1",
        "5",
        "expected a quoted string in event(...), as in event('Order Completed'), found 5",
    );
    assert_audience_error("trait() = 1", "trait(|)", "trait(...) needs more arguments");
    assert_audience_error("trait('a', 'b') = 1", "'b'", "too many arguments to trait(...)");
    assert_audience_error("literal(trait('a')) = 1", "trait", "expected a constant");
}

#[test]
fn functions_must_be_known_and_in_place() {
    assert_audience_error(
        "traits('a') = 1",
        "traits",
        "unknown function traits(...): expected event, trait, property, context or literal",
    );
    assert_audience_error(
        "count() >= 1",
        "count",
        "count(...) must follow an event stream, as in event('Name').count(...)",
    );
    assert_audience_error("exists()", "exists", "exists(...) must follow a value");
    assert_audience_error(
        "event('A').total() >= 1",
        "total",
        "total(...) is not a function of the language",
    );
    assert_audience_error(
        "trait('a').within(7 days) = 1",
        "within",
        "within(...) applies to an event stream",
    );
    assert_audience_error("trait('a').count() = 1", "count", "applies to an event stream");
}

#[test]
fn sources_need_exclude() {
    assert_audience_error(
        "event('A').sources('a').count() >= 1",
        "'a'",
        "expected 'exclude:' before the source ids in sources(...)",
    );
    assert_audience_error(
        "event('A').sources(include: 'a').count() >= 1",
        "include",
        "sources(...) takes no 'include:' label",
    );
    assert_audience_error(
        "event('A').sources(exclude: 'a', exclude: 'b').count() >= 1",
        "exclude: 'b'",
        "takes no 'exclude:' label",
    );
    assert_audience_error(
        "event('A').sources().count() >= 1",
        "sources(|)",
        "sources(...) needs more arguments",
    );
    assert_audience_error(
        "event('A').sources(exclude: 5).count() >= 1",
        "exclude",
        "expected a quoted string in sources(...)",
    );
}

#[test]
fn any_and_all_only_at_the_top_of_account_audiences() {
    assert_audience_error("ANY (trait('a') = 1)", "ANY", "ANY is only for ACCOUNTS definitions");
    assert_error(
        "trait('x') = 1 OR ALL trait('a') = 1",
        USERS,
        AUDIENCE,
        "ALL",
        "ALL is only for ACCOUNTS definitions",
    );
    assert_error(
        "event('A').where(ANY (trait('a') = 1)).count() >= 1",
        ACCOUNTS,
        AUDIENCE,
        "ANY",
        "ANY cannot appear inside where(...)",
    );
    assert_error(
        "ANY (ALL (trait('a') = 1))",
        ACCOUNTS,
        AUDIENCE,
        "ALL",
        "ALL cannot be nested inside ANY or ALL",
    );
    assert_error(
        "NOT ANY (NOT ALL trait('a') = 1)",
        ACCOUNTS,
        AUDIENCE,
        "ALL",
        "cannot be nested",
    );
}

#[test]
fn at_most_fifty_primary_expressions() {
    let fifty_one = vec!["trait('a') = 1"; 51].join(" AND ");
    let e = audience_error(&fifty_one);
    // The 51st trait call: 50 parts of 14 characters and 50 " AND " before it.
    assert_eq!((e.line, e.column), (1, 50 * 14 + 50 * 5 + 1));
    assert!(
        e.message.contains(
            "at most 50 primary expressions (event, trait, property and context calls), and this is number 51"
        ),
        "{e}"
    );
    // Calls nested in where(...) and reducers count too: 1 event + 24 × 2 + 1 sum argument = 50.
    let wheres = vec!["property('p') = trait('t')"; 24].join(" AND ");
    audience(&format!("event('E').where({wheres}).sum(property('q')) > 1"));
    let e = audience_error(&format!(
        "event('E').where({wheres}).sum(property('q')) > trait('limit')"
    ));
    assert_eq!(
        e.column as usize,
        position_of(
            &format!("event('E').where({wheres}).sum(property('q')) > trait('limit')"),
            "trait('limit')"
        )
        .1 as usize
    );
}

#[test]
fn windows_and_relative_dates_need_at_least_one_unit() {
    for (text, at) in [
        ("event('A').within(0 days).count() >= 1", "0 days"),
        (
            "event('A').where(event('B').within(parent: 0 hours).count() >= 1).count() >= 1",
            "parent: 0 hours",
        ),
        ("trait('t').within_last(0 days)", "0 days"),
        ("trait('t').after_next(0 hours)", "0 hours"),
    ] {
        assert_audience_error(text, at, "a duration of at least 1 hour or 1 day");
    }
    // between(...) starts at 0: "the last 7 days, now excluded".
    audience("event('A').between(0 days, 7 days).count() >= 1");
}
