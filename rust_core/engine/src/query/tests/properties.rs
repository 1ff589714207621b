//! Properties over random input:
//! - every valid tree (generated within the checker's rules) renders to text that parses back
//!   to the same tree, and rendering is stable;
//! - no text (random bytes, soups of the language's own tokens, valid definitions cut short or
//!   with a character changed) makes parsing panic, and every error lies inside the text.

use proptest::prelude::*;

use super::*;

/// What a generated node may use where it stands (mirrors the checker's `Scope`).
#[derive(Clone, Copy)]
struct At {
    events: u32,
    aggregate: bool,
}

impl At {
    fn inside_event(self) -> At {
        At {
            events: self.events + 1,
            aggregate: false,
        }
    }
}

/// Any text, with the characters that need escaping over-represented.
fn any_text() -> BoxedStrategy<String> {
    prop_oneof!["[a-zA-Z _.]{0,12}", "[\\\\'\"\\n\\t\\r a-z]{0,8}", "\\PC{0,8}",].boxed()
}

fn literal() -> BoxedStrategy<Literal> {
    prop_oneof![
        any_text().prop_map(Literal::String),
        any::<i64>().prop_map(Literal::Integer),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(Literal::Decimal),
        (-1000i32..1000, 1u32..5).prop_map(|(n, d)| Literal::Decimal(f64::from(n) / f64::from(d))),
        any::<bool>().prop_map(Literal::Bool),
    ]
    .boxed()
}

/// A duration as `between` takes it (0 allowed).
fn duration() -> BoxedStrategy<Duration> {
    (
        prop_oneof![0u32..100, any::<u32>()],
        prop_oneof![Just(TimeUnit::Days), Just(TimeUnit::Hours)],
    )
        .prop_map(|(amount, unit)| Duration::new(amount, unit))
        .boxed()
}

/// A duration of at least one unit, as windows and relative dates take them.
fn positive_duration() -> BoxedStrategy<Duration> {
    duration().prop_filter("at least one unit", |d| d.amount > 0).boxed()
}

/// A date as text with the instant it denotes, computed here with chrono.
fn date() -> BoxedStrategy<Date> {
    (
        1i32..=9999,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        -12i32..=12,
        any::<bool>(),
    )
        .prop_map(|(year, month, day, hour, minute, offset_hours, date_only)| {
            let naive = chrono::NaiveDate::from_ymd_opt(year, month, day).unwrap();
            if date_only {
                let epoch_ms = naive.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
                return Date {
                    text: format!("{year:04}-{month:02}-{day:02}"),
                    epoch_ms,
                };
            }
            let local = naive.and_hms_opt(hour, minute, 0).unwrap().and_utc().timestamp_millis();
            let sign = if offset_hours < 0 { '-' } else { '+' };
            Date {
                text: format!(
                    "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:00{sign}{:02}:00",
                    offset_hours.abs()
                ),
                epoch_ms: local - i64::from(offset_hours) * 3_600_000,
            }
        })
        .prop_filter("years 0001 to 9999 in UTC", |d| {
            (-62_135_596_800_000..=253_402_300_799_000).contains(&d.epoch_ms)
        })
        .boxed()
}

fn field(at: At) -> BoxedStrategy<Field> {
    let mut options = vec![
        any_text().prop_map(Field::Property).boxed(),
        any_text().prop_map(Field::Context).boxed(),
    ];
    if at.events >= 2 {
        options.push(any_text().prop_map(Field::ParentProperty).boxed());
    }
    proptest::strategy::Union::new(options).boxed()
}

/// Reducers that give a single value (not `unique(...)`, a list).
fn reducer(at: At) -> BoxedStrategy<Reducer> {
    let f = field(at.inside_event());
    let number_or_string = prop_oneof![Just(ValueType::Number), Just(ValueType::String)];
    let any_type = prop_oneof![Just(ValueType::Number), Just(ValueType::String), Just(ValueType::Array)];
    prop_oneof![
        Just(Reducer::Count),
        f.clone().prop_map(Reducer::Sum),
        f.clone().prop_map(Reducer::Avg),
        (f.clone(), number_or_string.clone()).prop_map(|(field, compare_as)| Reducer::Min { field, compare_as }),
        (f.clone(), number_or_string).prop_map(|(field, compare_as)| Reducer::Max { field, compare_as }),
        (f.clone(), 1u32..10, any_type).prop_map(|(field, min_frequency, compare_as)| Reducer::Mode {
            field,
            min_frequency,
            compare_as
        }),
        f.clone().prop_map(Reducer::First),
        f.clone().prop_map(Reducer::Last),
        f.prop_map(Reducer::UniqueCount),
    ]
    .boxed()
}

fn filter(at: At, depth: u32) -> BoxedStrategy<Filter> {
    let mut options = vec![
        positive_duration().prop_map(Filter::Within).boxed(),
        (duration(), duration())
            .prop_filter("a shorter start", |(a, b)| a.millis() != b.millis())
            .prop_map(|(a, b)| {
                if a.millis() < b.millis() {
                    Filter::Between(a, b)
                } else {
                    Filter::Between(b, a)
                }
            })
            .boxed(),
        prop::collection::vec(any_text(), 1..3)
            .prop_map(Filter::SourcesExclude)
            .boxed(),
    ];
    if at.events >= 1 {
        options.push(positive_duration().prop_map(Filter::WithinParent).boxed());
    }
    if depth > 0 {
        let where_ = condition(at.inside_event(), depth - 1).prop_map(Filter::Where).boxed();
        options.extend([where_.clone(), where_]);
    }
    proptest::strategy::Union::new(options).boxed()
}

fn reduction(at: At, depth: u32, reducer: BoxedStrategy<Reducer>) -> BoxedStrategy<Scalar> {
    (any_text(), prop::collection::vec(filter(at, depth), 0..3), reducer)
        .prop_map(|(name, filters, reducer)| {
            Scalar::Reduced(Box::new(Reduction {
                stream: EventStream { name, filters },
                reducer,
            }))
        })
        .boxed()
}

/// A value; reductions (where the nesting is) weigh the most.
fn scalar(at: At, depth: u32) -> BoxedStrategy<Scalar> {
    let mut options = vec![
        (2, any_text().prop_map(Scalar::Trait).boxed()),
        (1, literal().prop_map(Scalar::Literal).boxed()),
    ];
    if at.events >= 1 {
        options.push((2, field(at).prop_map(Scalar::Field).boxed()));
    }
    if depth > 0 {
        options.push((4, reduction(at, depth, reducer(at))));
    }
    proptest::strategy::Union::new_weighted(options).boxed()
}

fn comparator(operand: BoxedStrategy<Scalar>) -> BoxedStrategy<Comparator> {
    let texts = || prop::collection::vec(any_text(), 1..3);
    prop_oneof![
        operand.clone().prop_map(Comparator::Equals),
        operand.clone().prop_map(Comparator::Differs),
        operand.clone().prop_map(Comparator::GreaterThan),
        operand.clone().prop_map(Comparator::AtLeast),
        operand.clone().prop_map(Comparator::LessThan),
        operand.prop_map(Comparator::AtMost),
        Just(Comparator::Absent),
        Just(Comparator::Exists),
        texts().prop_map(Comparator::Contains),
        texts().prop_map(Comparator::Omits),
        any_text().prop_map(Comparator::StartsWith),
        any_text().prop_map(Comparator::EndsWith),
        prop::collection::vec(literal(), 1..3).prop_map(Comparator::OneOf),
        date().prop_map(Comparator::BeforeDate),
        date().prop_map(Comparator::AfterDate),
        positive_duration().prop_map(Comparator::WithinLast),
        positive_duration().prop_map(Comparator::WithinNext),
        positive_duration().prop_map(Comparator::BeforeLast),
        positive_duration().prop_map(Comparator::AfterNext),
    ]
    .boxed()
}

fn condition(at: At, depth: u32) -> BoxedStrategy<Condition> {
    let value = scalar(at, depth);
    let comparison = (value.clone(), comparator(value))
        .prop_map(|(subject, comparator)| Condition::Compare(Comparison { subject, comparator }))
        .boxed();
    if depth == 0 {
        return comparison;
    }
    let part = condition(at, depth - 1);
    let mut options = vec![
        comparison.clone(),
        comparison,
        prop::collection::vec(part.clone(), 2..4)
            .prop_map(Condition::And)
            .boxed(),
        prop::collection::vec(part.clone(), 2..4)
            .prop_map(Condition::Or)
            .boxed(),
        part.prop_map(|c| Condition::Not(Box::new(c))).boxed(),
    ];
    if at.aggregate {
        let user_level = condition(At { aggregate: false, ..at }, depth - 1);
        options.push(user_level.clone().prop_map(|c| Condition::Any(Box::new(c))).boxed());
        options.push(user_level.prop_map(|c| Condition::All(Box::new(c))).boxed());
    }
    proptest::strategy::Union::new(options).boxed()
}

fn definition() -> BoxedStrategy<(Definition, Expect)> {
    let kinds = prop_oneof![Just(Kind::Users), Just(Kind::Accounts)];
    kinds
        .prop_flat_map(|kind| {
            let top = At {
                events: 0,
                aggregate: kind == Kind::Accounts,
            };
            let unique = reducer(top).prop_map(|r| match r {
                Reducer::UniqueCount(f) => Reducer::Unique(f),
                other => other,
            });
            prop_oneof![
                condition(top, 3).prop_map(move |c| (
                    Definition {
                        kind,
                        body: Body::Audience(c)
                    },
                    Expect::Audience
                )),
                scalar(top, 3).prop_map(move |s| (
                    Definition {
                        kind,
                        body: Body::ComputedTrait(s)
                    },
                    Expect::ComputedTrait
                )),
                reduction(top, 2, unique.boxed()).prop_map(move |s| (
                    Definition {
                        kind,
                        body: Body::ComputedTrait(s)
                    },
                    Expect::ComputedTrait
                )),
            ]
        })
        .prop_filter("within the expression limit", |(d, _)| {
            d.primary_expressions() <= MAX_PRIMARY_EXPRESSIONS
        })
        .boxed()
}

/// The words and symbols of the language, for token soups.
const VOCABULARY: &[&str] = &[
    "event",
    "trait",
    "property",
    "context",
    "literal",
    "(",
    ")",
    "{",
    "}",
    ",",
    ".",
    ":",
    "'Order'",
    "\"x\"",
    "'",
    "\"",
    "5",
    "-3",
    "2.5",
    "0",
    "days",
    "hours",
    "day",
    "parent",
    "exclude",
    "as",
    "string",
    "array",
    "number",
    "AND",
    "OR",
    "NOT",
    "ANY",
    "ALL",
    "and",
    "=",
    "==",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "!",
    "where",
    "within",
    "between",
    "sources",
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "mode",
    "first",
    "last",
    "unique",
    "equals",
    "exists",
    "absent",
    "contains",
    "one_of",
    "before_date",
    "within_last",
    "'2024-01-01'",
    "true",
    "\n",
    "\\",
    "#",
    "é",
    "\t",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (prop::sample::select(VOCABULARY), prop_oneof![Just(""), Just(" ")]),
        0..40,
    )
    .prop_map(|parts| parts.into_iter().map(|(token, gap)| format!("{token}{gap}")).collect())
}

/// Parses `text` every way; any error must lie inside the text.
fn parse_everyway(text: &str) -> Result<(), TestCaseError> {
    for kind in [Kind::Users, Kind::Accounts] {
        for expect in [Expect::Audience, Expect::ComputedTrait] {
            if let Err(e) = parse(text, kind, expect) {
                prop_assert!(position_inside(text, &e), "{e} is outside {text:?}");
                prop_assert!(!e.message.is_empty());
                e.caret(text);
            }
        }
    }
    Ok(())
}

proptest! {
    // Cheap cases (well under a millisecond each): many, so that rare shapes (nested streams
    // with parent windows) come up.
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn rendered_trees_parse_back_to_themselves((definition, expect) in definition()) {
        let text = render(&definition);
        let again = parse(&text, definition.kind, expect);
        prop_assert!(again.is_ok(), "{text:?}: {:?}", again.err().map(|e| format!("{e}\n{}", e.caret(&text))));
        let again = again.unwrap();
        prop_assert_eq!(&again, &definition, "{}", text);
        prop_assert_eq!(render(&again), text);
    }

    #[test]
    fn the_checker_counts_primary_expressions_as_documented(
        parts in prop::collection::vec(condition(At { events: 0, aggregate: false }, 1), 2..40),
    ) {
        let definition = Definition { kind: Kind::Users, body: Body::Audience(Condition::And(parts)) };
        let text = render(&definition);
        match parse_audience(&text, Kind::Users) {
            Ok(parsed) => {
                prop_assert!(definition.primary_expressions() <= MAX_PRIMARY_EXPRESSIONS);
                prop_assert_eq!(parsed, definition);
            }
            Err(e) => {
                prop_assert!(definition.primary_expressions() > MAX_PRIMARY_EXPRESSIONS, "{}", e);
                prop_assert!(e.message.contains("this is number 51"), "{}", e);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        parse_everyway(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn token_soups_never_panic(text in soup()) {
        parse_everyway(&text)?;
    }

    #[test]
    fn damaged_definitions_never_panic(
        (definition, _) in definition(),
        cut in any::<prop::sample::Index>(),
        replacement in prop::sample::select(VOCABULARY),
    ) {
        let text = render(&definition);
        let chars: Vec<char> = text.chars().collect();
        let at = cut.index(chars.len() + 1);
        let truncated: String = chars[..at].iter().collect();
        parse_everyway(&truncated)?;
        let mut changed = chars.clone();
        if at < changed.len() {
            changed.remove(at);
        }
        let changed: String = changed.into_iter().collect();
        parse_everyway(&changed)?;
        let inserted = format!("{}{replacement}{}", truncated, chars[at..].iter().collect::<String>());
        parse_everyway(&inserted)?;
    }
}
