//! The admin's separations over gRPC bytes: RemoveIdentifier and SplitProfile make one,
//! ListSeparations lists them, WithdrawSeparation takes one back. Each change is stored with the
//! log before the graph applies it (so a restart rebuilds the same graph), re-resolves only the
//! clusters of the identifiers it names, and reports the profiles it changes; with `dry_run` the
//! same report comes from a preview of those clusters and nothing changes.
//!
//! Identity administration is one writer at a time (the profiles' `admin` lock, which a rules
//! update also holds), so a separation cannot fall between a rules update's replay and its swap.

use std::sync::Arc;

use prost::Message;

use super::{named_profile, parse_identifier, text};
use crate::error::{EngineError, Result};
use crate::identifiers::Identifier;
use crate::identity::graph::{IdentityGraph, ProfileId, ProfileLookup};
use crate::identity::separations::Separations;
use crate::ingest::Engine;
use crate::profile_reads::parse_lookup;
use crate::profiles::{separations_of, LogLoader, ProfileState};
use crate::proto::{
    self, IdentityAction, IdentityActions, IdentityChange, ListSeparationsRequest, ListSeparationsResponse,
    ProfileIdentifiers, RemoveIdentifierRequest, RemoveIdentifierResponse, Separation, SplitProfileRequest,
    SplitProfileResponse, WithdrawSeparationRequest, WithdrawSeparationResponse,
};
use crate::time;

/// A separation made or withdrawn: what is stored and in force afterwards, and whom it names.
struct Decision {
    actions: Vec<IdentityAction>,
    separations: Separations,
    around: Vec<Identifier>,
}

impl Decision {
    /// The stored separations and one more.
    fn adding(state: &ProfileState, action: IdentityAction) -> Self {
        let around = parties(&action)
            .map(|(a, b)| std::iter::once(a).chain(b).collect())
            .unwrap_or_default();
        let mut actions = state.actions.clone();
        actions.push(action);
        Self {
            separations: separations_of(&actions),
            actions,
            around,
        }
    }
}

/// A decision carried out (or previewed): the graph to read the outcome from and what changed.
struct Reresolved {
    /// The preview of a dry run (the live graph otherwise).
    preview: Option<IdentityGraph>,
    change: IdentityChange,
}

impl Reresolved {
    fn graph<'a>(&'a mut self, state: &'a mut ProfileState) -> &'a mut IdentityGraph {
        self.preview.as_mut().unwrap_or(&mut state.graph)
    }
}

/// The stored action's (a, b), parsed (`b` is `None` for a removal); `None` when `a` does not
/// parse.
fn parties(action: &IdentityAction) -> Option<(Identifier, Option<Identifier>)> {
    Some((Identifier::parse(&action.a)?, Identifier::parse(&action.b)))
}

/// True when the action is the separation of `a` and `b` (in either order), or the removal of
/// `a` when `b` is `None`.
fn is_separation_of(action: &IdentityAction, a: &Identifier, b: Option<&Identifier>) -> bool {
    match (parties(action), b) {
        (Some((x, None)), None) => x == *a,
        (Some((x, Some(y))), Some(b)) => (x == *a && y == *b) || (x == *b && y == *a),
        _ => false,
    }
}

/// The profiles holding any of `members`, each with its identifiers in link order.
fn profiles_holding(graph: &mut IdentityGraph, members: &[Identifier]) -> Vec<(ProfileId, Vec<Identifier>)> {
    let mut out: Vec<(ProfileId, Vec<Identifier>)> = Vec::new();
    for member in members {
        let Some(id) = graph.profile_of(member) else {
            continue;
        };
        if out.iter().any(|(known, _)| *known == id) {
            continue;
        }
        if let Some(view) = graph.view(&ProfileLookup::Id(id)) {
            out.push((
                id,
                view.identifiers
                    .into_iter()
                    .map(|(identifier, ..)| identifier)
                    .collect(),
            ));
        }
    }
    out
}

/// The profiles of `before` that are not in `after` (same id and identifiers) and those of
/// `after` that are not in `before`, each list ordered by identifiers.
fn change_between(before: &[(ProfileId, Vec<Identifier>)], after: &[(ProfileId, Vec<Identifier>)]) -> IdentityChange {
    type Key = (Vec<Identifier>, ProfileId);
    let key = |(id, identifiers): &(ProfileId, Vec<Identifier>)| -> Key {
        let mut identifiers = identifiers.clone();
        identifiers.sort();
        (identifiers, *id)
    };
    let (old, new): (Vec<Key>, Vec<Key>) = (before.iter().map(key).collect(), after.iter().map(key).collect());
    let only = |side: &[(ProfileId, Vec<Identifier>)], keys: &[Key], other: &[Key]| -> Vec<ProfileIdentifiers> {
        let mut kept: Vec<(&Key, ProfileIdentifiers)> = side
            .iter()
            .zip(keys)
            .filter(|(_, key)| !other.contains(key))
            .map(|((id, identifiers), key)| {
                let profile = ProfileIdentifiers {
                    profile_id: id.to_string(),
                    identifiers: identifiers.iter().map(text).collect(),
                };
                (key, profile)
            })
            .collect();
        kept.sort_by(|x, y| x.0.cmp(y.0));
        kept.into_iter().map(|(_, profile)| profile).collect()
    };
    IdentityChange {
        before: only(before, &old, &new),
        after: only(after, &new, &old),
    }
}

fn name(id: Option<ProfileId>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

impl Engine {
    /// Carries out a decision (stored first) or, on a dry run, previews it; either way reports
    /// the profiles it changes. The caller holds the admin lock and `state`.
    fn reresolve(&self, state: &mut ProfileState, decision: Decision, dry_run: bool) -> Result<Reresolved> {
        let store = &self.shared.store;
        let custom = Arc::clone(&state.custom);
        let mut loader = LogLoader { store, custom: &custom };
        let around: Vec<&Identifier> = decision.around.iter().collect();
        let members = state.graph.cluster_members(&around);
        let before = profiles_holding(&mut state.graph, &members);
        let mut outcome = Reresolved {
            preview: None,
            change: IdentityChange::default(),
        };
        if dry_run {
            outcome.preview = Some(
                state
                    .graph
                    .preview_separations(decision.separations, &around, &mut loader),
            );
        } else {
            let encoded = IdentityActions {
                actions: decision.actions.clone(),
            }
            .encode_to_vec();
            self.write_log(|txn| Ok(store.log_dbs.identity.put(txn, "actions", &encoded)?))?;
            state.actions = decision.actions;
            state.graph.reseparate(decision.separations, &around, &mut loader);
            // Profiles split or joined: real-time audiences reconcile with them.
            self.shared
                .engage_hub
                .send(crate::engage::realtime::Message::ReconcileAll);
        }
        let after = profiles_holding(outcome.graph(state), &members);
        outcome.change = change_between(&before, &after);
        Ok(outcome)
    }

    /// `AdminService.RemoveIdentifier` on encoded bytes.
    pub fn remove_identifier(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: RemoveIdentifierRequest = proto::decode_request(request)?;
        let identifier = parse_identifier("identifier", &request.identifier)?;
        let lookup = parse_lookup("profile", &request.profile)?;
        let _one_at_a_time = self.shared.profiles.admin.lock();
        let mut state = self.shared.profiles.lock();
        let view = named_profile(&mut state, &lookup, &request.profile)?;
        if !view.identifiers.iter().any(|(known, ..)| *known == identifier) {
            return Err(EngineError::InvalidRequest(format!(
                "identifier {} is not in profile {}",
                text(&identifier),
                view.id
            )));
        }
        if view.identifiers.len() == 1 {
            return Err(EngineError::InvalidRequest(format!(
                "identifier {} is the only identifier of profile {}: there is nothing to remove it from",
                text(&identifier),
                view.id
            )));
        }
        let action = IdentityAction {
            a: text(&identifier),
            b: String::new(),
            at: Some(time::from_ms(time::now_ms())),
        };
        let decision = Decision::adding(&state, action);
        let mut outcome = self.reresolve(&mut state, decision, request.dry_run)?;
        let graph = outcome.graph(&mut state);
        let removed = graph.profile_of(&identifier);
        let rest = view
            .identifiers
            .iter()
            .filter(|(known, ..)| *known != identifier)
            .find_map(|(known, ..)| graph.profile_of(known));
        if !request.dry_run {
            log::info!("identity: removed {} from {}", text(&identifier), view.id);
        }
        Ok(RemoveIdentifierResponse {
            profile_id: name(rest),
            removed_profile_id: name(removed),
            applied: !request.dry_run,
            change: Some(outcome.change),
        }
        .encode_to_vec())
    }

    /// `AdminService.SplitProfile` on encoded bytes.
    pub fn split_profile(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: SplitProfileRequest = proto::decode_request(request)?;
        let a = parse_identifier("a", &request.a)?;
        let b = parse_identifier("b", &request.b)?;
        if a == b {
            return Err(EngineError::InvalidRequest(
                "a and b must be two different identifiers".into(),
            ));
        }
        let lookup = parse_lookup("profile", &request.profile)?;
        let _one_at_a_time = self.shared.profiles.admin.lock();
        let mut state = self.shared.profiles.lock();
        let view = named_profile(&mut state, &lookup, &request.profile)?;
        for (field, identifier) in [("a", &a), ("b", &b)] {
            if !view.identifiers.iter().any(|(known, ..)| known == identifier) {
                return Err(EngineError::InvalidRequest(format!(
                    "{field}: {} is not in profile {}",
                    text(identifier),
                    view.id
                )));
            }
        }
        let action = IdentityAction {
            a: text(&a),
            b: text(&b),
            at: Some(time::from_ms(time::now_ms())),
        };
        let decision = Decision::adding(&state, action);
        let mut outcome = self.reresolve(&mut state, decision, request.dry_run)?;
        let graph = outcome.graph(&mut state);
        let (profile_a, profile_b) = (name(graph.profile_of(&a)), name(graph.profile_of(&b)));
        if !request.dry_run {
            log::info!("identity: split {} from {} in {}", text(&a), text(&b), view.id);
        }
        Ok(SplitProfileResponse {
            profile_a,
            profile_b,
            applied: !request.dry_run,
            change: Some(outcome.change),
        }
        .encode_to_vec())
    }

    /// `AdminService.ListSeparations` on encoded bytes: each separation once (a repeated one
    /// with the time it was first made), oldest first, with the profiles it keeps apart now.
    pub fn list_separations(&self, request: &[u8]) -> Result<Vec<u8>> {
        proto::decode_request::<ListSeparationsRequest>(request)?;
        let mut state = self.shared.profiles.lock();
        let mut listed: Vec<(Identifier, Option<Identifier>, IdentityAction)> = Vec::new();
        for action in &state.actions {
            let Some((a, b)) = parties(action) else {
                continue;
            };
            if !listed
                .iter()
                .any(|(_, _, known)| is_separation_of(known, &a, b.as_ref()))
            {
                listed.push((a, b, action.clone()));
            }
        }
        let separations = listed
            .into_iter()
            .map(|(a, b, action)| Separation {
                profile_a: name(state.graph.profile_of(&a)),
                profile_b: name(b.as_ref().and_then(|b| state.graph.profile_of(b))),
                a: text(&a),
                b: b.as_ref().map(text).unwrap_or_default(),
                at: action.at,
            })
            .collect();
        Ok(ListSeparationsResponse { separations }.encode_to_vec())
    }

    /// `AdminService.WithdrawSeparation` on encoded bytes.
    pub fn withdraw_separation(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: WithdrawSeparationRequest = proto::decode_request(request)?;
        let a = parse_identifier("a", &request.a)?;
        let b = match request.b.trim() {
            "" => None,
            b => Some(parse_identifier("b", b)?),
        };
        let _one_at_a_time = self.shared.profiles.admin.lock();
        let mut state = self.shared.profiles.lock();
        let (withdrawn, kept): (Vec<IdentityAction>, Vec<IdentityAction>) = state
            .actions
            .iter()
            .cloned()
            .partition(|action| is_separation_of(action, &a, b.as_ref()));
        if withdrawn.is_empty() {
            return Err(EngineError::NotFound(match &b {
                Some(b) => format!("no separation of {} and {}", text(&a), text(b)),
                None => format!("no removal of {}", text(&a)),
            }));
        }
        let decision = Decision {
            separations: separations_of(&kept),
            actions: kept,
            around: std::iter::once(a.clone()).chain(b.clone()).collect(),
        };
        let outcome = self.reresolve(&mut state, decision, request.dry_run)?;
        if !request.dry_run {
            let apart = b.as_ref().map(|b| format!(" and {}", text(b))).unwrap_or_default();
            log::info!("identity: withdrew the separation of {}{apart}", text(&a));
        }
        Ok(WithdrawSeparationResponse {
            applied: !request.dry_run,
            change: Some(outcome.change),
        }
        .encode_to_vec())
    }
}
