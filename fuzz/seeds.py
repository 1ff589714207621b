"""Writes the seed corpora (``fuzz/corpus/<target>/``) from real inputs: ``python -m fuzz.seeds``.

- ``query``: every definition-like string literal of the query language's Rust tests, the
  audience tests and docs/engage.md (valid and invalid ones alike: both are real inputs), and
  the examples of the language's reference page;
- ``http_json``: Segment-Spec messages of each call (as Segment's spec pages show them), batch
  objects, arrays and JSON lines, and the JSON literals of the JSON decoder's Rust tests;
- ``ingest_proto``: the same messages as ``SendRequest`` and ``StreamRequest``, both as protobuf
  events and as ``JsonBatch``.

Each file is named by the SHA-1 of its content (as libFuzzer names corpus files), so running the
script again adds what is new and changes nothing else.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from google.protobuf import timestamp_pb2
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2

from fuzz.runner import FUZZ_DIR, REPO

# The examples of the query language's reference page (QUERY_LANGUAGE.md).
REFERENCE_EXAMPLES = [
    "event('Shoes Bought').where( property('price') >= 100 ).within(7 days).count() >= 1",
    "NOT ( event('Shoes Bought').count() >= 1 AND trait('total_spend') > 200 )",
    "trait('plan') = 'pro' AND event('Order Completed').within(30 days).count() >= 3",
    "event('Shoes Bought').where( property('price') >= trait('avg_spend')\n"
    "    AND event('Shoes Returned').within(parent: 5 days).count() >= 1 ).within(30 days).count() >= 1",
    "ALL ( event('Shoes Bought').count() >= 1 AND trait('total_spend') > 200 )",
    "event('Shoes Bought').within(30 days).avg(property('spend'))",
    "event('Shoes Bought').within(30 days).mode(property('spend'), 2)",
    "event('Page Viewed').where(context('page.url').contains('pricing')).sources(exclude: 'a', 'b').count() > 2",
    "event('Order').between(3 days, 10 days).max(property('total') as string) = 'z'",
    "trait('signup').before_date('2024-05-01') OR trait('seen').within_last(7 days)",
    "event('A').unique(property('sku')).count() >= 2 AND trait('tags').one_of('a', \"b\")",
]

QUERY_SOURCES = [
    "rust_core/engine/src/query/tests/*.rs",
    "rust_core/engine/src/audiences.rs",
    "tests/test_audience*.py",
    "tests/test_audiences_grpc.py",
    "docs/engage.md",
]
QUERY_WORDS = re.compile(r"\b(event|trait|property|context|literal)\s*\(|\b(NOT|ANY|ALL)\s*\(")
STRING_LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "'": "'", "r": "\r", "0": "\0"}

# Segment's spec examples, one per call, with the common fields.
CONTEXT = {
    "ip": "8.8.8.8",
    "library": {"name": "analytics.js", "version": "2.11.1"},
    "page": {"path": "/academy/", "url": "https://segment.com/academy/", "title": "Analytics Academy"},
    "userAgent": "Mozilla/5.0",
    "locale": "en-US",
    "traits": {"email": "peter@example.com"},
}
MESSAGES: list[dict[str, Any]] = [
    {
        "type": "identify",
        "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
        "userId": "97980cfea0067",
        "anonymousId": "507f191e810c19729de860ea",
        "traits": {"name": "Peter Gibbons", "email": "peter@example.com", "plan": "premium", "logins": 5},
        "context": CONTEXT,
        "timestamp": "2015-02-23T22:28:55.111Z",
        "sentAt": "2015-02-23T22:28:55.111Z",
        "integrations": {"All": True, "Mixpanel": False},
    },
    {
        "type": "track",
        "messageId": "ajs-f8ca1e4de5024d9430b3928bd8ac6b96",
        "userId": "AiUGstSDIg",
        "event": "Course Clicked",
        "properties": {"title": "Intro to Analytics", "revenue": 9.99, "currency": "USD", "tags": ["a", "b"]},
        "context": CONTEXT,
        "originalTimestamp": "2015-12-12T19:11:01.169Z",
        "timestamp": "2015-12-12T19:11:01.249Z",
    },
    {
        "type": "page",
        "anonymousId": "507f191e810c19729de860ea",
        "name": "Home",
        "category": "Docs",
        "properties": {"title": "Welcome | Initech", "url": "http://www.example.com"},
        "messageId": "page-1",
    },
    {"type": "screen", "userId": "97980cfea0067", "name": "Home", "properties": {"variation": "blue"}},
    {
        "type": "group",
        "userId": 42,
        "groupId": "0e8c78ea9d97a7b8185e8632",
        "traits": {"name": "Initech", "industry": "Technology", "employees": 329},
    },
    {"type": "alias", "previousId": "39239-239239-239239-23923", "userId": "507f191e81"},
    {"userId": "u", "event": "Order Completed", "properties": {"revenue": 99.5}, "writeKey": "wk"},
    {
        "type": "identify",
        "userId": "u-7",
        "context": {"traits": {"email": "bo@example.com"}},
        "timestamp": "2024-05-01T12:00:00+02:00",
    },
]


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: ESCAPES.get(m.group(1), m.group(0)), text)


def query_seeds() -> Iterable[bytes]:
    yield from (example.encode() for example in REFERENCE_EXAMPLES)
    for pattern in QUERY_SOURCES:
        for path in sorted(REPO.glob(pattern)):
            for literal in STRING_LITERAL.findall(path.read_text()):
                text = _unescape(literal)
                if QUERY_WORDS.search(text) and "{" not in text:
                    yield text.encode()


def json_seeds() -> Iterable[bytes]:
    for message in MESSAGES:
        yield json.dumps(message).encode()
    yield json.dumps({"batch": MESSAGES, "context": {"library": {"name": "analytics-python"}}, "sentAt": None}).encode()
    yield json.dumps(MESSAGES, indent=1).encode()
    yield "\n".join(json.dumps(m) for m in MESSAGES).encode() + b"\n\n"
    yield b'\xef\xbb\xbf{"type":"track","userId":"u","event":"E"}'
    yield b'{"type":"track","userId":"u","event":"B",\n{"type":"track","userId":"u","event":"C"}'
    tests = (REPO / "rust_core/engine/src/segment_json/tests.rs").read_text()
    for literal in re.findall(r'r#"(.*?)"#', tests, flags=re.DOTALL):
        if literal.lstrip().startswith(("{", "[")) and "{{" not in literal:
            yield literal.encode()


def _timestamp(text: str | None) -> timestamp_pb2.Timestamp | None:
    if not text:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromJsonString(text.replace("+02:00", "Z"))
    return stamp


def _event(message: dict[str, Any]) -> event_pb2.Event:
    call = message.get("type", "track")
    event = event_pb2.Event(type=event_pb2.EventType.Value(f"EVENT_TYPE_{call.upper()}"))
    for field, name in [
        ("messageId", "message_id"),
        ("userId", "user_id"),
        ("anonymousId", "anonymous_id"),
        ("groupId", "group_id"),
        ("previousId", "previous_id"),
        ("event", "event"),
        ("name", "name"),
    ]:
        if field in message:
            setattr(event, name, str(message[field]))
    for field in ["properties", "traits", "context", "integrations"]:
        if field in message:
            setattr(event, field, json.dumps(message[field]).encode())
    for field, name in [("timestamp", "timestamp"), ("sentAt", "sent_at"), ("originalTimestamp", "original_timestamp")]:
        stamp = _timestamp(message.get(field))
        if stamp is not None:
            getattr(event, name).CopyFrom(stamp)
    return event


def proto_seeds() -> Iterable[bytes]:
    events = [_event(message) for message in MESSAGES]
    batch = event_pb2.Batch(events=events, context=b'{"ip":"1.2.3.4"}', integrations=b'{"All":true}')
    yield ingest_pb2.SendRequest(batch=batch).SerializeToString()
    yield ingest_pb2.StreamRequest(sequence=7, batch=batch).SerializeToString()
    for event in events:
        yield ingest_pb2.SendRequest(batch=event_pb2.Batch(events=[event])).SerializeToString()
    for index, data in enumerate(list(json_seeds())[:12]):
        json_batch = ingest_pb2.JsonBatch(data=data, content_message_ids=index % 2 == 0, ignore_sent_at=index % 3 == 0)
        yield ingest_pb2.SendRequest(json=json_batch).SerializeToString()
        yield ingest_pb2.StreamRequest(sequence=index, json=json_batch).SerializeToString()
    yield b""


def write(target: str, seeds: Iterable[bytes]) -> int:
    directory = FUZZ_DIR / "corpus" / target
    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    for seed in seeds:
        path = directory / hashlib.sha1(seed).hexdigest()
        if not path.exists():
            path.write_bytes(seed)
            written += 1
    return written


def main() -> None:
    for target, seeds in [("query", query_seeds()), ("http_json", json_seeds()), ("ingest_proto", proto_seeds())]:
        print(f"{target}: {write(target, seeds)} new seeds")


if __name__ == "__main__":
    main()
