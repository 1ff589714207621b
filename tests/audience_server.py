"""A reference world (audience_reference.World) put on a real server, and the AudienceService asked about it.

`AudienceRpc.load(world, prefix)` sends a world as a customer's sources would, and gives back the world as the server
holds it (`Loaded.world`), on which the reference must give the server's answers:

- A profile `p` is the user `<prefix>p`. Its traits come from one identify call at `TRAITS_AT`, before every event
  (a null trait is missing on both sides). Its events are track calls with explicit timestamps, each sent with the
  write key of the source named by the event's `source_id` (created once: `create_sources`).
- A profile's events arrive in list order: the server breaks equal timestamps by arrival, as the reference breaks
  them by list order. A request carries one source's events, so a profile's events go out as runs of one source,
  run after run, in requests sent one after the other.
- An account `a` is the group `<prefix>a`: one group call per member at `TRAITS_AT`, the account's traits on one of
  them only (group traits fold latest-timestamp-wins, and a call without traits changes nothing). Every call needs a
  user, so an account without members cannot exist on the server: `Loaded.world` leaves such accounts out.
- Ids: the server names profiles `tp_...` and accounts `group_id:<group>`, and orders an account's users by profile
  id where the reference orders them by id. `Loaded.world` is the world under the server's ids, so the two orders are
  one and the reference's answers are in the server's ids.

Evaluation is over every entity on the server: a test gives each world its own prefix and compares only that world's
entities (`Loaded.ids`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

import grpc
from audience_query import Definition, Kind, is_audience
from audience_reference import Account, Event, World, computed_values, members, same_value
from audience_workload import NOW, SOURCE_IDS
from google.protobuf import timestamp_pb2
from tributary._proto.cdp.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    audience_pb2,
    audience_pb2_grpc,
    event_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
)

TRAITS_AT = NOW - timedelta(days=400)
AUDIENCE = audience_pb2.DEFINITION_TYPE_AUDIENCE
COMPUTED_TRAIT = audience_pb2.DEFINITION_TYPE_COMPUTED_TRAIT
USERS = audience_pb2.ENTITY_KIND_USERS
ACCOUNTS = audience_pb2.ENTITY_KIND_ACCOUNTS
ENTITY_KINDS: dict[Kind, audience_pb2.EntityKind.ValueType] = {"USERS": USERS, "ACCOUNTS": ACCOUNTS}
MAX_LOOKUPS = 1000  # BatchGetProfiles' limit


def timestamp(at: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(round(at.timestamp() * 1000))
    return stamp


def status(error: BaseException) -> grpc.StatusCode:
    """The status code of a failed call."""
    return cast(grpc.Call, error).code()


def details(error: BaseException) -> str:
    return cast(grpc.Call, error).details() or ""


def definition_type(definition: Definition) -> audience_pb2.DefinitionType.ValueType:
    return AUDIENCE if is_audience(definition) else COMPUTED_TRAIT


@dataclass(frozen=True)
class Loaded:
    """A world as the server holds it: profiles under their `tp_...` ids, accounts as `group_id:...`."""

    world: World
    profile_ids: Mapping[str, str]  # world profile id -> server profile id
    account_ids: Mapping[str, str]  # world account id -> "group_id:<prefix><id>"
    prefix: str

    def ids(self, kind: Kind) -> set[str]:
        """This world's entities of a kind, in the server's ids."""
        return set(self.world.profiles) if kind == "USERS" else set(self.world.accounts)

    def user_identifier(self, profile_id: str) -> str:
        return f"user_id:{self.prefix}{profile_id}"


def json_bytes(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value).encode()


def _runs(events: Iterable[Event]) -> list[tuple[str, list[Event]]]:
    """Consecutive events of one source, in list order."""
    runs: list[tuple[str, list[Event]]] = []
    for event in events:
        if runs and runs[-1][0] == event.source_id:
            runs[-1][1].append(event)
        else:
            runs.append((event.source_id, [event]))
    return runs


class AudienceRpc:
    """Stubs bound to one server, with its admin token and one write key per source of SOURCE_IDS."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.channel: grpc.Channel = server.channel()
        self.ingest = ingest_pb2_grpc.IngestServiceStub(self.channel)
        self.profile = profile_pb2_grpc.ProfileServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.audience = audience_pb2_grpc.AudienceServiceStub(self.channel)
        self.admin_metadata: tuple[tuple[str, str], ...] = server.admin_metadata
        self.write_keys: dict[str, str] = {"": server.write_key}  # source name -> write key; "" the dev source

    def close(self) -> None:
        self.channel.close()

    def create_sources(self, names: Iterable[str] = SOURCE_IDS) -> None:
        for name in names:
            request = admin_pb2.CreateSourceRequest(name=name)
            created = self.admin.CreateSource(request, metadata=self.admin_metadata, timeout=30)
            self.write_keys[name] = created.write_key

    # ----------------------------------------------------------------------------------------------------------------
    # Ingest.

    def send(self, events: list[event_pb2.Event], source: str = "") -> None:
        """Sends one request with the source's write key; every event must be accepted."""
        basic = base64.b64encode(f"{self.write_keys[source]}:".encode()).decode()
        request = ingest_pb2.SendRequest(batch=event_pb2.Batch(events=events))
        reply = self.ingest.Send(request, metadata=(("authorization", f"Basic {basic}"),), timeout=60)
        refused = [r for r in reply.results if r.status != ingest_pb2.EVENT_STATUS_ACCEPTED]
        assert not refused, f"events not accepted: {refused}"

    def load(self, world: World, prefix: str) -> Loaded:
        """Sends the world's profiles, accounts and events (see the module's docstring)."""
        users = {pid: prefix + pid for pid in world.profiles}
        setup = [
            event_pb2.Event(
                type=event_pb2.EVENT_TYPE_IDENTIFY,
                message_id=f"{prefix}{pid}-identify",
                user_id=users[pid],
                timestamp=timestamp(TRAITS_AT),
                traits=json_bytes(profile.traits),
            )
            for pid, profile in world.profiles.items()
        ]
        accounts = {aid: account for aid, account in world.accounts.items() if account.members}
        for aid, account in accounts.items():
            for i, pid in enumerate(sorted(account.members)):
                setup.append(
                    event_pb2.Event(
                        type=event_pb2.EVENT_TYPE_GROUP,
                        message_id=f"{prefix}{aid}-{pid}-group",
                        user_id=users[pid],
                        group_id=prefix + aid,
                        timestamp=timestamp(TRAITS_AT),
                        traits=json_bytes(account.traits) if i == 0 else b"",
                    )
                )
        self.send(setup)
        # Round r holds every profile's r-th run: a profile's runs go out in order, in few requests.
        rounds: dict[tuple[int, str], list[event_pb2.Event]] = {}
        for pid, profile in world.profiles.items():
            # Events built by hand may have no messageId: each gets one (the server would dedupe a repeated one).
            numbered = [
                e if e.message_id else replace(e, message_id=f"{pid}-m{i}") for i, e in enumerate(profile.events)
            ]
            for r, (source, run) in enumerate(_runs(numbered)):
                rounds.setdefault((r, source), []).extend(self._track(users[pid], prefix, event) for event in run)
        for (_, source), events in sorted(rounds.items(), key=lambda item: item[0]):
            self.send(events, source)
        profile_ids = dict(zip(users, self.profile_ids([f"user_id:{u}" for u in users.values()]), strict=True))
        account_ids = {aid: f"group_id:{prefix}{aid}" for aid in accounts}
        renamed = World(
            {profile_ids[pid]: profile for pid, profile in world.profiles.items()},
            {
                account_ids[aid]: Account(frozenset(profile_ids[p] for p in account.members), account.traits)
                for aid, account in accounts.items()
            },
        )
        return Loaded(renamed, profile_ids, account_ids, prefix)

    @staticmethod
    def _track(user_id: str, prefix: str, event: Event) -> event_pb2.Event:
        return event_pb2.Event(
            type=event_pb2.EVENT_TYPE_TRACK,
            message_id=prefix + event.message_id,
            user_id=user_id,
            event=event.name,
            timestamp=timestamp(event.timestamp),
            properties=json_bytes(event.properties),
            context=json_bytes(event.context),
        )

    def profile_ids(self, identifiers: list[str]) -> list[str]:
        """The `tp_...` id of each identifier, which must have a profile."""
        found: list[str] = []
        for start in range(0, len(identifiers), MAX_LOOKUPS):
            request = profile_pb2.BatchGetProfilesRequest(identifiers=identifiers[start : start + MAX_LOOKUPS])
            reply = self.profile.BatchGetProfiles(request, metadata=self.admin_metadata, timeout=60)
            for result in reply.results:
                assert result.HasField("profile"), f"no profile for {result.identifier}: {result.error}"
                found.append(result.profile.id)
        return found

    # ----------------------------------------------------------------------------------------------------------------
    # The AudienceService.

    def create(
        self,
        key: str,
        query: str,
        type: audience_pb2.DefinitionType.ValueType = AUDIENCE,
        kind: audience_pb2.EntityKind.ValueType = USERS,
        name: str = "",
    ) -> audience_pb2.Audience:
        request = audience_pb2.CreateAudienceRequest(key=key, name=name, query=query, type=type, kind=kind)
        reply: audience_pb2.CreateAudienceResponse = self.audience.CreateAudience(
            request, metadata=self.admin_metadata, timeout=60
        )
        return reply.audience

    def create_definition(self, key: str, definition: Definition, query: str) -> audience_pb2.Audience:
        return self.create(key, query, definition_type(definition), ENTITY_KINDS[definition.kind])

    def update(self, key: str, query: str = "", name: str = "") -> audience_pb2.Audience:
        request = audience_pb2.UpdateAudienceRequest(key=key, query=query, name=name)
        reply: audience_pb2.UpdateAudienceResponse = self.audience.UpdateAudience(
            request, metadata=self.admin_metadata, timeout=60
        )
        return reply.audience

    def get(self, key: str) -> audience_pb2.Audience:
        request = audience_pb2.GetAudienceRequest(key=key)
        reply: audience_pb2.GetAudienceResponse = self.audience.GetAudience(
            request, metadata=self.admin_metadata, timeout=30
        )
        return reply.audience

    def audiences(self) -> list[audience_pb2.Audience]:
        """ListAudiences."""
        reply: audience_pb2.ListAudiencesResponse = self.audience.ListAudiences(
            audience_pb2.ListAudiencesRequest(), metadata=self.admin_metadata, timeout=30
        )
        return list(reply.audiences)

    def delete(self, key: str) -> None:
        request = audience_pb2.DeleteAudienceRequest(key=key)
        self.audience.DeleteAudience(request, metadata=self.admin_metadata, timeout=30)

    def preview(
        self,
        query: str,
        type: audience_pb2.DefinitionType.ValueType = AUDIENCE,
        kind: audience_pb2.EntityKind.ValueType = USERS,
        at: datetime | None = NOW,
        sample_size: int = 1000,
    ) -> audience_pb2.PreviewResponse:
        request = audience_pb2.PreviewRequest(query=query, type=type, kind=kind, sample_size=sample_size)
        if at is not None:
            request.at.CopyFrom(timestamp(at))
        reply: audience_pb2.PreviewResponse = self.audience.Preview(request, metadata=self.admin_metadata, timeout=60)
        return reply

    def preview_definition(self, definition: Definition, query: str) -> audience_pb2.PreviewResponse:
        return self.preview(query, definition_type(definition), ENTITY_KINDS[definition.kind])

    def pages(self, key: str, at: datetime | None = NOW) -> list[audience_pb2.ListMembersResponse]:
        """Every page of ListMembers."""
        request = audience_pb2.ListMembersRequest(key=key)
        if at is not None:
            request.at.CopyFrom(timestamp(at))
        stream: Iterator[audience_pb2.ListMembersResponse] = self.audience.ListMembers(
            request, metadata=self.admin_metadata, timeout=60
        )
        return list(stream)

    def check(self, key: str, identifier: str, at: datetime | None = NOW) -> audience_pb2.CheckMembershipResponse:
        request = audience_pb2.CheckMembershipRequest(key=key, identifier=identifier)
        if at is not None:
            request.at.CopyFrom(timestamp(at))
        reply: audience_pb2.CheckMembershipResponse = self.audience.CheckMembership(
            request, metadata=self.admin_metadata, timeout=30
        )
        return reply


# --------------------------------------------------------------------------------------------------------------------
# Answers: the reference's and the server's, in one form (a set of ids for an audience, id -> value for a computed
# trait), compared and explained.

PAGE = 1000  # ListMembers' page size, Preview's largest sample


def expected_answer(definition: Definition, loaded: Loaded, others: Mapping[str, Definition], key: str | None) -> Any:
    """The reference's members (a set of ids) or computed values (id -> value), in the server's ids."""
    if is_audience(definition):
        return members(definition, loaded.world, NOW, others, key)
    return computed_values(definition, loaded.world, NOW, others)


def explain(loaded: Loaded, query: str, definition: Definition, server: Any, reference: Any) -> str:
    """For an assertion's message: the query, the ids, and where the server's answer and the reference's differ."""
    difference = ""
    if isinstance(reference, set) and isinstance(server, set):
        only_server, only_reference = sorted(server - reference), sorted(reference - server)
        difference = f"only the server: {only_server}\nonly the reference: {only_reference}"
    elif isinstance(reference, dict) and isinstance(server, dict):
        differ = {
            i: (server.get(i), reference.get(i))
            for i in sorted(server.keys() | reference.keys())
            if not same_value(server.get(i), reference.get(i))
        }
        difference = f"id: (server, reference) where they differ: {differ}"
    ids = {**loaded.profile_ids, **loaded.account_ids}
    return (
        f"\n{definition.kind} {'audience' if is_audience(definition) else 'computed trait'}:\n{query}\n"
        f"ids (world -> server): {ids}\n{difference}\nserver: {server}\nreference: {reference}"
    )


def server_answer(answered: Sequence[audience_pb2.Member], definition: Definition, loaded: Loaded) -> Any:
    """The server's answer about this world's entities, in the form of `expected_answer`."""
    own = loaded.ids(definition.kind)
    if is_audience(definition):
        assert all(not m.value for m in answered), "an audience's members carry no value"
        return member_ids(answered, own)
    return member_values(answered, own)


def same_answer(server: Any, reference: Any) -> bool:
    """Equal members, or the same entities with the same values (`same_value`: numbers by value)."""
    if isinstance(reference, set):
        return bool(server == reference)
    return server.keys() == reference.keys() and all(same_value(server[i], reference[i]) for i in reference)


def check_saved(rpc: AudienceRpc, loaded: Loaded, key: str, definition: Definition, query: str, expected: Any) -> None:
    """ListMembers and CheckMembership of a saved definition against the reference's answer."""
    pages = rpc.pages(key)
    listed = [m for page in pages for m in page.members]
    assert all(len(page.members) <= PAGE and page.count == len(listed) for page in pages)
    assert [m.id for m in listed] == sorted({m.id for m in listed}), "members by id, each once"
    server = server_answer(listed, definition, loaded)
    assert same_answer(server, expected), "ListMembers" + explain(loaded, query, definition, server, expected)
    for world_id, server_id in (loaded.profile_ids if definition.kind == "USERS" else loaded.account_ids).items():
        identifier = loaded.user_identifier(world_id) if definition.kind == "USERS" else server_id
        checked = rpc.check(key, identifier)
        assert checked.id == server_id, (identifier, checked)
        if is_audience(definition):
            assert checked.member == (server_id in expected), f"CheckMembership {identifier}" + explain(
                loaded, query, definition, checked.member, server_id in expected
            )
        else:
            value = json.loads(checked.value) if checked.value else None
            assert same_value(value, expected.get(server_id)), f"CheckMembership {identifier}" + explain(
                loaded, query, definition, value, expected.get(server_id)
            )


def member_ids(members: Iterable[audience_pb2.Member], of: set[str]) -> set[str]:
    """The ids among `of` (one world's entities) of an answer's members."""
    return {m.id for m in members if m.id in of}


def member_values(members: Iterable[audience_pb2.Member], of: set[str]) -> dict[str, Any]:
    """The computed values (decoded JSON) of the members among `of`."""
    return {m.id: json.loads(m.value) for m in members if m.id in of}
