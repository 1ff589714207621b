"""The webhook figure's baseline, in its own process: ``python -m benchmarks.connections_bare ...``.

A bare aiohttp client posts the bodies Tributary's worker sent (recorded by the sink, so the same
bytes in the same batches) to the sink, one request in flight as the worker has, with a plain
`ClientSession` (keep-alive, no signing, no SSRF checks, no retries): what delivering those batches
costs without anything of Tributary's. The bodies are loaded before the clock; with
``--wait-for-go`` it says ``ready`` on stderr and starts on a line on stdin (`benchmarks.client`).
Prints one JSON object: requests, bytes and seconds (first request to last answer, its own clock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

from benchmarks.client import wait_for_go
from benchmarks.connections_sink import read_bodies

HEADERS = {"content-type": "application/json"}


async def post_all(url: str, bodies: list[bytes]) -> float:
    """Seconds to post every body, one after the other; raises on an answer other than 200."""
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        for body in bodies:
            async with session.post(url, data=body, headers=HEADERS) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"the sink answered {response.status}")
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="where to post")
    parser.add_argument("--bodies", type=Path, required=True, help="the bodies, as the sink dumped them")
    parser.add_argument("--wait-for-go", action="store_true", help="print 'ready' on stderr, start on a stdin line")
    args = parser.parse_args(argv)
    bodies = read_bodies(args.bodies)
    if args.wait_for_go:
        wait_for_go()
    seconds = asyncio.run(post_all(args.url, bodies))
    json.dump({"requests": len(bodies), "bytes": sum(map(len, bodies)), "seconds": seconds}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
