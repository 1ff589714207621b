"""Runs the HTTP benchmark: ``python -m benchmarks.http_api [--quick] [--only tracking,traits]``.

Tributary's HTTP port (``cdp serve --http-port``, served from Rust) against a do-nothing aiohttp
server (``http_baseline``), both driven by wrk with the same Lua script, one after the other
(never at once: a 2-core machine):

- **tracking**: ``POST /v1/batch`` of 100 Segment messages (~300 B each, every messageId new),
  events/s and request latency;
- **traits**: the Profile API's ``GET .../profiles/user_id:<id>/traits`` of a random one of
  10,000 profiles (made first through the Tracking API, 20 traits each), requests/s and latency.

Tributary runs with its durable defaults (fsync'd group commits, identity resolution on) and
the Tracking API's per-source rate limit off (``TRIBUTARY_HTTP_RATE_LIMIT=0``). This module was
not named ``benchmarks/http.py``: that would shadow the standard library's ``http`` (which
aiohttp imports) wherever ``benchmarks/`` is on the path. Results go to
``benchmarks/results/http.json`` (``results/quick/`` with ``--quick``) and the results page.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import http_workload
from benchmarks.http_load import (
    BATCH_SCRIPT,
    TRAITS_SCRIPT,
    LoadSettings,
    WrkRun,
    aiohttp_baseline,
    engine_counters,
    get,
    post,
    run_wrk,
    tributary,
    wrk_version,
)
from benchmarks.http_report import write_http_json
from benchmarks.parts import Part, run_parts
from benchmarks.profiling import available_profiler
from benchmarks.results_page import finish
from benchmarks.run import PROFILERS, QUICK_RESULTS_DIR, RESULTS_DIR, _settle_disk

WRITE_KEY = "bench-write-key"
ADMIN_TOKEN = "bench-admin-token"
PARTS = {"tracking": "Tracking API: POST /v1/batch", "traits": "Profile API: GET /traits"}
# 32 connections: the prior manual measurement's, and enough to keep both servers busy on two
# cores (more only lengthens the queue: latency = connections / rate).
CONNECTIONS = 32
# One wrk thread: it keeps up with both servers and leaves the second core to them.
WRK_THREADS = 1


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_api", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run: 3 s per system, 2,000 profiles")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts, from {','.join(PARTS)}")
    parser.add_argument("--seconds", type=int, default=None, help="measured seconds per system (default 10; quick 3)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up seconds per system (default 2; quick 1)")
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help="wrk connections (requests in flight)")
    parser.add_argument("--threads", type=int, default=WRK_THREADS, help="wrk threads")
    parser.add_argument("--profiles", type=int, default=None, help="profiles read by (traits) (default 10,000)")
    parser.add_argument("--templates", type=int, default=200, help="distinct batch bodies (tracking)")
    parser.add_argument("--seed", type=int, default=20_261_201, help="workload seed")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where fresh data directories are made")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help=f"where http.json goes (default {RESULTS_DIR}; --quick: {QUICK_RESULTS_DIR})",
    )
    parser.add_argument("--cdp", type=Path, default=Path(sys.executable).with_name("cdp"), help="the cdp executable")
    parser.add_argument("--profile", choices=PROFILERS, default="auto", help="profile Tributary while it is measured")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (3 if args.quick else 10)
    args.warmup = (1 if args.quick else 2) if args.warmup is None else args.warmup
    args.profiles = args.profiles or (2_000 if args.quick else 10_000)
    if args.results_dir is None:
        args.results_dir = QUICK_RESULTS_DIR if args.quick else RESULTS_DIR
    # "auto" is settled here: finding a profiler takes a second, which must not come out of a run.
    args.profiler = {"off": None, "auto": available_profiler()}.get(args.profile, args.profile)
    args.only = [key.strip() for key in args.only.split(",") if key.strip()]
    unknown = set(args.only) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {list(PARTS)}")
    if min(args.seconds, args.connections, args.threads, args.profiles, args.templates) <= 0 or args.warmup < 0:
        parser.error("--seconds, --connections, --threads, --profiles and --templates must be positive")
    return args


def basic(user: str) -> str:
    """HTTP Basic credentials with an empty password, as Segment's and the Profile API's are."""
    return "Basic " + base64.b64encode(f"{user}:".encode()).decode()


def _load(args: argparse.Namespace) -> LoadSettings:
    return LoadSettings(args.seconds, args.warmup, args.connections, args.threads)


def _settled_counters(url: str) -> dict[str, float]:
    """The engine's counters once the requests wrk left in flight have been answered."""
    counters = engine_counters(url)
    for _ in range(50):
        time.sleep(0.1)
        again = engine_counters(url)
        if again == counters:
            break
        counters = again
    return counters


def _said(run: WrkRun, unit: str, per_request: int = 1) -> str:
    rate = run.requests_per_s * per_request
    return f"{rate:,.0f} {unit}/s, p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, cores {run.cores}"


def part_tracking(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """POST /v1/batch to Tributary, then to the do-nothing server, with the same script."""
    templates = tmp / "batches.txt"
    message_bytes = http_workload.write_templates(templates, args.templates, args.seed)
    script_args = [str(templates), basic(WRITE_KEY)]
    per_request = http_workload.EVENTS_PER_REQUEST
    context = f"python -m benchmarks.http_api --only tracking --seconds {args.seconds}"
    _settle_disk()
    print("  Tributary ...", flush=True)
    with tributary(args.cdp, tmp / "tracking-data", write_key=WRITE_KEY, admin_token=ADMIN_TOKEN) as (server, url):
        before = engine_counters(url)
        real, profile = run_wrk(
            f"{url}/v1/batch",
            BATCH_SCRIPT,
            script_args,
            _load(args),
            server_pid=server.pid,
            profiler=args.profiler,
            context=context,
        )
        after = _settled_counters(url)
    print(f"    {_said(real, 'events', per_request)}", flush=True)
    counted = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    refused = {name: n for name, n in counted.items() if name != "accepted" and n}
    if refused or counted.get("accepted", 0) < real.requests * per_request:
        raise RuntimeError(
            f"the server stored {counted.get('accepted', 0):,.0f} events for {real.requests * per_request:,} "
            f"answered in the measured run (its warm-up and profiled run besides); refused: {refused}"
        )
    print("  do-nothing aiohttp ...", flush=True)
    with aiohttp_baseline(tmp) as (baseline, url):
        base, _ = run_wrk(f"{url}/v1/batch", BATCH_SCRIPT, script_args, _load(args), server_pid=baseline.pid)
    print(f"    {_said(base, 'events', per_request)}", flush=True)
    return {
        "events_per_request": per_request,
        "message_bytes": round(message_bytes, 1),
        "templates": args.templates,
        "engine_counters": counted,
        "tributary": real.to_json() | {"profile": profile.to_json() if profile else None},
        "aiohttp": base.to_json(),
    }


def part_traits(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Makes the profiles through the Tracking API, then reads random ones' traits from
    Tributary's Profile API and from the do-nothing server (answering a real answer's bytes)."""
    prefix = http_workload.PROFILE_USER_PREFIX
    script_args = [basic(ADMIN_TOKEN), prefix, str(args.profiles)]
    context = f"python -m benchmarks.http_api --only traits --seconds {args.seconds}"
    _settle_disk()
    with tributary(args.cdp, tmp / "traits-data", write_key=WRITE_KEY, admin_token=ADMIN_TOKEN) as (server, url):
        print(f"  {args.profiles:,} profiles of {http_workload.TRAITS_PER_PROFILE} traits through /v1/batch ...")
        started = time.perf_counter()
        for body in http_workload.identify_bodies(args.profiles, args.seed):
            answer = post(f"{url}/v1/batch", body, basic(WRITE_KEY))
            if answer.get("rejected"):
                raise RuntimeError(f"identify calls refused: {answer['rejected'][:3]}")
        made_s = time.perf_counter() - started
        print(f"    {made_s:.1f} s", flush=True)
        path = f"/v1/spaces/default/collections/users/profiles/user_id:{prefix}1/traits"
        sample = get(url + path, basic(ADMIN_TOKEN))
        traits = json.loads(sample).get("traits")
        if not traits:
            raise RuntimeError(f"GET {path} answered no traits: {sample[:300]!r}")
        print("  Tributary ...", flush=True)
        real, profile = run_wrk(
            url, TRAITS_SCRIPT, script_args, _load(args), server_pid=server.pid, profiler=args.profiler, context=context
        )
    print(f"    {_said(real, 'requests')}", flush=True)
    print("  do-nothing aiohttp ...", flush=True)
    with aiohttp_baseline(tmp, traits_body=sample) as (baseline, url):
        base, _ = run_wrk(url, TRAITS_SCRIPT, script_args, _load(args), server_pid=baseline.pid)
    print(f"    {_said(base, 'requests')}", flush=True)
    return {
        "profiles": args.profiles,
        "traits_per_profile": http_workload.TRAITS_PER_PROFILE,
        "profiles_made_s": round(made_s, 2),
        "answer_bytes": len(sample),
        "answer_traits": len(traits),
        "tributary": real.to_json() | {"profile": profile.to_json() if profile else None},
        "aiohttp": base.to_json(),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.perf_counter()
    parts: dict[str, Part] = {
        "tracking": part_tracking,
        "traits": part_traits,
    }
    runs, errors = run_parts(args, args.only, parts, PARTS, prefix="bench-http-")
    document = write_http_json(
        args.results_dir,
        runs=runs,
        errors=errors,
        settings={
            "parts": args.only,
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "rate_limit": "off (TRIBUTARY_HTTP_RATE_LIMIT=0)",
            "seed": args.seed,
            "quick": args.quick,
            "wrk": wrk_version(),
            "profiler": args.profiler,
        },
    )
    table = "\n".join(f"- {t['target']}: {t['measured']} → {t['verdict']}" for t in document["targets"])
    return finish(args.results_dir, "http.json", table, errors, started)


if __name__ == "__main__":
    sys.exit(main())
