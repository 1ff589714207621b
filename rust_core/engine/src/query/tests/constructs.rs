//! Every construct of the language parses to the tree it means (and round-trips: the helpers
//! check `parse(render(d)) == d` on each).

use super::*;

#[test]
fn examples_of_the_language_page_parse() {
    let shoes_price = audience("event('Shoes Bought').where( property('price') >= 100 ).within(7 days).count() >= 1");
    assert_eq!(
        shoes_price,
        compare(
            reduced(
                "Shoes Bought",
                vec![
                    Filter::Where(compare(Scalar::Field(property("price")), Comparator::AtLeast(int(100)))),
                    Filter::Within(days(7)),
                ],
                Reducer::Count
            ),
            Comparator::AtLeast(int(1))
        )
    );

    let not = audience("NOT ( event('Shoes Bought').count() >= 1 AND trait('total_spend') > 200 )");
    assert_eq!(
        not,
        Condition::Not(Box::new(Condition::And(vec![
            count_at_least("Shoes Bought", 1),
            compare(trait_("total_spend"), Comparator::GreaterThan(int(200))),
        ])))
    );

    let pro = audience("trait('plan') = 'pro' AND event('Order Completed').within(30 days).count() >= 3");
    assert_eq!(
        pro,
        Condition::And(vec![
            compare(trait_("plan"), Comparator::Equals(text("pro"))),
            compare(
                reduced("Order Completed", vec![Filter::Within(days(30))], Reducer::Count),
                Comparator::AtLeast(int(3))
            ),
        ])
    );

    let returned = audience(
        "event('Shoes Bought').where( property('price') >= trait('avg_spend')\n    \
         AND event('Shoes Returned').within(parent: 5 days).count() >= 1 ).within(30 days).count() >= 1",
    );
    let inner = Condition::And(vec![
        compare(
            Scalar::Field(property("price")),
            Comparator::AtLeast(trait_("avg_spend")),
        ),
        compare(
            reduced("Shoes Returned", vec![Filter::WithinParent(days(5))], Reducer::Count),
            Comparator::AtLeast(int(1)),
        ),
    ]);
    assert_eq!(
        returned,
        compare(
            reduced(
                "Shoes Bought",
                vec![Filter::Where(inner), Filter::Within(days(30))],
                Reducer::Count
            ),
            Comparator::AtLeast(int(1))
        )
    );

    let all = accounts("ALL ( event('Shoes Bought').count() >= 1 AND trait('total_spend') > 200 )");
    assert!(matches!(all, Condition::All(inner) if matches!(*inner, Condition::And(_))));

    assert_eq!(
        computed("event('Shoes Bought').within(30 days).avg(property('spend'))"),
        reduced(
            "Shoes Bought",
            vec![Filter::Within(days(30))],
            Reducer::Avg(property("spend"))
        )
    );
    assert_eq!(
        computed("event('Shoes Bought').within(30 days).mode(property('spend'), 2)"),
        reduced(
            "Shoes Bought",
            vec![Filter::Within(days(30))],
            Reducer::Mode {
                field: property("spend"),
                min_frequency: 2,
                compare_as: ValueType::String
            }
        )
    );
}

#[test]
fn examples_of_segments_reference_parse() {
    assert_eq!(
        accounts("ALL NOT event('Shoes Bought').count() >= 1"),
        Condition::All(Box::new(Condition::Not(Box::new(count_at_least("Shoes Bought", 1)))))
    );
    assert_eq!(
        accounts("ANY event('Shoes Bought').count() >= 1"),
        Condition::Any(Box::new(count_at_least("Shoes Bought", 1)))
    );
    assert_eq!(
        computed("event('Shoes Bought').where( property('price') > 100 AND property('brand') = 'My Brand' ).min(property('spend'))"),
        reduced(
            "Shoes Bought",
            vec![Filter::Where(Condition::And(vec![
                compare(Scalar::Field(property("price")), Comparator::GreaterThan(int(100))),
                compare(Scalar::Field(property("brand")), Comparator::Equals(text("My Brand"))),
            ]))],
            Reducer::Min {
                field: property("spend"),
                compare_as: ValueType::Number
            }
        )
    );
    computed("event('Shoes Bought').within(30 days).first(property('spend'))");
    // The issue's benchmark audience: NOT without parentheses binds to one comparison.
    let benchmark = audience(
        "trait('plan') = 'pro' AND event('Order Completed').within(30 days).count() >= 3 AND NOT event('Churned').count() >= 1",
    );
    let Condition::And(parts) = benchmark else {
        panic!("an AND of three")
    };
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2], Condition::Not(Box::new(count_at_least("Churned", 1))));
}

#[test]
fn symbols_mean_the_same_as_the_comparator_words() {
    let pairs = [
        ("=", "equals"),
        ("==", "equals"),
        ("!=", "differs"),
        (">", "greater_than"),
        (">=", "at_least"),
        ("<", "less_than"),
        ("<=", "at_most"),
    ];
    for (symbol, word) in pairs {
        let by_symbol = audience(&format!("trait('a') {symbol} 5"));
        let by_word = audience(&format!("trait('a').{word}(5)"));
        assert_eq!(by_symbol, by_word, "{symbol} vs {word}");
    }
    // Without spaces too.
    assert_eq!(audience("trait('a')>=5"), audience("trait('a').at_least(5)"));
}

#[test]
fn every_word_comparator_parses() {
    let cases: Vec<(&str, Comparator)> = vec![
        ("absent()", Comparator::Absent),
        ("exists()", Comparator::Exists),
        (
            "contains('shoes', 'shirts')",
            Comparator::Contains(vec!["shoes".into(), "shirts".into()]),
        ),
        ("omits('shoes')", Comparator::Omits(vec!["shoes".into()])),
        ("starts_with('total')", Comparator::StartsWith("total".into())),
        ("ends_with('total')", Comparator::EndsWith("total".into())),
        (
            "one_of('shoes', 5, 2.5, true)",
            Comparator::OneOf(vec![
                Literal::String("shoes".into()),
                Literal::Integer(5),
                Literal::Decimal(2.5),
                Literal::Bool(true),
            ]),
        ),
        (
            "before_date('2023-12-07T18:50:00Z')",
            Comparator::BeforeDate(Date {
                text: "2023-12-07T18:50:00Z".into(),
                epoch_ms: 1_701_975_000_000,
            }),
        ),
        (
            "after_date('2024-05-01')",
            Comparator::AfterDate(Date {
                text: "2024-05-01".into(),
                epoch_ms: 1_714_521_600_000,
            }),
        ),
        ("within_last(7 days)", Comparator::WithinLast(days(7))),
        ("within_next(1 day)", Comparator::WithinNext(days(1))),
        (
            "before_last(12 hours)",
            Comparator::BeforeLast(Duration::new(12, TimeUnit::Hours)),
        ),
        (
            "after_next(1 hour)",
            Comparator::AfterNext(Duration::new(1, TimeUnit::Hours)),
        ),
        ("equals(trait('b'))", Comparator::Equals(trait_("b"))),
        ("differs('x')", Comparator::Differs(text("x"))),
        ("greater_than(1)", Comparator::GreaterThan(int(1))),
        ("at_least(1)", Comparator::AtLeast(int(1))),
        ("less_than(1)", Comparator::LessThan(int(1))),
        ("at_most(1)", Comparator::AtMost(int(1))),
    ];
    for (call, comparator) in cases {
        assert_eq!(
            audience(&format!("trait('a').{call}")),
            compare(trait_("a"), comparator),
            "{call}"
        );
    }
}

#[test]
fn dates_with_offsets_denote_their_instant() {
    let Condition::Compare(c) = audience("trait('seen').after_date('2024-05-01T12:00:00+02:00')") else {
        panic!()
    };
    let Comparator::AfterDate(date) = c.comparator else {
        panic!()
    };
    assert_eq!(date.epoch_ms, 1_714_557_600_000);
}

#[test]
fn and_binds_tighter_than_or_and_not_tighter_than_and() {
    let (a, b, c) = (
        compare(trait_("a"), Comparator::Exists),
        compare(trait_("b"), Comparator::Exists),
        compare(trait_("c"), Comparator::Exists),
    );
    let parse3 = |op1: &str, op2: &str| {
        audience(&format!(
            "trait('a').exists() {op1} trait('b').exists() {op2} trait('c').exists()"
        ))
    };
    assert_eq!(
        parse3("OR", "AND"),
        Condition::Or(vec![a.clone(), Condition::And(vec![b.clone(), c.clone()])])
    );
    assert_eq!(
        parse3("AND", "OR"),
        Condition::Or(vec![Condition::And(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(
        parse3("AND", "AND"),
        Condition::And(vec![a.clone(), b.clone(), c.clone()])
    );
    assert_eq!(
        audience("NOT trait('a').exists() AND trait('b').exists()"),
        Condition::And(vec![Condition::Not(Box::new(a.clone())), b.clone()])
    );
    assert_eq!(
        audience("(trait('a').exists() OR trait('b').exists()) AND trait('c').exists()"),
        Condition::And(vec![Condition::Or(vec![a.clone(), b.clone()]), c.clone()])
    );
    // Parentheses around a junction of the same kind are kept, and rendered back.
    let nested = audience("trait('a').exists() AND (trait('b').exists() AND trait('c').exists())");
    assert_eq!(
        nested,
        Condition::And(vec![a.clone(), Condition::And(vec![b.clone(), c.clone()])])
    );
    assert_eq!(
        render_condition(&nested),
        "trait('a').exists() AND (trait('b').exists() AND trait('c').exists())"
    );
    assert_eq!(audience("((trait('a').exists()))"), a);
}

#[test]
fn words_are_case_insensitive() {
    assert_eq!(
        audience("trait('a') = 1 and not trait('b') = 2 or trait('c') = 3"),
        audience("trait('a') = 1 AND NOT trait('b') = 2 OR trait('c') = 3")
    );
    assert_eq!(
        audience("EVENT('x').Within(7 DAYS).COUNT() >= 1 And Trait('t').Exists()"),
        audience("event('x').within(7 days).count() >= 1 AND trait('t').exists()")
    );
    assert_eq!(
        accounts("any (trait('a') = 1) Or all (trait('b') = 2)"),
        accounts("ANY (trait('a') = 1) OR ALL (trait('b') = 2)")
    );
}

#[test]
fn strings_take_both_quotes_and_escapes() {
    assert_eq!(audience(r#"trait("plan") = "pro""#), audience("trait('plan') = 'pro'"));
    assert_eq!(
        audience(r#"trait('it\'s') = "say \"hi\"\n\t\r\\ 'x'""#),
        compare(trait_("it's"), Comparator::Equals(text("say \"hi\"\n\t\r\\ 'x'")))
    );
    // Raw newlines and any Unicode are kept as written.
    assert_eq!(
        audience("trait('naïve ✓') = 'two\nlines'"),
        compare(trait_("naïve ✓"), Comparator::Equals(text("two\nlines")))
    );
    assert_eq!(
        audience("trait('') = ''"),
        compare(trait_(""), Comparator::Equals(text("")))
    );
}

#[test]
fn numbers_are_integers_or_decimals_and_may_be_negative() {
    let value = |text: &str| match audience(&format!("trait('a') = {text}")) {
        Condition::Compare(Comparison {
            comparator: Comparator::Equals(Scalar::Literal(literal)),
            ..
        }) => literal,
        other => panic!("{other:?}"),
    };
    assert_eq!(value("42"), Literal::Integer(42));
    assert_eq!(value("-42"), Literal::Integer(-42));
    assert_eq!(value("0"), Literal::Integer(0));
    assert_eq!(value("2.5"), Literal::Decimal(2.5));
    assert_eq!(value("-0.125"), Literal::Decimal(-0.125));
    assert_eq!(value("9223372036854775807"), Literal::Integer(i64::MAX));
    assert_eq!(value("-9223372036854775808"), Literal::Integer(i64::MIN));
    assert_eq!(value("true"), Literal::Bool(true));
    assert_eq!(value("FALSE"), Literal::Bool(false));
    assert_eq!(value("literal(7)"), Literal::Integer(7));
    assert_eq!(value("literal('x')"), Literal::String("x".into()));
    // A literal may also be the compared value.
    assert_eq!(
        audience("5 < trait('a')"),
        compare(int(5), Comparator::LessThan(trait_("a")))
    );
}

#[test]
fn filters_chain_in_any_order() {
    let stream = |text: &str| match computed(text) {
        Scalar::Reduced(reduction) => reduction.stream,
        other => panic!("{other:?}"),
    };
    let s = stream(
        "event('Viewed').sources(exclude: 'src1', 'src2').between(7 days, 10 days).within(48 hours).where(context('page.url').contains('/pricing')).count()",
    );
    assert_eq!(s.name, "Viewed");
    assert_eq!(
        s.filters,
        vec![
            Filter::SourcesExclude(vec!["src1".into(), "src2".into()]),
            Filter::Between(days(7), days(10)),
            Filter::Within(Duration::new(48, TimeUnit::Hours)),
            Filter::Where(compare(
                Scalar::Field(Field::Context("page.url".into())),
                Comparator::Contains(vec!["/pricing".into()])
            )),
        ]
    );
    // Braces around the arguments, as Segment's reference writes its sources example.
    assert_eq!(
        stream("event('V').sources({exclude: 'a', 'b'}).count()").filters,
        vec![Filter::SourcesExclude(vec!["a".into(), "b".into()])]
    );
    assert_eq!(
        stream("event('V').where({property('price_usd') > 100}).count()"),
        stream("event('V').where(property('price_usd') > 100).count()")
    );
    // Mixed units compare by length.
    assert_eq!(
        stream("event('V').between(12 hours, 1 day).count()").filters,
        vec![Filter::Between(Duration::new(12, TimeUnit::Hours), days(1))]
    );
}

#[test]
fn nested_where_reaches_the_parent_event() {
    let nested = audience(
        "event('Bought').where(event('Returned').within(parent: 2 days).where(property('sku') = property(parent: 'sku')).count() >= 1).count() >= 1",
    );
    let expected_inner = compare(
        reduced(
            "Returned",
            vec![
                Filter::WithinParent(days(2)),
                Filter::Where(compare(
                    Scalar::Field(property("sku")),
                    Comparator::Equals(Scalar::Field(Field::ParentProperty("sku".into()))),
                )),
            ],
            Reducer::Count,
        ),
        Comparator::AtLeast(int(1)),
    );
    assert_eq!(
        nested,
        compare(
            reduced("Bought", vec![Filter::Where(expected_inner)], Reducer::Count),
            Comparator::AtLeast(int(1))
        )
    );
    // A nested stream's reducer may read the parent event too.
    audience("event('A').where(event('B').within(parent: 1 hour).sum(property(parent: 'n')) > 0).count() >= 1");
}

#[test]
fn every_reducer_parses() {
    let reducer = |call: &str| match computed(&format!("event('E').{call}")) {
        Scalar::Reduced(reduction) => reduction.reducer,
        other => panic!("{other:?}"),
    };
    let p = property("p");
    assert_eq!(reducer("count()"), Reducer::Count);
    assert_eq!(reducer("sum(property('p'))"), Reducer::Sum(p.clone()));
    assert_eq!(reducer("avg(property('p'))"), Reducer::Avg(p.clone()));
    assert_eq!(
        reducer("min(property('p') as string)"),
        Reducer::Min {
            field: p.clone(),
            compare_as: ValueType::String
        }
    );
    assert_eq!(
        reducer("max(property('p') as number)"),
        Reducer::Max {
            field: p.clone(),
            compare_as: ValueType::Number
        }
    );
    assert_eq!(reducer("max(property('p'))"), reducer("max(property('p') as number)"));
    assert_eq!(
        reducer("mode(property('p') as array, 3)"),
        Reducer::Mode {
            field: p.clone(),
            min_frequency: 3,
            compare_as: ValueType::Array
        }
    );
    assert_eq!(reducer("first(property('p'))"), Reducer::First(p.clone()));
    assert_eq!(
        reducer("last(context('ip'))"),
        Reducer::Last(Field::Context("ip".into()))
    );
    assert_eq!(reducer("unique(property('p'))"), Reducer::Unique(p.clone()));
    assert_eq!(
        reducer("unique(property('p')).count()"),
        Reducer::UniqueCount(p.clone())
    );
    // unique(...).count() is a value an audience can compare.
    audience("event('E').unique(property('p')).count() >= 2");
}

#[test]
fn computed_traits_may_be_any_value() {
    assert_eq!(computed("trait('plan')"), trait_("plan"));
    assert_eq!(computed("'constant'"), text("constant"));
    assert_eq!(
        computed("event('E').where(trait('x') = 1).last(property('p'))"),
        reduced(
            "E",
            vec![Filter::Where(compare(trait_("x"), Comparator::Equals(int(1))))],
            Reducer::Last(property("p"))
        )
    );
}

#[test]
fn any_and_all_apply_to_accounts() {
    let condition = accounts(
        "trait('industry') = 'retail' AND ANY (trait('role') = 'admin') AND ALL (NOT trait('churned').exists())",
    );
    let Condition::And(parts) = condition else { panic!() };
    assert!(matches!(parts[1], Condition::Any(_)));
    assert!(matches!(parts[2], Condition::All(_)));
    // An ACCOUNTS computed trait reads the account's own events.
    let d = parse_computed_trait("event('Seat Added').count()", Kind::Accounts).unwrap();
    assert_eq!(d.kind, Kind::Accounts);
}

#[test]
fn definitions_may_span_lines() {
    let text = "trait('plan') = 'pro'\nAND\n  event('Order Completed')\n    .within(30 days)\n    .count() >= 3\n";
    assert_eq!(
        audience(text),
        audience("trait('plan') = 'pro' AND event('Order Completed').within(30 days).count() >= 3")
    );
}
