//! Profiles: the identity graph kept up to date by the writer, and profile lookups.
//!
//! The writer resolves each accepted event, in log order, after its group has committed and
//! before its ack is sent, so an acknowledged event is already part of its profile. The graph is
//! a deterministic function of the log in log order; at start-up it is rebuilt by replaying
//! the log (the log is the durable record of every identity decision).
//!
//! Traits are not stored per profile: a lookup folds the profile's identify events (latest
//! event timestamp wins, ties by messageId; `null` removes a trait).

use std::collections::HashMap;

use parking_lot::Mutex;
use prost::Message;
use serde_json::{Map, Value};

use crate::error::{EngineError, Result};
use crate::identifiers::{self, Identifier};
use crate::identity::graph::{
    EventIdentity, IdentityGraph, LinkStep, ProfileId, ProfileLookup, ProfileView, Refusal, MAX_IDENTIFIERS, MAX_MERGES,
};
use crate::identity::rules::IdentityRules;
use crate::ingest::Engine;
use crate::proto::{
    self, BatchGetProfilesRequest, BatchGetProfilesResponse, BatchProfileResult, Event, EventType, ExplainLinkRequest,
    ExplainLinkResponse, GetMergeHistoryRequest, GetMergeHistoryResponse, GetProfileRequest, GetProfileResponse,
    ProfileIdentifier, TraitSource,
};
use crate::store::Store;
use crate::time;

/// Most lookups in one `BatchGetProfiles` call.
pub const MAX_BATCH_LOOKUPS: usize = 1000;

/// The identifiers that can link an event to a user profile: all but the account id.
pub fn profile_identifiers(mut all: Vec<Identifier>) -> Vec<Identifier> {
    all.retain(|identifier| identifier.kind != "group_id");
    all
}

/// True for events that set profile traits (only identify does, as in Segment).
pub fn sets_traits(event: &Event) -> bool {
    event.r#type == EventType::Identify as i32 && !event.traits.is_empty()
}

/// The graph behind a lock: the writer updates it, lookups read it briefly.
pub struct Profiles {
    graph: Mutex<IdentityGraph>,
}

/// An accepted event as the graph needs it.
pub struct Resolvable<'a> {
    pub seq: u64,
    pub message_id: &'a str,
    pub timestamp_ms: i64,
    pub identifiers: &'a [Identifier],
    pub sets_traits: bool,
}

impl Profiles {
    /// Rebuilds the graph by replaying the log in order.
    pub fn rebuild(store: &Store, rules: IdentityRules) -> Result<Self> {
        let mut graph = IdentityGraph::new(rules);
        let txn = store.log.read()?;
        let mut replayed = 0u64;
        for entry in store.log_dbs.events.iter(&txn.txn)? {
            let (seq, value) = entry?;
            let event = decode_stored(seq, value)?;
            let identifiers = profile_identifiers(identifiers::of_event(&event));
            let timestamp_ms = event.timestamp.as_ref().map_or(0, time::to_ms);
            resolve_one(
                &mut graph,
                &Resolvable {
                    seq,
                    message_id: &event.message_id,
                    timestamp_ms,
                    identifiers: &identifiers,
                    sets_traits: sets_traits(&event),
                },
            );
            replayed += 1;
        }
        if replayed > 0 {
            log::info!(
                "identity graph rebuilt from {replayed} events: {} profiles",
                graph.profile_count()
            );
        }
        Ok(Self {
            graph: Mutex::new(graph),
        })
    }

    /// Resolves committed events, in log order.
    pub fn resolve<'a>(&self, events: impl IntoIterator<Item = Resolvable<'a>>) {
        let mut graph = self.graph.lock();
        for event in events {
            resolve_one(&mut graph, &event);
        }
    }

    fn view(&self, lookup: &ProfileLookup) -> Option<ProfileView> {
        self.graph.lock().view(lookup)
    }
}

fn resolve_one(graph: &mut IdentityGraph, event: &Resolvable<'_>) {
    graph.resolve(&EventIdentity {
        message_id: event.message_id,
        timestamp_ms: event.timestamp_ms,
        identifiers: event.identifiers,
        trait_event: event.sets_traits.then_some(event.seq),
    });
}

fn decode_stored(seq: u64, value: &[u8]) -> Result<Event> {
    Event::decode(value.get(4..).unwrap_or_default())
        .map_err(|e| EngineError::Storage(format!("event {seq} is corrupt: {e}")))
}

fn source_of(value: &[u8]) -> u32 {
    value
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

fn link_step(step: LinkStep) -> proto::LinkStep {
    use proto::link_step::Kind;
    let text = |identifier: &Identifier| format!("{}:{}", identifier.kind, identifier.value);
    match step {
        LinkStep::Joined {
            identifier,
            profile,
            message_id,
            timestamp_ms,
        } => proto::LinkStep {
            kind: Kind::Joined as i32,
            description: format!("{} joined {profile} with event {message_id}", text(&identifier)),
            identifier: text(&identifier),
            profile_id: profile.to_string(),
            message_id,
            timestamp: Some(time::from_ms(timestamp_ms)),
            ..Default::default()
        },
        LinkStep::Merged(merge) => proto::LinkStep {
            kind: Kind::Merged as i32,
            description: format!(
                "{} was merged into {} by event {}",
                merge.merged, merge.survivor, merge.message_id
            ),
            profile_id: merge.survivor.to_string(),
            other_profile_id: merge.merged.to_string(),
            message_id: merge.message_id,
            timestamp: Some(time::from_ms(merge.timestamp_ms)),
            ..Default::default()
        },
        LinkStep::Refused(record) => {
            let reason = refusal_text(&record.reason);
            proto::LinkStep {
                kind: Kind::Refused as i32,
                description: format!(
                    "event {} carried {} but it was not linked to {}: {reason}",
                    record.message_id,
                    text(&record.identifier),
                    record.resolved_to
                ),
                identifier: text(&record.identifier),
                profile_id: record.resolved_to.to_string(),
                message_id: record.message_id,
                timestamp: Some(time::from_ms(record.timestamp_ms)),
                reason,
                ..Default::default()
            }
        }
    }
}

fn refusal_text(reason: &Refusal) -> String {
    match reason {
        Refusal::Blocked => "the value is blocked".into(),
        Refusal::Limit { kind } => format!("the profile would have held more {kind} values than its limit"),
        Refusal::IdentifierCap => format!("the profile holds {MAX_IDENTIFIERS} identifiers (the cap)"),
        Refusal::MergeCap => format!("the profile was merged {MAX_MERGES} times (the cap)"),
    }
}

/// The winning value of one trait so far.
struct TraitWinner {
    value: Value,
    timestamp_ms: i64,
    message_id: String,
    source_id: u32,
}

impl Engine {
    /// `GetProfile` on encoded bytes.
    pub fn get_profile(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request = GetProfileRequest::decode(request)
            .map_err(|e| EngineError::InvalidRequest(format!("malformed GetProfileRequest: {e}")))?;
        let profile = self.profile_message(&request.identifier, &request.include, request.verbose)?;
        Ok(GetProfileResponse { profile: Some(profile) }.encode_to_vec())
    }

    /// `BatchGetProfiles` on encoded bytes: one result per lookup, errors per lookup.
    pub fn batch_get_profiles(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request = BatchGetProfilesRequest::decode(request)
            .map_err(|e| EngineError::InvalidRequest(format!("malformed BatchGetProfilesRequest: {e}")))?;
        if request.identifiers.len() > MAX_BATCH_LOOKUPS {
            return Err(EngineError::InvalidRequest(format!(
                "identifiers has {} lookups; the limit is {MAX_BATCH_LOOKUPS}",
                request.identifiers.len()
            )));
        }
        let mut results = Vec::with_capacity(request.identifiers.len());
        for identifier in request.identifiers {
            let (profile, error) = match self.profile_message(&identifier, &request.include, false) {
                Ok(profile) => (Some(profile), String::new()),
                Err(EngineError::NotFound(_)) => (None, String::new()),
                Err(EngineError::InvalidRequest(message)) => (None, message),
                Err(other) => return Err(other),
            };
            results.push(BatchProfileResult {
                identifier,
                profile,
                error,
            });
        }
        Ok(BatchGetProfilesResponse { results }.encode_to_vec())
    }

    /// `GetMergeHistory` on encoded bytes.
    pub fn get_merge_history(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request = GetMergeHistoryRequest::decode(request)
            .map_err(|e| EngineError::InvalidRequest(format!("malformed GetMergeHistoryRequest: {e}")))?;
        let view = self.find_profile(&request.identifier)?;
        let merges = view
            .merge_history
            .into_iter()
            .map(|merge| proto::Merge {
                survivor_id: merge.survivor.to_string(),
                merged_id: merge.merged.to_string(),
                message_id: merge.message_id,
                timestamp: Some(time::from_ms(merge.timestamp_ms)),
            })
            .collect();
        Ok(GetMergeHistoryResponse {
            profile_id: view.id.to_string(),
            merges,
        }
        .encode_to_vec())
    }

    /// `ExplainLink` on encoded bytes.
    pub fn explain_link(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request = ExplainLinkRequest::decode(request)
            .map_err(|e| EngineError::InvalidRequest(format!("malformed ExplainLinkRequest: {e}")))?;
        let parse = |field: &str, text: &str| {
            Identifier::parse(text.trim())
                .ok_or_else(|| EngineError::InvalidRequest(format!("{field} must be type:value, got {text:?}")))
        };
        let (a, b) = (parse("a", &request.a)?, parse("b", &request.b)?);
        let explanation = self.shared.profiles.graph.lock().explain(&a, &b).ok_or_else(|| {
            EngineError::NotFound(format!("no profile for {} or {}", request.a.trim(), request.b.trim()))
        })?;
        let steps = explanation.steps.into_iter().map(link_step).collect();
        Ok(ExplainLinkResponse {
            linked: explanation.linked,
            profile_a: explanation.profile_a.to_string(),
            profile_b: explanation.profile_b.to_string(),
            steps,
        }
        .encode_to_vec())
    }

    fn find_profile(&self, text: &str) -> Result<ProfileView> {
        let text = text.trim();
        let lookup = if text.starts_with("tp_") {
            let id = text
                .parse::<ProfileId>()
                .map_err(|()| EngineError::InvalidRequest(format!("{text:?} is not a profile id")))?;
            ProfileLookup::Id(id)
        } else {
            let identifier = Identifier::parse(text).ok_or_else(|| {
                EngineError::InvalidRequest(format!("identifier must be type:value or a profile id, got {text:?}"))
            })?;
            ProfileLookup::Identifier(identifier)
        };
        self.shared
            .profiles
            .view(&lookup)
            .ok_or_else(|| EngineError::NotFound(format!("no profile for {text}")))
    }

    fn profile_message(&self, text: &str, include: &[String], verbose: bool) -> Result<proto::Profile> {
        let view = self.find_profile(text)?;
        let winners = self.fold_traits(&view.trait_events)?;
        let wanted = |name: &str| include.is_empty() || include.iter().any(|w| w == name);
        let mut traits = Map::new();
        let mut trait_sources = Vec::new();
        let mut names: Vec<&String> = winners.keys().collect();
        names.sort();
        for name in names {
            let winner = &winners[name];
            if winner.value.is_null() || !wanted(name) {
                continue;
            }
            traits.insert(name.clone(), winner.value.clone());
            if verbose {
                trait_sources.push(TraitSource {
                    name: name.clone(),
                    value: serde_json::to_vec(&winner.value).unwrap_or_default(),
                    updated_at: Some(time::from_ms(winner.timestamp_ms)),
                    message_id: winner.message_id.clone(),
                    source_id: winner.source_id,
                });
            }
        }
        let identifiers = view
            .identifiers
            .into_iter()
            .map(|(identifier, first_seen_ms, first_message_id)| ProfileIdentifier {
                r#type: identifier.kind,
                value: identifier.value,
                first_seen: Some(time::from_ms(first_seen_ms)),
                first_message_id,
            })
            .collect();
        Ok(proto::Profile {
            id: view.id.to_string(),
            identifiers,
            traits: serde_json::to_vec(&traits).unwrap_or_default(),
            trait_sources,
            merges: view.merges,
        })
    }

    /// Latest timestamp wins per trait (ties: the larger messageId); nulls are kept as
    /// winners so that a later null removes an earlier value.
    fn fold_traits(&self, seqs: &[u64]) -> Result<HashMap<String, TraitWinner>> {
        let store = &self.shared.store;
        let txn = store.log.read()?;
        let mut winners: HashMap<String, TraitWinner> = HashMap::new();
        for &seq in seqs {
            let Some(stored) = store.log_dbs.events.get(&txn.txn, &seq)? else {
                continue;
            };
            let source_id = source_of(stored);
            let event = decode_stored(seq, stored)?;
            let Ok(Some(traits)) = crate::json::parse_object(&event.traits) else {
                continue;
            };
            let timestamp_ms = event.timestamp.as_ref().map_or(0, time::to_ms);
            for (name, value) in traits {
                let newer = winners.get(&name).is_none_or(|w| {
                    (timestamp_ms, event.message_id.as_str()) > (w.timestamp_ms, w.message_id.as_str())
                });
                if newer {
                    let winner = TraitWinner {
                        value,
                        timestamp_ms,
                        message_id: event.message_id.clone(),
                        source_id,
                    };
                    winners.insert(name, winner);
                }
            }
        }
        Ok(winners)
    }
}
