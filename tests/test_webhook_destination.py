"""The webhook destination against a real, fault-injecting receiver on 127.0.0.1.

Each answer of the receiver (tests/webhook_sink.py) must become the outcome the delivery worker
acts on; signatures are checked with the independent `standardwebhooks` package, so a mistake
shared by our signer and our own verifier could not hide."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from ipaddress import ip_address

import pytest
import standardwebhooks
from aiohttp.abc import AbstractResolver, ResolveResult
from webhook_sink import Reply, WebhookSink
from yarl import URL

from cdp_server.destinations.base import (
    Batch,
    ConfigError,
    DeliveryError,
    PayloadTooLarge,
    PermanentError,
    RetryableError,
)
from cdp_server.destinations.signing import new_secret, sign, validate_secret
from cdp_server.destinations.webhook import (
    KIND,
    MAX_ERROR_BODY_BYTES,
    WebhookDestination,
    WebhookKind,
    WebhookSettings,
    parse_retry_after,
)

pytest_plugins = ["sinks_conftest"]

TIMEOUT_SECS = 0.5
# Bytes exactly as the engine might encode them: spacing and non-ASCII must survive untouched.
RAW_EVENTS = '[{"messageId":"m-1","type":"track","properties":{"name":"Zoë ☕"}} ,\n{"messageId":"m-2"}]'.encode()


def batch_of(*message_ids: str, raw: bytes = RAW_EVENTS) -> Batch:
    return Batch("hooks", raw, list(message_ids))


def destination_for(
    sink: WebhookSink,
    *,
    secrets: Sequence[str] | None = None,
    headers: dict[str, str] | None = None,
    timeout_secs: float = TIMEOUT_SECS,
    clock: Callable[[], float] = time.time,
    url: str | None = None,
) -> WebhookDestination:
    """A destination posting to the sink, which the allow-list admits (127.0.0.1)."""
    settings = WebhookSettings(
        url=URL(url or sink.url),
        secrets=tuple(secrets or (new_secret(),)),
        headers=headers or {},
        timeout_secs=timeout_secs,
        allow_entries=("127.0.0.1",),
    )
    return WebhookDestination("hooks", settings, clock=clock)


def outcomes(destination: WebhookDestination, *batches: Batch) -> list[DeliveryError | None]:
    """Delivers the batches in turn on one loop (one session); None for each delivered one."""

    async def run() -> list[DeliveryError | None]:
        results: list[DeliveryError | None] = []
        try:
            for batch in batches:
                try:
                    await destination.deliver(batch)
                    results.append(None)
                except DeliveryError as error:
                    results.append(error)
        finally:
            await destination.close()
        return results

    return asyncio.run(run())


def outcome(destination: WebhookDestination, batch: Batch | None = None) -> DeliveryError | None:
    return outcomes(destination, batch or batch_of("m-1"))[0]


def test_2xx_is_delivered(webhook_sink: WebhookSink) -> None:
    webhook_sink.script([200, 201, 204])
    assert outcomes(destination_for(webhook_sink), *[batch_of("m-1")] * 3) == [None, None, None]
    assert len(webhook_sink.requests) == 3


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses(webhook_sink: WebhookSink, status: int) -> None:
    webhook_sink.respond(Reply(status, body=b"try  later\n please"))
    error = outcome(destination_for(webhook_sink))
    assert isinstance(error, RetryableError)
    assert error.reason == f"HTTP {status} from {webhook_sink.address}: try later please"
    assert error.retry_after is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_4xx_are_permanent(webhook_sink: WebhookSink, status: int) -> None:
    webhook_sink.respond(Reply(status, body=b'{"error":"no"}'))
    error = outcome(destination_for(webhook_sink))
    assert type(error) is PermanentError
    assert error.reason == f'HTTP {status} from {webhook_sink.address}: {{"error":"no"}}'


def test_413_is_payload_too_large(webhook_sink: WebhookSink) -> None:
    webhook_sink.respond(413)
    error = outcome(destination_for(webhook_sink))
    assert type(error) is PayloadTooLarge
    assert error.reason == f"HTTP 413 from {webhook_sink.address}: error 413"


@pytest.mark.parametrize("status", [300, 303])
def test_redirects_that_cannot_be_followed_are_permanent(webhook_sink: WebhookSink, status: int) -> None:
    webhook_sink.respond(Reply(status, headers={"Location": "/elsewhere"}))
    error = outcome(destination_for(webhook_sink))
    assert type(error) is PermanentError
    assert error.reason.startswith(f"HTTP {status} from {webhook_sink.address}")


def test_a_redirect_without_location_is_permanent(webhook_sink: WebhookSink) -> None:
    webhook_sink.respond(302)
    assert type(outcome(destination_for(webhook_sink))) is PermanentError


def test_retry_after_in_seconds(webhook_sink: WebhookSink) -> None:
    webhook_sink.script([Reply(429, headers={"Retry-After": "7"}), Reply(503, headers={"Retry-After": "-3"})])
    first, second = outcomes(destination_for(webhook_sink), batch_of("m-1"), batch_of("m-1"))
    assert isinstance(first, RetryableError) and first.retry_after == 7
    assert isinstance(second, RetryableError) and second.retry_after == 0


def test_retry_after_as_an_http_date_is_measured_from_the_clock(webhook_sink: WebhookSink) -> None:
    now = 1_900_000_000.0
    webhook_sink.script(
        [
            Reply(503, headers={"Retry-After": email.utils.formatdate(now + 90, usegmt=True)}),
            Reply(503, headers={"Retry-After": email.utils.formatdate(now - 90, usegmt=True)}),
        ]
    )
    first, second = outcomes(destination_for(webhook_sink, clock=lambda: now), batch_of("m-1"), batch_of("m-1"))
    assert isinstance(first, RetryableError) and first.retry_after == 90
    assert isinstance(second, RetryableError) and second.retry_after == 0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), (" 5 ", 5.0), ("1.5", 1.5), ("-1", 0.0), ("soon", None), ("nan", None), ("", None), (None, None)],
)
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=0.0) == seconds


def test_a_script_of_503_twice_then_200(webhook_sink: WebhookSink) -> None:
    webhook_sink.script([503, 503])
    results = outcomes(destination_for(webhook_sink), *[batch_of("m-1")] * 3)
    assert [type(result) for result in results] == [RetryableError, RetryableError, type(None)]


def test_a_hanging_receiver_times_out_as_retryable(webhook_sink: WebhookSink) -> None:
    webhook_sink.respond(Reply.hang())
    started = time.monotonic()
    error = outcome(destination_for(webhook_sink))
    elapsed = time.monotonic() - started
    assert isinstance(error, RetryableError)
    assert error.reason == f"timeout after {TIMEOUT_SECS:g}s posting to {webhook_sink.address}"
    assert TIMEOUT_SECS <= elapsed < TIMEOUT_SECS + 1.0
    assert len(webhook_sink.requests) == 1  # it did arrive: a timeout is not a refusal


def test_a_slow_drip_is_bounded_by_the_whole_timeout(webhook_sink: WebhookSink) -> None:
    # Each byte comes sooner than any per-read timeout would fire; only a total bound stops it.
    webhook_sink.respond(Reply.drip(interval=0.05))
    started = time.monotonic()
    error = outcome(destination_for(webhook_sink))
    assert isinstance(error, RetryableError) and error.reason.startswith("timeout after")
    assert time.monotonic() - started < TIMEOUT_SECS + 1.0


def test_a_reset_connection_is_retryable(webhook_sink: WebhookSink) -> None:
    webhook_sink.respond(Reply.reset())
    error = outcome(destination_for(webhook_sink))
    assert isinstance(error, RetryableError)
    assert webhook_sink.address in error.reason


def test_a_refused_connection_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with WebhookSink.start() as unused:
        error = outcome(destination_for(unused, url=f"http://127.0.0.1:{closed_port}/hook"))
    assert isinstance(error, RetryableError)
    assert error.reason.startswith(f"cannot connect to 127.0.0.1:{closed_port}")


class UnknownNames(AbstractResolver):
    """Fake DNS that knows no name (no packet leaves the machine)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        pass


def test_a_dns_failure_is_retryable() -> None:
    settings = WebhookSettings(
        url=URL("http://gone.test/hook"), secrets=(new_secret(),), timeout_secs=1.0, allow_entries=("gone.test",)
    )
    error = outcome(WebhookDestination("hooks", settings, resolver=UnknownNames()))
    assert isinstance(error, RetryableError)
    assert error.reason.startswith("DNS lookup of gone.test failed")


def test_at_most_64_kib_of_an_error_body_is_read(webhook_sink: WebhookSink) -> None:
    # The body announces 1 GiB and stops after 64 KiB + 1: reading on would wait for the timeout.
    webhook_sink.respond(Reply(500, body=b"x" * (MAX_ERROR_BODY_BYTES + 1), content_length=1 << 30))
    started = time.monotonic()
    error = outcome(destination_for(webhook_sink, timeout_secs=5.0))
    assert isinstance(error, RetryableError)
    assert error.reason == f"HTTP 500 from {webhook_sink.address}: " + "x" * 200
    assert time.monotonic() - started < 2.0


def test_the_body_sent_is_exactly_the_batch(webhook_sink: WebhookSink) -> None:
    assert outcome(destination_for(webhook_sink, headers={"Authorization": "Bearer t"})) is None
    (request,) = webhook_sink.requests
    assert request.method == "POST" and request.path == "/hook"
    assert request.body == RAW_EVENTS
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == "Bearer t"


def test_signatures_verify_with_either_secret_and_the_injected_clock(webhook_sink: WebhookSink) -> None:
    current, next_one = new_secret(), new_secret()
    now = int(time.time()) - 42  # within the verifiers' 5-minute tolerance, yet not "now"
    assert outcome(destination_for(webhook_sink, secrets=[current, next_one], clock=lambda: now)) is None
    (request,) = webhook_sink.requests
    assert request.headers["webhook-timestamp"] == str(now)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (current, next_one):
        assert standardwebhooks.Webhook(secret).verify(request.body, request.headers) == [
            {"messageId": "m-1", "type": "track", "properties": {"name": "Zoë ☕"}},
            {"messageId": "m-2"},
        ]
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError, match="No matching signature"):
        standardwebhooks.Webhook(new_secret()).verify(request.body, request.headers)
    altered = {**request.headers, "webhook-id": "another"}
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(current).verify(request.body, altered)


def test_the_timestamp_comes_from_the_clock(webhook_sink: WebhookSink) -> None:
    an_hour_ago = time.time() - 3600
    assert outcome(destination_for(webhook_sink, clock=lambda: an_hour_ago)) is None
    (request,) = webhook_sink.requests
    assert request.headers["webhook-timestamp"] == str(int(an_hour_ago))
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError, match="too old"):
        standardwebhooks.Webhook(new_secret()).verify(request.body, request.headers)


def test_webhook_id_is_the_message_id_or_a_stable_batch_id(webhook_sink: WebhookSink) -> None:
    one, many, many_again, other = batch_of("m-1"), batch_of("m-1", "m-2"), batch_of("m-1", "m-2"), batch_of("m-2")
    webhook_sink.script([503])  # the first attempt of `many` fails: its retry keeps the id
    outcomes(destination_for(webhook_sink), one, many, many_again, other)
    ids = [request.headers["webhook-id"] for request in webhook_sink.requests]
    assert ids[0] == "m-1"
    assert ids[1].startswith("batch_") and ids[1] == ids[2] == many.delivery_id
    assert ids[3] == "m-2"


def test_a_message_id_unfit_for_a_header_gets_a_stable_digest(webhook_sink: WebhookSink) -> None:
    odd = batch_of("line\nbreak é")
    outcomes(destination_for(webhook_sink), odd, odd)
    first, second = (request.headers["webhook-id"] for request in webhook_sink.requests)
    assert first == second and first.startswith("msg_")


def test_a_same_origin_redirect_is_followed_with_the_same_signed_request(webhook_sink: WebhookSink) -> None:
    webhook_sink.script([Reply.redirect("/moved", status=308), Reply.redirect("/moved-again", status=302)])
    destination = destination_for(webhook_sink, headers={"Authorization": "Bearer t"})
    assert outcome(destination) is None
    first, second, third = webhook_sink.requests
    assert [request.path for request in webhook_sink.requests] == ["/hook", "/moved", "/moved-again"]
    assert first.body == second.body == third.body == RAW_EVENTS
    assert first.headers["webhook-signature"] == third.headers["webhook-signature"]
    assert third.headers["authorization"] == "Bearer t"


def test_extra_headers_are_not_sent_to_another_origin(webhook_sinks: Callable[[], WebhookSink]) -> None:
    first, second = webhook_sinks(), webhook_sinks()
    first.respond(Reply.redirect(second.url, status=307))
    assert outcome(destination_for(first, headers={"Authorization": "Bearer t"})) is None
    (moved,) = second.requests
    assert "authorization" not in moved.headers
    assert moved.body == RAW_EVENTS and "webhook-signature" in moved.headers


def test_more_than_three_redirects_are_permanent(webhook_sink: WebhookSink) -> None:
    webhook_sink.respond(Reply.redirect("/again", status=307))
    error = outcome(destination_for(webhook_sink))
    assert isinstance(error, PermanentError) and "more than 3 redirects" in error.reason
    assert len(webhook_sink.requests) == 4


# Settings.


def test_validate_generates_a_secret_and_fills_defaults() -> None:
    settings = WebhookKind(resolve=lambda host: [ip_address("93.184.215.14")]).validate(
        {"url": "https://hooks.example.com/in"}
    )
    assert settings == {
        "url": "https://hooks.example.com/in",
        "secrets": settings["secrets"],
        "headers": {},
        "timeout_secs": 10.0,
        "allow": [],
    }
    (secret,) = settings["secrets"]
    assert len(validate_secret(secret)) == 32
    standardwebhooks.Webhook(secret)  # the receiver's library takes it as is
    destination = KIND.create("hooks", settings)
    assert destination.settings.secrets == (secret,)


def test_validate_keeps_given_settings_and_admits_an_allowed_loopback(webhook_sink: WebhookSink) -> None:
    secrets = [new_secret(), new_secret()]
    given = {
        "url": webhook_sink.url,
        "secrets": secrets,
        "headers": {"X-Team": "growth"},
        "timeout_secs": 3,
        "allow": ["127.0.0.1/32"],
    }
    settings = KIND.validate(given)
    assert settings == {**given, "timeout_secs": 3.0}
    assert outcome(KIND.create("hooks", settings)) is None
    assert webhook_sink.requests[0].headers["x-team"] == "growth"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({}, "settings.url"),
        ({"url": 42}, "settings.url"),
        ({"url": "https://hooks.example.com", "secret": "x"}, "settings.secret"),
        ({"url": "https://hooks.example.com", "secrets": []}, "settings.secrets"),
        ({"url": "https://hooks.example.com", "secrets": "whsec_x"}, "settings.secrets"),
        ({"url": "https://hooks.example.com", "secrets": ["whsec_"]}, "settings.secrets[0]"),
        ({"url": "https://hooks.example.com", "secrets": ["sk_abc"]}, "settings.secrets[0]"),
        ({"url": "https://hooks.example.com", "secrets": ["whsec_!!!"]}, "settings.secrets[0]"),
        (
            {"url": "https://hooks.example.com", "headers": {"Webhook-Signature": "x"}},
            "settings.headers.Webhook-Signature",
        ),
        ({"url": "https://hooks.example.com", "headers": {"webhook-id": "x"}}, "settings.headers.webhook-id"),
        (
            {"url": "https://hooks.example.com", "headers": {"Content-Type": "text/plain"}},
            "settings.headers.Content-Type",
        ),
        ({"url": "https://hooks.example.com", "headers": {"X-A": "a\r\nX-B: b"}}, "settings.headers.X-A"),
        ({"url": "https://hooks.example.com", "headers": {"bad name": "x"}}, "settings.headers"),
        ({"url": "https://hooks.example.com", "headers": ["X-A"]}, "settings.headers"),
        ({"url": "https://hooks.example.com", "timeout_secs": 0}, "settings.timeout_secs"),
        ({"url": "https://hooks.example.com", "timeout_secs": 121}, "settings.timeout_secs"),
        ({"url": "https://hooks.example.com", "timeout_secs": "10"}, "settings.timeout_secs"),
        ({"url": "https://hooks.example.com", "timeout_secs": True}, "settings.timeout_secs"),
        ({"url": "https://hooks.example.com", "allow": "127.0.0.1"}, "settings.allow"),
        ({"url": "https://hooks.example.com", "allow": ["127.0.0.1", "a b"]}, "settings.allow[1]"),
    ],
)
def test_validate_names_the_bad_field(settings: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as refused:
        WebhookKind(resolve=lambda host: []).validate(settings)
    assert refused.value.field == field


def test_three_secrets_are_refused() -> None:
    with pytest.raises(ConfigError, match="1 or 2 secrets"):
        KIND.validate({"url": "https://hooks.example.com", "secrets": [new_secret() for _ in range(3)]})


def test_create_requires_secrets() -> None:
    with pytest.raises(ConfigError) as refused:
        KIND.create("hooks", {"url": "https://hooks.example.com"})
    assert refused.value.field == "settings.secrets"


# Signing, against the reference library's own signer.


def test_our_signature_is_the_reference_signature() -> None:
    secret, body = new_secret(), RAW_EVENTS
    headers = sign([secret], "msg_1", 1_700_000_000, body)
    expected = standardwebhooks.Webhook(secret).sign("msg_1", datetime.fromtimestamp(1_700_000_000, UTC), body.decode())
    assert headers == {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": expected}


def test_new_secrets_differ_and_validate() -> None:
    first, second = new_secret(), new_secret()
    assert first != second and first.startswith("whsec_")
    assert len(validate_secret(first)) == 32
    with pytest.raises(ValueError, match="24 to 64 bytes"):
        validate_secret("whsec_" + "QUJD")  # 3 bytes
