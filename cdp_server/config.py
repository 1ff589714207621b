"""Server settings: safe defaults, then a TOML file, then TRIBUTARY_* environment variables,
then command-line flags (each overrides the one before)."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


class ConfigError(ValueError):
    """A setting has a bad name or value; the message names it."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_port: int = 8088
    # Ingest requests a second per source (Segment's 1,000), gRPC IngestService calls (each
    # stream batch), the Tracking API and webhook routes drawing on one bucket per source; past
    # it: HTTP 429 with Retry-After, gRPC RESOURCE_EXHAUSTED with retry-after. Also the Profile
    # API's requests a second per token. 0: no limit.
    http_rate_limit: float = 1000.0
    # A source with this write key is registered at start-up (development convenience).
    dev_write_key: str = ""
    # Bearer tokens accepted by the Profile/Audience/Admin services, the debugger and the HTTP
    # Profile API (tokens made by `cdp token create` are accepted as well).
    admin_tokens: tuple[str, ...] = ()
    # The workspace's slug: the {space} of the Profile API's paths.
    space: str = "default"
    # Refused events kept for `cdp rejected list` and the debugger (the oldest go first).
    max_rejected_kept: int = 10_000
    # How often real-time audiences and computed traits with time windows (within, between,
    # within_last, ...) are re-evaluated: a profile leaves `within(30 days)` at most this late.
    engage_tick_secs: float = 60.0
    max_message_bytes: int = 4 * MIB
    max_event_bytes: int = 32 * 1024
    max_streams: int = 64
    max_tails: int = 16
    # Batches a stream may have in flight before the server stops reading from it.
    stream_window: int = 16
    dedupe_window_secs: float = 7 * 24 * 3600
    map_size_bytes: int = 1024 * MIB
    max_group_events: int = 50_000
    shutdown_grace_secs: float = 10.0
    # Identity snapshots: start-up loads the latest and replays only the log after it. One is
    # written at shutdown and after every this many resolved events (0: only at shutdown).
    snapshot_every_events: int = 2_000_000
    keepalive_time_secs: float = 30.0
    # Benchmark only: LMDB commits without fsync. Acknowledged events can be lost on a crash.
    unsafe_benchmark_mode: bool = False
    # Tests only: the delivery workers' clock runs this many times faster than the wall clock
    # (retry backoffs and the retry window shrink by as much).
    delivery_time_scale: float = 1.0
    # Tests only: a privacy deletion waits this long after each of its stages (to kill the server
    # mid-way and see the deletion resume).
    deletion_stage_pause_secs: float = 0.0
    log_level: str = "INFO"
    # Logs on stderr: "json" (one object per line, for collectors) or "text" (for people).
    log_format: str = "json"
    # One log line per HTTP request (method, path, status, duration, Request-Id).
    log_requests: bool = False
    # TLS on the gRPC and HTTP ports: the server's certificate chain and private key (PEM files),
    # both or neither. With tls_client_ca_file, gRPC clients must present a certificate signed by
    # that CA (mTLS).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("grpc_port", "http_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{name} must be 0..65535, got {port}")
        positive = ("max_message_bytes", "max_event_bytes", "max_streams", "max_tails", "stream_window")
        for name in (*positive, "map_size_bytes", "max_group_events"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.dedupe_window_secs < 0 or self.shutdown_grace_secs < 0:
            raise ConfigError("dedupe_window_secs and shutdown_grace_secs must not be negative")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.space):
            raise ConfigError(f"space must be 1 to 64 letters, digits, '-' or '_', got {self.space!r}")
        if self.max_rejected_kept < 0:
            raise ConfigError(f"max_rejected_kept must not be negative, got {self.max_rejected_kept}")
        if not self.engage_tick_secs > 0:
            raise ConfigError(f"engage_tick_secs must be positive, got {self.engage_tick_secs}")
        if not self.delivery_time_scale >= 1.0:
            raise ConfigError(f"delivery_time_scale must be at least 1, got {self.delivery_time_scale}")
        if self.log_format not in ("json", "text"):
            raise ConfigError(f"log_format must be json or text, got {self.log_format!r}")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ConfigError("tls_cert_file and tls_key_file go together: give both or neither")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ConfigError("tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file")
        if self.snapshot_every_events < 0:
            raise ConfigError(f"snapshot_every_events must not be negative, got {self.snapshot_every_events}")


_FIELDS = {f.name: f for f in fields(Settings) if f.name != "extra"}


def _coerce(name: str, raw: Any) -> Any:
    """Turns a TOML or environment value into the field's type, naming the field on error."""
    kind = _FIELDS[name].type
    try:
        if kind == "Path":
            return Path(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return text in {"1", "true", "yes", "on"}
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "tuple[str, ...]":
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(str(item).strip() for item in items if str(item).strip())
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot use {raw!r} as {kind}") from exc


def load(config_file: str | os.PathLike[str] | None = None, **flags: Any) -> Settings:
    """Builds the settings. `flags` are command-line values (None means "not given")."""
    values: dict[str, Any] = {}
    path = config_file or os.environ.get("TRIBUTARY_CONFIG")
    if path:
        try:
            document = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
        for name, raw in document.items():
            if name not in _FIELDS:
                raise ConfigError(f"config file {path}: unknown setting {name!r}")
            values[name] = _coerce(name, raw)
    for name in _FIELDS:
        env = os.environ.get(f"TRIBUTARY_{name.upper()}")
        if env is not None:
            values[name] = _coerce(name, env)
    # A single admin token is the common case: TRIBUTARY_ADMIN_TOKEN adds one.
    single_token = os.environ.get("TRIBUTARY_ADMIN_TOKEN", "").strip()
    if single_token:
        values["admin_tokens"] = (*values.get("admin_tokens", ()), single_token)
    for name, raw in flags.items():
        if raw is not None:
            values[name] = _coerce(name, raw)
    return dataclasses.replace(Settings(), **values)
