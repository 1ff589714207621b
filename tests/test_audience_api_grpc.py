"""The AudienceService's definitions and refusals against a real server: create, get, list and delete by key; a
definition with an error is refused with its position and nothing is stored; keys, cycles, references, limits, kinds
and types; the admin token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from audience_server import ACCOUNTS, AUDIENCE, COMPUTED_TRAIT, USERS, AudienceRpc, details, status
from tributary._proto.cdp.v1 import audience_pb2

CODE = grpc.StatusCode
PRO = "trait('plan') = 'pro'"
ORDERS = "event('Order Completed').count()"


@pytest.fixture
def rpc(server: object) -> Iterator[AudienceRpc]:
    client = AudienceRpc(server)
    yield client
    client.close()


def refusal(call: Callable[..., object], *args: Any, **kwargs: Any) -> grpc.RpcError:
    """The error of `call(*args, **kwargs)`, which must fail."""
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def keys(rpc: AudienceRpc) -> list[str]:
    return [a.key for a in rpc.audiences()]


def saved_as(audience: audience_pb2.Audience) -> tuple[object, ...]:
    """What a definition was saved as (not its real-time status and size, which change)."""
    a = audience
    return (a.key, a.name, a.query, a.type, a.kind, a.id, a.created_at_ms, a.canonical_query)


def test_definitions_are_created_read_listed_by_key_and_deleted(rpc: AudienceRpc) -> None:
    pro = rpc.create("pro_users", PRO)
    assert (pro.key, pro.name, pro.query, pro.type, pro.kind) == ("pro_users", "pro_users", PRO, AUDIENCE, USERS)
    assert pro.id.startswith("aud_") and pro.created_at_ms > 0 and pro.canonical_query
    # Unspecified type and kind read as AUDIENCE and USERS; a name is kept as given.
    spelled = "event('Order Completed').within(7 days).count()>=1"
    buyers = rpc.create("Buyers_7d", spelled, audience_pb2.DEFINITION_TYPE_UNSPECIFIED, name="Bought this week")
    assert (buyers.name, buyers.query, buyers.type, buyers.kind) == ("Bought this week", spelled, AUDIENCE, USERS)
    orders = rpc.create("orders", ORDERS, COMPUTED_TRAIT)
    accounts = rpc.create("a" * 100, "ANY (trait('plan') = 'pro')", kind=ACCOUNTS)
    assert (orders.type, accounts.kind) == (COMPUTED_TRAIT, ACCOUNTS)
    assert len({pro.id, buyers.id, orders.id, accounts.id}) == 4

    assert saved_as(rpc.get("pro_users")) == saved_as(pro)
    assert keys(rpc) == sorted(["pro_users", "Buyers_7d", "orders", "a" * 100])
    assert saved_as(rpc.audiences()[keys(rpc).index("orders")]) == saved_as(orders)
    # ACCOUNTS definitions are evaluated when asked: always READY. USERS ones are COMPUTING, then READY.
    ready, computing = audience_pb2.Audience.STATUS_READY, audience_pb2.Audience.STATUS_COMPUTING
    assert rpc.get("a" * 100).status == ready
    assert all(a.status in (ready, computing) for a in rpc.audiences())

    rpc.delete("pro_users")
    assert status(refusal(rpc.get, "pro_users")) == CODE.NOT_FOUND
    assert "pro_users" not in keys(rpc)
    again = rpc.create("pro_users", PRO)
    assert again.id != pro.id, "an id is never reused"


def test_a_query_with_an_error_is_refused_with_its_position_and_nothing_is_stored(rpc: AudienceRpc) -> None:
    rpc.create("kept", PRO)
    before = rpc.audiences()
    bad = "trait('plan') = 'pro'\nAND trait('age') @ 3"  # '@' is line 2, column 18
    error = refusal(rpc.create, "broken", bad)
    assert status(error) == CODE.INVALID_ARGUMENT and "line 2, column 18" in details(error), details(error)
    error = refusal(rpc.create, "broken", "trait('plan') = = 'pro'")  # the second '=' is column 17
    assert status(error) == CODE.INVALID_ARGUMENT and "line 1, column 17" in details(error), details(error)
    error = refusal(rpc.preview, bad)
    assert status(error) == CODE.INVALID_ARGUMENT and "line 2, column 18" in details(error), details(error)
    assert rpc.audiences() == before
    assert status(refusal(rpc.get, "broken")) == CODE.NOT_FOUND


def test_an_update_is_checked_as_a_creation_and_changes_nothing_when_refused(rpc: AudienceRpc) -> None:
    rpc.create("a", "trait('plan') = 'pro'")
    rpc.create("b", "trait('a').exists() AND trait('age') > 30")
    before = saved_as(rpc.get("a"))
    refused = [
        ("trait('plan') = 'pro'\nAND trait('age') @ 3", "line 2, column 18"),  # a syntax error
        ("trait('b').exists()", "cycle"),  # b reads a: a may not read b
        ("trait('a').exists()", "cycle"),  # nor itself
        ("event('Order Completed').count()", ""),  # an audience stays an audience
        ("ANY (trait('plan') = 'pro')", "any"),  # and of its kind
    ]
    for query, named in refused:
        error = refusal(rpc.update, "a", query)
        assert status(error) == CODE.INVALID_ARGUMENT and named in details(error).lower(), (query, details(error))
    assert saved_as(rpc.get("a")) == before
    assert status(refusal(rpc.update, "ghost", PRO)) == CODE.NOT_FOUND
    updated = rpc.update("a", "trait('plan') = 'free'", name="Free plan")
    assert (updated.key, updated.query, updated.name, updated.id) == (
        "a",
        "trait('plan') = 'free'",
        "Free plan",
        before[5],
    )
    assert saved_as(rpc.get("a")) == saved_as(updated)


def test_keys_are_unique_and_of_word_characters(rpc: AudienceRpc) -> None:
    rpc.create("vip", PRO)
    assert status(refusal(rpc.create, "vip", ORDERS, COMPUTED_TRAIT)) == CODE.ALREADY_EXISTS
    for key in ["", "has space", "dash-ed", "dotted.key", "é", "a" * 101, "quote'"]:
        error = refusal(rpc.create, key, PRO)
        assert status(error) == CODE.INVALID_ARGUMENT and "key" in details(error), (key, details(error))
    assert keys(rpc) == ["vip"]


def test_unknown_keys_are_not_found(rpc: AudienceRpc) -> None:
    calls: list[tuple[Callable[..., object], tuple[str, ...]]] = [
        (rpc.get, ("ghost",)),
        (rpc.delete, ("ghost",)),
        (rpc.pages, ("ghost",)),
        (rpc.check, ("ghost", "user_id:u1")),
    ]
    for call, args in calls:
        error = refusal(call, *args)
        assert status(error) == CODE.NOT_FOUND and "ghost" in details(error), details(error)


def test_reference_cycles_are_refused(rpc: AudienceRpc) -> None:
    # `a` reads a trait named `b`; an audience `b` reading `a` would close a loop.
    rpc.create("a", "trait('b').exists() OR trait('plan') = 'pro'")
    error = refusal(rpc.create, "b", "trait('a').exists()")
    assert status(error) == CODE.INVALID_ARGUMENT and "cycle" in details(error).lower(), details(error)
    # Through a computed trait, and through a longer loop.
    rpc.create("c", "event('Order Completed').where(trait('d') > 1).count()", COMPUTED_TRAIT)
    error = refusal(rpc.create, "d", "event('Order Completed').where(trait('c') > 1).count()", COMPUTED_TRAIT)
    assert status(error) == CODE.INVALID_ARGUMENT and "cycle" in details(error).lower(), details(error)
    rpc.create("e", "trait('f') = 1")
    rpc.create("g", "trait('e').exists()")
    error = refusal(rpc.create, "f", "trait('g').exists()")
    assert status(error) == CODE.INVALID_ARGUMENT and "cycle" in details(error).lower(), details(error)
    # A definition that reads its own key.
    for key, query in [
        ("self", "trait('self').absent()"),
        ("self_count", "event('E').where(trait('self_count') = 1).count() >= 1"),
    ]:
        error = refusal(rpc.create, key, query)
        assert status(error) == CODE.INVALID_ARGUMENT and "cycle" in details(error).lower(), details(error)
    assert keys(rpc) == ["a", "c", "e", "g"]


def test_a_definition_read_by_another_cannot_be_deleted(rpc: AudienceRpc) -> None:
    rpc.create("pro", PRO)
    rpc.create("pro_buyers", "trait('pro').exists() AND event('Order Completed').count() >= 1")
    error = refusal(rpc.delete, "pro")
    assert status(error) == CODE.FAILED_PRECONDITION and "pro_buyers" in details(error), details(error)
    assert keys(rpc) == ["pro", "pro_buyers"]
    rpc.delete("pro_buyers")
    rpc.delete("pro")
    assert keys(rpc) == []


def test_definitions_that_do_not_type_check_are_refused(rpc: AudienceRpc) -> None:
    fifty_one = " AND ".join(["trait('a') = 1"] * 51)
    refused: list[tuple[str, audience_pb2.DefinitionType.ValueType, audience_pb2.EntityKind.ValueType, str]] = [
        (fifty_one, AUDIENCE, USERS, "50"),
        ("ANY (trait('plan') = 'pro')", AUDIENCE, USERS, "ANY"),  # ACCOUNTS only
        ("ALL (trait('plan') = 'pro')", AUDIENCE, USERS, "ALL"),
        (ORDERS, AUDIENCE, USERS, ""),  # a computed trait's query given as an audience
        (PRO, COMPUTED_TRAIT, USERS, ""),  # and the other way round
        ("event('Order Completed').unique(property('sku')) = 1", AUDIENCE, USERS, ""),  # a list compared
        # Windows and date comparators need N >= 1.
        ("event('Order Completed').within(0 days).count() >= 1", AUDIENCE, USERS, ""),
        ("event('A').where(event('B').within(parent: 0 hours).count() >= 1).count() >= 1", AUDIENCE, USERS, ""),
        ("trait('signup_at').within_last(0 days)", AUDIENCE, USERS, ""),
        ("trait('signup_at').within_next(0 hours)", AUDIENCE, USERS, ""),
        ("trait('signup_at').before_last(0 days)", AUDIENCE, USERS, ""),
        ("trait('signup_at').after_next(0 days)", AUDIENCE, USERS, ""),
        ("property('price') > 1", AUDIENCE, USERS, ""),  # outside where()
    ]
    accepted = []  # every refusal is checked before the test fails
    for i, (query, type, kind, named) in enumerate(refused):
        try:
            errors = [refusal(rpc.create, f"refused{i}", query, type, kind), refusal(rpc.preview, query, type, kind)]
        except pytest.fail.Exception:
            accepted.append(query)
            continue
        for error in errors:
            assert status(error) == CODE.INVALID_ARGUMENT and named in details(error), (query, details(error))
            assert "line 1, column" in details(error), (query, details(error))
    fifty = " AND ".join(["trait('a') = 1"] * 50)
    assert rpc.preview(fifty).count == 0
    # A USERS audience's key read at the account level, and an ACCOUNTS one's at the user level.
    rpc.create("pro_user", PRO)
    rpc.create("pro_account", "ANY (trait('plan') = 'pro')", kind=ACCOUNTS)
    for query, kind in [("trait('pro_user').exists()", ACCOUNTS), ("trait('pro_account').exists()", USERS)]:
        calls: list[tuple[str, Callable[..., object], tuple[Any, ...]]] = [
            ("CreateAudience", rpc.create, ("cross", query, AUDIENCE, kind)),
            ("Preview", rpc.preview, (query, AUDIENCE, kind)),
        ]
        for rpc_name, call, args in calls:
            try:
                error = refusal(call, *args)
            except pytest.fail.Exception:
                accepted.append(f"{rpc_name} {query} ({audience_pb2.EntityKind.Name(kind)})")
                continue
            assert status(error) == CODE.INVALID_ARGUMENT, (query, details(error))
    assert {"pro_account", "pro_user"} <= set(keys(rpc))
    assert not accepted, f"accepted: {accepted}"


def test_every_call_needs_the_admin_token(rpc: AudienceRpc) -> None:
    stub = rpc.audience

    def read_stream(method: Callable[..., Any]) -> Callable[..., object]:
        def read(request: object, metadata: Any) -> object:
            return next(iter(method(request, metadata=metadata, timeout=10)))  # a stream fails when read

        return read

    calls: list[tuple[Callable[..., object], object]] = [
        (stub.CreateAudience, audience_pb2.CreateAudienceRequest(key="k", query=PRO)),
        (stub.GetAudience, audience_pb2.GetAudienceRequest(key="k")),
        (stub.ListAudiences, audience_pb2.ListAudiencesRequest()),
        (stub.DeleteAudience, audience_pb2.DeleteAudienceRequest(key="k")),
        (stub.Preview, audience_pb2.PreviewRequest(query=PRO)),
        (read_stream(stub.ListMembers), audience_pb2.ListMembersRequest(key="k")),
        (stub.CheckMembership, audience_pb2.CheckMembershipRequest(key="k", identifier="user_id:u")),
        (stub.UpdateAudience, audience_pb2.UpdateAudienceRequest(key="k", query=PRO)),
        (stub.ExplainMembership, audience_pb2.ExplainMembershipRequest(key="k", identifier="user_id:u")),
        (read_stream(stub.WatchMembership), audience_pb2.WatchMembershipRequest(key="k")),
    ]
    write_key = rpc.server.ingest_metadata
    for metadata, expected in [
        ((), CODE.UNAUTHENTICATED),
        (write_key, CODE.PERMISSION_DENIED),  # a valid credential that only sends events
        ((("authorization", "Bearer not-the-token"),), CODE.UNAUTHENTICATED),
    ]:
        for call, request in calls:
            error = refusal(call, request, metadata=metadata)
            assert status(error) == expected, (request, metadata, details(error))
    assert keys(rpc) == []
