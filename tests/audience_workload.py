"""Hypothesis strategies for the audience tests: small worlds and random valid definitions that draw event, trait,
property and context names from the same small pools (so definitions meet the data), values of every type near the
edges the semantics care about (window ends, numeric strings, missing values), and the spellings of `render`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from audience_query import (
    Absent,
    AfterDate,
    AfterNext,
    AllUsers,
    And,
    AnyUser,
    AtLeast,
    AtMost,
    Avg,
    BeforeDate,
    BeforeLast,
    Between,
    BinaryComparator,
    Comparator,
    Compare,
    Condition,
    Contains,
    ContextRef,
    Count,
    Definition,
    Differs,
    Duration,
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
    Operand,
    Or,
    PropertyRef,
    Reduce,
    Reducer,
    RenderStyle,
    Scalar,
    Sources,
    StartsWith,
    Sum,
    TraitRef,
    Unique,
    UniqueCount,
    Value,
    Where,
    Within,
    WithinLast,
    WithinNext,
    check,
    parse_instant,
)
from audience_reference import Account, Event, Profile, World
from hypothesis import strategies as st

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EVENT_NAMES = ("Order Completed", "Shoes Bought", "Shoes Returned", "Churned", "Page Viewed")
TRAIT_NAMES = ("plan", "total_spend", "age", "city", "signup_at", "active")
PROPERTY_NAMES = ("price", "spend", "sku", "brand", "tags", "when")
CONTEXT_PATHS = ("page.url", "campaign.source", "locale")
SOURCE_IDS = ("src_web", "src_ios", "src_server")
# With quotes and a backslash among them: render() must escape them.
STRINGS: tuple[str, ...] = ("pro", "Pro", "free", "paris", "Paris", "new york", "O'Brien", 'say "hi"', "C:\\tmp")
STRINGS += ("", "a", "ab", "ba", "https://a.example/x")
NUMERIC_STRINGS = ("42", "12.5", "-3", "007", "1e2", ".5", "5.", " 5", "5 ", "1,000", "NaN", "inf", "0x10")
# Offsets from NOW that sit on window ends (whole days and hours) and just past them.
_EDGES = (
    *(timedelta(days=d) for d in (0, 1, 2, 7, 30, 90)),
    *(timedelta(hours=h) for h in (1, 6)),
    *(timedelta(days=d, seconds=s) for d in (0, 1, 7, 30) for s in (-1, 1)),
)

# Strategies are built once, here: hypothesis validates every new strategy object, which costs more than drawing.


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# Multiples of 1/4 below 1000: exact in f64, and so are their small sums (any order gives the same total).
_QUARTERS = st.integers(-400, 4000).map(lambda n: n / 4)
_INSTANTS = st.one_of(
    st.integers(-120 * 24, 60 * 24).map(lambda h: _iso(NOW + timedelta(hours=h))),
    st.sampled_from(_EDGES).map(lambda d: _iso(NOW - d)),
    st.sampled_from(["2025-05-01", "2025-06-01", "2025-06-01T14:00:00+02:00", "2025-05-31T12:00:00", "soon"]),
)
_VALID_INSTANTS = _INSTANTS.filter(lambda s: parse_instant(s) is not None)
_SCALARS: st.SearchStrategy[Scalar] = st.one_of(
    st.integers(-5, 300), _QUARTERS, st.sampled_from(NUMERIC_STRINGS), st.sampled_from(STRINGS)
)
_ARRAYS = st.lists(st.one_of(st.sampled_from(STRINGS[:6]), st.integers(0, 3)), max_size=3)
_JSON_VALUES: st.SearchStrategy[Any] = st.one_of(_SCALARS, st.booleans(), st.none(), _INSTANTS, _ARRAYS)
# The type each name suggests; any name still gets values of every type.
_LIKELY: dict[str, st.SearchStrategy[Any]] = {
    "signup_at": _INSTANTS,
    "when": _INSTANTS,
    "price": st.one_of(_QUARTERS, st.integers(0, 300)),
    "spend": st.one_of(_QUARTERS, st.sampled_from(NUMERIC_STRINGS)),
    "total_spend": st.one_of(_QUARTERS, st.sampled_from(NUMERIC_STRINGS)),
    "age": st.integers(0, 100),
    "tags": _ARRAYS,
    "plan": st.sampled_from(["pro", "free", "Pro", "enterprise"]),
    "sku": st.sampled_from(["s1", "s2", "s3", 1, 2]),
    "brand": st.sampled_from(["acme", "Acme", "zeta"]),
    "city": st.sampled_from(["paris", "Paris", "new york"]),
    "page.url": st.sampled_from(["https://a.example/x", "https://a.example/y", "/x"]),
}
_NAMES = TRAIT_NAMES + PROPERTY_NAMES + CONTEXT_PATHS

_THREE_IN_FOUR = st.sampled_from((True, True, True, False))


@st.composite
def _mostly(draw: st.DrawFn, likely: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> Any:
    """`likely` three times in four (st.one_of would flatten `other`'s branches and weigh each like `likely`)."""
    return draw(likely) if draw(_THREE_IN_FOUR) else draw(other)


_VALUES: dict[str, st.SearchStrategy[Any]] = {
    name: _mostly(_LIKELY[name], _JSON_VALUES) if name in _LIKELY else _JSON_VALUES for name in _NAMES
}
# Literals a comparison with that name is likely to meet.
_LITERALS: dict[str, st.SearchStrategy[Scalar]] = {
    name: _mostly(_LIKELY[name].filter(lambda v: isinstance(v, int | float | str)), _SCALARS)
    if name in _LIKELY and name != "tags"
    else _SCALARS
    for name in _NAMES
}
_DATE_NAMES = ("signup_at", "when")


def scalars() -> st.SearchStrategy[Scalar]:
    """Literal values: numbers, numeric strings, strings."""
    return _SCALARS


def json_values() -> st.SearchStrategy[Any]:
    """Trait and property values: scalars, bools, dates, nulls and small arrays."""
    return _JSON_VALUES


_TIMESTAMPS = st.one_of(
    st.integers(0, 14 * 24).map(lambda h: NOW - timedelta(hours=h)),
    st.integers(0, 90 * 24).map(lambda h: NOW - timedelta(hours=h)),
    st.integers(0, 90 * 86400).map(lambda s: NOW - timedelta(seconds=s)),
    st.sampled_from(_EDGES).map(lambda d: NOW - d),
    st.integers(1, 48 * 3600).map(lambda s: NOW + timedelta(seconds=s)),  # after now: outside windows
)


@st.composite
def _contexts(draw: st.DrawFn) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(CONTEXT_PATHS), unique=True, max_size=3)):
        *steps, last = path.split(".")
        node = context
        for step in steps:
            node = node.setdefault(step, {})
        node[last] = draw(_VALUES[path])
    return context


@st.composite
def _maps(draw: st.DrawFn, names: tuple[str, ...]) -> dict[str, Any]:
    """Each name present three times in four (st.fixed_dictionaries leaves optional keys out more often)."""
    return {name: draw(_VALUES[name]) for name in names if draw(_THREE_IN_FOUR)}


_EVENTS = st.builds(
    Event,
    name=st.sampled_from(EVENT_NAMES),
    timestamp=_TIMESTAMPS,
    properties=_maps(PROPERTY_NAMES),
    context=_contexts(),
    source_id=st.sampled_from(SOURCE_IDS),
)
_TRAITS = _maps(TRAIT_NAMES)


def events() -> st.SearchStrategy[Event]:
    return _EVENTS


@st.composite
def worlds(draw: st.DrawFn, min_profiles: int = 2, max_profiles: int = 6, max_events: int = 12) -> World:
    """A few profiles (u1, u2, ...) with up to `max_events` events each over the 90 days before NOW (and a few after),
    traits of every type or missing, and up to 3 accounts (a1, ...) of any of the profiles (possibly none)."""
    n = draw(st.integers(min_profiles, max_profiles))
    ids = [f"u{i}" for i in range(1, n + 1)]
    profiles = {}
    for pid in ids:
        stream = [draw(_EVENTS) for _ in range(draw(st.integers(0, max_events)))]
        numbered = [
            Event(e.name, e.timestamp, e.properties, e.context, e.source_id, f"{pid}-m{i}")
            for i, e in enumerate(stream)
        ]
        profiles[pid] = Profile(draw(_TRAITS), tuple(numbered))
    accounts = {}
    for i in range(1, draw(st.integers(0, 3)) + 1):
        chosen = draw(st.frozensets(st.sampled_from(ids), max_size=n))
        accounts[f"a{i}"] = Account(chosen, draw(_TRAITS))
    return World(profiles, accounts)


_COMMON_DURATIONS = [Duration(d, "days") for d in (1, 7, 7, 14, 30, 30, 60, 90)] + [
    Duration(h, "hours") for h in (1, 6)
]
_DURATIONS = st.one_of(
    st.sampled_from(_COMMON_DURATIONS), st.builds(Duration, st.integers(1, 100), st.sampled_from(["days", "hours"]))
)
_NEAR_ENDS = st.one_of(st.just(Duration(0, "days")), _DURATIONS)  # between()'s nearer end may be 0


@st.composite
def _between(draw: st.DrawFn) -> Between:
    start = draw(_NEAR_ENDS)
    end = draw(_DURATIONS)
    if start.delta() >= end.delta():
        end = Duration(start.amount + end.amount, start.unit)
    return Between(start, end)


_BETWEENS = _between()
_FIELD_REFS: st.SearchStrategy[FieldRef] = st.one_of(
    st.sampled_from(PROPERTY_NAMES).map(PropertyRef), st.sampled_from(CONTEXT_PATHS).map(ContextRef)
)
_SCALAR_REDUCERS: list[st.SearchStrategy[Reducer]] = [
    st.just(Count()),
    st.just(Count()),
    st.builds(Sum, _FIELD_REFS),
    st.builds(Avg, _FIELD_REFS),
    st.builds(Min, _FIELD_REFS, st.booleans()),
    st.builds(Max, _FIELD_REFS, st.booleans()),
    st.builds(Mode, _FIELD_REFS, st.integers(1, 3), st.booleans()),
    st.builds(First, _FIELD_REFS),
    st.builds(Last, _FIELD_REFS),
    st.builds(UniqueCount, _FIELD_REFS),
]
_REDUCERS = {False: st.one_of(_SCALAR_REDUCERS), True: st.one_of([*_SCALAR_REDUCERS, st.builds(Unique, _FIELD_REFS)])}
_BINARY: list[type[BinaryComparator]] = [Equals, Differs, GreaterThan, AtLeast, LessThan, AtMost]
_TEXT = st.sampled_from(["a", "pro", "ro", "Pa", "york", "s1", "cm", "https", "/x", "7", ""])
_STRING_COMPARATORS: st.SearchStrategy[Comparator] = st.one_of(
    st.lists(_TEXT, min_size=1, max_size=3).map(lambda xs: Contains(tuple(xs))),
    _TEXT.map(Omits),
    _TEXT.map(StartsWith),
    _TEXT.map(EndsWith),
)
_DATE_COMPARATORS: st.SearchStrategy[Comparator] = st.one_of(
    _VALID_INSTANTS.map(BeforeDate),
    _VALID_INSTANTS.map(AfterDate),
    _DURATIONS.map(WithinLast),
    _DURATIONS.map(WithinNext),
    _DURATIONS.map(BeforeLast),
    _DURATIONS.map(AfterNext),
)
_COUNTS = st.integers(0, 4)
_AMOUNTS: st.SearchStrategy[Scalar] = st.one_of(st.integers(0, 300), _QUARTERS)


@functools.cache
def _sampler(options: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(options)


def _choice(draw: st.DrawFn, options: Sequence[Any]) -> Any:
    """One of `options`, evenly (st.integers would favour the ends)."""
    return draw(_sampler(tuple(options)))


@dataclass(frozen=True)
class _Spot:
    """Where a generated node goes (what check() allows there)."""

    level: Kind
    quantifiable: bool  # ANY / ALL allowed
    event: bool  # inside a where
    parent: bool  # inside a where nested in a where
    where_depth: int  # wheres around this spot
    traits: tuple[str, ...]


class _Generator:
    """Bounded so that a definition has at most 8 top-level comparisons, each with at most one where of at most two
    comparisons, each of which may hold one nested stream with a where of one comparison: at most 8 * 5 = 40 primary
    expressions. Literals follow the subject (small counts for count(), that name's values for a trait or property)
    so that comparisons split the profiles rather than being always true or always false."""

    def __init__(self, draw: st.DrawFn, user_traits: tuple[str, ...]) -> None:
        self.draw = draw
        self.user_traits = user_traits  # trait names inside ANY / ALL

    def condition(self, spot: _Spot, depth: int) -> Condition:
        options = ["leaf"] * 3
        options += ["and", "or", "not"] if depth > 0 else []
        options += ["any", "all"] if spot.quantifiable else []
        choice = _choice(self.draw, options)
        if choice in ("and", "or"):
            left, right = self.condition(spot, depth - 1), self.condition(spot, depth - 1)
            return And(left, right) if choice == "and" else Or(left, right)
        if choice == "not":
            return Not(self.condition(spot, depth - 1))
        if choice in ("any", "all"):
            inner = _Spot("USERS", False, False, False, 0, self.user_traits)
            body = self.condition(inner, max(depth - 1, 0))
            return AnyUser(body) if choice == "any" else AllUsers(body)
        return self.comparison(spot)

    def comparison(self, spot: _Spot) -> Compare:
        draw = self.draw
        kinds = ["trait"] * 4 + ["stream"] * 5
        if spot.event:
            kinds += ["property"] * 4 + ["context"] * 2 + (["parent"] * 2 if spot.parent else [])
            kinds = kinds if spot.where_depth < 2 else [k for k in kinds if k != "stream"]
        kinds.append("literal")  # rarely: a literal subject is the same for everybody
        kind = _choice(draw, kinds)
        subject: Value
        if kind == "trait":
            subject = TraitRef(_choice(draw, spot.traits))
        elif kind == "property":
            subject = PropertyRef(_choice(draw, PROPERTY_NAMES))
        elif kind == "parent":
            subject = PropertyRef(_choice(draw, PROPERTY_NAMES), parent=True)
        elif kind == "context":
            subject = ContextRef(_choice(draw, CONTEXT_PATHS))
        elif kind == "literal":
            subject = LiteralValue(draw(_SCALARS))
        else:
            subject = Reduce(self.stream(spot), draw(_REDUCERS[False]))
        return Compare(subject, self.comparator(spot, subject))

    def stream(self, spot: _Spot) -> EventStream:
        draw = self.draw
        filters: list[Filter] = []
        kinds = [_choice(draw, ["where", "within", "between", "sources", "parent"]) for _ in range(draw(_COUNTS) % 4)]
        if "where" in kinds and spot.where_depth < 2:
            inner = _Spot(spot.level, False, True, spot.event, spot.where_depth + 1, spot.traits)
            filters.append(Where(self.condition(inner, depth=1 if spot.where_depth == 0 else 0)))
        for kind in kinds:
            if kind == "within":
                filters.append(Within(draw(_DURATIONS)))
            elif kind == "parent" and spot.event:
                filters.append(Within(draw(_DURATIONS), parent=True))
            elif kind == "between":
                filters.append(draw(_BETWEENS))
            elif kind == "sources":
                excluded = {_choice(draw, SOURCE_IDS) for _ in range(1 + draw(_COUNTS) % 2)}
                filters.append(Sources(tuple(sorted(excluded))))
        for i in range(len(filters) - 1, 0, -1):  # any order: the semantics must not depend on it
            j = draw(st.integers(0, i))
            filters[i], filters[j] = filters[j], filters[i]
        return EventStream(_choice(draw, EVENT_NAMES), tuple(filters))

    @staticmethod
    def name(subject: Value) -> str:
        """The trait, property or context name a subject reads ("" for a literal or a count)."""
        if isinstance(subject, TraitRef | PropertyRef):
            return subject.name
        if isinstance(subject, ContextRef):
            return subject.path
        if isinstance(subject, Reduce) and not isinstance(subject.reducer, Count):
            return _Generator.name(subject.reducer.of)
        return ""

    def literals(self, subject: Value) -> st.SearchStrategy[Scalar]:
        """Literals that a comparison with `subject` is likely to meet."""
        if isinstance(subject, Reduce):
            reducer = subject.reducer
            if isinstance(reducer, Count | UniqueCount):
                return _COUNTS
            if isinstance(reducer, Sum | Avg) or (isinstance(reducer, Min | Max) and not reducer.as_string):
                return _AMOUNTS
        return _LITERALS.get(self.name(subject), _SCALARS)

    def operand(self, spot: _Spot, subject: Value) -> Operand:
        draw = self.draw
        choice = _choice(draw, ["literal"] * 6 + ["trait"] + (["property", "context"] if spot.event else []))
        if choice == "literal":
            return LiteralValue(draw(self.literals(subject)))
        if choice == "trait":
            return TraitRef(_choice(draw, spot.traits))
        if choice == "context":
            return ContextRef(_choice(draw, CONTEXT_PATHS))
        return PropertyRef(_choice(draw, PROPERTY_NAMES), parent=spot.parent and draw(st.booleans()))

    def comparator(self, spot: _Spot, subject: Value) -> Comparator:
        draw = self.draw
        dates = 6 if self.name(subject) in _DATE_NAMES else 1
        kind = _choice(draw, ["binary"] * 6 + ["presence", "string", "one_of"] + ["date"] * dates)
        if kind == "binary":
            comparator_class: type[BinaryComparator] = _choice(draw, _BINARY)
            return comparator_class(self.operand(spot, subject))
        if kind == "presence":
            return Exists() if draw(st.booleans()) else Absent()
        if kind == "string":
            return draw(_STRING_COMPARATORS)
        if kind == "one_of":
            literals = self.literals(subject)
            return OneOf(tuple(draw(literals) for _ in range(1 + draw(_COUNTS) % 3)))
        return draw(_DATE_COMPARATORS)


@st.composite
def definitions(
    draw: st.DrawFn,
    kind: Kind = "USERS",
    computed_trait: bool = False,
    user_keys: Sequence[str] = (),
    account_keys: Sequence[str] = (),
) -> Definition:
    """A random valid definition: an audience (a condition), or with `computed_trait` a reduction of a stream.
    `user_keys` / `account_keys` (keys of USERS / ACCOUNTS definitions) join the trait names read at the user / the
    account level, for definitions that reference other audiences or computed traits (the caller keeps the
    references acyclic)."""
    user_traits = TRAIT_NAMES + tuple(user_keys)
    generator = _Generator(draw, user_traits)
    traits = TRAIT_NAMES + tuple(account_keys) if kind == "ACCOUNTS" else user_traits
    spot = _Spot(kind, kind == "ACCOUNTS", False, False, 0, traits)
    if computed_trait:
        expression: Condition | Value = Reduce(generator.stream(spot), draw(_REDUCERS[True]))
    else:
        expression = generator.condition(spot, depth=3)
    definition = Definition(kind, expression)
    check(definition)
    return definition


def render_styles() -> st.SearchStrategy[RenderStyle]:
    return st.builds(
        RenderStyle,
        symbols=st.booleans(),
        double_equals=st.booleans(),
        quote=st.sampled_from(["'", '"']),
        literal_calls=st.booleans(),
        singular_units=st.booleans(),
        bare_prefix=st.booleans(),
        redundant_parens=st.booleans(),
        layout=st.sampled_from(["normal", "tight", "loose"]),
    )
