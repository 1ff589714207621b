"""`cdp audit`: the audit log of administrative actions, newest first; `--verify` checks its
hash chain."""

from __future__ import annotations

import click
import grpc
from rich.table import Table
from rich.text import Text
from tributary._proto.cdp.v1 import admin_pb2, admin_pb2_grpc

from cdp_server.cli.common import (
    RPC_TIMEOUT_SECS,
    admin_metadata,
    channel,
    console,
    fail,
    fail_rpc,
    iso_time,
    json_option,
    print_json,
    stdout,
    target_option,
    token_option,
)


@click.command("audit")
@click.option("--verify", is_flag=True, help="Check the hash chain of the whole log instead of listing it.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Records to list.")
@click.option("--before", type=int, default=0, help="Only records older than this sequence number (paging).")
@target_option
@token_option
@json_option
def audit(verify: bool, limit: int, before: int, target: str, token: str, as_json: bool) -> None:
    """List the audit log: who did what, to what, when, and how it ended.

    Every administrative change (sources, keys, tokens, destinations, audiences, identity
    rules, splits, replays, dead letters) is recorded, append-only and hash-chained. With
    --verify: "ok" (exit 0) or the first record that breaks the chain (exit 1). With --json:
    [{"seq", "time", "actor", "action", "target", "outcome", "summary"}], or the verification.
    """
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    metadata = admin_metadata(token)
    if verify:
        try:
            checked = stub.VerifyAuditLog(
                admin_pb2.VerifyAuditLogRequest(), metadata=metadata, timeout=RPC_TIMEOUT_SECS
            )
        except grpc.RpcError as exc:
            fail_rpc(exc, target)
        if as_json:
            print_json(
                {
                    "ok": checked.ok,
                    "records": checked.records,
                    "first_broken_seq": checked.first_broken_seq or None,
                    "reason": checked.reason or None,
                }
            )
        elif checked.ok:
            stdout.print(f"ok: {checked.records} records, the hash chain is intact.", highlight=False)
        if not checked.ok:
            fail(f"the audit log is broken at record {checked.first_broken_seq}: {checked.reason}")
        return
    request = admin_pb2.ListAuditLogRequest(limit=limit, before_seq=before)
    try:
        reply = stub.ListAuditLog(request, metadata=metadata, timeout=RPC_TIMEOUT_SECS)
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    rows = [
        {
            "seq": r.seq,
            "time": iso_time(r.time_ms),
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "outcome": r.outcome,
            "summary": r.summary,
        }
        for r in reply.records
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("seq", "time", "actor", "action", "target", "outcome")
    for row in rows:
        table.add_row(*(Text(str(row[key])) for key in ("seq", "time", "actor", "action", "target", "outcome")))
    stdout.print(table)
    if reply.next_seq:
        console.print(f"older records: cdp audit --before {reply.next_seq}", highlight=False)
