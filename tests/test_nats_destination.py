"""The `nats` destination against a real nats-server with JetStream on loopback: subjects, payloads
and headers as a JetStream consumer reads them, de-duplication of redelivered batches, the errors the
delivery worker acts on across a server stop and restart, and the settings' validation.

Ends with a measurement (not an assertion) of pipelined publishing against one round trip per event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import nats
import orjson
import pytest
from nats.aio.client import Server
from nats.js import JetStreamContext

# Imported for pytest, which finds the fixtures jetstream_server and nats_server_factory here.
from nats_server import NatsServer, jetstream_server_fixture, nats_server_factory_fixture  # noqa: F401

from cdp_server.destinations.addresses import AllowList
from cdp_server.destinations.base import Batch, ConfigError, PayloadTooLarge, PermanentError, RetryableError
from cdp_server.destinations.nats import DEFAULT_PORT, NatsDestination, NatsKind, NatsSettings

TYPES = ("track", "identify", "page", "group")
PREFIX = "tributary.events"


def events(count: int, first: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "messageId": f"msg-{number}",
            "type": TYPES[number % len(TYPES)],
            "userId": f"user-{number % 7}",
            "event": "Signed Up" if number % len(TYPES) == 0 else None,
            "properties": {"plan": "pro", "seats": number, "note": "é },{ 🦫"},
            "receivedAt": "2024-05-01T10:00:00.000Z",
        }
        for number in range(first, first + count)
    ]


def batch_of(made: list[dict[str, Any]]) -> Batch:
    return Batch("nats-test", orjson.dumps(made), [event["messageId"] for event in made])


def destination(server: NatsServer, **settings: Any) -> NatsDestination:
    kind = NatsKind()
    return kind.create("nats-test", kind.validate({"url": server.url, "allow": ["127.0.0.1"], **settings}))


async def with_jetstream(server: NatsServer, use: Callable[[JetStreamContext], Awaitable[Any]]) -> Any:
    """Runs `use` with a JetStream context of a separate connection (the test's own reader)."""
    client = await nats.connect(server.url)
    try:
        return await use(client.jetstream())
    finally:
        await client.close()


async def stored_messages(server: NatsServer, stream: str) -> list[tuple[str, bytes, str]]:
    """Every message of `stream`, in order: (subject, payload, Nats-Msg-Id), read by a consumer."""

    async def read(jetstream: JetStreamContext) -> list[tuple[str, bytes, str]]:
        count = (await jetstream.stream_info(stream)).state.messages
        consumer = await jetstream.pull_subscribe(f"{PREFIX}.>", stream=stream)
        read: list[tuple[str, bytes, str]] = []
        while len(read) < count:
            for message in await consumer.fetch(count - len(read), timeout=5):
                read.append((message.subject, message.data, (message.headers or {}).get("Nats-Msg-Id", "")))
                await message.ack()
        return read

    result: list[tuple[str, bytes, str]] = await with_jetstream(server, read)
    return result


async def stream_size(server: NatsServer, stream: str) -> int:
    async def size(jetstream: JetStreamContext) -> int:
        return int((await jetstream.stream_info(stream)).state.messages)

    result: int = await with_jetstream(server, size)
    return result


def test_events_arrive_on_their_type_subjects_with_their_json_and_message_id(jetstream_server: NatsServer) -> None:
    sent = events(9)

    async def scenario() -> list[tuple[str, bytes, str]]:
        target = destination(jetstream_server, stream="EVENTS")
        try:
            await target.deliver(batch_of(sent))
        finally:
            await target.close()
        return await stored_messages(jetstream_server, "EVENTS")

    stored = asyncio.run(scenario())
    assert [(subject, orjson.loads(payload), message_id) for subject, payload, message_id in stored] == [
        (f"{PREFIX}.{event['type']}", event, event["messageId"]) for event in sent
    ]


def test_the_stream_is_created_capturing_the_prefix_and_then_reused(jetstream_server: NatsServer) -> None:
    async def scenario() -> list[str]:
        for _ in range(2):  # a second destination finds the stream and checks it
            target = destination(jetstream_server, stream="EVENTS", subject_prefix="acme.cdp")
            await target.deliver(batch_of(events(2)))
            await target.close()

        async def subjects(jetstream: JetStreamContext) -> list[str]:
            return list((await jetstream.stream_info("EVENTS")).config.subjects or [])

        result: list[str] = await with_jetstream(jetstream_server, subjects)
        return result

    assert asyncio.run(scenario()) == ["acme.cdp.>"]


def test_a_redelivered_batch_adds_nothing_to_the_stream(jetstream_server: NatsServer) -> None:
    async def scenario() -> list[str]:
        target = destination(jetstream_server, stream="EVENTS")
        try:
            await target.deliver(batch_of(events(10)))
            await target.deliver(batch_of(events(10)))  # the same batch again
            await target.deliver(batch_of(events(10, first=5)))  # half old, half new
        finally:
            await target.close()
        return [message_id for _, _, message_id in await stored_messages(jetstream_server, "EVENTS")]

    assert asyncio.run(scenario()) == [f"msg-{number}" for number in range(15)]


def test_a_message_id_unfit_for_a_header_is_sent_as_a_stable_digest(jetstream_server: NatsServer) -> None:
    hostile = [{**events(1)[0], "messageId": "id\r\nNats-Expected-Stream: OTHER"}]

    async def scenario() -> list[tuple[str, bytes, str]]:
        target = destination(jetstream_server, stream="EVENTS")
        try:
            await target.deliver(batch_of(hostile))
            await target.deliver(batch_of(hostile))
        finally:
            await target.close()
        return await stored_messages(jetstream_server, "EVENTS")

    ((_, payload, message_id),) = asyncio.run(scenario())
    assert message_id.startswith("id_") and "\r" not in message_id
    assert orjson.loads(payload) == hostile[0]


def test_a_stopped_server_is_retryable_and_delivery_resumes_after_its_restart(jetstream_server: NatsServer) -> None:
    async def scenario() -> None:
        target = destination(jetstream_server, stream="EVENTS", timeout_secs=1)
        try:
            await target.deliver(batch_of(events(4)))
            jetstream_server.stop()
            with pytest.raises(RetryableError) as raised:
                await target.deliver(batch_of(events(4, first=4)))
            assert "nats://127.0.0.1" in raised.value.reason

            jetstream_server.start()  # the same port and store
            deadline = time.monotonic() + 15
            while True:  # as the worker would: retry until nats-py has reconnected
                try:
                    await target.deliver(batch_of(events(4, first=4)))
                    break
                except RetryableError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
            # The store survived the restart, and so did JetStream's memory of the message ids.
            await target.deliver(batch_of(events(8)))
        finally:
            await target.close()
        assert await stream_size(jetstream_server, "EVENTS") == 8

    asyncio.run(scenario())


def test_a_server_never_reached_is_retryable_within_the_timeout(jetstream_server: NatsServer) -> None:
    jetstream_server.stop()

    async def scenario() -> None:
        target = destination(jetstream_server, timeout_secs=0.5)
        started = time.monotonic()
        with pytest.raises(RetryableError, match=r"could not connect to NATS at nats://127\.0\.0\.1"):
            await target.deliver(batch_of(events(1)))
        assert time.monotonic() - started < 3
        await target.close()

    asyncio.run(scenario())


def test_a_subject_no_stream_captures_is_a_permanent_error_naming_it(jetstream_server: NatsServer) -> None:
    async def scenario() -> None:
        target = destination(jetstream_server)  # no `stream`: someone else was to create one
        try:
            with pytest.raises(PermanentError, match=f"no JetStream stream captures the subject {PREFIX}.track"):
                await target.deliver(batch_of(events(1)))
        finally:
            await target.close()

    asyncio.run(scenario())


def test_an_existing_stream_that_does_not_capture_the_prefix_is_a_permanent_error(
    jetstream_server: NatsServer,
) -> None:
    async def scenario() -> None:
        async def create_streams(jetstream: JetStreamContext) -> None:
            await jetstream.add_stream(name="ORDERS", subjects=["orders.>"])
            await jetstream.add_stream(name="WIDE", subjects=["tributary.*.*"])

        await with_jetstream(jetstream_server, create_streams)
        target = destination(jetstream_server, stream="ORDERS")
        with pytest.raises(
            PermanentError, match=r"stream ORDERS does not capture the subjects tributary.events.<type>"
        ):
            await target.deliver(batch_of(events(1)))
        await target.close()
        # A stream whose wildcards capture the subjects is used as it is.
        target = destination(jetstream_server, stream="WIDE")
        await target.deliver(batch_of(events(3)))
        await target.close()
        assert await stream_size(jetstream_server, "WIDE") == 3

    asyncio.run(scenario())


def test_a_configured_stream_deleted_meanwhile_is_created_again(jetstream_server: NatsServer) -> None:
    async def scenario() -> None:
        target = destination(jetstream_server, stream="EVENTS")
        try:
            await target.deliver(batch_of(events(2)))

            async def delete(jetstream: JetStreamContext) -> None:
                await jetstream.delete_stream("EVENTS")

            await with_jetstream(jetstream_server, delete)
            with pytest.raises(RetryableError, match="stream EVENTS is gone"):
                await target.deliver(batch_of(events(2)))
            await target.deliver(batch_of(events(2)))
        finally:
            await target.close()
        assert await stream_size(jetstream_server, "EVENTS") == 2

    asyncio.run(scenario())


# Connections without credentials act as `limited`, who may not publish identify events.
DENY_IDENTIFY = """
accounts: {
  TENANT: {
    jetstream: enabled
    users: [{user: limited, password: unused, permissions: {publish: {deny: ["tributary.events.identify"]}}}]
  }
}
no_auth_user: limited
"""


def test_a_publish_the_server_forbids_is_a_permanent_error_naming_the_subject(
    nats_server_factory: Callable[[str | None], NatsServer],
) -> None:
    server = nats_server_factory(DENY_IDENTIFY)

    async def scenario() -> None:
        target = destination(server, stream="EVENTS", timeout_secs=1)
        try:
            await target.deliver(batch_of([events(1)[0]]))  # a track event: allowed
            with pytest.raises(
                PermanentError, match=r"(?i)permissions violation for publish to .?tributary.events.identify"
            ):
                await target.deliver(batch_of(events(2)))
        finally:
            await target.close()

    asyncio.run(scenario())


def test_an_event_over_the_servers_max_payload_is_refused_before_anything_is_sent(
    jetstream_server: NatsServer,
) -> None:
    big = {**events(1, first=1)[0], "properties": {"blob": "x" * 1_100_000}}  # max_payload: 1 MiB

    async def scenario() -> None:
        target = destination(jetstream_server, stream="EVENTS")
        try:
            with pytest.raises(PayloadTooLarge, match="msg-1"):
                await target.deliver(batch_of([events(1)[0], big]))
            await target.deliver(batch_of(events(1)))  # the connection is still good
        finally:
            await target.close()
        assert await stream_size(jetstream_server, "EVENTS") == 1

    asyncio.run(scenario())


def test_an_event_type_that_cannot_end_a_subject_is_a_permanent_error(jetstream_server: NatsServer) -> None:
    async def scenario() -> None:
        target = destination(jetstream_server, stream="EVENTS")
        with pytest.raises(PermanentError, match="msg-0"):
            await target.deliver(batch_of([{**events(1)[0], "type": "track.>"}]))
        await target.close()

    asyncio.run(scenario())


def test_a_host_resolving_to_a_private_address_is_refused_at_connection() -> None:
    """`validate` checks addresses written in the URL; a host name is checked once resolved."""
    settings = NatsSettings((("localhost", 4222),), PREFIX, None, (), AllowList(), 1.0)

    async def scenario() -> None:
        with pytest.raises(PermanentError, match=r"refused: localhost is a localhost name"):
            await NatsDestination("nats-test", settings).deliver(batch_of(events(1)))

    asyncio.run(scenario())


def test_reconnects_go_to_configured_servers_only_not_to_advertised_ones() -> None:
    settings = NatsSettings(
        (("nats.example.com", DEFAULT_PORT), ("203.0.113.7", 4333)), PREFIX, None, (), AllowList(), 1.0
    )
    target = NatsDestination("nats-test", settings)
    advertised = Server(uri=urlparse("nats://10.0.0.9:4222"), reconnects=0)
    first = Server(uri=urlparse("nats://nats.example.com:4222"), reconnects=3)
    second = Server(uri=urlparse("nats://203.0.113.7:4333"), reconnects=1)

    chosen, wait = target._reconnect_to_configured_server([advertised, first, second], {})
    assert chosen is second and wait > 0
    chosen, wait = target._reconnect_to_configured_server([advertised, first], {})
    assert chosen is first


# --- Settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ({"url": " "}, "settings.url", "required"),
        ({"url": "http://nats.example.com:4222"}, "settings.url", "nats://host:port"),
        ({"url": "nats://user:secret@nats.example.com"}, "settings.url", "credentials"),
        ({"url": "nats://nats.example.com:99999"}, "settings.url", "not a URL"),
        ({"url": "nats://nats.example.com,nats://10.1.2.3:4222"}, "settings.url", "10.1.2.3"),
        ({"url": "nats://127.0.0.1:4222"}, "settings.url", "settings.allow"),
        ({"url": "nats://[::1]:4222"}, "settings.url", "::1 is loopback"),
        ({"url": "nats://169.254.169.254"}, "settings.url", "cloud metadata"),
        ({"url": "nats://0x7f000001:4222"}, "settings.url", "(127.0.0.1) is loopback"),
        ({"url": "nats://localhost:4222"}, "settings.url", "localhost name"),
        ({"subject_prefix": "events.*"}, "settings.subject_prefix", "wildcards"),
        ({"subject_prefix": "events..x"}, "settings.subject_prefix", "dot-separated"),
        ({"subject_prefix": "$JS.API.STREAM"}, "settings.subject_prefix", "system subject"),
        ({"stream": "my.stream"}, "settings.stream", "stream name"),
        ({"timeout_secs": 0}, "settings.timeout_secs", "seconds"),
        ({"timeout_secs": "5"}, "settings.timeout_secs", "seconds"),
        ({"allow": "127.0.0.1"}, "settings.allow", "list"),
        ({"allow": ["not a host!"]}, "settings.allow[0]", "neither a host name"),
        ({"subject": "x"}, "settings.subject", "unknown"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(settings: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        NatsKind().validate({"url": "nats://nats.example.com", **settings})
    assert raised.value.field == field
    assert message in raised.value.message


def test_settings_are_normalised_and_allow_opens_private_networks() -> None:
    kind = NatsKind()
    assert kind.validate({"url": "nats://NATS.example.com, nats://10.1.2.3:4333", "allow": ["10.0.0.0/8"]}) == {
        "url": "nats://nats.example.com:4222,nats://10.1.2.3:4333",
        "subject_prefix": "tributary.events",
        "timeout_secs": 5.0,
        "allow": ["10.0.0.0/8"],
    }
    assert kind.validate({"url": "nats://[fd00::5]:4222", "allow": ["fd00::/8"], "stream": "EVENTS"})["stream"] == (
        "EVENTS"
    )


# --- Measurement ---------------------------------------------------------------------------------

MEASURED_EVENTS = 2000


def test_measure_pipelined_against_one_round_trip_per_event(jetstream_server: NatsServer) -> None:
    """Not an assertion on speed: prints events/s both ways (pytest -s) for the same events."""

    async def scenario() -> tuple[float, float]:
        sent = events(MEASURED_EVENTS)
        target = destination(jetstream_server, stream="EVENTS")
        await target.deliver(batch_of(events(1, first=10**6)))  # connected, stream made
        started = time.perf_counter()
        await target.deliver(batch_of(sent))
        pipelined = time.perf_counter() - started
        await target.close()

        client = await nats.connect(jetstream_server.url)
        jetstream = client.jetstream()
        started = time.perf_counter()
        for event in sent:
            headers = {"Nats-Msg-Id": "sequential-" + event["messageId"]}
            await jetstream.publish(f"{PREFIX}.{event['type']}", orjson.dumps(event), headers=headers)
        sequential = time.perf_counter() - started
        await client.close()
        assert await stream_size(jetstream_server, "EVENTS") == 1 + 2 * MEASURED_EVENTS
        return pipelined, sequential

    pipelined, sequential = asyncio.run(scenario())
    print(
        f"\nnats: {MEASURED_EVENTS} events pipelined {MEASURED_EVENTS / pipelined:,.0f}/s, "
        f"one round trip each {MEASURED_EVENTS / sequential:,.0f}/s ({sequential / pipelined:.1f}x)"
    )
