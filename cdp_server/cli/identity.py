"""`cdp identity rules show` and `cdp identity rules set FILE [--dry-run]`: the identity
resolution rules (limits, windows, priorities, blocked values) of this server.
`cdp identity separations list` and `cdp identity separations withdraw A [B]`: the splits and
removals in force (`cdp profile split|remove` make them), and taking one back.

A rules file is JSON: {"rules": [{"type": "email", "limit": 2, "window": "weekly",
"priority": 3, "blocked_values": ["team@acme.io"], "blocked_patterns": ["@example\\\\.com$"]}]}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import grpc
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from tributary._proto.cdp.v1 import admin_pb2, admin_pb2_grpc

from cdp_server.cli.changes import change_options, confirm_and_apply
from cdp_server.cli.common import (
    RPC_TIMEOUT_SECS,
    admin_metadata,
    channel,
    console,
    fail_rpc,
    json_option,
    print_json,
    stdout,
    target_option,
    token_option,
)

_WINDOWS = {"ever", "weekly", "monthly", "annually"}


@click.group()
def identity() -> None:
    """Identity resolution settings."""


@identity.group()
def rules() -> None:
    """Show or change the identity rules."""


@rules.command()
@target_option
@token_option
@json_option
def show(target: str, token: str, as_json: bool) -> None:
    """The rules in force (types without a rule use Segment's defaults)."""
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        current = stub.GetIdentityRules(
            admin_pb2.GetIdentityRulesRequest(), metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    if as_json:
        print_json(rules_json(current))
        return
    _print_rules(current)


@rules.command(name="set")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report what would merge and split; change nothing.")
@target_option
@token_option
@json_option
def set_rules(file: Path, dry_run: bool, target: str, token: str, as_json: bool) -> None:
    """Replace the rules with those in FILE, re-resolving every profile (or, with --dry-run,
    only report how many profiles would merge or split, with examples)."""
    try:
        wanted = parse_rules(json.loads(file.read_text()))
    except (ValueError, ParseError) as exc:
        raise click.BadParameter(str(exc), param_hint="FILE") from exc
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        report = _update_with_progress(
            stub, admin_pb2.UpdateIdentityRulesRequest(rules=wanted, dry_run=dry_run), token, show=not as_json
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    if as_json:
        print_json(MessageToDict(report, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))
        return
    verb, would = ("applied", "") if report.applied else ("dry run, nothing changed", "would be ")
    stdout.print(
        Text(
            f"{verb}: {report.profiles_before} profiles before, {report.profiles_after} after; "
            f"{report.merges} {would}built from several, {report.splits} {would}broken up, "
            f"{report.identifiers_unlinked} identifiers {would}left in no profile"
        )
    )
    if report.examples:
        table = Table("change", "before", "after", "identifiers", title="examples", title_justify="left")
        for change in report.examples:
            kind = "merge" if change.kind == admin_pb2.RuleChange.KIND_MERGE else "split"
            table.add_row(
                *(
                    Text(cell)
                    for cell in (
                        kind,
                        "\n".join(change.profiles_before),
                        "\n".join(change.profiles_after),
                        "\n".join(change.identifiers),
                    )
                )
            )
        stdout.print(table)


_PHASES = {
    admin_pb2.IdentityRulesProgress.PHASE_READING: "reading the log",
    admin_pb2.IdentityRulesProgress.PHASE_RESOLVING: "re-resolving",
    admin_pb2.IdentityRulesProgress.PHASE_COMPARING: "comparing profiles",
}
_POLL_SECS = 0.2


def _update_with_progress(
    stub: admin_pb2_grpc.AdminServiceStub, request: admin_pb2.UpdateIdentityRulesRequest, token: str, *, show: bool
) -> admin_pb2.UpdateIdentityRulesResponse:
    """UpdateIdentityRules, with a progress bar on stderr drawn from GetIdentityRulesProgress
    while it runs (a re-resolution of a large log takes a while: no deadline)."""
    call = stub.UpdateIdentityRules.future(request, metadata=admin_metadata(token), timeout=None)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not show, transient=True) as progress:
        task = progress.add_task("starting", total=None)
        while not call.done():
            try:
                now = stub.GetIdentityRulesProgress(
                    admin_pb2.GetIdentityRulesProgressRequest(),
                    metadata=admin_metadata(token),
                    timeout=RPC_TIMEOUT_SECS,
                )
            except grpc.RpcError:
                now = None  # the bar is a courtesy: the update's own outcome decides
            if now is not None and now.running:
                counted = now.phase != admin_pb2.IdentityRulesProgress.PHASE_COMPARING
                progress.update(
                    task,
                    description=_PHASES.get(now.phase, "starting"),
                    completed=now.done,
                    total=now.total if counted else None,
                )
            try:
                call.result(timeout=_POLL_SECS)
            except grpc.FutureTimeoutError:
                continue
    return call.result()


@identity.group()
def separations() -> None:
    """List or withdraw the splits and removals made with `cdp profile split|remove`."""


@separations.command(name="list")
@target_option
@token_option
@json_option
def list_separations(target: str, token: str, as_json: bool) -> None:
    """The separations in force, oldest first, with the profiles they keep apart now."""
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        reply = stub.ListSeparations(
            admin_pb2.ListSeparationsRequest(), metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    if as_json:
        print_json(
            [
                MessageToDict(s, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
                for s in reply.separations
            ]
        )
        return
    if not reply.separations:
        stdout.print(Text("no separations: every profile is as its events make it"))
        return
    table = Table("kind", "identifiers", "made", "profiles now")
    for separation in reply.separations:
        if separation.b:
            row = ("split", f"{separation.a} | {separation.b}", f"{separation.profile_a}\n{separation.profile_b}")
        else:
            row = ("removal", separation.a, separation.profile_a)
        kind, identifiers, profiles = row
        table.add_row(*(Text(cell) for cell in (kind, identifiers, separation.at.ToJsonString(), profiles)))
    stdout.print(table)


@separations.command(name="withdraw")
@click.argument("a")
@click.argument("b", required=False, default="")
@change_options
@target_option
@token_option
@json_option
def withdraw_separation(a: str, b: str, yes: bool, dry_run: bool, target: str, token: str, as_json: bool) -> None:
    """Withdraw the split of A and B (either order), or the removal of A (no B), as listed; the
    profiles involved are re-resolved as if it had never been made. Shows what will change and
    asks first."""
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    metadata = admin_metadata(token)

    def withdraw(dry: bool) -> admin_pb2.WithdrawSeparationResponse:
        request = admin_pb2.WithdrawSeparationRequest(a=a, b=b, dry_run=dry)
        return stub.WithdrawSeparation(request, metadata=metadata, timeout=RPC_TIMEOUT_SECS)

    what = f"the split of {a} and {b}" if b else f"the removal of {a}"
    done = confirm_and_apply(
        withdraw, question=f"Withdraw {what}?", yes=yes, dry_run=dry_run, as_json=as_json, target=target
    )
    if as_json:
        print_json(MessageToDict(done, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))
    elif done.applied:
        stdout.print(Text(f"withdrawn: {what}"))


def parse_rules(document: Any) -> admin_pb2.IdentityRules:
    """The rules file as the proto; windows may be written short ("weekly")."""
    if not isinstance(document, dict) or not isinstance(document.get("rules", []), list):
        raise ValueError('the file must be a JSON object with a "rules" list')
    for i, rule in enumerate(document.get("rules", [])):
        if not isinstance(rule, dict):
            raise ValueError(f"rules[{i}] must be an object")
        window = rule.get("window")
        if isinstance(window, str) and window.lower() in _WINDOWS:
            rule["window"] = f"LIMIT_WINDOW_{window.upper()}"
    return ParseDict(document, admin_pb2.IdentityRules())


def rules_json(current: admin_pb2.IdentityRules) -> dict[str, Any]:
    rules = MessageToDict(current, preserving_proto_field_name=True).get("rules", [])
    for rule in rules:
        if "window" in rule:
            rule["window"] = rule["window"].removeprefix("LIMIT_WINDOW_").lower()
    return {"rules": rules}


def _print_rules(current: admin_pb2.IdentityRules) -> None:
    if not current.rules:
        stdout.print(
            Text(
                "Segment's defaults: user_id limit 1, other types 5 (ever); priority user_id, email, then "
                "alphabetical; blocked ^[0-]*$, -1, null, anonymous, undefined and empty values"
            )
        )
        return
    table = Table("type", "limit", "window", "priority", "blocked values", "blocked patterns")
    for rule in current.rules:
        window = admin_pb2.LimitWindow.Name(rule.window).removeprefix("LIMIT_WINDOW_").lower()
        table.add_row(
            *(
                Text(cell)
                for cell in (
                    rule.type,
                    str(rule.limit or "default"),
                    window,
                    str(rule.priority or "default"),
                    ", ".join(rule.blocked_values),
                    ", ".join(rule.blocked_patterns),
                )
            )
        )
    stdout.print(table)
