"""Which addresses a destination may reach: the SSRF policy of webhooks (and, later, warehouses).

A destination URL is written by a workspace's admin but fetched by the server, from inside its
network: without a policy, `http://169.254.169.254/` would read the cloud's instance credentials
and `http://127.0.0.1:…` would reach the server's own ports. So a destination may only reach
globally routable unicast addresses, unless its allow-list names the host or an enclosing network.

The policy is applied twice, because DNS answers change between saving and sending (rebinding):
- at configuration, `check_url` parses the URL, recognises every literal IP form the socket layer
  would accept (`0x7f000001`, `2130706433`, `0177.0.0.1`, `127.1`, `[::ffff:127.0.0.1]`), refuses
  `localhost` names, and resolves a host name, refusing it if ANY of its addresses is refused;
- at delivery, `check_target` refuses a literal IP before each request (aiohttp does not resolve
  literals) and `GuardedResolver`, the session's resolver, refuses a name whose fresh DNS answer
  holds a refused address, before any connection is opened. Redirect targets go through
  `check_target` too (the webhook follows redirects itself, never aiohttp).

Literal hosts are parsed like the WHATWG URL standard's IPv4 parser (what browsers and libc's
`inet_aton` accept); a host that ends in a number but is not a valid IPv4 address is refused
rather than guessed at. Membership tests use the stdlib `ipaddress` module only.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from aiohttp import DefaultResolver
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from cdp_server.destinations.base import ConfigError

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
# Resolves a host name to its addresses (configuration time; blocking is fine there).
ResolveAddresses = Callable[[str], list[IPAddress]]

ALLOWED_SCHEMES = ("http", "https")
# RFC 6598 shared address space: carrier-grade NAT, reaches the provider's internal network.
CARRIER_GRADE_NAT = IPv4Network("100.64.0.0/10")
# RFC 6052 well-known NAT64 prefix: the last 32 bits are the IPv4 address actually reached.
NAT64_PREFIX = IPv6Network("64:ff9b::/96")
CLOUD_METADATA = IPv4Address("169.254.169.254")
# A host name once IDNA-encoded by yarl: letters, digits, hyphens, underscores, dots.
HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


class AddressRefused(OSError):
    """A destination's host or address is refused by the SSRF policy.

    An `OSError` so that, raised by the resolver inside aiohttp, it reaches the caller wrapped
    in `aiohttp.ClientConnectorDNSError` (as its `os_error`) instead of being swallowed."""

    def __init__(self, host: str, why: str) -> None:
        super().__init__(f"address refused: {why}")
        self.host = host
        self.why = why


@dataclass(frozen=True)
class AllowList:
    """Hosts and networks a destination may reach although they are not public.

    A host name admits that name whatever it resolves to; an address or CIDR admits the
    addresses it contains, whichever name (or literal form) reaches them."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str], *, field: str = "settings.allow") -> AllowList:
        """`["127.0.0.1/32", "localhost", "::1", "10.1.0.0/16", "[fe80::1]"]`; raises
        `ConfigError(field, …)` for an entry that is neither a host name nor an address/CIDR."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, str) or not entry.strip():
                raise ConfigError(f"{field}[{index}]", "must be a host name, an address or a CIDR")
            text = entry.strip().lower()
            if text.startswith("[") and text.endswith("]"):
                text = text[1:-1]
            try:
                networks.append(ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            try:
                address = literal_address(text)
            except ValueError as error:
                raise ConfigError(f"{field}[{index}]", str(error)) from None
            if address is not None:
                networks.append(ip_network(address))
            elif "/" not in text and HOST_NAME.fullmatch(text.rstrip(".")):
                hosts.add(text.rstrip("."))
            else:
                raise ConfigError(f"{field}[{index}]", f"{entry!r} is neither a host name nor an address or CIDR")
        return cls(frozenset(hosts), tuple(networks))

    def names(self, host: str) -> bool:
        return normalise_host_name(host) in self.hosts

    def contains(self, address: IPAddress) -> bool:
        embedded = embedded_ipv4(address)
        return any(address in network or (embedded is not None and embedded in network) for network in self.networks)


def normalise_host_name(host: str) -> str:
    return host.lower().rstrip(".")


DIGITS_OF_BASE = {16: frozenset("0123456789abcdefABCDEF"), 10: frozenset("0123456789"), 8: frozenset("01234567")}


def _ipv4_number(part: str) -> int | None:
    """One dotted part as `inet_aton` reads it: `0x` hex, leading-zero octal, else decimal."""
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:] or "0", 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    # Checked here because int() also takes "+1", "1_0" and "0x1" (base 16), which libc does not.
    if not digits or not set(digits) <= DIGITS_OF_BASE[base]:
        return None
    return int(digits, base)


def _legacy_ipv4(host: str) -> IPv4Address | None:
    """The WHATWG IPv4 parser: 1 to 4 parts, the last filling the remaining bytes (`127.1`)."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4 or "" in parts:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if None in numbers:
        return None
    *leading, last = (number for number in numbers if number is not None)
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(parts)):
        return None
    value = last
    for position, number in enumerate(leading):
        value += number << (8 * (3 - position))
    return IPv4Address(value)


def _ends_in_number(host: str) -> bool:
    last = host.rstrip(".").rsplit(".", 1)[-1]
    return last.isdigit() or (last[:2].lower() == "0x" and all(c in "0123456789abcdefABCDEF" for c in last[2:]))


def literal_address(host: str) -> IPAddress | None:
    """The address a literal host denotes (any form the socket layer accepts), None for a name.

    Raises ValueError for a host that looks numeric but is no valid address (`1.2.3.4.5`,
    `127.0.0.256`): connecting libraries disagree on those, so none is guessed."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in text:
        try:
            return IPv6Address(text.replace("%25", "%", 1))
        except ValueError:
            raise ValueError(f"{host!r} is not a valid IPv6 address") from None
    if not _ends_in_number(text):
        return None
    address = _legacy_ipv4(text)
    if address is None:
        raise ValueError(f"{host!r} ends in a number but is not a valid IPv4 address")
    return address


def embedded_ipv4(address: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 address carries to (IPv4-mapped, 6to4, NAT64), if any."""
    if isinstance(address, IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64_PREFIX:
        return IPv4Address(address.packed[-4:])
    return None


def address_category(address: IPAddress) -> str | None:
    """Why an address is not public ("loopback", "private", …), or None for a public one."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        category = address_category(embedded)
        return None if category is None else f"{category} (as {embedded})"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address == CLOUD_METADATA:
        return "link-local (the cloud metadata address)"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address in CARRIER_GRADE_NAT:
        return "carrier-grade NAT (shared address space)"
    if address == IPv4Address("255.255.255.255"):
        return "broadcast"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not globally routable"
    return None


def address_refusal(address: IPAddress, allow: AllowList) -> str | None:
    """Why the policy refuses `address` ("127.0.0.1 is loopback"), None when public or allowed."""
    category = address_category(address)
    if category is None or allow.contains(address):
        return None
    return f"{address} is {category}"


def is_localhost_name(host: str) -> bool:
    """`localhost` and `*.localhost` (RFC 6761: always the loopback, whatever DNS says)."""
    name = normalise_host_name(host)
    return name == "localhost" or name.endswith(".localhost")


def parse_http_url(url: str | URL) -> URL:
    """The URL if it is absolute http(s) with a host and no userinfo; ValueError saying why not."""
    try:
        parsed = url if isinstance(url, URL) else URL(url.strip())
    except (ValueError, TypeError) as error:
        raise ValueError(f"not a valid URL ({error})") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise ValueError(f"scheme {parsed.scheme or '(none)'!r} is refused: only http and https")
    if not parsed.raw_host:
        raise ValueError("the URL has no host")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        # `http://public.example@127.0.0.1/` reads as one host and reaches another.
        raise ValueError("credentials in the URL (user@host) are refused: send them in a header")
    return parsed


def _refusal_without_dns(host: str, allow: AllowList) -> tuple[IPAddress | None, str | None]:
    """The host's literal address (if any) and the policy's refusal decided without DNS (if any).

    Raises ValueError for a host that is neither an address nor a valid name."""
    if allow.names(host):
        return None, None
    address = literal_address(host)
    if address is not None:
        refusal = address_refusal(address, allow)
        if refusal is not None and normalise_host_name(host).strip("[]") != str(address):
            refusal = f"{host} ({address}) is {address_category(address)}"
        return address, refusal
    if is_localhost_name(host):
        return None, f"{host} is a localhost name (always the loopback)"
    if not HOST_NAME.fullmatch(normalise_host_name(host)):
        raise ValueError(f"{host!r} is not a valid host name")
    return None, None


def host_refusal(host: str, allow: AllowList) -> str | None:
    """Why the policy refuses `host` as written (an address, a localhost name), None when it may
    be reached or is a name to check once resolved. ValueError: not an address nor a name."""
    return _refusal_without_dns(host, allow)[1]


def resolve_addresses(host: str) -> list[IPAddress]:
    """Every address `host` resolves to (getaddrinfo, both families); OSError when none."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_url(
    url: str,
    allow: AllowList,
    *,
    field: str = "settings.url",
    resolve: ResolveAddresses = resolve_addresses,
) -> URL:
    """The parsed URL if the policy admits it now; `ConfigError(field, …)` saying why not.

    A host name is resolved and refused if any of its addresses is refused, or if it does not
    resolve (a typo should fail when the destination is saved, not hours later)."""
    try:
        parsed = parse_http_url(url)
        host = parsed.raw_host or ""
        address, refusal = _refusal_without_dns(host, allow)
    except ValueError as error:
        raise ConfigError(field, str(error)) from None
    if refusal is not None:
        raise ConfigError(field, f"refused: {refusal} (the allow-list can permit it)")
    if address is not None or allow.names(host):
        return parsed
    try:
        addresses = resolve(host)
    except OSError as error:
        raise ConfigError(field, f"{host} does not resolve ({error})") from None
    if not addresses:
        raise ConfigError(field, f"{host} does not resolve")
    for resolved in addresses:
        refusal = address_refusal(resolved, allow)
        if refusal is not None:
            raise ConfigError(field, f"refused: {host} resolves to {refusal} (the allow-list can permit it)")
    return parsed


def check_target(url: str | URL, allow: AllowList) -> URL:
    """Delivery-time check of a URL (the configured one or a redirect's `Location`) before a
    request: scheme, userinfo, literal addresses and localhost names. Names are left to
    `GuardedResolver`. Raises `AddressRefused`."""
    try:
        parsed = parse_http_url(url)
        _, refusal = _refusal_without_dns(parsed.raw_host or "", allow)
    except ValueError as error:
        raise AddressRefused(str(url), str(error)) from None
    if refusal is not None:
        raise AddressRefused(parsed.raw_host or "", refusal)
    return parsed


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses a name if any address of its fresh answer is refused.

    `inner` does the lookup (default: aiohttp's `DefaultResolver`, made on first use, inside
    the running loop). A refused answer raises `AddressRefused`: no address of it is tried."""

    def __init__(self, allow: AllowList, inner: AbstractResolver | None = None) -> None:
        self._allow = allow
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._allow.names(host):
            return await self._lookup(host, port, family)
        try:
            # aiohttp hands legacy literals (`0x7f000001`) to the resolver: judged as addresses.
            address = literal_address(host)
        except ValueError as error:
            raise AddressRefused(host, str(error)) from None
        if address is not None:
            refusal = address_refusal(address, self._allow)
            if refusal is not None:
                raise AddressRefused(host, f"{host} ({address}) is {address_category(address)}")
        # Names, localhost included, are judged by their answer now, whatever it was before.
        results = await self._lookup(host, port, family)
        for result in results:
            refusal = address_refusal(ip_address(result["host"].split("%", 1)[0]), self._allow)
            if refusal is not None:
                raise AddressRefused(host, f"{host} resolved to {refusal}")
        return results

    async def _lookup(self, host: str, port: int, family: socket.AddressFamily) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = DefaultResolver()
        return await self._inner.resolve(host, port, family)

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
