"""Commands that re-resolve profiles (`cdp profile split|remove`, `cdp identity separations
withdraw`) show what they will change and ask before they change it: `confirm_and_apply` is that
whole flow, `change_options` its `--yes` and `--dry-run` flags.

The preview is the server's own dry run of the same request, so what is shown is what applying
does (unless events arrive in between). The profiles go to stdout (with --json, to stderr, so
that stdout holds only the final JSON document); the question goes to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol, TypeVar

import click
import grpc
from rich.console import Console
from rich.table import Table
from rich.text import Text
from tributary._proto.cdp.v1 import admin_pb2

from cdp_server.cli.common import F, console, fail_rpc, stdout


class Changing(Protocol):
    """A response that reports the profiles it changed (or, on a dry run, would change)."""

    @property
    def applied(self) -> bool: ...
    @property
    def change(self) -> admin_pb2.IdentityChange: ...


R = TypeVar("R", bound=Changing)


def change_options(func: F) -> F:
    """`--yes` (apply without asking) and `--dry-run` (only show what would change)."""
    func = click.option("--dry-run", is_flag=True, help="Only show what would change; change nothing.")(func)
    return click.option("--yes", "-y", is_flag=True, help="Apply without asking.")(func)


def confirm_and_apply(
    call: Callable[[bool], R], *, question: str, yes: bool, dry_run: bool, as_json: bool, target: str
) -> R:
    """Shows what `call(dry_run=True)` would change, asks `question` (unless `yes`), then returns
    `call(dry_run=False)`; with `dry_run`, returns the preview (its `applied` is false). Exits
    with status 1 when the answer is no."""
    out = console if as_json else stdout
    try:
        preview = call(True)
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    print_change(preview.change, out, applied=False)
    if dry_run:
        out.print(Text("dry run: nothing changed"))
        return preview
    if not yes and not _confirmed(question):
        console.print(Text("nothing changed (--yes applies without asking)"))
        sys.exit(1)
    try:
        return call(False)
    except grpc.RpcError as exc:
        fail_rpc(exc, target)


def _confirmed(question: str) -> bool:
    try:
        return click.confirm(question, default=False, err=True)
    except click.Abort:  # no answer (end of input)
        click.echo(err=True)
        return False


def print_change(change: admin_pb2.IdentityChange, out: Console, *, applied: bool) -> None:
    """The profiles before and after, as a table."""
    if not change.before and not change.after:
        out.print(Text("no profile changes" if applied else "no profile would change"))
        return
    verb = "changed" if applied else "would change"
    title = f"{verb}: {len(change.before)} profile(s) before, {len(change.after)} after"
    table = Table("", "profile", "identifiers", title=title, title_justify="left")
    for label, profiles in (("before", change.before), ("after", change.after)):
        for i, profile in enumerate(profiles):
            table.add_row(Text(label if i == 0 else ""), Text(profile.profile_id), Text(", ".join(profile.identifiers)))
    out.print(table)
