"""The map grows when full; a full disk answers RESOURCE_EXHAUSTED and harms nothing acked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest
from rpc import Rpc, track


def test_map_full_grows_the_map_and_ingest_continues(server_factory: object) -> None:
    server = server_factory(env={"TRIBUTARY_MAP_SIZE_BYTES": str(1 << 20)})  # type: ignore[operator]
    rpc = Rpc(server)
    blob = "x" * 20_000
    for b in range(10):  # ~4 MB into a 1 MiB map
        acks = rpc.stream([[track(f"m{b}-{i}", properties={"blob": blob}) for i in range(20)]])
        assert acks[0].accepted == 20
    assert len(rpc.events("user_id:u1")) == 200


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
