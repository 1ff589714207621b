//! Identity administration over gRPC bytes: GetIdentityRules and UpdateIdentityRules (with a dry
//! run) here, the separations (RemoveIdentifier, SplitProfile, ListSeparations,
//! WithdrawSeparation) in `separations`. Every decision is written to the log environment before
//! it is applied, so a restart rebuilds the same graph.

mod separations;

use prost::Message;
use rustc_hash::FxHashMap;

use crate::error::{EngineError, Result};
use crate::identifiers::Identifier;
use crate::identity::graph::{IdentityGraph, ProfileId, ProfileLookup, ProfileView};
use crate::ingest::Engine;
use crate::profiles::{compile_rules, custom_identifiers, replay_log, ProfileState, Profiles, Replayed};
use crate::proto::identity_rules_progress::Phase;
use crate::proto::{
    self, rule_change, GetIdentityRulesProgressRequest, GetIdentityRulesRequest, RuleChange,
    UpdateIdentityRulesRequest, UpdateIdentityRulesResponse,
};

/// Examples of each kind a rules report carries.
const EXAMPLES: usize = 10;

fn text(identifier: &Identifier) -> String {
    format!("{}:{}", identifier.kind, identifier.value)
}

fn parse_identifier(field: &str, value: &str) -> Result<Identifier> {
    Identifier::parse(value.trim())
        .ok_or_else(|| EngineError::InvalidRequest(format!("{field} must be type:value, got {value:?}")))
}

/// The profile an admin request names, or NOT_FOUND.
fn named_profile(state: &mut ProfileState, lookup: &ProfileLookup, text: &str) -> Result<ProfileView> {
    state
        .graph
        .view(lookup)
        .ok_or_else(|| EngineError::NotFound(format!("no profile for {}", text.trim())))
}

impl Engine {
    /// `AdminService.GetIdentityRules` on encoded bytes.
    pub fn get_identity_rules(&self, request: &[u8]) -> Result<Vec<u8>> {
        proto::decode_request::<GetIdentityRulesRequest>(request)?;
        Ok(self.shared.profiles.lock().rules.encode_to_vec())
    }

    /// `AdminService.GetIdentityRulesProgress` on encoded bytes.
    pub fn get_identity_rules_progress(&self, request: &[u8]) -> Result<Vec<u8>> {
        proto::decode_request::<GetIdentityRulesProgressRequest>(request)?;
        Ok(self.shared.profiles.progress.report().encode_to_vec())
    }

    /// `AdminService.UpdateIdentityRules` on encoded bytes. The new graph is built from the log
    /// without holding the graph lock; only the catch-up, the comparison and the swap hold it.
    pub fn update_identity_rules(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: UpdateIdentityRulesRequest = proto::decode_request(request)?;
        let rules = request.rules.unwrap_or_default();
        let compiled = compile_rules(&rules)?;
        let custom = std::sync::Arc::new(custom_identifiers(&rules));
        let store = &self.shared.store;
        let _one_at_a_time = self.shared.profiles.admin.lock();
        let separations = self.shared.profiles.lock().graph.separations().clone();
        let progress = &self.shared.profiles.progress;
        let _running = progress.run();
        let Replayed {
            graph,
            links,
            engage,
            through,
        } = replay_log(store, compiled, &custom, separations, progress)?;
        progress.enter(Phase::Comparing);
        let mut state = self.shared.profiles.lock();
        let mut candidate = ProfileState {
            graph,
            resolved_through: through,
            links,
            engage,
            rules: rules.clone(),
            actions: state.actions.clone(),
            custom,
            deletions: state.deletions,
        };
        Profiles::catch_up(&mut candidate, store)?;
        let compared = std::time::Instant::now();
        let mut response = compare(&mut state.graph, &mut candidate.graph);
        log::info!("identity: graphs compared in {:.2} s", compared.elapsed().as_secs_f64());
        response.applied = !request.dry_run;
        if request.dry_run {
            response.rules = Some(state.rules.clone());
        } else {
            let encoded = rules.encode_to_vec();
            self.write_log(|txn| Ok(store.log_dbs.identity.put(txn, "rules", &encoded)?))?;
            self.shared.profiles.replace(&mut state, candidate);
            self.shared
                .engage_hub
                .send(crate::engage::realtime::Message::ReconcileAll);
            response.rules = Some(rules);
            log::info!(
                "identity: rules updated ({} merges, {} splits)",
                response.merges,
                response.splits
            );
        }
        Ok(response.encode_to_vec())
    }
}

/// How the profiles of `after` differ from those of `before`, identifier by identifier: a profile
/// of `after` holding identifiers of several profiles of `before` is a merge, a profile of
/// `before` whose identifiers went to several of `after` a split. Walks node numbers (one lookup
/// in `before` per identifier of `after`), not maps of every identifier.
fn compare(before: &mut IdentityGraph, after: &mut IdentityGraph) -> UpdateIdentityRulesResponse {
    let old_roots = before.profile_roots();
    let new_roots = after.profile_roots();
    // (profile root on the other side, profile root in this graph) for every identifier linked
    // in both graphs.
    let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(new_roots.len());
    for (node, new_root) in new_roots.iter().enumerate() {
        let Some(new_root) = *new_root else { continue };
        let Some(old_root) = before
            .node_like(after, node as u32)
            .and_then(|old| old_roots[old as usize])
        else {
            continue;
        };
        pairs.push((old_root, new_root));
    }
    let linked_before = old_roots.iter().flatten().count() as u64;
    let unlinked = linked_before - pairs.len() as u64;
    // Profiles of one side that take identifiers from more than one profile of the other.
    let spread = |pairs: &mut Vec<(u32, u32)>| -> FxHashMap<u32, Vec<u32>> {
        pairs.sort_unstable();
        pairs.dedup();
        let mut many: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        for window in pairs.windows(2) {
            if window[0].0 == window[1].0 {
                let others = many.entry(window[0].0).or_insert_with(|| vec![window[0].1]);
                others.push(window[1].1);
            }
        }
        many
    };
    let split_roots = spread(&mut pairs);
    let mut flipped: Vec<(u32, u32)> = pairs.iter().map(|&(old, new)| (new, old)).collect();
    let merged_roots = spread(&mut flipped);
    let ids = |graph: &IdentityGraph, roots: &[u32]| -> Vec<ProfileId> {
        let mut ids: Vec<ProfileId> = roots.iter().map(|&root| graph.profile_at(root)).collect();
        ids.sort();
        ids
    };
    let mut merged: Vec<(ProfileId, Vec<ProfileId>)> = merged_roots
        .iter()
        .map(|(&new, olds)| (after.profile_at(new), ids(before, olds)))
        .collect();
    let mut split: Vec<(ProfileId, Vec<ProfileId>)> = split_roots
        .iter()
        .map(|(&old, news)| (before.profile_at(old), ids(after, news)))
        .collect();
    merged.sort();
    split.sort();
    let mut examples = Vec::new();
    let sample = |graph: &mut IdentityGraph, id: ProfileId| -> Vec<String> {
        graph
            .view(&ProfileLookup::Id(id))
            .map(|view| view.identifiers.iter().take(5).map(|(i, ..)| text(i)).collect())
            .unwrap_or_default()
    };
    let names = |ids: &[ProfileId]| ids.iter().map(ProfileId::to_string).collect::<Vec<_>>();
    for (now, was) in merged.iter().take(EXAMPLES) {
        examples.push(RuleChange {
            kind: rule_change::Kind::Merge as i32,
            profiles_before: names(was),
            profiles_after: vec![now.to_string()],
            identifiers: sample(after, *now),
        });
    }
    for (was, now) in split.iter().take(EXAMPLES) {
        examples.push(RuleChange {
            kind: rule_change::Kind::Split as i32,
            profiles_before: vec![was.to_string()],
            profiles_after: names(now),
            identifiers: sample(before, *was),
        });
    }
    UpdateIdentityRulesResponse {
        applied: false,
        profiles_before: before.profile_count() as u64,
        profiles_after: after.profile_count() as u64,
        merges: merged.len() as u64,
        splits: split.len() as u64,
        examples,
        rules: None,
        identifiers_unlinked: unlinked,
    }
}

#[cfg(test)]
mod tests;
