"""Helpers for the client's tests against a real server (the `server` fixture is in the root conftest)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import grpc
import pytest
from tributary import Backoff, Client
from tributary._proto.cdp.v1 import event_pb2, profile_pb2, profile_pb2_grpc

# Quick retries so tests that restart the server stay short, with enough of them to outlast a restart.
FAST_BACKOFF = Backoff(initial=0.05, multiplier=2.0, maximum=0.5)
FAST_RETRIES = 60


class Server(Protocol):
    """The interface of the root conftest's `server` fixture that these tests use."""

    target: str
    write_key: str
    admin_token: str

    def kill(self) -> None: ...
    def start(self) -> None: ...
    def stop(self, timeout: float = ...) -> int: ...


StoredEvents = Callable[[str], list[event_pb2.Event]]
ClientFactory = Callable[..., Client]


@pytest.fixture
def user_id() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def stored_events(server: Server) -> StoredEvents:
    """All stored events of `user_id:<id>`, oldest first, read with ProfileService/ListEvents."""

    def read(user: str) -> list[event_pb2.Event]:
        events: list[event_pb2.Event] = []
        cursor = ""
        with grpc.insecure_channel(server.target) as channel:
            stub = profile_pb2_grpc.ProfileServiceStub(channel)
            while True:
                request = profile_pb2.ListEventsRequest(
                    identifier=f"user_id:{user}", limit=1000, oldest_first=True, cursor=cursor
                )
                reply = stub.ListEvents(
                    request, metadata=(("authorization", f"Bearer {server.admin_token}"),), timeout=30
                )
                events.extend(reply.events)
                if not reply.next_cursor:
                    return events
                cursor = reply.next_cursor

    return read


@pytest.fixture
def make_client(server: Server) -> Iterator[ClientFactory]:
    """Clients of `server` with quick retries; closed at the end of the test."""
    made: list[Client] = []

    def make(**options: Any) -> Client:
        options.setdefault("backoff", FAST_BACKOFF)
        options.setdefault("max_retries", FAST_RETRIES)
        client = Client(server.target, options.pop("write_key", server.write_key), **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=10)


@pytest.fixture
def unused_target() -> str:
    """A loopback address where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"
