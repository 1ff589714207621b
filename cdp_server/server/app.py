"""Builds and runs the gRPC server, and the HTTP port (Segment's Tracking API), over one engine.

Shutdown (SIGTERM/SIGINT): health turns NOT_SERVING at once, streams stop reading and close
with UNAVAILABLE after acking what they already submitted, in-flight calls get the grace
period, then the engine finishes its queued commits and closes.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tributary._proto.cdp.v1 import admin_pb2

from cdp_server import _core, webhook_sources
from cdp_server.audit import AuditLog
from cdp_server.auth import Authenticator, key_digest
from cdp_server.config import ConfigError, Settings
from cdp_server.destinations.manager import DeliveryManager
from cdp_server.destinations.retry import ScaledClock, SystemClock
from cdp_server.server import reflection
from cdp_server.services import access, admin, audience, ingest, profile
from cdp_server.services.predictions import PredictionScheduler

GIL_SWITCH_INTERVAL_SECS = 0.0005

log = logging.getLogger(__name__)

# Calls that are not streams (unary RPCs) get this many threads beyond the stream and tail caps.
_UNARY_THREADS = 32


class _Service(Protocol):
    def handler(self) -> grpc.GenericRpcHandler[Any, Any]: ...


@dataclass
class RunningServer:
    grpc_server: grpc.Server
    engine: _core.Engine
    health: health.HealthServicer
    draining: threading.Event
    grpc_port: int
    http: _core.HttpServer
    settings: Settings
    delivery: DeliveryManager

    @property
    def http_port(self) -> int:
        return self.http.port

    def shutdown(self) -> None:
        """Graceful stop: see the module docstring. Safe to call more than once."""
        if self.draining.is_set():
            return
        log.info("shutting down", extra={"grace_secs": self.settings.shutdown_grace_secs})
        self.health.enter_graceful_shutdown()
        self.draining.set()
        self.http.stop()  # stops accepting; requests in flight get their answers
        self.grpc_server.stop(self.settings.shutdown_grace_secs).wait()
        # Batches in flight are not settled: they are delivered again after a restart.
        self.delivery.stop()
        self.engine.close()
        log.info("stopped")


def ensure_dev_source(engine: _core.Engine, write_key: str) -> int:
    """Registers the development write key with a source, once."""
    digest = key_digest(write_key)
    existing = engine.events_source_for_key(digest)
    if existing is not None:
        return existing
    name = "development"
    for attempt in range(1, 100):
        try:
            source = engine.create_source(name if attempt == 1 else f"{name}-{attempt}", digest)
            return admin_pb2.Source.FromString(source).id
        except _core.InvalidRequest:
            continue
    raise RuntimeError("could not register the development source")


class PortInUse(OSError):
    """Another program listens on the gRPC port."""


def start(settings: Settings) -> RunningServer:
    """Listens, opens the store, then serves. The port is bound first, so that a busy port fails
    before the data directory is created or opened (and leaves no trace)."""
    server = _grpc_server(settings)
    _check_port_free(settings.host, settings.http_port, option="--http-port")
    port = _listen(server, settings.host, settings.grpc_port, server_credentials(settings))
    try:
        engine = _core.Engine(
            settings.data_dir,
            map_size=settings.map_size_bytes,
            dedupe_window_secs=settings.dedupe_window_secs,
            max_group_events=settings.max_group_events,
            unsafe_no_sync=settings.unsafe_benchmark_mode,
            max_event_bytes=settings.max_event_bytes,
            snapshot_every_events=settings.snapshot_every_events,
            max_rejected_kept=settings.max_rejected_kept,
            engage_tick_secs=settings.engage_tick_secs,
            source_rate_limit=settings.http_rate_limit,
            deletion_stage_pause_secs=settings.deletion_stage_pause_secs,
        )
    except BaseException:
        server.stop(None)  # releases the port
        raise
    if settings.unsafe_benchmark_mode:
        log.warning("UNSAFE BENCHMARK MODE: commits are not fsync'd; a crash can lose acknowledged events")
    if settings.dev_write_key:
        ensure_dev_source(engine, settings.dev_write_key)
    # Every RPC is checked against the access table (services.access.RULES) and changes are
    # audited.
    guard = access.Guard(Authenticator(engine, settings.admin_tokens), AuditLog(engine))
    draining = threading.Event()
    clock = ScaledClock(settings.delivery_time_scale) if settings.delivery_time_scale != 1.0 else SystemClock()
    delivery = DeliveryManager(engine, clock=clock)
    # What is served, by service name: health reports and reflection list these and no other.
    services: dict[str, _Service] = {
        ingest.SERVICE: ingest.IngestService(
            engine,
            guard,
            max_streams=settings.max_streams,
            stream_window=settings.stream_window,
            draining=draining,
        ),
        profile.SERVICE: profile.ProfileService(engine, guard),
        audience.SERVICE: audience.AudienceService(engine, guard, draining=draining),
        admin.SERVICE: admin.AdminService(
            engine, guard, max_tails=settings.max_tails, draining=draining, delivery=delivery
        ),
    }
    server.add_generic_rpc_handlers([service.handler() for service in services.values()])
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*services, health.SERVICE_NAME], server)
    try:
        # Segment's Tracking and Profile APIs and the debugger, served by Rust threads over the
        # same engine.
        http = _core.HttpServer(
            engine,
            settings.host,
            settings.http_port,
            rate_limit=settings.http_rate_limit,
            admin_token_digests=[key_digest(token) for token in settings.admin_tokens],
            space=settings.space,
            log_requests=settings.log_format if settings.log_requests else "",
            webhook_mapper=webhook_sources.map_payload,
            tls_cert_file=settings.tls_cert_file,
            tls_key_file=settings.tls_key_file,
        )
    except BaseException:
        server.stop(None)
        engine.close()
        raise
    server.start()
    delivery.start()
    audience_service = services[audience.SERVICE]
    assert isinstance(audience_service, audience.AudienceService)
    PredictionScheduler(audience_service.predictions, draining).start()
    for name in ["", *services]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving",
        extra={
            "grpc": f"{settings.host}:{port}",
            "http": f"{settings.host}:{http.port}",
            "data_dir": str(settings.data_dir),
        },
    )
    return RunningServer(server, engine, health_servicer, draining, port, http, settings, delivery)


def _grpc_server(settings: Settings) -> grpc.Server:
    keepalive_ms = int(settings.keepalive_time_secs * 1000)
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # Long bulk streams: ping idle connections, and let clients ping us every 10 s.
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.so_reuseport", 0),
    ]
    workers = settings.max_streams + settings.max_tails + _UNARY_THREADS
    return grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc"), options=options)


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS for the gRPC port from the configured PEM files (None: plain), requiring client
    certificates signed by `tls_client_ca_file` when one is given."""
    if not settings.tls_cert_file:
        return None

    def read(name: str) -> bytes:
        path = getattr(settings, name)
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from exc

    client_ca = read("tls_client_ca_file") if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(read("tls_key_file"), read("tls_cert_file"))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def _listen(server: grpc.Server, host: str, port: int, credentials: grpc.ServerCredentials | None = None) -> int:
    """Binds host:port (port 0: any free port), with TLS when `credentials` are given, and
    returns the port bound.

    A port that another program listens on is found with a plain socket first: grpcio would
    print a raw C-core log line (add_port.cc) before raising a vague error.
    """
    _check_port_free(host, port)
    try:
        address = f"{host}:{port}"
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # grpcio's way of saying the address is taken or invalid
        bound, reason = 0, str(exc)
    else:
        reason = "the address is taken or invalid"
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}: {reason}")
    return bound


def _check_port_free(host: str, port: int, *, option: str = "--grpc-port") -> None:
    """Raises PortInUse when a socket listens on any address `host` resolves to, at `port`.

    The probe sets SO_REUSEADDR, as gRPC's listener does, so connections of an earlier server
    still in TIME_WAIT do not count as in use. Other bind errors (an address not on this host,
    no permission) are left for grpcio to report.
    """
    if port == 0:
        return
    try:
        addresses = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    message = f"port {host}:{port} is in use by another program: stop it, or choose another port"
                    raise PortInUse(f"{message} ({option})") from None


def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully."""
    # The gRPC handlers and the delivery workers share the GIL: a thread that waits for it asks
    # the holder to let go after this interval (Python's default: 5 ms). Ingest's Python steps
    # are short; with destinations delivering, 0.5 ms raised ingest from 0.62x to 0.77x of its
    # speed without destinations (benchmarks/connections.py, quick).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECS)
    running = start(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(
        f"Tributary serving gRPC on {settings.host}:{running.grpc_port}, HTTP on {settings.host}:{running.http_port}"
        f" (data: {settings.data_dir})",
        flush=True,
    )
    stop.wait()
    running.shutdown()
