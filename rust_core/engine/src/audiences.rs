//! `AudienceService`: audience and computed-trait definitions (checked, then stored by key in
//! the `audiences` database) and their evaluation at a given time (`engage::plan`).
//!
//! A definition is parsed and type-checked before anything is written, and its references to
//! other definitions (`trait('key')`) are checked too: the kind of the place a key is read in
//! must be the kind of its definition, and no chain of references may lead back to where it
//! started. So a stored definition always evaluates.

use std::time::Instant;

use prost::Message;
use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::engage::evaluate::Entity;
use crate::engage::plan::Run;
use crate::engage::realtime;
use crate::error::{EngineError, Result};
use crate::ingest::Engine;
use crate::profile_reads::parse_lookup;
use crate::proto::audience::Status;
use crate::proto::{
    self, Audience, CheckMembershipRequest, CheckMembershipResponse, ConditionResult, CreateAudienceRequest,
    CreateAudienceResponse, DefinitionType, DeleteAudienceRequest, DeleteAudienceResponse, EntityKind, EventType,
    ExplainMembershipRequest, ExplainMembershipResponse, GetAudienceRequest, GetAudienceResponse, ListAudiencesRequest,
    ListAudiencesResponse, ListMembersRequest, ListMembersResponse, Member, MembershipChange, PreviewRequest,
    PreviewResponse, UpdateAudienceRequest, UpdateAudienceResponse,
};
use crate::query::{self, Body, Condition, Definition, Expect, Filter, Kind, Scalar};
use crate::reads::TailFilter;
use crate::time;

const META_NEXT_AUDIENCE: &str = "next_audience_id";
/// Most members a Preview returns, and a ListMembers page holds.
pub const MAX_PAGE: usize = 1_000;
const DEFAULT_SAMPLE: usize = 10;
/// Most message ids `ExplainMembership` lists per condition.
const MAX_EXPLAINED_EVENTS: usize = 20;

fn kind_of(kind: i32) -> Kind {
    match EntityKind::try_from(kind) {
        Ok(EntityKind::Accounts) => Kind::Accounts,
        _ => Kind::Users,
    }
}

fn expect_of(definition_type: i32) -> Expect {
    match DefinitionType::try_from(definition_type) {
        Ok(DefinitionType::ComputedTrait) => Expect::ComputedTrait,
        _ => Expect::Audience,
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Users => "USERS",
        Kind::Accounts => "ACCOUNTS",
    }
}

/// Parses a query, reporting an error with its position and a caret under it.
fn parse_query(text: &str, kind: Kind, expect: Expect) -> Result<Definition> {
    query::parse(text, kind, expect)
        .map_err(|err| EngineError::InvalidRequest(format!("query: {err}\n{}", err.caret(text))))
}

/// The canonical text of a definition, after the parse and type check that `CreateAudience` and
/// `Preview` run first (references to saved definitions aside: those need the store). The error
/// is theirs too: `InvalidRequest` with the position and a caret.
pub fn canonical_query(text: &str, kind: Kind, expect: Expect) -> Result<String> {
    parse_query(text, kind, expect).map(|definition| query::render(&definition))
}

fn check_key(key: &str) -> Result<()> {
    let valid = !key.is_empty() && key.len() <= 100 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(EngineError::InvalidRequest(format!(
            "key must be 1 to 100 characters of A-Z, a-z, 0-9 and _, got {key:?}"
        )))
    }
}

/// Every `trait('name')` of a definition with the kind of entity it is read on.
fn references(definition: &Definition) -> Vec<(&str, Kind)> {
    let mut found = Vec::new();
    match &definition.body {
        Body::Audience(condition) => condition_refs(condition, definition.kind, &mut found),
        Body::ComputedTrait(scalar) => scalar_refs(scalar, definition.kind, &mut found),
    }
    found
}

fn condition_refs<'d>(condition: &'d Condition, level: Kind, found: &mut Vec<(&'d str, Kind)>) {
    match condition {
        Condition::And(parts) | Condition::Or(parts) => parts.iter().for_each(|p| condition_refs(p, level, found)),
        Condition::Not(inner) => condition_refs(inner, level, found),
        Condition::Any(inner) | Condition::All(inner) => condition_refs(inner, Kind::Users, found),
        Condition::Compare(comparison) => {
            scalar_refs(&comparison.subject, level, found);
            if let Some(operand) = comparison.comparator.operand() {
                scalar_refs(operand, level, found);
            }
        }
    }
}

fn scalar_refs<'d>(scalar: &'d Scalar, level: Kind, found: &mut Vec<(&'d str, Kind)>) {
    match scalar {
        Scalar::Trait(name) => found.push((name, level)),
        Scalar::Reduced(reduction) => {
            for filter in &reduction.stream.filters {
                if let Filter::Where(condition) = filter {
                    condition_refs(condition, level, found);
                }
            }
        }
        Scalar::Literal(_) | Scalar::Field(_) => {}
    }
}

/// Checks the references of `definition` (to be saved as `key`, if saved) against the saved
/// definitions: kinds match, and no cycle.
fn check_references(key: Option<&str>, definition: &Definition, saved: &FxHashMap<String, Definition>) -> Result<()> {
    for (name, level) in references(definition) {
        let target = match (key, saved.get(name)) {
            (Some(own), _) if own == name => definition,
            (_, Some(target)) => target,
            (_, None) => continue,
        };
        if target.kind != level {
            return Err(EngineError::InvalidRequest(format!(
                "query: trait('{name}') reads a {} definition at {} level",
                kind_name(target.kind),
                kind_name(level)
            )));
        }
    }
    let Some(key) = key else {
        return Ok(());
    };
    // Depth-first from the new definition's references: reaching `key` again is a cycle.
    let mut stack: Vec<(String, Vec<String>)> = vec![(key.to_owned(), vec![key.to_owned()])];
    let mut seen = std::collections::HashSet::new();
    while let Some((at, path)) = stack.pop() {
        let here = if at == key { Some(definition) } else { saved.get(&at) };
        let Some(here) = here else { continue };
        for (name, _) in references(here) {
            if name == key {
                return Err(EngineError::InvalidRequest(format!(
                    "query: definitions may not read themselves: this would make a cycle {} -> {key}",
                    path.join(" -> ")
                )));
            }
            if saved.contains_key(name) && seen.insert(name.to_owned()) {
                let mut path = path.clone();
                path.push(name.to_owned());
                stack.push((name.to_owned(), path));
            }
        }
    }
    Ok(())
}

/// What an evaluation found: members (an audience) or values (a computed trait), each entity
/// named by its id ("tp_…" or "group_id:…").
struct Found {
    count: u64,
    members: Vec<Member>,
}

fn member(id: String, value: Option<&Value>) -> Member {
    Member {
        id,
        value: value
            .map(|v| serde_json::to_vec(v).unwrap_or_default())
            .unwrap_or_default(),
    }
}

impl Engine {
    /// `CreateAudience` on encoded bytes.
    pub fn create_audience(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: CreateAudienceRequest = proto::decode_request(request)?;
        let key = request.key.trim();
        check_key(key)?;
        let name = request.name.trim();
        if name.chars().count() > 200 {
            return Err(EngineError::InvalidRequest(
                "name must be at most 200 characters".into(),
            ));
        }
        let kind = kind_of(request.kind);
        let definition = parse_query(&request.query, kind, expect_of(request.r#type))?;
        let dbs = &self.shared.store.log_dbs;
        let audience = self.write_log(|txn| {
            if dbs.audiences.get(txn, key)?.is_some() {
                return Err(EngineError::AlreadyExists(format!(
                    "an audience or computed trait keyed {key:?} exists"
                )));
            }
            let saved = parse_saved(saved_records(dbs, txn)?)?;
            check_references(Some(key), &definition, &saved)?;
            let id = dbs.meta.get(txn, META_NEXT_AUDIENCE)?.unwrap_or(1);
            let audience = Audience {
                key: key.to_owned(),
                name: if name.is_empty() {
                    key.to_owned()
                } else {
                    name.to_owned()
                },
                query: request.query.clone(),
                r#type: if expect_of(request.r#type) == Expect::ComputedTrait {
                    DefinitionType::ComputedTrait as i32
                } else {
                    DefinitionType::Audience as i32
                },
                kind: if kind == Kind::Accounts {
                    EntityKind::Accounts as i32
                } else {
                    EntityKind::Users as i32
                },
                id: format!("aud_{id}"),
                created_at_ms: time::now_ms(),
                canonical_query: query::render(&definition),
                status: Status::Computing as i32,
                size: 0,
                progress_percent: 0,
            };
            dbs.audiences.put(txn, key, &audience.encode_to_vec())?;
            dbs.meta.put(txn, META_NEXT_AUDIENCE, &(id + 1))?;
            Ok(audience)
        })?;
        self.shared.engage_hub.mark_computing(key);
        self.shared.engage_hub.definitions_changed();
        Ok(CreateAudienceResponse {
            audience: Some(audience),
        }
        .encode_to_vec())
    }

    /// `GetAudience` on encoded bytes.
    pub fn get_audience(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: GetAudienceRequest = proto::decode_request(request)?;
        let mut audience = self.saved_audience(&request.key)?;
        self.fill_state(std::slice::from_mut(&mut audience))?;
        Ok(GetAudienceResponse {
            audience: Some(audience),
        }
        .encode_to_vec())
    }

    /// `ListAudiences` on encoded bytes.
    pub fn list_audiences(&self, request: &[u8]) -> Result<Vec<u8>> {
        proto::decode_request::<ListAudiencesRequest>(request)?;
        let txn = self.shared.store.log.read()?;
        let mut audiences = saved_records(&self.shared.store.log_dbs, &txn.txn)?;
        drop(txn);
        self.fill_state(&mut audiences)?;
        Ok(ListAudiencesResponse { audiences }.encode_to_vec())
    }

    /// `DeleteAudience` on encoded bytes.
    pub fn delete_audience(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: DeleteAudienceRequest = proto::decode_request(request)?;
        let key = request.key.trim();
        let dbs = &self.shared.store.log_dbs;
        self.write_log(|txn| {
            if dbs.audiences.get(txn, key)?.is_none() {
                return Err(not_found(key));
            }
            let saved = parse_saved(saved_records(dbs, txn)?)?;
            let mut readers: Vec<&str> = saved
                .iter()
                .filter(|(other, definition)| {
                    other.as_str() != key && references(definition).iter().any(|(name, _)| *name == key)
                })
                .map(|(other, _)| other.as_str())
                .collect();
            if !readers.is_empty() {
                readers.sort_unstable();
                return Err(EngineError::FailedPrecondition(format!(
                    "{key:?} is read by {} through trait('{key}'): delete or change those first",
                    readers.join(", ")
                )));
            }
            dbs.audiences.delete(txn, key)?;
            Ok(())
        })?;
        self.shared.engage_hub.definitions_changed();
        Ok(DeleteAudienceResponse {}.encode_to_vec())
    }

    /// `Preview` on encoded bytes.
    pub fn preview_audience(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: PreviewRequest = proto::decode_request(request)?;
        let definition = parse_query(&request.query, kind_of(request.kind), expect_of(request.r#type))?;
        {
            let txn = self.shared.store.log.read()?;
            let saved = parse_saved(saved_records(&self.shared.store.log_dbs, &txn.txn)?)?;
            check_references(None, &definition, &saved)?;
        }
        let sample = match request.sample_size as usize {
            0 => DEFAULT_SAMPLE,
            n => n.min(MAX_PAGE),
        };
        let started = Instant::now();
        let found = self.evaluate(&definition, at_ms(request.at.as_ref()), Some(sample))?;
        Ok(PreviewResponse {
            count: found.count,
            sample: found.members,
            evaluation_micros: started.elapsed().as_micros() as u64,
            canonical_query: query::render(&definition),
        }
        .encode_to_vec())
    }

    /// `ListMembers`: every member, by id, as encoded pages of at most `MAX_PAGE` (at least one).
    pub fn list_members(&self, request: &[u8]) -> Result<Vec<Vec<u8>>> {
        let request: ListMembersRequest = proto::decode_request(request)?;
        let audience = self.saved_audience(&request.key)?;
        let definition = parse_query(&audience.query, kind_of(audience.kind), expect_of(audience.r#type))?;
        let found = self.evaluate(&definition, at_ms(request.at.as_ref()), None)?;
        let mut members = found.members;
        members.sort_by(|a, b| a.id.cmp(&b.id));
        let pages: Vec<Vec<u8>> = members
            .chunks(MAX_PAGE)
            .map(|page| {
                ListMembersResponse {
                    members: page.to_vec(),
                    count: found.count,
                }
                .encode_to_vec()
            })
            .collect();
        if pages.is_empty() {
            return Ok(vec![ListMembersResponse::default().encode_to_vec()]);
        }
        Ok(pages)
    }

    /// `CheckMembership` on encoded bytes.
    pub fn check_membership(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: CheckMembershipRequest = proto::decode_request(request)?;
        let (_, definition) = self.saved_definition(&request.key)?;
        let at = at_ms(request.at.as_ref());
        let (id, value) = self.with_run(at, |run| {
            let (id, entity) = entity_for(run, definition.kind, &request.identifier)?;
            Ok((id, outcome(run, &definition, &entity)?))
        })?;
        let is_audience = matches!(definition.body, Body::Audience(_));
        Ok(CheckMembershipResponse {
            id,
            member: is_audience && value.is_some(),
            value: if is_audience {
                Vec::new()
            } else {
                json_bytes(value.as_ref())
            },
        }
        .encode_to_vec())
    }

    /// `ExplainMembership` on encoded bytes.
    pub fn explain_membership(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: ExplainMembershipRequest = proto::decode_request(request)?;
        let (audience, definition) = self.saved_definition(&request.key)?;
        let at = at_ms(request.at.as_ref());
        self.with_run(at, |run| {
            let (id, entity) = entity_for(run, definition.kind, &request.identifier)?;
            let value = outcome(run, &definition, &entity)?;
            let is_audience = matches!(definition.body, Body::Audience(_));
            let conditions = match &definition.body {
                Body::Audience(condition) => run.ev.explain(condition, &entity)?,
                Body::ComputedTrait(_) => Vec::new(),
            };
            let message_id = |seq: u64| run.ev.log.message_id(seq).unwrap_or_default();
            let conditions = conditions
                .into_iter()
                .map(|node| ConditionResult {
                    depth: node.depth,
                    query: node.query,
                    holds: node.holds,
                    value: json_bytes(node.value.as_ref()),
                    operand: json_bytes(node.operand.as_ref()),
                    message_ids: node
                        .seqs
                        .iter()
                        .take(MAX_EXPLAINED_EVENTS)
                        .map(|&seq| message_id(seq))
                        .collect(),
                    events_total: node.seqs.len() as u64,
                    users: node.users,
                    users_total: node.users_total as u64,
                })
                .collect();
            let prefix = format!("engage-{}-", audience.id);
            let mut history = Vec::new();
            if definition.kind == Kind::Accounts {
                // An account's changes are among its group calls.
                let group = id.strip_prefix("group_id:").unwrap_or(&id);
                for &seq in run.links.calls.get(group).into_iter().flatten() {
                    let Some((_, event)) = run.ev.log.event(seq)? else {
                        continue;
                    };
                    if is_account_change(&event, &audience.key) {
                        let ms = event.timestamp.as_ref().map_or(0, time::to_ms);
                        let name = change_name(!is_audience, &audience.key, &event);
                        history.push(change_of(seq, ms, name, &audience.key, &event));
                    }
                }
            }
            for name in ["Audience Entered", "Audience Exited"] {
                for (ms, seq) in run.ev.events_named(&entity, name) {
                    let Some((_, event)) = run.ev.log.event(seq)? else {
                        continue;
                    };
                    if event.message_id.starts_with(&prefix) {
                        history.push(change_of(seq, ms, name, &audience.key, &event));
                    }
                }
            }
            history.sort_by_key(|change| change.seq);
            Ok(ExplainMembershipResponse {
                id,
                member: is_audience && value.is_some(),
                value: if is_audience {
                    Vec::new()
                } else {
                    json_bytes(value.as_ref())
                },
                at: Some(time::from_ms(at)),
                conditions,
                history,
            }
            .encode_to_vec())
        })
    }

    /// `UpdateAudience` on encoded bytes.
    pub fn update_audience(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: UpdateAudienceRequest = proto::decode_request(request)?;
        let key = request.key.trim();
        let name = request.name.trim();
        if name.chars().count() > 200 {
            return Err(EngineError::InvalidRequest(
                "name must be at most 200 characters".into(),
            ));
        }
        let dbs = &self.shared.store.log_dbs;
        let audience = self.write_log(|txn| {
            let Some(bytes) = dbs.audiences.get(txn, key)? else {
                return Err(not_found(key));
            };
            let mut audience: Audience = proto::decode_record(bytes, format_args!("audience {key:?}"))?;
            if !request.query.trim().is_empty() {
                let definition = parse_query(&request.query, kind_of(audience.kind), expect_of(audience.r#type))?;
                let mut saved = parse_saved(saved_records(dbs, txn)?)?;
                saved.remove(key);
                check_references(Some(key), &definition, &saved)?;
                audience.query.clone_from(&request.query);
                audience.canonical_query = query::render(&definition);
            }
            if !name.is_empty() {
                audience.name = name.to_owned();
            }
            dbs.audiences.put(txn, key, &audience.encode_to_vec())?;
            Ok(audience)
        })?;
        if !request.query.trim().is_empty() {
            self.shared.engage_hub.mark_computing(key);
        }
        self.shared.engage_hub.definitions_changed();
        let mut audience = audience;
        self.fill_state(std::slice::from_mut(&mut audience))?;
        Ok(UpdateAudienceResponse {
            audience: Some(audience),
        }
        .encode_to_vec())
    }

    /// `WatchMembership`: the changes of a saved definition written after log position
    /// `after` (waiting up to `wait` for some), encoded, and the position to resume from.
    pub fn watch_membership(&self, key: &str, after: u64, wait: std::time::Duration) -> Result<(Vec<Vec<u8>>, u64)> {
        let audience = self.saved_audience(key)?;
        let own = self
            .shared
            .engage_hub
            .source_id
            .load(std::sync::atomic::Ordering::Acquire);
        let computed = audience.r#type == DefinitionType::ComputedTrait as i32;
        // An audience's changes are its tracks (its identify repeats them); a computed trait's
        // are the Engage identify calls that set its key.
        let prefix = format!("engage-{}-", audience.id);
        // An account's changes are group calls setting its key.
        let is_change = |event: &proto::Event| match EventType::try_from(event.r#type) {
            Ok(EventType::Track) => !computed && event.message_id.starts_with(&prefix),
            Ok(EventType::Identify) => {
                computed && event.message_id.starts_with("engage-traits-") && sets_key(event, &audience.key)
            }
            Ok(EventType::Group) => is_account_change(event, &audience.key),
            _ => false,
        };
        let (events, position) = self.tail_events(after, 1_000, &TailFilter::default(), wait)?;
        let changes = events
            .into_iter()
            .filter(|(_, source, event)| *source == own && is_change(event))
            .map(|(seq, _, event)| {
                let ms = event.timestamp.as_ref().map_or(0, time::to_ms);
                change_of(
                    seq,
                    ms,
                    change_name(computed, &audience.key, &event),
                    &audience.key,
                    &event,
                )
                .encode_to_vec()
            })
            .collect();
        Ok((changes, position))
    }

    /// Sets each record's status and live size (see `Audience` in audience.proto).
    fn fill_state(&self, audiences: &mut [Audience]) -> Result<()> {
        if audiences.is_empty() {
            return Ok(());
        }
        let hub = &self.shared.engage_hub;
        self.with_run(time::now_ms(), |run| {
            for audience in audiences.iter_mut() {
                let computing = hub.is_computing(&audience.key);
                audience.status = if computing { Status::Computing } else { Status::Ready } as i32;
                audience.progress_percent = hub.progress(&audience.key);
                audience.size = realtime::emitted_size(run, audience)?;
            }
            Ok(())
        })
    }

    /// A saved audience's size over time, (time ms, size), oldest first: a point after each
    /// change the real-time worker wrote since the server started.
    pub fn audience_sizes(&self, key: &str) -> Result<Vec<(i64, u64)>> {
        self.saved_audience(key)?;
        Ok(self.shared.engage_hub.sizes(key.trim()))
    }

    /// Committed groups the real-time worker has not evaluated yet.
    pub fn engage_backlog(&self) -> u64 {
        self.shared
            .engage_hub
            .backlog
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Every saved definition, parsed: cached until one is created, changed or deleted.
    fn saved_definitions(&self) -> Result<std::sync::Arc<FxHashMap<String, Definition>>> {
        let hub = &self.shared.engage_hub;
        if let Some(saved) = hub.parsed.lock().clone() {
            return Ok(saved);
        }
        // A change committed while these are read must not leave them cached.
        let generation = hub.generation.load(std::sync::atomic::Ordering::Acquire);
        let saved = {
            let txn = self.shared.store.log.read()?;
            std::sync::Arc::new(parse_saved(saved_records(&self.shared.store.log_dbs, &txn.txn)?)?)
        };
        let mut cached = hub.parsed.lock();
        if hub.generation.load(std::sync::atomic::Ordering::Acquire) == generation {
            *cached = Some(std::sync::Arc::clone(&saved));
        }
        Ok(saved)
    }

    /// A saved record and its definition.
    fn saved_definition(&self, key: &str) -> Result<(Audience, Definition)> {
        let audience = self.saved_audience(key)?;
        let definition = parse_query(&audience.query, kind_of(audience.kind), expect_of(audience.r#type))?;
        Ok((audience, definition))
    }

    fn saved_audience(&self, key: &str) -> Result<Audience> {
        let key = key.trim();
        let txn = self.shared.store.log.read()?;
        let Some(bytes) = self.shared.store.log_dbs.audiences.get(&txn.txn, key)? else {
            return Err(not_found(key));
        };
        proto::decode_record(bytes, format_args!("audience {key:?}"))
    }

    /// Evaluates a definition at `at_ms`; formats at most `limit`
    /// members (all when None).
    fn evaluate(&self, definition: &Definition, at_ms: i64, limit: Option<usize>) -> Result<Found> {
        let limit = limit.unwrap_or(usize::MAX);
        self.with_run(at_ms, |run| {
            let graph = run.ev.graph;
            let user_id = |root: u32| graph.id_at(root).map(|id| id.to_string()).unwrap_or_default();
            let group_id = |group: &str| format!("group_id:{group}");
            // The count, and the first `limit` formatted (formatting a million ids costs).
            let found = |count: usize, members: &mut dyn Iterator<Item = Member>| Found {
                count: count as u64,
                members: members.take(limit).collect(),
            };
            Ok(match (&definition.body, definition.kind) {
                (Body::Audience(condition), Kind::Users) => {
                    let members = run.users(condition)?;
                    found(
                        members.len() as usize,
                        &mut members.iter().map(|root| member(user_id(root), None)),
                    )
                }
                (Body::Audience(condition), Kind::Accounts) => {
                    let members = run.accounts(condition)?;
                    found(members.len(), &mut members.iter().map(|g| member(group_id(g), None)))
                }
                (Body::ComputedTrait(scalar), Kind::Users) => {
                    let values = run.user_values(scalar)?;
                    found(
                        values.len(),
                        &mut values.iter().map(|(root, v)| member(user_id(*root), Some(v))),
                    )
                }
                (Body::ComputedTrait(scalar), Kind::Accounts) => {
                    let values = run.account_values(scalar)?;
                    found(
                        values.len(),
                        &mut values.iter().map(|(g, v)| member(group_id(g), Some(v))),
                    )
                }
            })
        })
    }

    /// Runs `work` over the current state at `at_ms`, with the saved definitions (cached).
    pub(crate) fn with_run<T>(&self, at_ms: i64, work: impl FnOnce(&Run<'_>) -> Result<T>) -> Result<T> {
        let saved = self.saved_definitions()?;
        crate::engage::with_run(&self.shared, &saved, at_ms, work)
    }
}

/// The profile (or account) a request names, with its id.
fn entity_for(run: &Run<'_>, kind: Kind, text: &str) -> Result<(String, Entity)> {
    let text = text.trim();
    match kind {
        Kind::Users => {
            let lookup = parse_lookup("identifier", text)?;
            let graph = run.ev.graph;
            let root = graph
                .root_for(&lookup)
                .ok_or_else(|| EngineError::NotFound(format!("no profile for {text}")))?;
            let id = graph.id_at(root).map(|id| id.to_string()).unwrap_or_default();
            Ok((id, run.user(root)))
        }
        Kind::Accounts => {
            let group = text.strip_prefix("group_id:").unwrap_or(text);
            let account = run
                .account(group)?
                .ok_or_else(|| EngineError::NotFound(format!("no group call for group_id:{group}")))?;
            Ok((format!("group_id:{group}"), account))
        }
    }
}

/// Membership (true, or missing) or the computed value, for one entity.
fn outcome(run: &Run<'_>, definition: &Definition, entity: &Entity) -> Result<Option<Value>> {
    Ok(match &definition.body {
        Body::Audience(condition) => run.ev.holds_for(condition, entity)?.then_some(Value::Bool(true)),
        Body::ComputedTrait(scalar) => run.ev.value_for(scalar, entity)?,
    })
}

fn json_bytes(value: Option<&Value>) -> Vec<u8> {
    value
        .map(|v| serde_json::to_vec(v).unwrap_or_default())
        .unwrap_or_default()
}

/// Whether an Engage identify or group call sets trait `key`.
fn sets_key(event: &proto::Event, key: &str) -> bool {
    crate::json::parse_object(&event.traits)
        .ok()
        .flatten()
        .is_some_and(|traits| traits.contains_key(key))
}

/// Whether an event is the real-time worker's group call writing an account's `key`.
fn is_account_change(event: &proto::Event, key: &str) -> bool {
    event.r#type == EventType::Group as i32
        && event.message_id.starts_with(realtime::ACCOUNT_CHANGE_PREFIX)
        && sets_key(event, key)
}

/// The name a change is reported under: "Trait Computed" for a computed trait, else the
/// track's name, or for an account's group call what its boolean says.
fn change_name<'e>(computed: bool, key: &str, event: &'e proto::Event) -> &'e str {
    if computed {
        "Trait Computed"
    } else if event.r#type == EventType::Group as i32 {
        let entered = crate::json::parse_object(&event.traits)
            .ok()
            .flatten()
            .is_some_and(|traits| traits.get(key) == Some(&Value::Bool(true)));
        if entered {
            "Audience Entered"
        } else {
            "Audience Exited"
        }
    } else {
        &event.event
    }
}

/// A change as `WatchMembership` and `ExplainMembership` report it, from an Engage event.
fn change_of(seq: u64, ms: i64, name: &str, key: &str, event: &proto::Event) -> MembershipChange {
    let (profile_id, identifier) = if event.r#type == EventType::Group as i32 {
        (String::new(), format!("group_id:{}", event.group_id))
    } else {
        // The message id is engage-<aud id>-<profile id>-<cause>-<what>.
        let profile_id = event.message_id.split('-').nth(2).unwrap_or_default().to_owned();
        let identifier = [("user_id", &event.user_id), ("anonymous_id", &event.anonymous_id)]
            .into_iter()
            .find(|(_, value)| !value.is_empty())
            .map(|(kind, value)| format!("{kind}:{value}"))
            .unwrap_or_default();
        (profile_id, identifier)
    };
    let value = crate::json::parse_object(&event.traits)
        .ok()
        .flatten()
        .and_then(|traits| traits.get(key).cloned());
    MembershipChange {
        event: name.to_owned(),
        key: key.to_owned(),
        profile_id,
        identifier,
        timestamp: Some(time::from_ms(ms)),
        message_id: event.message_id.clone(),
        value: if name == "Trait Computed" {
            json_bytes(value.as_ref())
        } else {
            Vec::new()
        },
        seq,
    }
}

fn not_found(key: &str) -> EngineError {
    EngineError::NotFound(format!("no audience or computed trait keyed {key:?}"))
}

fn at_ms(at: Option<&prost_types::Timestamp>) -> i64 {
    at.map_or_else(time::now_ms, time::to_ms)
}

/// Every saved definition record, by key.
pub(crate) fn saved_records(
    dbs: &crate::store::LogDatabases,
    txn: &heed::RoTxn<'_, heed::WithoutTls>,
) -> Result<Vec<Audience>> {
    let mut audiences = Vec::new();
    for entry in dbs.audiences.iter(txn)? {
        let (key, value) = entry?;
        audiences.push(proto::decode_record(value, format_args!("audience {key:?}"))?);
    }
    Ok(audiences)
}

/// The saved definitions, parsed (they were checked when saved).
pub(crate) fn parse_saved(audiences: Vec<Audience>) -> Result<FxHashMap<String, Definition>> {
    audiences
        .into_iter()
        .map(|audience| {
            let definition = query::parse(&audience.query, kind_of(audience.kind), expect_of(audience.r#type))
                .map_err(|err| {
                    EngineError::Storage(format!("saved definition {:?} no longer parses: {err}", audience.key))
                })?;
            Ok((audience.key, definition))
        })
        .collect()
}
