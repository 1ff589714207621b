"""The webhook receiver of the connections benchmark: counts what each path is sent, answers 200.

Both sides of the webhook figure post here, each to a path of its own (`/ours-1`, `/bare-1`, …):
Tributary's delivery worker and the bare aiohttp client. Per path the sink keeps the requests,
the bytes, the events (`len` of the body's JSON array, so that the count is exact and both sides
pay the same decode) and, on its own clock, when the first request came in and when the last one
was answered: the delivery window both sides are measured over. Bodies posted to a path starting
with `/record` are kept, and `POST /_dump` writes them to a file (4-byte little-endian length,
then the body, one after the other) for the bare client to send the very same bytes.

No access log, no signature check (a receiver would verify it; neither side's cost should be the
sink's), one event loop. `GET /_stats` answers every path's tally as JSON.

    python -m benchmarks.connections_sink [--port 0]

binds 127.0.0.1 and prints `serving http://127.0.0.1:PORT` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import struct
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from benchmarks.process import running_http_server

SERVING_PREFIX = "serving http://127.0.0.1:"
RECORDED_PREFIX = "/record"
# The largest batch Tributary sends (2,500 events of a few KB) fits.
MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass
class Tally:
    """What one path received. Times are `time.monotonic()` of the sink."""

    requests: int = 0
    events: int = 0
    body_bytes: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    bodies: list[bytes] = field(default_factory=list, repr=False)


def build_app() -> web.Application:
    tallies: dict[str, Tally] = {}

    async def receive(request: web.Request) -> web.Response:
        arrived = time.monotonic()
        body = await request.read()
        tally = tallies.get(request.path)
        if tally is None:
            tally = tallies[request.path] = Tally(first_at=arrived)
        tally.requests += 1
        tally.events += len(orjson.loads(body))
        tally.body_bytes += len(body)
        if request.path.startswith(RECORDED_PREFIX):
            tally.bodies.append(body)
        tally.last_at = time.monotonic()
        return web.Response(status=200)

    async def stats(request: web.Request) -> web.Response:
        shown = {path: {k: v for k, v in asdict(t).items() if k != "bodies"} for path, t in tallies.items()}
        return web.json_response(shown)

    async def dump(request: web.Request) -> web.Response:
        asked = await request.json()
        tally = tallies[asked["path"]]
        with Path(asked["file"]).open("wb") as out:
            for body in tally.bodies:
                out.write(struct.pack("<I", len(body)))
                out.write(body)
        return web.json_response({"requests": len(tally.bodies), "bytes": sum(map(len, tally.bodies))})

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_dump", dump)
    app.router.add_post("/{path:.*}", receive)
    return app


async def serve(port: int) -> None:
    """Serves until SIGTERM or SIGINT."""
    runner = web.AppRunner(build_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"{SERVING_PREFIX}{runner.addresses[0][1]}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def port_in_log(text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith(SERVING_PREFIX):
            return int(line.removeprefix(SERVING_PREFIX))
    return None


@contextlib.contextmanager
def running_sink(tmp: Path) -> Iterator[tuple[int, str]]:
    """The sink in its own process (its log in `tmp`); yields its pid and URL, stops it when the block ends."""
    argv = [sys.executable, "-m", "benchmarks.connections_sink"]
    repo = str(Path(__file__).resolve().parent.parent)  # `-m benchmarks...` from any working directory
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    with running_http_server(argv, log_path=tmp / "sink.log", port_in_log=port_in_log, env=env) as (process, port):
        yield process.pid, f"http://127.0.0.1:{port}"


def tallies(url: str) -> dict[str, Tally]:
    """Every path's tally, read from the running sink at `url`."""
    with urllib.request.urlopen(f"{url}/_stats", timeout=10) as response:
        shown: dict[str, dict[str, Any]] = json.loads(response.read())
    return {path: Tally(**values) for path, values in shown.items()}


def tally(url: str, path: str) -> Tally:
    """One path's tally (an empty one when nothing was posted to it yet)."""
    return tallies(url).get(path, Tally())


def dump_recorded(url: str, path: str, file: Path) -> tuple[int, int]:
    """Writes the bodies recorded on `path` to `file`; returns (requests, bytes)."""
    request = urllib.request.Request(
        f"{url}/_dump",
        data=json.dumps({"path": path, "file": str(file)}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        written = json.loads(response.read())
    return written["requests"], written["bytes"]


def read_bodies(file: Path) -> list[bytes]:
    """The bodies `dump_recorded` wrote, in the order they were received."""
    data = file.read_bytes()
    bodies = []
    offset = 0
    while offset < len(data):
        (size,) = struct.unpack_from("<I", data, offset)
        bodies.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return bodies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
