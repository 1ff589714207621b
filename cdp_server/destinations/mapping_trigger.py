"""Triggers: which events a mapping applies to.

Segment's trigger is one group of conditions, on the event's type, its name and its properties,
combined with ALL or ANY, with no nesting (SEGMENT_REFERENCE §5.6). Ours is that in a fixed shape,
every part optional (`{}` matches every event):

    {"type": ["track"],                                  # the event's type is one of these
     "event": {"starts_with": "Order "},                 # one test of the event name
     "match": "all",                                     # "all" (the default) or "any" of
     "conditions": [{"path": "$.properties.total", "op": ">", "value": 100}]}

- `type` and `event` always apply: they are and-ed with the conditions, and `match` combines the
  `conditions` only (Segment's editor can put the type and name in an ANY group too). No
  conditions pass.
- `event` tests the `event` field (the name of a track event) with one of `is`, `is_not`,
  `contains`, `not_contains`, `starts_with`, `ends_with`, case-sensitive. An event without a name
  (an identify) passes only the negative tests (`is_not`, `not_contains`).
- A condition reads `path` as `@path` does (`$.properties.total`, `$.products.0.id`) and tests it:
  `exists` (there and not null) and `not_exists`; `is_true` and `is_false` (the booleans, not
  "true"); `=` and `!=` against a string, number, boolean or null, with no conversion between
  types (1 is not "1" nor true; missing is `!=` anything); `>`, `>=`, `<`, `<=` against a number
  (numbers only) or a string (strings only, by code point: ISO-8601 times compare as times).

`compile_trigger` checks a trigger when it is saved and raises `ConfigError` naming the place
(`trigger.conditions[0].op`); `Trigger.matches` does no parsing per event.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any, Final

from cdp_server.destinations.base import ConfigError
from cdp_server.destinations.mapping_path import UNDEFINED, compile_path

EVENT_TYPES: Final = ("track", "identify", "page", "screen", "group", "alias")

_NAME_TESTS: Final[dict[str, Callable[[str, str], bool]]] = {
    "is": operator.eq,
    "is_not": operator.ne,
    "contains": lambda name, text: text in name,
    "not_contains": lambda name, text: text not in name,
    "starts_with": str.startswith,
    "ends_with": str.endswith,
}
# What a test says of an event that has no name.
_NAMELESS: Final = {"is_not": True, "not_contains": True}

_ORDERINGS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_VALUELESS: Final[dict[str, Callable[[Any], bool]]] = {
    "exists": lambda found: found is not UNDEFINED and found is not None,
    "not_exists": lambda found: found is UNDEFINED or found is None,
    "is_true": lambda found: found is True,
    "is_false": lambda found: found is False,
}
OPERATORS: Final = (*_VALUELESS, "=", "!=", *_ORDERINGS)

Test = Callable[[dict[str, Any]], bool]


class Trigger:
    """A checked trigger; `matches` says whether a mapping applies to an event."""

    __slots__ = ("_test", "spec")

    def __init__(self, spec: Any, test: Test) -> None:
        self.spec = spec
        self._test = test

    def matches(self, event: dict[str, Any]) -> bool:
        return self._test(event)

    def __repr__(self) -> str:
        return f"Trigger({self.spec!r})"


def compile_trigger(spec: Any, *, field: str = "trigger") -> Trigger:
    """Checks a trigger and compiles it.

    Raises:
        ConfigError: naming the place of the first mistake (`trigger.event.is`).
    """
    if not isinstance(spec, dict):
        raise ConfigError(field, f"a trigger is an object with type, event, match and conditions; got {spec!r}")
    for key in spec:
        if key not in ("type", "event", "match", "conditions"):
            raise ConfigError(f"{field}.{key}", "unknown; a trigger has type, event, match and conditions")
    tests: list[Test] = []
    if "type" in spec:
        tests.append(_type_test(spec["type"], f"{field}.type"))
    if "event" in spec:
        tests.append(_name_test(spec["event"], f"{field}.event"))
    match = spec.get("match", "all")
    if match not in ("all", "any"):
        raise ConfigError(f"{field}.match", f'is "all" or "any"; got {match!r}')
    conditions = spec.get("conditions", [])
    if not isinstance(conditions, list):
        raise ConfigError(f"{field}.conditions", f"is a list of conditions; got {conditions!r}")
    checks = [_condition(condition, f"{field}.conditions[{n}]") for n, condition in enumerate(conditions)]
    if checks:
        combine = all if match == "all" else any
        tests.append(lambda event: combine(check(event) for check in checks))
    return Trigger(spec, lambda event: all(test(event) for test in tests))


def _type_test(types: Any, field: str) -> Test:
    if not isinstance(types, list) or not types:
        raise ConfigError(field, f'is a list of event types such as ["track"]; got {types!r}')
    for n, kind in enumerate(types):
        if kind not in EVENT_TYPES:
            raise ConfigError(f"{field}[{n}]", f"is one of {', '.join(EVENT_TYPES)}; got {kind!r}")
    # A tuple, not a set: an event's "type" could be a list, which a set cannot look up.
    allowed = tuple(types)
    return lambda event: event.get("type") in allowed


def _name_test(test: Any, field: str) -> Test:
    if not isinstance(test, dict) or len(test) != 1:
        raise ConfigError(field, f'is one test such as {{"is": "Order Completed"}}; got {test!r}')
    ((kind, text),) = test.items()
    if kind not in _NAME_TESTS:
        raise ConfigError(f"{field}.{kind}", f"unknown test; the tests are {', '.join(_NAME_TESTS)}")
    if not isinstance(text, str):
        raise ConfigError(f"{field}.{kind}", f"is a string; got {text!r}")
    compare, nameless = _NAME_TESTS[kind], _NAMELESS.get(kind, False)

    def name_test(event: dict[str, Any]) -> bool:
        name = event.get("event")
        return compare(name, text) if isinstance(name, str) else nameless

    return name_test


def _condition(condition: Any, field: str) -> Test:
    if not isinstance(condition, dict):
        raise ConfigError(field, f"a condition is an object with path, op and value; got {condition!r}")
    for key in condition:
        if key not in ("path", "op", "value"):
            raise ConfigError(f"{field}.{key}", "unknown; a condition has path, op and value")
    if "path" not in condition or "op" not in condition:
        raise ConfigError(field, "a condition needs a path and an op")
    read = compile_path(condition["path"], f"{field}.path")
    op = condition["op"]
    if op not in OPERATORS:
        raise ConfigError(f"{field}.op", f"is one of {', '.join(OPERATORS)}; got {op!r}")
    if op in _VALUELESS:
        if "value" in condition:
            raise ConfigError(f"{field}.value", f"{op} takes no value")
        found_passes = _VALUELESS[op]
        return lambda event: found_passes(read(event))
    if "value" not in condition:
        raise ConfigError(field, f"{op} needs a value")
    value = condition["value"]
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{field}.value", f"{value} is not a JSON number")
    if op in ("=", "!="):
        if value is not None and not isinstance(value, str | int | float):
            raise ConfigError(f"{field}.value", f"is a string, number, boolean or null; got {value!r}")
        if op == "=":
            return lambda event: _same(read(event), value)
        return lambda event: not _same(read(event), value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{field}.value", f"{op} compares with a number or a string; got {value!r}")
    order = _ORDERINGS[op]
    if isinstance(value, str):
        return lambda event: isinstance(found := read(event), str) and order(found, value)
    return lambda event: _is_number(found := read(event)) and order(found, value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(found: Any, value: Any) -> bool:
    """JSON equality: a boolean is not a number (Python's True == 1), 1 is 1.0."""
    if isinstance(value, bool) or isinstance(found, bool):
        return found is value
    if _is_number(value):
        return _is_number(found) and bool(found == value)
    return type(found) is type(value) and bool(found == value)
