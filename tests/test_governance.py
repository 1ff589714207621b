"""Tracking plans on a real `cdp serve`: a YAML plan made and versioned with `cdp plan`, enforced
per source over the Tracking API and gRPC in every mode (valid, invalid and unplanned events by
allow / flag / omit / block), transformations, violations listed by `cdp violations`, blocked
events kept in the rejected store, all of it still in force after a restart; and personal data inventoried
per source and hashed or dropped before storage (`cdp privacy`)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from cli_runner import cdp
from http_client import post
from rpc import Rpc, batch, track
from tributary._proto.cdp.v1 import admin_pb2, governance_pb2, ingest_pb2

from cdp_server.audit import describe

PLAN_YAML = """
name: shop
description: the shop's events
events:
  Order Completed:
    type: object
    properties:
      total: {type: number}
      currency: {enum: [USD, EUR]}
    required: [total]
  Signed Up:
    type: object
    additionalProperties: false
    properties:
      plan: {type: string}
identify:
  type: object
  properties:
    email: {type: string, format: email}
"""


def stored(rpc: Rpc, user: str) -> list[dict[str, Any]]:
    """A user's stored events, oldest first, as {event, properties, traits, context}."""
    return [
        {
            "event": e.event,
            "properties": json.loads(e.properties or b"{}"),
            "traits": json.loads(e.traits or b"{}"),
            "context": json.loads(e.context or b"{}"),
        }
        for e in rpc.events(f"user_id:{user}", oldest_first=True)
    ]


@pytest.fixture(scope="module")
def planned(module_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    plan = tmp_path_factory.mktemp("plan") / "shop.yaml"
    plan.write_text(PLAN_YAML)
    made = cdp(module_server, "plan", "create", str(plan))
    assert "Tracking plan shop is now version 1: 2 events" in made.stderr
    again = cdp(module_server, "plan", "create", str(plan), check=False)
    assert again.returncode == 1 and "exists" in again.stderr
    return module_server


UNPLANNED = ["allow", "flag", "block"]
ON_VIOLATION = ["allow", "flag", "omit", "block"]


@pytest.mark.parametrize("unplanned", UNPLANNED)
@pytest.mark.parametrize("on_violation", ON_VIOLATION)
def test_each_mode_over_the_tracking_api(planned: Any, unplanned: str, on_violation: str) -> None:
    server = planned
    name = f"web-{unplanned}-{on_violation}"
    key = cdp(server, "source", "create", name).stdout.strip()
    shown = cdp(
        server, "plan", "enforce", name, "--plan", "shop", "--unplanned", unplanned, "--on-violation", on_violation
    )
    assert f"unplanned events → {unplanned}, violations → {on_violation}" in shown.stderr
    user = f"u-{name}"
    batch = {
        "batch": [
            {
                "type": "track",
                "userId": user,
                "event": "Order Completed",
                "properties": {"total": 5, "currency": "USD"},
            },
            {"type": "track", "userId": user, "event": "Order Completed", "properties": {"total": "5", "note": "n"}},
            {"type": "track", "userId": user, "event": "Cart Viewed", "properties": {"items": 2}},
        ]
    }
    status, body, _ = post(server, "/v1/batch", batch, key=key)
    assert status == 200 and body is not None
    refused = {r["index"]: r for r in body.get("rejected", [])}
    events = stored(Rpc(server), user)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_name.setdefault(event["event"], []).append(event)

    # The valid event is stored as sent in every mode.
    valid = by_name["Order Completed"][0]
    assert valid["properties"] == {"total": 5, "currency": "USD"} and "protocols" not in valid["context"]

    # The invalid one.
    if on_violation == "block":
        assert 1 in refused and "properties.total" in refused[1]["reason"], refused
        assert len(by_name["Order Completed"]) == 1
    else:
        assert 1 not in refused
        invalid = by_name["Order Completed"][1]
        protocols = invalid["context"].get("protocols")
        if on_violation == "allow":
            assert invalid["properties"] == {"total": "5", "note": "n"} and protocols is None
        elif on_violation == "flag":
            assert invalid["properties"] == {"total": "5", "note": "n"}
            assert protocols["violations"] == [
                {
                    "type": "Invalid Type",
                    "field": "properties.total",
                    "description": protocols["violations"][0]["description"],
                }
            ]
        else:
            assert invalid["properties"] == {"note": "n"}
            assert protocols["omitted_on_violation"] == ["properties.total"]

    # The unplanned one.
    if unplanned == "block":
        assert 2 in refused and "not in the tracking plan" in refused[2]["reason"]
        assert "Cart Viewed" not in by_name
    else:
        cart = by_name["Cart Viewed"][0]
        assert cart["properties"] == {"items": 2}
        assert ("protocols" in cart["context"]) == (unplanned == "flag")

    # Counted whatever was done with them.
    listed = json.loads(cdp(server, "violations", "--source", name, "--json").stdout)
    assert sorted((v["event"], v["field"], v["type"], v["count"]) for v in listed) == [
        ("Cart Viewed", "event", "Unplanned Event", 1),
        ("Order Completed", "properties.total", "Invalid Type", 1),
    ]


def test_grpc_ingest_reports_blocked_events_and_they_are_kept_as_rejected(planned: Any) -> None:
    server = planned
    key = cdp(server, "source", "create", "grpc-strict").stdout.strip()
    cdp(server, "plan", "enforce", "grpc-strict", "--plan", "shop", "--unplanned", "block", "--on-violation", "block")
    rpc = Rpc(server)
    request = ingest_pb2.SendRequest(
        batch=batch(
            [
                track("g1", "g-user", properties={"total": 1}),
                track("g2", "g-user", name="Signed Up", properties={"plan": "pro", "coupon": "X"}),
            ]
        )
    )
    basic = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    # As for any refused event: INVALID_ARGUMENT naming it, the others stored.
    with pytest.raises(grpc.RpcError) as refused:
        rpc.ingest.Send(request, metadata=(("authorization", basic),), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = refused.value.details() or ""
    assert "1 stored" in details and "events[1].properties" in details, details
    assert "properties.coupon is not in the tracking plan" in details
    assert [e["event"] for e in stored(rpc, "g-user")] == ["Order Completed"]
    rejected = json.loads(cdp(server, "rejected", "list", "--source", "grpc-strict", "--json").stdout)
    assert [r["message_id"] for r in rejected["rejected"]] == ["g2"]


def test_transformations_versions_and_restart(server: Any, tmp_path: Path) -> None:
    plan = tmp_path / "shop.yaml"
    plan.write_text(PLAN_YAML)
    cdp(server, "plan", "apply", str(plan))
    key = cdp(server, "source", "create", "legacy").stdout.strip()
    transformations = [
        {"rename_event": {"from": "Order Done", "to": "Order Completed"}},
        {"rename_property": {"event": "Order Completed", "from": "price", "to": "total"}},
    ]
    cdp(
        server,
        "plan",
        "enforce",
        "legacy",
        "--transformations",
        json.dumps(transformations),
    )
    assert (
        post(server, "/v1/track", {"userId": "t-user", "event": "Order Done", "properties": {"price": 3}}, key=key)[0]
        == 200
    )
    [renamed] = stored(Rpc(server), "t-user")
    assert renamed["event"] == "Order Completed" and renamed["properties"] == {"total": 3}

    # A second version that plans "Order Done": enforced from the next request on.
    (tmp_path / "v2.json").write_text(json.dumps({"events": {"Order Done": {"type": "object"}}}))
    assert "version 2" in cdp(server, "plan", "apply", str(tmp_path / "v2.json"), "--name", "shop").stderr
    cdp(server, "plan", "enforce", "legacy", "--plan", "shop", "--unplanned", "block")
    assert post(server, "/v1/track", {"userId": "t-user", "event": "Cart Viewed"}, key=key)[1]["rejected"]
    server.stop()
    server.start()
    status, body, _ = post(server, "/v1/track", {"userId": "t-user", "event": "Cart Viewed"}, key=key)
    assert status == 200 and body is not None and body["rejected"], "still blocked after a restart"
    shown = json.loads(cdp(server, "plan", "show", "shop", "--json").stdout)
    assert shown["version"] == 2 and shown["sources"] == ["legacy"] and "Order Done" in shown["document"]["events"]
    first = json.loads(cdp(server, "plan", "show", "shop", "--version", "1", "--json").stdout)
    assert sorted(first["document"]["events"]) == ["Order Completed", "Signed Up"]
    listed = json.loads(cdp(server, "plan", "list", "--json").stdout)
    assert [(p["name"], p["version"], p["sources"]) for p in listed] == [("shop", 2, ["legacy"])]
    policy = json.loads(cdp(server, "plan", "enforce", "legacy", "--json").stdout)
    assert policy["transformations"] == transformations and policy["unplanned"] == "block"


def test_bad_plans_and_policies_are_refused_naming_what_is_wrong(server: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"events": {"Order Completed": {"type": "numbr"}}}))
    result = cdp(server, "plan", "create", str(bad), check=False)
    assert result.returncode == 1 and 'events."Order Completed": invalid JSON Schema' in result.stderr
    rpc = Rpc(server)
    with pytest.raises(grpc.RpcError) as refused:
        rpc.admin.SetSourcePolicy(
            governance_pb2.SetSourcePolicyRequest(
                policy=governance_pb2.SourcePolicy(source="development", plan="nope")
            ),
            metadata=server.admin_metadata,
            timeout=30,
        )
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND and "policy.plan" in (refused.value.details() or "")
    with pytest.raises(grpc.RpcError) as refused:
        rpc.admin.PutTrackingPlan(
            governance_pb2.PutTrackingPlanRequest(name="a b", document="{}"), metadata=server.admin_metadata, timeout=30
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in (refused.value.details() or "")
    result = cdp(server, "plan", "enforce", "development", "--transformations", '[{"rename_event": {}}]', check=False)
    assert result.returncode == 1 and "transformations[0]" in result.stderr
    # An admin call: a write key is not enough.
    with pytest.raises(grpc.RpcError) as refused:
        rpc.admin.ListTrackingPlans(
            governance_pb2.ListTrackingPlansRequest(), metadata=server.ingest_metadata, timeout=30
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_personal_data_is_inventoried_and_hashed_or_dropped_per_source(server: Any) -> None:
    crm_key = cdp(server, "source", "create", "crm").stdout.strip()
    web_key = cdp(server, "source", "create", "web").stdout.strip()
    cdp(server, "privacy", "patterns", "--set", json.dumps([{"name": "employee_id", "value_pattern": "^EMP-[0-9]+$"}]))
    protected = cdp(server, "privacy", "protect", "crm", "--hash", "email", "--drop", "credit_card,employee_id")
    assert "credit_card → drop, email → hash, employee_id → drop" in protected.stderr
    traits = {"email": "Ann@Example.com", "badge": "EMP-1", "plan": "pro"}
    order = {"card": "4111 1111 1111 1111", "total": 9, "phone": "+1 415 555 0100"}
    for key, user in ((crm_key, "p-crm"), (web_key, "p-web")):
        batch = {
            "batch": [
                {"type": "identify", "userId": user, "traits": traits, "context": {"ip": "10.1.2.3"}},
                {"type": "track", "userId": user, "event": "Order Completed", "properties": order},
            ]
        }
        assert post(server, "/v1/batch", batch, key=key)[0] == 200
    rpc = Rpc(server)
    crm = stored(rpc, "p-crm")
    digest = hashlib.sha256(b"ann@example.com").hexdigest()
    assert crm[0]["traits"] == {"email": digest, "plan": "pro"}
    assert crm[1]["properties"] == {"total": 9, "phone": "+1 415 555 0100"}
    assert rpc.events(f"email:{digest}"), "identity resolution sees the hashed email"
    web = stored(rpc, "p-web")
    assert web[0]["traits"] == traits and web[1]["properties"] == order, "another source is untouched"

    # The inventory: classified in the background; no values kept.
    deadline = time.monotonic() + 30
    while True:
        listed = json.loads(cdp(server, "privacy", "inventory", "--json").stdout)
        if listed["classified_through"] >= listed["last_seq"]:
            break
        assert time.monotonic() < deadline, listed
        time.sleep(0.2)
    found = {(f["source"], f["class"], f["field"]) for f in listed["fields"]}
    assert {
        ("web", "email", "traits.email"),
        ("web", "employee_id", "traits.badge"),
        ("web", "credit_card", "properties.card"),
        ("web", "phone", "properties.phone"),
        ("web", "ip", "context.ip"),
        ("crm", "ip", "context.ip"),
        ("crm", "phone", "properties.phone"),
    } <= found
    assert ("crm", "credit_card", "properties.card") not in found, "dropped before it was stored"
    assert "Ann@Example.com" not in json.dumps(listed) and "4111" not in json.dumps(listed)
    only = json.loads(cdp(server, "privacy", "inventory", "--source", "crm", "--class", "ip", "--json").stdout)
    assert [(f["field"], f["count"]) for f in only["fields"]] == [("context.ip", 1)]
    refused = cdp(server, "privacy", "protect", "crm", "--drop", "ssn", check=False)
    assert refused.returncode == 1 and "pii[" in refused.stderr and '"ssn" is not a class' in refused.stderr


def test_suppression_refuses_a_person_at_ingest_keeps_nothing_and_can_be_lifted(server: Any) -> None:
    rpc = Rpc(server)
    person = {"type": "identify", "userId": "sup-1", "traits": {"email": "Sue@Example.com", "secret": "canary-7731"}}
    assert post(server, "/v1/identify", person, key=server.write_key)[0] == 200
    made = json.loads(cdp(server, "privacy", "suppress", "email:sue@example.com", "--json").stdout)
    assert made["type"] == "SUPPRESS_ONLY" and made["status"] == "FINISHED"
    assert made["identifiers"][0].startswith("sha256:") and "sue" not in json.dumps(made)
    # Any identifier of an event matches: the email under another userId, over HTTP and gRPC.
    again = {"type": "track", "userId": "sup-2", "event": "X", "context": {"traits": {"email": "sue@example.com"}}}
    status, body, _ = post(
        server, "/v1/track", {**again, "properties": {"secret": "canary-7732"}}, key=server.write_key
    )
    assert status == 200 and body is not None and body["rejected"][0]["field"] == "suppressed"
    with pytest.raises(grpc.RpcError) as refused:
        rpc.send([track("sup-g", "sup-1")])
    assert "suppressed by regulation" in (refused.value.details() or "")
    assert rpc.events("user_id:sup-2") == []
    listed = json.loads(cdp(server, "privacy", "status", "--json").stdout)
    assert listed["suppressed_events"] == 2 and listed["regulations"][0]["id"] == made["id"]
    # Nothing of the refused events is kept, not even in the rejected store.
    rejected = cdp(server, "rejected", "list", "--json").stdout
    assert "canary-7732" not in rejected
    # Lifted: collected again.
    lifted = json.loads(cdp(server, "privacy", "unsuppress", "email:sue@example.com", "--json").stdout)
    assert lifted["stores"][0]["detail"].startswith("2 identifiers removed: the 1 given and 1 linked")
    assert post(server, "/v1/track", again, key=server.write_key)[1] == {"success": True}
    shown = json.loads(cdp(server, "privacy", "status", str(made["id"]), "--json").stdout)
    assert shown["id"] == made["id"] and shown["stores"][0]["store"] == "suppression list"
    refused_cli = cdp(server, "privacy", "suppress", "nocolon", check=False)
    assert refused_cli.returncode == 1 and "identifiers[0]" in refused_cli.stderr


def test_the_audit_log_never_keeps_a_persons_identifier() -> None:
    # The audit log is append-only and kept for ever: identifiers are written as a hash prefix.
    target, summary = describe(admin_pb2.SplitProfileRequest(a="user_id:1", b="email:ann@example.com"))
    assert "ann@example.com" not in target + summary and "user_id:1" not in target + summary
    assert target == (
        f"a=sha256:{hashlib.sha256(b'user_id:1').hexdigest()[:16]} "
        f"b=sha256:{hashlib.sha256(b'email:ann@example.com').hexdigest()[:16]}"
    )
    regulation = governance_pb2.CreateRegulationRequest(type=1, identifiers=["email:ann@example.com"])
    assert "ann" not in " ".join(describe(regulation))
