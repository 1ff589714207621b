"""`cdp` against a test server, as its admin: the one way tests run the CLI on a server fixture."""

from __future__ import annotations

import subprocess
import sys
from typing import Any


def cdp(server: Any, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs `cdp ARGS --target <server>` with the server's admin token; `check`: fail on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "cdp_server", *args, "--target", server.target],
        env={"TRIBUTARY_ADMIN_TOKEN": server.admin_token, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )
