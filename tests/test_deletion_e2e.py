"""Privacy deletion end to end (issue 11): a person deleted from a real server across every store, a PostgreSQL
warehouse and a webhook, through two `kill -9` during the deletion, then a byte scan of every data file.

The server pauses between the deletion's stages (`deletion_stage_pause_secs`), so the kills land where the test
wants them: the first right after the events left the log (before the profiles, index and the other stores were
cleaned), the second while the webhook's notice is still being retried. Each time the deletion resumes at the next
start and the receipt ends FINISHED.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from cli_runner import cdp
from delivery_helpers import Destinations, delivered_events, wait_for
from rpc import IDENTIFY, Rpc, track, ts
from test_audience_realtime import Audiences
from tributary._proto.cdp.v1 import admin_pb2_grpc, event_pb2, governance_pb2, ingest_pb2, profile_pb2
from webhook_sink import Reply, WebhookSink

if TYPE_CHECKING:
    from postgres import PostgresDatabase

pytest_plugins = ["sinks_conftest", "postgres"]

ENV = {"TRIBUTARY_DELIVERY_TIME_SCALE": "3600", "TRIBUTARY_DELETION_STAGE_PAUSE_SECS": "0.4"}
LONG_WINDOW_SECS = 7 * 86_400
BASE_MS = 1_714_564_800_000

ANN_USER = "ann-7c1f"
ANN_DEVICE = "ann-device-7c1f"
ANN_EMAIL = "ann.canary@example.com"
ANN_NAME = "Annabel Canaryfield"
ANN_STREET = "17 Canary Wharf Lane"
# What must be in no file of the data directory once she is deleted.
CANARIES = [ANN_USER, ANN_DEVICE, ANN_EMAIL, ANN_NAME, ANN_STREET]

STATUS = governance_pb2.RegulationStatus


def identify(message_id: str, at_ms: int, user_id: str = "", anonymous_id: str = "", **traits: Any) -> event_pb2.Event:
    return event_pb2.Event(
        type=IDENTIFY,
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=ts(at_ms),
        traits=json.dumps(traits).encode(),
    )


def ann_events() -> list[event_pb2.Event]:
    return [
        identify("ann-1", BASE_MS, anonymous_id=ANN_DEVICE, name=ANN_NAME),
        identify("ann-2", BASE_MS + 1000, user_id=ANN_USER, anonymous_id=ANN_DEVICE, email=ANN_EMAIL),
        track("ann-3", user_id=ANN_USER, timestamp=ts(BASE_MS + 2000), properties={"street": ANN_STREET, "total": 30}),
        track("ann-4", user_id="", anonymous_id=ANN_DEVICE, name="Product Viewed", timestamp=ts(BASE_MS + 3000)),
        event_pb2.Event(
            type=event_pb2.EVENT_TYPE_GROUP,
            message_id="ann-5",
            user_id=ANN_USER,
            group_id="acme",
            timestamp=ts(BASE_MS),
        ),
    ]


def others() -> list[event_pb2.Event]:
    events = []
    for n in range(20):
        user = f"other-{n}"
        events.append(identify(f"{user}-1", BASE_MS + n, user_id=user, email=f"{user}@example.com", plan="team"))
        events.append(track(f"{user}-2", user_id=user, timestamp=ts(BASE_MS + 5000 + n), properties={"total": n}))
    events.append(
        event_pb2.Event(
            type=event_pb2.EVENT_TYPE_GROUP, message_id="bob-group", user_id="other-1", group_id="acme", timestamp=ts(1)
        )
    )
    return events


def refused(rpc: Rpc, event: event_pb2.Event) -> str:
    """Sends one event that must be refused; returns why."""
    with pytest.raises(grpc.RpcError) as refusal:
        rpc.send([event])
    assert refusal.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    return str(refusal.value.details()).split("; ", 1)[1]  # type: ignore[attr-defined]


class Regulations:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.stub = admin_pb2_grpc.AdminServiceStub(server.channel())

    def get(self, regulation: int) -> governance_pb2.Regulation:
        request = governance_pb2.GetRegulationRequest(id=regulation)
        return self.stub.GetRegulation(request, metadata=self.server.admin_metadata, timeout=10)

    def stage(self, regulation: int, name: str) -> int:
        for store in self.get(regulation).stores:
            if store.store == name:
                return int(store.status)
        raise AssertionError(f"no stage {name!r}")


def files_holding(root: Path, canaries: list[str]) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{canary!r} in {path.relative_to(root)}" for canary in canaries if canary.encode() in data]
    return found


def warehouse_rows_naming(postgres: PostgresDatabase, values: list[str]) -> list[tuple[str, str]]:
    """Every (table, column) of the warehouse schema with a row holding one of `values` (text columns)."""
    hits = []
    columns = postgres.query(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'tributary' AND data_type IN ('text', 'character varying')"
    )
    for table, column in columns:
        rows = postgres.query(f'SELECT count(*) FROM tributary."{table}" WHERE "{column}" = ANY(%s)', (values,))
        if rows[0][0]:
            hits.append((table, column))
    return hits


def test_a_person_is_deleted_from_every_store_and_destination_through_two_kills(
    server_factory: Any, postgres: PostgresDatabase, webhook_sink: WebhookSink
) -> None:
    server = server_factory(env=ENV)
    destinations = Destinations(server)
    destinations.create(
        "dw", "warehouse", {"dsn": postgres.dsn, "allow": ["127.0.0.1"]}, retry_window_secs=LONG_WINDOW_SECS
    )
    destinations.webhook("hook", webhook_sink.url, computations=["*"], retry_window_secs=LONG_WINDOW_SECS)
    Audiences(server).create("buyers", "event('Order Completed').count() >= 1")
    rpc = Rpc(server)
    for events in (ann_events(), others()):
        reply = rpc.send(events)
        assert {r.status for r in reply.results} == {ingest_pb2.EVENT_STATUS_ACCEPTED}, reply
    # A refused event of hers (a track without a name) stays in the rejected store until the deletion.
    assert refused(rpc, track("ann-6", user_id=ANN_USER, name="")).startswith("events[0].event")
    wait_for(lambda: ("Audience Entered", "buyers") in Audiences(server).derived(f"user_id:{ANN_USER}"))
    wait_for(lambda: Audiences(server).get("buyers").size == 21)
    for name in ("dw", "hook"):
        destinations.settled(name)
    assert warehouse_rows_naming(postgres, [ANN_USER, ANN_DEVICE]), "her rows reached the warehouse"
    assert any(e.get("userId") == ANN_USER for e in delivered_events(webhook_sink.requests))
    bob_rows = postgres.query("SELECT count(*) FROM tributary.tracks WHERE user_id = 'other-1'")[0][0]

    # The webhook refuses the notice for now: the deletion waits on it, retrying.
    webhook_sink.respond(503)
    made = json.loads(cdp(server, "privacy", "delete", f"email:{ANN_EMAIL}", "--json").stdout)
    regulation = made["id"]
    assert made["status"] == "INITIALIZED"
    assert made["stores"][0]["store"] == "suppression list"

    # Kill 1: the events have left the log; the profiles and the other stores are not cleaned yet.
    regulations = Regulations(server)
    wait_for(lambda: regulations.stage(regulation, "events and dedupe markers") == STATUS.REGULATION_STATUS_FINISHED)
    assert regulations.stage(regulation, "identifier index") != STATUS.REGULATION_STATUS_FINISHED
    server.kill()
    server.start()
    regulations = Regulations(server)
    # Kill 2: every engine stage done, the webhook's notice still refused and retried.
    wait_for(lambda: regulations.stage(regulation, "identity snapshot") == STATUS.REGULATION_STATUS_FINISHED)
    wait_for(lambda: regulations.stage(regulation, "destination dw") == STATUS.REGULATION_STATUS_FINISHED)
    assert regulations.stage(regulation, "destination hook") != STATUS.REGULATION_STATUS_FINISHED
    assert regulations.get(regulation).status == STATUS.REGULATION_STATUS_RUNNING
    server.kill()
    webhook_sink.respond(200)
    server.start()

    receipt = json.loads(cdp(server, "privacy", "status", str(regulation), "--wait", "--json").stdout)
    assert receipt["status"] == "FINISHED", receipt
    assert {s["status"] for s in receipt["stores"]} == {"FINISHED"}, receipt
    detail = {s["store"]: s["detail"] for s in receipt["stores"]}
    assert detail["profiles, traits, links and audiences"] == "rebuilt from the log at start-up"
    assert detail["rejected events"].startswith("1 removed"), detail
    assert "rows deleted" in detail["destination dw"], detail
    # A kill between the warehouse's DELETE and its record sends the notice again, and that finds
    # nothing left to delete: the receipt must say so rather than claim 0 rows were ever there.
    if "sent again after a restart" not in detail["destination dw"]:
        assert not detail["destination dw"].startswith("0 "), detail
    assert receipt["engine_seconds"] > 0

    # The warehouse holds nothing of her, and everything of the others.
    assert warehouse_rows_naming(postgres, CANARIES) == []
    assert postgres.query("SELECT count(*) FROM tributary.tracks WHERE user_id = 'other-1'")[0][0] == bob_rows
    # The webhook got her audience exit, then the delete call, signed.
    notices = [r for r in webhook_sink.requests if r.reply.status == 200 and b'"delete"' in r.body]
    assert notices, "the delete notice reached the webhook"
    sent = json.loads(notices[-1].body)
    assert [(e["type"], e.get("event")) for e in sent] == [("track", "Audience Exited"), ("delete", None)]
    assert sent[0]["properties"] == {"audience_key": "buyers", "buyers": False}
    assert sent[1]["userId"] == ANN_USER and sent[1]["context"]["regulation"]["type"] == "SUPPRESS_WITH_DELETE"
    assert notices[-1].headers["webhook-signature"].startswith("v1,")

    # The server answers as if she had never been: no profile, no events; she is suppressed.
    rpc = Rpc(server)
    for identifier in (f"user_id:{ANN_USER}", f"anonymous_id:{ANN_DEVICE}", f"email:{ANN_EMAIL}"):
        with pytest.raises(grpc.RpcError) as missing:
            rpc.profile.GetProfile(
                profile_pb2.GetProfileRequest(identifier=identifier), metadata=server.admin_metadata, timeout=10
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND, identifier  # type: ignore[attr-defined]
    assert "suppressed" in refused(rpc, track("ann-7", user_id=ANN_USER))
    assert rpc.profile.GetProfile(
        profile_pb2.GetProfileRequest(identifier="user_id:other-1"), metadata=server.admin_metadata, timeout=10
    ).profile.id
    assert Audiences(server).get("buyers").size == 20, "she left the audience; the others are in it"

    # Nothing of her is in any file of the data directory (log, index, delivery, snapshot), after a clean stop too.
    assert server.stop() == 0
    assert files_holding(server.data_dir, CANARIES) == []


def test_a_destination_that_refuses_its_notice_leaves_the_deletion_partly_done(
    server_factory: Any, webhook_sink: WebhookSink
) -> None:
    server = server_factory(env={"TRIBUTARY_DELIVERY_TIME_SCALE": "3600"})
    Destinations(server).webhook("strict", webhook_sink.url)
    rpc = Rpc(server)
    rpc.send(ann_events())
    Destinations(server).settled("strict")
    webhook_sink.respond(400)  # a permanent refusal: not retried
    made = json.loads(cdp(server, "privacy", "delete", f"user_id:{ANN_USER}", "--keep-collecting", "--json").stdout)
    assert all(s["store"] != "suppression list" for s in made["stores"]), "DELETE_ONLY suppresses nothing"
    receipt = json.loads(cdp(server, "privacy", "status", str(made["id"]), "--wait", "--json").stdout)
    assert receipt["status"] == "PARTIAL_SUCCESS", receipt
    stages = {s["store"]: s for s in receipt["stores"]}
    assert stages["destination strict"]["status"] == "FAILED"
    assert stages["destination strict"]["detail"].startswith("refused: "), stages["destination strict"]
    assert {s["status"] for name, s in stages.items() if name != "destination strict"} == {"FINISHED"}
    # Everything of hers is gone from the server all the same, and she may come back (DELETE_ONLY).
    with pytest.raises(grpc.RpcError) as missing:
        rpc.profile.GetProfile(
            profile_pb2.GetProfileRequest(identifier=f"user_id:{ANN_USER}"), metadata=server.admin_metadata, timeout=10
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    reply = rpc.send([track("ann-back", user_id=ANN_USER)])
    assert reply.results[0].status == ingest_pb2.EVENT_STATUS_ACCEPTED


def test_a_notice_in_flight_when_the_server_dies_is_sent_again_and_the_receipt_says_so(
    server_factory: Any, webhook_sink: WebhookSink
) -> None:
    server = server_factory(env={"TRIBUTARY_DELIVERY_TIME_SCALE": "3600"})
    Destinations(server).webhook("hook", webhook_sink.url, retry_window_secs=LONG_WINDOW_SECS)
    Rpc(server).send(ann_events())
    Destinations(server).settled("hook")
    webhook_sink.respond(Reply.hang())  # the notice's call never answers
    made = json.loads(cdp(server, "privacy", "delete", f"user_id:{ANN_USER}", "--json").stdout)
    wait_for(lambda: any(b'"delete"' in r.body for r in webhook_sink.requests))
    # Killed with the notice in flight: the destination may have acted on it; the server cannot know.
    server.kill()
    webhook_sink.respond(200)
    webhook_sink.release()
    server.start()

    receipt = json.loads(cdp(server, "privacy", "status", str(made["id"]), "--wait", "--json").stdout)
    assert receipt["status"] == "FINISHED", receipt
    detail = {s["store"]: s["detail"] for s in receipt["stores"]}["destination hook"]
    assert detail.startswith("notice delivered (signed)") and "sent again after a restart" in detail, detail
    notices = [r for r in webhook_sink.requests if b'"delete"' in r.body]
    assert len(notices) == 2 and notices[0].body == notices[1].body, "the same notice, sent again"
