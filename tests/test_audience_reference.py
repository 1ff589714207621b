"""The audience reference (audience_reference.py) checked by hand, the query text (audience_query.render) checked by
a round trip through a small parser, and one audience cross-checked with DuckDB.

Each scenario is small enough to work out on paper; the expected members are written out, never computed. The
parser at the end of this file exists only to check that render() parenthesises and spells correctly: it is no
part of the reference. Nothing here needs a server.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from audience_duckdb import bench_audience_members
from audience_query import (
    Absent,
    AfterDate,
    AfterNext,
    AllUsers,
    And,
    AnyUser,
    AtLeast,
    AtMost,
    AudienceCycleError,
    Avg,
    BeforeDate,
    BeforeLast,
    Between,
    Comparator,
    Compare,
    Condition,
    Contains,
    ContextRef,
    Count,
    Definition,
    DefinitionError,
    Differs,
    Duration,
    EndsWith,
    Equals,
    EventStream,
    Exists,
    Filter,
    First,
    GreaterThan,
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
    primary_expressions,
    render,
)
from audience_reference import (
    Account,
    Event,
    Profile,
    World,
    as_number,
    computed_value,
    computed_values,
    members,
    same_value,
)
from audience_workload import NOW, definitions, render_styles, worlds
from hypothesis import Phase, given, seed, settings
from hypothesis import strategies as st

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)


# --------------------------------------------------------------------------------------------------------------------
# Building trees and worlds by hand.


def days(n: int) -> Duration:
    return Duration(n, "days")


def hours(n: int) -> Duration:
    return Duration(n, "hours")


def stream(name: str, *filters: Filter) -> EventStream:
    return EventStream(name, filters)


def reduce(name: str, reducer: Reducer, *filters: Filter) -> Reduce:
    return Reduce(stream(name, *filters), reducer)


def count(name: str, *filters: Filter) -> Reduce:
    return reduce(name, Count(), *filters)


def lit(value: Scalar) -> LiteralValue:
    return LiteralValue(value)


def prop(name: str) -> PropertyRef:
    return PropertyRef(name)


def trait(name: str) -> TraitRef:
    return TraitRef(name)


def at_least(subject: Value, n: Scalar) -> Compare:
    return Compare(subject, AtLeast(lit(n)))


def ev(
    name: str, ago: timedelta, source: str = "src_web", context: dict[str, Any] | None = None, **props: Any
) -> Event:
    return Event(name, NOW - ago, props, context or {}, source)


def one_user(*events: Event, **traits: Any) -> World:
    return World({"u1": Profile(traits, events)})


def users(**profiles: Profile) -> World:
    return World(dict(profiles))


def holds(condition: Condition, world: World) -> bool:
    """Is the single user u1 of `world` in the audience?"""
    return "u1" in members(Definition("USERS", condition), world, NOW)


def value_of(expression: Value, world: World, entity: str = "u1") -> Any:
    return computed_value(Definition("USERS", expression), entity, world, NOW)


# --------------------------------------------------------------------------------------------------------------------
# Comparators, on a trait value (None: the trait is missing).

ISO_NOW = "2025-06-01T12:00:00Z"
COMPARISONS: list[tuple[Any, Comparator, bool]] = [
    # equals / differs: numbers by value, numeric strings count as numbers, strings by text, bools by value
    (5, Equals(lit(5)), True),
    (5, Equals(lit(5.0)), True),
    ("5", Equals(lit(5)), True),
    ("5.0", Equals(lit(5)), True),
    ("5.0", Equals(lit("5")), False),  # two strings: by text
    ("abc", Equals(lit(5)), False),
    ("pro", Equals(lit("pro")), True),
    ("Pro", Equals(lit("pro")), False),
    (True, Equals(lit(1)), False),  # a bool is not a number
    (True, Equals(lit("true")), False),
    (["a"], Equals(lit("a")), False),  # arrays equal nothing
    (None, Equals(lit(5)), False),
    (5, Differs(lit(6)), True),
    (5, Differs(lit("5")), False),
    ("abc", Differs(lit(5)), True),  # exists and is not equal
    (["a"], Differs(lit("a")), True),
    (None, Differs(lit(5)), False),  # missing: false
    # presence
    (None, Exists(), False),
    (None, Absent(), True),
    (0, Exists(), True),
    ("", Exists(), True),
    (False, Absent(), False),
    ([], Exists(), True),
    # ordering: numbers only, numeric strings count, anything else is false
    (7, GreaterThan(lit(5)), True),
    (5, GreaterThan(lit(5)), False),
    (5, AtLeast(lit(5)), True),
    (5, LessThan(lit(5)), False),
    (5, AtMost(lit(5)), True),
    (4.75, LessThan(lit(5)), True),
    ("12.5", GreaterThan(lit(12)), True),
    ("-3", LessThan(lit(0)), True),
    ("1e2", AtLeast(lit(100)), True),
    (".5", AtMost(lit(0.5)), True),
    ("007", Equals(lit(7)), True),
    (5, LessThan(lit("10")), True),  # a numeric string literal is a number too
    (" 5", GreaterThan(lit(0)), False),  # whitespace: not numeric
    ("1,000", GreaterThan(lit(0)), False),
    ("NaN", LessThan(lit(0)), False),
    ("inf", GreaterThan(lit(0)), False),
    ("0x10", GreaterThan(lit(0)), False),
    ("b", GreaterThan(lit("a")), False),  # strings are never ordered
    (True, GreaterThan(lit(0)), False),
    (None, LessThan(lit(5)), False),
    (None, AtMost(lit(5)), False),
    # strings: case-sensitive, strings only
    ("new york", Contains(("york", "paris")), True),
    ("new york", Contains(("York",)), False),
    (150, Contains(("5",)), False),
    (None, Contains(("a",)), False),
    ("paris", Omits("york"), True),
    ("new york", Omits("york"), False),
    (150, Omits("5"), True),  # present and not a string containing it
    (None, Omits("a"), False),  # missing: false
    ("https://a.example/x", StartsWith("https://"), True),
    ("https://a.example/x", EndsWith("/x"), True),
    ("https://a.example/x", EndsWith("/X"), False),
    (5, StartsWith("5"), False),
    ("", StartsWith(""), True),
    # one_of: equals any
    ("free", OneOf(("pro", "free")), True),
    ("42", OneOf((41, 42)), True),
    ("Pro", OneOf(("pro", "free")), False),
    (None, OneOf(("pro",)), False),
    # dates: ISO strings with a zone, or a date; relative to NOW = 2025-06-01T12:00:00Z
    ("2025-05-01T00:00:00Z", BeforeDate("2025-05-02"), True),
    ("2025-05-02", BeforeDate("2025-05-02T00:00:00Z"), False),  # strict
    ("2025-05-02", AfterDate("2025-05-01T23:59:59Z"), True),
    ("2025-06-01T14:00:00+02:00", AfterDate("2025-06-01T11:59:59Z"), True),  # 12:00 UTC
    ("2025-06-01T14:00:00+02:00", AfterDate(ISO_NOW), False),
    ("2025-05-31T12:00:00", BeforeDate(ISO_NOW), False),  # no zone: not a date
    ("2025-05-31t12:00:00z", BeforeDate(ISO_NOW), False),  # lowercase t / z: not a date
    ("2025-02-30", BeforeDate(ISO_NOW), False),
    ("yesterday", BeforeDate(ISO_NOW), False),
    (1_717_000_000, BeforeDate(ISO_NOW), False),  # a number is not a date
    ("2025-05-25T12:00:00Z", WithinLast(days(7)), True),  # exactly now - 7 days: inclusive
    ("2025-05-25T11:59:59Z", WithinLast(days(7)), False),
    (ISO_NOW, WithinLast(hours(1)), True),
    ("2025-06-01T12:00:01Z", WithinLast(days(7)), False),  # the future
    (ISO_NOW, WithinNext(days(1)), True),
    ("2025-06-02T12:00:00Z", WithinNext(days(1)), True),
    ("2025-06-02T12:00:00.000001Z", WithinNext(days(1)), False),
    ("2025-06-01T11:59:59Z", WithinNext(days(1)), False),
    ("2025-05-31T12:00:00Z", BeforeLast(days(1)), True),  # t <= now - 1 day
    ("2025-05-31T12:00:01Z", BeforeLast(days(1)), False),
    ("2025-06-01T18:00:00Z", AfterNext(hours(6)), True),  # t >= now + 6 hours
    ("2025-06-01T17:59:59.999Z", AfterNext(hours(6)), False),
    ("2025-06-01", BeforeLast(hours(12)), True),  # midnight UTC
    (None, WithinLast(days(7)), False),
]


@pytest.mark.parametrize(("value", "comparator", "expected"), COMPARISONS)
def test_each_comparator_on_a_trait(value: Any, comparator: Comparator, expected: bool) -> None:
    world = one_user(x=value) if value is not None else one_user()
    assert holds(Compare(trait("x"), comparator), world) is expected


@pytest.mark.parametrize(("value", "comparator", "expected"), COMPARISONS)
def test_not_inverts_every_comparator_even_on_missing_values(
    value: Any, comparator: Comparator, expected: bool
) -> None:
    world = one_user(x=value) if value is not None else one_user()
    assert holds(Not(Compare(trait("x"), comparator)), world) is not expected


def test_a_null_trait_is_missing() -> None:
    assert holds(Compare(trait("x"), Absent()), one_user(x=None))
    assert not holds(Compare(trait("x"), Differs(lit(1))), one_user(x=None))


def test_an_operand_may_be_another_trait_and_a_missing_operand_is_false() -> None:
    world = one_user(spend=120, avg="100")
    assert holds(Compare(trait("spend"), GreaterThan(trait("avg"))), world)
    assert not holds(Compare(trait("spend"), GreaterThan(trait("nothing"))), world)
    assert not holds(Compare(trait("spend"), Differs(trait("nothing"))), world)


def test_a_literal_may_be_the_subject() -> None:
    assert holds(Compare(lit(5), GreaterThan(lit("4"))), one_user())
    assert render(Compare(lit(5), GreaterThan(lit("4")))) == "literal(5) > '4'"


def test_trait_names_are_exact_keys_and_context_paths_walk_objects() -> None:
    world = one_user(ev("A", DAY, context={"page": {"url": "https://x"}, "page.url": "flat"}), **{"a.b": 1})
    assert holds(Compare(trait("a.b"), Equals(lit(1))), world)
    assert holds(at_least(count("A", Where(Compare(ContextRef("page.url"), Equals(lit("https://x"))))), 1), world)
    assert not holds(at_least(count("A", Where(Compare(ContextRef("page.missing"), Exists()))), 1), world)
    assert not holds(at_least(count("A", Where(Compare(ContextRef("page.url.deeper"), Exists()))), 1), world)


# --------------------------------------------------------------------------------------------------------------------
# Windows: within, between, within(parent:), and their ends.

WINDOW_EVENTS = {
    "future": ev("A", -SECOND),  # one second after now
    "now": ev("A", timedelta(0)),
    "1h": ev("A", HOUR),
    "7d": ev("A", 7 * DAY),  # exactly 7 days before now
    "7d+1s": ev("A", 7 * DAY + SECOND),
    "30d": ev("A", 30 * DAY),
    "30d+1s": ev("A", 30 * DAY + SECOND),
}


def kept(*filters: Filter) -> set[str]:
    """Which of WINDOW_EVENTS the filters keep (one profile per event, so membership tells)."""
    world = users(**{label: Profile({}, (event,)) for label, event in WINDOW_EVENTS.items()})
    return members(Definition("USERS", at_least(count("A", *filters), 1)), world, NOW)


def test_within_keeps_now_minus_n_to_now_inclusive_and_nothing_after_now() -> None:
    assert kept(Within(days(7))) == {"now", "1h", "7d"}
    assert kept(Within(hours(1))) == {"now", "1h"}
    assert kept(Within(hours(168))) == kept(Within(days(7)))
    assert kept(Within(days(30))) == {"now", "1h", "7d", "7d+1s", "30d"}


def test_between_keeps_now_minus_b_inclusive_to_now_minus_a_exclusive() -> None:
    assert kept(Between(days(7), days(30))) == {"7d+1s", "30d"}
    assert kept(Between(days(0), days(7))) == {"1h", "7d"}  # `now` itself is the excluded end
    assert kept(Between(hours(1), days(7))) == {"7d"}
    assert kept(Between(hours(0), hours(1))) == {"1h"}


def test_a_stream_without_a_window_keeps_every_event_even_after_now() -> None:
    assert kept() == set(WINDOW_EVENTS)


def test_filters_all_apply_in_any_order() -> None:
    both = kept(Within(days(30)), Between(days(1), days(60)))
    assert both == {"7d", "7d+1s", "30d"} == kept(Between(days(1), days(60)), Within(days(30)))
    assert kept(Within(days(7)), Within(days(30))) == kept(Within(days(7)))


def test_sources_exclude_drops_events_of_the_listed_sources() -> None:
    world = one_user(ev("A", DAY, source="src_web"), ev("A", DAY, source="src_ios"), ev("A", DAY, source="src_x"))
    assert value_of(count("A", Sources(("src_web", "src_ios"))), world) == 1
    assert value_of(count("A", Sources(("nothing",))), world) == 3


def test_where_keeps_events_whose_condition_holds_with_property_and_trait() -> None:
    world = one_user(
        ev("Shoes Bought", DAY, price=150),
        ev("Shoes Bought", DAY, price="99.75"),
        ev("Shoes Bought", DAY, price="expensive"),
        ev("Shoes Bought", DAY),
        avg_spend=100,
    )
    assert value_of(count("Shoes Bought", Where(Compare(prop("price"), AtLeast(lit(100))))), world) == 1
    assert value_of(count("Shoes Bought", Where(Compare(prop("price"), LessThan(trait("avg_spend"))))), world) == 1
    assert value_of(count("Shoes Bought", Where(Compare(prop("price"), Absent()))), world) == 1
    assert value_of(count("Shoes Bought", Where(Not(Compare(prop("price"), AtLeast(lit(100)))))), world) == 3


def returned_within(n: Duration, *inner: Filter) -> Reduce:
    """Shoes Bought events followed by a Shoes Returned within n of each."""
    nested = at_least(count("Shoes Returned", Within(n, parent=True), *inner), 1)
    return count("Shoes Bought", Where(nested))


def test_within_parent_keeps_events_from_the_parent_to_n_after_it_inclusive() -> None:
    bought = ev("Shoes Bought", 10 * DAY)
    for returned_at, expected in [
        (10 * DAY, 1),  # same instant as the parent
        (5 * DAY, 1),  # exactly 5 days after
        (5 * DAY - SECOND, 0),  # 5 days and a second after
        (10 * DAY + SECOND, 0),  # before the parent
    ]:
        world = one_user(bought, ev("Shoes Returned", returned_at))
        assert value_of(returned_within(days(5)), world) == expected, returned_at


def test_within_parent_is_not_bounded_by_now_and_counts_each_parent() -> None:
    world = one_user(
        ev("Shoes Bought", 40 * DAY),
        ev("Shoes Returned", 39 * DAY),
        ev("Shoes Bought", 20 * DAY),
        ev("Shoes Bought", HOUR),
        ev("Shoes Returned", -HOUR),  # after now, an hour after the last purchase
    )
    assert value_of(returned_within(days(1)), world) == 2
    # The parent window combines with the nested stream's own window.
    assert value_of(returned_within(days(1), Within(days(7))), world) == 0
    # And the outer stream's window applies to the parents.
    windowed = Reduce(stream("Shoes Bought", *returned_within(days(1)).stream.filters, Within(days(30))), Count())
    assert value_of(windowed, world) == 1


def test_the_parent_event_itself_counts_in_a_stream_of_its_own_name() -> None:
    world = one_user(ev("A", 3 * DAY), ev("A", 2 * DAY))
    again = at_least(count("A", Within(days(1), parent=True)), 2)
    assert value_of(count("A", Where(again)), world) == 1  # the first A sees itself and the second


def test_property_parent_reads_the_enclosing_wheres_event() -> None:
    same_sku = Where(Compare(prop("sku"), Equals(PropertyRef("sku", parent=True))))
    nested = at_least(count("Shoes Returned", Within(days(5), parent=True), same_sku), 1)
    world = one_user(
        ev("Shoes Bought", 10 * DAY, sku="s1"),
        ev("Shoes Bought", 10 * DAY, sku="s2"),
        ev("Shoes Bought", 10 * DAY),
        ev("Shoes Returned", 9 * DAY, sku="s2"),
    )
    assert value_of(count("Shoes Bought", Where(nested)), world) == 1
    text = render(count("Shoes Bought", Where(nested)))
    assert text == (
        "event('Shoes Bought').where(event('Shoes Returned').within(parent: 5 days)"
        ".where(property('sku') = property(parent: 'sku')).count() >= 1).count()"
    )


# --------------------------------------------------------------------------------------------------------------------
# Reducers.

SPENDS = one_user(
    ev("Order", 5 * DAY, spend=10, sku="b", brand="zeta"),
    ev("Order", 4 * DAY, spend="2.5", sku="a", brand="Alpha"),
    ev("Order", 3 * DAY, spend="lots", sku="b"),
    ev("Order", 2 * DAY, spend=True, sku=5),
    ev("Order", 1 * DAY, sku=5.0, brand=None),
)


def test_count_counts_events_and_is_zero_on_an_empty_stream() -> None:
    assert value_of(count("Order"), SPENDS) == 5
    assert value_of(count("Nothing"), SPENDS) == 0
    assert holds(Compare(count("Nothing"), Equals(lit(0))), SPENDS)


def test_sum_adds_numbers_and_numeric_strings_and_is_zero_on_nothing() -> None:
    assert value_of(reduce("Order", Sum(prop("spend"))), SPENDS) == 12.5
    assert value_of(reduce("Order", Sum(prop("missing"))), SPENDS) == 0
    assert value_of(reduce("Nothing", Sum(prop("spend"))), SPENDS) == 0


def test_avg_is_over_numeric_values_and_missing_on_none() -> None:
    assert value_of(reduce("Order", Avg(prop("spend"))), SPENDS) == 6.25
    assert value_of(reduce("Order", Avg(prop("brand"))), SPENDS) is None
    assert holds(Compare(reduce("Order", Avg(prop("brand"))), Absent()), SPENDS)
    assert not holds(Compare(reduce("Order", Avg(prop("brand"))), AtLeast(lit(0))), SPENDS)


def test_min_and_max_are_numeric_unless_as_string() -> None:
    assert value_of(reduce("Order", Min(prop("spend"))), SPENDS) == 2.5
    assert value_of(reduce("Order", Max(prop("spend"))), SPENDS) == 10
    assert value_of(reduce("Order", Max(prop("spend"), as_string=True)), SPENDS) == "lots"  # "2.5" < "lots"
    assert value_of(reduce("Order", Min(prop("spend"), as_string=True)), SPENDS) == "2.5"  # 10 is not a string
    assert value_of(reduce("Order", Min(prop("brand"), as_string=True)), SPENDS) == "Alpha"  # "A" < "z"
    assert value_of(reduce("Order", Max(prop("brand"))), SPENDS) is None


def test_first_and_last_are_by_time_among_events_that_have_the_value() -> None:
    assert value_of(reduce("Order", First(prop("brand"))), SPENDS) == "zeta"
    assert value_of(reduce("Order", Last(prop("brand"))), SPENDS) == "Alpha"  # the latest is null
    assert value_of(reduce("Order", First(prop("missing"))), SPENDS) is None
    # Listed out of order: time decides, not the list.
    world = one_user(ev("A", DAY, v="late"), ev("A", 2 * DAY, v="early"))
    assert value_of(reduce("A", First(prop("v"))), world) == "early"
    assert value_of(reduce("A", Last(prop("v"))), world) == "late"


def test_first_and_last_break_time_ties_by_list_order() -> None:
    world = one_user(ev("A", DAY, v="listed first"), ev("A", DAY, v="listed second"))
    assert value_of(reduce("A", First(prop("v"))), world) == "listed first"
    assert value_of(reduce("A", Last(prop("v"))), world) == "listed second"


def test_unique_lists_distinct_values_in_first_seen_order() -> None:
    assert value_of(reduce("Order", Unique(prop("sku"))), SPENDS) == ["b", "a", 5]  # 5.0 is 5
    assert value_of(reduce("Order", UniqueCount(prop("sku"))), SPENDS) == 3
    assert value_of(reduce("Nothing", Unique(prop("sku"))), SPENDS) == []
    world = one_user(
        ev("A", 3 * DAY, v="5"), ev("A", 2 * DAY, v=5), ev("A", DAY, v=["x", 1]), ev("A", 0 * DAY, v=["x", 1])
    )
    assert value_of(reduce("A", Unique(prop("v"))), world) == ["5", 5, ["x", 1]]  # "5" is not 5; arrays whole


def mode_of(values: Sequence[Any], n: int, as_array: bool = False) -> Any:
    world = one_user(*(ev("A", (len(values) - i) * HOUR, v=v) for i, v in enumerate(values)))
    return value_of(reduce("A", Mode(prop("v"), n, as_array)), world)


def test_mode_is_the_most_frequent_value_seen_at_least_n_times() -> None:
    assert mode_of(["a", "b", "b", "c"], 2) == "b"
    assert mode_of(["a", "b", "b", "c"], 3) is None
    assert mode_of(["a", "b", "c"], 1) == "a"  # a three-way tie: the smallest
    assert mode_of([], 1) is None
    assert mode_of([2, 2.0, "2", "2"], 2) == 2  # 2 and 2.0 are one value (seen first as 2); tie with "2": numbers first
    assert mode_of(["b", "a", "b", "a"], 2) == "a"
    assert mode_of([True, 0, "x"], 1) is True  # bools < numbers < strings
    assert mode_of(["Z", "a"], 1) == "Z"  # by code point


def test_mode_counts_array_elements_unless_as_array() -> None:
    assert mode_of([["x", "y"], ["y"], "x", "x"], 2) == "x"  # x three times, y twice
    assert mode_of([["x", "y"], ["x", "y"], "x"], 2, as_array=True) == ["x", "y"]
    assert mode_of([["x", "x"]], 2) == "x"  # each occurrence counts


def test_unique_count_and_reducer_values_are_comparable() -> None:
    assert holds(Compare(reduce("Order", UniqueCount(prop("sku"))), Equals(lit(3))), SPENDS)
    assert holds(Compare(reduce("Order", First(prop("brand"))), StartsWith("ze")), SPENDS)
    assert holds(Compare(reduce("Order", Sum(prop("spend"))), GreaterThan(lit("12.25"))), SPENDS)


# --------------------------------------------------------------------------------------------------------------------
# Junctions.


def test_and_binds_tighter_than_or_in_the_text_and_the_tree_decides() -> None:
    a, b, c = (Compare(trait(name), Exists()) for name in "abc")
    world = one_user(a=1)  # a true, b and c false
    assert holds(Or(a, And(b, c)), world)
    assert not holds(And(Or(a, b), c), world)
    assert render(Or(a, And(b, c))) == "trait('a').exists() OR trait('b').exists() AND trait('c').exists()"
    assert render(And(Or(a, b), c)) == "(trait('a').exists() OR trait('b').exists()) AND trait('c').exists()"
    assert render(And(a, And(b, c))) == "trait('a').exists() AND (trait('b').exists() AND trait('c').exists())"
    assert render(Or(Or(a, b), c)) == "trait('a').exists() OR trait('b').exists() OR trait('c').exists()"


def test_not_inverts_the_whole_result() -> None:
    bought = at_least(count("Shoes Bought"), 1)
    big = Compare(trait("total_spend"), GreaterThan(lit(200)))
    audience = Not(And(bought, big))
    world = users(
        u1=Profile({"total_spend": 300}, (ev("Shoes Bought", DAY),)),
        u2=Profile({"total_spend": 300}),
        u3=Profile({}, (ev("Shoes Bought", DAY),)),
        u4=Profile(),
    )
    assert members(Definition("USERS", audience), world, NOW) == {"u2", "u3", "u4"}
    assert render(audience) == "NOT (event('Shoes Bought').count() >= 1 AND trait('total_spend') > 200)"


# --------------------------------------------------------------------------------------------------------------------
# Accounts.

ACCOUNT_WORLD = World(
    {
        "u1": Profile({"total_spend": 300}, (ev("Shoes Bought", DAY, price=10),)),
        "u2": Profile({"total_spend": 100}, (ev("Shoes Bought", 2 * DAY, price=20),)),
        "u3": Profile({"total_spend": 500}),
    },
    {
        "both": Account(frozenset({"u1", "u2"}), {"tier": "gold"}),
        "one": Account(frozenset({"u1"}), {"tier": "silver"}),
        "empty": Account(frozenset(), {}),
        "ghost": Account(frozenset({"u1", "nobody"})),  # unknown member ids are ignored
    },
)


def accounts(condition: Condition | Value) -> set[str]:
    return members(Definition("ACCOUNTS", condition), ACCOUNT_WORLD, NOW)


def test_any_and_all_quantify_over_the_accounts_users() -> None:
    bought_big = And(at_least(count("Shoes Bought"), 1), Compare(trait("total_spend"), GreaterThan(lit(200))))
    assert accounts(AnyUser(bought_big)) == {"both", "one", "ghost"}
    assert accounts(AllUsers(bought_big)) == {"one", "ghost", "empty"}  # every user of none: true
    assert accounts(Not(AnyUser(Not(bought_big)))) == accounts(AllUsers(bought_big))
    assert render(AllUsers(bought_big)) == ("ALL (event('Shoes Bought').count() >= 1 AND trait('total_spend') > 200)")
    assert render(AnyUser(at_least(count("Shoes Bought"), 1)), RenderStyle(bare_prefix=True)) == (
        "ANY event('Shoes Bought').count() >= 1"
    )


def test_outside_any_all_an_account_has_its_group_traits_and_its_users_events() -> None:
    assert accounts(Compare(trait("tier"), Equals(lit("gold")))) == {"both"}
    assert accounts(Compare(trait("total_spend"), Exists())) == set()  # user traits are not the account's
    assert accounts(at_least(count("Shoes Bought"), 2)) == {"both"}
    total = Definition("ACCOUNTS", reduce("Shoes Bought", Sum(prop("price"))))
    assert computed_values(total, ACCOUNT_WORLD, NOW) == {"both": 30, "one": 10, "empty": 0, "ghost": 10}
    # Users' events merge by time, ties by user id then list order.
    last = Definition("ACCOUNTS", reduce("Shoes Bought", Last(prop("price"))))
    assert computed_value(last, "both", ACCOUNT_WORLD, NOW) == 10
    tied = World(
        {"u2": Profile({}, (ev("A", DAY, v="u2"),)), "u1": Profile({}, (ev("A", DAY, v="u1"),))},
        {"acct": Account(frozenset({"u1", "u2"}))},
    )
    assert computed_value(Definition("ACCOUNTS", reduce("A", Last(prop("v")))), "acct", tied, NOW) == "u2"
    assert computed_value(Definition("ACCOUNTS", reduce("A", First(prop("v")))), "acct", tied, NOW) == "u1"


def test_any_and_all_are_refused_outside_the_account_level() -> None:
    inner = at_least(count("A"), 1)
    for definition in [
        Definition("USERS", AnyUser(inner)),
        Definition("ACCOUNTS", AnyUser(AllUsers(inner))),
        Definition("ACCOUNTS", at_least(count("A", Where(AnyUser(inner))), 1)),
    ]:
        with pytest.raises(DefinitionError):
            check(definition)


# --------------------------------------------------------------------------------------------------------------------
# Audiences and computed traits used as traits.


def test_an_audience_key_is_a_trait_true_for_members_and_missing_otherwise() -> None:
    world = users(u1=Profile({}, (ev("Order", DAY),)), u2=Profile({"buyer": "stored value, hidden"}))
    others = {"buyer": Definition("USERS", at_least(count("Order"), 1))}
    uses = Definition("USERS", Compare(trait("buyer"), Exists()))
    assert members(uses, world, NOW, others) == {"u1"}
    assert members(Definition("USERS", Compare(trait("buyer"), Absent())), world, NOW, others) == {"u2"}
    assert members(uses, world, NOW) == {"u2"}  # without the definition: the stored trait


def test_a_computed_trait_key_gives_the_computed_value() -> None:
    world = users(u1=Profile({}, (ev("Order", DAY, spend=30), ev("Order", DAY, spend=40))), u2=Profile())
    others = {"spent": Definition("USERS", reduce("Order", Sum(prop("spend"))))}
    assert members(Definition("USERS", Compare(trait("spent"), GreaterThan(lit(50)))), world, NOW, others) == {"u1"}
    assert members(Definition("USERS", Compare(trait("spent"), Equals(lit(0)))), world, NOW, others) == {"u2"}


def test_cycles_between_audiences_are_refused() -> None:
    world = users(u1=Profile())
    a = Definition("USERS", Compare(trait("b"), Exists()))
    b = Definition("USERS", Or(Compare(trait("x"), Exists()), Compare(trait("a"), Exists())))
    with pytest.raises(AudienceCycleError):
        members(a, world, NOW, {"a": a, "b": b}, key="a")
    with pytest.raises(AudienceCycleError):
        members(a, world, NOW, {"a": a, "b": b})  # found without the key too
    itself = Definition("USERS", Compare(trait("self"), Exists()))
    with pytest.raises(AudienceCycleError):
        members(itself, world, NOW, {"self": itself}, key="self")
    with pytest.raises(AudienceCycleError):  # a cycle hidden in a where()
        inner = Definition("USERS", at_least(count("A", Where(Compare(trait("w"), Exists()))), 1))
        members(inner, world, NOW, {"w": inner}, key="w")


def test_a_reference_must_have_the_kind_of_its_place() -> None:
    world = ACCOUNT_WORLD
    users_audience = {"buyer": Definition("USERS", at_least(count("Shoes Bought"), 1))}
    inside = Definition("ACCOUNTS", AnyUser(Compare(trait("buyer"), Exists())))
    assert members(inside, world, NOW, users_audience) == {"both", "one", "ghost"}
    with pytest.raises(DefinitionError):
        members(Definition("ACCOUNTS", Compare(trait("buyer"), Exists())), world, NOW, users_audience)


# --------------------------------------------------------------------------------------------------------------------
# What check() refuses.

REFUSED: list[Definition] = [
    Definition("USERS", Compare(prop("price"), Exists())),  # property() outside where / reducer
    Definition("USERS", Compare(ContextRef("page.url"), Exists())),
    Definition("USERS", at_least(count("A", Where(Compare(PropertyRef("p", parent=True), Exists()))), 1)),
    Definition("USERS", at_least(count("A", Within(days(1), parent=True)), 1)),
    Definition("USERS", at_least(count("A", Within(days(0))), 1)),
    Definition("USERS", at_least(count("A", Between(days(7), days(7))), 1)),
    Definition("USERS", at_least(count("A", Between(days(2), hours(47))), 1)),
    Definition("USERS", at_least(count("A", Sources(())), 1)),
    Definition("USERS", Compare(reduce("A", Unique(prop("p"))), Exists())),  # a list: only .count()
    Definition("USERS", Compare(reduce("A", Mode(prop("p"), 0)), Exists())),
    Definition("USERS", Compare(reduce("A", Sum(PropertyRef("p", parent=True))), Exists())),
    Definition("USERS", Compare(trait("t"), BeforeDate("2025-06-01T12:00:00"))),  # no zone
    Definition("USERS", Compare(trait("t"), WithinLast(days(0)))),
    Definition("USERS", Compare(trait("t"), Contains(()))),
    Definition("USERS", Compare(trait("t"), OneOf(()))),
    Definition("USERS", Compare(trait("t"), Equals(lit(True)))),  # no boolean literal
    Definition("USERS", Compare(trait("t"), Equals(reduce("A", Count())))),  # type: ignore[arg-type]
    Definition("USERS", prop("p")),  # a computed trait must not read an event outside a stream
]


@pytest.mark.parametrize("definition", REFUSED, ids=range(len(REFUSED)))
def test_check_refuses(definition: Definition) -> None:
    with pytest.raises(DefinitionError):
        check(definition)


def test_at_most_fifty_primary_expressions_counting_every_call_that_reads_data() -> None:
    leaf = Compare(trait("a"), Exists())
    condition: Condition = leaf
    for _ in range(49):
        condition = Or(condition, leaf)
    check(Definition("USERS", condition))
    assert primary_expressions(condition) == 50
    with pytest.raises(DefinitionError):
        check(Definition("USERS", Or(condition, leaf)))
    nested = at_least(count("A", Where(And(leaf, leaf))), 1)
    assert primary_expressions(nested) == 3  # event('A') and two trait() calls
    with pytest.raises(DefinitionError):
        check(Definition("USERS", Or(condition, nested)))
    assert primary_expressions(reduce("A", Sum(prop("p")))) == 2  # event('A') and property('p')
    assert primary_expressions(Compare(trait("a"), Equals(trait("b")))) == 2
    assert primary_expressions(Compare(trait("a"), Equals(lit(5)))) == 1


def test_evaluation_needs_an_aware_now() -> None:
    with pytest.raises(ValueError):
        members(Definition("USERS", Compare(trait("a"), Exists())), one_user(), NOW.replace(tzinfo=None))


def test_numbers_are_f64_and_numeric_strings_have_one_grammar() -> None:
    assert [as_number(v) for v in ["5.", ".5", "+5", "-5e-1", "5e", "e5", "", ".", "\u0665", "5_0"]] == [
        5.0,
        0.5,
        5.0,
        -0.5,
        None,
        None,
        None,
        None,
        None,  # an Arabic-Indic digit: ASCII digits only
        None,
    ]
    assert as_number(True) is None
    assert as_number("1e999") is None  # not finite
    assert same_value(5, 5.0) and not same_value(5, "5") and same_value(None, None) and not same_value(0, None)


# --------------------------------------------------------------------------------------------------------------------
# The text: doc examples, spellings, and the round trip through the oracle parser below.


def test_the_query_language_examples_render_as_written() -> None:
    shoes = Where(Compare(prop("price"), AtLeast(lit(100))))
    assert render(at_least(count("Shoes Bought", shoes, Within(days(7))), 1)) == (
        "event('Shoes Bought').where(property('price') >= 100).within(7 days).count() >= 1"
    )
    plan = And(Compare(trait("plan"), Equals(lit("pro"))), at_least(count("Order Completed", Within(days(30))), 3))
    assert render(plan) == "trait('plan') = 'pro' AND event('Order Completed').within(30 days).count() >= 3"
    assert render(reduce("Shoes Bought", Mode(prop("spend"), 2), Within(days(30)))) == (
        "event('Shoes Bought').within(30 days).mode(property('spend'), 2)"
    )
    assert render(reduce("S", Max(prop("spend"), as_string=True))) == "event('S').max(property('spend') as string)"
    assert render(reduce("S", Mode(prop("spend"), 2, as_array=True))) == (
        "event('S').mode(property('spend') as array, 2)"
    )
    assert render(reduce("S", UniqueCount(prop("sku")))) == "event('S').unique(property('sku')).count()"
    assert render(at_least(count("S", Sources(("a", "b")), Between(days(7), days(10))), 1)) == (
        "event('S').sources(exclude: 'a', 'b').between(7 days, 10 days).count() >= 1"
    )


def test_spellings_of_the_same_comparison() -> None:
    node = Compare(trait("it's"), Equals(lit(2.5)))
    assert render(node) == "trait('it\\'s') = 2.5"
    assert render(node, RenderStyle(double_equals=True, quote='"')) == 'trait("it\'s") == 2.5'
    assert render(node, RenderStyle(symbols=False, literal_calls=True)) == "trait('it\\'s').equals(literal(2.5))"
    assert render(node, RenderStyle(layout="tight")) == "trait('it\\'s')=2.5"
    assert render(Compare(trait("t"), Equals(lit('C:\\ "q"')))) == "trait('t') = 'C:\\\\ \"q\"'"
    assert (
        render(Compare(trait("t"), Equals(lit('C:\\ "q"'))), RenderStyle(quote='"')) == 'trait("t") = "C:\\\\ \\"q\\""'
    )
    assert render(at_least(count("A", Within(days(1))), 1), RenderStyle(singular_units=True)) == (
        "event('A').within(1 day).count() >= 1"
    )
    assert render(Compare(trait("n"), Equals(lit(1e-7)))) == "trait('n') = 0.0000001"
    assert render(Compare(trait("n"), Equals(lit(-3)))) == "trait('n') = -3"
    assert render(Compare(trait("n"), Equals(lit(1e16)))) == "trait('n') = 10000000000000000.0"


def _outside_strings(text: str) -> str:
    return re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "", text)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["USERS", "ACCOUNTS"]), st.booleans(), render_styles(), st.data())
def test_render_round_trips_through_a_parser_in_every_style(
    kind: str, computed: bool, style: RenderStyle, data: st.DataObject
) -> None:
    definition = data.draw(definitions(kind="USERS" if kind == "USERS" else "ACCOUNTS", computed_trait=computed))
    text = render(definition, style)
    assert render(definition, style) == text  # stable
    bare = _outside_strings(text)
    assert bare.count("(") == bare.count(")")
    depth = 0
    for char in bare:
        depth += {"(": 1, ")": -1}.get(char, 0)
        assert depth >= 0, text
    assert parse(text) == definition.expression, text
    assert render(parse(text), style) == text


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(), st.one_of(st.text(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)))
def test_any_name_and_literal_round_trip(event: str, name: str, literal: Scalar) -> None:
    node = Or(
        Compare(count(event, Where(Compare(prop(name), Equals(lit(literal))))), AtLeast(lit(1))),
        Compare(trait(name), OneOf((literal, name))),
    )
    for style in (RenderStyle(), RenderStyle(quote='"', layout="tight", literal_calls=True)):
        assert parse(render(node, style)) == node


# --------------------------------------------------------------------------------------------------------------------
# Properties of the evaluator on random worlds (laws any correct evaluator keeps; they also run every construct).


@settings(max_examples=120, deadline=None)
@given(worlds(), definitions(kind="USERS"), definitions(kind="USERS"))
def test_junctions_are_set_operations_on_members(world: World, one: Definition, two: Definition) -> None:
    everybody = set(world.profiles)
    a, b = members(one, world, NOW), members(two, world, NOW)
    x, y = one.expression, two.expression
    assert isinstance(x, Condition) and isinstance(y, Condition)
    assert members(Definition("USERS", Not(x)), world, NOW) == everybody - a
    assert members(Definition("USERS", And(x, y)), world, NOW) == a & b
    assert members(Definition("USERS", Or(x, y)), world, NOW) == a | b


@settings(max_examples=60, deadline=None)
@given(worlds(), definitions(kind="ACCOUNTS"))
def test_all_is_not_any_not_on_random_accounts(world: World, definition: Definition) -> None:
    condition = definition.expression
    assert isinstance(condition, Condition)
    for quantified in _quantifier_bodies(condition):
        all_users = members(Definition("ACCOUNTS", AllUsers(quantified)), world, NOW)
        assert all_users == members(Definition("ACCOUNTS", Not(AnyUser(Not(quantified)))), world, NOW)


def _quantifier_bodies(node: Condition) -> list[Condition]:
    if isinstance(node, AnyUser | AllUsers):
        return [node.operand]
    if isinstance(node, And | Or):
        return _quantifier_bodies(node.left) + _quantifier_bodies(node.right)
    if isinstance(node, Not):
        return _quantifier_bodies(node.operand)
    return []


@settings(max_examples=80, deadline=None)
@given(worlds(), definitions(kind="USERS", computed_trait=True), st.randoms(use_true_random=False))
def test_computed_traits_do_not_depend_on_filter_order(world: World, definition: Definition, rng: Any) -> None:
    value = definition.expression
    assert isinstance(value, Reduce)
    filters = list(value.stream.filters)
    rng.shuffle(filters)
    shuffled = Definition("USERS", Reduce(EventStream(value.stream.name, tuple(filters)), value.reducer))
    for pid in world.profiles:
        assert same_value(computed_value(definition, pid, world, NOW), computed_value(shuffled, pid, world, NOW))


def test_generated_audiences_are_neither_always_empty_nor_always_full() -> None:
    """The pools make definitions meet the data: a good share of random audiences split the profiles.

    The share is not stable: Hypothesis draws constants from every module loaded in the process, so it moves with
    what else a test session imported (12 % to 31 % seen for the same seed, 19 % on average). The bound is set below
    that range; a workload that breaks it has stopped meeting its data."""
    outcomes: Counter[str] = Counter()

    @seed(0)
    @settings(max_examples=400, deadline=None, database=None, phases=[Phase.generate])
    @given(worlds(), definitions(kind="USERS"))
    def sample(world: World, definition: Definition) -> None:
        found = members(definition, world, NOW)
        outcomes["none" if not found else "all" if found == set(world.profiles) else "some"] += 1

    sample()
    assert outcomes["some"] >= 40, outcomes


# --------------------------------------------------------------------------------------------------------------------
# DuckDB cross-check of the benchmark's audience.

BENCH_AUDIENCE = And(
    And(
        Compare(trait("plan"), Equals(lit("pro"))),
        at_least(count("Order Completed", Within(days(30))), 3),
    ),
    Not(at_least(count("Churned"), 1)),
)


def _bench_world(seed: int = 9) -> World:
    """80 random profiles, and four planted on the window's ends."""
    rng = random.Random(seed)
    plans = ["pro", "pro", "free", "Pro", "enterprise", None]
    names = ["Order Completed"] * 8 + ["Churned", "Page Viewed", "Shoes Bought"]
    edges = [timedelta(0), 30 * DAY, 30 * DAY + SECOND, 30 * DAY - SECOND, -HOUR]  # window ends, and after now
    profiles = {}
    for i in range(80):
        plan = rng.choice(plans)
        stream = []
        for _ in range(rng.randint(0, 12)):
            ago = rng.choice(edges) if rng.random() < 0.15 else timedelta(seconds=rng.randint(0, 50 * 86400))
            stream.append(ev(rng.choice(names), ago, source=rng.choice(["web", "ios"])))
        profiles[f"p{i:02}"] = Profile({"plan": plan} if plan is not None else {}, tuple(stream))
    pro = {"plan": "pro"}
    two = (ev("Order Completed", DAY), ev("Order Completed", 2 * DAY))
    profiles["edge_in"] = Profile(pro, (*two, ev("Order Completed", 30 * DAY)))
    profiles["edge_now"] = Profile(pro, (*two, ev("Order Completed", timedelta(0))))
    profiles["edge_out"] = Profile(pro, (*two, ev("Order Completed", 30 * DAY + SECOND)))
    profiles["edge_future"] = Profile(pro, (*two, ev("Order Completed", -SECOND)))
    profiles["churns_later"] = Profile(pro, (*two, ev("Order Completed", DAY), ev("Churned", -HOUR)))
    return World(profiles)


def test_the_benchmark_audience_matches_a_duckdb_query() -> None:
    world = _bench_world()
    assert sum(len(p.events) for p in world.profiles.values()) >= 300
    expected = bench_audience_members(world, NOW)
    found = members(Definition("USERS", BENCH_AUDIENCE), world, NOW)
    assert found == expected
    assert {"edge_in", "edge_now"} <= found and not {"edge_out", "edge_future", "churns_later"} & found
    assert 4 <= len({p for p in found if p.startswith("p")}) <= 40, found  # the random profiles separate too
    assert render(BENCH_AUDIENCE) == (
        "trait('plan') = 'pro' AND event('Order Completed').within(30 days).count() >= 3"
        " AND NOT (event('Churned').count() >= 1)"
    )


# --------------------------------------------------------------------------------------------------------------------
# Round-trip oracle for render(): a small recursive-descent parser of the query text, used only by the tests above to
# check that render() spells and parenthesises correctly. It is no part of the reference.

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<symbol>==|!=|>=|<=|[=<>().,:])
    )""",
    re.VERBOSE,
)
_SYMBOLS: dict[str, type[Equals | Differs | GreaterThan | AtLeast | LessThan | AtMost]] = {
    "=": Equals,
    "==": Equals,
    "!=": Differs,
    ">": GreaterThan,
    ">=": AtLeast,
    "<": LessThan,
    "<=": AtMost,
}
_WORDS: dict[str, type[Equals | Differs | GreaterThan | AtLeast | LessThan | AtMost]] = {
    "equals": Equals,
    "differs": Differs,
    "greater_than": GreaterThan,
    "at_least": AtLeast,
    "less_than": LessThan,
    "at_most": AtMost,
}
_DATES: dict[str, type[BeforeDate | AfterDate]] = {"before_date": BeforeDate, "after_date": AfterDate}
_RELATIVE: dict[str, type[WithinLast | WithinNext | BeforeLast | AfterNext]] = {
    "within_last": WithinLast,
    "within_next": WithinNext,
    "before_last": BeforeLast,
    "after_next": AfterNext,
}
_TEXTS: dict[str, type[Omits | StartsWith | EndsWith]] = {
    "omits": Omits,
    "starts_with": StartsWith,
    "ends_with": EndsWith,
}
_COMPARATOR_NAMES = {*_WORDS, *_DATES, *_RELATIVE, *_TEXTS, "exists", "absent", "contains", "one_of"}
_FIELD_REDUCERS: dict[str, type[Sum | Avg | First | Last]] = {"sum": Sum, "avg": Avg, "first": First, "last": Last}


def parse(text: str) -> Condition | Value:
    return _Parser(text).definition()


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while text[position:].strip():
            match = _TOKEN.match(text, position)
            assert match and match.lastgroup, f"cannot read {text[position:]!r}"
            self.tokens.append((match.lastgroup, match.group(match.lastgroup)))
            position = match.end()
        self.at = 0

    def peek(self, offset: int = 0) -> str:
        return self.tokens[self.at + offset][1] if self.at + offset < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.at]
        assert expected is None or token[1] == expected, f"expected {expected!r}, got {token[1]!r}"
        self.at += 1
        return token

    def definition(self) -> Condition | Value:
        result = self.expression(allow_value=True)
        assert self.at == len(self.tokens), f"left over: {self.tokens[self.at :]}"
        return result

    def expression(self, allow_value: bool = False) -> Condition | Value:
        left = self.conjunction(allow_value)
        while self.peek() == "OR":
            self.take()
            left = Or(self.condition(left), self.condition(self.conjunction(False)))
        return left

    def conjunction(self, allow_value: bool) -> Condition | Value:
        left = self.unary(allow_value)
        while self.peek() == "AND":
            self.take()
            left = And(self.condition(left), self.condition(self.unary(False)))
        return left

    @staticmethod
    def condition(node: Condition | Value) -> Condition:
        assert isinstance(node, Condition), f"a condition was expected, not {node!r}"
        return node

    def unary(self, allow_value: bool) -> Condition | Value:
        word = self.peek()
        if word in ("NOT", "ANY", "ALL"):
            self.take()
            operand = self.condition(self.unary(False))
            prefix: dict[str, type[Not | AnyUser | AllUsers]] = {"NOT": Not, "ANY": AnyUser, "ALL": AllUsers}
            return prefix[word](operand)
        if word == "(":
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        return self.comparison(allow_value)

    def comparison(self, allow_value: bool) -> Condition | Value:
        subject = self.value()
        if self.peek() in _SYMBOLS:
            return Compare(subject, _SYMBOLS[self.take()[1]](self.operand()))
        if self.peek() == "." and self.peek(1) in _COMPARATOR_NAMES:
            self.take(".")
            return Compare(subject, self.comparator())
        assert allow_value, f"a comparator was expected after {subject!r}"
        return subject

    def comparator(self) -> Comparator:
        name = self.take()[1]
        self.take("(")
        result: Comparator
        if name in _WORDS:
            result = _WORDS[name](self.operand())
        elif name in ("exists", "absent"):
            result = Exists() if name == "exists" else Absent()
        elif name == "contains":
            result = Contains(tuple(self.strings()))
        elif name == "one_of":
            values = [self.scalar()]
            while self.peek() == ",":
                self.take()
                values.append(self.scalar())
            result = OneOf(tuple(values))
        elif name in _DATES:
            result = _DATES[name](self.string())
        elif name in _RELATIVE:
            result = _RELATIVE[name](self.duration())
        else:
            result = _TEXTS[name](self.string())
        self.take(")")
        return result

    def strings(self) -> list[str]:
        found = [self.string()]
        while self.peek() == ",":
            self.take()
            found.append(self.string())
        return found

    def string(self) -> str:
        kind, text = self.take()
        assert kind == "string", f"a string was expected, not {text!r}"
        return re.sub(r"\\(.)", r"\1", text[1:-1])

    def scalar(self) -> Scalar:
        kind, text = self.tokens[self.at]
        if kind == "string":
            return self.string()
        self.take()
        assert kind == "number", f"a number was expected, not {text!r}"
        return float(text) if "." in text else int(text)

    def duration(self) -> Duration:
        kind, amount = self.take()
        assert kind == "number" and "." not in amount
        unit = self.take()[1]
        assert unit in ("day", "days", "hour", "hours")
        return Duration(int(amount), "days" if unit.startswith("day") else "hours")

    def operand(self) -> Operand:
        if self.tokens[self.at][0] in ("string", "number"):
            return LiteralValue(self.scalar())
        value = self.value()
        assert not isinstance(value, Reduce), "a comparator's operand is not a stream"
        return value

    def value(self) -> Value:
        name = self.take()[1]
        self.take("(")
        if name == "event":
            return self.chain(self.string())
        result: Value
        if name == "trait":
            result = TraitRef(self.string())
        elif name == "property":
            parent = self.peek() == "parent"
            if parent:
                self.take()
                self.take(":")
            result = PropertyRef(self.string(), parent)
        elif name == "context":
            result = ContextRef(self.string())
        else:
            assert name == "literal", f"not an extractor: {name!r}"
            result = LiteralValue(self.scalar())
        self.take(")")
        return result

    def chain(self, event: str) -> Reduce:
        self.take(")")
        filters: list[Filter] = []
        while True:
            self.take(".")
            name = self.take()[1]
            self.take("(")
            if name == "where":
                filters.append(Where(self.condition(self.expression())))
            elif name == "within":
                parent = self.peek() == "parent"
                if parent:
                    self.take()
                    self.take(":")
                filters.append(Within(self.duration(), parent))
            elif name == "between":
                start = self.duration()
                self.take(",")
                filters.append(Between(start, self.duration()))
            elif name == "sources":
                self.take("exclude")
                self.take(":")
                filters.append(Sources(tuple(self.strings())))
            else:
                return Reduce(EventStream(event, tuple(filters)), self.reducer(name))
            self.take(")")

    def reducer(self, name: str) -> Reducer:
        if name == "count":
            self.take(")")
            return Count()
        of = self.value()
        assert isinstance(of, PropertyRef | ContextRef)
        reducer: Reducer
        if name in ("min", "max"):
            as_string = self.peek() == "as"
            if as_string:
                self.take()
                self.take("string")
            reducer = Min(of, as_string) if name == "min" else Max(of, as_string)
        elif name == "mode":
            as_array = self.peek() == "as"
            if as_array:
                self.take()
                self.take("array")
            self.take(",")
            reducer = Mode(of, int(self.take()[1]), as_array)
        elif name == "unique":
            self.take(")")
            if self.peek() == "." and self.peek(1) == "count":
                self.take(".")
                self.take("count")
                self.take("(")
                self.take(")")
                return UniqueCount(of)
            return Unique(of)
        else:
            reducer = _FIELD_REDUCERS[name](of)
        self.take(")")
        return reducer
