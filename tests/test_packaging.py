"""The built wheels, installed the way a user installs them, give a working `cdp`.

The server's wheel (`maturin build`) and the client's (`pip wheel clients/python`) are built into
a scratch folder, and the server's is installed by name into a fresh virtualenv with
`pip install --no-index --find-links SCRATCH tributary-cdp`: pip installs the client only
because the server's wheel declares it, which is what this test is about (before, the server's
wheel alone gave a `cdp import` failing with "No module named 'tributary'").

Nothing may be downloaded while the tests run, so the third-party dependencies (grpcio,
protobuf, click, rich, ...) come from this project's `.venv`: a folder of symlinks to exactly
the files of those distributions and of their own dependencies (by their metadata and RECORD)
is put on the fresh venv's path by a `.pth` file. pip sees them as installed and only checks
their versions. Neither of the project's own packages is linked: in `.venv` they are editable
installs (a `.pth` file of the project folder for `cdp_server`, an import finder for
`tributary`), and the test proves that the fresh venv imports both from its own site-packages.

The wheels are built from cargo's target folder with the interpreter of `.venv`, as `make`
builds them, so the Rust build is cached.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from rpc import Rpc

if TYPE_CHECKING:
    from conftest import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
SERVER_DISTRIBUTION = "tributary-cdp"
CLIENT_DISTRIBUTION = "tributary-client"
BUILD_TIMEOUT_SECS = 600.0
COMMAND_TIMEOUT_SECS = 120.0


def run(
    command: list[str | Path],
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT_SECS,
) -> subprocess.CompletedProcess[str]:
    """Runs a command to completion; fails the test with its output unless it exits with 0."""
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def build_wheels(out: Path) -> None:
    """The server's wheel with maturin, the client's with pip (setuptools, no build isolation:
    no download), from a copy of clients/python so that setuptools' build folders stay out of
    the work tree."""
    bin_dir = Path(sys.executable).parent
    run(
        [bin_dir / "maturin", "build", "--release", "-q", "-o", out, "-i", sys.executable],
        timeout=BUILD_TIMEOUT_SECS,
    )
    client = out.parent / "client-source"
    shutil.copytree(
        ROOT / "clients" / "python", client, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    )
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", client, "-w", out])


def third_party_dependencies() -> list[importlib.metadata.Distribution]:
    """The installed distributions the server and the client need at run time (transitively),
    not the two themselves."""
    own = {SERVER_DISTRIBUTION, CLIENT_DISTRIBUTION}
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = [SERVER_DISTRIBUTION, CLIENT_DISTRIBUTION]
    while pending:
        for text in importlib.metadata.requires(pending.pop()) or []:
            requirement = Requirement(text)
            name = requirement.name.lower().replace("_", "-")
            if name in own or name in found:
                continue
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            found[name] = importlib.metadata.distribution(name)
            pending.append(name)
    return list(found.values())


def link_dependencies(into: Path) -> None:
    """Symlinks the top-level files and folders (and the .dist-info) of each dependency."""
    into.mkdir()
    for distribution in third_party_dependencies():
        for file in distribution.files or []:
            top = file.parts[0]
            if top in ("..", "__pycache__") or top.endswith(".pth") or (into / top).exists():
                continue
            assert top not in ("tributary", "cdp_server"), f"{distribution.metadata['Name']} ships {top}"
            os.symlink(Path(str(distribution.locate_file(top))), into / top)


def fresh_venv(path: Path, dependencies: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    (Path(site) / "project-dependencies.pth").write_text(f"{dependencies}\n")
    return python


def isolated_env() -> dict[str, str]:
    """No PYTHONPATH, no TRIBUTARY_* settings, no index (nothing is downloaded)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIBUTARY_", "PYTHON", "PIP_", "VIRTUAL_ENV"))}
    return {**env, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "NO_COLOR": "1", "COLUMNS": "200"}


def test_the_server_wheel_installs_the_client_and_cdp_imports_a_file(server: ServerProcess, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build_wheels(wheels)
    dependencies = tmp_path / "dependencies"
    link_dependencies(dependencies)
    python = fresh_venv(tmp_path / "venv", dependencies)
    env = isolated_env()
    work = tmp_path / "work"  # not the project folder: nothing of the work tree is importable
    work.mkdir()
    installed = run(
        [python, "-m", "pip", "install", "--no-index", "--find-links", wheels, SERVER_DISTRIBUTION],
        cwd=work,
        env=env,
    )
    assert f"Successfully installed {SERVER_DISTRIBUTION}-0.1.0 {CLIENT_DISTRIBUTION}-0.1.0" in installed.stdout

    imports = "import cdp_server, cdp_server._core, tributary; print(cdp_server.__file__, tributary.__file__)"
    where = run([python, "-c", imports], cwd=work, env=env)
    site = tmp_path / "venv" / "lib"
    assert all(Path(file).is_relative_to(site) for file in where.stdout.split()), where.stdout

    cdp = tmp_path / "venv" / "bin" / "cdp"
    version = run([cdp, "--version"], cwd=work, env=env)
    assert "0.1.0" in version.stdout

    events = work / "events.jsonl"
    events.write_text(
        '{"type":"identify","userId":"wheel-1","traits":{"plan":"pro"},"messageId":"w-1"}\n'
        '{"type":"track","userId":"wheel-1","event":"Installed","messageId":"w-2"}\n'
    )
    imported = run(
        [cdp, "import", events, "--json", "--target", server.target, "--write-key", server.write_key],
        cwd=work,
        env=env,
    )
    assert json.loads(imported.stdout)["stored"] == 2, imported.stdout
    rpc = Rpc(server)
    try:
        assert sorted(event.message_id for event in rpc.events("user_id:wheel-1")) == ["w-1", "w-2"]
    finally:
        rpc.close()
