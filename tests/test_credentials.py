"""Credentials over their life: write-key rotation (two keys work at once, then the older one is
retired), token revocation, both taking effect at once on gRPC and HTTP even right after the
credential was used (and its answer cached); the audit log of every change, its hash chain and a
tampered record found by verification; the per-source rate limit on gRPC, shared with HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import grpc
import lmdb
import pytest
from cli_runner import cdp
from http_client import get, post
from rpc import batch, track
from tributary._proto.cdp.v1 import admin_pb2, admin_pb2_grpc, ingest_pb2, ingest_pb2_grpc

CODE = grpc.StatusCode


def basic(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", "Basic " + base64.b64encode(f"{secret}:".encode()).decode()),)


class Admin:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.channel = server.channel()
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.ingest = ingest_pb2_grpc.IngestServiceStub(self.channel)
        self.meta = server.admin_metadata

    def send(self, key: str, message_id: str) -> CODE:
        """The status of a one-event Send with `key` (OK when stored)."""
        request = ingest_pb2.SendRequest(batch=batch([track(message_id, user_id="rot")]))
        try:
            self.ingest.Send(request, metadata=basic(key), timeout=30)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[attr-defined,no-any-return]
        return CODE.OK


def test_a_rotated_key_works_beside_the_old_one_until_that_is_retired_at_once(server: Any) -> None:
    a = Admin(server)
    old = a.admin.CreateSource(admin_pb2.CreateSourceRequest(name="web"), metadata=a.meta).write_key
    assert a.send(old, "m1") == CODE.OK  # its answer is now cached by the server
    assert post(server, "/v1/track", {"userId": "rot", "event": "E"}, key=old)[0] == 200
    made = cdp(server, "source", "rotate-key", "web", "--json")
    assert made.returncode == 0, made.stderr
    rotated = json.loads(made.stdout)
    new = rotated["write_key"]
    assert rotated["number"] == 2 and new.startswith("tk_")
    assert a.send(old, "m2") == CODE.OK and a.send(new, "m3") == CODE.OK, "two keys work during a rotation"
    third = a.admin.RotateWriteKey
    with pytest.raises(grpc.RpcError) as caught:
        third(admin_pb2.RotateWriteKeyRequest(source="web"), metadata=a.meta)
    assert caught.value.code() == CODE.FAILED_PRECONDITION  # type: ignore[attr-defined]
    assert "2 working keys" in caught.value.details()  # type: ignore[attr-defined]
    listed = json.loads(cdp(server, "source", "list", "--json").stdout)
    (web,) = [s for s in listed if s["name"] == "web"]
    assert [k["number"] for k in web["keys"]] == [1, 2] and all(k["created_at"] for k in web["keys"])
    assert old not in json.dumps(listed) and new not in json.dumps(listed)

    retired = cdp(server, "source", "revoke-key", "web", "1")
    assert retired.returncode == 0, retired.stderr
    assert a.send(old, "m4") == CODE.UNAUTHENTICATED, "retired at once on gRPC"
    status, body, _ = post(server, "/v1/track", {"userId": "rot", "event": "E"}, key=old)
    assert status == 401 and body is not None and "retired" in body["message"], "and on HTTP"
    assert a.send(new, "m5") == CODE.OK
    with pytest.raises(grpc.RpcError) as caught:
        a.admin.RevokeWriteKey(admin_pb2.RevokeWriteKeyRequest(source="web", number=2), metadata=a.meta)
    assert caught.value.code() == CODE.FAILED_PRECONDITION, "never the last key"  # type: ignore[attr-defined]

    # --revoke-previous: the new key alone works, at once.
    newest = json.loads(cdp(server, "source", "rotate-key", "web", "--revoke-previous", "--json").stdout)
    assert a.send(new, "m6") == CODE.UNAUTHENTICATED
    assert a.send(newest["write_key"], "m7") == CODE.OK
    (web,) = [s for s in json.loads(cdp(server, "source", "list", "--json").stdout) if s["name"] == "web"]
    assert [k["number"] for k in web["keys"]] == [3]


def test_a_revoked_token_stops_working_at_once_on_grpc_and_http(server: Any) -> None:
    a = Admin(server)
    made = cdp(server, "token", "create", "--role", "admin", "--name", "ops", "--json")
    token = json.loads(made.stdout)["token"]
    as_token = (("authorization", f"Bearer {token}"),)
    a.admin.ListSources(admin_pb2.ListSourcesRequest(), metadata=as_token)  # used: cached
    assert get(server, "/debugger/api/sources", bearer=token)[0] == 200
    revoked = cdp(server, "token", "revoke", "ops")
    assert revoked.returncode == 0, revoked.stderr
    with pytest.raises(grpc.RpcError) as caught:
        a.admin.ListSources(admin_pb2.ListSourcesRequest(), metadata=as_token)
    assert caught.value.code() == CODE.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert get(server, "/debugger/api/sources", bearer=token)[0] == 401
    listed = json.loads(cdp(server, "token", "list", "--json").stdout)
    assert [(t["name"], t["revoked_at"] is not None) for t in listed] == [("ops", True)]
    again = cdp(server, "token", "revoke", "1", check=False)
    assert again.returncode == 1 and "already revoked" in again.stderr


def test_every_change_is_audited_without_secrets_and_tampering_is_found(server: Any) -> None:
    a = Admin(server)
    key = a.admin.CreateSource(admin_pb2.CreateSourceRequest(name="shop"), metadata=a.meta).write_key
    token = a.admin.CreateToken(admin_pb2.CreateTokenRequest(role="read", name="bi"), metadata=a.meta)
    as_token = (("authorization", f"Bearer {token.token}"),)
    with pytest.raises(grpc.RpcError):
        a.admin.CreateSource(admin_pb2.CreateSourceRequest(name="shop"), metadata=a.meta)  # exists
    with pytest.raises(grpc.RpcError):  # refused before it runs: not an admin action
        a.admin.CreateSource(admin_pb2.CreateSourceRequest(name="x"), metadata=as_token)
    a.admin.ListSources(admin_pb2.ListSourcesRequest(), metadata=a.meta)  # a read: not audited
    rotated = a.admin.RotateWriteKey(admin_pb2.RotateWriteKeyRequest(source="shop"), metadata=a.meta)
    a.admin.RevokeToken(admin_pb2.RevokeTokenRequest(name="bi"), metadata=a.meta)
    shown = cdp(server, "audit", "--json")
    assert shown.returncode == 0, shown.stderr
    records = json.loads(shown.stdout)
    assert [(r["action"], r["target"], r["outcome"]) for r in records] == [
        ("AdminService/RevokeToken", "name='bi'", "ok"),
        ("AdminService/RotateWriteKey", "source='shop'", "ok"),
        ("AdminService/CreateSource", "name='shop'", "INVALID_ARGUMENT"),
        ("AdminService/CreateToken", "name='bi'", "ok"),
        ("AdminService/CreateSource", "name='shop'", "ok"),
    ]
    assert {r["actor"] for r in records} == {"configured admin token"}
    assert records[3]["summary"] == "role='read'"
    assert [r["seq"] for r in records] == [5, 4, 3, 2, 1]
    text = shown.stdout
    for secret in [key, rotated.write_key, token.token, server.admin_token]:
        assert secret not in text
    verified = cdp(server, "audit", "--verify")
    assert verified.returncode == 0 and "ok: 5 records" in verified.stdout, verified.stderr

    # Someone with the files changes record 2 while the server is stopped.
    server.stop()
    with lmdb.open(str(server.data_dir / "log"), max_dbs=16) as env:
        audit = env.open_db(b"audit")
        with env.begin(write=True, db=audit) as txn:
            key2 = (2).to_bytes(8, "big")
            value = bytearray(txn.get(key2))
            at = value.index(b"role='read'")
            value[at : at + 11] = b"role='admn'"
            txn.put(key2, bytes(value))
    server.start()
    broken = cdp(server, "audit", "--verify", "--json", check=False)
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["first_broken_seq"] == 2


def _batches(count: int) -> Iterator[ingest_pb2.StreamRequest]:
    for sequence in range(1, count + 1):
        yield ingest_pb2.StreamRequest(sequence=sequence, batch=batch([track(f"s{sequence}", user_id="rl")]))


def test_grpc_ingest_is_rate_limited_per_source_and_shares_the_bucket_with_http(server_factory: Any) -> None:
    # 2 requests a second (a bucket of 2): 40 quick calls cannot all pass unless each took 0.5 s.
    server = server_factory(env={"TRIBUTARY_HTTP_RATE_LIMIT": "2"})
    a = Admin(server)
    other = a.admin.CreateSource(admin_pb2.CreateSourceRequest(name="other"), metadata=a.meta).write_key
    request = ingest_pb2.SendRequest(batch=batch([track("same", user_id="rl")]))
    refused = None
    for _ in range(40):
        try:
            a.ingest.Send(request, metadata=server.ingest_metadata, timeout=30)
        except grpc.RpcError as error:
            refused = error
            break
    assert refused is not None, "the limit applies to gRPC"
    assert refused.code() == CODE.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert "rate limit" in refused.details()  # type: ignore[attr-defined]
    trailers = dict(refused.trailing_metadata())  # type: ignore[attr-defined]
    assert int(trailers["retry-after"]) >= 1
    assert a.send(other, "o1") == CODE.OK, "each source has its own bucket"

    # A stream counts each batch: it acks the batches before the limit, then ends.
    acks = []
    with pytest.raises(grpc.RpcError) as caught:
        for ack in a.ingest.Stream(_batches(40), metadata=basic(other), timeout=60):
            acks.append(ack)
    assert caught.value.code() == CODE.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert len(acks) < 40

    # One bucket for both surfaces: right after HTTP is refused, so is gRPC (some attempt of
    # five shows it; separate buckets would never refuse gRPC here).
    shared = False
    for attempt in range(5):
        for n in range(40):
            if (
                post(server, "/v1/track", {"userId": "rl", "event": "E", "messageId": f"h{attempt}-{n}"}, key=other)[0]
                == 429
            ):
                break
        if a.send(other, f"g{attempt}") == CODE.RESOURCE_EXHAUSTED:
            shared = True
            break
    assert shared
