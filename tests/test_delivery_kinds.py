"""The other built-in kinds through a real server: what a user configures, the server delivers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from delivery_helpers import Destinations
from rpc import Rpc, track


def test_files_destination_writes_every_event_once_per_day_folder(server: Any, tmp_path: Path) -> None:
    destinations = Destinations(server)
    lake = tmp_path / "lake"
    destinations.create("lake", "files", {"directory": str(lake)}, batch_size=40)
    rpc = Rpc(server)
    try:
        rpc.send([track(f"m{i}") for i in range(100)])
    finally:
        rpc.close()
    stats = destinations.settled("lake")
    lines = [json.loads(line) for path in sorted(lake.rglob("*.jsonl")) for line in path.read_text().splitlines()]
    assert sorted(e["messageId"] for e in lines) == sorted(f"m{i}" for i in range(100))
    assert stats.delivered == 100
    assert not list(lake.rglob(".*.tmp")), "no temporary file is left behind"


def test_an_unknown_kind_or_bad_settings_are_refused_naming_the_field(server: Any, tmp_path: Path) -> None:
    destinations = Destinations(server)
    for kind, settings, field in [
        ("ftp", {}, "destination.kind"),
        ("files", {"directory": "relative/path"}, "destination.settings.directory"),
        ("webhook", {}, "destination.settings.url"),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            destinations.create("d", kind, settings)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (refused.value.details() or ""), refused.value.details()
