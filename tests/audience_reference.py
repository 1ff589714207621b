"""A small, slow, obviously-correct reference of the audience and computed-trait query language (QUERY_LANGUAGE.md).

The Rust engine (bitmaps, aggregates, plans) is checked against this: a hypothesis test draws a world and a
definition (audience_workload.py: `worlds`, `definitions`), sends the world's events to a server, asks it for the
members of `render(definition)` (audience_query.py, which also holds the tree and `check`) and compares them with
`members(definition, world, now)` here. Everything here is plain loops over Python lists and sets.

The semantics below are the contract; the Rust side copies them word for word.

Values
- A value is JSON: None, bool, int, float, str, list, dict. **Missing** means no key or a null value, and is None here.
- **Numbers**: int and float but never bool. A string is numeric when it fully matches `NUMERIC_STRING`
  (`[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+)?`, no surrounding whitespace, no inf/nan); it then counts as
  that number (parsed as an f64). Every number is compared as an f64; a non-finite result is not a number.
- **Instants** (date comparators): an aware datetime, or a string fully matching `YYYY-MM-DD` (midnight UTC) or
  `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` (uppercase T and Z; fraction truncated to microseconds). A string
  without a zone, or any other value, is not an instant.
- **Same value** (`mode`, `unique`): numbers by their f64 value (5 and 5.0 are one value), strings by their text, bools
  by themselves, never across types ("5" and 5 are two values); arrays element by element. The total order used to
  break ties (`value_order`): bools (false < true) < numbers < strings (by code point, = UTF-8 byte order) < arrays
  (element-wise) < objects (by their sorted-key JSON text).

Extractors
- `trait('k')`: the key `k` of the entity's traits, exactly (no dotted walk). For a USERS definition, or inside ANY/ALL,
  the entity is the user; outside ANY/ALL in an ACCOUNTS definition it is the account (its group traits).
- An audience key used as a trait (`others` maps keys to definitions) is **true for members and missing otherwise**
  (the trait is set on entry and cleared on exit), so `trait('vip').exists()` tests membership. A computed-trait key
  gives the computed value. Such a key hides a stored trait of the same name. A reference must have the kind of the
  place it is used in (an account-level `trait()` names an ACCOUNTS definition); cycles raise `AudienceCycleError`.
- `property('p')`: the key `p` of the event's properties (exactly); `property(parent: 'p')` the same on the event of
  the enclosing `where`. `context('a.b')` walks the event's context by dots; a missing step is missing.
- `event('Name')` of a user: that user's events with that exact name. Of an **account** (outside ANY/ALL): the events
  of all its users (an account has no events of its own).

Event streams
- Order: by timestamp; equal timestamps keep the order of the profile's event list; in an account, the users'
  events are concatenated in ascending user-id order first (then the same stable sort).
- Filters are conditions on single events, so their order does not matter; all of them must hold.
- `within(N unit)`: `now - N <= t <= now` (both ends inclusive; an event after `now` is excluded).
- `between(A unit, B unit)`: `now - B <= t < now - A` (start inclusive, end exclusive; so `between(0 days, ...)`
  excludes an event at exactly `now`). Requires `0 <= A < B` (as durations; units may differ).
- `within(parent: N unit)` on a stream inside a `where`: `p <= t <= p + N` where `p` is the timestamp of the event
  the `where` is testing (inclusive both ends; the parent event itself counts if it has the stream's name; no `now`
  bound). A stream without `within`/`between` keeps every event, including events after `now`.
- `sources(exclude: ...)`: events whose source id is not listed.
- `where(c)`: the events e for which `c` holds. Inside `c`, `property()` / `context()` read e, `trait()` reads the
  entity, and a stream nested in `c` is a stream of the same entity whose `within(parent:)` and whose own `where`'s
  `property(parent:)` refer to e.
- Units: `hours` = 3600 s, `days` = 86400 s (UTC, no calendar). Amounts are integers; `within`, `within_last` &c.
  need N >= 1.

Reducers (missing values are skipped everywhere)
- `count()`: number of events (0 on an empty stream).
- `sum(p)`: sum of the numeric values (numbers and numeric strings; others skipped), an f64; **0 when there are none**.
- `avg(p)`: sum / how many numeric values; **missing when there are none**.
- `min(p)` / `max(p)`: of the numeric values, an f64; missing when none. `as string`: of the **string** values only
  (numbers are not converted), by code point; missing when none.
- `mode(p, N)`: the value seen most often, if seen at least N times (N >= 1); **ties go to the smallest value in
  `value_order`**; missing if no value reaches N. An array value counts each of its elements (each time it occurs);
  with `as array` the whole array is one value. The value returned is the first one seen of the winning group.
- `first(p)` / `last(p)`: the value of the earliest / latest event (stream order) **that has the value**; with equal
  timestamps the earlier-listed event is first and the later-listed one is last. Missing when none has it.
- `unique(p)`: the distinct values (same value as above; arrays are one value) in **first-seen order**, each as first
  seen; `[]` when none (never missing). `unique(p).count()`: how many.
- Sums are exact here (`math.fsum`); the strategies only draw numbers that are multiples of 1/4 and small, so any
  summation order gives the same f64 and the Rust side can compare exactly.

Comparators (a comparator on a missing subject is false, except `absent()`; a missing operand makes it false too)
- `exists()` / `absent()`: the value is / is not missing.
- `equals(v)` (`=`, `==`): if either side is a number, both must be numbers (numeric strings count) and equal as f64;
  two strings by exact text; two bools by value; anything else (arrays, objects, mixed types) is not equal.
- `differs(v)` (`!=`): both present and not `equals`. So `'abc' != 5` is true, and `x != 1` is false without x.
- `greater_than` `>`, `at_least` `>=`, `less_than` `<`, `at_most` `<=`: both sides numbers (numeric strings count),
  else false. Strings are never ordered by these.
- `contains('a', ...)`: the value is a string containing any argument (case-sensitive). `omits('a')`: present and not
  `contains('a')` (so a number omits everything). `starts_with`, `ends_with`: strings only, case-sensitive.
- `one_of(v, ...)`: `equals` any argument.
- Date comparators, with `t` the value as an instant (else false): `before_date(T)`: `t < T`; `after_date(T)`:
  `t > T`; `within_last(N u)`: `now - N <= t <= now`; `within_next(N u)`: `now <= t <= now + N`; `before_last(N u)`:
  `t <= now - N`; `after_next(N u)`: `t >= now + N`.

Junctions
- `NOT` inverts the whole result (`NOT (x = 1)` holds without x). `AND` binds tighter than `OR`; `NOT`, `ANY`, `ALL`
  are prefix operators on the following comparison or parenthesised group.
- `ANY(c)` (ACCOUNTS only, not nested, not in `where`): some user of the account satisfies `c`; `ALL(c)`: every user
  does, **true for an account without users** (so `ALL(c)` == `NOT ANY(NOT c)`). Member ids that are not profiles are
  ignored.

Limits: at most 50 primary expressions: every `event()`, `trait()`, `property()` and `context()` call, wherever it is
(inside `where`, as a reducer's argument or a comparator's operand); literals do not count.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from audience_query import (
    Absent,
    AfterDate,
    AllUsers,
    And,
    AnyUser,
    AtLeast,
    AtMost,
    Avg,
    BeforeDate,
    BeforeLast,
    Between,
    Comparator,
    Condition,
    Contains,
    ContextRef,
    Count,
    Definition,
    DefinitionError,
    Differs,
    EndsWith,
    Equals,
    EventStream,
    Exists,
    FieldRef,
    Filter,
    First,
    GreaterThan,
    Kind,
    Last,
    LessThan,
    LiteralValue,
    Max,
    Min,
    Mode,
    Not,
    Omits,
    OneOf,
    Or,
    PropertyRef,
    Reducer,
    StartsWith,
    Sum,
    TraitRef,
    Unique,
    Value,
    Where,
    Within,
    WithinLast,
    WithinNext,
    check_references,
    parse_instant,
)

# --------------------------------------------------------------------------------------------------------------------
# The world: plain data, as the server would hold it after identity resolution.


@dataclass(frozen=True)
class Event:
    name: str
    timestamp: datetime  # aware, UTC
    properties: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    source_id: str = ""
    message_id: str = ""


@dataclass(frozen=True)
class Profile:
    traits: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[Event] = ()


@dataclass(frozen=True)
class Account:
    members: frozenset[str] = frozenset()  # profile ids
    traits: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class World:
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    accounts: Mapping[str, Account] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------------
# Values.

NUMERIC_STRING = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def as_number(value: Any) -> float | None:
    """The value as an f64, if it is a number or a numeric string (see the module's docstring)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and NUMERIC_STRING.fullmatch(value)):
        number = float(value)
    else:
        return None
    return number if math.isfinite(number) else None


def value_order(value: Any) -> tuple[Any, ...]:
    """Sort key that also decides "same value": see the module's docstring."""
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, int | float):
        return (1, float(value))
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, list | tuple):
        return (3, tuple(value_order(item) for item in value))
    return (4, json.dumps(value, sort_keys=True, default=str))


def same_value(a: Any, b: Any) -> bool:
    """For comparing a computed trait with the server's (JSON) answer: None for missing, numbers by value."""
    if a is None or b is None:
        return a is None and b is None
    return value_order(a) == value_order(b)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def equal(a: Any, b: Any) -> bool:
    """`equals` (see the module's docstring); false when either side is missing."""
    if a is None or b is None:
        return False
    if _is_number(a) or _is_number(b):
        x, y = as_number(a), as_number(b)
        return x is not None and y is not None and x == y
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, bool) and isinstance(b, bool):
        return a == b
    return False


def _field(of: FieldRef, event: Event) -> Any:
    if isinstance(of, PropertyRef):
        return event.properties.get(of.name)
    value: Any = event.context
    for step in of.path.split("."):
        if not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    return value


def _in_time_order(events: Iterable[Event]) -> list[Event]:
    return sorted(events, key=lambda e: e.timestamp)  # sorted() is stable: ties keep their order


# --------------------------------------------------------------------------------------------------------------------
# Evaluation.


@dataclass(frozen=True)
class _Entity:
    kind: Kind
    id: str
    traits: Mapping[str, Any]
    events: list[Event]  # stream order
    users: tuple[_Entity, ...]  # an account's users, by id; () for a user


@dataclass(frozen=True)
class _Scope:
    entity: _Entity
    event: Event | None = None  # the event a where() is testing
    parent: Event | None = None  # the event of the where() enclosing that one


class _Evaluator:
    def __init__(self, world: World, now: datetime, others: Mapping[str, Definition]) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        self.world = world
        self.now = now
        self.others = others

    def user(self, profile_id: str) -> _Entity:
        profile = self.world.profiles[profile_id]
        return _Entity("USERS", profile_id, profile.traits, _in_time_order(profile.events), ())

    def account(self, account_id: str) -> _Entity:
        account = self.world.accounts[account_id]
        users = tuple(self.user(p) for p in sorted(account.members) if p in self.world.profiles)
        events = _in_time_order(e for u in users for e in u.events)
        return _Entity("ACCOUNTS", account_id, account.traits, events, users)

    def entity(self, kind: Kind, entity_id: str) -> _Entity:
        return self.user(entity_id) if kind == "USERS" else self.account(entity_id)

    def holds(self, node: Condition, scope: _Scope) -> bool:
        if isinstance(node, And):
            return self.holds(node.left, scope) and self.holds(node.right, scope)
        if isinstance(node, Or):
            return self.holds(node.left, scope) or self.holds(node.right, scope)
        if isinstance(node, Not):
            return not self.holds(node.operand, scope)
        if isinstance(node, AnyUser):
            return any(self.holds(node.operand, _Scope(user)) for user in scope.entity.users)
        if isinstance(node, AllUsers):
            return all(self.holds(node.operand, _Scope(user)) for user in scope.entity.users)
        return self.compare(node.comparator, self.value(node.subject, scope), scope)

    def trait(self, name: str, entity: _Entity) -> Any:
        if name in self.others:
            definition = self.others[name]
            if definition.kind != entity.kind:
                raise DefinitionError(f"trait('{name}') is a {definition.kind} definition read at {entity.kind} level")
            expression = definition.expression
            if isinstance(expression, Condition):
                return True if self.holds(expression, _Scope(entity)) else None
            return self.value(expression, _Scope(entity))
        return entity.traits.get(name)

    def value(self, node: Value, scope: _Scope) -> Any:
        if isinstance(node, TraitRef):
            return self.trait(node.name, scope.entity)
        if isinstance(node, LiteralValue):
            return node.value
        if isinstance(node, PropertyRef | ContextRef):
            event = scope.parent if isinstance(node, PropertyRef) and node.parent else scope.event
            if event is None:
                raise DefinitionError(f"{node!r} has no event here")
            return _field(node, event)
        return self.reduce(node.reducer, self.stream(node.stream, scope))

    def stream(self, node: EventStream, scope: _Scope) -> list[Event]:
        kept = []
        for event in scope.entity.events:
            if event.name == node.name and all(self.keeps(f, event, scope) for f in node.filters):
                kept.append(event)
        return kept

    def keeps(self, node: Filter, event: Event, scope: _Scope) -> bool:
        t = event.timestamp
        if isinstance(node, Where):
            return self.holds(node.condition, _Scope(scope.entity, event=event, parent=scope.event))
        if isinstance(node, Within) and node.parent:
            if scope.event is None:
                raise DefinitionError("within(parent: ...) outside a where()")
            return scope.event.timestamp <= t <= scope.event.timestamp + node.duration.delta()
        if isinstance(node, Within):
            return self.now - node.duration.delta() <= t <= self.now
        if isinstance(node, Between):
            return self.now - node.end.delta() <= t < self.now - node.start.delta()
        return event.source_id not in node.exclude

    def reduce(self, node: Reducer, events: list[Event]) -> Any:
        if isinstance(node, Count):
            return len(events)
        values = [v for v in (_field(node.of, e) for e in events) if v is not None]
        numbers = [n for n in map(as_number, values) if n is not None]
        if isinstance(node, Sum):
            return math.fsum(numbers)
        if isinstance(node, Avg):
            return math.fsum(numbers) / len(numbers) if numbers else None
        if isinstance(node, Min | Max):
            pool: list[Any] = [v for v in values if isinstance(v, str)] if node.as_string else numbers
            if not pool:
                return None
            return min(pool) if isinstance(node, Min) else max(pool)
        if isinstance(node, First):
            return values[0] if values else None
        if isinstance(node, Last):
            return values[-1] if values else None
        if isinstance(node, Mode):
            return _mode(values, node.min_count, node.as_array)
        distinct = _distinct(values)
        return distinct if isinstance(node, Unique) else len(distinct)

    def compare(self, node: Comparator, value: Any, scope: _Scope) -> bool:
        if isinstance(node, Exists):
            return value is not None
        if isinstance(node, Absent):
            return value is None
        if value is None:
            return False
        if isinstance(node, Equals | Differs | GreaterThan | AtLeast | LessThan | AtMost):
            operand = self.value(node.operand, scope)
            if operand is None:
                return False
            if isinstance(node, Equals):
                return equal(value, operand)
            if isinstance(node, Differs):
                return not equal(value, operand)
            x, y = as_number(value), as_number(operand)
            if x is None or y is None:
                return False
            if isinstance(node, GreaterThan):
                return x > y
            if isinstance(node, AtLeast):
                return x >= y
            if isinstance(node, LessThan):
                return x < y
            return x <= y
        if isinstance(node, Contains):
            return isinstance(value, str) and any(needle in value for needle in node.needles)
        if isinstance(node, Omits):
            return not (isinstance(value, str) and node.needle in value)
        if isinstance(node, StartsWith):
            return isinstance(value, str) and value.startswith(node.prefix)
        if isinstance(node, EndsWith):
            return isinstance(value, str) and value.endswith(node.suffix)
        if isinstance(node, OneOf):
            return any(equal(value, candidate) for candidate in node.values)
        t = parse_instant(value)
        if t is None:
            return False
        if isinstance(node, BeforeDate | AfterDate):
            limit = parse_instant(node.iso)
            if limit is None:
                raise DefinitionError(f"not a date: {node.iso!r}")
            return t < limit if isinstance(node, BeforeDate) else t > limit
        span = node.duration.delta()
        if isinstance(node, WithinLast):
            return self.now - span <= t <= self.now
        if isinstance(node, WithinNext):
            return self.now <= t <= self.now + span
        if isinstance(node, BeforeLast):
            return t <= self.now - span
        return t >= self.now + span


def _distinct(values: list[Any]) -> list[Any]:
    seen: set[tuple[Any, ...]] = set()
    distinct = []
    for value in values:
        key = value_order(value)
        if key not in seen:
            seen.add(key)
            distinct.append(value)
    return distinct


def _mode(values: list[Any], min_count: int, as_array: bool) -> Any:
    counts: dict[tuple[Any, ...], int] = {}
    first_seen: dict[tuple[Any, ...], Any] = {}
    for value in values:
        items = value if isinstance(value, list) and not as_array else [value]
        for item in items:
            if item is None:
                continue
            key = value_order(item)
            counts[key] = counts.get(key, 0) + 1
            first_seen.setdefault(key, item)
    frequent = [key for key, n in counts.items() if n >= min_count]
    if not frequent:
        return None
    best = min(frequent, key=lambda key: (-counts[key], key))
    return first_seen[best]


def members(
    definition: Definition,
    world: World,
    now: datetime,
    others: Mapping[str, Definition] | None = None,
    key: str | None = None,
) -> set[str]:
    """Ids of the profiles (USERS) or accounts (ACCOUNTS) in the audience at `now`.

    `others` maps audience / computed-trait keys to their definitions, for `trait('key')`; `key` is this
    definition's own key, if it has one (so that a reference back to it is a cycle)."""
    others = others or {}
    check_references(definition, others, key)
    condition = definition.expression
    if not isinstance(condition, Condition):
        raise DefinitionError("a computed trait has no members")
    evaluator = _Evaluator(world, now, others)
    ids = world.profiles if definition.kind == "USERS" else world.accounts
    return {i for i in ids if evaluator.holds(condition, _Scope(evaluator.entity(definition.kind, i)))}


def is_member(
    definition: Definition, entity_id: str, world: World, now: datetime, others: Mapping[str, Definition] | None = None
) -> bool:
    return entity_id in members(definition, world, now, others)


def computed_value(
    definition: Definition,
    entity_id: str,
    world: World,
    now: datetime,
    others: Mapping[str, Definition] | None = None,
) -> Any:
    """The computed trait of a profile (USERS) or an account (ACCOUNTS) at `now`; None when it has no value."""
    others = others or {}
    check_references(definition, others)
    value = definition.expression
    if isinstance(value, Condition):
        raise DefinitionError("an audience has members, not a value")
    evaluator = _Evaluator(world, now, others)
    return evaluator.value(value, _Scope(evaluator.entity(definition.kind, entity_id)))


def computed_values(
    definition: Definition, world: World, now: datetime, others: Mapping[str, Definition] | None = None
) -> dict[str, Any]:
    """Every entity's computed value; entities without one are left out (the trait is not set)."""
    ids = world.profiles if definition.kind == "USERS" else world.accounts
    found = {i: computed_value(definition, i, world, now, others) for i in ids}
    return {i: v for i, v in found.items() if v is not None}
