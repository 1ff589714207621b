"""The streaming ingest client, run in its own process: ``python -m benchmarks.client ...``.

It sends the cached, pre-encoded StreamRequests over ``/cdp.v1.IngestService/Stream`` as raw
bytes (no serializer), keeps at most ``window`` batches unacknowledged, records each batch's
ack latency (every sample is kept, for the report's latency chart), and prints one JSON object
on stdout. A separate process keeps the client's CPU and GIL out of the server's measurement,
as with a real producer.

With ``--server-pid`` it also samples the server's anonymous resident memory (``RssAnon`` in
``/proc/PID/status``) before the first batch, every ``--rss-every`` acks and after the last one,
against the events acknowledged so far: a read of one small file, off the measured path's CPU.
With ``--wait-for-go`` it prints ``ready`` on stderr once loaded and starts only when a line
arrives on stdin, so that the harness can attach a profiler to the timed part alone.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
from tributary._proto.cdp.v1 import ingest_pb2

from benchmarks.measurement import AckLatency
from benchmarks.workload import load_batches

STREAM_METHOD = "/cdp.v1.IngestService/Stream"
# Batches are ~150 KB; lift grpcio's 4 MB default anyway so a bigger --batch never fails.
CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


@dataclass
class StreamOutcome:
    """What the server acknowledged, summed over all acks."""

    batches: int
    acks: int
    seconds: float
    accepted: int
    duplicates: int
    conflicts: int
    rejected: int
    ack: AckLatency
    # Every batch's ack latency in ms (2 decimals), in the order the acks came.
    ack_samples_ms: list[float]
    # (events acknowledged, server RssAnon bytes) pairs; empty without --server-pid.
    rss: list[tuple[int, int]]


def basic_auth(write_key: str) -> tuple[str, str]:
    """Segment's convention: the write key is the user name, the password is empty."""
    return ("authorization", "Basic " + base64.b64encode(f"{write_key}:".encode()).decode())


def rss_anon_bytes(pid: int) -> int:
    """The process's anonymous resident memory (``RssAnon``), in bytes; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1]) * 1024  # the kernel writes kB
    except OSError:
        return 0
    return 0


def wait_for_go() -> None:
    """The harness's handshake: say we are loaded, start when told to (see the module doc)."""
    print("ready", file=sys.stderr, flush=True)
    sys.stdin.readline()


def stream_batches(
    target: str,
    batches: list[bytes],
    *,
    window: int,
    write_key: str | None,
    timeout_s: float,
    server_pid: int | None = None,
    rss_every: int = 0,
) -> StreamOutcome:
    """Streams every batch with at most ``window`` unacknowledged; returns once all are acked."""
    slots = threading.Semaphore(window)
    stopped = threading.Event()
    sent_at: dict[int, float] = {}

    def requests() -> Iterator[bytes]:
        # Runs on grpcio's request-consumer thread; sequence numbers are the 1-based positions.
        for sequence, data in enumerate(batches, 1):
            while not slots.acquire(timeout=0.1):
                if stopped.is_set():  # the call failed: do not block grpcio's thread forever
                    return
            sent_at[sequence] = time.perf_counter()
            yield data

    metadata: tuple[tuple[str, str | bytes], ...] = (basic_auth(write_key),) if write_key else ()
    latencies: list[float] = []
    rss: list[tuple[int, int]] = []
    accepted = duplicates = conflicts = rejected = 0
    if server_pid:
        rss.append((0, rss_anon_bytes(server_pid)))
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)  # connect before the clock starts
        stream = channel.stream_stream(STREAM_METHOD, request_serializer=None, response_deserializer=None)
        started = time.perf_counter()
        call = stream(requests(), metadata=metadata, timeout=timeout_s)
        try:
            for raw in call:
                acked_at = time.perf_counter()
                response = ingest_pb2.StreamResponse.FromString(raw)
                latencies.append(acked_at - sent_at.pop(response.sequence))
                accepted += response.accepted
                duplicates += response.duplicates
                conflicts += response.conflicts
                rejected += len(response.rejections)
                slots.release()
                if rss_every and server_pid and len(latencies) % rss_every == 0:
                    rss.append((accepted, rss_anon_bytes(server_pid)))
        finally:
            stopped.set()
        seconds = time.perf_counter() - started
    if server_pid and (not rss or rss[-1][0] != accepted):
        rss.append((accepted, rss_anon_bytes(server_pid)))
    return StreamOutcome(
        batches=len(batches),
        acks=len(latencies),
        seconds=seconds,
        accepted=accepted,
        duplicates=duplicates,
        conflicts=conflicts,
        rejected=rejected,
        ack=AckLatency.from_seconds(latencies),
        ack_samples_ms=[round(x * 1000, 2) for x in latencies],
        rss=rss,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", required=True, help="host:port of the server")
    parser.add_argument("--workload", type=Path, required=True, help="workload cache file")
    parser.add_argument("--window", type=int, default=16, help="max unacknowledged batches")
    parser.add_argument("--write-key", default=None, help="source write key (Basic auth)")
    parser.add_argument("--timeout", type=float, default=600.0, help="deadline of the stream, seconds")
    parser.add_argument("--server-pid", type=int, default=None, help="sample this process's RssAnon")
    parser.add_argument("--rss-every", type=int, default=20, help="acks between two RssAnon samples")
    parser.add_argument("--wait-for-go", action="store_true", help="print 'ready' on stderr, start on a stdin line")
    args = parser.parse_args(argv)

    batches = load_batches(args.workload)
    if args.wait_for_go:
        wait_for_go()
    outcome = stream_batches(
        args.target,
        batches,
        window=args.window,
        write_key=args.write_key,
        timeout_s=args.timeout,
        server_pid=args.server_pid,
        rss_every=args.rss_every,
    )
    json.dump(asdict(outcome), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
