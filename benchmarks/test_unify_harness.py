"""Checks of the Unify benchmark's harness: the identity graph it generates, its encoding, the
baselines, the component verifier and the unary client. Small inputs: a few seconds in all."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import networkx as nx  # type: ignore[import-untyped]
import pytest
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2, profile_pb2

from benchmarks import unify_workload as uw
from benchmarks.process import free_port
from benchmarks.unify_baselines import duckdb_components, networkx_components
from benchmarks.unify_client import GET_PROFILE, run_unary
from benchmarks.unify_empty_server import build_server
from benchmarks.unify_engine import ingest, open_engine, profiles_of
from benchmarks.unify_verify import mismatches

PEOPLE = 4_000


@pytest.fixture(scope="module")
def graph() -> uw.IdentityGraph:
    return uw.generate(PEOPLE, seed=11)


@pytest.fixture(scope="module")
def components(graph: uw.IdentityGraph) -> list[frozenset[str]]:
    edges = uw.edge_list(graph.events)
    g = nx.Graph()
    g.add_nodes_from(edges.nodes)
    g.add_edges_from(edges.string_edges())
    return [frozenset(part) for part in nx.connected_components(g)]


def test_generation_is_deterministic_for_a_seed(graph: uw.IdentityGraph) -> None:
    again = uw.generate(PEOPLE, seed=11)
    assert again.events == graph.events and again.people == graph.people
    assert uw.encode_batches(again.events[:600], 11) == uw.encode_batches(graph.events[:600], 11)
    assert uw.generate(PEOPLE, seed=12).events != graph.events


def test_about_a_tenth_of_the_people_share_an_identifier(graph: uw.IdentityGraph) -> None:
    owners = Counter(identifier for ids in graph.people for identifier in set(ids))
    sharing = sum(1 for ids in graph.people if any(owners[i] > 1 for i in ids))
    assert sharing / PEOPLE == pytest.approx(uw.SHARED_FRACTION, abs=0.005)
    assert {len(group) for group in graph.groups} == {2, 3}
    assert all(1 <= len(ids) <= uw.MAX_IDENTIFIERS for ids in graph.people)


def test_no_component_can_reach_a_limit(graph: uw.IdentityGraph, components: list[frozenset[str]]) -> None:
    """The final components keep every limit, so every profile on the way (a subset) does too."""
    for component in components:
        per_type = Counter(uw.split(identifier)[0] for identifier in component)
        for kind, count in per_type.items():
            assert count <= uw.LIMITS.get(kind, uw.DEFAULT_LIMIT), (kind, sorted(component))
    # Components are the people merged by their groups: nothing links people outside a group.
    assert len(components) == PEOPLE - sum(len(group) - 1 for group in graph.groups)
    person_of = {identifier: n for n, ids in enumerate(graph.people) for identifier in ids}
    for component in components:
        people = {person_of[identifier] for identifier in component}
        assert len(people) <= 3 < uw.MAX_MERGES


def test_every_event_has_an_anchor_and_stays_inside_one_person(graph: uw.IdentityGraph) -> None:
    person_of = {identifier: n for n, ids in enumerate(graph.people) for identifier in ids}
    anchors = {ids[0] for ids in graph.people}
    for ids in graph.events:
        assert ids[0] in anchors
        assert ids[0].startswith(uw.ANCHOR_TYPES)
        assert all(identifier in graph.people[person_of[ids[0]]] for identifier in ids)


def _identifiers(ev: event_pb2.Event) -> set[str]:
    """The identifiers the engine reads from the fields the encoder uses."""
    found = {f"user_id:{ev.user_id}"} if ev.user_id else set()
    if ev.anonymous_id:
        found.add(f"anonymous_id:{ev.anonymous_id}")
    if ev.traits and "email" in (traits := json.loads(ev.traits)):
        found.add(f"email:{traits['email']}")
    found |= {f"{x['type']}:{x['id']}" for x in json.loads(ev.context).get("externalIds", [])}
    return found


def test_batches_carry_every_event_with_its_identifiers(graph: uw.IdentityGraph) -> None:
    events = graph.events[:1_200]
    requests = [ingest_pb2.StreamRequest.FromString(raw) for raw in uw.encode_batches(events, 11)]
    assert [r.sequence for r in requests] == [1, 2, 3]
    protos = [ev for r in requests for ev in r.batch.events]
    assert [_identifiers(ev) for ev in protos] == [set(ids) for ids in events]
    assert len({ev.message_id for ev in protos}) == len(protos)
    stamps = [ev.original_timestamp.ToNanoseconds() for ev in protos]
    assert stamps == sorted(stamps)


def test_baselines_find_the_same_components(graph: uw.IdentityGraph, components: list[frozenset[str]]) -> None:
    edges = uw.edge_list(graph.events)
    by_networkx = networkx_components(edges)
    assert by_networkx.count == len(components)
    assert set(by_networkx.component_of.values()) == set(components)
    by_duckdb = duckdb_components(edges)
    assert by_duckdb.count == len(components) and int(by_duckdb.details["rounds"]) >= 2


def test_verifier_accepts_the_components_and_catches_a_wrong_partition(components: list[frozenset[str]]) -> None:
    component_of = {identifier: part for part in components for identifier in part}
    profiles = {i: (f"tp_{n}", part) for n, part in enumerate(components) for i in part}
    sample = sorted(component_of)
    assert mismatches(sample, profiles, component_of) == []

    big, small = sorted((p for p in components if len(p) > 1), key=len)[-2:]
    merged = dict(profiles) | {i: ("tp_merged", big | small) for i in big | small}
    assert {m.identifier for m in mismatches(sample, merged, component_of)} == big | small

    first, *rest = sorted(big)
    split = dict(profiles) | {first: ("tp_split", frozenset({first}))}
    (wrong,) = mismatches(sample, split, component_of)
    assert wrong.identifier == first and wrong.missing == frozenset(rest)

    same_ids_other_id = dict(profiles) | {rest[0]: ("tp_twin", big)}
    assert [m.identifier for m in mismatches(sample, same_ids_other_id, component_of)] == [rest[0]]
    missing = {k: v for k, v in profiles.items() if k != first}
    assert [m.profile_id for m in mismatches(sample, missing, component_of)] == [""]


def test_engine_profiles_are_the_components_end_to_end(tmp_path: Path) -> None:
    small = uw.generate(300, seed=5)
    edges = uw.edge_list(small.events)
    with open_engine(tmp_path / "data") as (engine, source_id):
        run = ingest(engine, source_id, uw.encode_batches(small.events, 5), window=2)
        assert run.accepted == len(small.events) and run.refused == 0
        found = profiles_of(engine, edges.nodes)
    assert mismatches(edges.nodes, found, networkx_components(edges).component_of) == []


def test_unary_client_counts_calls_against_the_empty_server() -> None:
    port = free_port()
    server = build_server(port)
    server.start()
    try:
        request = profile_pb2.GetProfileRequest(identifier="user_id:u1").SerializeToString()
        outcome = run_unary(f"127.0.0.1:{port}", GET_PROFILE, [request], in_flight=4, seconds=0.3, warmup_s=0.1)
    finally:
        server.stop(grace=None)
    assert outcome.errors == 0 and outcome.calls > 10
    assert 0 < outcome.p50_ms <= outcome.p99_ms <= outcome.max_ms
