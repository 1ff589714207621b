"""Baseline of the HTTP benchmark: aiohttp handlers that do nothing but speak HTTP.

``POST /v1/{call}`` reads the whole body and answers ``{"success": true}`` (what Tributary's
Tracking API answers); ``GET /v1/spaces/{space}/collections/users/profiles/{id}/traits`` answers
one fixed body (``--traits-body FILE``: a real answer of Tributary's Profile API, so that both
send the same bytes). No parsing, no storage, no credentials checked and no access log: all it
measures is aiohttp's request path on one event loop, which is what a Python service in front
of a store would pay before doing any work.

``python -m benchmarks.http_baseline [--port 0] [--traits-body FILE]`` binds 127.0.0.1 and
prints ``serving http://127.0.0.1:PORT`` on stdout once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from aiohttp import web

SERVING_PREFIX = "serving http://127.0.0.1:"
DEFAULT_TRAITS_BODY = b'{"traits": {}, "cursor": {"url": "", "has_more": false, "next": "", "limit": 10}}'
_SUCCESS = b'{"success": true}'


def build_app(traits_body: bytes = DEFAULT_TRAITS_BODY) -> web.Application:
    async def tracking(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=_SUCCESS, content_type="application/json")

    async def traits(request: web.Request) -> web.Response:
        return web.Response(body=traits_body, content_type="application/json")

    app = web.Application(client_max_size=4 * 1024 * 1024)  # Tributary's batch limit is larger than aiohttp's 1 MiB
    app.router.add_post("/v1/{call}", tracking)
    app.router.add_get("/v1/spaces/{space}/collections/users/profiles/{profile}/traits", traits)
    return app


async def serve(port: int, traits_body: bytes) -> None:
    """Serves until SIGTERM or SIGINT."""
    runner = web.AppRunner(build_app(traits_body), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"{SERVING_PREFIX}{runner.addresses[0][1]}", flush=True)  # the port bound, when asked for 0
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--traits-body", type=Path, default=None, help="the body the /traits route answers")
    args = parser.parse_args(argv)
    body = args.traits_body.read_bytes() if args.traits_body else DEFAULT_TRAITS_BODY
    asyncio.run(serve(args.port, body))


if __name__ == "__main__":
    main()
