//! The checked syntax tree of a definition: what a planner walks.
//!
//! Invariants (established by the checker, relied on by the planner and the renderer):
//! - every node is typed: a [`Condition`] is boolean, a [`Scalar`] is a value, an event stream
//!   only appears reduced ([`Reduction`]), so no node needs a type test at evaluation time;
//! - `And`/`Or` hold at least two parts; parentheses the user wrote around a junction of the
//!   same kind are kept as nesting (`a AND (b AND c)`), so rendering reproduces the same tree;
//! - `Field`s (`property`/`context`) only appear where an event is in scope (inside `where(...)`
//!   or as a reducer's argument), `ParentProperty` and `WithinParent` only where an enclosing
//!   event exists, `Any`/`All` only at the top of an `ACCOUNTS` audience, outside `where(...)`
//!   and not nested in one another;
//! - at most [`MAX_PRIMARY_EXPRESSIONS`] primary expressions (see
//!   [`Definition::primary_expressions`]).
//!
//! Nodes carry no source positions: two trees are equal when they mean the same thing, wherever
//! it was written. Positions only matter for errors, which the checker reports before a tree
//! exists.

/// The most primary expressions a definition may hold (Segment's limit).
pub const MAX_PRIMARY_EXPRESSIONS: usize = 50;

/// Whom a definition is about: profiles, or accounts (groups, from `group` calls).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Users,
    Accounts,
}

/// A parsed and checked definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Definition {
    pub kind: Kind,
    pub body: Body,
}

/// What a definition computes: membership (an audience) or a value (a computed trait).
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Audience(Condition),
    ComputedTrait(Scalar),
}

/// A boolean expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// True when every part holds (two or more parts).
    And(Vec<Condition>),
    /// True when some part holds (two or more parts).
    Or(Vec<Condition>),
    Not(Box<Condition>),
    /// Accounts only: true when some user of the account satisfies the condition.
    Any(Box<Condition>),
    /// Accounts only: true when every user of the account satisfies the condition.
    All(Box<Condition>),
    Compare(Comparison),
}

/// A value tested by a comparator: `trait('plan') = 'pro'`, `….count() >= 3`.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub subject: Scalar,
    pub comparator: Comparator,
}

/// A single value.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// A profile trait; an audience key used as a trait name also lands here (the caller
    /// resolves keys to audiences later).
    Trait(String),
    Literal(Literal),
    /// A field of the event in scope (only inside `where(...)` or a reducer's argument).
    Field(Field),
    /// An event stream reduced to a value.
    Reduced(Box<Reduction>),
}

/// A constant. Integers and decimals stay apart so counts compare exactly.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    String(String),
    Integer(i64),
    /// Always finite.
    Decimal(f64),
    /// `true`/`false`: what a boolean trait (such as an audience membership) holds.
    Bool(bool),
}

/// A value read from an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `property('name')`: a property of the event in scope.
    Property(String),
    /// `property(parent: 'name')`: a property of the enclosing event (nested streams only).
    ParentProperty(String),
    /// `context('page.url')`: a dotted path into the event's context.
    Context(String),
}

/// `event('Name')` with its filters, reduced to a value.
#[derive(Clone, Debug, PartialEq)]
pub struct Reduction {
    pub stream: EventStream,
    pub reducer: Reducer,
}

/// The events of one name, filtered; filters apply in any order (they all intersect).
#[derive(Clone, Debug, PartialEq)]
pub struct EventStream {
    pub name: String,
    pub filters: Vec<Filter>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// Keeps events for which the condition holds.
    Where(Condition),
    /// Events in the last N units before evaluation time.
    Within(Duration),
    /// Events at most N units after the enclosing event (nested streams only).
    WithinParent(Duration),
    /// Events between `from` and `to` units ago; `from < to`.
    Between(Duration, Duration),
    /// Events whose source id is not listed.
    SourcesExclude(Vec<String>),
}

/// How a stream becomes a value.
#[derive(Clone, Debug, PartialEq)]
pub enum Reducer {
    Count,
    Sum(Field),
    Avg(Field),
    /// `compare_as` is `Number` (the default) or `String` (lexicographic).
    Min {
        field: Field,
        compare_as: ValueType,
    },
    Max {
        field: Field,
        compare_as: ValueType,
    },
    /// The most frequent value seen at least `min_frequency` (≥ 1) times; `compare_as` is
    /// `String` (the default), `Number` (same behaviour) or `Array` (an array is one value).
    Mode {
        field: Field,
        min_frequency: u32,
        compare_as: ValueType,
    },
    First(Field),
    Last(Field),
    /// The list of distinct values (a list, so only a computed trait may end here).
    Unique(Field),
    /// `unique(...).count()`: how many distinct values.
    UniqueCount(Field),
}

/// The `as <type>` of `min`, `max` and `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    Number,
    String,
    Array,
}

/// A test of a scalar.
#[derive(Clone, Debug, PartialEq)]
pub enum Comparator {
    Equals(Scalar),
    /// True only when the value exists and is not equal.
    Differs(Scalar),
    Absent,
    Exists,
    GreaterThan(Scalar),
    AtLeast(Scalar),
    LessThan(Scalar),
    AtMost(Scalar),
    /// The value contains any of these as a substring (one or more).
    Contains(Vec<String>),
    /// The value contains none of these (one or more).
    Omits(Vec<String>),
    StartsWith(String),
    EndsWith(String),
    /// The value equals one of these exactly (one or more).
    OneOf(Vec<Literal>),
    BeforeDate(Date),
    AfterDate(Date),
    WithinLast(Duration),
    WithinNext(Duration),
    BeforeLast(Duration),
    AfterNext(Duration),
}

/// A length of time as written: the unit is kept so the definition renders as the user wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Duration {
    pub amount: u32,
    pub unit: TimeUnit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    Hours,
    Days,
}

impl Duration {
    pub fn new(amount: u32, unit: TimeUnit) -> Self {
        Duration { amount, unit }
    }

    /// The length in milliseconds (cannot overflow: `u32::MAX` days is far below `i64::MAX` ms).
    pub fn millis(&self) -> i64 {
        let unit_ms: i64 = match self.unit {
            TimeUnit::Hours => 3_600_000,
            TimeUnit::Days => 86_400_000,
        };
        i64::from(self.amount) * unit_ms
    }
}

/// An ISO-8601 date or date-time as written, with the instant it denotes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Date {
    /// The text between the quotes, kept for rendering.
    pub text: String,
    /// Unix milliseconds (a bare date is midnight UTC).
    pub epoch_ms: i64,
}

impl Definition {
    /// How many primary expressions the definition holds: every `event(...)`, `trait(...)`,
    /// `property(...)` and `context(...)` call, wherever it appears (at the top, inside
    /// `where(...)`, as a reducer's argument or as a comparator's argument). Literals are not
    /// counted, written bare or as `literal(...)`: they read no data, and both spellings give
    /// the same tree.
    pub fn primary_expressions(&self) -> usize {
        match &self.body {
            Body::Audience(condition) => condition.primary_expressions(),
            Body::ComputedTrait(scalar) => scalar.primary_expressions(),
        }
    }
}

impl Condition {
    /// See [`Definition::primary_expressions`].
    pub fn primary_expressions(&self) -> usize {
        match self {
            Condition::And(parts) | Condition::Or(parts) => parts.iter().map(Condition::primary_expressions).sum(),
            Condition::Not(inner) | Condition::Any(inner) | Condition::All(inner) => inner.primary_expressions(),
            Condition::Compare(comparison) => {
                comparison.subject.primary_expressions() + comparison.comparator.primary_expressions()
            }
        }
    }
}

impl Scalar {
    /// See [`Definition::primary_expressions`].
    pub fn primary_expressions(&self) -> usize {
        match self {
            Scalar::Trait(_) | Scalar::Field(_) => 1,
            Scalar::Literal(_) => 0,
            Scalar::Reduced(reduction) => {
                let filters: usize = reduction.stream.filters.iter().map(Filter::primary_expressions).sum();
                let argument = usize::from(reduction.reducer.field().is_some());
                1 + filters + argument
            }
        }
    }
}

impl Filter {
    fn primary_expressions(&self) -> usize {
        match self {
            Filter::Where(condition) => condition.primary_expressions(),
            _ => 0,
        }
    }
}

impl Comparator {
    /// The scalar compared against, for the comparators that take one.
    pub fn operand(&self) -> Option<&Scalar> {
        match self {
            Comparator::Equals(value)
            | Comparator::Differs(value)
            | Comparator::GreaterThan(value)
            | Comparator::AtLeast(value)
            | Comparator::LessThan(value)
            | Comparator::AtMost(value) => Some(value),
            _ => None,
        }
    }

    fn primary_expressions(&self) -> usize {
        self.operand().map_or(0, Scalar::primary_expressions)
    }
}

impl Reducer {
    /// The event field the reducer reads, if any (`count()` reads none).
    pub fn field(&self) -> Option<&Field> {
        match self {
            Reducer::Count => None,
            Reducer::Sum(field)
            | Reducer::Avg(field)
            | Reducer::First(field)
            | Reducer::Last(field)
            | Reducer::Unique(field)
            | Reducer::UniqueCount(field)
            | Reducer::Min { field, .. }
            | Reducer::Max { field, .. }
            | Reducer::Mode { field, .. } => Some(field),
        }
    }

    /// True for `unique(...)`, whose value is a list rather than a single value.
    pub fn gives_list(&self) -> bool {
        matches!(self, Reducer::Unique(_))
    }
}
