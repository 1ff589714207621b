"""The user's bulk path, run in its own process: ``python -m benchmarks.dicts_client ...``.

It reads the workload's JSON-lines file into Segment-Spec dicts before the clock starts (what a
user holds in memory), then times ``tributary.Client(...).stream(dicts)`` with the library's
defaults until the last acknowledgement, and prints one JSON object on stdout. With
``--wait-for-go`` it says ``ready`` on stderr and starts on a line on stdin (see
``benchmarks.client``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

from tributary import Client

from benchmarks.client import wait_for_go
from benchmarks.workload import read_json_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", required=True, help="host:port of the server")
    parser.add_argument("--json-lines", type=Path, required=True, help="the workload as JSON lines")
    parser.add_argument("--write-key", required=True, help="source write key")
    parser.add_argument("--wait-for-go", action="store_true", help="print 'ready' on stderr, start on a stdin line")
    args = parser.parse_args(argv)

    messages = read_json_lines(args.json_lines)
    if args.wait_for_go:
        wait_for_go()
    with Client(args.target, args.write_key) as client:
        started = time.perf_counter()
        summary = client.stream(messages)
        seconds = time.perf_counter() - started
    outcome = {
        "events": len(messages),
        "seconds": seconds,
        "batches": summary.batches,
        "accepted": summary.accepted,
        "duplicates": summary.duplicates,
        "conflicts": summary.conflicts,
        "rejected": summary.rejected,
        "reconnects": summary.reconnects,
        "first_rejection": repr(summary.rejections[0]) if summary.rejections else None,
        # The library's defaults, which this call uses: what a user gets.
        **{name: inspect.signature(Client.stream).parameters[name].default for name in ("batch_size", "window")},
    }
    json.dump(outcome, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
