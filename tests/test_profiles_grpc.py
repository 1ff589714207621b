"""Profile lookups over gRPC: GetProfile, BatchGetProfiles and GetMergeHistory against a real server."""

from __future__ import annotations

import json

import grpc
import pytest
from rpc import IDENTIFY, Rpc, track, ts
from tributary._proto.cdp.v1 import event_pb2, profile_pb2


def identify(message_id: str, ms: int, user_id: str = "", anonymous_id: str = "", **traits: object) -> event_pb2.Event:
    return event_pb2.Event(
        type=IDENTIFY,
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=ts(ms),
        traits=json.dumps(traits).encode(),
    )


@pytest.fixture
def rpc(server: object) -> Rpc:
    client = Rpc(server)
    client.send([identify("m1", 1_000, anonymous_id="a1", plan="free")])
    client.send([identify("m2", 2_000, user_id="u1", email="Ann@X.com")])
    client.send([track("m3", user_id="u1", anonymous_id="a1", timestamp=ts(3_000))])
    return client


def test_batch_lookups_answer_each_identifier_in_order(rpc: Rpc) -> None:
    request = profile_pb2.BatchGetProfilesRequest(
        identifiers=["email:ann@x.com", "user_id:nobody", "nonsense", "anonymous_id:a1"], include=["plan"]
    )
    reply = rpc.profile.BatchGetProfiles(request, metadata=rpc.server.admin_metadata)
    results = list(reply.results)
    assert [r.identifier for r in results] == list(request.identifiers)
    assert results[0].profile.id == results[3].profile.id != ""
    assert json.loads(results[0].profile.traits) == {"plan": "free"}
    assert not results[1].HasField("profile") and results[1].error == ""
    assert not results[2].HasField("profile") and "type:value" in results[2].error


def test_merge_history_names_the_event_that_merged(rpc: Rpc) -> None:
    reply = rpc.profile.GetMergeHistory(
        profile_pb2.GetMergeHistoryRequest(identifier="user_id:u1"), metadata=rpc.server.admin_metadata
    )
    (merge,) = reply.merges
    assert merge.survivor_id == reply.profile_id and merge.message_id == "m3"
    merged_away = rpc.profile.GetProfile(
        profile_pb2.GetProfileRequest(identifier=merge.merged_id), metadata=rpc.server.admin_metadata
    )
    assert merged_away.profile.id == reply.profile_id, "a merged-away id resolves to the survivor"


def test_profile_reads_need_the_admin_token_and_name_unknowns(rpc: Rpc) -> None:
    request = profile_pb2.GetProfileRequest(identifier="user_id:u1")
    with pytest.raises(grpc.RpcError) as caught:
        rpc.profile.GetProfile(request, metadata=rpc.server.ingest_metadata)
    # A write key is a valid credential that only sends events.
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as caught:
        rpc.profile.GetProfile(
            profile_pb2.GetProfileRequest(identifier="user_id:ghost"), metadata=rpc.server.admin_metadata
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert "no profile for user_id:ghost" in caught.value.details()  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as caught:
        rpc.profile.BatchGetProfiles(
            profile_pb2.BatchGetProfilesRequest(identifiers=["user_id:x"] * 1001), metadata=rpc.server.admin_metadata
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "identifiers" in caught.value.details()  # type: ignore[attr-defined]


def test_explain_link_shows_the_joining_events_or_the_refusal(rpc: Rpc) -> None:
    rpc.send([identify("m4", 4_000, user_id="u2", email="ann@x.com")])
    linked = rpc.profile.ExplainLink(
        profile_pb2.ExplainLinkRequest(a="anonymous_id:a1", b="email:ann@x.com"), metadata=rpc.server.admin_metadata
    )
    assert linked.linked and linked.profile_a == linked.profile_b
    kinds = [(step.kind, step.message_id) for step in linked.steps]
    assert kinds == [
        (profile_pb2.LinkStep.KIND_JOINED, "m1"),
        (profile_pb2.LinkStep.KIND_JOINED, "m2"),
        (profile_pb2.LinkStep.KIND_MERGED, "m3"),
    ]
    apart = rpc.profile.ExplainLink(
        profile_pb2.ExplainLinkRequest(a="user_id:u2", b="email:ann@x.com"), metadata=rpc.server.admin_metadata
    )
    assert not apart.linked
    (refused,) = apart.steps
    assert (refused.kind, refused.message_id, refused.identifier) == (
        profile_pb2.LinkStep.KIND_REFUSED,
        "m4",
        "email:ann@x.com",
    )
    assert "user_id" in refused.reason and "limit" in refused.description
