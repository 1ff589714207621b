"""A fault-injecting HTTP receiver on 127.0.0.1 for destination tests.

A plain asyncio server in a background thread (its own loop), speaking just enough HTTP/1.1 by
hand that each fault is exact: a hang sends nothing at all, a drip sends the status line itself
one byte at a time, a reset is a real TCP RST (SO_LINGER 0). Every request is recorded (method,
path, headers, body, arrival time) before it is answered; connections are kept alive, many at
once.

    sink = WebhookSink.start()
    sink.respond(Reply(503, body=b"down"))           # every request from now on
    sink.script([Reply(503), Reply(503)])            # the next two, then the default again
    sink.respond(Reply(429, headers={"Retry-After": "7"}))
    sink.respond(Reply.hang()); sink.release()       # no answer until released (or closed)
    sink.respond(Reply.drip(interval=0.05)); sink.respond(Reply.reset())
    sink.respond(Reply.redirect("http://127.0.0.1:9/"))
    sink.requests, sink.url, sink.address; sink.close()
    request.reply                                    # how the sink answered that request

The sink binds only a loopback address (127.0.0.1 unless told another of 127.0.0.0/8:
`WebhookSink.start(host="127.0.0.2")`) and closes itself after `max_lifetime` seconds if a test
forgets.
"""

from __future__ import annotations

import asyncio
import http
import ipaddress
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

LOOPBACK = "127.0.0.1"
MAX_HEAD_BYTES = 64 * 1024
Behaviour = Literal["answer", "hang", "drip", "reset"]


@dataclass(frozen=True)
class Reply:
    """How the sink answers one request."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    behaviour: Behaviour = "answer"
    drip_interval: float = 0.05
    # Announced instead of len(body): a larger value makes a body that never ends.
    content_length: int | None = None

    @classmethod
    def hang(cls) -> Reply:
        """Read the request, then send nothing until `release()` or `close()`."""
        return cls(behaviour="hang")

    @classmethod
    def drip(cls, status: int = 200, interval: float = 0.05) -> Reply:
        """The whole response, status line first, one byte every `interval` seconds."""
        return cls(status, body=b"dripped", behaviour="drip", drip_interval=interval)

    @classmethod
    def reset(cls) -> Reply:
        """Read the request, then reset the connection (RST) without answering."""
        return cls(behaviour="reset")

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Reply:
        return cls(status, headers={"Location": location})


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    received_at: float  # time.monotonic()
    reply: Reply  # how the sink answered it (the script's entry or the default)


class WebhookSink:
    """Use `WebhookSink.start()`; a context manager that closes on exit."""

    def __init__(self, max_lifetime: float, host: str = LOOPBACK) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"a sink binds only loopback addresses, not {host}")
        self.host = host
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._requests: list[ReceivedRequest] = []
        self._default = Reply()
        self._script: deque[Reply] = deque()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._released: asyncio.Event | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._max_lifetime = max_lifetime
        self._thread = threading.Thread(target=self._run, name="webhook-sink", daemon=True)
        self.port = 0

    @classmethod
    def start(cls, max_lifetime: float = 120.0, host: str = LOOPBACK) -> WebhookSink:
        sink = cls(max_lifetime, host)
        sink._thread.start()
        if not sink._ready.wait(10):
            raise RuntimeError("the webhook sink did not start")
        return sink

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/hook"

    def respond(self, reply: Reply | int) -> None:
        """The answer to every request not taken by a script."""
        with self._lock:
            self._default = Reply(reply) if isinstance(reply, int) else reply

    def script(self, replies: Iterable[Reply | int]) -> None:
        """Answers for the next requests, in order; then the default again."""
        with self._lock:
            self._script.extend(Reply(reply) if isinstance(reply, int) else reply for reply in replies)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self._requests) >= count, timeout)
            return list(self._requests)

    def release(self) -> None:
        """Ends every hanging request (their connections are closed unanswered)."""
        self._loop.call_soon_threadsafe(self._release_hanging)

    def close(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
            self._thread.join(timeout=10)

    def __enter__(self) -> WebhookSink:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # The sink's own thread and loop from here on.

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._listen())
        self._ready.set()
        self._loop.call_later(self._max_lifetime, lambda: asyncio.ensure_future(self._shutdown()))
        self._loop.run_forever()
        self._loop.close()

    async def _listen(self) -> None:
        self._released = asyncio.Event()
        self._server = await asyncio.start_server(self._on_connection, self.host, 0, limit=MAX_HEAD_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]

    def _release_hanging(self) -> None:
        assert self._released is not None
        self._released.set()
        self._released = asyncio.Event()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        self._release_hanging()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        self._loop.call_soon(self._loop.stop)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.transport.abort()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Reads, records and answers one request; False when the connection is to be closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed the connection
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _version = request_line.split(" ", 2)
        headers = {}
        for line in filter(None, header_lines):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self._read_body(reader, headers)
        with self._arrived:
            reply = self._script.popleft() if self._script else self._default
            self._requests.append(ReceivedRequest(method, path, headers, body, time.monotonic(), reply))
            self._arrived.notify_all()
        return await self._answer(reply, reader, writer)

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return b"".join(chunks)
        return await reader.readexactly(int(headers.get("content-length", "0")))

    async def _answer(self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if reply.behaviour == "hang":
            assert self._released is not None
            await self._released.wait()
            return False
        if reply.behaviour == "reset":
            # Linger 0: close() sends an RST instead of a FIN.
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        keep_alive = reply.behaviour == "answer"
        response = self._encode(reply, keep_alive)
        if keep_alive:
            writer.write(response)
            await writer.drain()
            return True
        for index in range(len(response)):
            if writer.is_closing() or reader.at_eof():  # the client gave up
                break
            writer.write(response[index : index + 1])
            await writer.drain()
            await asyncio.sleep(reply.drip_interval)
        return False

    @staticmethod
    def _encode(reply: Reply, keep_alive: bool) -> bytes:
        body = reply.body or (b"" if reply.status < 300 else f"error {reply.status}".encode())
        try:
            phrase = http.HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [
            f"HTTP/1.1 {reply.status} {phrase}",
            f"Content-Length: {reply.content_length if reply.content_length is not None else len(body)}",
        ]
        lines += [f"{name}: {value}" for name, value in reply.headers.items()]
        lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
