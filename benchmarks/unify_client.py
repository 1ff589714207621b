"""The unary load client, run in its own process: ``python -m benchmarks.unify_client ...``.

It keeps ``--in-flight`` calls of one unary method outstanding (grpc futures: each completion
issues the next call), cycling through pre-encoded requests sent as raw bytes (no serializer),
for a warm-up and then ``--seconds``; it prints one JSON object on stdout. The same client
drives Tributary and the do-nothing baseline server, so their figures compare directly.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
from tributary._proto.cdp.v1 import profile_pb2

from benchmarks.client import CHANNEL_OPTIONS
from benchmarks.measurement import percentile
from benchmarks.workload import _read_sections, _write_section

GET_PROFILE = "/cdp.v1.ProfileService/GetProfile"
BATCH_GET_PROFILES = "/cdp.v1.ProfileService/BatchGetProfiles"
CALL_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class UnaryOutcome:
    """Calls completed inside the measured window (after the warm-up)."""

    calls: int
    errors: int
    seconds: float
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    in_flight: int
    # BatchGetProfiles only: profiles found in the last response, counted after the clock.
    profiles_per_call: int | None
    first_error: str


def save_requests(path: Path, requests: Sequence[bytes]) -> None:
    with path.open("wb") as out:
        _write_section(out, list(requests))


def load_requests(path: Path) -> list[bytes]:
    return next(_read_sections(path, 1))


def run_unary(
    target: str,
    method: str,
    requests: Sequence[bytes],
    *,
    in_flight: int,
    seconds: float,
    warmup_s: float,
    metadata: tuple[tuple[str, str], ...] = (),
) -> UnaryOutcome:
    """Keeps ``in_flight`` calls outstanding for ``warmup_s + seconds``; measures the last ``seconds``."""
    lock = threading.Lock()
    finished = threading.Event()
    latencies: list[float] = []
    state = {"next": 0, "active": 0, "errors": 0}
    first_error: list[str] = []
    last_response: list[bytes] = []
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        started = time.perf_counter()
        measure_from, stop_at = started + warmup_s, started + warmup_s + seconds

        def issue() -> None:
            with lock:
                index = state["next"]
                state["next"] = index + 1
            sent = time.perf_counter()
            future = call.future(requests[index % len(requests)], metadata=metadata, timeout=CALL_TIMEOUT_S)
            future.add_done_callback(lambda f: done(f, sent))

        def done(future: grpc.Future, sent: float) -> None:  # type: ignore[type-arg]
            now = time.perf_counter()
            error = future.exception()
            with lock:
                if error is not None:
                    state["errors"] += 1
                    if not first_error:
                        first_error.append(repr(error)[:300])
                elif measure_from <= sent and now <= stop_at:
                    latencies.append(now - sent)
                    if not last_response:
                        last_response.append(future.result())
                if now >= stop_at or error is not None:  # a failing server must not be hammered
                    state["active"] -= 1
                    if state["active"] == 0:
                        finished.set()
                    return
            issue()

        state["active"] = in_flight
        for _ in range(in_flight):
            issue()
        if not finished.wait(timeout=warmup_s + seconds + CALL_TIMEOUT_S + 5):
            raise TimeoutError("calls still outstanding after the deadline")
    ms = sorted(x * 1000 for x in latencies)
    profiles = None
    if method == BATCH_GET_PROFILES and last_response:
        results = profile_pb2.BatchGetProfilesResponse.FromString(last_response[0]).results
        profiles = sum(1 for r in results if r.HasField("profile"))
    return UnaryOutcome(
        calls=len(ms),
        errors=state["errors"],
        seconds=seconds,
        calls_per_s=len(ms) / seconds,
        p50_ms=percentile(ms, 50),
        p99_ms=percentile(ms, 99),
        max_ms=ms[-1] if ms else 0.0,
        in_flight=in_flight,
        profiles_per_call=profiles,
        first_error=first_error[0] if first_error else "",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", required=True, help="host:port of the server")
    parser.add_argument("--method", default=GET_PROFILE, help="full method name")
    parser.add_argument("--requests", type=Path, required=True, help="file of pre-encoded requests")
    parser.add_argument("--in-flight", type=int, default=32, help="calls kept outstanding")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time first")
    parser.add_argument("--token", default=None, help="admin bearer token")
    args = parser.parse_args(argv)
    metadata = (("authorization", f"Bearer {args.token}"),) if args.token else ()
    outcome = run_unary(
        args.target,
        args.method,
        load_requests(args.requests),
        in_flight=args.in_flight,
        seconds=args.seconds,
        warmup_s=args.warmup,
        metadata=metadata,
    )
    json.dump(asdict(outcome), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
