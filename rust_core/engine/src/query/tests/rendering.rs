//! Rendering to canonical text, and the other views of a checked tree (primary expressions,
//! durations in milliseconds).

use super::*;

#[test]
fn primary_expressions_count_extractor_calls_but_not_literals() {
    let d = parse_audience(
        "event('A').where(property('p') > trait('t')).sum(property('q')) > literal(3) AND context('c') = 'x' OR trait('u') = 1",
        Kind::Users,
    );
    // context outside where is refused; count on a valid one instead.
    assert!(d.is_err());
    let d = parse_audience(
        "event('A').where(property('p') > trait('t') AND context('c') = 'x').sum(property('q')) > literal(3) OR trait('u') = 1",
        Kind::Users,
    )
    .unwrap();
    // event, property, trait, context, property (sum's argument), trait: six.
    assert_eq!(d.primary_expressions(), 6);
    let fifty = vec!["trait('a') = 1"; MAX_PRIMARY_EXPRESSIONS].join(" AND ");
    assert_eq!(audience(&fifty).primary_expressions(), 50);
}

#[test]
fn durations_convert_to_milliseconds() {
    assert_eq!(days(7).millis(), 7 * 24 * 3_600_000);
    assert_eq!(Duration::new(5, TimeUnit::Hours).millis(), 5 * 3_600_000);
    assert_eq!(
        Duration::new(u32::MAX, TimeUnit::Days).millis(),
        i64::from(u32::MAX) * 86_400_000
    );
}

#[test]
fn rendering_is_canonical() {
    let cases = [
        (
            "event('Shoes Bought').where( property('price') >= 100 ).within(7 days).count() >= 1",
            "event('Shoes Bought').where(property('price') >= 100).within(7 days).count() >= 1",
        ),
        (
            "trait(\"plan\").equals(\"pro\") and not(trait('x') == 1.0)",
            "trait('plan') = 'pro' AND NOT (trait('x') = 1.0)",
        ),
        (
            "event('A').where(event('B').within(parent:1 DAY).count()>=1).between(1 hours,2 days).sources({exclude:'s'}).count()>0",
            "event('A').where(event('B').within(parent: 1 day).count() >= 1).between(1 hour, 2 days).sources(exclude: 's').count() > 0",
        ),
        (
            "event('E').mode(property('p') as string, 1).one_of(literal('a'), 2) OR trait('d').before_date(\"2024-05-01\")",
            "event('E').mode(property('p'), 1).one_of('a', 2) OR trait('d').before_date('2024-05-01')",
        ),
    ];
    for (written, canonical) in cases {
        let d = parse_audience(written, Kind::Users).unwrap();
        assert_eq!(render(&d), canonical);
        assert_eq!(d.to_string(), canonical);
        assert_eq!(parse_audience(canonical, Kind::Users).unwrap(), d);
    }
    assert_eq!(
        render(&parse_computed_trait("event('E').max(property('p') as string)", Kind::Users).unwrap()),
        "event('E').max(property('p') as string)"
    );
    assert_eq!(
        render(&parse_computed_trait("event('E').mode(property('p') as array, 2)", Kind::Users).unwrap()),
        "event('E').mode(property('p') as array, 2)"
    );
    assert_eq!(render_scalar(&text("it's\n")), r"'it\'s\n'");
}
