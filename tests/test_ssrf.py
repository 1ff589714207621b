"""The SSRF policy of destinations (cdp_server/destinations/addresses.py).

Configuration-time refusals are decided by the address check alone: the resolver given to it
fails the test if it is ever called for a literal or a localhost name, and nothing connects.
Delivery-time refusals use loopback targets only (sinks on 127.0.0.1) and check that the
forbidden target recorded nothing. Names other than `localhost` resolve through a fake resolver
that answers 127.0.0.1: no DNS packet leaves the machine."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from ipaddress import ip_address

import pytest
from aiohttp import ThreadedResolver
from aiohttp.abc import AbstractResolver, ResolveResult
from webhook_sink import Reply, WebhookSink
from yarl import URL

from cdp_server.destinations.addresses import (
    AddressRefused,
    AllowList,
    GuardedResolver,
    IPAddress,
    check_target,
    check_url,
    literal_address,
)
from cdp_server.destinations.base import Batch, ConfigError, PermanentError
from cdp_server.destinations.signing import new_secret
from cdp_server.destinations.webhook import WebhookDestination, WebhookKind, WebhookSettings

pytest_plugins = ["sinks_conftest"]

NO_ALLOW = AllowList()
PUBLIC = ip_address("93.184.215.14")


def no_dns(host: str) -> list[IPAddress]:
    raise AssertionError(f"the policy resolved {host!r}: it should have decided without DNS")


class LoopbackResolver(AbstractResolver):
    """Fake DNS: every name in `names` answers 127.0.0.1; any other name fails to resolve."""

    def __init__(self, *names: str) -> None:
        self.names = set(names)
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ResolveResult(hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0, flags=0)]

    async def close(self) -> None:
        pass


CONFIGURATION_CORPUS = [
    ("http://127.0.0.1/", "loopback"),
    ("http://localhost/", "localhost name"),
    ("http://LocalHost./", "localhost name"),
    ("http://api.localhost/", "localhost name"),
    ("http://[::1]/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://127.0.0.1./", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://10.0.0.1/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
    ("http://[64:ff9b::a9fe:a9fe]/", "cloud metadata"),
    ("http://[2002:7f00:1::]/", "loopback"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://[fc00::1]/", "private"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://1.2.3.4.5/", "not a valid IPv4 address"),
    ("http://127.0.0.256/", "not a valid IPv4 address"),
    ("file:///etc/passwd", "scheme 'file'"),
    ("ftp://x", "scheme 'ftp'"),
    ("gopher://127.0.0.1:25/", "scheme 'gopher'"),
    ("//127.0.0.1/", "scheme"),
    ("http:///path-without-host", "no host"),
    ("http://user@127.0.0.1", "credentials"),
    ("http://example.com@127.0.0.1/", "credentials"),
    ("http://user:pass@example.com/", "credentials"),
]


@pytest.mark.parametrize(("url", "why"), CONFIGURATION_CORPUS)
def test_configuration_refuses_the_corpus_without_dns(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_url(url, NO_ALLOW, resolve=no_dns)
    assert refused.value.field == "settings.url"
    assert why in refused.value.message


@pytest.mark.parametrize("url", [url for url, _ in CONFIGURATION_CORPUS[:20]])
def test_the_webhook_kind_refuses_the_corpus_at_validation(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        WebhookKind(resolve=no_dns).validate({"url": url})
    assert refused.value.field == "settings.url"


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("10.0.0.1.", "10.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
    ],
)
def test_literal_addresses_are_read_as_the_socket_layer_reads_them(host: str, address: str) -> None:
    assert literal_address(host) == ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "0x0x1.example", "a-1.b", "localhost", "0x1g"])
def test_names_are_not_literals(host: str) -> None:
    assert literal_address(host) is None


@pytest.mark.parametrize(
    "host", ["1.2.3.4.5", "08.0.0.1", "1.0x1g.1", "256.1.1.1", "4294967296", "1_0.0.0.1", "+1.0.0.1"]
)
def test_numeric_hosts_that_are_not_addresses_are_errors(host: str) -> None:
    with pytest.raises(ValueError):
        literal_address(host)


def test_a_name_is_refused_if_any_of_its_addresses_is_refused() -> None:
    answers = {"mixed.test": [PUBLIC, ip_address("10.1.2.3")], "public.test": [PUBLIC]}
    with pytest.raises(ConfigError, match=r"mixed\.test resolves to 10\.1\.2\.3 is private"):
        check_url("https://mixed.test/hook", NO_ALLOW, resolve=answers.__getitem__)
    assert check_url("https://public.test/hook", NO_ALLOW, resolve=answers.__getitem__) == URL(
        "https://public.test/hook"
    )


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def fails(host: str) -> list[IPAddress]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(ConfigError, match="does not resolve") as refused:
        check_url("https://typo.test/", NO_ALLOW, field="settings.endpoint", resolve=fails)
    assert refused.value.field == "settings.endpoint"
    with pytest.raises(ConfigError, match="does not resolve"):
        check_url("https://empty.test/", NO_ALLOW, resolve=lambda host: [])


@pytest.mark.parametrize(
    ("entries", "url"),
    [
        (["127.0.0.1"], "http://127.0.0.1:8080/hook"),
        (["127.0.0.1/32"], "http://127.0.0.1/"),
        (["127.0.0.0/8"], "http://0x7f000001/"),
        (["127.0.0.0/8"], "http://127.1/"),
        (["127.0.0.1"], "http://[::ffff:127.0.0.1]/"),
        (["::1"], "http://[::1]:9/"),
        (["[fe80::1]"], "http://[fe80::1]/"),
        (["10.0.0.0/8"], "http://10.20.30.40/"),
        (["localhost"], "http://localhost:8000/"),
        (["hooks.internal"], "http://hooks.internal/"),
    ],
)
def test_the_allow_list_admits_a_named_host_or_an_enclosing_network(entries: list[str], url: str) -> None:
    assert check_url(url, AllowList.parse(entries), resolve=lambda host: [ip_address("10.0.0.7")])


@pytest.mark.parametrize(
    ("entries", "url"),
    [
        (["127.0.0.1"], "http://127.0.0.2/"),
        (["10.0.0.0/8"], "http://127.0.0.1/"),
        (["127.0.0.1/32"], "http://localhost/"),  # a network admits addresses, not the localhost name
        (["localhost"], "http://api.localhost/"),
        (["::1"], "http://127.0.0.1/"),
    ],
)
def test_the_allow_list_admits_nothing_else(entries: list[str], url: str) -> None:
    with pytest.raises(ConfigError):
        check_url(url, AllowList.parse(entries), resolve=no_dns)


def test_a_name_resolving_inside_an_allowed_network_is_admitted() -> None:
    allow = AllowList.parse(["10.0.0.0/8"])
    assert check_url("http://svc.test/", allow, resolve=lambda host: [ip_address("10.9.9.9")])
    with pytest.raises(ConfigError, match=r"192\.168\.0\.1 is private"):
        check_url("http://svc.test/", allow, resolve=lambda host: [ip_address("10.9.9.9"), ip_address("192.168.0.1")])


@pytest.mark.parametrize("entry", ["", "10.0.0.0/33", "not a host", "http://x/", "1.2.3.4.5", "a/b"])
def test_bad_allow_list_entries_are_refused_naming_the_entry(entry: str) -> None:
    with pytest.raises(ConfigError) as refused:
        AllowList.parse(["127.0.0.1", entry])
    assert refused.value.field == "settings.allow[1]"


# Delivery time.


def loopback_destination(
    url: str, allow: AllowList = NO_ALLOW, resolver: AbstractResolver | None = None
) -> WebhookDestination:
    """A destination built without `validate` (as if its settings were stored before a policy
    change, or its DNS answer changed since)."""
    entries = tuple(sorted(allow.hosts)) + tuple(str(network) for network in allow.networks)
    settings = WebhookSettings(url=URL(url), secrets=(new_secret(),), timeout_secs=2.0, allow_entries=entries)
    return WebhookDestination("ssrf", settings, resolver=resolver)


def deliver_once(destination: WebhookDestination) -> None:
    async def run() -> None:
        try:
            await destination.deliver(Batch("ssrf", b'[{"messageId":"m-1"}]', ["m-1"]))
        finally:
            await destination.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "0x7f000001", "2130706433", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]", "localhost", "[::1]"],
)
def test_delivery_refuses_a_loopback_target_before_connecting(webhook_sink: WebhookSink, host: str) -> None:
    destination = loopback_destination(f"http://{host}:{webhook_sink.port}/hook")
    with pytest.raises(PermanentError, match="address refused") as refused:
        deliver_once(destination)
    assert "loopback" in refused.value.reason
    assert webhook_sink.requests == []


def test_delivery_refuses_a_name_that_now_resolves_to_loopback(webhook_sink: WebhookSink) -> None:
    dns = LoopbackResolver("rebound.test")
    destination = loopback_destination(f"http://rebound.test:{webhook_sink.port}/hook", resolver=dns)
    with pytest.raises(PermanentError, match=r"rebound\.test resolved to 127\.0\.0\.1 is loopback"):
        deliver_once(destination)
    assert dns.asked == ["rebound.test"]  # refused after the lookup, on its answer
    assert webhook_sink.requests == []


def test_the_resolver_guard_refuses_localhost_on_its_real_answer() -> None:
    async def resolve(allow: AllowList) -> list[ResolveResult]:
        guard = GuardedResolver(allow, ThreadedResolver())
        try:
            return await guard.resolve("localhost", 80, socket.AF_INET)
        finally:
            await guard.close()

    with pytest.raises(AddressRefused, match=r"localhost resolved to 127\.0\.0\.1 is loopback"):
        asyncio.run(resolve(NO_ALLOW))
    assert [result["host"] for result in asyncio.run(resolve(AllowList.parse(["127.0.0.1"])))] == ["127.0.0.1"]


def test_the_resolver_guard_judges_legacy_literals_as_addresses() -> None:
    async def resolve() -> list[ResolveResult]:
        return await GuardedResolver(NO_ALLOW, LoopbackResolver()).resolve("0x7f000001", 80)

    with pytest.raises(AddressRefused, match=r"0x7f000001 \(127\.0\.0\.1\) is loopback"):
        asyncio.run(resolve())


def test_a_redirect_to_a_target_outside_the_allow_list_is_refused(webhook_sinks: Callable[[], WebhookSink]) -> None:
    allowed, forbidden = webhook_sinks(), webhook_sinks()
    allowed.respond(Reply.redirect(f"http://127.0.0.1:{forbidden.port}/"))
    destination = loopback_destination(
        f"http://sink.test:{allowed.port}/hook", AllowList.parse(["sink.test"]), LoopbackResolver("sink.test")
    )
    with pytest.raises(PermanentError) as refused:
        deliver_once(destination)
    assert refused.value.reason == (
        f"HTTP 302 from sink.test:{allowed.port}: redirect to http://127.0.0.1:{forbidden.port}/ refused: "
        "127.0.0.1 is loopback"
    )
    assert len(allowed.requests) == 1
    assert forbidden.requests == []


def test_a_redirect_to_a_name_resolving_outside_the_allow_list_is_refused(
    webhook_sinks: Callable[[], WebhookSink],
) -> None:
    allowed, forbidden = webhook_sinks(), webhook_sinks()
    allowed.respond(Reply.redirect(f"http://elsewhere.test:{forbidden.port}/"))
    dns = LoopbackResolver("sink.test", "elsewhere.test")
    destination = loopback_destination(f"http://sink.test:{allowed.port}/hook", AllowList.parse(["sink.test"]), dns)
    with pytest.raises(PermanentError, match=r"elsewhere\.test resolved to 127\.0\.0\.1 is loopback"):
        deliver_once(destination)
    assert forbidden.requests == []


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/", "http://user@sink.test/"])
def test_a_redirect_to_another_scheme_or_userinfo_is_refused(webhook_sink: WebhookSink, location: str) -> None:
    webhook_sink.respond(Reply.redirect(location, status=307))
    destination = loopback_destination(webhook_sink.url, AllowList.parse(["127.0.0.1"]))
    with pytest.raises(PermanentError, match=r"redirect to .* refused"):
        deliver_once(destination)
    assert len(webhook_sink.requests) == 1


def test_check_target_leaves_names_to_the_resolver() -> None:
    assert check_target("https://hooks.example.com/x", NO_ALLOW) == URL("https://hooks.example.com/x")
    with pytest.raises(AddressRefused, match=r"169\.254\.169\.254 is link-local"):
        check_target("http://169.254.169.254/", NO_ALLOW)
