"""Small helpers the tests use to talk to a server: typed stubs and event builders."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from google.protobuf import timestamp_pb2
from tributary._proto.cdp.v1 import (
    admin_pb2_grpc,
    event_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
)

TRACK = event_pb2.EVENT_TYPE_TRACK
IDENTIFY = event_pb2.EVENT_TYPE_IDENTIFY


def ts(ms: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def track(message_id: str, user_id: str = "u1", name: str = "Order Completed", **fields: Any) -> event_pb2.Event:
    props = fields.pop("properties", {"revenue": 10})
    return event_pb2.Event(
        type=TRACK, message_id=message_id, user_id=user_id, event=name, properties=json.dumps(props).encode(), **fields
    )


def batch(events: Iterable[event_pb2.Event], **fields: Any) -> event_pb2.Batch:
    return event_pb2.Batch(events=list(events), **fields)


class Rpc:
    """Stubs bound to one server and its credentials."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.channel = server.channel()
        self.ingest = ingest_pb2_grpc.IngestServiceStub(self.channel)
        self.profile = profile_pb2_grpc.ProfileServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)

    def send(self, events: Iterable[event_pb2.Event], **batch_fields: Any) -> ingest_pb2.SendResponse:
        request = ingest_pb2.SendRequest(batch=batch(events, **batch_fields))
        return self.ingest.Send(request, metadata=self.server.ingest_metadata, timeout=30)

    def stream(self, batches: Iterable[list[event_pb2.Event]]) -> list[ingest_pb2.StreamResponse]:
        def requests() -> Iterator[ingest_pb2.StreamRequest]:
            for sequence, events in enumerate(batches, start=1):
                yield ingest_pb2.StreamRequest(sequence=sequence, batch=batch(events))

        return list(self.ingest.Stream(requests(), metadata=self.server.ingest_metadata, timeout=120))

    def events(self, identifier: str, limit: int = 1000, **fields: Any) -> list[event_pb2.Event]:
        """Every event of an identifier (all pages), newest first unless oldest_first."""
        out: list[event_pb2.Event] = []
        cursor = ""
        while True:
            request = profile_pb2.ListEventsRequest(identifier=identifier, limit=limit, cursor=cursor, **fields)
            try:
                page = self.profile.ListEvents(request, metadata=self.server.admin_metadata, timeout=30)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                    return out
                raise
            out.extend(page.events)
            if not page.next_cursor:
                return out
            cursor = page.next_cursor

    def close(self) -> None:
        self.channel.close()
