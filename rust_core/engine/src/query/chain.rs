//! Types one call chain, call by call, as Segment's reference types it:
//! ```text
//! event(…)                        → stream   (filters keep a stream; reducers end it)
//! trait(…) property(…) context(…) literal(…) 'x' 5
//!                                 → value
//! stream.where/within/between/sources(…) → stream
//! stream.count/sum/avg/min/max/mode/first/last(…) → value
//! stream.unique(…)                → list     (only .count() may follow: → value)
//! value.equals/…/after_next(…)    → boolean  (nothing may follow)
//! ```

use super::args::{self, Usage};
use super::ast::{Comparator, Comparison, EventStream, Field, Filter, Reducer, Reduction, Scalar, ValueType};
use super::check::{Checker, Scope};
use super::error::QueryError;
use super::syntax::{quote_source, Call, Chain, Head};

/// What a chain has produced so far.
pub(crate) enum Typed {
    Stream(EventStream),
    Value(Scalar),
    /// `stream.unique(field)`: a list, which only `.count()` may follow.
    List(EventStream, Field),
    Boolean(Comparison),
}

const FILTERS: [&str; 4] = ["where", "within", "between", "sources"];
const REDUCERS: [&str; 9] = ["count", "sum", "avg", "min", "max", "mode", "first", "last", "unique"];
const COMPARATORS: [&str; 19] = [
    "equals",
    "differs",
    "absent",
    "exists",
    "greater_than",
    "at_least",
    "less_than",
    "at_most",
    "contains",
    "omits",
    "starts_with",
    "ends_with",
    "one_of",
    "before_date",
    "after_date",
    "within_last",
    "within_next",
    "before_last",
    "after_next",
];

fn reduced(stream: EventStream, reducer: Reducer) -> Scalar {
    Scalar::Reduced(Box::new(Reduction { stream, reducer }))
}

impl Typed {
    /// The value of a chain that ends here, as a computed trait may (a list included).
    pub fn into_value(self) -> Option<Scalar> {
        match self {
            Typed::Value(value) => Some(value),
            Typed::List(stream, field) => Some(reduced(stream, Reducer::Unique(field))),
            Typed::Stream(_) | Typed::Boolean(_) => None,
        }
    }

    /// Why this cannot stand left of a comparison symbol.
    pub fn why_not_comparable(&self, text: &str) -> String {
        let text = quote_source(text);
        match self {
            Typed::Stream(_) => format!("cannot compare the event stream {text}: reduce it first, as in .count() >= 3"),
            Typed::List(..) => format!("cannot compare the list {text}: add .count() to compare how many values"),
            Typed::Boolean(_) => format!("nothing may follow a comparator: {text} is already a condition"),
            Typed::Value(_) => String::new(),
        }
    }
}

impl Checker {
    pub(crate) fn chain(&mut self, chain: &Chain, scope: Scope) -> Result<Typed, QueryError> {
        let mut typed = match &chain.head {
            Head::Value(value, _) => Typed::Value(Scalar::Literal(args::literal_of(value))),
            Head::Call(call) => self.extractor(call, scope)?,
        };
        for call in &chain.calls {
            typed = self.method(typed, call, scope)?;
        }
        Ok(typed)
    }

    fn extractor(&mut self, call: &Call, scope: Scope) -> Result<Typed, QueryError> {
        let usage = Usage::of(call);
        match call.name.as_str() {
            "event" => {
                self.count_primary(call.pos)?;
                let name = args::string(args::only(call, usage)?, usage)?;
                Ok(Typed::Stream(EventStream {
                    name,
                    filters: Vec::new(),
                }))
            }
            "trait" => {
                self.count_primary(call.pos)?;
                Ok(Typed::Value(Scalar::Trait(args::string(
                    args::only(call, usage)?,
                    usage,
                )?)))
            }
            "property" | "context" => {
                self.count_primary(call.pos)?;
                Ok(Typed::Value(Scalar::Field(args::field_call(call, scope)?)))
            }
            "literal" => Ok(Typed::Value(Scalar::Literal(args::literal(
                args::only(call, usage)?,
                usage,
            )?))),
            name => {
                let hint = if FILTERS.contains(&name) || REDUCERS.contains(&name) {
                    format!("{name}(...) must follow an event stream, as in event('Name').{name}(...)")
                } else if COMPARATORS.contains(&name) {
                    format!("{name}(...) must follow a value, as in trait('name').{name}(...)")
                } else {
                    format!("unknown function {name}(...): expected event, trait, property, context or literal")
                };
                Err(QueryError::at(call.pos, hint))
            }
        }
    }

    /// Applies `.call(...)` to what the chain has produced so far.
    fn method(&mut self, typed: Typed, call: &Call, scope: Scope) -> Result<Typed, QueryError> {
        let name = call.name.as_str();
        let misplaced = |what: &str| QueryError::at(call.pos, format!("{name}(...) {what}"));
        match typed {
            Typed::Boolean(_) => Err(misplaced(
                "cannot follow a comparator: a comparator ends the expression; join conditions with AND or OR",
            )),
            Typed::List(stream, field) if name == "count" => {
                args::none(call)?;
                Ok(Typed::Value(reduced(stream, Reducer::UniqueCount(field))))
            }
            Typed::List(..) => Err(misplaced("cannot follow unique(...): only .count() may follow a list")),
            Typed::Stream(mut stream) if FILTERS.contains(&name) => {
                stream.filters.push(self.filter(call, scope)?);
                Ok(Typed::Stream(stream))
            }
            Typed::Stream(stream) if REDUCERS.contains(&name) => Ok(match self.reducer(call, scope)? {
                Reducer::Unique(field) => Typed::List(stream, field),
                reducer => Typed::Value(reduced(stream, reducer)),
            }),
            Typed::Stream(_) if COMPARATORS.contains(&name) => Err(misplaced(
                "compares a value: reduce the event stream first, as in .count().at_least(1)",
            )),
            Typed::Value(subject) if COMPARATORS.contains(&name) => {
                let comparator = self.comparator(call, scope)?;
                Ok(Typed::Boolean(Comparison { subject, comparator }))
            }
            Typed::Value(_) if FILTERS.contains(&name) || REDUCERS.contains(&name) => Err(misplaced(
                "applies to an event stream, as in event('Name').within(7 days).count(), not to a single value",
            )),
            _ => Err(misplaced(
                "is not a function of the language: expected a filter (where, within, between, sources), \
                 a reducer (count, sum, avg, min, max, mode, first, last, unique) or a comparator (equals, \
                 at_least, contains, before_date, …)",
            )),
        }
    }

    fn filter(&mut self, call: &Call, scope: Scope) -> Result<Filter, QueryError> {
        let usage = Usage::of(call);
        match call.name.as_str() {
            "where" => {
                let arg = args::plain(args::only(call, usage)?, usage)?;
                let condition = self.condition(args::expr(arg, usage)?, scope.inside_event())?;
                Ok(Filter::Where(condition))
            }
            "within" => {
                let arg = args::only(call, usage)?;
                let parent = args::label(arg, &["parent"], usage)?.is_some();
                let duration = args::positive_duration(arg, usage)?;
                if !parent {
                    return Ok(Filter::Within(duration));
                }
                if scope.events == 0 {
                    return Err(QueryError::at(
                        arg.pos,
                        "within(parent: …) counts from an enclosing event, so it is only allowed on an event \
                         stream nested inside where(...)",
                    ));
                }
                Ok(Filter::WithinParent(duration))
            }
            "between" => {
                let [from, to] = args::exactly::<2>(call, usage)?;
                let (start, end) = (
                    args::duration(args::plain(from, usage)?, usage)?,
                    args::duration(args::plain(to, usage)?, usage)?,
                );
                if start.millis() >= end.millis() {
                    return Err(QueryError::at(
                        from.pos,
                        format!(
                            "between(A, B) needs A shorter than B (events between A and B ago), found {} and {}",
                            quote_source(&from.text),
                            quote_source(&to.text)
                        ),
                    ));
                }
                Ok(Filter::Between(start, end))
            }
            "sources" => Ok(Filter::SourcesExclude(args::source_ids(call, usage)?)),
            _ => unreachable!("only filters reach here"),
        }
    }

    fn reducer(&mut self, call: &Call, scope: Scope) -> Result<Reducer, QueryError> {
        let usage = Usage::of(call);
        let name = call.name.as_str();
        if name == "count" {
            args::none(call)?;
            return Ok(Reducer::Count);
        }
        let (first, rest) = match call.args.split_first() {
            Some(split) => split,
            None => return Err(args::missing(call, usage)),
        };
        let field = self.reducer_field(first, usage, scope)?;
        let compare_as = |allowed: &[ValueType], default: ValueType| args::value_type(first, allowed, default, usage);
        let single = |reducer: Reducer| {
            if !matches!(name, "min" | "max") {
                args::no_type(first, usage)?;
            }
            match rest.first() {
                Some(extra) => Err(args::too_many(extra, usage)),
                None => Ok(reducer),
            }
        };
        match name {
            "sum" => single(Reducer::Sum(field)),
            "avg" => single(Reducer::Avg(field)),
            "first" => single(Reducer::First(field)),
            "last" => single(Reducer::Last(field)),
            "unique" => single(Reducer::Unique(field)),
            "min" | "max" => {
                let compare_as = compare_as(&[ValueType::Number, ValueType::String], ValueType::Number)?;
                single(if name == "min" {
                    Reducer::Min { field, compare_as }
                } else {
                    Reducer::Max { field, compare_as }
                })
            }
            "mode" => {
                let all = [ValueType::String, ValueType::Number, ValueType::Array];
                let compare_as = compare_as(&all, ValueType::String)?;
                let Some((frequency, extra)) = rest.split_first() else {
                    return Err(args::missing(call, usage));
                };
                if let Some(extra) = extra.first() {
                    return Err(args::too_many(extra, usage));
                }
                let min_frequency = args::min_frequency(args::plain(frequency, usage)?, usage)?;
                Ok(Reducer::Mode {
                    field,
                    min_frequency,
                    compare_as,
                })
            }
            _ => unreachable!("only reducers reach here"),
        }
    }

    /// A reducer's argument: `property(...)` or `context(...)` of the stream's events.
    fn reducer_field(&mut self, arg: &super::syntax::Arg, usage: Usage, scope: Scope) -> Result<Field, QueryError> {
        args::unlabeled(arg, usage)?;
        let call = args::field_extractor(arg, usage)?;
        self.count_primary(call.pos)?;
        args::field_call(call, scope.inside_event())
    }

    fn comparator(&mut self, call: &Call, scope: Scope) -> Result<Comparator, QueryError> {
        let usage = Usage::of(call);
        let name = call.name.as_str();
        match name {
            "absent" | "exists" => {
                args::none(call)?;
                return Ok(if name == "absent" {
                    Comparator::Absent
                } else {
                    Comparator::Exists
                });
            }
            "contains" | "omits" | "one_of" => {
                let all = args::at_least_one(call, usage)?;
                return Ok(match name {
                    "one_of" => Comparator::OneOf(args::each(all, usage, args::literal)?),
                    "contains" => Comparator::Contains(args::each(all, usage, args::string)?),
                    _ => Comparator::Omits(args::each(all, usage, args::string)?),
                });
            }
            _ => {}
        }
        let arg = args::plain(args::only(call, usage)?, usage)?;
        Ok(match name {
            "starts_with" => Comparator::StartsWith(args::string(arg, usage)?),
            "ends_with" => Comparator::EndsWith(args::string(arg, usage)?),
            "before_date" => Comparator::BeforeDate(args::date(arg, usage)?),
            "after_date" => Comparator::AfterDate(args::date(arg, usage)?),
            "within_last" => Comparator::WithinLast(args::positive_duration(arg, usage)?),
            "within_next" => Comparator::WithinNext(args::positive_duration(arg, usage)?),
            "before_last" => Comparator::BeforeLast(args::positive_duration(arg, usage)?),
            "after_next" => Comparator::AfterNext(args::positive_duration(arg, usage)?),
            _ => {
                let operand = self.operand(args::expr(arg, usage)?, scope)?;
                match name {
                    "equals" => Comparator::Equals(operand),
                    "differs" => Comparator::Differs(operand),
                    "greater_than" => Comparator::GreaterThan(operand),
                    "at_least" => Comparator::AtLeast(operand),
                    "less_than" => Comparator::LessThan(operand),
                    "at_most" => Comparator::AtMost(operand),
                    _ => unreachable!("only comparators reach here"),
                }
            }
        })
    }
}
