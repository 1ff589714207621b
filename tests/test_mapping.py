"""The mapping language (cdp_server/destinations/mapping.py) and triggers (mapping_trigger.py).

Examples come from mapping-kit's own README and fixtures (segmentio/action-destinations), so they
pin the semantics a Segment user expects; where we differ on purpose the test says so. A Hypothesis
property then checks the compiled evaluator against `reference`, a direct recursive reading of the
same rules, over random events and mappings, and the validator is fuzzed with arbitrary input.
"""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.mapping_throughput import EVENT, EXPECTED, MAPPING
from cdp_server.destinations.base import ConfigError
from cdp_server.destinations.mapping import DIRECTIVES, UNDEFINED, compile_mapping
from cdp_server.destinations.mapping_json import number_text
from cdp_server.destinations.mapping_trigger import EVENT_TYPES, OPERATORS, compile_trigger


def apply(mapping: Any, event: dict[str, Any]) -> Any:
    return compile_mapping(mapping).apply(event)


# --- Directives, by example -------------------------------------------------------------------


def test_readme_example_mixes_raw_values_paths_and_templates() -> None:
    mapping = {
        "name": "Mr. Rogers",
        "neighborhood": {"@path": "$.properties.neighborhood"},
        "greeting": {"@template": "Won't you be my {{properties.noun}}?"},
    }
    event = {"type": "track", "properties": {"neighborhood": "Latrobe", "noun": "neighbor", "sweaterColor": "red"}}
    assert apply(mapping, event) == {
        "name": "Mr. Rogers",
        "neighborhood": "Latrobe",
        "greeting": "Won't you be my neighbor?",
    }


PATH_EVENT = {
    "foo": {"bar": 42, "baz": [{"num": 1}, {"num": 2}], "zero": 0},
    "hello": "world",
    "integrations": {"Actions Amplitude": {"session_id": "s1"}},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.hello", "world"),
        ("$.foo.bar", 42),
        ("$.foo.baz[0].num", 1),
        ("$.foo.baz.1.num", 2),
        ("$.integrations.Actions Amplitude.session_id", "s1"),
        ("$.foo.baz.2.num", UNDEFINED),
        ("$.foo.baz.01.num", UNDEFINED),
        ("$.hello.length", UNDEFINED),
        ("$.hello.0", UNDEFINED),
        # mapping-kit's lookup stops at a falsy value and returns it (0 here); we read nothing.
        ("$.foo.zero.x", UNDEFINED),
        ("$", PATH_EVENT),
    ],
)
def test_path_reads_objects_by_key_and_arrays_by_index(path: str, expected: Any) -> None:
    assert apply({"@path": path}, PATH_EVENT) == expected


def test_undefined_drops_the_key_null_is_kept_and_arrays_get_null() -> None:
    mapping = {"foo": {"@path": "$.a"}, "bar": {"@path": "$.b"}, "baz": None, "list": [{"@path": "$.b"}, 1]}
    assert apply(mapping, {"a": 1}) == {"foo": 1, "baz": None, "list": [None, 1]}
    assert apply({"x": {"y": {"z": {"@path": "$.nope"}}}, "foo": 1}, {}) == {"x": {"y": {}}, "foo": 1}
    assert apply({"@path": "$.nope"}, {}) is UNDEFINED
    assert not UNDEFINED and repr(UNDEFINED) == "UNDEFINED"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello, {{traits.name}}!", "Hello, Mr. Rogers!"),
        ("Hello, {{traits.fullName}}!", "Hello, !"),
        ("{{traits.name}} ({{userId}})", "Mr. Rogers (abc123)"),
        ("{{ traits.name }} / {{{traits.name}}}", "Mr. Rogers / Mr. Rogers"),
        ("<blink>{{html}} {{{html}}}</blink>", "<blink><b>Hi</b> <b>Hi</b></blink>"),  # no HTML escaping
        ("{{oops.yo}}", ""),
        ("{{nothing}}", ""),
        # Numbers and booleans as JavaScript prints them; objects and arrays as JSON.
        ("{{total}} {{ratio}} {{flag}} {{items[1]}}", "10 0.5 true b"),
        ("{{traits}} {{items}}", '{"name":"Mr. Rogers"} ["a","b"]'),
        ('{"total": {{total}}}', '{"total": 10}'),
        ("no placeholders } }}", "no placeholders } }}"),
    ],
)
def test_template_fills_placeholders_with_paths(template: str, expected: str) -> None:
    event = {
        "traits": {"name": "Mr. Rogers"},
        "userId": "abc123",
        "html": "<b>Hi</b>",
        "nothing": None,
        "total": 10.0,
        "ratio": 0.5,
        "flag": True,
        "items": ["a", "b"],
    }
    assert apply({"@template": template}, event) == expected


IF_EVENT = {"a": 1, "b": True, "c": False, "d": None, "e": ""}


@pytest.mark.parametrize(
    ("condition", "path", "expected"),
    [
        ("exists", "$.a", "then"),
        ("exists", "$.d", "else"),
        ("exists", "$.x", "else"),
        ("exists", "$.e", "then"),
        ("exists", "$.c", "then"),
        # mapping-kit's `blank` takes *then* for a value that is not blank (its fixtures say so).
        ("blank", "$.a", "then"),
        ("blank", "$.d", "else"),
        ("blank", "$.x", "else"),
        ("blank", "$.e", "else"),
        ("blank", "$.c", "then"),  # mapping-kit's loose `!=` would call false blank
    ],
)
def test_if_chooses_a_branch_by_exists_or_blank(condition: str, path: str, expected: str) -> None:
    mapping = {"@if": {condition: {"@path": path}, "then": "then", "else": "else"}}
    assert apply(mapping, IF_EVENT) == expected


def test_if_without_the_branch_it_needs_is_undefined_and_a_falsy_else_is_kept() -> None:
    assert apply({"foo-exists": {"@if": {"exists": {"@path": "$.foo"}, "then": True}}}, {"a": "cool"}) == {}
    assert apply({"a": {"@if": {"exists": {"@path": "$.oops"}, "then": {"@path": "$.a"}}}}, {"a": "cool"}) == {}
    # mapping-kit drops a falsy `else`; a mapping that says false means false.
    assert apply({"@if": {"exists": {"@path": "$.x"}, "then": True, "else": False}}, {}) is False
    assert apply({"@if": {"exists": {"@path": "$.a"}, "then": None}}, {"a": 1}) is None


PRODUCTS = {"products": [{"productId": "123", "price": 0.5}, {"productId": "456", "price": 0.99}]}
ITEM_SHAPE = {"product_id": {"@path": "$.productId"}, "monies": {"@path": "$.price"}}
SHAPED = [{"product_id": "123", "monies": 0.5}, {"product_id": "456", "monies": 0.99}]


@pytest.mark.parametrize(
    ("spec", "event", "expected"),
    [
        (["$.products"], PRODUCTS, PRODUCTS["products"]),
        (["$.products", ITEM_SHAPE], PRODUCTS, SHAPED),
        (
            [{"@if": {"exists": {"@path": "$.products"}, "then": {"@path": "$.products"}, "else": []}}, ITEM_SHAPE],
            PRODUCTS,
            SHAPED,
        ),
        # An object maps as a one-item list; with no per-item mapping it stays as it is.
        (["$.products", ITEM_SHAPE], {"products": {"notAnArray": True}}, [{}]),
        (["$.properties", ITEM_SHAPE], {"properties": {"productId": "123", "price": 0.5}}, [SHAPED[0]]),
        (["$.properties", {"id": "static"}], {"properties": {"productId": "123"}}, [{"id": "static"}]),
        ([{"@path": "$.products"}, None], PRODUCTS, PRODUCTS["products"]),
        (["$.properties", {}], {"properties": {"productId": "123"}}, {"productId": "123"}),
        # Neither an array nor an object: returned as it is, missing stays missing.
        (["$.products", ITEM_SHAPE], {"products": "abc"}, "abc"),
        (["$.nope", ITEM_SHAPE], PRODUCTS, UNDEFINED),
        # A directive as the per-item mapping maps each item to a value; undefined items are null.
        (["$.products", {"@path": "$.productId"}], {"products": [{"productId": "1"}, {}]}, ["1", None]),
        (["$.products", {"whole": {"@path": "$"}}], {"products": [7]}, [{"whole": 7}]),
    ],
)
def test_array_path_maps_each_item_with_paths_relative_to_it(spec: list[Any], event: Any, expected: Any) -> None:
    assert apply({"@arrayPath": spec}, event) == expected


def test_literal_is_taken_as_written_and_copied_each_time() -> None:
    assert apply({"simple": {"@literal": False}}, {}) == {"simple": False}
    # mapping-kit would resolve the @path inside; a literal here is the text as written.
    mapping = compile_mapping({"ld": {"@literal": {"@type": "Person", "a": {"@path": "$.a"}}}})
    first = mapping.apply({"a": "x"})
    assert first == {"ld": {"@type": "Person", "a": {"@path": "$.a"}}}
    first["ld"]["a"]["@path"] = "changed"
    assert mapping.apply({})["ld"]["a"] == {"@path": "$.a"}


CASE_EVENT = {"b": "MAKE ME LOWER", "c": "make me upper", "d": None, "e": "", "f": False, "h": {"k": "V"}}


@pytest.mark.parametrize(
    ("operator", "path", "expected"),
    [
        ("lower", "$.b", "make me lower"),
        ("upper", "$.c", "MAKE ME UPPER"),
        ("lower", "$.e", ""),
        ("lower", "$.d", None),
        ("lower", "$.f", False),
        ("lower", "$.h", {"k": "V"}),
        ("lower", "$.nope", UNDEFINED),
    ],
)
def test_case_changes_strings_and_passes_the_rest(operator: str, path: str, expected: Any) -> None:
    assert apply({"@case": {"operator": operator, "value": {"@path": path}}}, CASE_EVENT) == expected


@pytest.mark.parametrize(
    ("options", "value", "expected"),
    [
        ({"pattern": "_", "replacement": "rrrrr"}, "", ""),
        ({"pattern": "WW", "replacement": "oo", "ignorecase": False}, "cWWl-story-ww", "cool-story-ww"),
        ({"pattern": "AaB", "replacement": "nice", "ignorecase": True}, "aab-----AaB---aab", "nice-----nice---nice"),
        ({"pattern": "_", "replacement": ""}, "nomore_underscore", "nomoreunderscore"),
        ({"pattern": "LOL", "replacement": "YAY"}, "Well Hello there LOL", "Well Hello there YAY"),
        ({"pattern": "+", "replacement": "_", "global": True}, "many+different+things", "many_different_things"),
        ({"pattern": "+", "replacement": "_", "global": False}, "many+different+things", "many_different+things"),
        ({"pattern": "a", "replacement": "_", "global": False, "ignorecase": True}, "bAa", "b_a"),
        ({"pattern": "many+"}, "many+different+things", "different+things"),
        ({"pattern": "true", "replacement": "granted"}, True, "granted"),
        ({"pattern": "1", "replacement": "granted"}, 1, "granted"),
        ({"pattern": ".5", "replacement": "½"}, 10.5, "10½"),
        (
            {"pattern": "-", "replacement": " ", "pattern2": "great", "replacement2": "awesome"},
            "something-great!",
            "something awesome!",
        ),
        ({"pattern": "true", "replacement": "granted", "pattern2": "false", "replacement2": "denied"}, False, "denied"),
        ({"pattern": "_", "replacement": "+", "pattern2": "", "replacement2": ""}, "abc_defgh", "abc+defgh"),
        ({"pattern": '"', "pattern2": "\\", "replacement": "", "replacement2": ""}, 'abc"def\\gh', "abcdefgh"),
        ({"pattern": "a", "replacement": "$&\\1"}, "xa", "x$&\\1"),  # JavaScript would expand $&
        # mapping-kit returns "" for these; we pass them on.
        ({"pattern": "_"}, None, None),
        ({"pattern": "_"}, {"a": "_"}, {"a": "_"}),
    ],
)
def test_replace_replaces_literal_text(options: dict[str, Any], value: Any, expected: Any) -> None:
    assert apply({"@replace": {**options, "value": {"@path": "$.a"}}}, {"a": value}) == expected


def test_replace_of_a_missing_value_is_undefined() -> None:
    assert apply({"neat": {"@replace": {"pattern": "_", "value": {"@path": "$.a"}}}}, {}) == {}


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("encode", "bar", '"bar"'),
        ("encode", {"bar": "baz", "n": 1.0, "x": [True, None]}, '{"bar":"baz","n":1,"x":[true,null]}'),
        ("encode", ["bar", "baz"], '["bar","baz"]'),
        ("encode", "é\n", '"é\\n"'),
        ("decode", '"bar"', "bar"),
        ("decode", '{"bar":"baz"}', {"bar": "baz"}),
        ("decode", '["bar","baz"]', ["bar", "baz"]),
        ("decode", 123, 123),
        # mapping-kit throws (the event fails); here the field is left out.
        ("decode", "{not json", UNDEFINED),
        ("decode", "NaN", UNDEFINED),
        ("decode", "1e400", UNDEFINED),
    ],
)
def test_json_encodes_and_decodes(mode: str, value: Any, expected: Any) -> None:
    assert apply({"@json": {"mode": mode, "value": {"@path": "$.foo"}}}, {"foo": value}) == expected


def test_json_of_a_missing_value_is_undefined() -> None:
    assert apply({"neat": {"@json": {"mode": "encode", "value": {"@path": "$.bad"}}}}, {}) == {}


@pytest.mark.parametrize(
    ("options", "value", "expected"),
    [
        ({"separator": "."}, {"bar": "baz", "aces": {"a": 1, "b": 2}}, {"bar": "baz", "aces.a": 1, "aces.b": 2}),
        ({"separator": "."}, [{"fazz": "bar", "fizz": "baz"}], {"0.fazz": "bar", "0.fizz": "baz"}),
        ({"separator": ".", "omitArrays": True}, {"bar": "baz", "aces": [1, 2]}, {"bar": "baz", "aces": [1, 2]}),
        ({"separator": "/"}, {"a": {"b": {"c": 1}, "d": 2}}, {"a/b/c": 1, "a/d": 2}),
        ({"separator": "."}, {"a": [{"b": 1}, {"c": 2}]}, {"a.0.b": 1, "a.1.c": 2}),
        ({"separator": "."}, {"a": {}, "b": []}, {}),
        ({"separator": "."}, "scalar", {"": "scalar"}),
        ({"separator": ","}, UNDEFINED, {}),
    ],
)
def test_flatten_joins_nested_keys(options: dict[str, Any], value: Any, expected: Any) -> None:
    event = {} if value is UNDEFINED else {"foo": value}
    assert apply({"@flatten": {**options, "value": {"@path": "$.foo"}}}, event) == expected


@pytest.mark.parametrize(
    ("direction", "objects", "expected"),
    [
        ("left", [], {}),
        ("right", [{"cool": True}, {"cool": "you bet"}], {"cool": "you bet"}),
        ("left", [{"cool": True}, {"cool": "you bet"}], {"cool": True}),
        ("right", [{"cool": True, "hey": "there"}, {"@path": "$.foo"}], {"cool": True, "hey": "you", "bar": "baz"}),
        ("left", [{"cool": True, "hey": "there"}, {"@path": "$.foo"}], {"bar": "baz", "hey": "there", "cool": True}),
        ("right", [{"@path": "$.hello"}, {"@path": "$.foo"}, {"@path": "$.text"}], {"bar": "baz", "hey": "you"}),
        # A key left out as undefined overrides nothing.
        ("right", [{"cool": True}, {"cool": {"@path": "$.nope"}}], {"cool": True}),
    ],
)
def test_merge_combines_objects_in_a_direction(direction: str, objects: list[Any], expected: Any) -> None:
    event = {"foo": {"bar": "baz", "hey": "you"}, "text": "abc"}
    assert apply({"@merge": {"direction": direction, "objects": objects}}, event) == expected


def test_exclude_when_null_drops_a_null() -> None:
    mapping = {"a": {"@excludeWhenNull": {"@path": "$.a"}}, "b": {"@excludeWhenNull": {"@path": "$.b"}}}
    assert apply(mapping, {"a": None, "b": 0}) == {"b": 0}


def test_metadata_beside_a_directive_is_ignored() -> None:
    assert apply({"x": {"@path": "$.a", "_metadata": {"label": "A"}}}, {"a": 1}) == {"x": 1}


def test_the_benchmarks_ten_field_mapping_gives_the_expected_payload() -> None:
    assert apply(MAPPING, EVENT) == EXPECTED


@pytest.mark.parametrize(
    ("number", "javascript"),
    [
        (10.0, "10"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (123.456, "123.456"),
        (1e16, "10000000000000000"),
        (2.0**60, "1152921504606847000"),
        (5.945826751335525e16, "59458267513355250"),
        (1e21, "1e+21"),
        (1.2345e25, "1.2345e+25"),
        (1e-6, "0.000001"),
        (1.5e-5, "0.000015"),
        (1e-7, "1e-7"),
        (-2.5e-9, "-2.5e-9"),
        (5e-324, "5e-324"),
        (12345678901234567890, "12345678901234567890"),
    ],
)
def test_numbers_are_written_as_javascript_writes_them(number: float, javascript: str) -> None:
    assert number_text(number) == javascript


# --- Invalid mappings: the error names the place ------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "field", "message"),
    [
        (
            {"properties": {"total": {"@path": "properties.total"}}},
            "mapping.properties.total.@path",
            'starts with "$."',
        ),
        ({"@path": 5}, "mapping.@path", 'starts with "$."'),
        ({"@path": {"@path": "$.a"}}, "mapping.@path", 'starts with "$."'),
        ({"x": {"@bogus": 1}}, "mapping.x.@bogus", "unknown directive"),
        ({"x": {"@path": "$.a", "extra": 1}}, "mapping.x", "stands alone"),
        ({"x": {"@path": "$.a", "@template": "b"}}, "mapping.x", "one directive"),
        ({"items": [{"@path": "$.a"}, {"@path": "a"}]}, "mapping.items[1].@path", 'starts with "$."'),
        ({"@template": "Hi {{traits.name"}, "mapping.@template", "unclosed {{ at character 3"),
        ({"@template": "{{a}} {{b} c"}, "mapping.@template", "unclosed {{ at character 6"),
        ({"@template": "Hi {{ }}"}, "mapping.@template", "placeholder {{ }} at character 3"),
        ({"@template": "{{$.traits.name}}"}, "mapping.@template", 'a path without "$."'),
        ({"@template": ["a"]}, "mapping.@template", "a template is a string"),
        ({"@if": {"exists": {"@path": "$.a"}}}, "mapping.@if", "needs 'then'"),
        ({"@if": {"equals": 1, "then": 1}}, "mapping.@if.equals", "no option 'equals'"),
        ({"@if": {"then": 1}}, "mapping.@if", 'one condition, "exists" or "blank"'),
        ({"@if": {"exists": 1, "blank": 1, "then": 1}}, "mapping.@if", "one condition"),
        ({"@if": "$.a"}, "mapping.@if", "takes an object"),
        ({"@if": {"exists": {"@path": "a"}, "then": 1}}, "mapping.@if.exists.@path", 'starts with "$."'),
        ({"@if": {"exists": 1, "then": {"@nope": 1}}}, "mapping.@if.then.@nope", "unknown directive"),
        ({"@arrayPath": "$.products"}, "mapping.@arrayPath", "takes [path, per-item mapping]"),
        ({"@arrayPath": []}, "mapping.@arrayPath", "takes [path, per-item mapping]"),
        ({"@arrayPath": ["$.a", {}, {}]}, "mapping.@arrayPath", "takes [path, per-item mapping]"),
        ({"@arrayPath": [True]}, "mapping.@arrayPath[0]", "a path"),
        ({"@arrayPath": ["products"]}, "mapping.@arrayPath[0]", 'starts with "$."'),
        ({"@arrayPath": [{"a": 1}]}, "mapping.@arrayPath[0]", "or a directive"),
        ({"@arrayPath": ["$.p", "x"]}, "mapping.@arrayPath[1]", "per-item mapping is an object"),
        ({"@arrayPath": ["$.p", {"id": {"@path": "id"}}]}, "mapping.@arrayPath[1].id.@path", 'starts with "$."'),
        ({"@case": {"operator": "title", "value": "x"}}, "mapping.@case.operator", 'one of "lower", "upper"'),
        ({"@case": {"value": "x"}}, "mapping.@case", "needs 'operator'"),
        ({"@replace": {"pattern": "", "value": "x"}}, "mapping.@replace.pattern", "cannot be empty"),
        ({"@replace": {"pattern": "a" * 11, "value": "x"}}, "mapping.@replace.pattern", "at most 10 characters"),
        (
            {"@replace": {"pattern": "a", "replacement": "b" * 11, "value": "x"}},
            "mapping.@replace.replacement",
            "at most 10",
        ),
        ({"@replace": {"pattern": "a", "pattern2": "b" * 11, "value": "x"}}, "mapping.@replace.pattern2", "at most 10"),
        (
            {"@replace": {"pattern": "a", "value": "x", "global": "yes"}},
            "mapping.@replace.global",
            "one of true, false",
        ),
        ({"@replace": {"pattern": "a", "value": "x", "ignorecase": 1}}, "mapping.@replace.ignorecase", "one of"),
        ({"@replace": {"pattern": "a", "value": "x", "pattern3": "b"}}, "mapping.@replace.pattern3", "no option"),
        ({"@replace": {"pattern": "a"}}, "mapping.@replace", "needs 'value'"),
        ({"@json": {"mode": "pretty", "value": 1}}, "mapping.@json.mode", 'one of "encode", "decode"'),
        ({"@flatten": {"separator": "", "value": 1}}, "mapping.@flatten.separator", "non-empty string"),
        ({"@flatten": {"separator": ".", "value": 1, "omitArrays": "no"}}, "mapping.@flatten.omitArrays", "one of"),
        ({"@merge": {"objects": [1], "direction": "right"}}, "mapping.@merge.objects[0]", "an object or a directive"),
        ({"@merge": {"objects": {}, "direction": "right"}}, "mapping.@merge.objects", "a list"),
        ({"@merge": {"objects": [], "direction": "up"}}, "mapping.@merge.direction", 'one of "right", "left"'),
        ({"@literal": {"a": [float("nan")]}}, "mapping.@literal.a[0]", "not a JSON number"),
        ({"a": {1: "b"}}, "mapping.a", "keys are strings"),
        ({"a": (1, 2)}, "mapping.a", "not a JSON value"),
    ],
)
def test_an_invalid_mapping_is_refused_at_its_place(mapping: Any, field: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        compile_mapping(mapping)
    assert (raised.value.field, message in raised.value.message) == (field, True), raised.value.message


def test_the_error_place_starts_with_the_given_field() -> None:
    with pytest.raises(ConfigError) as raised:
        compile_mapping({"@path": "x"}, field="actions[0].mapping")
    assert raised.value.field == "actions[0].mapping.@path"


def test_a_mapping_nested_too_deeply_is_refused() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ConfigError, match="nested too deeply"):
        compile_mapping(deep)


# --- Triggers ---------------------------------------------------------------------------------

ORDER = {"type": "track", "event": "Order Completed", "properties": {"total": 120, "coupon": None, "paid": True}}
IDENTIFY = {"type": "identify", "traits": {"email": "a@example.com"}}


@pytest.mark.parametrize(
    ("trigger", "matches_order", "matches_identify"),
    [
        ({}, True, True),
        ({"type": ["track"]}, True, False),
        ({"type": ["identify", "page"]}, False, True),
        ({"event": {"is": "Order Completed"}}, True, False),
        ({"event": {"is": "order completed"}}, False, False),
        ({"event": {"is_not": "Order Completed"}}, False, True),
        ({"event": {"contains": "der Com"}}, True, False),
        ({"event": {"not_contains": "Refund"}}, True, True),
        ({"event": {"starts_with": "Order "}}, True, False),
        ({"event": {"ends_with": "Completed"}}, True, False),
        ({"conditions": [{"path": "$.properties.total", "op": "exists"}]}, True, False),
        ({"conditions": [{"path": "$.properties.coupon", "op": "exists"}]}, False, False),
        ({"conditions": [{"path": "$.properties.coupon", "op": "not_exists"}]}, True, True),
        ({"conditions": [{"path": "$.properties.total", "op": "=", "value": 120.0}]}, True, False),
        ({"conditions": [{"path": "$.properties.total", "op": "=", "value": "120"}]}, False, False),
        ({"conditions": [{"path": "$.properties.paid", "op": "=", "value": 1}]}, False, False),
        ({"conditions": [{"path": "$.properties.paid", "op": "=", "value": True}]}, True, False),
        ({"conditions": [{"path": "$.properties.coupon", "op": "=", "value": None}]}, True, False),
        ({"conditions": [{"path": "$.properties.total", "op": "!=", "value": 100}]}, True, True),
        ({"conditions": [{"path": "$.properties.total", "op": ">", "value": 100}]}, True, False),
        ({"conditions": [{"path": "$.properties.total", "op": ">=", "value": 120}]}, True, False),
        ({"conditions": [{"path": "$.properties.total", "op": "<", "value": 120}]}, False, False),
        ({"conditions": [{"path": "$.properties.total", "op": "<=", "value": 120}]}, True, False),
        ({"conditions": [{"path": "$.properties.total", "op": ">", "value": "100"}]}, False, False),
        ({"conditions": [{"path": "$.traits.email", "op": ">=", "value": "a"}]}, False, True),
        ({"conditions": [{"path": "$.properties.paid", "op": "is_true"}]}, True, False),
        ({"conditions": [{"path": "$.properties.paid", "op": "is_false"}]}, False, False),
        (
            {"match": "any", "conditions": [{"path": "$.traits", "op": "exists"}, {"path": "$.event", "op": "exists"}]},
            True,
            True,
        ),
        (
            {"match": "all", "conditions": [{"path": "$.traits", "op": "exists"}, {"path": "$.event", "op": "exists"}]},
            False,
            False,
        ),
        # type and event always apply; match combines the conditions only.
        (
            {"type": ["track"], "match": "any", "conditions": [{"path": "$.traits", "op": "exists"}]},
            False,
            False,
        ),
    ],
)
def test_trigger_matches(trigger: dict[str, Any], matches_order: bool, matches_identify: bool) -> None:
    compiled = compile_trigger(trigger)
    assert (compiled.matches(ORDER), compiled.matches(IDENTIFY)) == (matches_order, matches_identify)


def test_iso_times_compare_as_strings() -> None:
    trigger = compile_trigger({"conditions": [{"path": "$.timestamp", "op": ">=", "value": "2024-06-01T00:00:00Z"}]})
    assert trigger.matches({"timestamp": "2024-06-10T14:53:54.567Z"})
    assert not trigger.matches({"timestamp": "2024-05-31T23:59:59.999Z"})


@pytest.mark.parametrize(
    ("trigger", "field", "message"),
    [
        ([], "trigger", "a trigger is an object"),
        ({"kind": "track"}, "trigger.kind", "unknown"),
        ({"type": "track"}, "trigger.type", "a list of event types"),
        ({"type": []}, "trigger.type", "a list of event types"),
        ({"type": ["track", "purchase"]}, "trigger.type[1]", "one of track, identify"),
        ({"event": "Order Completed"}, "trigger.event", "one test"),
        ({"event": {"is": "a", "contains": "b"}}, "trigger.event", "one test"),
        ({"event": {"matches": "a*"}}, "trigger.event.matches", "unknown test"),
        ({"event": {"is": 1}}, "trigger.event.is", "is a string"),
        ({"match": "some"}, "trigger.match", '"all" or "any"'),
        ({"conditions": {}}, "trigger.conditions", "a list"),
        ({"conditions": ["x"]}, "trigger.conditions[0]", "a condition is an object"),
        ({"conditions": [{"path": "$.a"}]}, "trigger.conditions[0]", "needs a path and an op"),
        ({"conditions": [{"path": "a", "op": "exists"}]}, "trigger.conditions[0].path", 'starts with "$."'),
        ({"conditions": [{"path": "$.a", "op": "~"}]}, "trigger.conditions[0].op", "one of exists"),
        ({"conditions": [{"path": "$.a", "op": "exists", "value": 1}]}, "trigger.conditions[0].value", "no value"),
        ({"conditions": [{"path": "$.a", "op": "="}]}, "trigger.conditions[0]", "= needs a value"),
        ({"conditions": [{"path": "$.a", "op": "=", "value": [1]}]}, "trigger.conditions[0].value", "a string"),
        ({"conditions": [{"path": "$.a", "op": ">", "value": True}]}, "trigger.conditions[0].value", "a number or"),
        ({"conditions": [{"path": "$.a", "op": "<", "value": None}]}, "trigger.conditions[0].value", "a number or"),
        ({"conditions": [{"path": "$.a", "op": "=", "value": float("inf")}]}, "trigger.conditions[0].value", "JSON"),
        ({"conditions": [{"path": "$.a", "op": "=", "value": 1, "x": 1}]}, "trigger.conditions[0].x", "unknown"),
    ],
)
def test_an_invalid_trigger_is_refused_at_its_place(trigger: Any, field: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        compile_trigger(trigger)
    assert (raised.value.field, message in raised.value.message) == (field, True), raised.value.message


# --- The reference evaluator: the rules read directly, recursive, no compilation ----------------
# (How JavaScript writes JSON and numbers is a second oracle, below it.)

MISSING = object()
PLACEHOLDER = re.compile(r"\{\{\{([^{}]*)\}\}\}|\{\{([^{}]*)\}\}")


def ref_get(value: Any, path: str) -> Any:
    for key in re.findall(r"[^.\[\]]+", path):
        index = isinstance(value, list) and re.fullmatch(r"0|[1-9][0-9]*", key) and int(key) < len(value)
        value = value.get(key, MISSING) if isinstance(value, dict) else value[int(key)] if index else MISSING
    return value


def ref_text(v: Any) -> str:
    return "" if v is MISSING or v is None else v if isinstance(v, str) else js_json(v)


def ref_flatten(x: Any, prefix: str, options: dict[str, Any], flat: dict[str, Any]) -> dict[str, Any]:
    if isinstance(x, dict) or (isinstance(x, list) and not options.get("omitArrays")):
        for k, y in x.items() if isinstance(x, dict) else enumerate(x):
            ref_flatten(y, f"{prefix}{options['separator']}{k}" if prefix else str(k), options, flat)
    elif x is not MISSING:
        flat[prefix] = x
    return flat


def ref_replace(v: Any, o: dict[str, Any]) -> Any:
    v = js_json(v) if isinstance(v, bool | int | float) else v
    flags, count = re.IGNORECASE if o.get("ignorecase") else 0, 0 if o.get("global", True) else 1
    for p, r in [(o["pattern"], o.get("replacement", "")), (o.get("pattern2", ""), o.get("replacement2", ""))]:
        v = re.sub(re.escape(p), lambda _, r=r: r, v, count=count, flags=flags) if p and isinstance(v, str) else v
    return v


def reference(m: Any, e: Any) -> Any:
    if isinstance(m, list):
        return [None if (v := reference(x, e)) is MISSING else v for x in m]
    name = next((k for k in m if k.startswith("@")), None) if isinstance(m, dict) else None
    if name is None:
        return {k: v for k, x in m.items() if (v := reference(x, e)) is not MISSING} if isinstance(m, dict) else m
    o = m[name]
    v = reference(o["value"], e) if name in ("@case", "@replace", "@json", "@flatten") else None
    if name == "@if":
        c = reference(o.get("exists", o.get("blank")), e)
        holds = c is not MISSING and c is not None and ("blank" not in o or c != "")
        return reference(o["then"], e) if holds else reference(o["else"], e) if "else" in o else MISSING
    if name == "@arrayPath":
        root = ref_get(e, o[0][1:]) if isinstance(o[0], str) else reference(o[0], e)
        if len(o) < 2 or not o[1] or not isinstance(root, dict | list):
            return root
        return [
            None if (x := reference(o[1], i)) is MISSING else x for i in (root if isinstance(root, list) else [root])
        ]
    if name == "@json" and o["mode"] == "decode":
        try:
            return json.loads(v) if isinstance(v, str) else v
        except ValueError:
            return MISSING
    if name == "@merge":
        parts = [reference(x, e) for x in o["objects"]][:: -1 if o["direction"] == "left" else 1]
        return {k: x for part in parts if isinstance(part, dict) for k, x in part.items()}
    return {
        "@path": lambda: ref_get(e, o[1:]),
        "@literal": lambda: copy.deepcopy(o),
        "@excludeWhenNull": lambda: MISSING if (x := reference(o, e)) is None else x,
        "@template": lambda: PLACEHOLDER.sub(lambda p: ref_text(ref_get(e, (p[1] or p[2]).strip())), o),
        "@case": lambda: (v.lower() if o["operator"] == "lower" else v.upper()) if isinstance(v, str) else v,
        "@json": lambda: MISSING if v is MISSING else js_json(v),  # encode
        "@replace": lambda: ref_replace(v, o),
        "@flatten": lambda: ref_flatten(v, "", o, {}),
    }[name]()


# --- JavaScript's text of JSON: JSON.stringify, and Number::toString step by step -----------------


def js_json(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{js_json(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(map(js_json, v)) + "]"
    return js_number(v) if isinstance(v, float) else json.dumps(v, ensure_ascii=False)


def js_number(v: float) -> str:
    """ECMAScript's Number::toString, step by step, from the shortest digits that read back as v."""
    if v == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(v)).normalize().as_tuple()
    s, k = "".join(map(str, digits)), len(digits)
    n = int(exponent) + k  # v is 0.s times 10**n
    if k <= n <= 21:
        body = s + "0" * (n - k)
    elif 0 < n <= 21:
        body = s[:n] + "." + s[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * -n + s
    else:
        body = s[0] + ("." + s[1:] if k > 1 else "") + "e" + ("+" if n > 0 else "-") + str(abs(n - 1))
    return "-" * sign + body


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_number_text_follows_the_ecmascript_algorithm(number: float) -> None:
    assert number_text(number) == js_number(number)


# --- Random events and mappings -----------------------------------------------------------------

KEYS = ["a", "b", "0", "1"]  # few keys, so that paths often find something
# Random strings have no N, I or e: none reads as NaN, Infinity or 1e400, which Python's json.loads
# takes and JavaScript's JSON.parse does not.
TEXT = st.text(alphabet='aAbBß {}[]"0:,.-_$&\\', max_size=8) | st.sampled_from(
    ["[]", '[1, "a", null]', '{"a": {"b": 1.5}}', '"x"', "-0.5", "true", "null", "{", ""]  # for @json's decode
)
SCALARS = (
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False) | TEXT
)


def objects_of(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=dict.fromkeys(KEYS, values))


JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | objects_of(inner), max_leaves=10)
# Random events, and events whose keys hold one kind each, so that paths often find what a
# directive works on (a string to replace or decode, a list of objects to map or flatten).
EVENTS = objects_of(JSON_VALUES | JSON_VALUES.map(json.dumps)) | st.fixed_dictionaries(
    {},
    optional={"a": TEXT, "b": st.lists(objects_of(SCALARS), max_size=3), "0": objects_of(JSON_VALUES), "1": SCALARS},
)

STEPS = st.lists(st.tuples(st.sampled_from(KEYS), st.booleans()), max_size=3)
PATHS = st.sampled_from([f"$.{key}" for key in KEYS]) | STEPS.map(
    lambda steps: "$" + "".join(f"[{k}]" if i and bracket else f".{k}" for i, (k, bracket) in enumerate(steps))
)
PLACEHOLDERS = st.tuples(STEPS.filter(bool), st.sampled_from(["{{%s}}", "{{ %s }}", "{{{%s}}}"])).map(
    lambda sp: sp[1] % "".join(f"[{k}]" if i and b else f"{'.' if i else ''}{k}" for i, (k, b) in enumerate(sp[0]))
)
TEMPLATES = st.lists(st.text(alphabet="ab }:-", max_size=4) | PLACEHOLDERS, max_size=4).map("".join)
SHORT = st.text(alphabet="aAb-1$&\\", max_size=3)


def replace_options(value: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"pattern": SHORT.filter(bool), "value": value},
        optional={
            "replacement": SHORT,
            "pattern2": SHORT,
            "replacement2": SHORT,
            "ignorecase": st.booleans(),
            "global": st.booleans(),
        },
    )


def directives(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    at_path = PATHS.map(lambda p: {"@path": p})
    objects = objects_of(inner)
    # A directive's value is most often a path into the event or a string: what it works on.
    value = at_path | TEXT | inner
    options = {
        "@if": st.sampled_from(["exists", "blank"]).flatmap(
            lambda c: st.fixed_dictionaries({c: inner, "then": inner}, optional={"else": inner})
        ),
        "@arrayPath": st.tuples(PATHS | at_path, st.none() | objects | at_path).map(list)
        | (PATHS | at_path).map(lambda p: [p]),
        "@case": st.fixed_dictionaries({"operator": st.sampled_from(["lower", "upper"]), "value": value}),
        "@replace": replace_options(value),
        "@json": st.fixed_dictionaries({"mode": st.sampled_from(["encode", "decode"]), "value": value}),
        "@flatten": st.fixed_dictionaries(
            {"separator": st.sampled_from([".", "_", "/"]), "value": value}, optional={"omitArrays": st.booleans()}
        ),
        "@merge": st.fixed_dictionaries(
            {"objects": st.lists(objects | at_path, max_size=3), "direction": st.sampled_from(["left", "right"])}
        ),
        "@excludeWhenNull": value,
    }
    return st.one_of(*(strategy.map(lambda o, n=name: {n: o}) for name, strategy in options.items()))


LITERALS = st.recursive(
    SCALARS, lambda inner: st.dictionaries(st.sampled_from([*KEYS, "@id"]), inner, max_size=2), max_leaves=4
)
MAPPINGS = st.recursive(
    SCALARS
    | PATHS.map(lambda p: {"@path": p})
    | TEMPLATES.map(lambda t: {"@template": t})
    | LITERALS.map(lambda v: {"@literal": v}),
    lambda inner: st.lists(inner, max_size=3) | objects_of(inner) | directives(inner),
    max_leaves=12,
)


def as_compared(value: Any) -> str:
    """JSON text keeps apart what Python's == does not: 1 and True, 1 and 1.0, key order."""
    return "undefined" if value is UNDEFINED or value is MISSING else json.dumps(value)


@settings(max_examples=3000, deadline=None)
@given(MAPPINGS, EVENTS)
def test_compiled_mapping_agrees_with_the_reference(mapping: Any, event: dict[str, Any]) -> None:
    assert as_compared(compile_mapping(mapping).apply(event)) == as_compared(reference(mapping, event))


# Texts made of the patterns, in both cases, so that every option changes the result.
REPLACE_CASES = replace_options(st.just("")).flatmap(
    lambda o: (
        st.lists(st.sampled_from([o["pattern"], o["pattern"].swapcase(), o.get("pattern2") or "x", "x"]))
        .map("".join)
        .map(lambda text: {**o, "value": text})
    )
)


@settings(max_examples=300)
@given(REPLACE_CASES)
def test_replace_agrees_with_the_reference_on_text_made_of_its_patterns(options: dict[str, Any]) -> None:
    expected = ref_replace(options["value"], options)
    assert compile_mapping({"@replace": options}).apply({}) == expected


# Arbitrary input, shaped like mappings and triggers often enough to get past their first checks.
OPTION_KEYS = "_metadata exists blank then else operator value pattern replacement pattern2 replacement2 ignorecase"
OPTION_KEYS += " global mode separator omitArrays objects direction"
ANY_KEY = st.sampled_from([*KEYS, *DIRECTIVES, "@nope", *OPTION_KEYS.split()]) | st.integers(0, 2)
ANY_SCALAR = (
    SCALARS
    | st.floats()
    | st.binary(max_size=2)
    | st.sampled_from(["$", "$.a", "a", "lower", "encode", "decode", "left", "{{a}}", "{{", *EVENT_TYPES, *OPERATORS])
    | st.sampled_from([float("nan"), float("inf"), (), b""])
)


def anything_shaped(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    options = st.dictionaries(st.sampled_from(OPTION_KEYS.split()), inner, max_size=4)
    directive = st.tuples(st.sampled_from([*DIRECTIVES, "@nope"]), options | inner).map(lambda d: {d[0]: d[1]})
    return st.lists(inner, max_size=3) | st.tuples(inner) | st.dictionaries(ANY_KEY, inner, max_size=3) | directive


ANYTHING = st.recursive(ANY_SCALAR, anything_shaped, max_leaves=16)
VALUELESS = ["exists", "not_exists", "is_true", "is_false"]
NAME_TESTS = ["is", "is_not", "contains", "not_contains", "starts_with", "ends_with", "matches"]
# Triggers right in shape, with values of any type; ANYTHING supplies the wrong shapes.
CONDITIONS = st.tuples(PATHS, st.sampled_from(OPERATORS), SCALARS | ANY_SCALAR).map(
    lambda c: {"path": c[0], "op": c[1]} | ({} if c[1] in VALUELESS else {"value": c[2]})
)
TRIGGERS = ANYTHING | st.fixed_dictionaries(
    {},
    optional={
        "type": st.lists(st.sampled_from(EVENT_TYPES), min_size=1, max_size=2),
        "event": st.dictionaries(st.sampled_from(NAME_TESTS), TEXT | ANY_SCALAR, min_size=1, max_size=1),
        "match": st.sampled_from(["all", "any"]),
        "conditions": st.lists(CONDITIONS, max_size=3),
    },
)
TRIGGER_EVENTS = st.builds(
    lambda event, envelope: {**event, **envelope},
    EVENTS,
    st.fixed_dictionaries(
        {}, optional={"type": st.sampled_from(EVENT_TYPES) | JSON_VALUES, "event": TEXT | JSON_VALUES}
    ),
)


@settings(max_examples=1500, deadline=None)
@given(ANYTHING, EVENTS)
def test_a_mapping_of_anything_is_refused_with_config_error_or_applies_to_json(
    spec: Any, event: dict[str, Any]
) -> None:
    try:
        mapping = compile_mapping(spec)
    except ConfigError as error:
        assert error.field.startswith("mapping")
        return
    result = mapping.apply(event)
    json.dumps(None if result is UNDEFINED else result, allow_nan=False)  # raises for anything but JSON


@settings(max_examples=1500, deadline=None)
@given(TRIGGERS, TRIGGER_EVENTS)
def test_a_trigger_of_anything_is_refused_with_config_error_or_says_yes_or_no(spec: Any, event: dict[str, Any]) -> None:
    try:
        trigger = compile_trigger(spec)
    except ConfigError as error:
        assert error.field.startswith("trigger")
        return
    assert isinstance(trigger.matches(event), bool)
