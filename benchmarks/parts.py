"""A benchmark's parts run one after the other, each in a folder of its own under one temporary
directory; a part that fails is reported and the others still run (one failure must not hide the
others' figures)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

Part = Callable[[argparse.Namespace, Path], dict[str, Any]]


def run_parts(
    args: argparse.Namespace,
    keys: Iterable[str],
    parts: Mapping[str, Part],
    labels: Mapping[str, str],
    *,
    prefix: str,
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Each part's figures by key, and each failed part's error."""
    runs: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix=prefix, dir=args.tmp_dir) as tmp:
        for key in keys:
            print(f"({key}) {labels[key]} ...", flush=True)
            part_tmp = Path(tmp) / key
            part_tmp.mkdir()
            try:
                runs[key] = parts[key](args, part_tmp)
            except Exception as exc:
                errors[key] = f"{type(exc).__name__}: {exc}"
                print(f"  FAILED: {errors[key]}", flush=True)
                traceback.print_exc(file=sys.stderr)
    return runs, errors
