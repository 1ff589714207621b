"""The `webhook` destination kind: each batch is POSTed, as the engine's JSON array, to a URL.

Requests are signed the Standard Webhooks way (signing.py) over exactly the bytes sent, with
`webhook-id` = the batch's stable delivery id, so a receiver can verify and deduplicate retries.
The receiver's answer is classified for the delivery worker, which owns retries and dead
letters: 2xx delivered; 408, 429, 5xx, timeouts and broken connections retryable (honouring
`Retry-After`); 413 too large (the worker splits the batch); any other answer permanent.

A deletion notice (deletion.py) is sent the same way, as a batch of its events (the person's
`Audience Exited` events, then the `delete` event): the receiver verifies and reads it like any
other delivery.

Every request, and every redirect target, passes the SSRF policy (addresses.py) at delivery as
well as at configuration: aiohttp never follows redirects itself, this module follows at most
three, each checked, and the session's resolver refuses names that now resolve to a refused
address. Extra headers (which may hold a receiver's credentials) are sent only to the
configured origin. One time budget (`timeout_secs`) covers the whole delivery, redirects and
error bodies included, and at most 64 KiB of an error body is read: a hanging, slow-dripping
or flooding receiver costs a bounded time and memory, never a stuck worker.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from functools import cached_property
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from yarl import URL

from cdp_server.destinations.addresses import (
    AddressRefused,
    AllowList,
    GuardedResolver,
    ResolveAddresses,
    check_target,
    check_url,
    parse_http_url,
    resolve_addresses,
)
from cdp_server.destinations.base import (
    Batch,
    ConfigError,
    JsonObject,
    PayloadTooLarge,
    PermanentError,
    RetryableError,
)
from cdp_server.destinations.deletion import DeletionNotice
from cdp_server.destinations.signing import new_secret, sign, validate_secret

DEFAULT_TIMEOUT_SECS = 10.0
MIN_TIMEOUT_SECS = 1.0
MAX_TIMEOUT_SECS = 120.0
MAX_SECRETS = 2  # the current one and, during a rotation, the next
MAX_REDIRECTS = 3
MAX_ERROR_BODY_BYTES = 64 * 1024
REASON_BODY_CHARS = 200
# 301/302 are re-POSTed like 307/308: a webhook is delivered only when its POST gets a 2xx.
FOLLOWED_REDIRECTS = frozenset({301, 302, 307, 308})
# Overridable by settings.headers. Identity encoding: the bound on error bodies is on their bytes.
DEFAULT_HEADERS = {"user-agent": "Tributary-Webhooks/1", "accept-encoding": "identity"}
KNOWN_SETTINGS = ("url", "secrets", "headers", "timeout_secs", "allow")
# Set by the webhook itself: a user's value would break the signature or the framing.
RESERVED_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding", "host", "connection"})
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# A delivery id usable as is in the webhook-id header (visible ASCII).
HEADER_SAFE_ID = re.compile(r"[\x21-\x7e]{1,256}")

Clock = Callable[[], float]


@dataclass(frozen=True)
class WebhookSettings:
    """A webhook destination's settings, checked (without DNS: `WebhookKind.validate` adds it)."""

    url: URL
    secrets: tuple[str, ...]
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_secs: float = DEFAULT_TIMEOUT_SECS
    allow_entries: tuple[str, ...] = ()

    @cached_property
    def allow(self) -> AllowList:
        return AllowList.parse(self.allow_entries)

    @classmethod
    def parse(cls, settings: Mapping[str, Any], *, generate_secret: bool = False) -> WebhookSettings:
        """Raises `ConfigError` naming the first bad field. Without `generate_secret`, secrets
        are required (a destination built with a secret nobody knows could not be verified)."""
        if not isinstance(settings, Mapping):
            raise ConfigError("settings", "must be an object")
        for key in settings:
            if key not in KNOWN_SETTINGS:
                raise ConfigError(f"settings.{key}", f"unknown setting (known: {', '.join(KNOWN_SETTINGS)})")
        return cls(
            url=_parse_url(settings.get("url")),
            secrets=_parse_secrets(settings.get("secrets"), generate_secret),
            headers=_parse_headers(settings.get("headers")),
            timeout_secs=_parse_timeout(settings.get("timeout_secs")),
            allow_entries=_parse_allow(settings.get("allow")),
        )

    def normalised(self) -> JsonObject:
        return {
            "url": str(self.url),
            "secrets": list(self.secrets),
            "headers": dict(self.headers),
            "timeout_secs": self.timeout_secs,
            "allow": list(self.allow_entries),
        }


def _parse_url(value: Any) -> URL:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("settings.url", "is required: the http(s) URL to POST events to")
    try:
        return parse_http_url(value)
    except ValueError as error:
        raise ConfigError("settings.url", str(error)) from None


def _parse_secrets(value: Any, generate: bool) -> tuple[str, ...]:
    if value is None:
        if generate:
            return (new_secret(),)
        raise ConfigError("settings.secrets", "is required")
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ConfigError("settings.secrets", "must be a list of whsec_ secrets")
    if not 1 <= len(value) <= MAX_SECRETS:
        raise ConfigError("settings.secrets", f"holds 1 or {MAX_SECRETS} secrets (two while rotating)")
    for index, secret in enumerate(value):
        try:
            validate_secret(secret)
        except ValueError as error:
            raise ConfigError(f"settings.secrets[{index}]", str(error)) from None
    if len(set(value)) != len(value):
        raise ConfigError("settings.secrets", "holds the same secret twice")
    return tuple(value)


def _parse_headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("settings.headers", "must be an object of header names to string values")
    headers: dict[str, str] = {}
    for name, header_value in value.items():
        if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
            raise ConfigError("settings.headers", f"{name!r} is not a valid header name")
        if name.lower() in RESERVED_HEADERS or name.lower().startswith("webhook-"):
            raise ConfigError(f"settings.headers.{name}", "is set by the webhook itself")
        if not isinstance(header_value, str) or any(c in header_value for c in "\r\n\0"):
            raise ConfigError(f"settings.headers.{name}", "must be a string without line breaks")
        headers[name] = header_value
    return headers


def _parse_timeout(value: Any) -> float:
    if value is None:
        return DEFAULT_TIMEOUT_SECS
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError("settings.timeout_secs", "must be a number of seconds")
    if not MIN_TIMEOUT_SECS <= value <= MAX_TIMEOUT_SECS:
        raise ConfigError("settings.timeout_secs", f"must be {MIN_TIMEOUT_SECS:g} to {MAX_TIMEOUT_SECS:g} seconds")
    return float(value)


def _parse_allow(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ConfigError("settings.allow", "must be a list of host names, addresses and CIDRs")
    AllowList.parse(value)  # raises ConfigError naming the bad entry
    return tuple(value)


class WebhookKind:
    """The `webhook` destination kind. `resolve` (configuration-time DNS) and `clock` (the
    signature's timestamp) are injectable for tests."""

    name = "webhook"

    def __init__(self, *, resolve: ResolveAddresses = resolve_addresses, clock: Clock = time.time) -> None:
        self._resolve = resolve
        self._clock = clock

    def validate(self, settings: Mapping[str, Any]) -> JsonObject:
        """The normalised settings (a secret generated if none was given); `ConfigError` if the
        settings are invalid or the URL's host is refused by the SSRF policy now."""
        parsed = WebhookSettings.parse(settings, generate_secret=True)
        check_url(str(parsed.url), parsed.allow, field="settings.url", resolve=self._resolve)
        return parsed.normalised()

    def create(self, name: str, settings: Mapping[str, Any]) -> WebhookDestination:
        """A destination from validated settings (no DNS here: delivery checks addresses)."""
        return WebhookDestination(name, WebhookSettings.parse(settings), clock=self._clock)


KIND = WebhookKind()


class WebhookDestination:
    """POSTs each batch to one URL. `resolver` replaces aiohttp's DNS lookup (tests); the SSRF
    guard wraps it either way."""

    def __init__(
        self,
        name: str,
        settings: WebhookSettings,
        *,
        clock: Clock = time.time,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._allow = settings.allow
        self._clock = clock
        self._resolver = GuardedResolver(self._allow, resolver)
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> aiohttp.ClientSession:
        """The destination's session, made on first use inside the running loop."""
        loop = asyncio.get_running_loop()
        if self._session is not None and self._session_loop is not loop:
            raise RuntimeError(f"webhook destination {self.name!r} is used from a second event loop")
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=self._resolver)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),  # deliver() bounds the whole delivery
                trust_env=False,  # no proxy from the environment: the policy checks the real target
                auto_decompress=False,  # the 64 KiB bound on error bodies is on the bytes received
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._session_loop = loop
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._session_loop = None
        await self._resolver.close()

    async def deliver(self, batch: Batch) -> None:
        """Delivered when this returns; raises `RetryableError`, `PayloadTooLarge` or
        `PermanentError` otherwise."""
        body = batch.raw
        signed = sign(self.settings.secrets, webhook_id_of(batch), int(self._clock()), body)
        own_headers = {"content-type": "application/json", **signed}
        url = self.settings.url
        try:
            async with asyncio.timeout(self.settings.timeout_secs):
                for _ in range(MAX_REDIRECTS + 1):
                    # Extra headers may carry the receiver's credentials: never to another origin.
                    same_origin = url.origin() == self.settings.url.origin()
                    extra = self.settings.headers if same_origin else {}
                    headers = {**DEFAULT_HEADERS, **extra, **own_headers}
                    redirect = await self._post(check_target(url, self._allow), headers, body)
                    if redirect is None:
                        return
                    url = redirect
                raise PermanentError(f"more than {MAX_REDIRECTS} redirects from {host_and_port(self.settings.url)}")
        except TimeoutError:
            raise RetryableError(
                f"timeout after {self.settings.timeout_secs:g}s posting to {host_and_port(url)}"
            ) from None
        except AddressRefused as refused:
            raise PermanentError(str(refused)) from None
        except aiohttp.ClientConnectorDNSError as error:
            if isinstance(error.os_error, AddressRefused):
                raise PermanentError(str(error.os_error)) from None
            raise RetryableError(f"DNS lookup of {url.host} failed: {error.os_error}") from None
        except aiohttp.ClientConnectorError as error:
            raise RetryableError(f"cannot connect to {host_and_port(url)}: {error.os_error}") from None
        except aiohttp.InvalidURL as error:
            raise PermanentError(f"invalid URL {error}") from None
        except aiohttp.ServerDisconnectedError:
            raise RetryableError(f"{host_and_port(url)} closed the connection without an answer") from None
        except aiohttp.ClientOSError as error:
            raise RetryableError(f"connection to {host_and_port(url)} broken: {error.strerror or error}") from None
        except aiohttp.ClientError as error:
            # Broken responses and the like: the receiver may do better next time.
            raise RetryableError(f"{type(error).__name__} from {host_and_port(url)}: {error}") from None

    async def delete(self, notice: DeletionNotice) -> None:
        """Sends the notice's events exactly as `deliver` sends a batch (one signed POST, same errors), except that
        a 413 is answered here, not by the worker: the events go again in halves, in order, so that the `delete`
        event still arrives last; a single event that is still too large is a `PermanentError`."""
        events = [orjson.loads(event) for event in notice.events]
        await self._deliver_in_order(Batch.of_events(self.name, events, [event["messageId"] for event in events]))

    async def _deliver_in_order(self, batch: Batch) -> None:
        try:
            await self.deliver(batch)
        except PayloadTooLarge as too_large:
            if len(batch) == 1:
                raise PermanentError(too_large.reason) from None
            for half in batch.split():
                await self._deliver_in_order(half)

    async def _post(self, url: URL, headers: Mapping[str, str], body: bytes) -> URL | None:
        """None once delivered, or the redirect's target (checked); raises for any other answer."""
        async with self._client().post(url, data=body, headers=headers, allow_redirects=False) as response:
            status = response.status
            if 200 <= status < 300:
                return None
            if status in FOLLOWED_REDIRECTS and "Location" in response.headers:
                return self._redirect_target(url, response.headers["Location"], status)
            detail = await read_detail(response)
            reason = f"HTTP {status} from {host_and_port(url)}" + (f": {detail}" if detail else "")
            if status == 413:
                raise PayloadTooLarge(reason)
            if status in (408, 429) or 500 <= status < 600:
                retry_after = parse_retry_after(response.headers.get("Retry-After"), now=self._clock())
                raise RetryableError(reason, retry_after=retry_after)
            raise PermanentError(reason)

    def _redirect_target(self, url: URL, location: str, status: int) -> URL:
        where = f"HTTP {status} from {host_and_port(url)}"
        try:
            target = url.join(URL(location))
        except ValueError:
            raise PermanentError(f"{where}: redirect to an invalid URL {location[:REASON_BODY_CHARS]!r}") from None
        if url.scheme == "https" and target.scheme == "http":
            raise PermanentError(f"{where}: redirect from https to plain http {target} refused")
        try:
            return check_target(target, self._allow)
        except AddressRefused as refused:
            raise PermanentError(f"{where}: redirect to {target} refused: {refused.why}") from None


def webhook_id_of(batch: Batch) -> str:
    """The batch's delivery id, or a stable digest of it when it cannot be a header value."""
    delivery_id = batch.delivery_id
    if HEADER_SAFE_ID.fullmatch(delivery_id):
        return delivery_id
    return "msg_" + hashlib.blake2b(delivery_id.encode(), digest_size=16).hexdigest()


def host_and_port(url: URL) -> str:
    host = url.raw_host or ""
    return f"[{host}]:{url.port}" if ":" in host else f"{host}:{url.port}"


async def read_detail(response: aiohttp.ClientResponse) -> str:
    """The start of an error body, for the reason: at most 64 KiB read, 200 characters kept."""
    chunks: list[bytes] = []
    size = 0
    while size < MAX_ERROR_BODY_BYTES:
        chunk = await response.content.read(MAX_ERROR_BODY_BYTES - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return " ".join(text.split())[:REASON_BODY_CHARS]


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """`Retry-After` in seconds from `now`: delta-seconds or an HTTP date; negatives become 0,
    unreadable values None (the worker's own backoff then applies)."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
