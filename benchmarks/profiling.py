"""Where the time goes: a sampling profile of benchmark processes while they are measured.

The profiler is perf when it can attach (``perf record -e cpu-clock``: a software clock, so it
works in VMs without hardware counters; install with ``apt-get install linux-perf``), else
py-spy (``pip install py-spy``; ``py-spy record --native``), else none, and the report says how
to get one. Only the sampled function of each sample is kept (self time, no call graph: the
release build has no frame pointers), summarised per process role (server, client, ...), per
thread and per function. perf at ~500 Hz costs well under 1 % of a core, so the profile is taken
during the measured run itself rather than in a second one.

Nothing here may fail a benchmark: a profiler that cannot start or whose output cannot be read
leaves ``Profile.hot_path`` empty and says why in ``Profile.error``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

PERF_HZ = 499  # prime, so that sampling does not beat with periodic work
PY_SPY_HZ = 199
ATTACH_WAIT_S = 0.2  # perf and py-spy attach well within it
TOP_FRAMES = 12
TOP_THREADS = 8
SYMBOL_CHARS = 110


@dataclass(frozen=True)
class Frame:
    """One function's share of the profile's CPU samples (self time)."""

    share: float  # of all samples of the profiled processes, 0..1
    role: str  # "server", "client", ...
    thread: str
    function: str
    module: str


@dataclass(frozen=True)
class HotPath:
    """A profile, summarised for the report.

    Attributes:
        tool: "perf" or "py-spy".
        collected_at: When the profile was taken (ISO, UTC).
        seconds: Wall time profiled.
        samples: Samples taken.
        cores: Average CPU cores each role kept busy (CPU time / wall time).
        threads: (role, thread name, share) of the busiest threads.
        modules: (role, module, share) of the busiest modules (engine, grpcio, Python, libc, kernel ...).
        frames: The busiest functions.
        command: How to take the same profile by hand ...
        context: ... while this benchmark command runs.
    """

    tool: str
    collected_at: str
    seconds: float
    samples: int
    cores: dict[str, float]
    threads: list[tuple[str, str, float]]
    modules: list[tuple[str, str, float]]
    frames: list[Frame]
    command: str
    context: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HotPath:
        return cls(
            tool=data["tool"],
            collected_at=data["collected_at"],
            seconds=data["seconds"],
            samples=data["samples"],
            cores=dict(data["cores"]),
            threads=[(r, t, s) for r, t, s in data["threads"]],
            modules=[(r, m, s) for r, m, s in data["modules"]],
            frames=[Frame(**frame) for frame in data["frames"]],
            command=data["command"],
            context=data.get("context", ""),
        )


@dataclass
class Profile:
    """Filled when the ``profiled`` block ends."""

    hot_path: HotPath | None = None
    error: str | None = None
    tool: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "error": self.error, "hot_path": self.hot_path.to_json() if self.hot_path else None}


@dataclass
class _Sample:
    role: str
    thread: str
    function: str
    module: str
    weight: float  # CPU seconds the sample stands for


@cache
def available_profiler() -> str | None:
    """ "perf" if it can record a software clock here, else "py-spy" if installed, else None."""
    perf = shutil.which("perf")
    if perf:
        with tempfile.TemporaryDirectory(prefix="bench-perf-check-") as tmp:
            check = [perf, "record", "-q", "-e", "cpu-clock", "-F", "99", "-o", f"{tmp}/check.data", "--", "true"]
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                if subprocess.run(check, capture_output=True, timeout=30).returncode == 0:
                    return "perf"
    if shutil.which("py-spy"):
        return "py-spy"
    return None


def how_to_profile() -> str:
    """What to install when no profiler is available."""
    return "no profiler found: `apt-get install linux-perf` (or `pip install py-spy`), then run again"


@contextlib.contextmanager
def profiled(
    roles: Mapping[str, int], *, tool: str | None = "auto", context: str = "", attach_wait_s: float = ATTACH_WAIT_S
) -> Iterator[Profile]:
    """Samples the processes ``roles`` (role name → pid) for the duration of the block.

    Args:
        roles: The processes to sample, by the role they play in the run.
        tool: "perf", "py-spy", "auto" (the first available) or None (no profile).
        context: The benchmark command the profile belongs to, for the reproduction hint.
        attach_wait_s: How long to give the profiler to attach before the block runs (0 when the
            block times something that has already started, such as a server's start-up).
    """
    profile = Profile()
    chosen = available_profiler() if tool == "auto" else tool
    profile.tool = chosen
    if chosen is None:
        profile.error = how_to_profile() if tool == "auto" else "profiling off"
        yield profile
        return
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        recorders: list[tuple[subprocess.Popen[bytes], str, Path]] = []
        started = time.monotonic()
        try:
            recorders = _start(chosen, roles, Path(tmp))
        except OSError as exc:
            profile.error = f"{chosen} did not start: {exc}"
        time.sleep(attach_wait_s if recorders else 0.0)
        try:
            yield profile
        finally:
            seconds = time.monotonic() - started
            if recorders:
                try:
                    samples = _stop_and_read(chosen, recorders, roles)
                    command = _command(chosen, roles)
                    profile.hot_path = summarise(
                        samples, tool=chosen, seconds=seconds, command=command, context=context
                    )
                except (OSError, subprocess.SubprocessError, ValueError) as exc:
                    profile.error = f"no profile from {chosen}: {exc}"


def _start(tool: str, roles: Mapping[str, int], tmp: Path) -> list[tuple[subprocess.Popen[bytes], str, Path]]:
    if tool == "perf":
        out = tmp / "perf.data"
        pids = ",".join(str(pid) for pid in roles.values())
        argv = ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(PERF_HZ), "-p", pids, "-o", str(out)]
        return [(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), "", out)]
    recorders = []
    for role, pid in roles.items():  # py-spy samples one process each
        out = tmp / f"{role}.txt"
        argv = ["py-spy", "record", "--pid", str(pid), "--native", "--threads"]  # --native pauses to sample
        argv += ["--rate", str(PY_SPY_HZ), "--format", "raw", "--output", str(out)]
        recorders.append((subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), role, out))
    return recorders


def _stderr(process: subprocess.Popen[bytes]) -> str:
    """What an exited recorder said on stderr (its last lines); closes the pipe."""
    if process.stderr is None or process.stderr.closed:
        return ""
    with process.stderr:
        data = process.stderr.read()
    return data.decode(errors="replace").strip()[-300:]


def _stop_and_read(
    tool: str, recorders: list[tuple[subprocess.Popen[bytes], str, Path]], roles: Mapping[str, int]
) -> list[_Sample]:
    for recorder, _, _ in recorders:
        if recorder.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                recorder.send_signal(signal.SIGINT)  # both write their output on SIGINT
    for recorder, _, _ in recorders:
        try:
            recorder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()
            raise
    # A recorder that could not attach has exited by itself with an error; its stderr says why.
    errors = {id(recorder): _stderr(recorder) for recorder, _, _ in recorders}  # and closes the pipes
    samples: list[_Sample] = []
    if tool == "perf":
        (recorder, _, out), *_ = recorders
        if not out.exists() or recorder.returncode not in (0, -signal.SIGINT, 130):
            said = errors[id(recorder)]
            raise ValueError(f"perf exited with {recorder.returncode}" + (f": {said}" if said else ""))
        script = subprocess.run(
            ["perf", "script", "-i", str(out), "-F", "comm,pid,tid,period,ip,sym,dso"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=300,
        )
        role_of = {pid: role for role, pid in roles.items()}
        samples = list(parse_perf_script(script.stdout.splitlines(), role_of))
    else:
        for recorder, role, out in recorders:
            if not out.exists():
                raise ValueError(f"py-spy wrote nothing for the {role}: {errors[id(recorder)]}")
            samples += parse_py_spy_raw(out.read_text(errors="replace").splitlines(), role)
    return samples


_PERF_LINE = re.compile(
    r"^\s*(?P<comm>.*?)\s+(?P<pid>\d+)/(?P<tid>\d+)\s+(?P<period>\d+)\s+(?P<ip>[0-9a-f]+)\s+(?P<sym>.*?)\s*"
    r"\((?P<dso>[^()]*)\)\s*$"
)


def parse_perf_script(lines: Iterable[str], role_of: Mapping[int, str]) -> Iterator[_Sample]:
    """Samples from ``perf script -F comm,pid,tid,period,ip,sym,dso`` (cpu-clock: period in ns)."""
    for line in lines:
        match = _PERF_LINE.match(line)
        if match is None:
            continue
        dso = match["dso"]
        yield _Sample(
            role=role_of.get(int(match["pid"]), f"pid {match['pid']}"),
            thread=match["comm"].strip() or "?",
            function=_short(match["sym"] or "[unknown]"),
            module=module_name(dso),
            weight=int(match["period"]) / 1e9,
        )


_PY_SPY_FRAME = re.compile(r"^(?P<function>.*?)\s*\((?P<where>[^()]*)\)$")


def parse_py_spy_raw(lines: Iterable[str], role: str) -> Iterator[_Sample]:
    """Samples from ``py-spy record --format raw --threads``: ``thread;frame;...;leaf count``,
    frames as ``function (file.py:line)`` or ``symbol (library)``."""
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0] if frames[0].startswith(("thread", "process")) else "?"
        leaf = frames[-1]
        match = _PY_SPY_FRAME.match(leaf)
        function, where = (match["function"], match["where"]) if match else (leaf, "")
        module = module_name(where.split(":")[0]) if where else "?"
        yield _Sample(role, thread, _short(function), module, int(count) / PY_SPY_HZ)


_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")


def _short(symbol: str) -> str:
    symbol = _RUST_HASH.sub("", symbol.strip())
    return symbol if len(symbol) <= SYMBOL_CHARS else symbol[: SYMBOL_CHARS - 1] + "…"


def module_name(dso: str) -> str:
    """A readable name for the code a sample ran in."""
    name = os.path.basename(dso)
    known = (
        ("kernel", "kernel"),
        ("_core", "engine (_core)"),
        ("cygrpc", "grpcio (C core)"),
        ("libpython", "CPython"),
        ("python3", "CPython"),
        ("orjson", "orjson"),
        ("_upb", "protobuf (upb)"),
        ("libc.so", "libc"),
        ("libc-", "libc"),
        ("ld-linux", "ld.so"),
        ("libstdc++", "libstdc++"),
    )
    for needle, label in known:
        if needle in name or needle in dso:
            return label
    if name.endswith(".py"):
        return f"Python: {name}"
    return name or "?"


def summarise(samples: list[_Sample], *, tool: str, seconds: float, command: str, context: str = "") -> HotPath:
    """The profile's busiest roles, threads, modules and functions."""
    total = sum(s.weight for s in samples) or 1.0
    cpu: dict[str, float] = defaultdict(float)
    threads: dict[tuple[str, str], float] = defaultdict(float)
    modules: dict[tuple[str, str], float] = defaultdict(float)
    frames: dict[tuple[str, str, str, str], float] = defaultdict(float)
    for s in samples:
        cpu[s.role] += s.weight
        threads[(s.role, s.thread)] += s.weight
        modules[(s.role, s.module)] += s.weight
        frames[(s.role, s.thread, s.function, s.module)] += s.weight

    def top(table: Mapping[Any, float], n: int) -> list[tuple[Any, float]]:
        return sorted(table.items(), key=lambda item: -item[1])[:n]

    return HotPath(
        tool=tool,
        collected_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
        seconds=round(seconds, 3),
        samples=len(samples),
        cores={role: round(value / seconds, 2) if seconds > 0 else 0.0 for role, value in cpu.items()},
        threads=[(role, thread, round(w / total, 4)) for (role, thread), w in top(threads, TOP_THREADS)],
        modules=[(role, module, round(w / total, 4)) for (role, module), w in top(modules, TOP_THREADS)],
        frames=[
            Frame(round(w / total, 4), role, thread, function, module)
            for (role, thread, function, module), w in top(frames, TOP_FRAMES)
        ],
        command=command,
        context=context,
    )


def _command(tool: str, roles: Mapping[str, int]) -> str:
    pids = ",".join(f"<{role} pid>" for role in roles)
    if tool == "perf":
        return (
            f"perf record -e cpu-clock -F {PERF_HZ} -p {pids} -o hot.data && "
            "perf report -i hot.data --no-children --sort comm,dso,sym"
        )
    return f"py-spy record --native --threads --format raw -o hot.txt --pid <pid>  (one per process: {pids})"
