"""Paths into JSON (`$.context.traits.email`, `$.products.0.id`), for mappings and triggers.

A path is compiled once into a reader: a closure that, given the event (or an `@arrayPath`
item), returns the value there or `UNDEFINED`. It reads objects by key and arrays by index and
nothing else, and the common paths (one or two object keys) read with no loop and no call.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import Any, Final

from cdp_server.destinations.base import ConfigError


class _Undefined(enum.Enum):
    UNDEFINED = "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _Undefined.UNDEFINED
"""A value that is not there (a missing path): left out of objects, null in arrays."""

Evaluate = Callable[[Any], Any]
"""A compiled mapping value: from the event (or, under `@arrayPath`, the item) to its value."""

_PATH_KEY: Final = re.compile(r"[^.\[\]]+")
_ARRAY_INDEX: Final = re.compile(r"0|[1-9][0-9]*")


def compile_path(path: Any, field: str) -> Evaluate:
    """A reader for `$.a.b.0.c` (also `$.a.b[0].c`), or `$` for the whole value read.

    Raises:
        ConfigError: at `field`, for anything but a string that is `$` or starts with `$.`.
    """
    if not isinstance(path, str) or not (path == "$" or path.startswith("$.")):
        raise ConfigError(
            field, f'a path is a string that starts with "$." (e.g. "$.properties.total"), or "$"; got {path!r}'
        )
    return path_reader(path[1:])


def path_reader(path: str) -> Evaluate:
    """A reader for a path without its `$` (`.a.b.0`, or `a.b[0]` as a template writes it)."""
    return _reader(_steps(path))


def _steps(path: str) -> tuple[tuple[str, int | None], ...]:
    """Each key of a dotted path, with its value as an array index when it is one."""
    return tuple((key, int(key) if _ARRAY_INDEX.fullmatch(key) else None) for key in _PATH_KEY.findall(path))


def _reader(steps: tuple[tuple[str, int | None], ...]) -> Evaluate:
    if not steps:
        return lambda value: value
    if any(index is not None for _key, index in steps):

        def read_with_indexes(value: Any) -> Any:
            for key, index in steps:
                value = _step(value, key, index)
            return value

        return read_with_indexes
    # Most paths read objects only, one or two keys deep: those get no loop and no calls.
    keys = tuple(key for key, _index in steps)
    if len(keys) == 1:
        (key,) = keys
        return lambda value: value.get(key, UNDEFINED) if type(value) is dict else UNDEFINED
    if len(keys) == 2:
        key1, key2 = keys
        return lambda value: (
            found.get(key2, UNDEFINED) if type(value) is dict and type(found := value.get(key1)) is dict else UNDEFINED
        )

    def read_keys(value: Any) -> Any:
        for key in keys:
            if type(value) is not dict:
                return UNDEFINED
            value = value.get(key, UNDEFINED)
        return value

    return read_keys


def _step(value: Any, key: str, index: int | None) -> Any:
    if type(value) is dict:
        return value.get(key, UNDEFINED)
    if type(value) is list and index is not None and index < len(value):
        return value[index]
    return UNDEFINED
