//! A definition evaluated for one entity (a profile or an account), read directly off the
//! semantics in `tests/audience_reference.py`: what the planner (`plan`) falls back to for the
//! parts it cannot answer with bitmaps and counts, and what a single membership check runs.
//!
//! An entity's events come from the event index (time and seq per node), ordered by time then
//! seq (arrival: the reference's "order of the profile's event list"); an event's properties,
//! context and source are read from the log only when a filter or reducer needs them.

use std::cell::{OnceCell, RefCell};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::rc::Rc;

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use super::value::{as_number, equal, instant_micros, instant_of_text, order};
use super::Engage;
use crate::error::Result;
use crate::identity::graph::IdentityGraph;
use crate::profile_reads::source_of;
use crate::profiles::decode_stored;
use crate::query::{Body, Comparator, Condition, Definition, Field, Filter, Kind, Literal, Reducer, Scalar, ValueType};
use crate::store::{ReadTxn, Store};

/// Reads events back from the log, under one read transaction for the whole evaluation.
pub struct LogReader<'a> {
    store: &'a Store,
    txn: ReadTxn<'a>,
}

impl<'a> LogReader<'a> {
    pub fn new(store: &'a Store) -> Result<Self> {
        Ok(Self {
            store,
            txn: store.log.read()?,
        })
    }

    pub fn store(&self) -> &'a Store {
        self.store
    }

    pub fn txn(&self) -> &ReadTxn<'a> {
        &self.txn
    }

    /// The event at `seq` with its source id.
    pub fn event(&self, seq: u64) -> Result<Option<(u32, crate::proto::Event)>> {
        let Some(value) = self.store.log_dbs.events.get(&self.txn.txn, &seq)? else {
            return Ok(None);
        };
        Ok(Some((source_of(value), decode_stored(seq, value)?)))
    }

    pub fn message_id(&self, seq: u64) -> Option<String> {
        self.event(seq).ok().flatten().map(|(_, event)| event.message_id)
    }
}

/// What a filter or reducer reads of an event.
struct EventBody {
    properties: Map<String, Value>,
    context: Value,
    source: u32,
}

/// One event of an entity's stream.
pub struct Ev {
    pub ms: i64,
    pub seq: u64,
    body: OnceCell<Rc<EventBody>>,
}

/// A profile (its identifier nodes) or an account (its traits and users).
pub struct Entity {
    pub kind: Kind,
    /// A user's nodes.
    nodes: Vec<u32>,
    /// An account's traits (from its group calls) and users, with their profile ids, by id.
    account_traits: Map<String, Value>,
    users: Vec<Rc<Entity>>,
    user_ids: Vec<String>,
    /// Events by name id, built on first use.
    streams: RefCell<FxHashMap<u32, Rc<Vec<Rc<Ev>>>>>,
}

impl Entity {
    /// An account's own trait as its group calls set it (never a saved definition's value).
    pub fn account_trait(&self, key: &str) -> Option<&Value> {
        self.account_traits.get(key).filter(|value| !value.is_null())
    }

    pub fn user(nodes: Vec<u32>) -> Self {
        Self {
            kind: Kind::Users,
            nodes,
            account_traits: Map::new(),
            users: Vec::new(),
            user_ids: Vec::new(),
            streams: RefCell::default(),
        }
    }

    /// `users` (profile id, entity) must be in ascending profile-id order (the order an
    /// account's events tie in).
    pub fn account(traits: Map<String, Value>, users: Vec<(String, Rc<Entity>)>) -> Self {
        let (user_ids, users) = users.into_iter().unzip();
        Self {
            kind: Kind::Accounts,
            nodes: Vec::new(),
            account_traits: traits,
            users,
            user_ids,
            streams: RefCell::default(),
        }
    }
}

#[derive(Clone, Copy)]
struct Scope<'s> {
    entity: &'s Entity,
    /// The event a `where` is testing.
    event: Option<&'s Ev>,
    /// The event of the `where` enclosing that one.
    parent: Option<&'s Ev>,
}

/// Everything an evaluation reads; `now_ms` is the evaluation time.
pub struct Evaluator<'a> {
    pub graph: &'a IdentityGraph,
    pub engage: &'a Engage,
    pub log: &'a LogReader<'a>,
    /// Source id → name (`sources(exclude: …)` names a source by name or by id).
    pub sources: &'a FxHashMap<u32, String>,
    /// Saved definitions by key, for `trait('key')`.
    pub saved: &'a FxHashMap<String, Definition>,
    pub now_ms: i64,
}

/// A value: `None` is missing.
type Val = Option<Value>;

/// One node of a definition's tree as `explain` reports it.
pub struct Explained {
    pub depth: u32,
    pub query: String,
    pub holds: bool,
    pub value: Val,
    pub operand: Val,
    /// The events behind a reduced value (those that passed the stream's filters), in order.
    pub seqs: Vec<u64>,
    /// For ANY/ALL: the users for which the part held, and how many users there are.
    pub users: Vec<String>,
    pub users_total: usize,
}

impl Evaluator<'_> {
    /// Whether the entity is in the audience `condition`.
    pub fn holds_for(&self, condition: &Condition, entity: &Entity) -> Result<bool> {
        self.holds(condition, scope_of(entity))
    }

    /// The value of a computed trait for the entity.
    pub fn value_for(&self, scalar: &Scalar, entity: &Entity) -> Result<Val> {
        self.value(scalar, scope_of(entity))
    }

    /// Every node of `condition` for the entity, in reading order, with its verdict and values.
    pub fn explain(&self, condition: &Condition, entity: &Entity) -> Result<Vec<Explained>> {
        let mut out = Vec::new();
        self.explain_into(condition, scope_of(entity), 0, &mut out)?;
        Ok(out)
    }

    fn explain_into(
        &self,
        condition: &Condition,
        scope: Scope<'_>,
        depth: u32,
        out: &mut Vec<Explained>,
    ) -> Result<()> {
        let mut node = Explained {
            depth,
            query: crate::query::render_condition(condition),
            holds: self.holds(condition, scope)?,
            value: None,
            operand: None,
            seqs: Vec::new(),
            users: Vec::new(),
            users_total: 0,
        };
        match condition {
            Condition::And(parts) | Condition::Or(parts) => {
                out.push(node);
                for part in parts {
                    self.explain_into(part, scope, depth + 1, out)?;
                }
            }
            Condition::Not(inner) => {
                out.push(node);
                self.explain_into(inner, scope, depth + 1, out)?;
            }
            Condition::Any(inner) | Condition::All(inner) => {
                let entity = scope.entity;
                for (user, id) in entity.users.iter().zip(&entity.user_ids) {
                    if self.holds(inner, scope_of(user))? {
                        node.users.push(id.clone());
                    }
                }
                node.users_total = entity.users.len();
                out.push(node);
            }
            Condition::Compare(comparison) => {
                node.value = self.value(&comparison.subject, scope)?;
                if let Some(operand) = comparison.comparator.operand() {
                    node.operand = self.value(operand, scope)?;
                }
                if let Scalar::Reduced(reduction) = &comparison.subject {
                    let events = self.stream(&reduction.stream.name, &reduction.stream.filters, scope)?;
                    node.seqs = events.iter().map(|event| event.seq).collect();
                }
                out.push(node);
            }
        }
        Ok(())
    }

    /// The entity's events of `name`, in stream order, as (time, seq).
    pub fn events_named(&self, entity: &Entity, name: &str) -> Vec<(i64, u64)> {
        self.events_of(entity, name)
            .iter()
            .map(|event| (event.ms, event.seq))
            .collect()
    }

    fn holds(&self, condition: &Condition, scope: Scope<'_>) -> Result<bool> {
        Ok(match condition {
            Condition::And(parts) => {
                for part in parts {
                    if !self.holds(part, scope)? {
                        return Ok(false);
                    }
                }
                true
            }
            Condition::Or(parts) => {
                for part in parts {
                    if self.holds(part, scope)? {
                        return Ok(true);
                    }
                }
                false
            }
            Condition::Not(inner) => !self.holds(inner, scope)?,
            Condition::Any(inner) => {
                for user in &scope.entity.users {
                    if self.holds(inner, scope_of(user))? {
                        return Ok(true);
                    }
                }
                false
            }
            Condition::All(inner) => {
                for user in &scope.entity.users {
                    if !self.holds(inner, scope_of(user))? {
                        return Ok(false);
                    }
                }
                true
            }
            Condition::Compare(comparison) => {
                let value = self.value(&comparison.subject, scope)?;
                let operand = match comparison.comparator.operand() {
                    Some(operand) if value.is_some() => self.value(operand, scope)?,
                    _ => None,
                };
                test(&comparison.comparator, value.as_ref(), operand.as_ref(), self.now_ms)
            }
        })
    }

    fn value(&self, scalar: &Scalar, scope: Scope<'_>) -> Result<Val> {
        match scalar {
            Scalar::Trait(name) => self.trait_of(name, scope.entity),
            Scalar::Literal(literal) => Ok(Some(literal_value(literal))),
            Scalar::Field(field) => {
                let event = match field {
                    Field::ParentProperty(_) => scope.parent,
                    _ => scope.event,
                };
                match event {
                    Some(event) => Ok(self.field(field, event)?),
                    None => Ok(None),
                }
            }
            Scalar::Reduced(reduction) => {
                if let Some(count) = self.windowed_count(reduction, scope.entity) {
                    return Ok(Some(Value::from(count)));
                }
                let events = self.stream(&reduction.stream.name, &reduction.stream.filters, scope)?;
                self.reduce(&reduction.reducer, &events)
            }
        }
    }

    /// `count()` of a user's stream filtered by time windows only, read off its nodes' event
    /// lists by binary search (no stream built): what real-time re-evaluation mostly asks.
    fn windowed_count(&self, reduction: &crate::query::Reduction, entity: &Entity) -> Option<u64> {
        if reduction.reducer != Reducer::Count || entity.kind != Kind::Users {
            return None;
        }
        let (from, to) = time_window(&reduction.stream.filters, self.now_ms)?;
        let Some(name) = self.engage.events.name_id(&reduction.stream.name) else {
            return Some(0);
        };
        let nodes = entity
            .nodes
            .iter()
            .filter_map(|&node| self.engage.events.events(node, name));
        Some(nodes.map(|events| events.count(from, to)).sum())
    }

    /// A trait of the entity; a saved definition's key gives its membership (true or missing)
    /// or its computed value.
    pub fn trait_of(&self, name: &str, entity: &Entity) -> Result<Val> {
        if let Some(definition) = self.saved.get(name) {
            return match &definition.body {
                Body::Audience(condition) => Ok(self.holds(condition, scope_of(entity))?.then_some(Value::Bool(true))),
                Body::ComputedTrait(scalar) => self.value(scalar, scope_of(entity)),
            };
        }
        if entity.kind == Kind::Accounts {
            return Ok(entity.account_traits.get(name).filter(|v| !v.is_null()).cloned());
        }
        Ok(self.user_trait(&entity.nodes, name))
    }

    /// A profile's stored trait: the latest value among its nodes'.
    pub fn user_trait(&self, nodes: &[u32], name: &str) -> Val {
        let index = &self.engage.traits;
        let trait_id = index.trait_id(name)?;
        let mut message_id_of = |seq| self.log.message_id(seq);
        let mut best = None;
        for &node in nodes {
            if let Some(entry) = index.entry(node, trait_id) {
                best = Some(match best {
                    None => entry,
                    Some(known) => super::traits::latest(known, entry, &mut message_id_of),
                });
            }
        }
        best.map(|entry| index.value(entry)).filter(|v| !v.is_null()).cloned()
    }

    /// The entity's events of `name` that pass every filter, in stream order.
    fn stream(&self, name: &str, filters: &[Filter], scope: Scope<'_>) -> Result<Vec<Rc<Ev>>> {
        let all = self.events_of(scope.entity, name);
        let mut kept = Vec::new();
        'events: for event in all.iter() {
            // Time filters first: they need no read of the event.
            for filter in filters.iter().filter(|f| is_time_filter(f)) {
                if !self.keeps(filter, event, scope)? {
                    continue 'events;
                }
            }
            for filter in filters.iter().filter(|f| !is_time_filter(f)) {
                if !self.keeps(filter, event, scope)? {
                    continue 'events;
                }
            }
            kept.push(Rc::clone(event));
        }
        Ok(kept)
    }

    fn events_of(&self, entity: &Entity, name: &str) -> Rc<Vec<Rc<Ev>>> {
        let Some(name_id) = self.engage.events.name_id(name) else {
            return Rc::default();
        };
        if let Some(found) = entity.streams.borrow().get(&name_id) {
            return Rc::clone(found);
        }
        let events: Vec<Rc<Ev>> = if entity.kind == Kind::Users {
            let mut times: Vec<(i64, u64)> = entity
                .nodes
                .iter()
                .filter_map(|&node| self.engage.events.events(node, name_id))
                .flat_map(|events| events.all().iter().copied())
                .collect();
            times.sort_unstable();
            times
                .into_iter()
                .map(|(ms, seq)| {
                    Rc::new(Ev {
                        ms,
                        seq,
                        body: OnceCell::new(),
                    })
                })
                .collect()
        } else {
            // Users in profile-id order, then a stable sort by time.
            let mut events: Vec<Rc<Ev>> = entity
                .users
                .iter()
                .flat_map(|user| self.events_of(user, name).iter().cloned().collect::<Vec<_>>())
                .collect();
            events.sort_by_key(|event| event.ms);
            events
        };
        let events = Rc::new(events);
        entity.streams.borrow_mut().insert(name_id, Rc::clone(&events));
        events
    }

    fn keeps(&self, filter: &Filter, event: &Ev, scope: Scope<'_>) -> Result<bool> {
        let now = self.now_ms;
        Ok(match filter {
            Filter::Where(condition) => self.holds(
                condition,
                Scope {
                    entity: scope.entity,
                    event: Some(event),
                    parent: scope.event,
                },
            )?,
            Filter::Within(span) => now - span.millis() <= event.ms && event.ms <= now,
            Filter::WithinParent(span) => match scope.event {
                Some(parent) => parent.ms <= event.ms && event.ms <= parent.ms + span.millis(),
                None => false,
            },
            Filter::Between(from, to) => now - to.millis() <= event.ms && event.ms < now - from.millis(),
            Filter::SourcesExclude(excluded) => {
                let source = self.body(event)?.source;
                let name = self.sources.get(&source).map(String::as_str);
                let id = source.to_string();
                !excluded.iter().any(|x| Some(x.as_str()) == name || *x == id)
            }
        })
    }

    fn body(&self, event: &Ev) -> Result<Rc<EventBody>> {
        if let Some(body) = event.body.get() {
            return Ok(Rc::clone(body));
        }
        let (source, stored) = self.log.event(event.seq)?.unwrap_or_default();
        let properties = crate::json::parse_object(&stored.properties)
            .ok()
            .flatten()
            .unwrap_or_default();
        let context = serde_json::from_slice(&stored.context).unwrap_or(Value::Null);
        let body = Rc::new(EventBody {
            properties,
            context,
            source,
        });
        Ok(Rc::clone(event.body.get_or_init(|| body)))
    }

    fn field(&self, field: &Field, event: &Ev) -> Result<Val> {
        let body = self.body(event)?;
        let found = match field {
            Field::Property(name) | Field::ParentProperty(name) => body.properties.get(name),
            Field::Context(path) => {
                let mut at = Some(&body.context);
                for step in path.split('.') {
                    at = at
                        .and_then(|value| value.as_object())
                        .and_then(|object| object.get(step));
                }
                at
            }
        };
        Ok(found.filter(|v| !v.is_null()).cloned())
    }

    fn reduce(&self, reducer: &Reducer, events: &[Rc<Ev>]) -> Result<Val> {
        let Some(field) = reducer.field() else {
            return Ok(Some(Value::from(events.len() as u64)));
        };
        let mut values = Vec::new();
        for event in events {
            if let Some(value) = self.field(field, event)? {
                values.push(value);
            }
        }
        Ok(reduce_values(reducer, values))
    }
}

/// The reducers other than `count`, over the present values in stream order.
pub fn reduce_values(reducer: &Reducer, values: Vec<Value>) -> Val {
    let numbers = || values.iter().filter_map(as_number).collect::<Vec<f64>>();
    match reducer {
        Reducer::Count => Some(Value::from(values.len() as u64)),
        Reducer::Sum(_) => number(numbers().iter().fold(0.0, |total, x| total + x)),
        Reducer::Avg(_) => {
            let numbers = numbers();
            if numbers.is_empty() {
                None
            } else {
                number(numbers.iter().fold(0.0, |total, x| total + x) / numbers.len() as f64)
            }
        }
        Reducer::Min { compare_as, .. } | Reducer::Max { compare_as, .. } => {
            let want = if matches!(reducer, Reducer::Min { .. }) {
                Ordering::Less
            } else {
                Ordering::Greater
            };
            if *compare_as == ValueType::String {
                let mut best: Option<&str> = None;
                for text in values.iter().filter_map(Value::as_str) {
                    if best.is_none_or(|b| text.as_bytes().cmp(b.as_bytes()) == want) {
                        best = Some(text);
                    }
                }
                best.map(Value::from)
            } else {
                let mut best: Option<f64> = None;
                for x in numbers() {
                    if best.is_none_or(|b| x.total_cmp(&b) == want) {
                        best = Some(x);
                    }
                }
                best.and_then(number)
            }
        }
        Reducer::First(_) => values.into_iter().next(),
        Reducer::Last(_) => values.into_iter().last(),
        Reducer::Mode {
            min_frequency,
            compare_as,
            ..
        } => mode(values, *min_frequency, *compare_as == ValueType::Array),
        Reducer::Unique(_) => Some(Value::Array(distinct(values))),
        Reducer::UniqueCount(_) => Some(Value::from(distinct(values).len() as u64)),
    }
}

fn number(x: f64) -> Val {
    serde_json::Number::from_f64(x).map(Value::Number)
}

/// A value ordered by `value::order`, for maps that group "the same value".
struct Ordered(Value);

impl PartialEq for Ordered {
    fn eq(&self, other: &Self) -> bool {
        order(&self.0, &other.0) == Ordering::Equal
    }
}
impl Eq for Ordered {}
impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> Ordering {
        order(&self.0, &other.0)
    }
}

/// Distinct values in first-seen order, each as first seen.
fn distinct(values: Vec<Value>) -> Vec<Value> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for value in values {
        if seen.insert(Ordered(value.clone())) {
            out.push(value);
        }
    }
    out
}

/// The most frequent value seen at least `min` times; ties go to the smallest value; the value
/// returned is the first seen of its group. Array values count each element unless `as_array`.
fn mode(values: Vec<Value>, min: u32, as_array: bool) -> Val {
    // (count, first seen) by value.
    let mut groups: BTreeMap<Ordered, (u32, Value)> = BTreeMap::new();
    let mut add = |item: Value| {
        if !item.is_null() {
            groups.entry(Ordered(item.clone())).or_insert((0, item)).0 += 1;
        }
    };
    for value in values {
        match value {
            Value::Array(items) if !as_array => items.into_iter().for_each(&mut add),
            other => add(other),
        }
    }
    // Ascending value order: the first with the highest count wins ties.
    let mut best: Option<(u32, Value)> = None;
    for (count, first) in groups.into_values() {
        if count >= min && best.as_ref().is_none_or(|(n, _)| count > *n) {
            best = Some((count, first));
        }
    }
    best.map(|(_, value)| value)
}

fn scope_of(entity: &Entity) -> Scope<'_> {
    Scope {
        entity,
        event: None,
        parent: None,
    }
}

/// The times `from..=to` (ms) a stream's filters keep when they are all `within`/`between`
/// (`within(N)`: `now - N <= t <= now`; `between(A, B)`: `now - B <= t < now - A`); None when
/// another filter reads the events.
pub fn time_window(filters: &[Filter], now_ms: i64) -> Option<(i64, i64)> {
    let (mut from, mut to) = (i64::MIN, i64::MAX);
    for filter in filters {
        let (start, end) = match filter {
            Filter::Within(span) => (now_ms - span.millis(), now_ms),
            Filter::Between(a, b) => (now_ms - b.millis(), now_ms - a.millis() - 1),
            _ => return None,
        };
        (from, to) = (from.max(start), to.min(end));
    }
    Some((from, to))
}

fn is_time_filter(filter: &Filter) -> bool {
    matches!(
        filter,
        Filter::Within(_) | Filter::Between(..) | Filter::WithinParent(_)
    )
}

pub fn literal_value(literal: &Literal) -> Value {
    match literal {
        Literal::String(text) => Value::from(text.as_str()),
        Literal::Integer(n) => Value::from(*n),
        Literal::Decimal(x) => number(*x).unwrap_or(Value::Null),
        Literal::Bool(b) => Value::Bool(*b),
    }
}

/// A comparator applied to a value (`None`: missing) and its operand's value, at `now_ms`.
pub fn test(comparator: &Comparator, value: Option<&Value>, operand: Option<&Value>, now_ms: i64) -> bool {
    let value = match (comparator, value) {
        (Comparator::Exists, value) => return value.is_some(),
        (Comparator::Absent, value) => return value.is_none(),
        (_, None) => return false,
        (_, Some(value)) => value,
    };
    let numbers = || operand.and_then(as_number).zip(as_number(value));
    let text = value.as_str();
    let now_us = now_ms * 1000;
    let instant = || instant_micros(value);
    match comparator {
        Comparator::Exists | Comparator::Absent => unreachable!("answered above"),
        Comparator::Equals(_) => operand.is_some_and(|operand| equal(value, operand)),
        Comparator::Differs(_) => operand.is_some_and(|operand| !equal(value, operand)),
        Comparator::GreaterThan(_) => numbers().is_some_and(|(y, x)| x > y),
        Comparator::AtLeast(_) => numbers().is_some_and(|(y, x)| x >= y),
        Comparator::LessThan(_) => numbers().is_some_and(|(y, x)| x < y),
        Comparator::AtMost(_) => numbers().is_some_and(|(y, x)| x <= y),
        Comparator::Contains(needles) => text.is_some_and(|t| needles.iter().any(|n| t.contains(n.as_str()))),
        Comparator::Omits(needles) => !text.is_some_and(|t| needles.iter().any(|n| t.contains(n.as_str()))),
        Comparator::StartsWith(prefix) => text.is_some_and(|t| t.starts_with(prefix.as_str())),
        Comparator::EndsWith(suffix) => text.is_some_and(|t| t.ends_with(suffix.as_str())),
        Comparator::OneOf(literals) => literals.iter().any(|l| equal(value, &literal_value(l))),
        Comparator::BeforeDate(date) => {
            let limit = instant_of_text(&date.text).unwrap_or(date.epoch_ms * 1000);
            instant().is_some_and(|t| t < limit)
        }
        Comparator::AfterDate(date) => {
            let limit = instant_of_text(&date.text).unwrap_or(date.epoch_ms * 1000);
            instant().is_some_and(|t| t > limit)
        }
        Comparator::WithinLast(span) => instant().is_some_and(|t| now_us - span.millis() * 1000 <= t && t <= now_us),
        Comparator::WithinNext(span) => instant().is_some_and(|t| now_us <= t && t <= now_us + span.millis() * 1000),
        Comparator::BeforeLast(span) => instant().is_some_and(|t| t <= now_us - span.millis() * 1000),
        Comparator::AfterNext(span) => instant().is_some_and(|t| t >= now_us + span.millis() * 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reducers_follow_the_contract() {
        let values = || vec![json!(3), json!("2.5"), json!("x"), json!(true), json!("b"), json!("a")];
        let field = Field::Property("p".into());
        assert_eq!(reduce_values(&Reducer::Sum(field.clone()), values()), Some(json!(5.5)));
        assert_eq!(reduce_values(&Reducer::Sum(field.clone()), vec![]), Some(json!(0.0)));
        assert_eq!(reduce_values(&Reducer::Avg(field.clone()), vec![]), None);
        let min = |compare_as| Reducer::Min {
            field: field.clone(),
            compare_as,
        };
        assert_eq!(reduce_values(&min(ValueType::Number), values()), Some(json!(2.5)));
        assert_eq!(reduce_values(&min(ValueType::String), values()), Some(json!("2.5")));
        assert_eq!(reduce_values(&Reducer::First(field.clone()), values()), Some(json!(3)));
        assert_eq!(reduce_values(&Reducer::Last(field.clone()), values()), Some(json!("a")));
        let unique = reduce_values(
            &Reducer::Unique(field.clone()),
            vec![json!(5), json!(5.0), json!("5"), json!([1])],
        );
        assert_eq!(unique, Some(json!([5, "5", [1]])));
        assert_eq!(
            reduce_values(&Reducer::UniqueCount(field.clone()), vec![]),
            Some(json!(0))
        );
    }

    #[test]
    fn mode_breaks_ties_by_the_smallest_value_and_spreads_arrays() {
        let mode_of = |values: Vec<Value>, min, compare_as| {
            let reducer = Reducer::Mode {
                field: Field::Property("p".into()),
                min_frequency: min,
                compare_as,
            };
            reduce_values(&reducer, values)
        };
        let values = vec![json!("b"), json!("a"), json!("b"), json!("a"), json!(9)];
        assert_eq!(mode_of(values.clone(), 1, ValueType::String), Some(json!("a")));
        assert_eq!(mode_of(values, 3, ValueType::String), None);
        let arrays = vec![json!(["x", "y"]), json!(["y"]), json!(["x", "y"])];
        assert_eq!(mode_of(arrays.clone(), 1, ValueType::String), Some(json!("y")));
        assert_eq!(mode_of(arrays, 1, ValueType::Array), Some(json!(["x", "y"])));
        assert_eq!(
            mode_of(vec![json!(2.0), json!(2)], 2, ValueType::Number),
            Some(json!(2.0))
        );
    }

    #[test]
    fn comparators_are_false_on_missing_values_but_absent() {
        let eq = Comparator::Equals(Scalar::Literal(Literal::Integer(5)));
        assert!(test(&eq, Some(&json!("5")), Some(&json!(5)), 0));
        assert!(!test(&eq, None, Some(&json!(5)), 0));
        assert!(test(&Comparator::Absent, None, None, 0));
        let differs = Comparator::Differs(Scalar::Literal(Literal::Integer(1)));
        assert!(test(&differs, Some(&json!("abc")), Some(&json!(1)), 0));
        assert!(!test(&differs, None, Some(&json!(1)), 0));
        let omits = Comparator::Omits(vec!["a".into()]);
        assert!(test(&omits, Some(&json!(5)), None, 0), "a number omits everything");
        let gt = Comparator::GreaterThan(Scalar::Literal(Literal::Integer(1)));
        assert!(
            !test(&gt, Some(&json!("b")), Some(&json!("a")), 0),
            "strings are not ordered"
        );
        let day = crate::query::Duration::new(1, crate::query::TimeUnit::Days);
        let now = 10 * 86_400_000;
        assert!(test(
            &Comparator::WithinLast(day),
            Some(&json!("1970-01-10")),
            None,
            now
        ));
        assert!(!test(
            &Comparator::WithinLast(day),
            Some(&json!("1970-01-08")),
            None,
            now
        ));
        assert!(test(
            &Comparator::BeforeLast(day),
            Some(&json!("1970-01-10")),
            None,
            now + 86_400_000
        ));
    }
}
