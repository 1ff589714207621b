"""Runs the Governance benchmark: ``python -m benchmarks.governance [--quick] [--events N] [--rounds R]``.

**Tracking plan enforcement**: the ingest benchmark's workload (pre-encoded, streamed over gRPC by
``benchmarks.client`` in its own process) into a fresh ``cdp serve``, once without a plan and once
with its source enforcing a 50-event tracking plan in block mode (unplanned events and violations
refused). The plan names the workload's five track events with strict schemas (types, required
properties, enums, bounds, no extra properties), 45 more, and identify traits; every event of the
workload is valid, so every one is validated and stored (the client checks that all were
accepted). Rounds alternate the order; the best round of each side is reported, the baseline
beside it. Results go to ``benchmarks/results/governance.json`` and the results page.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from tributary._proto.cdp.v1 import admin_pb2_grpc, event_pb2, governance_pb2, ingest_pb2, ingest_pb2_grpc

from benchmarks import workload
from benchmarks.governance_report import write_governance_json
from benchmarks.process import free_port, running_server
from benchmarks.results_page import finish
from benchmarks.run import QUICK_RESULTS_DIR, RESULTS_DIR
from benchmarks.systems import DEV_WRITE_KEY_ENV, StreamSettings, VerificationFailed, drive, serve_argv

DEFAULT_EVENTS = 200_000
QUICK_EVENTS = 50_000
PLAN_EVENTS = 50
# The development source `cdp serve` makes for TRIBUTARY_DEV_WRITE_KEY.
SOURCE = "development"


def plan_document() -> dict[str, Any]:
    """A 50-event plan the workload (``benchmarks.workload``) satisfies."""
    money = {"type": "number", "minimum": 0}
    events: dict[str, Any] = {
        name: {
            "type": "object",
            "additionalProperties": False,
            "required": ["product_id", "category", "price"],
            "properties": {
                "product_id": {"type": "string", "minLength": 1},
                "category": {"type": "string"},
                "price": money,
                "quantity": {"type": "integer", "minimum": 1},
                "currency": {"enum": ["USD", "EUR", "GBP"]},
            },
        }
        for name in ("Product Viewed", "Product Added")
    }
    events["Order Completed"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["order_id", "total", "currency"],
        "properties": {
            "order_id": {"type": "string", "pattern": "^ord-"},
            "total": money,
            "revenue": money,
            "currency": {"enum": ["USD", "EUR", "GBP"]},
            "products": {"type": "integer", "minimum": 1},
            "coupon": {"type": "string"},
        },
    }
    events["Video Played"] = {
        "type": "object",
        "required": ["video_id"],
        "properties": {
            "video_id": {"type": "string"},
            "position": {"type": "integer", "minimum": 0},
            "quality": {"enum": ["sd", "hd", "4k"]},
        },
    }
    events["Signed In"] = {
        "type": "object",
        "properties": {
            "method": {"enum": ["password", "google", "sso"]},
            "attempt": {"type": "integer", "minimum": 1, "maximum": 10},
            "remember": {"type": "boolean"},
        },
    }
    for n in range(PLAN_EVENTS - len(events)):
        events[f"Feature {n:02d} Used"] = {
            "type": "object",
            "required": ["feature"],
            "properties": {"feature": {"type": "string"}, "count": {"type": "integer", "minimum": 0}},
        }
    identify = {
        "type": "object",
        "properties": {
            "email": {"type": "string", "format": "email"},
            "name": {"type": "string"},
            "plan": {"type": "string"},
        },
    }
    return {"events": events, "identify": identify}


@contextlib.contextmanager
def _server(settings: StreamSettings, *, planned: bool) -> Iterator[tuple[int, int, str]]:
    """A fresh ``cdp serve`` whose development source enforces the plan (``planned``) or none."""
    port, write_key, admin_token = free_port(), "bench-" + secrets.token_hex(8), secrets.token_hex(16)
    with (
        tempfile.TemporaryDirectory(prefix="bench-governance-", dir=settings.tmp_root) as tmp,
        running_server(
            serve_argv(settings.cdp, Path(tmp) / "data", port),
            port=port,
            log_path=Path(tmp) / "server.log",
            env={DEV_WRITE_KEY_ENV: write_key, "TRIBUTARY_ADMIN_TOKEN": admin_token},
            health_check=True,
        ) as process,
    ):
        if planned:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                admin = admin_pb2_grpc.AdminServiceStub(channel)
                metadata = (("authorization", f"Bearer {admin_token}"),)
                admin.PutTrackingPlan(
                    governance_pb2.PutTrackingPlanRequest(name="bench", document=json.dumps(plan_document())),
                    metadata=metadata,
                    timeout=30,
                )
                policy = governance_pb2.SourcePolicy(
                    source=SOURCE,
                    plan="bench",
                    unplanned_events=governance_pb2.UNPLANNED_EVENTS_BLOCK,
                    on_violation=governance_pb2.ON_VIOLATION_BLOCK,
                )
                admin.SetSourcePolicy(
                    governance_pb2.SetSourcePolicyRequest(policy=policy), metadata=metadata, timeout=30
                )
        yield port, process.pid, write_key


def _check_enforced(port: int, write_key: str) -> None:
    """Proves the measured server enforced the plan: an unplanned event is refused."""
    event = event_pb2.Event(type=event_pb2.EVENT_TYPE_TRACK, user_id="probe", event="Not In The Plan")
    basic = base64.b64encode(f"{write_key}:".encode()).decode()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            ingest_pb2_grpc.IngestServiceStub(channel).Send(
                ingest_pb2.SendRequest(batch=event_pb2.Batch(events=[event])),
                metadata=(("authorization", f"Basic {basic}"),),
                timeout=30,
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "blocked by tracking plan" in (exc.details() or ""):
                return
            raise
    raise VerificationFailed("the plan was not enforced: an unplanned event was stored")


def measure_plan(settings: StreamSettings, rounds: int) -> dict[str, Any]:
    """Best of ``rounds`` of each side, the order alternating."""
    best: dict[str, dict[str, Any]] = {}
    every: list[dict[str, float]] = []
    for n in range(rounds):
        order = (True, False) if n % 2 == 0 else (False, True)
        this_round: dict[str, float] = {}
        for planned in order:
            side = "planned" if planned else "unplanned"
            with _server(settings, planned=planned) as (port, pid, write_key):
                measured = drive(side, side, port, settings, write_key=write_key, counts=True, server_pid=pid)
                if planned:
                    _check_enforced(port, write_key)
            this_round[side] = measured.events_per_s
            print(f"  round {n + 1}, {side}: {measured.events_per_s:,.0f} events/s", file=sys.stderr)
            if side not in best or measured.events_per_s > best[side]["events_per_s"]:
                best[side] = {"events_per_s": measured.events_per_s, "seconds": measured.seconds}
        every.append(this_round)
    return {
        "events": settings.events,
        "window": settings.window,
        "plan_events": len(plan_document()["events"]),
        "planned": best["planned"],
        "unplanned": best["unplanned"],
        "rounds": every,
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.governance", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events instead of {DEFAULT_EVENTS:,}")
    parser.add_argument("--events", type=int, default=None, help="events ingested per run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each side, best reported (default 3)")
    parser.add_argument("--window", type=int, default=16, help="max unacknowledged batches")
    parser.add_argument("--seed", type=int, default=workload.DEFAULT_SEED, help="workload seed")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where data directories are made")
    parser.add_argument("--results-dir", type=Path, default=None, help="where governance.json goes")
    parser.add_argument("--cdp", type=Path, default=Path(sys.executable).with_name("cdp"), help="the cdp executable")
    args = parser.parse_args(argv)
    args.events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    args.rounds = args.rounds or (2 if args.quick else 3)
    if args.results_dir is None:
        args.results_dir = QUICK_RESULTS_DIR if args.quick else RESULTS_DIR
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.perf_counter()
    _, path = workload.load_or_generate(args.events, args.seed)
    settings = StreamSettings(
        workload_path=path,
        events=args.events,
        window=args.window,
        timeout_s=600.0,
        tmp_root=args.tmp_dir,
        cdp=args.cdp,
    )
    runs: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    try:
        runs["plan"] = measure_plan(settings, args.rounds)
    except Exception as exc:  # reported in the document and the page, like every benchmark's failures
        errors["plan"] = f"{type(exc).__name__}: {exc}"
    document = write_governance_json(
        args.results_dir,
        runs=runs,
        errors=errors,
        settings={"events": args.events, "rounds": args.rounds, "quick": args.quick, "seed": args.seed},
    )
    table = "\n".join(f"{t['target']}: {t['measured']} — {t['verdict']}" for t in document["targets"])
    return finish(args.results_dir, "governance.json", table, errors, started)


if __name__ == "__main__":
    sys.exit(main())
