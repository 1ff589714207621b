"""The fuzz targets (fuzz/) in every test run: each seed and each kept crashing input replayed,
then a short fuzzing run per target with a fixed seed. The long runs are `make fuzz`'s.

Each harness runs as a child process (libFuzzer owns its process and ends it with exit()), on
the engine `make test` built; a crashing input is written to fuzz/crashes/ and named in the
failure. Once the crash is fixed the input moves to fuzz/regressions/<target>/, replayed here
from then on.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FUZZ = REPO / "fuzz"
TARGETS = ["http_json", "ingest_proto", "query"]
# Per target; three targets and their start-up stay under about 40 s.
SHORT_RUN_SECS = 9


def harness(target: str, work_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", f"fuzz.{target}", "--work-dir", str(work_dir), *args]
    # A generous bound on the child: libFuzzer stops itself (max_total_time, -timeout per input).
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def inputs_of(target: str) -> list[Path]:
    return sorted(
        path
        for folder in (FUZZ / "corpus" / target, FUZZ / "regressions" / target)
        if folder.is_dir()
        for path in folder.iterdir()
        if path.is_file() and path.name != "README.md"
    )


@pytest.mark.parametrize("target", TARGETS)
def test_every_seed_and_every_kept_crashing_input_is_handled(target: str, tmp_path: Path) -> None:
    inputs = inputs_of(target)
    assert inputs, f"fuzz/corpus/{target} has no seeds"
    # Files (not folders) on libFuzzer's command line are each run once.
    run = harness(target, tmp_path / "work", f"-artifact_prefix={tmp_path}/", *map(str, inputs))
    assert run.returncode == 0, f"an input of {target} crashed:\n{run.stderr[-6000:]}"
    assert f"Executed {inputs[-1]}" in run.stderr, run.stderr[-3000:]


@pytest.mark.parametrize("target", TARGETS)
def test_a_short_fuzzing_run_finds_no_crash(target: str, tmp_path: Path) -> None:
    crashes = FUZZ / "crashes"
    crashes.mkdir(exist_ok=True)
    before = set(crashes.iterdir())
    new_inputs = tmp_path / "corpus"
    new_inputs.mkdir()
    run = harness(
        target,
        tmp_path / "work",
        f"-max_total_time={SHORT_RUN_SECS}",
        "-seed=1",
        f"-artifact_prefix={crashes}/{target}-",
        str(new_inputs),  # libFuzzer adds what it finds to the first folder: not to the seeds
        str(FUZZ / "corpus" / target),
    )
    found = sorted(set(crashes.iterdir()) - before)
    assert run.returncode == 0 and not found, f"{target} crashed; input(s): {found}\n{run.stderr[-6000:]}"
    assert "Done " in run.stderr, run.stderr[-3000:]
