"""A structure-aware mutator for Segment-Spec JSON bodies.

Byte-level mutation of JSON mostly breaks the syntax, and the engine then refuses the whole body
in its first few lines. Half of the time this mutator instead parses the input, changes one value
of the document (a field of the wrong type, an extreme number, a deep or long value, a key
removed or repeated, a message duplicated) and writes it back in one of the body's shapes (one
message, a batch object, an array, JSON lines); the other half, and for inputs that are not JSON,
it leaves the bytes to libFuzzer's own mutations. Seeded by libFuzzer, so runs repeat.
"""

from __future__ import annotations

import json
import random
from typing import Any

import atheris

# Values that sit on the edges of what the decoder and validator distinguish.
EDGE_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**63,
    -(2**63) - 1,
    10**400,  # written as a huge integer literal
    1e308,
    -0.0,
    "",
    " ",
    "null",
    "0000",
    "\u0000",
    "\ud7ff\ue000",
    "é" * 50,
    "x" * 200,
    "2024-05-01T12:00:00Z",
    "2024-02-30T25:61:61Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "+275760-09-13T00:00:00Z",
    "1970-01-01T00:00:00+25:00",
    [],
    {},
    [[[[[]]]]],
]
FIELDS = [
    "type",
    "messageId",
    "userId",
    "anonymousId",
    "groupId",
    "previousId",
    "event",
    "name",
    "category",
    "timestamp",
    "sentAt",
    "originalTimestamp",
    "properties",
    "traits",
    "context",
    "integrations",
    "batch",
    "writeKey",
]
CALLS = ["identify", "track", "page", "screen", "group", "alias", "TRACK", "bogus"]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a document, the root included."""
    found = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*path, index))
    return found


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def _new_value(rng: random.Random) -> Any:
    choice = rng.randrange(6)
    if choice == 0:
        return rng.choice(CALLS)
    if choice == 1:
        return _nested(rng.choice([31, 32, 33, 64]))
    if choice == 2:
        return {f"t{i}": i for i in range(rng.choice([299, 300, 301]))}
    if choice == 3:
        return "y" * rng.choice([100, 101, 500, 501, 33_000])
    return rng.choice(EDGE_VALUES)


def _mutate_document(doc: Any, rng: random.Random) -> Any:
    paths = _paths(doc)
    path = rng.choice(paths)
    target = _get(doc, path)
    choice = rng.randrange(5)
    if choice == 0 and isinstance(target, dict):
        target[rng.choice(FIELDS)] = _new_value(rng)
    elif choice == 1 and isinstance(target, dict) and target:
        del target[rng.choice(list(target))]
    elif choice == 2 and isinstance(target, list) and target:
        target.insert(rng.randrange(len(target) + 1), rng.choice(target))
    elif path:
        _get(doc, path[:-1])[path[-1]] = _new_value(rng)
    else:
        doc = _new_value(rng) if rng.random() < 0.2 else {"batch": [doc], "context": {"ip": "1.2.3.4"}}
    return doc


def _write(doc: Any, rng: random.Random) -> bytes:
    """The document as a body: as it is, or its messages as an array or as JSON lines."""
    messages = doc.get("batch") if isinstance(doc, dict) else doc if isinstance(doc, list) else None
    shape = rng.randrange(4)
    if isinstance(messages, list) and shape == 0:
        return "\n".join(json.dumps(m) for m in messages).encode()
    if isinstance(messages, list) and shape == 1:
        return json.dumps(messages).encode()
    separators = (",", ":") if shape == 2 else (", ", ": ")
    return json.dumps(doc, separators=separators, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's custom mutator for JSON bodies."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        return atheris.Mutate(data, max_size)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return atheris.Mutate(data, max_size)
    out = _write(_mutate_document(doc, rng), rng)
    return out if len(out) <= max_size else atheris.Mutate(data, max_size)
