"""JSON values for `mapping.py`: checked, copied, and written as mapping-kit's JavaScript does.

Segment's mappings run in JavaScript, so a number in a template or in `@json` is written as
JavaScript writes it: 10.0 (a float once decoded here) is "10", 1e-7 is "1e-7". Writing them as
Python does would change the text a destination receives for the same mapping and event.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from cdp_server.destinations.base import ConfigError


def check_json(value: Any, field: str) -> None:
    """Refuses what JSON cannot hold (a mapping comes from JSON, but a caller may build one)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(field, f"object keys are strings, not {key!r}")
            check_json(item, f"{field}.{key}")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            check_json(item, f"{field}[{position}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(field, f"{value} is not a JSON number")
    elif value is not None and not isinstance(value, str | int | float):
        raise ConfigError(field, f"not a JSON value: {value!r}")


def clone_json(value: Any) -> Any:
    """A deep copy of JSON (a third of `copy.deepcopy`'s time: no memo, no dispatch)."""
    if type(value) is dict:
        return {key: clone_json(item) for key, item in value.items()}
    if type(value) is list:
        return [clone_json(item) for item in value]
    return value


def template_text(value: Any) -> str:
    """A value found as a template prints it (null as nothing, a string as it is)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json_text(value)


def json_text(value: Any) -> str:
    """JSON as JavaScript's JSON.stringify writes it: compact, numbers as JavaScript prints them."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value)
    if isinstance(value, dict):
        members = (f"{json.dumps(key, ensure_ascii=False)}:{json_text(item)}" for key, item in value.items())
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(item) for item in value) + "]"
    return "null"


def number_text(number: int | float) -> str:
    """A number as JavaScript's String() writes it: 10.0 → "10", 1e-7 → "1e-7", 1e21 → "1e+21"."""
    if isinstance(number, int):
        return str(number)
    if not math.isfinite(number):
        return "null"
    if number == 0:
        return "0"  # -0.0 too
    # Python's repr has the shortest digits that read back the same, as JavaScript's; only the
    # layout differs. Past 2**53 they are not the integer's: 2.0**60 is "1152921504606847000".
    text = repr(number)
    if "e" not in text:
        return text.removesuffix(".0")
    if 1e-6 <= abs(number) < 1e21:  # Python writes an exponent here, JavaScript does not
        return format(Decimal(text), "f")
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent):+d}"
