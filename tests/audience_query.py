"""The audience and computed-trait query language (QUERY_LANGUAGE.md) as a tree: its nodes, the checks the engine's
type checker makes (`check`), and its text (`render`) in every equivalent spelling (`RenderStyle`).

The tree is what a parser of the text must produce; the evaluator in audience_reference.py gives it a meaning.
Spelling choices the Rust parser must accept: `=` and `==`; the comparator symbols and words; `'` and `"` strings with
`\\` escaping the quote and the backslash; `literal(x)` or a bare number / string as an operand; `1 day` and
`1 days`; `NOT x` / `ANY x` / `ALL x` without parentheses when x is one comparison (Segment's examples), parentheses
around any comparison; any whitespace (spaces, tabs, newlines) between tokens, none needed around symbols and
parentheses. Numbers are decimal, optionally negative, never with an exponent. `AND` and `OR` are left-associative.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal

Kind = Literal["USERS", "ACCOUNTS"]
Unit = Literal["days", "hours"]
Scalar = int | float | str  # what a literal may hold

# --------------------------------------------------------------------------------------------------------------------
# The tree. A parser of the query text must give back exactly these nodes (see render()).


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: Unit

    def delta(self) -> timedelta:
        return timedelta(days=self.amount) if self.unit == "days" else timedelta(hours=self.amount)


@dataclass(frozen=True)
class TraitRef:
    name: str


@dataclass(frozen=True)
class PropertyRef:
    name: str
    parent: bool = False  # property(parent: 'name'): the enclosing where's event


@dataclass(frozen=True)
class ContextRef:
    path: str  # dotted


@dataclass(frozen=True)
class LiteralValue:
    value: Scalar


@dataclass(frozen=True)
class Where:
    condition: Condition


@dataclass(frozen=True)
class Within:
    duration: Duration
    parent: bool = False  # within(parent: N unit)


@dataclass(frozen=True)
class Between:
    start: Duration  # the nearer end (A in between(A, B))
    end: Duration


@dataclass(frozen=True)
class Sources:
    exclude: tuple[str, ...]


@dataclass(frozen=True)
class EventStream:
    name: str
    filters: tuple[Filter, ...] = ()


@dataclass(frozen=True)
class Count:
    pass


@dataclass(frozen=True)
class Sum:
    of: FieldRef


@dataclass(frozen=True)
class Avg:
    of: FieldRef


@dataclass(frozen=True)
class Min:
    of: FieldRef
    as_string: bool = False


@dataclass(frozen=True)
class Max:
    of: FieldRef
    as_string: bool = False


@dataclass(frozen=True)
class Mode:
    of: FieldRef
    min_count: int
    as_array: bool = False


@dataclass(frozen=True)
class First:
    of: FieldRef


@dataclass(frozen=True)
class Last:
    of: FieldRef


@dataclass(frozen=True)
class Unique:
    of: FieldRef


@dataclass(frozen=True)
class UniqueCount:  # unique(p).count()
    of: FieldRef


@dataclass(frozen=True)
class Reduce:
    stream: EventStream
    reducer: Reducer


@dataclass(frozen=True)
class Equals:
    operand: Operand


@dataclass(frozen=True)
class Differs:
    operand: Operand


@dataclass(frozen=True)
class GreaterThan:
    operand: Operand


@dataclass(frozen=True)
class AtLeast:
    operand: Operand


@dataclass(frozen=True)
class LessThan:
    operand: Operand


@dataclass(frozen=True)
class AtMost:
    operand: Operand


@dataclass(frozen=True)
class Exists:
    pass


@dataclass(frozen=True)
class Absent:
    pass


@dataclass(frozen=True)
class Contains:
    needles: tuple[str, ...]


@dataclass(frozen=True)
class Omits:
    needle: str


@dataclass(frozen=True)
class StartsWith:
    prefix: str


@dataclass(frozen=True)
class EndsWith:
    suffix: str


@dataclass(frozen=True)
class OneOf:
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class BeforeDate:
    iso: str


@dataclass(frozen=True)
class AfterDate:
    iso: str


@dataclass(frozen=True)
class WithinLast:
    duration: Duration


@dataclass(frozen=True)
class WithinNext:
    duration: Duration


@dataclass(frozen=True)
class BeforeLast:
    duration: Duration


@dataclass(frozen=True)
class AfterNext:
    duration: Duration


@dataclass(frozen=True)
class Compare:
    subject: Value
    comparator: Comparator


@dataclass(frozen=True)
class And:
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Or:
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class AnyUser:  # ANY(...)
    operand: Condition


@dataclass(frozen=True)
class AllUsers:  # ALL(...)
    operand: Condition


@dataclass(frozen=True)
class Definition:
    kind: Kind
    expression: Condition | Value  # a Condition for an audience, a Value for a computed trait


FieldRef = PropertyRef | ContextRef  # what a reducer reads from each event
Operand = TraitRef | PropertyRef | ContextRef | LiteralValue  # what a comparator compares with
Value = TraitRef | PropertyRef | ContextRef | LiteralValue | Reduce
Filter = Where | Within | Between | Sources
Reducer = Count | Sum | Avg | Min | Max | Mode | First | Last | Unique | UniqueCount
BinaryComparator = Equals | Differs | GreaterThan | AtLeast | LessThan | AtMost
DateComparator = BeforeDate | AfterDate | WithinLast | WithinNext | BeforeLast | AfterNext
Comparator = BinaryComparator | Exists | Absent | Contains | Omits | StartsWith | EndsWith | OneOf | DateComparator
Condition = Compare | And | Or | Not | AnyUser | AllUsers

# Word forms and symbols of the comparators that have both.
COMPARATOR_WORDS: dict[type, str] = {
    Equals: "equals",
    Differs: "differs",
    GreaterThan: "greater_than",
    AtLeast: "at_least",
    LessThan: "less_than",
    AtMost: "at_most",
}
COMPARATOR_SYMBOLS: dict[type, str] = {
    Equals: "=",
    Differs: "!=",
    GreaterThan: ">",
    AtLeast: ">=",
    LessThan: "<",
    AtMost: "<=",
}
DATE_WORDS: dict[type, str] = {
    BeforeDate: "before_date",
    AfterDate: "after_date",
    WithinLast: "within_last",
    WithinNext: "within_next",
    BeforeLast: "before_last",
    AfterNext: "after_next",
}
MAX_PRIMARY_EXPRESSIONS = 50


class DefinitionError(ValueError):
    """A definition the engine must refuse as well (out of place extractor, bad window, too many expressions, ...)."""


class AudienceCycleError(DefinitionError):
    """Audiences / computed traits that reference each other in a loop through `trait('key')`."""


def is_audience(definition: Definition) -> bool:
    return isinstance(definition.expression, Condition)


# --------------------------------------------------------------------------------------------------------------------
# Rendering to query text.


@dataclass(frozen=True)
class RenderStyle:
    """Equivalent spellings of the same tree, so that a parser meets all of them."""

    symbols: bool = True  # `x >= 3` rather than `x.at_least(3)`
    double_equals: bool = False  # `==` rather than `=` (with symbols)
    quote: str = "'"  # or '"'; the quote and backslash are escaped with a backslash inside strings
    literal_calls: bool = False  # `literal(3)` rather than `3` as a comparator's operand
    singular_units: bool = False  # `1 day` / `1 hour` rather than `1 days` / `1 hours`
    bare_prefix: bool = False  # `NOT x` / `ANY x` without parentheses when x is one comparison (Segment's examples)
    redundant_parens: bool = False  # `( comparison )` around every comparison
    layout: Literal["normal", "tight", "loose"] = "normal"  # how much whitespace, where whitespace is optional


def render(definition: Definition | Condition | Value, style: RenderStyle | None = None) -> str:
    """The query text of a definition (its kind is not part of the text). Parsing it gives back the same tree: AND
    and OR are left-associative, so a right operand of the same junction is parenthesised."""
    expression = definition.expression if isinstance(definition, Definition) else definition
    return _Renderer(style or RenderStyle()).top(expression)


class _Renderer:
    def __init__(self, style: RenderStyle) -> None:
        self.style = style
        loose = style.layout == "loose"
        tight = style.layout == "tight"
        self.space = "" if tight else " "  # optional space (after a comma, around a comparison symbol)
        self.open = "(\n\t " if loose else "("  # after an opening parenthesis
        self.close = " \n)" if loose else ")"
        self.dot = "\n    ." if loose else "."  # between calls of a chain
        self.junction_gap = ("\n  ", "  ") if loose else (" ", " ")
        self.comma = ",\n " if loose else ("," if tight else ", ")

    def top(self, expression: Condition | Value) -> str:
        if isinstance(expression, Condition):
            return self.condition(expression, 0)
        return self.value(expression, subject=True)

    def call(self, name: str, *arguments: str) -> str:
        return name + self.open + self.comma.join(arguments) + self.close if arguments else name + "()"

    def string(self, text: str) -> str:
        quote = self.style.quote
        return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote

    def scalar(self, value: Scalar) -> str:
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DefinitionError(f"a literal is a number or a string, not {value!r}")
        if isinstance(value, int):
            return str(value)
        text = format(Decimal(repr(value)), "f")  # plain decimal, never an exponent
        return text if "." in text else text + ".0"

    def duration(self, duration: Duration) -> str:
        unit = duration.unit[:-1] if self.style.singular_units and duration.amount == 1 else duration.unit
        return f"{duration.amount} {unit}"

    def condition(self, node: Condition, context: int) -> str:
        """`context` is the binding strength required here: 0 at the top or inside parentheses, 1 left of OR, 2 right
        of OR or left of AND, 3 right of AND or after NOT / ANY / ALL. OR is 1, AND 2, the rest 3."""
        before, after = self.junction_gap
        if isinstance(node, Or):
            text, strength = self.condition(node.left, 1) + before + "OR" + after + self.condition(node.right, 2), 1
        elif isinstance(node, And):
            text, strength = self.condition(node.left, 2) + before + "AND" + after + self.condition(node.right, 3), 2
        elif isinstance(node, Not | AnyUser | AllUsers):
            word = {Not: "NOT", AnyUser: "ANY", AllUsers: "ALL"}[type(node)]
            if self.style.bare_prefix and isinstance(node.operand, Compare | Not | AnyUser | AllUsers):
                text = word + " " + self.condition(node.operand, 3)
            else:
                text = word + self.space + "(" + self.condition(node.operand, 0) + ")"
            strength = 3
        else:
            text, strength = self.comparison(node), 3
            if self.style.redundant_parens:
                text = "(" + self.space + text + self.space + ")"
        return "(" + text + ")" if strength < context else text

    def comparison(self, node: Compare) -> str:
        subject = self.value(node.subject, subject=True)
        comparator = node.comparator
        if isinstance(comparator, Equals | Differs | GreaterThan | AtLeast | LessThan | AtMost):
            operand = self.value(comparator.operand, subject=False)
            if self.style.symbols:
                symbol = COMPARATOR_SYMBOLS[type(comparator)]
                symbol = "==" if symbol == "=" and self.style.double_equals else symbol
                return subject + self.space + symbol + self.space + operand
            return subject + self.dot + self.call(COMPARATOR_WORDS[type(comparator)], operand)
        return subject + self.dot + self.comparator(comparator)

    def comparator(self, node: Comparator) -> str:
        if isinstance(node, Exists):
            return "exists()"
        if isinstance(node, Absent):
            return "absent()"
        if isinstance(node, Contains):
            return self.call("contains", *map(self.string, node.needles))
        if isinstance(node, Omits):
            return self.call("omits", self.string(node.needle))
        if isinstance(node, StartsWith):
            return self.call("starts_with", self.string(node.prefix))
        if isinstance(node, EndsWith):
            return self.call("ends_with", self.string(node.suffix))
        if isinstance(node, OneOf):
            return self.call("one_of", *map(self.scalar, node.values))
        if isinstance(node, BeforeDate | AfterDate):
            return self.call(DATE_WORDS[type(node)], self.string(node.iso))
        if isinstance(node, WithinLast | WithinNext | BeforeLast | AfterNext):
            return self.call(DATE_WORDS[type(node)], self.duration(node.duration))
        raise DefinitionError(f"not a comparator: {node!r}")  # the binary ones are rendered by comparison()

    def value(self, node: Value, *, subject: bool) -> str:
        if isinstance(node, TraitRef):
            return self.call("trait", self.string(node.name))
        if isinstance(node, PropertyRef):
            name = self.string(node.name)
            return self.call("property", "parent:" + self.space + name if node.parent else name)
        if isinstance(node, ContextRef):
            return self.call("context", self.string(node.path))
        if isinstance(node, LiteralValue):
            text = self.scalar(node.value)
            return self.call("literal", text) if subject or self.style.literal_calls else text
        return self.stream(node.stream) + self.dot + self.reducer(node.reducer)

    def stream(self, node: EventStream) -> str:
        return self.call("event", self.string(node.name)) + "".join(self.dot + self.filter(f) for f in node.filters)

    def filter(self, node: Filter) -> str:
        if isinstance(node, Where):
            return self.call("where", self.condition(node.condition, 0))
        if isinstance(node, Within):
            text = self.duration(node.duration)
            return self.call("within", "parent:" + self.space + text if node.parent else text)
        if isinstance(node, Between):
            return self.call("between", self.duration(node.start), self.duration(node.end))
        return self.call("sources", "exclude:" + self.space + self.comma.join(map(self.string, node.exclude)))

    def reducer(self, node: Reducer) -> str:
        if isinstance(node, Count):
            return "count()"
        argument = self.value(node.of, subject=True)
        if isinstance(node, Min | Max) and node.as_string:
            argument += " as string"
        if isinstance(node, Mode):
            return self.call("mode", argument + (" as array" if node.as_array else ""), str(node.min_count))
        if isinstance(node, UniqueCount):
            return self.call("unique", argument) + self.dot + "count()"
        name = {Sum: "sum", Avg: "avg", Min: "min", Max: "max", First: "first", Last: "last", Unique: "unique"}
        return self.call(name[type(node)], argument)


# --------------------------------------------------------------------------------------------------------------------
# Checking a definition (what the type checker refuses).


@dataclass(frozen=True)
class _Place:
    level: Kind  # whose traits trait() reads: the user's or the account's
    quantifiable: bool  # may ANY / ALL appear here (account level, not inside a where)
    event: bool  # inside a where: property() / context() have an event
    parent: bool  # inside a where nested in another where: property(parent:) / within(parent:) have a parent


def check(definition: Definition) -> None:
    """Raise DefinitionError if the engine must refuse `definition`."""
    if definition.kind not in ("USERS", "ACCOUNTS"):
        raise DefinitionError(f"unknown kind {definition.kind!r}")
    place = _Place(definition.kind, definition.kind == "ACCOUNTS", event=False, parent=False)
    expression = definition.expression
    if isinstance(expression, Condition):
        _check_condition(expression, place)
    else:
        _check_value(expression, place, top_level_trait=True)
    count = primary_expressions(expression)
    if count > MAX_PRIMARY_EXPRESSIONS:
        raise DefinitionError(f"{count} primary expressions, at most {MAX_PRIMARY_EXPRESSIONS}")


def primary_expressions(node: Condition | Value) -> int:
    """The calls that read data: every event(), trait(), property() and context(), wherever they appear (inside
    where(), as a reducer's argument, as a comparator's operand). Literals read nothing and do not count, written bare
    or as literal(...). (Segment's grammar names these extractors its primary expressions.)"""
    if isinstance(node, And | Or):
        return primary_expressions(node.left) + primary_expressions(node.right)
    if isinstance(node, Not | AnyUser | AllUsers):
        return primary_expressions(node.operand)
    if isinstance(node, Compare):
        operand = node.comparator.operand if isinstance(node.comparator, BinaryComparator) else None
        return primary_expressions(node.subject) + (primary_expressions(operand) if operand is not None else 0)
    if isinstance(node, TraitRef | PropertyRef | ContextRef):
        return 1
    if isinstance(node, Reduce):
        argument = 0 if isinstance(node.reducer, Count) else 1
        wheres = sum(primary_expressions(f.condition) for f in node.stream.filters if isinstance(f, Where))
        return 1 + argument + wheres
    return 0


def _check_condition(node: Condition, place: _Place) -> None:
    if isinstance(node, And | Or):
        _check_condition(node.left, place)
        _check_condition(node.right, place)
    elif isinstance(node, Not):
        _check_condition(node.operand, place)
    elif isinstance(node, AnyUser | AllUsers):
        if not place.quantifiable:
            raise DefinitionError("ANY / ALL only at the account level of an ACCOUNTS definition, outside where()")
        _check_condition(node.operand, _Place("USERS", quantifiable=False, event=False, parent=False))
    elif isinstance(node, Compare):
        _check_value(node.subject, place, top_level_trait=False)
        _check_comparator(node.comparator, place)
    else:
        raise DefinitionError(f"not a condition: {node!r}")


def _check_comparator(node: Comparator, place: _Place) -> None:
    if isinstance(node, Equals | Differs | GreaterThan | AtLeast | LessThan | AtMost):
        if isinstance(node.operand, Reduce) or not isinstance(node.operand, Operand):
            raise DefinitionError("a comparator's operand is a literal, trait(), property() or context()")
        _check_value(node.operand, place, top_level_trait=False)
    elif isinstance(node, Contains | OneOf):
        items = node.needles if isinstance(node, Contains) else node.values
        if not items:
            raise DefinitionError("contains() / one_of() need at least one value")
        for item in items:
            _check_scalar(item, strings_only=isinstance(node, Contains))
    elif isinstance(node, Omits):
        _check_scalar(node.needle)
    elif isinstance(node, StartsWith):
        _check_scalar(node.prefix)
    elif isinstance(node, EndsWith):
        _check_scalar(node.suffix)
    elif isinstance(node, BeforeDate | AfterDate):
        if parse_instant(node.iso) is None:
            raise DefinitionError(f"not an ISO-8601 date or timestamp with a zone: {node.iso!r}")
    elif isinstance(node, WithinLast | WithinNext | BeforeLast | AfterNext):
        _check_duration(node.duration, minimum=1)
    elif not isinstance(node, Exists | Absent):
        raise DefinitionError(f"not a comparator: {node!r}")


def _check_scalar(value: object, strings_only: bool = True) -> None:
    if isinstance(value, str):
        return
    if strings_only or isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DefinitionError(f"not a valid literal here: {value!r}")


def _check_duration(duration: Duration, minimum: int) -> None:
    if duration.unit not in ("days", "hours") or isinstance(duration.amount, bool) or duration.amount < minimum:
        raise DefinitionError(f"a duration needs a whole number >= {minimum} of days or hours: {duration!r}")


def _check_value(node: Value, place: _Place, top_level_trait: bool) -> None:
    if isinstance(node, TraitRef):
        return
    if isinstance(node, LiteralValue):
        _check_scalar(node.value, strings_only=False)
    elif isinstance(node, PropertyRef | ContextRef):
        if not place.event:
            raise DefinitionError("property() / context() only inside where() or a reducer")
        if isinstance(node, PropertyRef) and node.parent and not place.parent:
            raise DefinitionError("property(parent: ...) only in a where() of an event nested in another where()")
    elif isinstance(node, Reduce):
        _check_stream(node.stream, place)
        reducer = node.reducer
        if not isinstance(reducer, Count) and (
            not isinstance(reducer.of, PropertyRef | ContextRef)
            or (isinstance(reducer.of, PropertyRef) and reducer.of.parent)
        ):
            raise DefinitionError("a reducer reads property('p') or context('path') of the stream's events")
        if isinstance(reducer, Mode) and reducer.min_count < 1:
            raise DefinitionError("mode()'s minimum frequency is at least 1")
        if isinstance(reducer, Unique) and not top_level_trait:
            raise DefinitionError("unique(...) is a list: only .count() may follow it")
    else:
        raise DefinitionError(f"not a scalar: {node!r}")


def _check_stream(node: EventStream, place: _Place) -> None:
    for f in node.filters:
        if isinstance(f, Where):
            _check_condition(f.condition, _Place(place.level, quantifiable=False, event=True, parent=place.event))
        elif isinstance(f, Within):
            _check_duration(f.duration, minimum=1)
            if f.parent and not place.event:
                raise DefinitionError("within(parent: ...) only on an event stream inside a where()")
        elif isinstance(f, Between):
            _check_duration(f.start, minimum=0)
            _check_duration(f.end, minimum=1)
            if f.start.delta() >= f.end.delta():
                raise DefinitionError("between(A, B) needs A < B")
        elif isinstance(f, Sources):
            if not f.exclude:
                raise DefinitionError("sources(exclude: ...) needs at least one source id")
        else:
            raise DefinitionError(f"not a filter: {f!r}")


def referenced_traits(node: Condition | Value | Comparator, level: Kind) -> set[tuple[str, Kind]]:
    """(trait name, level it is read at) for every trait() in the tree: where an audience key must have that kind."""
    if isinstance(node, And | Or):
        return referenced_traits(node.left, level) | referenced_traits(node.right, level)
    if isinstance(node, Not):
        return referenced_traits(node.operand, level)
    if isinstance(node, AnyUser | AllUsers):
        return referenced_traits(node.operand, "USERS")
    if isinstance(node, Compare):
        return referenced_traits(node.subject, level) | referenced_traits(node.comparator, level)
    if isinstance(node, Equals | Differs | GreaterThan | AtLeast | LessThan | AtMost):
        return referenced_traits(node.operand, level)
    if isinstance(node, TraitRef):
        return {(node.name, level)}
    if isinstance(node, Reduce):
        found: set[tuple[str, Kind]] = set()
        for f in node.stream.filters:
            if isinstance(f, Where):
                found |= referenced_traits(f.condition, level)
        return found
    return set()


def check_references(definition: Definition, others: Mapping[str, Definition], key: str | None = None) -> None:
    """Refuse cycles through audience / computed-trait keys, and keys used at a level of the other kind."""

    def visit(defn: Definition, path: tuple[str, ...]) -> None:
        check(defn)
        for name, level in sorted(referenced_traits(defn.expression, defn.kind)):
            if name not in others:
                continue
            if name in path:
                raise AudienceCycleError(" -> ".join((*path, name)))
            if others[name].kind != level:
                raise DefinitionError(f"trait('{name}') is a {others[name].kind} definition used at {level} level")
            visit(others[name], (*path, name))

    visit(definition, (key,) if key is not None else ())


# --------------------------------------------------------------------------------------------------------------------
# Date and timestamp literals (and trait / property values used as instants).

_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})"
)


def parse_instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if not isinstance(value, str):
        return None
    try:
        if match := _DATE.fullmatch(value):
            year, month, day = map(int, match.groups())
            return datetime(year, month, day, tzinfo=UTC)
        if match := _TIMESTAMP.fullmatch(value):
            year, month, day, hour, minute, second = map(int, match.groups()[:6])
            micros = int((match.group(7) or "").ljust(6, "0")[:6])
            zone = match.group(8)
            offset = timedelta(0)
            if zone != "Z":
                hours, minutes = int(zone[1:3]), int(zone[4:6])
                if hours > 23 or minutes > 59:
                    return None
                offset = (1 if zone[0] == "+" else -1) * timedelta(hours=hours, minutes=minutes)
            return datetime(year, month, day, hour, minute, second, micros, tzinfo=timezone(offset))
    except ValueError:  # month 13, February 30th, ...
        return None
    return None
