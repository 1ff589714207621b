"""The `warehouse` kind's settings, and which hosts they let it reach.

Settings: `dsn` (required: a `postgresql://` URL or a libpq `key=value` string, naming its host), `schema` (default
`tributary`, a lower-case identifier), `allow` (a list: the private hosts it may reach, see below).

Addresses (RELIABILITY.md, SSRF): a host on a private, loopback, link-local or otherwise non-global address is
refused, when the settings are validated and again at each connection (resolved then, and the connection pinned to
the checked address with libpq's `hostaddr`, so DNS cannot change it in between), unless `allow` names it (its
host name, its address, or a network containing it). Unix sockets (a host starting with `/`) need `"unix"` in
`allow`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from cdp_server.destinations import addresses
from cdp_server.destinations.addresses import AllowList
from cdp_server.destinations.base import ConfigError, JsonObject, PermanentError, RetryableError

DEFAULT_SCHEMA = "tributary"
# libpq settings the DSN may override: give up connecting after 10 s, and notice a dead peer within about a minute
# (TCP keepalives) instead of the kernel's two hours.
CONNECTION_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
UNIX_SOCKETS = "unix"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- settings -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WarehouseSettings:
    dsn: str
    schema: str = DEFAULT_SCHEMA
    allow: tuple[str, ...] = ()  # as configured (with "unix" for Unix sockets)
    allow_list: AllowList = field(default_factory=AllowList, compare=False)

    @classmethod
    def parse(cls, settings: Mapping[str, Any]) -> WarehouseSettings:
        """Checks each setting's form (not its addresses: `check_hosts`); raises ConfigError naming the field."""
        unknown = sorted(set(settings) - {"dsn", "schema", "allow"})
        if unknown:
            raise ConfigError(f"settings.{unknown[0]}", "unknown setting (known: dsn, schema, allow)")
        dsn = settings.get("dsn")
        if not isinstance(dsn, str) or not dsn.strip():
            raise ConfigError("settings.dsn", "required: a postgresql:// URL or a key=value connection string")
        schema = settings.get("schema", DEFAULT_SCHEMA)
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema) or schema.startswith("pg_"):
            raise ConfigError(
                "settings.schema",
                "must be a lower-case identifier (a-z, 0-9, _; at most 63 characters; not starting with pg_)",
            )
        allow = settings.get("allow", [])
        if not isinstance(allow, list | tuple) or not all(isinstance(entry, str) for entry in allow):
            raise ConfigError("settings.allow", "must be a list of strings")
        entries = tuple(entry.lower() for entry in allow)
        # "unix" reads as a host name too: harmless, a host of that name is then allowed as well.
        parsed = cls(dsn.strip(), schema, entries, AllowList.parse(entries))
        params = parsed.connection_params()
        if "service" in params:
            raise ConfigError("settings.dsn", "service= is not supported: name the host in the dsn")
        if not params.get("host") and not params.get("hostaddr"):
            raise ConfigError("settings.dsn", "must name the host (postgresql://HOST/... or host=...)")
        return parsed

    def connection_params(self) -> dict[str, str]:
        try:
            return {key: str(value) for key, value in conninfo_to_dict(self.dsn).items()}
        except psycopg.ProgrammingError:
            # Not the parser's message: it may quote the DSN, password included.
            raise ConfigError(
                "settings.dsn", "not a PostgreSQL connection string (a postgresql:// URL or key=value pairs)"
            ) from None

    def as_json(self) -> JsonObject:
        return {"dsn": self.dsn, "schema": self.schema, "allow": list(self.allow)}


# -- addresses (the rule of addresses.py) -------------------------------------------------------------------------


def _refusal(host: str, address: IpAddress, settings: WarehouseSettings) -> str | None:
    """Why `host` (resolved to `address`) may not be reached, or None."""
    if settings.allow_list.names(host):
        return None
    refusal = addresses.address_refusal(address, settings.allow_list)
    return None if refusal is None else f"host {host} is not public: {refusal}; name it in settings.allow to use it"


def _refusal_as_written(host: str, settings: WarehouseSettings) -> str | None:
    """The refusal decided without DNS (an address in any literal form, a localhost name)."""
    try:
        refusal = addresses.host_refusal(host, settings.allow_list)
    except ValueError as error:
        return str(error)
    return None if refusal is None else f"host {refusal}; name it in settings.allow to use it"


def _host_pairs(params: Mapping[str, str]) -> list[tuple[str, str]]:
    """(host, hostaddr) for each host libpq would try (hostaddr "" when libpq would resolve the host itself)."""
    hosts = params.get("host", "").split(",")
    hostaddrs = params.get("hostaddr", "").split(",")
    count = max(len(hosts), len(hostaddrs))
    hosts += [""] * (count - len(hosts))
    hostaddrs += [""] * (count - len(hostaddrs))
    return list(zip(hosts, hostaddrs, strict=True))


def _literal_address(text: str) -> IpAddress | None:
    try:
        return addresses.literal_address(text)
    except ValueError:
        return None


def _first_refusal(host: str, resolved: Sequence[IpAddress], settings: WarehouseSettings) -> str | None:
    for address in resolved:
        refusal = _refusal(host or str(address), address, settings)
        if refusal:
            return refusal
    return None


def _unix_socket_refusal(host: str, settings: WarehouseSettings) -> str | None:
    return None if UNIX_SOCKETS in settings.allow else f'unix socket {host} needs "unix" in settings.allow'


def check_hosts(settings: WarehouseSettings) -> None:
    """Raises ConfigError (`settings.dsn`) for a host the allow-list does not let us reach. Host names are
    resolved; one that does not resolve now is let through (it is checked again at each connection)."""
    for host, hostaddr in _host_pairs(settings.connection_params()):
        if host.startswith("/"):
            refusal = _unix_socket_refusal(host, settings)
        elif not hostaddr and (refusal := _refusal_as_written(host, settings)) is not None:
            pass
        else:
            literal = _literal_address(hostaddr or host)
            try:
                infos = [] if literal is not None else socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except OSError:
                continue
            resolved = [literal] if literal is not None else [_sockaddr_address(info[4]) for info in infos]
            refusal = _first_refusal(host, resolved, settings)
        if refusal:
            raise ConfigError("settings.dsn", refusal)


async def pinned_connection_params(settings: WarehouseSettings) -> dict[str, str]:
    """The connection parameters with each TCP host resolved, checked and pinned (`hostaddr`): PermanentError for
    a host the allow-list refuses, RetryableError for one that does not resolve."""
    params = settings.connection_params()
    loop = asyncio.get_running_loop()
    pinned: list[str] = []
    for host, hostaddr in _host_pairs(params):
        if host.startswith("/"):
            refusal = _unix_socket_refusal(host, settings)
            pinned.append("")
        elif not hostaddr and (refusal := _refusal_as_written(host, settings)) is not None:
            pinned.append("")
        else:
            literal = _literal_address(hostaddr or host)
            try:
                infos = [] if literal is not None else await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except OSError as error:
                raise RetryableError(f"warehouse: cannot resolve {host}: {error}") from error
            resolved = [literal] if literal is not None else [_sockaddr_address(info[4]) for info in infos]
            refusal = _first_refusal(host, resolved, settings)
            pinned.append(str(resolved[0]))
        if refusal:
            raise PermanentError(f"warehouse: {refusal}")
    if any(pinned):
        params["hostaddr"] = ",".join(pinned)
    return CONNECTION_DEFAULTS | params


def _sockaddr_address(sockaddr: tuple[Any, ...]) -> IpAddress:
    return ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
