"""The runner every harness shares: its own flags, the engine to load, then libFuzzer.

A harness module defines a ``Target`` and calls ``main(TARGET)``. The runner takes two flags of
its own and hands every other argument to libFuzzer (``-max_total_time=``, ``-seed=``, corpus
directories, or files to run once):

- ``--work-dir DIR``: where a harness's engine keeps its data (emptied first); default a fresh
  temporary directory. libFuzzer ends the process with ``exit()``, past Python's clean-up, so
  ``make fuzz`` and the tests name a directory they remove themselves.
- ``--instrumented``: load the coverage-instrumented engine that ``make fuzz-build`` builds into
  ``target/fuzz`` instead of the installed ``cdp_server._core`` (see ``fuzz/__init__.py``).

Unless given, the runner adds libFuzzer flags: the target's dictionary
(``fuzz/dicts/<target>.dict``) and ``-max_len``, ``-rss_limit_mb=4096`` (an engine maps a 1 GiB
store), ``-timeout=30`` (an input that takes longer is a hang) and ``-keep_seed=1``: without
coverage feedback (the engine not instrumented) libFuzzer would drop every seed as uninteresting
and mutate an empty input instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import atheris

FUZZ_DIR = Path(__file__).resolve().parent
REPO = FUZZ_DIR.parent
# Where `make fuzz-build` copies the instrumented engine.
INSTRUMENTED_CORE = REPO / "target" / "fuzz" / "_core.so"

OneInput = Callable[[bytes], None]
Mutator = Callable[[bytes, int, int], bytes]


@dataclass(frozen=True)
class Target:
    """A fuzz target: a name (its corpus, dictionary and regressions are named after it), and a
    function that prepares it once (opening an engine in the work directory) and returns the
    function libFuzzer calls with each input. That function returns for every input the code
    handles as documented and raises for a crash."""

    name: str
    prepare: Callable[[Path], OneInput]
    # A structure-aware mutator (libFuzzer's LLVMFuzzerCustomMutator: data, max_size, seed).
    mutator: Mutator | None = None
    # Longest input libFuzzer makes (its default is 4096, or the largest seed).
    max_len: int = 4096


def load_instrumented_core() -> None:
    """Makes ``cdp_server._core`` the instrumented build, before anything imports the installed one.

    The instrumented library calls libFuzzer's ``__sanitizer_cov_*`` functions from its load-time
    constructors: it must be loaded after ``atheris.Setup`` has loaded atheris's libFuzzer."""
    if not INSTRUMENTED_CORE.exists():
        sys.exit(f"{INSTRUMENTED_CORE} is missing: run `make fuzz-build` first")
    if "cdp_server._core" in sys.modules:
        sys.exit("cdp_server._core was imported before the instrumented build could be loaded")
    spec = importlib.util.spec_from_file_location("cdp_server._core", INSTRUMENTED_CORE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cdp_server._core"] = module
    spec.loader.exec_module(module)
    import cdp_server

    cdp_server._core = module  # type: ignore[attr-defined]


def libfuzzer_args(target: Target, args: list[str]) -> list[str]:
    """libFuzzer's arguments: the caller's, and the runner's defaults for flags not given."""
    given = {arg.split("=", 1)[0] for arg in args if arg.startswith("-")}
    defaults = {"-rss_limit_mb": "4096", "-timeout": "30", "-keep_seed": "1", "-max_len": str(target.max_len)}
    dictionary = FUZZ_DIR / "dicts" / f"{target.name}.dict"
    if dictionary.exists():
        defaults["-dict"] = str(dictionary)
    return args + [f"{flag}={value}" for flag, value in defaults.items() if flag not in given]


def main(target: Target, argv: list[str] | None = None) -> None:
    """Parses the runner's flags, prepares the target and hands over to libFuzzer (never returns)."""
    args = list(sys.argv if argv is None else argv)
    program, rest = args[0], args[1:]
    work_dir: Path | None = None
    instrumented = False
    passed: list[str] = []
    while rest:
        arg = rest.pop(0)
        if arg == "--work-dir":
            work_dir = Path(rest.pop(0))
        elif arg.startswith("--work-dir="):
            work_dir = Path(arg.split("=", 1)[1])
        elif arg == "--instrumented":
            instrumented = True
        else:
            passed.append(arg)
    if work_dir is None:
        work_dir = Path(tempfile.mkdtemp(prefix=f"tributary-fuzz-{target.name}-"))
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    setup_args: dict[str, Mutator] = {}
    if target.mutator is not None:
        setup_args["custom_mutator"] = target.mutator
    # The instrumented engine's coverage hooks (__sanitizer_cov_*) are libFuzzer's, in the copy
    # that atheris loads when fuzzing starts: the engine can only be loaded after that, so the
    # target is prepared when the first input arrives, and atheris's copy is loaded with
    # RTLD_GLOBAL so that the engine's library resolves the hooks from it.
    prepared: list[OneInput] = []

    def one_input(data: bytes) -> None:
        if not prepared:
            if instrumented:
                load_instrumented_core()
            prepared.append(target.prepare(work_dir))
        prepared[0](data)

    atheris.Setup([program, *libfuzzer_args(target, passed)], one_input, **setup_args)
    if instrumented:
        sys.setdlopenflags(sys.getdlopenflags() | os.RTLD_GLOBAL)
    atheris.Fuzz()
