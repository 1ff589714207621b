"""Webhook sources on a real `cdp serve`: a tool's JSON POSTed to `/v1/webhook/{source}/{key}` or
signed as Standard Webhooks (checked against the independent `standardwebhooks` signer) becomes
the events the source's mappings say, deduplicated on redelivery; wrong keys, signatures, sources
and payloads get the right status; mappings are checked when saved and can be replaced."""

from __future__ import annotations

import copy
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import standardwebhooks
from http_client import post
from rpc import Rpc, batch, track
from tributary._proto.cdp.v1 import admin_pb2, event_pb2, ingest_pb2

from cdp_server.destinations.signing import new_secret

# The payment provider's charge of docs/mappings.md, and its mapping.
CHARGE: dict[str, Any] = {
    "id": "evt_3PQx2b2eZvKYlo2C0aBcDeFg",
    "object": "event",
    "type": "charge.succeeded",
    "created": 1718031234,
    "data": {
        "object": {
            "id": "ch_3PQx2b2eZvKYlo2C0xYz1234",
            "amount": 2750,
            "currency": "gbp",
            "customer": "cus_Q7abcDEF123",
            "metadata": {"user_id": "user_8812", "order_id": "50314b8e"},
        }
    },
}
CHARGE_MAPPINGS = [
    {
        "trigger": {"conditions": [{"path": "$.type", "op": "=", "value": "charge.succeeded"}]},
        "mapping": {
            "type": "track",
            "event": "Charge Succeeded",
            "messageId": {"@template": "stripe-{{id}}"},
            "userId": {
                "@if": {
                    "exists": {"@path": "$.data.object.metadata.user_id"},
                    "then": {"@path": "$.data.object.metadata.user_id"},
                    "else": {"@path": "$.data.object.customer"},
                }
            },
            "properties": {
                "charge_id": {"@path": "$.data.object.id"},
                "amount": {"@path": "$.data.object.amount"},
                "currency": {"@case": {"operator": "upper", "value": {"@path": "$.data.object.currency"}}},
            },
        },
    }
]
# An email tool posts a JSON array of events, each without an id of its own.
EMAIL_MAPPINGS = [
    {
        "trigger": {"conditions": [{"path": "$.event", "op": "=", "value": "open"}]},
        "mapping": {
            "type": "track",
            "event": "Email Opened",
            "userId": {"@path": "$.user"},
            "properties": {"campaign": {"@path": "$.campaign"}},
        },
    },
    {
        "trigger": {"conditions": [{"path": "$.email", "op": "exists"}]},
        "mapping": {"type": "identify", "userId": {"@path": "$.user"}, "traits": {"email": {"@path": "$.email"}}},
    },
]


@pytest.fixture(scope="module")
def rpc(module_server: Any) -> Iterator[Rpc]:
    client = Rpc(module_server)
    yield client
    client.close()


def create(rpc: Rpc, name: str, mappings: Any, **fields: Any) -> admin_pb2.CreateSourceResponse:
    request = admin_pb2.CreateSourceRequest(
        name=name, kind=admin_pb2.SOURCE_KIND_WEBHOOK, mappings=json.dumps(mappings), **fields
    )
    reply: admin_pb2.CreateSourceResponse = rpc.admin.CreateSource(request, metadata=rpc.server.admin_metadata)
    return reply


def refusal(rpc: Rpc, request: admin_pb2.CreateSourceRequest) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        rpc.admin.CreateSource(request, metadata=rpc.server.admin_metadata)
    return caught.value.code(), caught.value.details()  # type: ignore[attr-defined]


def events_of(rpc: Rpc, user_id: str) -> list[dict[str, Any]]:
    return [
        {"event": e.event, "type": event_pb2.EventType.Name(e.type), "messageId": e.message_id}
        for e in rpc.events(f"user_id:{user_id}", oldest_first=True)
    ]


def test_a_payload_at_the_keyed_url_becomes_the_mapped_event_once(rpc: Rpc) -> None:
    created = create(rpc, "stripe", CHARGE_MAPPINGS)
    assert created.source.kind == admin_pb2.SOURCE_KIND_WEBHOOK
    assert created.webhook_path == f"/v1/webhook/stripe/{created.write_key}"
    assert post(rpc.server, created.webhook_path, CHARGE)[:2] == (200, {"success": True, "events": 1})
    [event] = rpc.events("user_id:user_8812")
    assert (event.message_id, event.event) == ("stripe-evt_3PQx2b2eZvKYlo2C0aBcDeFg", "Charge Succeeded")
    assert json.loads(event.properties) == {
        "charge_id": "ch_3PQx2b2eZvKYlo2C0xYz1234",
        "amount": 2750,
        "currency": "GBP",
    }
    # The provider delivers again when unsure: the same id, deduplicated.
    assert post(rpc.server, created.webhook_path, CHARGE)[0] == 200
    assert len(rpc.events("user_id:user_8812")) == 1
    # A payload no trigger wants is answered 200 with no events (the tool must not retry it).
    refund = {**CHARGE, "id": "evt_2", "type": "charge.refunded"}
    assert post(rpc.server, created.webhook_path, refund)[:2] == (200, {"success": True, "events": 0})
    # Without metadata.user_id the @if falls back to the customer.
    anonymous = copy.deepcopy(CHARGE)
    anonymous["id"] = "evt_3"
    del anonymous["data"]["object"]["metadata"]["user_id"]
    assert post(rpc.server, created.webhook_path, anonymous)[0] == 200
    assert [e.message_id for e in rpc.events("user_id:cus_Q7abcDEF123")] == ["stripe-evt_3"]


def test_an_array_is_several_payloads_each_matching_several_mappings_and_content_ids_deduplicate(rpc: Rpc) -> None:
    created = create(rpc, "mailer", EMAIL_MAPPINGS)
    payload = json.dumps(
        [
            {"event": "open", "user": "m-1", "email": "m1@shop.test", "campaign": "spring"},
            {"event": "click", "user": "m-2", "email": "m2@shop.test"},
            {"event": "open", "user": "m-2", "campaign": "spring"},
        ]
    ).encode()
    assert post(rpc.server, created.webhook_path, payload)[:2] == (200, {"success": True, "events": 4})
    assert sorted(e["type"] for e in events_of(rpc, "m-1")) == ["EVENT_TYPE_IDENTIFY", "EVENT_TYPE_TRACK"]
    assert sorted(e["event"] for e in events_of(rpc, "m-2")) == ["", "Email Opened"]
    ids = {e["messageId"] for user in ("m-1", "m-2") for e in events_of(rpc, user)}
    assert len(ids) == 4 and all(i.startswith("content-") for i in ids)
    # The tool delivers the same array again: every event's id derives from its content.
    assert post(rpc.server, created.webhook_path, payload)[0] == 200
    assert len(events_of(rpc, "m-1")) + len(events_of(rpc, "m-2")) == 4


def test_signed_payloads_verify_against_the_reference_signer(rpc: Rpc) -> None:
    secret = new_secret()
    created = create(rpc, "signed-tool", EMAIL_MAPPINGS, signing_secret=secret)
    body = json.dumps({"event": "open", "user": "s-1", "campaign": "c"})
    signer = standardwebhooks.Webhook(secret)

    def headers(msg_id: str, at: dt.datetime, data: str = body) -> dict[str, str]:
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signer.sign(msg_id, at, data),
        }

    now = dt.datetime.now(dt.UTC)
    path = "/v1/webhook/signed-tool"
    assert post(rpc.server, path, body.encode(), headers=headers("msg_1", now))[:2] == (
        200,
        {"success": True, "events": 1},
    )
    assert [e["event"] for e in events_of(rpc, "s-1")] == ["Email Opened"]
    tampered = body.replace('"c"', '"d"').encode()
    stale = now - dt.timedelta(minutes=6)
    for data, sent_headers in [
        (tampered, headers("msg_2", now)),  # the body changed after signing
        (body.encode(), headers("msg_3", stale)),  # a capture replayed later
        (body.encode(), {**headers("msg_4", now), "webhook-id": "msg_other"}),
        (body.encode(), {}),  # unsigned
        (
            body.encode(),
            headers("msg_5", now)
            | {"webhook-signature": standardwebhooks.Webhook(new_secret()).sign("msg_5", now, body)},
        ),
    ]:
        status, answer, _ = post(rpc.server, path, data, headers=sent_headers)
        assert (status, answer and answer["code"]) == (401, "unauthorized"), answer
    assert len(events_of(rpc, "s-1")) == 1
    # The keyed URL works for a signed source too; a source without a secret refuses signatures.
    assert post(rpc.server, created.webhook_path, body.encode())[0] == 200
    status, answer, _ = post(rpc.server, "/v1/webhook/stripe", body.encode(), headers=headers("msg_6", now))
    assert status == 401 and answer is not None and "no signing secret" in answer["message"]


def test_wrong_keys_sources_and_payloads_get_clear_statuses_and_store_nothing(rpc: Rpc) -> None:
    created = create(rpc, "strict", EMAIL_MAPPINGS)
    events_source = rpc.admin.CreateSource(
        admin_pb2.CreateSourceRequest(name="plain"), metadata=rpc.server.admin_metadata
    )
    good = {"event": "open", "user": "w-1"}
    cases: list[tuple[str, bytes | dict[str, Any], int, str]] = [
        (f"/v1/webhook/strict/{events_source.write_key}", good, 401, "unauthorized"),  # another source's key
        ("/v1/webhook/strict/not-a-key", good, 401, "unauthorized"),
        (f"/v1/webhook/nobody/{created.write_key}", good, 404, "not_found"),
        (f"/v1/webhook/plain/{events_source.write_key}", good, 404, "not_found"),  # not a webhook source
        (created.webhook_path, b"{not json", 400, "invalid_payload"),
        (created.webhook_path, b"[1, 2]", 400, "invalid_payload"),
        (created.webhook_path, b"x" * (500 * 1024 + 1), 400, "request_too_large"),
    ]
    for path, body, status, code in cases:
        got, answer, _ = post(rpc.server, path, body)
        assert (got, answer and answer["code"]) == (status, code), (path, answer)
    assert events_of(rpc, "w-1") == []
    # The key in the tool's URL opens the webhook route only: not the Tracking API, not gRPC (a
    # valid credential refused there: 403 / PERMISSION_DENIED).
    status, answer, _ = post(rpc.server, "/v1/track", {"userId": "w-1", "event": "Forged"}, key=created.write_key)
    assert (status, answer and answer["code"]) == (403, "forbidden")
    with pytest.raises(grpc.RpcError) as caught:
        rpc.ingest.Send(
            ingest_pb2.SendRequest(batch=batch([track("forged", user_id="w-1")])),
            metadata=(("authorization", f"Bearer {created.write_key}"),),
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert events_of(rpc, "w-1") == []
    # A mapped event the engine refuses (no userId or anonymousId) is listed, as the Tracking API does.
    status, answer, _ = post(rpc.server, created.webhook_path, {"event": "open", "campaign": "c"})
    assert status == 200 and answer is not None and answer["events"] == 1
    assert [r["field"] for r in answer["rejected"]] == ["userId"], answer


def test_mappings_and_names_are_checked_when_saved_naming_the_field(rpc: Rpc) -> None:
    webhook = admin_pb2.SOURCE_KIND_WEBHOOK
    bad_op = [{"trigger": {"conditions": [{"path": "$.a", "op": "~"}]}, "mapping": {"type": "track"}}]
    cases = [
        (admin_pb2.CreateSourceRequest(name="m1", kind=webhook), "mappings"),
        (admin_pb2.CreateSourceRequest(name="m2", kind=webhook, mappings="{"), "mappings: not JSON"),
        (admin_pb2.CreateSourceRequest(name="m3", kind=webhook, mappings=json.dumps(bad_op)), "mappings[0].trigger"),
        (
            admin_pb2.CreateSourceRequest(
                name="m4", kind=webhook, mappings=json.dumps([{"mapping": {"x": {"@path": "nope"}}}])
            ),
            "mappings[0].mapping.x",
        ),
        (admin_pb2.CreateSourceRequest(name="a/b", kind=webhook, mappings=json.dumps(EMAIL_MAPPINGS)), "name"),
        (
            admin_pb2.CreateSourceRequest(name="m5", kind=webhook, mappings="[]", signing_secret="whsec_short"),
            "signing_secret",
        ),
        (admin_pb2.CreateSourceRequest(name="m6", mappings="[]"), "mappings: only a webhook source"),
    ]
    for request, named in cases:
        code, details = refusal(rpc, request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and named in details, (request.name, details)
    listed = rpc.admin.ListSources(admin_pb2.ListSourcesRequest(), metadata=rpc.server.admin_metadata).sources
    assert not {"m1", "m2", "m3", "m4", "m5", "m6", "a/b"} & {s.name for s in listed}


def test_updated_mappings_apply_to_the_next_payload_and_listing_hides_the_secret(rpc: Rpc) -> None:
    secret = new_secret()
    created = create(rpc, "evolving", EMAIL_MAPPINGS, signing_secret=secret)
    assert post(rpc.server, created.webhook_path, {"event": "bounce", "user": "u-up"})[:2] == (
        200,
        {"success": True, "events": 0},
    )
    renamed = copy.deepcopy(EMAIL_MAPPINGS)
    renamed[0]["mapping"]["event"] = "Email Seen"
    updated = rpc.admin.UpdateWebhookSource(
        admin_pb2.UpdateWebhookSourceRequest(name="evolving", mappings=json.dumps(renamed)),
        metadata=rpc.server.admin_metadata,
    )
    assert json.loads(updated.webhook.mappings) == renamed and not updated.webhook.signing_secret
    assert post(rpc.server, created.webhook_path, {"event": "open", "user": "u-up", "campaign": "x"})[0] == 200
    assert [e["event"] for e in events_of(rpc, "u-up")] == ["Email Seen"]
    with pytest.raises(grpc.RpcError) as caught:
        rpc.admin.UpdateWebhookSource(
            admin_pb2.UpdateWebhookSourceRequest(name="evolving", mappings='[{"mapping": {"@nope": 1}}]'),
            metadata=rpc.server.admin_metadata,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as caught:
        rpc.admin.UpdateWebhookSource(
            admin_pb2.UpdateWebhookSourceRequest(name="nobody", mappings="[]"), metadata=rpc.server.admin_metadata
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    [listed] = [
        s
        for s in rpc.admin.ListSources(admin_pb2.ListSourcesRequest(), metadata=rpc.server.admin_metadata).sources
        if s.name == "evolving"
    ]
    assert listed.webhook.signed and not listed.webhook.signing_secret
    assert secret not in str(listed)


def test_the_cli_creates_a_webhook_source_from_a_mappings_file(rpc: Rpc, tmp_path: Path) -> None:
    mappings = tmp_path / "mappings.json"
    mappings.write_text(json.dumps(CHARGE_MAPPINGS))
    server = rpc.server
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cdp_server",
            "source",
            "create",
            "payments",
            "--kind",
            "webhook",
            "--mappings",
            f"@{mappings}",
            "--target",
            server.target,
            "--token",
            server.admin_token,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    path = result.stdout.strip()
    assert path.startswith("/v1/webhook/payments/")
    charge = {**CHARGE, "id": "evt_cli"}
    assert post(server, path, charge)[:2] == (200, {"success": True, "events": 1})
    assert "stripe-evt_cli" in {e.message_id for e in rpc.events("user_id:user_8812")}
