"""The semantics' edges through a real server, each against the reference (audience_reference.py).

The random worlds of test_audiences_grpc.py seldom sit exactly where the contract draws a line (a window's ends, ties
in time, mode's tie-break, numeric strings, dates without a zone, an account's users' events in time ties, ...): each
case here puts a few profiles on both sides of one such line. The expected answer is the reference's; the server's
Preview, ListMembers and CheckMembership must give it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from audience_query import (
    Absent,
    AllUsers,
    And,
    AnyUser,
    AtLeast,
    AtMost,
    Avg,
    Between,
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
    Reduce,
    Reducer,
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
    render,
)
from audience_reference import Account, Event, Profile, World
from audience_server import (
    PAGE,
    AudienceRpc,
    Loaded,
    check_saved,
    expected_answer,
    explain,
    same_answer,
    server_answer,
)
from audience_workload import NOW

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)


if TYPE_CHECKING:
    from conftest import ServerProcess


class EdgeServer:
    """One server for every case. A world is sent once, however many cases read it (so that the server holds fewer
    profiles than one sample shows); each case has its own keys."""

    def __init__(self, rpc: AudienceRpc) -> None:
        self.rpc = rpc
        self.loaded: dict[int, Loaded] = {}

    def load(self, world: World) -> Loaded:
        if id(world) not in self.loaded:
            self.loaded[id(world)] = self.rpc.load(world, f"e{len(self.loaded)}_")
        return self.loaded[id(world)]


@pytest.fixture(scope="module")
def edges(module_server: ServerProcess) -> Iterator[EdgeServer]:
    client = AudienceRpc(module_server)
    client.create_sources()
    yield EdgeServer(client)
    client.close()


# --------------------------------------------------------------------------------------------------------------------
# Building trees and worlds.


def days(n: int) -> Duration:
    return Duration(n, "days")


def ev(
    name: str, ago: timedelta, source: str = "src_web", context: dict[str, Any] | None = None, **props: Any
) -> Event:
    return Event(name, NOW - ago, props, context or {}, source)


def count(name: str, *filters: Filter) -> Reduce:
    return Reduce(EventStream(name, filters), Count())


def reduce(name: str, reducer: Reducer, *filters: Filter) -> Reduce:
    return Reduce(EventStream(name, filters), reducer)


def lit(value: int | float | str) -> LiteralValue:
    return LiteralValue(value)


def at_least(subject: Value, n: int | float | str) -> Compare:
    return Compare(subject, AtLeast(lit(n)))


def prop(name: str, parent: bool = False) -> PropertyRef:
    return PropertyRef(name, parent)


def users(*profiles: Profile, accounts: dict[str, Account] | None = None) -> World:
    """Profiles named p1, p2, ... in order."""
    return World({f"p{i}": p for i, p in enumerate(profiles, start=1)}, accounts or {})


def values(name: str, *values: Any, prop_name: str = "v", gap: timedelta = HOUR) -> Profile:
    """One profile whose events `name` carry these values of `prop_name`, oldest first, `gap` apart."""
    n = len(values)
    return Profile({}, tuple(ev(name, (n - i) * gap, **{prop_name: v}) for i, v in enumerate(values)))


@dataclass(frozen=True)
class Edge:
    name: str
    world: World
    expression: Condition | Value
    kind: Kind = "USERS"
    saved: Sequence[tuple[str, Definition]] = ()  # saved first, in order; keys are used as written

    @property
    def definition(self) -> Definition:
        return Definition(self.kind, self.expression)


ORDER = "Order Completed"
WINDOW_WORLD = users(
    *(Profile({}, (ev(ORDER, ago),)) for ago in (timedelta(0), -SECOND, 7 * DAY, 7 * DAY + SECOND, DAY, DAY + SECOND))
)
TIES = (  # three events at one instant, then one later; listed out of time order
    ev("Shoes Bought", 2 * HOUR, sku="late"),
    ev("Shoes Bought", 3 * HOUR, sku="b"),
    ev("Shoes Bought", 3 * HOUR, sku="a"),
    ev("Shoes Bought", 3 * HOUR, sku="c"),
)

EDGES = [
    Edge("within_ends", WINDOW_WORLD, at_least(count(ORDER, Within(days(7))), 1)),
    Edge("within_hours", WINDOW_WORLD, at_least(count(ORDER, Within(Duration(24, "hours"))), 1)),
    Edge("between_ends", WINDOW_WORLD, at_least(count(ORDER, Between(days(1), days(7))), 1)),
    Edge("between_from_now", WINDOW_WORLD, at_least(count(ORDER, Between(days(0), days(7))), 1)),
    Edge("no_window_counts_the_future", WINDOW_WORLD, count(ORDER)),
    Edge("first_and_last_break_ties_by_arrival", users(Profile({}, TIES)), reduce("Shoes Bought", First(prop("sku")))),
    Edge("last_of_ties", users(Profile({}, TIES[1:])), reduce("Shoes Bought", Last(prop("sku")))),
    Edge(
        "first_skips_missing_values",
        users(
            Profile(
                {},
                (ev("Shoes Bought", 2 * HOUR), ev("Shoes Bought", HOUR, sku=None), ev("Shoes Bought", 0 * HOUR, sku=3)),
            )
        ),
        reduce("Shoes Bought", First(prop("sku"))),
    ),
    Edge(
        "mode_ties_go_to_the_smallest_value",
        users(values("E", "b", "a", "b", "a"), values("E", 5, "5", 5.0, "5"), values("E", True, 1, True, 1)),
        reduce("E", Mode(prop("v"), 2)),
    ),
    Edge(
        "mode_counts_array_elements_unless_as_array",
        users(values("E", ["x", "y"], ["y"], "x"), values("E", ["x"], ["x"], "x", "y")),
        reduce("E", Mode(prop("v"), 2)),
    ),
    Edge(
        "mode_as_array",
        users(values("E", ["x", "y"], ["y"], "x"), values("E", ["x"], ["x"], "x", "x", "x")),
        reduce("E", Mode(prop("v"), 2, as_array=True)),
    ),
    Edge(
        "unique_is_by_value_within_a_type",
        users(values("E", 5, 5.0, "5", [1, 2], [1, 2], [2, 1], True, 1, "", None), values("E", None)),
        reduce("E", Unique(prop("v"))),
    ),
    Edge("unique_count", users(values("E", 5, 5.0, "5", [1, 2], [1, 2], True)), reduce("E", UniqueCount(prop("v")))),
    Edge(
        "min_max_numeric_or_as_string",
        users(values("E", "b", "a", 10, "9", " 3", "1e1", True), values("E", "x"), values("E", 4)),
        And(
            Compare(reduce("E", Min(prop("v"))), Equals(lit(9))),
            Compare(reduce("E", Max(prop("v"), as_string=True)), Equals(lit("b"))),
        ),
    ),
    Edge("min_as_string", users(values("E", "b", "a", 10, "9"), values("E", 4)), reduce("E", Min(prop("v"), True))),
    Edge("max_numeric", users(values("E", "b", "1e1", 10.25, "9", "NaN", "inf")), reduce("E", Max(prop("v")))),
    Edge(
        "sum_is_zero_and_avg_missing_without_numbers",
        users(values("E", "x", True), values("E", 1.5, "2.5", " 1", "0x10"), Profile()),
        reduce("E", Sum(prop("v"))),
    ),
    Edge(
        "avg_is_missing_without_numbers",
        users(values("E", "x", True), values("E", 1.5, "2.5", " 1", "5.", ".5"), Profile()),
        reduce("E", Avg(prop("v"))),
    ),
    Edge(
        "numeric_strings_have_one_grammar",
        users(
            *(
                Profile({"total_spend": v})
                for v in ("42", " 5", "5 ", "1e2", ".5", "5.", "0x10", "NaN", "inf", "1,000", "-3", "+7", True)
            )
        ),
        Compare(TraitRef("total_spend"), GreaterThan(lit(0))),
    ),
    Edge(
        "equals_across_types",
        users(*(Profile({"plan": v}) for v in (5, "5", "5.0", 5.0, "five", True, "true", [5], None))),
        Compare(TraitRef("plan"), Equals(lit(5))),
    ),
    Edge(
        "differs_needs_a_value",
        users(*(Profile({"plan": v}) for v in ("pro", "free", 5, None, [1])), Profile()),
        Compare(TraitRef("plan"), Differs(lit("pro"))),
    ),
    Edge(
        "not_holds_without_the_trait",
        users(Profile({"plan": "pro"}), Profile({"plan": "free"}), Profile({"plan": None}), Profile()),
        Not(Compare(TraitRef("plan"), Equals(lit("pro")))),
    ),
    Edge(
        "contains_and_omits_on_other_types",
        users(*(Profile({"city": v}) for v in ("paris", "Paris", 7, ["paris"], None))),
        Or(Compare(TraitRef("city"), Contains(("ari",))), Compare(TraitRef("city"), Omits("Par"))),
    ),
    Edge(
        "dates_need_a_zone",
        users(
            *(
                Profile({"signup_at": v})
                for v in (
                    "2025-05-31",
                    "2025-05-31T12:00:00Z",
                    "2025-05-31T11:59:59Z",
                    "2025-06-01T14:00:00+02:00",
                    "2025-06-01T12:00:00.999999Z",
                    "2025-05-31T12:00:00",
                    "2025-05-31t12:00:00z",
                    1748779200,
                    "soon",
                )
            )
        ),
        Compare(TraitRef("signup_at"), WithinLast(days(1))),
    ),
    Edge(
        "within_parent_counts_the_parent_itself",
        users(
            Profile({}, (ev("Shoes Bought", 3 * DAY), ev("Shoes Bought", 2 * DAY))),
            Profile({}, (ev("Shoes Bought", 3 * DAY), ev("Shoes Bought", DAY))),
            Profile({}, (ev("Shoes Bought", 3 * DAY),)),
        ),
        at_least(count("Shoes Bought", Where(at_least(count("Shoes Bought", Within(days(1), parent=True)), 2))), 1),
    ),
    Edge(
        "property_parent_reads_the_enclosing_event",
        users(
            Profile({}, (ev("Shoes Bought", 3 * DAY, sku="s1"), ev("Shoes Returned", 2 * DAY, sku="s1"))),
            Profile({}, (ev("Shoes Bought", 3 * DAY, sku="s1"), ev("Shoes Returned", 2 * DAY, sku="s2"))),
            Profile({}, (ev("Shoes Bought", 3 * DAY, sku="s1"), ev("Shoes Returned", 4 * DAY, sku="s1"))),
        ),
        at_least(
            count(
                "Shoes Bought",
                Where(
                    at_least(
                        count(
                            "Shoes Returned",
                            Where(Compare(prop("sku"), Equals(prop("sku", parent=True)))),
                            Within(days(5), parent=True),
                        ),
                        1,
                    )
                ),
            ),
            1,
        ),
    ),
    Edge(
        "context_paths_walk_objects",
        users(
            Profile({}, (ev("Page Viewed", HOUR, context={"page": {"url": "/x"}}),)),
            Profile({}, (ev("Page Viewed", HOUR, context={"page": "/x"}),)),
            Profile({}, (ev("Page Viewed", HOUR, context={"page.url": "/x"}),)),
        ),
        at_least(count("Page Viewed", Where(Compare(ContextRef("page.url"), Equals(lit("/x"))))), 1),
    ),
    Edge(
        "sources_exclude_by_name",
        users(
            Profile({}, (ev(ORDER, HOUR, "src_web"),)),
            Profile({}, (ev(ORDER, HOUR, "src_ios"), ev(ORDER, HOUR, "src_web"))),
            Profile({}, (ev(ORDER, HOUR, "src_server"),)),
        ),
        at_least(count(ORDER, Sources(("src_web", "src_server"))), 1),
    ),
    Edge(
        "an_audience_key_is_true_for_members_and_missing_otherwise",
        users(Profile({"plan": "pro"}), Profile({"plan": "free"}), Profile()),
        Or(Compare(TraitRef("edge_vip"), Absent()), Compare(TraitRef("edge_vip"), Equals(lit("true")))),
        saved=[("edge_vip", Definition("USERS", Compare(TraitRef("plan"), Equals(lit("pro")))))],
    ),
    Edge(
        "a_computed_trait_key_gives_its_value",
        users(values(ORDER, 5, 10), values(ORDER, 1), Profile({"edge_spend": 100})),
        Compare(TraitRef("edge_spend"), AtLeast(lit(6))),
        saved=[("edge_spend", Definition("USERS", reduce(ORDER, Sum(prop("v")))))],
    ),
    Edge(
        "an_account_has_its_users_events_and_its_own_traits",
        users(
            values(ORDER, 1, 2),
            values(ORDER, 3),
            Profile({"tier": "gold"}),
            accounts={
                "a1": Account(frozenset({"p1", "p2"}), {"tier": "gold"}),
                "a2": Account(frozenset({"p1", "p3"})),
            },
        ),
        And(at_least(count(ORDER), 3), Compare(TraitRef("tier"), Equals(lit("gold")))),
        kind="ACCOUNTS",
    ),
    Edge(
        "all_and_any_over_an_accounts_users",
        users(
            Profile({"plan": "pro"}),
            Profile({"plan": "free"}),
            Profile(),
            accounts={
                "a1": Account(frozenset({"p1", "p2"})),
                "a2": Account(frozenset({"p1"})),
                "a3": Account(frozenset({"p2", "p3"})),
            },
        ),
        Or(
            AllUsers(Compare(TraitRef("plan"), Exists())),
            And(
                AnyUser(Compare(TraitRef("plan"), Equals(lit("pro")))),
                Not(AllUsers(Compare(TraitRef("plan"), Equals(lit("pro"))))),
            ),
        ),
        kind="ACCOUNTS",
    ),
    Edge(
        "an_accounts_events_in_time_ties_follow_its_users_order",
        users(
            Profile({}, (ev("Shoes Bought", HOUR, sku="p1"),)),
            Profile({}, (ev("Shoes Bought", HOUR, sku="p2"),)),
            Profile({}, (ev("Shoes Bought", HOUR, sku="p3"),)),
            accounts={"a1": Account(frozenset({"p1", "p2", "p3"}))},
        ),
        reduce("Shoes Bought", First(prop("sku"))),
        kind="ACCOUNTS",
    ),
    Edge(
        "an_accounts_last_in_time_ties",
        users(
            Profile({}, (ev("Shoes Bought", HOUR, sku="p1"),)),
            Profile({}, (ev("Shoes Bought", HOUR, sku="p2"),)),
            Profile({}, (ev("Shoes Bought", HOUR, sku="p3"),)),
            accounts={"a1": Account(frozenset({"p1", "p2", "p3"}))},
        ),
        reduce("Shoes Bought", Last(prop("sku"))),
        kind="ACCOUNTS",
    ),
]

# The planner answers trait comparisons and windowed counts from indexes (bitmaps, numeric ranges, day buckets): every
# comparator on them, against literals of each type, on values of each type and on windows that do not fall on days.
BINARY: dict[str, type[Equals | Differs | GreaterThan | AtLeast | LessThan | AtMost]] = {
    "eq": Equals,
    "ne": Differs,
    "gt": GreaterThan,
    "ge": AtLeast,
    "lt": LessThan,
    "le": AtMost,
}
LITERALS: dict[str, int | float | str] = {"0": 0, "1": 1, "2": 2, "1_5": 1.5, "str_2": "2", "str_x": "x", "neg": -1}
# Profiles with 0, 1, 2 and 3 events inside a 36-hour window and others just outside it (and after now).
COUNT_WORLD = users(
    Profile(),
    Profile({}, (ev(ORDER, 36 * HOUR + SECOND), ev(ORDER, -SECOND))),
    Profile({}, (ev(ORDER, 36 * HOUR),)),
    Profile({}, (ev(ORDER, timedelta(0)), ev(ORDER, 24 * HOUR), ev(ORDER, 40 * HOUR))),
    Profile({}, (ev(ORDER, HOUR), ev(ORDER, 12 * HOUR), ev(ORDER, 35 * HOUR))),
    Profile({}, (ev("Churned", HOUR),)),
)
TRAIT_WORLD = users(
    *(
        Profile({"age": v})
        for v in (0, 1, 2, 1.5, -1, "2", "1.5", " 2", "x", "", True, False, None, [2], {"n": 2}, "1e0", -0.0, 1e300)
    ),
    Profile(),
)
EDGES += [
    Edge(
        f"count_{op}_{name}",
        COUNT_WORLD,
        Compare(count(ORDER, Within(Duration(36, "hours"))), comparator(lit(value))),
    )
    for op, comparator in BINARY.items()
    for name, value in LITERALS.items()
]
EDGES += [
    Edge(
        f"not_count_{op}_1", COUNT_WORLD, Not(Compare(count(ORDER, Between(Duration(12, "hours"), days(2))), c(lit(1))))
    )
    for op, c in BINARY.items()
]
# Counts are kept in a byte that stops at 255 when the comparison cannot tell 255 from more (a number below 250):
# profiles on both sides of that line, against numbers on both sides of it.
MANY_WORLD = users(*(Profile({}, tuple(ev(ORDER, i * SECOND) for i in range(n))) for n in (249, 254, 255, 256, 300)))
EDGES += [
    Edge(f"many_count_{op}_{n}", MANY_WORLD, Compare(count(ORDER, Within(days(2))), BINARY[op](lit(n))))
    for op, n in (("gt", 249), ("lt", 100), ("ne", 10), ("eq", 249), ("eq", 255), ("ge", 255), ("gt", 255), ("le", 254))
]
EDGES += [
    Edge(f"trait_{op}_{name}", TRAIT_WORLD, Compare(TraitRef("age"), comparator(lit(value))))
    for op, comparator in BINARY.items()
    for name, value in LITERALS.items()
]
EDGES += [
    Edge("trait_one_of", TRAIT_WORLD, Compare(TraitRef("age"), OneOf((2, "x", 1.5)))),
    Edge("trait_exists", TRAIT_WORLD, Compare(TraitRef("age"), Exists())),
    Edge("trait_absent", TRAIT_WORLD, Compare(TraitRef("age"), Absent())),
    Edge("not_trait_eq_2", TRAIT_WORLD, Not(Compare(TraitRef("age"), Equals(lit(2))))),
    Edge("trait_starts_with", TRAIT_WORLD, Compare(TraitRef("age"), StartsWith("1"))),
    Edge("trait_ends_with", TRAIT_WORLD, Compare(TraitRef("age"), EndsWith(""))),
]


@pytest.mark.parametrize("edge", EDGES, ids=[e.name for e in EDGES])
def test_the_server_draws_the_line_where_the_reference_does(edges: EdgeServer, edge: Edge) -> None:
    rpc = edges.rpc
    loaded = edges.load(edge.world)
    others: dict[str, Definition] = {}
    for key, definition in edge.saved:
        rpc.create_definition(key, definition, render(definition))
        others[key] = definition
    definition = edge.definition
    query = render(definition)
    expected = expected_answer(definition, loaded, others, None)
    answer = rpc.preview_definition(definition, query)
    assert answer.count <= PAGE, "more entities than one sample: the test would not see them all"
    assert len(answer.sample) == answer.count
    server = server_answer(answer.sample, definition, loaded)
    assert same_answer(server, expected), "Preview" + explain(loaded, query, definition, server, expected)
    key = edge.name[:100]
    rpc.create_definition(key, definition, query)
    check_saved(rpc, loaded, key, definition, query, expected_answer(definition, loaded, others, key))
