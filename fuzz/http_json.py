"""Fuzz target: a Tracking API body as the HTTP server hands it to the engine.

``rust_core/http/src/tracking.rs`` reads the body (gzip undone, size held to the route's
limit), takes the write key, then calls ``Engine::submit_json(source, body, options)`` with the
route's call type (``/v1/track`` → track, ``/v1/batch`` → none) and waits for the durable answer.
This harness makes the same call through ``_core.Engine.send_json`` on an engine opened in the
work directory with ``unsafe_no_sync`` (no fsync per commit: that would dominate). The route is
chosen by the input's length (``len % 7``: 0 is ``/v1/batch``, 1 to 6 the call routes), so the
input stays a body one could post as it is, and mutations that change its length try other
routes.

Documented outcomes: an answer (accepted, duplicate, conflict or rejected per message) or
``InvalidRequest`` for a body that cannot be split into messages. The answer must decode as a
``SendResponse`` with one result per message index at most.
"""

from __future__ import annotations

from pathlib import Path

from tributary._proto.cdp.v1 import ingest_pb2

from fuzz import json_mutator
from fuzz.runner import OneInput, Target, main

SOURCE_ID = 1
# Past the 32 KiB event limit, so that inputs on both sides of it are made.
MAX_LEN = 40_000
ROUTES = 7  # EventType values: 0 (no route type: /v1/batch), then identify … alias


def prepare(work_dir: Path) -> OneInput:
    from cdp_server import _core

    engine = _core.Engine(work_dir / "data", unsafe_no_sync=True, snapshots=False)

    def one_input(data: bytes) -> None:
        try:
            outcome = engine.send_json(SOURCE_ID, data, route_type=len(data) % ROUTES)
        except _core.InvalidRequest:
            return
        results = ingest_pb2.SendResponse.FromString(outcome.response).results
        indices = [result.index for result in results]
        assert len(indices) == len(set(indices)), f"a message answered twice: {indices}"

    return one_input


TARGET = Target("http_json", prepare, mutator=json_mutator.mutate, max_len=MAX_LEN)

if __name__ == "__main__":
    main(TARGET)
