//! Reads the arguments of one call: counts them, then each as the function expects (a quoted
//! string, a duration, a literal, a date, a field…). Every refusal names the function, what it
//! expected with an example of correct use, and what was found.

use super::ast::{Date, Duration, Field, Literal, TimeUnit, ValueType};
use super::check::Scope;
use super::error::QueryError;
use super::syntax::{quote_source, Arg, ArgValue, Call, Expr, Head, Value, Word};

/// The function whose arguments are read, for messages.
#[derive(Clone, Copy)]
pub(crate) struct Usage<'a> {
    name: &'a str,
    example: &'static str,
}

impl<'a> Usage<'a> {
    pub fn of(call: &'a Call) -> Self {
        let example = match call.name.as_str() {
            "event" => "event('Order Completed')",
            "trait" => "trait('plan')",
            "property" => "property('price') or property(parent: 'price')",
            "context" => "context('page.url')",
            "literal" => "literal(100)",
            "where" => "where(property('price') >= 100)",
            "within" => "within(7 days) or within(parent: 5 days)",
            "between" => "between(7 days, 10 days)",
            "sources" => "sources(exclude: 'source_id_1', 'source_id_2')",
            "min" => "min(property('price')) or min(property('name') as string)",
            "max" => "max(property('price')) or max(property('name') as string)",
            "mode" => "mode(property('size'), 2) or mode(property('tags') as array, 2)",
            "sum" => "sum(property('price'))",
            "avg" => "avg(property('price'))",
            "first" => "first(property('plan'))",
            "last" => "last(property('plan'))",
            "unique" => "unique(property('sku')) or unique(property('sku')).count()",
            "count" => "count()",
            "absent" => "absent()",
            "exists" => "exists()",
            "equals" => "equals('pro') or = 'pro'",
            "differs" => "differs('pro') or != 'pro'",
            "greater_than" => "greater_than(5) or > 5",
            "at_least" => "at_least(3) or >= 3",
            "less_than" => "less_than(5) or < 5",
            "at_most" => "at_most(3) or <= 3",
            "contains" => "contains('shoes', 'shirts')",
            "omits" => "omits('test')",
            "starts_with" => "starts_with('https')",
            "ends_with" => "ends_with('.com')",
            "one_of" => "one_of('pro', 'team')",
            "before_date" => "before_date('2024-05-01') or before_date('2024-05-01T12:00:00Z')",
            "after_date" => "after_date('2024-05-01') or after_date('2024-05-01T12:00:00Z')",
            "within_last" => "within_last(7 days)",
            "within_next" => "within_next(7 days)",
            "before_last" => "before_last(7 days)",
            "after_next" => "after_next(7 days)",
            _ => "event('Name').count() >= 1",
        };
        Usage {
            name: &call.name,
            example,
        }
    }

    fn error(&self, at: &Arg, expected: &str) -> QueryError {
        QueryError::at(
            at.pos,
            format!(
                "expected {expected} in {}(...), as in {}, found {}",
                self.name,
                self.example,
                quote_source(&at.text)
            ),
        )
    }
}

/// The error for a call missing an argument, at its closing parenthesis.
pub(crate) fn missing(call: &Call, usage: Usage) -> QueryError {
    QueryError::at(
        call.close,
        format!(
            "{}(...) needs more arguments, as in {}; found ')'",
            usage.name, usage.example
        ),
    )
}

/// The error for one argument too many.
pub(crate) fn too_many(extra: &Arg, usage: Usage) -> QueryError {
    QueryError::at(
        extra.pos,
        format!(
            "too many arguments to {}(...): expected ')' as in {}, found {}",
            usage.name,
            usage.example,
            quote_source(&extra.text)
        ),
    )
}

/// Refuses any argument: `count()`, `exists()`.
pub(crate) fn none(call: &Call) -> Result<(), QueryError> {
    match call.args.first() {
        None => Ok(()),
        Some(arg) => Err(QueryError::at(
            arg.pos,
            format!(
                "{}() takes no argument: expected ')', found {}",
                call.name,
                quote_source(&arg.text)
            ),
        )),
    }
}

/// The one argument of a call.
pub(crate) fn only<'c>(call: &'c Call, usage: Usage) -> Result<&'c Arg, QueryError> {
    let [arg] = exactly::<1>(call, usage)?;
    Ok(arg)
}

pub(crate) fn exactly<'c, const N: usize>(call: &'c Call, usage: Usage) -> Result<[&'c Arg; N], QueryError> {
    if call.args.len() < N {
        return Err(missing(call, usage));
    }
    if let Some(extra) = call.args.get(N) {
        return Err(too_many(extra, usage));
    }
    Ok(std::array::from_fn(|i| &call.args[i]))
}

pub(crate) fn at_least_one<'c>(call: &'c Call, usage: Usage) -> Result<&'c [Arg], QueryError> {
    if call.args.is_empty() {
        return Err(missing(call, usage));
    }
    Ok(&call.args)
}

/// Reads every argument with `read`, refusing labels and `as`.
pub(crate) fn each<T>(
    all: &[Arg],
    usage: Usage,
    read: fn(&Arg, Usage) -> Result<T, QueryError>,
) -> Result<Vec<T>, QueryError> {
    all.iter().map(|arg| read(plain(arg, usage)?, usage)).collect()
}

/// Refuses a label (`parent:`) on an argument that takes none.
pub(crate) fn unlabeled<'c>(arg: &'c Arg, usage: Usage) -> Result<&'c Arg, QueryError> {
    match &arg.label {
        None => Ok(arg),
        Some(word) => Err(QueryError::at(
            word.pos,
            format!(
                "{}(...) takes no '{}:' label, as in {}; found '{}:'",
                usage.name, word.text, usage.example, word.text
            ),
        )),
    }
}

/// Refuses labels and `as` types.
pub(crate) fn plain<'c>(arg: &'c Arg, usage: Usage) -> Result<&'c Arg, QueryError> {
    no_type(arg, usage)?;
    unlabeled(arg, usage)
}

pub(crate) fn no_type(arg: &Arg, usage: Usage) -> Result<(), QueryError> {
    match &arg.as_type {
        None => Ok(()),
        Some(word) => Err(QueryError::at(
            word.pos,
            format!(
                "{}(...) takes no 'as' type, as in {}; found 'as {}'",
                usage.name, usage.example, word.text
            ),
        )),
    }
}

/// The argument's label if it is one of `allowed`; refuses `as`.
pub(crate) fn label<'c>(arg: &'c Arg, allowed: &[&str], usage: Usage) -> Result<Option<&'c Word>, QueryError> {
    no_type(arg, usage)?;
    match &arg.label {
        Some(word) if allowed.contains(&word.text.as_str()) => Ok(Some(word)),
        // Any other label is refused with the same message as where none is allowed.
        Some(_) => unlabeled(arg, usage).map(|_| None),
        None => Ok(None),
    }
}

/// The argument as an expression (not a quantity such as `7 days`).
pub(crate) fn expr<'c>(arg: &'c Arg, usage: Usage) -> Result<&'c Expr, QueryError> {
    match &arg.value {
        ArgValue::Expr(expr) => Ok(expr),
        ArgValue::Quantity { .. } => Err(usage.error(arg, "an expression, not a duration,")),
    }
}

/// The bare value of an argument, if it is one (`'x'`, `5`, `true`).
fn bare_value(arg: &Arg) -> Option<&Value> {
    match &arg.value {
        ArgValue::Expr(Expr::Chain(chain)) if chain.calls.is_empty() => match &chain.head {
            Head::Value(value, _) => Some(value),
            Head::Call(_) => None,
        },
        _ => None,
    }
}

/// A quoted string, with no label and no `as` type.
pub(crate) fn string(arg: &Arg, usage: Usage) -> Result<String, QueryError> {
    string_value(plain(arg, usage)?, usage)
}

/// A quoted string, whatever label the caller has already read.
fn string_value(arg: &Arg, usage: Usage) -> Result<String, QueryError> {
    match bare_value(arg) {
        Some(Value::Str(text)) => Ok(text.clone()),
        _ => Err(usage.error(arg, "a quoted string")),
    }
}

pub(crate) fn literal_of(value: &Value) -> Literal {
    match value {
        Value::Str(text) => Literal::String(text.clone()),
        Value::Integer(n) => Literal::Integer(*n),
        Value::Decimal(x) => Literal::Decimal(*x),
        Value::Bool(b) => Literal::Bool(*b),
    }
}

/// A constant: `'pro'`, `5`, `-2.5`, `true`, or the same wrapped in `literal(...)`.
pub(crate) fn literal(arg: &Arg, usage: Usage) -> Result<Literal, QueryError> {
    plain(arg, usage)?;
    if let Some(value) = bare_value(arg) {
        return Ok(literal_of(value));
    }
    if let ArgValue::Expr(Expr::Chain(chain)) = &arg.value {
        if let (Head::Call(call), true) = (&chain.head, chain.calls.is_empty()) {
            if call.name == "literal" {
                let inner = Usage::of(call);
                return literal(only(call, inner)?, inner);
            }
        }
    }
    Err(usage.error(arg, "a constant such as 'text', 5 or true"))
}

pub(crate) fn duration(arg: &Arg, usage: Usage) -> Result<Duration, QueryError> {
    let ArgValue::Quantity { amount, unit } = &arg.value else {
        return Err(usage.error(arg, "a duration such as 7 days or 12 hours"));
    };
    let amount = match amount {
        Value::Integer(n) => u32::try_from(*n).map_err(|_| {
            let why = if *n < 0 { "not negative" } else { "at most 4294967295" };
            usage.error(arg, &format!("a whole number of days or hours, {why},"))
        })?,
        _ => return Err(usage.error(arg, "a whole number of days or hours")),
    };
    let unit = match unit.text.as_str() {
        "day" | "days" => TimeUnit::Days,
        "hour" | "hours" => TimeUnit::Hours,
        other => {
            return Err(QueryError::at(
                unit.pos,
                format!("expected days or hours after the number, found '{other}'"),
            ))
        }
    };
    Ok(Duration { amount, unit })
}

/// A duration of at least one unit: a window or a relative date (`within(0 days)` would hold
/// nothing but events at the very instant of evaluation, which is always a mistake).
pub(crate) fn positive_duration(arg: &Arg, usage: Usage) -> Result<Duration, QueryError> {
    let duration = duration(arg, usage)?;
    if duration.amount == 0 {
        return Err(usage.error(arg, "a duration of at least 1 hour or 1 day"));
    }
    Ok(duration)
}

/// An ISO-8601 date (`2024-05-01`, midnight UTC) or date-time with a zone.
pub(crate) fn date(arg: &Arg, usage: Usage) -> Result<Date, QueryError> {
    let text = string(arg, usage)?;
    let bytes = text.as_bytes();
    let date_only = bytes.len() == 10 && bytes[4] == b'-' && bytes[7] == b'-';
    let parsed = if date_only {
        crate::time::parse_iso8601(&format!("{text}T00:00:00Z")).map_err(|_| format!("{text:?} is not a valid date"))
    } else {
        crate::time::parse_iso8601(&text)
    };
    match parsed {
        Ok(timestamp) => Ok(Date {
            text,
            epoch_ms: crate::time::to_ms(&timestamp),
        }),
        Err(why) => Err(QueryError::at(
            arg.pos,
            format!(
                "expected an ISO-8601 date in {}(...), as in {}: {why}",
                usage.name, usage.example
            ),
        )),
    }
}

/// `mode`'s minimum frequency: a whole number, at least 1.
pub(crate) fn min_frequency(arg: &Arg, usage: Usage) -> Result<u32, QueryError> {
    match bare_value(arg) {
        Some(Value::Integer(n)) if *n >= 1 => {
            u32::try_from(*n).map_err(|_| usage.error(arg, "a minimum frequency of at most 4294967295"))
        }
        _ => Err(usage.error(arg, "a minimum frequency, a whole number of at least 1,")),
    }
}

/// The `as <type>` of an argument, one of `allowed`, else `default`.
pub(crate) fn value_type(
    arg: &Arg,
    allowed: &[ValueType],
    default: ValueType,
    usage: Usage,
) -> Result<ValueType, QueryError> {
    let Some(word) = &arg.as_type else {
        return Ok(default);
    };
    let found = match word.text.as_str() {
        "number" => Some(ValueType::Number),
        "string" => Some(ValueType::String),
        "array" => Some(ValueType::Array),
        _ => None,
    };
    match found {
        Some(value_type) if allowed.contains(&value_type) => Ok(value_type),
        _ => {
            let names: Vec<&str> = allowed.iter().map(|t| type_name(*t)).collect();
            Err(QueryError::at(
                word.pos,
                format!(
                    "expected {} after 'as' in {}(...), found '{}'",
                    names.join(" or "),
                    usage.name,
                    word.text
                ),
            ))
        }
    }
}

pub(crate) fn type_name(value_type: ValueType) -> &'static str {
    match value_type {
        ValueType::Number => "number",
        ValueType::String => "string",
        ValueType::Array => "array",
    }
}

/// `sources(exclude: 'a', 'b')`: the label on the first id, then quoted ids.
pub(crate) fn source_ids(call: &Call, usage: Usage) -> Result<Vec<String>, QueryError> {
    let all = at_least_one(call, usage)?;
    let (first, rest) = all.split_first().expect("at least one");
    if label(first, &["exclude"], usage)?.is_none() {
        return Err(usage.error(first, "'exclude:' before the source ids"));
    }
    let mut ids = vec![string_value(first, usage)?];
    ids.extend(each(rest, usage, string)?);
    Ok(ids)
}

/// The `property(...)`/`context(...)` call that a reducer's argument must be.
pub(crate) fn field_extractor<'c>(arg: &'c Arg, usage: Usage) -> Result<&'c Call, QueryError> {
    if let ArgValue::Expr(Expr::Chain(chain)) = &arg.value {
        if let (Head::Call(call), true) = (&chain.head, chain.calls.is_empty()) {
            if call.name == "property" || call.name == "context" {
                return Ok(call);
            }
        }
    }
    Err(usage.error(arg, "property('name') or context('path')"))
}

/// Reads `property('x')`, `property(parent: 'x')` or `context('a.b')` where `scope` says how
/// many events are in scope.
pub(crate) fn field_call(call: &Call, scope: Scope) -> Result<Field, QueryError> {
    let usage = Usage::of(call);
    let arg = only(call, usage)?;
    let parent = if call.name == "property" {
        label(arg, &["parent"], usage)?.is_some()
    } else {
        plain(arg, usage).map(|_| false)?
    };
    let name = string_value(arg, usage)?;
    let shown = format!("{}({})", call.name, quote_source(&arg.text));
    if scope.events == 0 {
        return Err(QueryError::at(
            call.pos,
            format!(
                "{shown} reads the event being filtered, so it is only allowed inside where(...) or as a \
                 reducer's argument, as in sum(property('price'))"
            ),
        ));
    }
    if parent && scope.events < 2 {
        return Err(QueryError::at(
            call.pos,
            format!(
                "{shown} reads the enclosing event, so it is only allowed in an event stream nested inside where(...)"
            ),
        ));
    }
    Ok(match (call.name.as_str(), parent) {
        ("context", _) => Field::Context(name),
        (_, true) => Field::ParentProperty(name),
        (_, false) => Field::Property(name),
    })
}
