"""Baseline (c): the ingest one would write first in plain Python (grpcio + py-lmdb).

It keeps Tributary's promise that an ack means durable and deduplicated: each event's
messageId is looked up in a dedupe index (an LMDB database keyed by messageId), new events
are appended under an increasing key together with their dedupe marker, and the group is
committed with fsync before any of its batches is acknowledged. Group commit (every batch
that arrived while the previous commit ran goes into the next transaction) is the obvious
optimisation, so the baseline has it. ``python -m benchmarks.python_pipeline --port P --data-dir D``.
"""

from __future__ import annotations

import queue
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import lmdb
from tributary._proto.cdp.v1 import ingest_pb2

from benchmarks.stream_server import port_argument, serve_stream

# Sparse on Linux: a large map costs nothing until written, and never fills during a run.
MAP_SIZE = 64 << 30
_EVENT_KEY = struct.Struct(">Q")  # big-endian, so increasing keys append at the B-tree's end


class PythonPipeline:
    """Decode, dedupe, append, commit: one writer, one transaction per group of batches."""

    def __init__(self, data_dir: Path) -> None:
        # Default flags: sync and metasync on, so a commit returns only once it is on disk.
        self._env = lmdb.open(str(data_dir), map_size=MAP_SIZE, max_dbs=2)
        self._events = self._env.open_db(b"events")
        self._dedupe = self._env.open_db(b"dedupe")
        self._next_key = 1
        self._write_lock = threading.Lock()  # LMDB allows one writer; streams take turns

    def write_group(self, requests: list[ingest_pb2.StreamRequest]) -> list[bytes]:
        """Stores the batches in one committed transaction; returns their encoded acks."""
        acks = []
        with self._write_lock, self._env.begin(write=True) as txn:
            next_key = self._next_key
            for request in requests:
                accepted = duplicates = 0
                for event in request.batch.events:
                    message_id = event.message_id.encode()
                    if txn.get(message_id, db=self._dedupe) is not None:
                        duplicates += 1
                        continue
                    key = _EVENT_KEY.pack(next_key)
                    next_key += 1
                    txn.put(key, event.SerializeToString(), db=self._events, append=True)
                    txn.put(message_id, key, db=self._dedupe)
                    accepted += 1
                acks.append(
                    ingest_pb2.StreamResponse(
                        sequence=request.sequence, accepted=accepted, duplicates=duplicates
                    ).SerializeToString()
                )
        # Only reached once the commit (and its fsync) succeeded.
        self._next_key = next_key
        return acks

    def stream(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        """A reader thread decodes incoming batches while this generator commits and acks."""
        pending: queue.SimpleQueue[ingest_pb2.StreamRequest | None] = queue.SimpleQueue()

        def read() -> None:
            try:
                for raw in requests:
                    pending.put(ingest_pb2.StreamRequest.FromString(raw))
            finally:
                pending.put(None)  # end of stream, or the call was cancelled

        threading.Thread(target=read, name="stream-reader", daemon=True).start()
        ended = False
        while not ended:
            group = [pending.get()]
            while not pending.empty():
                group.append(pending.get_nowait())
            ended = group[-1] is None
            batches = [request for request in group if request is not None]
            if batches:
                yield from self.write_group(batches)


def main() -> None:
    parser = port_argument(__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, required=True, help="fresh directory for the LMDB environment")
    args = parser.parse_args()
    serve_stream(PythonPipeline(args.data_dir).stream, args.port)


if __name__ == "__main__":
    main()
