"""Mappings: the JSON a destination expects, made from a Segment-Spec event.

The language is that of Segment's Actions mappings (mapping-kit, in segmentio/action-destinations),
so a mapping written for Segment reads the same here; webhook sources use it the other way round,
to turn a tool's payload into a Segment event (docs/mappings.md). A mapping is JSON: objects,
arrays and scalars stand for themselves, and an object whose one key starts with `@` is a
*directive*, which reads the event or transforms a value:

    {"email": {"@path": "$.context.traits.email"},
     "title": {"@template": "Order {{properties.order_id}}"}}

A mapping is checked once, when it is saved: `compile_mapping` raises `ConfigError` naming the
exact place of the first mistake (`mapping.properties.total.@path`) and returns a tree of closures,
so that `Mapping.apply` neither parses, validates nor looks up a directive per event. Paths are
read by `mapping_path.py`, values written as JavaScript writes them by `mapping_json.py`; which
events a mapping applies to is `mapping_trigger.py`'s.

*Undefined* (`UNDEFINED`, not JSON null) is what a path that leads nowhere reads. In an object it
drops the key; in an array it becomes null (which is what mapping-kit's output is once sent as
JSON); a mapping undefined as a whole applies to `UNDEFINED`. The output shares sub-objects with
the event (`{"@path": "$.properties"}` is the event's own dict), as mapping-kit's does.

The directives, and how each differs from mapping-kit's:

- `@path`: `"$.a.b.0.c"` (or `"$.a.b[0].c"`); `"$"` is the whole event (under `@arrayPath`, the
  item). Only a literal string that starts with `$.` (mapping-kit also takes a directive that
  computes the path, and paths without `$.`). It reads objects by key and arrays by index and
  nothing else (mapping-kit's lookup reads `"abc".length`, and stops at a falsy value on the way:
  `$.a.b` of `{"a": 0}` is 0 there, undefined here).
- `@template`: `"Hi {{traits.name}}"`; a placeholder is a path without `$.`, and `{{{x}}}` is
  `{{x}}`. Missing or null prints "", numbers and booleans as JavaScript prints them (10.0 → "10"),
  objects and arrays as JSON (mapping-kit: "[object Object]", "a,b"). An unclosed `{{`, an empty
  placeholder or one that starts with `$` is refused when saved (mapping-kit leaves it as text).
- `@if`: `{"exists"|"blank": value, "then": …, "else": …}`. `exists` holds when the value is
  neither undefined nor null. `blank` is mapping-kit's as its tests define it, whatever the name
  suggests: *then* when the value is **not** blank (blank: undefined, null or ""; mapping-kit's
  JavaScript `!=` also counts 0, false and [] as blank). `then` is required (mapping-kit allows
  `else` alone); no `else` is undefined; a falsy `else` (false, 0, "") is kept (mapping-kit drops it).
- `@arrayPath`: `[path or directive, per-item mapping]`, the per-item mapping's paths relative to
  the item. As mapping-kit: an object found at the path maps as a one-item list; with no per-item
  mapping (absent, null or {}) the value found is returned as it is, and so is anything neither an
  array nor an object (a string stays a string, missing stays undefined). A per-item mapping that
  is not an object, and a third element, are refused (mapping-kit ignores them).
- `@literal`: the value exactly as written, directives inside included (`{"@literal": {"@id": 1}}`
  writes an @-key); mapping-kit resolves directives inside a `@literal`.
- `@case`: `{"operator": "lower"|"upper", "value": …}`; a value that is not a string passes.
- `@replace`: `{"pattern", "replacement", "pattern2", "replacement2", "ignorecase", "global",
  "value"}`: at most two literal (not regular-expression) replacements, each text at most 10
  characters, as Segment limits them; `global` defaults to true. Numbers and booleans are replaced
  in their text. A value that is none of those passes (mapping-kit returns ""), and `$&` or `$1`
  in a replacement is plain text (JavaScript expands them).
- `@json`: `{"mode": "encode"|"decode", "value": …}`: encode writes compact JSON as JavaScript's
  JSON.stringify does; decode reads a string (other values pass). Invalid JSON decodes to
  undefined (mapping-kit throws, failing the event).
- `@flatten`: `{"value": …, "separator": ".", "omitArrays": false}`: nested keys joined by the
  separator, array positions too unless `omitArrays`. As mapping-kit, undefined flattens to {}
  and a scalar to {"": scalar}.
- `@merge`: `{"objects": [...], "direction": "right"|"left"}`: the objects' keys, later objects
  winning (right) or earlier ones (left); values that are not objects are skipped (mapping-kit's
  Object.assign spreads a string's characters), and a key left out as undefined overrides nothing.
- `@excludeWhenNull`: the value, or undefined when it is null.

Not implemented: `@liquid` (Segment's Liquid templates), `@transform`, and mapping-kit's root
`__segment_internal_directive`. Beside its directive an object may carry `_metadata` (where
Segment's editor keeps notes), which is ignored; any other key is refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, Final

from cdp_server.destinations.base import ConfigError
from cdp_server.destinations.mapping_json import check_json, clone_json, json_text, template_text
from cdp_server.destinations.mapping_path import UNDEFINED, Evaluate, compile_path, path_reader

__all__ = ["DIRECTIVES", "UNDEFINED", "Mapping", "compile_mapping"]


# Segment's limit on @replace's patterns and replacements (mapping-kit MAX_PATTERN_LENGTH).
MAX_REPLACE_TEXT: Final = 10
_PLACEHOLDER: Final = re.compile(r"\{\{\{([^{}]*)\}\}\}|\{\{([^{}]*)\}\}")


class Mapping:
    """A checked mapping; `apply` evaluates it against one event. `spec` is the mapping as saved."""

    __slots__ = ("_evaluate", "spec")

    def __init__(self, spec: Any, evaluate: Evaluate) -> None:
        self.spec = spec
        self._evaluate = evaluate

    def apply(self, event: dict[str, Any]) -> Any:
        """The mapped JSON value (`UNDEFINED` only if the whole mapping is).

        `event` is as decoded from JSON: plain dicts and lists (a dict subclass reads as missing).
        """
        return self._evaluate(event)

    def __repr__(self) -> str:
        return f"Mapping({self.spec!r})"


def compile_mapping(spec: Any, *, field: str = "mapping") -> Mapping:
    """Checks a mapping document and compiles it.

    Raises:
        ConfigError: naming the place of the first mistake, `field` being the mapping's own
            (`mapping.properties.total.@path`, `mapping.items[0].@if.then`).
    """
    try:
        return Mapping(spec, _compile(spec, field))
    except RecursionError:
        raise ConfigError(field, "the mapping is nested too deeply") from None


def _compile(spec: Any, field: str) -> Evaluate:
    if isinstance(spec, dict):
        directives = [key for key in spec if isinstance(key, str) and key.startswith("@")]
        return _compile_directive(spec, directives, field) if directives else _compile_object(spec, field)
    if isinstance(spec, list):
        return _compile_array(spec, field)
    check_json(spec, field)
    return lambda _event: spec


def _compile_object(spec: dict[Any, Any], field: str) -> Evaluate:
    fields: list[tuple[str, Evaluate]] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise ConfigError(field, f"object keys are strings, not {key!r}")
        fields.append((key, _compile(value, f"{field}.{key}")))

    def build_object(event: Any) -> dict[str, Any]:
        built = {}
        for key, evaluate in fields:
            value = evaluate(event)
            if value is not UNDEFINED:
                built[key] = value
        return built

    return build_object


def _compile_array(spec: list[Any], field: str) -> Evaluate:
    items = [_compile(item, f"{field}[{position}]") for position, item in enumerate(spec)]
    return lambda event: [None if (value := item(event)) is UNDEFINED else value for item in items]


def _compile_directive(spec: dict[Any, Any], directives: list[str], field: str) -> Evaluate:
    if len(directives) > 1:
        raise ConfigError(field, f"an object holds one directive, not {' and '.join(directives)}")
    name = directives[0]
    others = [key for key in spec if key not in (name, "_metadata")]
    if others:
        raise ConfigError(field, f"a directive stands alone in its object: {name} is beside {others[0]!r}")
    compiler = _DIRECTIVES.get(name)
    if compiler is None:
        raise ConfigError(f"{field}.{name}", f"unknown directive; the directives are {', '.join(_DIRECTIVES)}")
    return compiler(spec[name], f"{field}.{name}")


def _options(options: Any, field: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """The options object of a directive at `field`, with its keys checked."""
    name = field.rsplit(".", 1)[-1]
    known = ", ".join(required + optional)
    if not isinstance(options, dict):
        raise ConfigError(field, f"{name} takes an object with {known}; got {options!r}")
    for key in options:
        if key not in required and key not in optional:
            raise ConfigError(f"{field}.{key}", f"{name} has no option {key!r}; it takes {known}")
    for key in required:
        if key not in options:
            raise ConfigError(field, f"{name} needs {key!r}")
    return options


def _choice(options: dict[str, Any], key: str, choices: tuple[Any, ...], field: str) -> Any:
    value = options[key]
    # `type(...) is` so that 1 is not taken for True, nor True for 1.
    if not any(type(value) is type(choice) and value == choice for choice in choices):
        raise ConfigError(f"{field}.{key}", f"is one of {', '.join(json.dumps(c) for c in choices)}; got {value!r}")
    return value


def _compile_template(template: Any, field: str) -> Evaluate:
    if not isinstance(template, str):
        raise ConfigError(field, f'a template is a string such as "Hi {{{{traits.name}}}}"; got {template!r}')
    texts: list[str] = []
    readers: list[Evaluate] = []
    start = 0
    for match in _PLACEHOLDER.finditer(template):
        texts.append(_template_text(template, start, match.start(), field))
        path = (match[1] if match[1] is not None else match[2]).strip()
        if not path or path.startswith("$"):
            raise ConfigError(
                field,
                f'placeholder {match[0]} at character {match.start()}: it holds a path without "$.", such as '
                "{{properties.total}}",
            )
        readers.append(path_reader(path))
        start = match.end()
    texts.append(_template_text(template, start, len(template), field))
    if not readers:
        return lambda _event: template
    first, rest = texts[0], list(zip(readers, texts[1:], strict=True))

    def render(event: Any) -> str:
        parts = [first]
        for read, text in rest:
            found = read(event)
            parts.append("" if found is UNDEFINED else template_text(found))
            parts.append(text)
        return "".join(parts)

    return render


def _template_text(template: str, start: int, end: int, field: str) -> str:
    """The text between two placeholders, which cannot hold a placeholder's start."""
    unclosed = template.find("{{", start, end)
    if unclosed >= 0:
        raise ConfigError(field, f"unclosed {{{{ at character {unclosed}: a placeholder is {{{{path}}}}")
    return template[start:end]


def _compile_if(options: Any, field: str) -> Evaluate:
    options = _options(options, field, ("then",), ("exists", "blank", "else"))
    conditions = [key for key in ("exists", "blank") if key in options]
    if len(conditions) != 1:
        raise ConfigError(field, '@if takes one condition, "exists" or "blank"')
    (condition,) = conditions
    test = _compile(options[condition], f"{field}.{condition}")
    then = _compile(options["then"], f"{field}.then")
    otherwise = _compile(options["else"], f"{field}.else") if "else" in options else _undefined
    if condition == "exists":

        def if_exists(event: Any) -> Any:
            value = test(event)
            return then(event) if value is not UNDEFINED and value is not None else otherwise(event)

        return if_exists

    def if_not_blank(event: Any) -> Any:
        value = test(event)
        return then(event) if value is not UNDEFINED and value is not None and value != "" else otherwise(event)

    return if_not_blank


def _undefined(_event: Any) -> Any:
    return UNDEFINED


def _compile_array_path(options: Any, field: str) -> Evaluate:
    if not isinstance(options, list) or not 1 <= len(options) <= 2:
        raise ConfigError(field, f"@arrayPath takes [path, per-item mapping], the mapping optional; got {options!r}")
    source = options[0]
    if isinstance(source, str):
        read = compile_path(source, f"{field}[0]")
    elif isinstance(source, dict) and any(isinstance(key, str) and key.startswith("@") for key in source):
        read = _compile(source, f"{field}[0]")
    else:
        raise ConfigError(f"{field}[0]", f'a path such as "$.properties.products", or a directive; got {source!r}')
    shape = options[1] if len(options) == 2 else None
    if shape is None or shape == {}:
        return read
    if not isinstance(shape, dict):
        raise ConfigError(f"{field}[1]", f"the per-item mapping is an object (or null for none); got {shape!r}")
    item = _compile(shape, f"{field}[1]")

    def map_items(event: Any) -> Any:
        found = read(event)
        if type(found) is list:
            return [None if (value := item(one)) is UNDEFINED else value for one in found]
        if type(found) is dict:
            return [None if (value := item(found)) is UNDEFINED else value]
        return found

    return map_items


def _compile_literal(value: Any, field: str) -> Evaluate:
    check_json(value, field)
    if isinstance(value, dict | list):
        # A fresh copy each time: the caller may change what it gets.
        return lambda _event: clone_json(value)
    return lambda _event: value


def _compile_case(options: Any, field: str) -> Evaluate:
    options = _options(options, field, ("operator", "value"))
    change = str.lower if _choice(options, "operator", ("lower", "upper"), field) == "lower" else str.upper
    value = _compile(options["value"], f"{field}.value")

    def change_case(event: Any) -> Any:
        found = value(event)
        return change(found) if isinstance(found, str) else found

    return change_case


def _compile_replace(options: Any, field: str) -> Evaluate:
    options = _options(
        options, field, ("pattern", "value"), ("replacement", "pattern2", "replacement2", "ignorecase", "global")
    )
    ignore_case = _choice(options, "ignorecase", (False, True), field) if "ignorecase" in options else False
    replace_all = _choice(options, "global", (True, False), field) if "global" in options else True
    replacers: list[Callable[[str], str]] = []
    for pattern_key, replacement_key in (("pattern", "replacement"), ("pattern2", "replacement2")):
        pattern = _short_text(options, pattern_key, field)
        replacement = _short_text(options, replacement_key, field)
        if pattern:
            replacers.append(_replacer(pattern, replacement, ignore_case=ignore_case, replace_all=replace_all))
        elif pattern_key == "pattern":
            raise ConfigError(f"{field}.pattern", "is the text to replace; it cannot be empty")
        # An empty pattern2 is no second replacement, as in mapping-kit.
    value = _compile(options["value"], f"{field}.value")

    def replace(event: Any) -> Any:
        found = value(event)
        if isinstance(found, bool | int | float):
            found = json_text(found)
        elif not isinstance(found, str):
            return found
        for replacer in replacers:
            found = replacer(found)
        return found

    return replace


def _replacer(pattern: str, replacement: str, *, ignore_case: bool, replace_all: bool) -> Callable[[str], str]:
    if not ignore_case:
        count = -1 if replace_all else 1
        return lambda text: text.replace(pattern, replacement, count)
    regex = re.compile(re.escape(pattern), re.IGNORECASE)
    # A function as the replacement: its text is taken as is, with no backslash escapes.
    return lambda text: regex.sub(lambda _match: replacement, text, count=0 if replace_all else 1)


def _short_text(options: dict[str, Any], key: str, field: str) -> str:
    text = options.get(key, "")
    if not isinstance(text, str) or len(text) > MAX_REPLACE_TEXT:
        raise ConfigError(f"{field}.{key}", f"is a string of at most {MAX_REPLACE_TEXT} characters; got {text!r}")
    return text


def _compile_json(options: Any, field: str) -> Evaluate:
    options = _options(options, field, ("mode", "value"))
    encode = _choice(options, "mode", ("encode", "decode"), field) == "encode"
    value = _compile(options["value"], f"{field}.value")
    if encode:
        return lambda event: UNDEFINED if (found := value(event)) is UNDEFINED else json_text(found)

    def decode(event: Any) -> Any:
        found = value(event)
        if not isinstance(found, str):
            return found
        try:
            return json.loads(found, parse_constant=_refuse_number, parse_float=_finite_float)
        except (ValueError, RecursionError):
            return UNDEFINED

    return decode


def _refuse_number(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is too large")
    return number


def _compile_flatten(options: Any, field: str) -> Evaluate:
    options = _options(options, field, ("separator", "value"), ("omitArrays",))
    separator = options["separator"]
    if not isinstance(separator, str) or not separator:
        raise ConfigError(f"{field}.separator", f'is a non-empty string such as "."; got {separator!r}')
    omit_arrays = _choice(options, "omitArrays", (False, True), field) if "omitArrays" in options else False
    value = _compile(options["value"], f"{field}.value")

    def flatten(event: Any) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        _flatten_into(flat, value(event), "", separator, omit_arrays)
        return flat

    return flatten


def _flatten_into(flat: dict[str, Any], value: Any, prefix: str, separator: str, omit_arrays: bool) -> None:
    items: Iterable[tuple[Any, Any]]
    if type(value) is dict:
        items = value.items()
    elif type(value) is list and not omit_arrays:
        items = enumerate(value)
    else:
        if value is not UNDEFINED:
            flat[prefix] = value
        return
    for key, item in items:
        # As mapping-kit: an empty prefix (the top, or a key "") adds no separator.
        _flatten_into(flat, item, f"{prefix}{separator}{key}" if prefix else str(key), separator, omit_arrays)


def _compile_merge(options: Any, field: str) -> Evaluate:
    options = _options(options, field, ("objects", "direction"))
    left = _choice(options, "direction", ("right", "left"), field) == "left"
    objects = options["objects"]
    if not isinstance(objects, list):
        raise ConfigError(f"{field}.objects", f"is a list of objects or directives; got {objects!r}")
    parts = []
    for position, part in enumerate(objects):
        if not isinstance(part, dict):
            raise ConfigError(f"{field}.objects[{position}]", f"is an object or a directive; got {part!r}")
        parts.append(_compile(part, f"{field}.objects[{position}]"))
    if left:
        parts.reverse()

    def merge(event: Any) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for part in parts:
            found = part(event)
            if type(found) is dict:
                merged.update(found)
        return merged

    return merge


def _compile_exclude_when_null(value: Any, field: str) -> Evaluate:
    evaluate = _compile(value, field)
    return lambda event: UNDEFINED if (found := evaluate(event)) is None else found


_DIRECTIVES: Final[dict[str, Callable[[Any, str], Evaluate]]] = {
    "@path": compile_path,
    "@template": _compile_template,
    "@if": _compile_if,
    "@arrayPath": _compile_array_path,
    "@literal": _compile_literal,
    "@case": _compile_case,
    "@replace": _compile_replace,
    "@json": _compile_json,
    "@flatten": _compile_flatten,
    "@merge": _compile_merge,
    "@excludeWhenNull": _compile_exclude_when_null,
}
DIRECTIVES: Final = tuple(_DIRECTIVES)
