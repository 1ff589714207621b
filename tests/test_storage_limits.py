"""The map grows when full; a full disk answers RESOURCE_EXHAUSTED and harms nothing acked."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import grpc
import pytest
from rpc import Rpc, batch, track
from tributary._proto.cdp.v1 import ingest_pb2

from cdp_server import _core


def test_map_full_grows_the_map_and_ingest_continues(server_factory: object) -> None:
    server = server_factory(env={"TRIBUTARY_MAP_SIZE_BYTES": str(1 << 20)})  # type: ignore[operator]
    rpc = Rpc(server)
    blob = "x" * 20_000
    for b in range(10):  # ~4 MB into a 1 MiB map
        acks = rpc.stream([[track(f"m{b}-{i}", properties={"blob": blob}) for i in range(20)]])
        assert acks[0].accepted == 20
    assert len(rpc.events("user_id:u1")) == 200
    # The engine's own log records reach the server's JSON log (through Python's logging).
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    grown = [line for line in lines if line["logger"] == "tributary_engine.store" and "grown" in line["msg"]]
    assert grown and grown[0]["level"] == "info", lines[-5:]


def test_engine_log_records_reach_python_logging(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tributary_engine")
    engine = _core.Engine(tmp_path / "data", map_size=1 << 16)
    try:
        events = [track(f"m{i}", properties={"blob": "z" * 4_000}) for i in range(40)]
        engine.send(1, ingest_pb2.SendRequest(batch=batch(events)).SerializeToString())
    finally:
        engine.close()
    grown = [r for r in caplog.records if r.name == "tributary_engine.store" and "grown to" in r.getMessage()]
    assert grown and grown[0].levelno == logging.INFO, [r.getMessage() for r in caplog.records]


@pytest.fixture
def small_disk(tmp_path: Path) -> object:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_is_resource_exhausted_and_acked_data_survives(server_factory: object, small_disk: Path) -> None:
    server = server_factory(start=False)  # type: ignore[operator]
    server.data_dir = small_disk / "data"
    server.start()
    rpc = Rpc(server)
    blob = "y" * 20_000
    acked: list[str] = []
    refused = None
    for b in range(100):  # ~40 MB: far more than the disk holds
        events = [track(f"m{b}-{i}", properties={"blob": blob}) for i in range(20)]
        try:
            rpc.send(events)
        except grpc.RpcError as exc:
            refused = exc
            break
        acked += [e.message_id for e in events]
    assert refused is not None, "the disk never filled"
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.details()  # type: ignore[attr-defined]
    assert acked, "nothing was acked before the disk filled"
    # Reads keep working while the disk is full.
    assert {e.message_id for e in rpc.events("user_id:u1")} == set(acked)
    # Space returns: ingest resumes without a restart.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    rpc.send([track("after")])
    server.kill()
    server.start()
    assert {e.message_id for e in Rpc(server).events("user_id:u1")} == {*acked, "after"}
