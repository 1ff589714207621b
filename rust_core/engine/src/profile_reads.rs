//! Profile lookups: GetProfile, BatchGetProfiles, GetMergeHistory, ExplainLink,
//! ListIdentifiers and ListLinks. The graph lock is held only to copy what a lookup needs;
//! traits are folded afterwards from the log's memory-mapped pages.

use std::collections::HashMap;
use std::rc::Rc;

use prost::Message;
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use crate::error::{EngineError, Result};
use crate::identifiers::Identifier;
use crate::identity::graph::{LinkStep, ProfileId, ProfileLookup, ProfileView, Refusal, MAX_IDENTIFIERS, MAX_MERGES};
use crate::identity::order::OrderKey;
use crate::ingest::Engine;
use crate::profiles::decode_stored;
use crate::proto::{
    self, BatchGetProfilesRequest, BatchGetProfilesResponse, BatchProfileResult, ExplainLinkRequest,
    ExplainLinkResponse, GetMergeHistoryRequest, GetMergeHistoryResponse, GetProfileRequest, GetProfileResponse,
    ListIdentifiersRequest, ListIdentifiersResponse, ListLinksRequest, ListLinksResponse, ProfileIdentifier,
    TraitSource,
};
use crate::time;

/// Most lookups in one `BatchGetProfiles` call.
pub const MAX_BATCH_LOOKUPS: usize = 1000;
/// Segment's cap of traits per profile; the earliest set are kept.
pub const MAX_TRAITS: usize = 6_000;

/// The source id a stored event record starts with.
pub(crate) fn source_of(value: &[u8]) -> u32 {
    value
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

/// (message id, timestamp ms, source id) of events, by log seq.
type Sightings = FxHashMap<u64, (String, i64, u32)>;

fn link_step(step: LinkStep, sightings: &Sightings) -> proto::LinkStep {
    use proto::link_step::Kind;
    let text = |identifier: &Identifier| format!("{}:{}", identifier.kind, identifier.value);
    match step {
        LinkStep::Joined {
            identifier,
            profile,
            first_seq,
        } => {
            let (message_id, timestamp_ms, _) = sightings.get(&first_seq).cloned().unwrap_or_default();
            proto::LinkStep {
                kind: Kind::Joined as i32,
                description: format!("{} joined {profile} with event {message_id}", text(&identifier)),
                identifier: text(&identifier),
                profile_id: profile.to_string(),
                message_id,
                timestamp: Some(time::from_ms(timestamp_ms)),
                ..Default::default()
            }
        }
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

pub(crate) fn refusal_text(reason: &Refusal) -> String {
    match reason {
        Refusal::Blocked => "the value is blocked".into(),
        Refusal::Limit { kind } => format!("the profile would have held more {kind} values than its limit"),
        Refusal::IdentifierCap => format!("the profile holds {MAX_IDENTIFIERS} identifiers (the cap)"),
        Refusal::MergeCap => format!("the profile was merged {MAX_MERGES} times (the cap)"),
        Refusal::Separated => "an admin keeps these identifiers apart (SplitProfile or RemoveIdentifier)".into(),
    }
}

/// The winning value of one trait so far.
/// One trait of a profile and the event that last set it.
pub struct Trait {
    pub name: String,
    pub value: Value,
    pub timestamp_ms: i64,
    pub message_id: String,
    pub source_id: u32,
}

pub(crate) struct TraitWinner {
    pub(crate) value: Value,
    timestamp_ms: i64,
    message_id: String,
    source_id: u32,
    /// When the trait was first set (decides which traits the cap keeps); shared by the traits
    /// of one event.
    first_set: Rc<OrderKey>,
}

impl Engine {
    /// `GetProfile` on encoded bytes.
    pub fn get_profile(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: GetProfileRequest = proto::decode_request(request)?;
        let profile = self.profile_message(&request.identifier, &request.include, request.verbose)?;
        Ok(GetProfileResponse { profile: Some(profile) }.encode_to_vec())
    }

    /// `BatchGetProfiles` on encoded bytes: one result per lookup, errors per lookup.
    pub fn batch_get_profiles(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: BatchGetProfilesRequest = proto::decode_request(request)?;
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
        let request: GetMergeHistoryRequest = proto::decode_request(request)?;
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
        let request: ExplainLinkRequest = proto::decode_request(request)?;
        let parse = |field: &str, text: &str| {
            Identifier::parse(text.trim())
                .ok_or_else(|| EngineError::InvalidRequest(format!("{field} must be type:value, got {text:?}")))
        };
        let (a, b) = (parse("a", &request.a)?, parse("b", &request.b)?);
        let explanation = self.shared.profiles.lock().graph.explain(&a, &b).ok_or_else(|| {
            EngineError::NotFound(format!("no profile for {} or {}", request.a.trim(), request.b.trim()))
        })?;
        let joins = explanation.steps.iter().filter_map(|step| match step {
            LinkStep::Joined { first_seq, .. } => Some(*first_seq),
            _ => None,
        });
        let sightings = self.sightings(joins)?;
        let steps = explanation
            .steps
            .into_iter()
            .map(|step| link_step(step, &sightings))
            .collect();
        Ok(ExplainLinkResponse {
            linked: explanation.linked,
            profile_a: explanation.profile_a.to_string(),
            profile_b: explanation.profile_b.to_string(),
            steps,
        }
        .encode_to_vec())
    }

    /// (message id, timestamp) of the events at `seqs`, read from the log: the graph keeps only
    /// the seq of the event that first linked each identifier.
    fn sightings(&self, seqs: impl IntoIterator<Item = u64>) -> Result<Sightings> {
        let store = &self.shared.store;
        let txn = store.log.read()?;
        let mut out = Sightings::default();
        for seq in seqs {
            if out.contains_key(&seq) {
                continue;
            }
            if let Some(value) = store.log_dbs.events.get(&txn.txn, &seq)? {
                let event = decode_stored(seq, value)?;
                let timestamp_ms = event.timestamp.as_ref().map_or(0, time::to_ms);
                out.insert(seq, (event.message_id, timestamp_ms, source_of(value)));
            }
        }
        Ok(out)
    }

    pub(crate) fn profile_identifiers(&self, identifiers: Vec<(Identifier, u64)>) -> Result<Vec<ProfileIdentifier>> {
        let sightings = self.sightings(identifiers.iter().map(|(_, seq)| *seq))?;
        Ok(identifiers
            .into_iter()
            .map(|(identifier, first_seq)| {
                let (first_message_id, first_seen_ms, first_source_id) =
                    sightings.get(&first_seq).cloned().unwrap_or_default();
                ProfileIdentifier {
                    r#type: identifier.kind,
                    value: identifier.value,
                    first_seen: Some(time::from_ms(first_seen_ms)),
                    first_message_id,
                    first_source_id,
                }
            })
            .collect())
    }

    /// A profile's traits in name order, each with the event that last set it: what `GetProfile`
    /// folds, without the identifiers (each costs a read of the event that first carried it).
    /// The Profile API's `/traits`.
    pub fn profile_traits(&self, text: &str) -> Result<Vec<Trait>> {
        let view = self.find_profile(text)?;
        let (winners, _) = self.fold_traits(&view.trait_events)?;
        let mut traits: Vec<Trait> = winners
            .into_iter()
            .map(|(name, winner)| Trait {
                name,
                value: winner.value,
                timestamp_ms: winner.timestamp_ms,
                message_id: winner.message_id,
                source_id: winner.source_id,
            })
            .collect();
        traits.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(traits)
    }

    pub(crate) fn find_profile(&self, text: &str) -> Result<ProfileView> {
        let lookup = parse_lookup("identifier", text)?;
        let view = self.shared.profiles.lock().graph.view(&lookup);
        view.ok_or_else(|| EngineError::NotFound(format!("no profile for {}", text.trim())))
    }

    fn profile_message(&self, text: &str, include: &[String], verbose: bool) -> Result<proto::Profile> {
        let view = self.find_profile(text)?;
        let (winners, traits_dropped) = self.fold_traits(&view.trait_events)?;
        let wanted = |name: &str| include.is_empty() || include.iter().any(|w| w == name);
        let mut traits = Map::new();
        let mut trait_sources = Vec::new();
        let mut names: Vec<&String> = winners.keys().collect();
        names.sort();
        for name in names {
            let winner = &winners[name];
            if !wanted(name) {
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
        let identifiers = self.profile_identifiers(view.identifiers)?;
        Ok(proto::Profile {
            id: view.id.to_string(),
            identifiers,
            traits: serde_json::to_vec(&traits).unwrap_or_default(),
            trait_sources,
            merges: view.merges,
            traits_dropped,
            // Explained by the server (Python holds the models).
            predictions: Vec::new(),
        })
    }

    /// Latest timestamp wins per trait (ties: the larger messageId); nulls are kept as
    /// winners so that a later null removes an earlier value. Beyond `MAX_TRAITS` live traits
    /// the earliest set are kept; returns how many were dropped.
    fn fold_traits(&self, seqs: &[u64]) -> Result<(HashMap<String, TraitWinner>, u32)> {
        let store = &self.shared.store;
        fold_traits_in(store, &store.log.read()?, seqs)
    }

    /// `ListIdentifiers` on encoded bytes.
    pub fn list_identifiers(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: ListIdentifiersRequest = proto::decode_request(request)?;
        let view = self.find_profile(&request.identifier)?;
        Ok(ListIdentifiersResponse {
            profile_id: view.id.to_string(),
            identifiers: self.profile_identifiers(view.identifiers)?,
        }
        .encode_to_vec())
    }

    /// `ListLinks` on encoded bytes: a user profile's accounts, or an account's users.
    pub fn list_links(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: ListLinksRequest = proto::decode_request(request)?;
        let text = request.identifier.trim();
        if let Some(group) = text.strip_prefix("group_id:") {
            return self.account_users(group.trim());
        }
        let view = self.find_profile(text)?;
        let mut accounts: Vec<(String, u64, OrderKey)> = Vec::new();
        {
            let state = self.shared.profiles.lock();
            for (identifier, ..) in &view.identifiers {
                for (group, first) in state.links.accounts.get(&identifier.hash128()).into_iter().flatten() {
                    match accounts.iter_mut().find(|(known, ..)| known == group) {
                        Some((_, seq, key)) if *key > first.key => (*seq, *key) = (first.seq, first.key.clone()),
                        Some(_) => {}
                        None => accounts.push((group.clone(), first.seq, first.key.clone())),
                    }
                }
            }
        }
        accounts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::with_capacity(accounts.len());
        for (group_id, _, first) in accounts {
            let calls = self
                .shared
                .profiles
                .lock()
                .links
                .calls
                .get(&group_id)
                .cloned()
                .unwrap_or_default();
            let (traits, _) = self.fold_traits(&calls)?;
            let traits: Map<String, Value> = traits.into_iter().map(|(name, w)| (name, w.value)).collect();
            out.push(proto::AccountLink {
                group_id,
                traits: serde_json::to_vec(&traits).unwrap_or_default(),
                first_linked: Some(time::from_ms(first.timestamp_ms)),
                first_message_id: first.message_id,
            });
        }
        Ok(ListLinksResponse {
            profile_id: view.id.to_string(),
            accounts: out,
            users: Vec::new(),
        }
        .encode_to_vec())
    }

    /// An account's traits from its group calls (latest timestamp wins); NotFound when no group
    /// call named it.
    pub fn account_traits(&self, group: &str) -> Result<Map<String, Value>> {
        let calls = self.shared.profiles.lock().links.calls.get(group).cloned();
        let calls = calls.ok_or_else(|| EngineError::NotFound(format!("no group call for group_id:{group}")))?;
        let (traits, _) = self.fold_traits(&calls)?;
        Ok(traits.into_iter().map(|(name, w)| (name, w.value)).collect())
    }

    fn account_users(&self, group: &str) -> Result<Vec<u8>> {
        let mut state = self.shared.profiles.lock();
        let Some(users) = state.links.users.get(group).cloned() else {
            return Err(EngineError::NotFound(format!("no group call for group_id:{group}")));
        };
        let mut by_profile: Vec<(ProfileId, OrderKey)> = Vec::new();
        for (identifier, first) in users {
            let Some(profile) = state.graph.profile_of(&identifier) else {
                continue;
            };
            match by_profile.iter_mut().find(|(known, _)| *known == profile) {
                Some((_, key)) if *key > first.key => *key = first.key,
                Some(_) => {}
                None => by_profile.push((profile, first.key)),
            }
        }
        drop(state);
        by_profile.sort_by(|a, b| a.1.cmp(&b.1));
        let users = by_profile
            .into_iter()
            .map(|(profile, first)| proto::UserLink {
                profile_id: profile.to_string(),
                first_linked: Some(time::from_ms(first.timestamp_ms)),
                first_message_id: first.message_id,
            })
            .collect();
        Ok(ListLinksResponse {
            profile_id: String::new(),
            accounts: Vec::new(),
            users,
        }
        .encode_to_vec())
    }
}

/// See `Engine::fold_traits`; under the caller's read transaction.
pub(crate) fn fold_traits_in(
    store: &crate::store::Store,
    txn: &crate::store::ReadTxn<'_>,
    seqs: &[u64],
) -> Result<(HashMap<String, TraitWinner>, u32)> {
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
        let key = Rc::new(OrderKey::new(timestamp_ms, &event.message_id));
        for (name, value) in traits {
            match winners.get_mut(&name) {
                Some(winner) => {
                    if winner.first_set > key {
                        winner.first_set = Rc::clone(&key);
                    }
                    if (timestamp_ms, event.message_id.as_str()) > (winner.timestamp_ms, winner.message_id.as_str()) {
                        winner.value = value;
                        winner.timestamp_ms = timestamp_ms;
                        winner.message_id.clone_from(&event.message_id);
                        winner.source_id = source_id;
                    }
                }
                None => {
                    let winner = TraitWinner {
                        value,
                        timestamp_ms,
                        message_id: event.message_id.clone(),
                        source_id,
                        first_set: Rc::clone(&key),
                    };
                    winners.insert(name, winner);
                }
            }
        }
    }
    winners.retain(|_, winner| !winner.value.is_null());
    let mut dropped = 0;
    if winners.len() > MAX_TRAITS {
        let mut order: Vec<(Rc<OrderKey>, String)> = winners
            .iter()
            .map(|(name, winner)| (Rc::clone(&winner.first_set), name.clone()))
            .collect();
        order.sort_unstable();
        for (_, name) in order.drain(MAX_TRAITS..) {
            winners.remove(&name);
            dropped += 1;
        }
    }
    Ok((winners, dropped))
}

/// A profile named by "type:value" or by its id "tp_...".
pub(crate) fn parse_lookup(field: &str, text: &str) -> Result<ProfileLookup> {
    let text = text.trim();
    if text.starts_with("tp_") {
        let id = text
            .parse::<ProfileId>()
            .map_err(|()| EngineError::InvalidRequest(format!("{field}: {text:?} is not a profile id")))?;
        return Ok(ProfileLookup::Id(id));
    }
    Identifier::parse(text)
        .map(ProfileLookup::Identifier)
        .ok_or_else(|| EngineError::InvalidRequest(format!("{field} must be type:value or a profile id, got {text:?}")))
}
