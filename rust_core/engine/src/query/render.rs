//! Checked tree → canonical query text, which parses back to the same tree.
//!
//! Canonical choices (one spelling per meaning, close to Segment's own examples):
//! - the six comparators that have symbols use them, with spaces: `= != > >= < <=`
//!   (`=`, never `==`); the others are calls: `.exists()`, `.contains('a', 'b')`;
//! - junction words in capitals: `AND`, `OR`; `NOT`, `ANY` and `ALL` always take parentheses:
//!   `NOT (…)`; a part of `AND` is parenthesised when it is itself an `AND` or an `OR`, a part
//!   of `OR` when it is an `OR` (so user-written nesting survives and nothing else is added);
//! - strings in single quotes, escaping `\` `'` and newline, tab, carriage return as
//!   `\\ \' \n \t \r`;
//! - literals bare (`5`, never `literal(5)`); decimals always with a `.` (`3.0`) so they stay
//!   decimals; booleans `true`/`false`;
//! - durations `1 day`, `7 days`, `1 hour`, `12 hours`;
//! - filters in the order they were written; `as` types only when not the default (`number`
//!   for min/max, `string` for mode); no braces, no spaces inside parentheses.

use std::fmt;

use super::args::type_name;
use super::ast::{
    Body, Comparator, Condition, Definition, Duration, Field, Filter, Literal, Reducer, Scalar, TimeUnit, ValueType,
};

/// The canonical text of a definition (its kind is not part of the text).
pub fn render(definition: &Definition) -> String {
    match &definition.body {
        Body::Audience(condition) => render_condition(condition),
        Body::ComputedTrait(scalar) => render_scalar(scalar),
    }
}

/// The canonical text of a condition, such as one part of an audience (for explanations).
pub fn render_condition(condition: &Condition) -> String {
    let mut out = String::new();
    write_condition(&mut out, condition);
    out
}

/// The canonical text of a value.
pub fn render_scalar(scalar: &Scalar) -> String {
    let mut out = String::new();
    write_scalar(&mut out, scalar);
    out
}

impl fmt::Display for Definition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render(self))
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_condition(self))
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_scalar(self))
    }
}

fn write_condition(out: &mut String, condition: &Condition) {
    match condition {
        Condition::And(parts) => write_junction(out, parts, " AND ", |part| {
            matches!(part, Condition::And(_) | Condition::Or(_))
        }),
        Condition::Or(parts) => write_junction(out, parts, " OR ", |part| matches!(part, Condition::Or(_))),
        Condition::Not(inner) => write_prefixed(out, "NOT", inner),
        Condition::Any(inner) => write_prefixed(out, "ANY", inner),
        Condition::All(inner) => write_prefixed(out, "ALL", inner),
        Condition::Compare(comparison) => {
            write_scalar(out, &comparison.subject);
            write_comparator(out, &comparison.comparator);
        }
    }
}

fn write_junction(out: &mut String, parts: &[Condition], keyword: &str, needs_parens: fn(&Condition) -> bool) {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(keyword);
        }
        if needs_parens(part) {
            out.push('(');
            write_condition(out, part);
            out.push(')');
        } else {
            write_condition(out, part);
        }
    }
}

fn write_prefixed(out: &mut String, keyword: &str, inner: &Condition) {
    out.push_str(keyword);
    out.push_str(" (");
    write_condition(out, inner);
    out.push(')');
}

fn write_comparator(out: &mut String, comparator: &Comparator) {
    let symbol = match comparator {
        Comparator::Equals(_) => Some(" = "),
        Comparator::Differs(_) => Some(" != "),
        Comparator::GreaterThan(_) => Some(" > "),
        Comparator::AtLeast(_) => Some(" >= "),
        Comparator::LessThan(_) => Some(" < "),
        Comparator::AtMost(_) => Some(" <= "),
        _ => None,
    };
    if let (Some(symbol), Some(operand)) = (symbol, comparator.operand()) {
        out.push_str(symbol);
        write_scalar(out, operand);
        return;
    }
    let (name, args) = match comparator {
        Comparator::Absent => ("absent", String::new()),
        Comparator::Exists => ("exists", String::new()),
        Comparator::Contains(texts) => ("contains", strings(texts)),
        Comparator::Omits(texts) => ("omits", strings(texts)),
        Comparator::StartsWith(text) => ("starts_with", quoted(text)),
        Comparator::EndsWith(text) => ("ends_with", quoted(text)),
        Comparator::OneOf(values) => ("one_of", values.iter().map(literal).collect::<Vec<_>>().join(", ")),
        Comparator::BeforeDate(date) => ("before_date", quoted(&date.text)),
        Comparator::AfterDate(date) => ("after_date", quoted(&date.text)),
        Comparator::WithinLast(d) => ("within_last", duration(d)),
        Comparator::WithinNext(d) => ("within_next", duration(d)),
        Comparator::BeforeLast(d) => ("before_last", duration(d)),
        Comparator::AfterNext(d) => ("after_next", duration(d)),
        _ => unreachable!("symbol comparators are written above"),
    };
    out.push_str(&format!(".{name}({args})"));
}

fn write_scalar(out: &mut String, scalar: &Scalar) {
    match scalar {
        Scalar::Trait(name) => out.push_str(&format!("trait({})", quoted(name))),
        Scalar::Literal(value) => out.push_str(&literal(value)),
        Scalar::Field(f) => out.push_str(&field(f)),
        Scalar::Reduced(reduction) => {
            out.push_str(&format!("event({})", quoted(&reduction.stream.name)));
            for filter in &reduction.stream.filters {
                write_filter(out, filter);
            }
            out.push_str(&reducer(&reduction.reducer));
        }
    }
}

fn write_filter(out: &mut String, filter: &Filter) {
    match filter {
        Filter::Where(condition) => {
            out.push_str(".where(");
            write_condition(out, condition);
            out.push(')');
        }
        Filter::Within(d) => out.push_str(&format!(".within({})", duration(d))),
        Filter::WithinParent(d) => out.push_str(&format!(".within(parent: {})", duration(d))),
        Filter::Between(from, to) => out.push_str(&format!(".between({}, {})", duration(from), duration(to))),
        Filter::SourcesExclude(ids) => out.push_str(&format!(".sources(exclude: {})", strings(ids))),
    }
}

fn reducer(reducer: &Reducer) -> String {
    let typed = |f: &Field, compare_as: ValueType, default: ValueType| {
        if compare_as == default {
            field(f)
        } else {
            format!("{} as {}", field(f), type_name(compare_as))
        }
    };
    match reducer {
        Reducer::Count => ".count()".to_string(),
        Reducer::Sum(f) => format!(".sum({})", field(f)),
        Reducer::Avg(f) => format!(".avg({})", field(f)),
        Reducer::Min { field: f, compare_as } => format!(".min({})", typed(f, *compare_as, ValueType::Number)),
        Reducer::Max { field: f, compare_as } => format!(".max({})", typed(f, *compare_as, ValueType::Number)),
        Reducer::Mode {
            field: f,
            min_frequency,
            compare_as,
        } => format!(".mode({}, {min_frequency})", typed(f, *compare_as, ValueType::String)),
        Reducer::First(f) => format!(".first({})", field(f)),
        Reducer::Last(f) => format!(".last({})", field(f)),
        Reducer::Unique(f) => format!(".unique({})", field(f)),
        Reducer::UniqueCount(f) => format!(".unique({}).count()", field(f)),
    }
}

fn field(field: &Field) -> String {
    match field {
        Field::Property(name) => format!("property({})", quoted(name)),
        Field::ParentProperty(name) => format!("property(parent: {})", quoted(name)),
        Field::Context(path) => format!("context({})", quoted(path)),
    }
}

fn literal(value: &Literal) -> String {
    match value {
        Literal::String(text) => quoted(text),
        Literal::Integer(n) => n.to_string(),
        Literal::Decimal(x) => {
            // Display never uses exponents and prints the shortest text that reads back as the
            // same number; a `.0` keeps integral values decimal.
            let text = x.to_string();
            if text.contains('.') {
                text
            } else {
                format!("{text}.0")
            }
        }
        Literal::Bool(b) => b.to_string(),
    }
}

fn duration(d: &Duration) -> String {
    let unit = match (d.unit, d.amount) {
        (TimeUnit::Days, 1) => "day",
        (TimeUnit::Days, _) => "days",
        (TimeUnit::Hours, 1) => "hour",
        (TimeUnit::Hours, _) => "hours",
    };
    format!("{} {unit}", d.amount)
}

fn strings(texts: &[String]) -> String {
    texts.iter().map(|t| quoted(t)).collect::<Vec<_>>().join(", ")
}

/// A string in single quotes with the lexer's escapes.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}
