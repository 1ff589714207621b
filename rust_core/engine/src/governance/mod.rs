//! Governance (Segment's Protocols): tracking plans (JSON Schemas per track event, for identify
//! and group traits, and for every whole event), what each source does with events that break
//! its plan, source-scoped transformations, and the violations seen.
//!
//! The compiled policies live in memory (`Live`), one `Arc` per source: a request takes its
//! source's policy once and applies it on its own thread while preparing its events, so
//! validation runs in parallel with the writer and a policy change applies to the next request.

pub mod deletion;
pub mod enforce;
pub mod inventory;
pub mod pii;
pub mod plan;
pub mod regulations;
pub mod store;
pub mod transform;

#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::RwLock;
use prost::Message;
use rustc_hash::FxHashMap;

use self::enforce::Policy;
use self::pii::Classifier;
use self::plan::CompiledPlan;
use crate::error::{EngineError, Result};
use crate::ingest::Engine;
use crate::proto::{
    self, GetSourcePolicyRequest, GetTrackingPlanRequest, ListTrackingPlansRequest, ListTrackingPlansResponse,
    ListViolationsRequest, ListViolationsResponse, OnViolation, PiiAction, PiiSettings, PutTrackingPlanRequest,
    SetPiiSettingsRequest, SetSourcePolicyRequest, Source, SourcePolicy, TrackingPlan, UnplannedEvents,
};
use crate::store::Store;
use crate::time;

/// Largest plan document accepted (gRPC's message limit is 4 MiB).
const MAX_DOCUMENT_BYTES: usize = 4 << 20;
const DEFAULT_VIOLATIONS: usize = 100;
const DAY_MS: i64 = 86_400_000;

/// Every source's compiled policy (sources without one are absent), and the workspace's classes
/// of personal data.
#[derive(Default)]
pub struct Live {
    policies: RwLock<FxHashMap<u32, Arc<Policy>>>,
    classifier: RwLock<Arc<Classifier>>,
    /// Set when the engine closes: the inventory thread returns.
    pub(crate) stopping: AtomicBool,
    /// The suppression list (None: empty, the common case, checked for free).
    suppressed: RwLock<Option<Arc<regulations::Suppressed>>>,
    /// Held by every governance change from its commit to its update of the above, so that a
    /// reload that read the store before another change committed cannot overwrite that change.
    pub(crate) changes: parking_lot::Mutex<()>,
}

impl Live {
    /// The policy a request of `source` applies.
    pub fn policy(&self, source: u32) -> Option<Arc<Policy>> {
        let policies = self.policies.read();
        if policies.is_empty() {
            return None;
        }
        policies.get(&source).cloned()
    }

    /// The suppression list a request checks its events against.
    pub fn suppressed(&self) -> Option<Arc<regulations::Suppressed>> {
        self.suppressed.read().clone()
    }

    /// Changes the suppression list (copied: requests under way keep the one they took).
    pub fn update_suppressed(&self, change: impl FnOnce(&mut regulations::Suppressed)) {
        let mut current = self.suppressed.write();
        let mut set = current.as_deref().cloned().unwrap_or_default();
        change(&mut set);
        *current = (!set.is_empty()).then(|| Arc::new(set));
    }

    /// The workspace's classes of personal data.
    pub fn classifier(&self) -> Arc<Classifier> {
        Arc::clone(&self.classifier.read())
    }

    /// Compiles every stored policy with the newest version of its plan (at start-up and after
    /// any change: plans and policies are few, so recompiling all of them is simplest).
    pub fn reload(&self, store: &Store) -> Result<()> {
        let txn = store.log.read()?;
        let dbs = &store.log_dbs.governance;
        let settings = pii_settings(&txn.txn, dbs)?;
        let classifier = Arc::new(
            Classifier::new(&settings.patterns)
                .map_err(|e| EngineError::Storage(format!("the stored PII patterns do not compile: {e}")))?,
        );
        let mut plans: FxHashMap<String, Arc<CompiledPlan>> = FxHashMap::default();
        let mut policies = FxHashMap::default();
        for entry in dbs.policies.iter(&txn.txn)? {
            let (source, value) = entry?;
            let stored: SourcePolicy = proto::decode_record(value, "a source policy")?;
            let plan = if stored.plan.is_empty() {
                None
            } else if let Some(plan) = plans.get(&stored.plan) {
                Some(Arc::clone(plan))
            } else {
                let newest = newest_plan(&txn.txn, dbs, &stored.plan)?.ok_or_else(|| {
                    EngineError::Storage(format!("source {source}'s plan {:?} is missing", stored.plan))
                })?;
                let compiled = CompiledPlan::compile(&newest.name, newest.version, &newest.document).map_err(|e| {
                    EngineError::Storage(format!("stored plan {:?} does not compile: {e}", newest.name))
                })?;
                let compiled = Arc::new(compiled);
                plans.insert(stored.plan.clone(), Arc::clone(&compiled));
                Some(compiled)
            };
            let transformations = transform::parse(&stored.transformations)
                .map_err(|e| EngineError::Storage(format!("source {source}'s stored {e}")))?;
            let pii = pii_rules(&stored.pii, &classifier)
                .map_err(|e| EngineError::Storage(format!("source {source}'s stored policy: {e}")))?;
            policies.insert(
                source,
                Arc::new(Policy {
                    source_id: source,
                    plan,
                    unplanned: UnplannedEvents::try_from(stored.unplanned_events).unwrap_or(UnplannedEvents::Allow),
                    on_violation: OnViolation::try_from(stored.on_violation).unwrap_or(OnViolation::Allow),
                    transformations,
                    pii,
                    classifier: Arc::clone(&classifier),
                }),
            );
        }
        drop(txn);
        *self.policies.write() = policies;
        *self.classifier.write() = classifier;
        *self.suppressed.write() = regulations::load(store)?;
        Ok(())
    }
}

fn pii_settings(txn: &heed::RoTxn<'_, heed::WithoutTls>, dbs: &store::GovernanceDbs) -> Result<PiiSettings> {
    match dbs.privacy.get(txn, "settings")? {
        Some(bytes) => proto::decode_record(bytes, "the PII settings"),
        None => Ok(PiiSettings::default()),
    }
}

/// A policy's PII rules, by class; the error names the rule at fault.
fn pii_rules(
    rules: &[proto::PiiRule],
    classifier: &Classifier,
) -> std::result::Result<Vec<(pii::Class, PiiAction)>, String> {
    let mut compiled: Vec<(pii::Class, PiiAction)> = Vec::with_capacity(rules.len());
    let mut seen = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        let class = classifier.class_named(&rule.class).ok_or_else(|| {
            format!(
                "pii[{i}].class: {:?} is not a class (email, phone, credit_card, ip, name, or a custom pattern)",
                rule.class
            )
        })?;
        let action = PiiAction::try_from(rule.action)
            .map_err(|_| format!("pii[{i}].action: {} is not an action", rule.action))?;
        if seen.contains(&class) {
            return Err(format!("pii[{i}]: class {:?} has two rules", rule.class));
        }
        seen.push(class);
        if action != PiiAction::Keep {
            compiled.push((class, action));
        }
    }
    Ok(compiled)
}

/// The newest stored version of the plan `name`.
fn newest_plan(
    txn: &heed::RoTxn<'_, heed::WithoutTls>,
    dbs: &store::GovernanceDbs,
    name: &str,
) -> Result<Option<TrackingPlan>> {
    let mut prefix = name.as_bytes().to_vec();
    prefix.push(0);
    let Some(entry) = dbs.plans.prefix_iter(txn, &prefix)?.last() else {
        return Ok(None);
    };
    let (_, value) = entry?;
    Ok(Some(proto::decode_record(value, "a tracking plan")?))
}

fn check_plan_name(name: &str) -> Result<()> {
    let fine = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if fine {
        Ok(())
    } else {
        Err(EngineError::InvalidRequest(format!(
            "name: {name:?} must be 1 to 100 letters, digits, '-', '_' or '.'"
        )))
    }
}

impl Engine {
    /// `AdminService.PutTrackingPlan`: stores the next version of a plan (checked by compiling
    /// it) and applies it to the sources that enforce the plan.
    pub fn put_tracking_plan(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: PutTrackingPlanRequest = proto::decode_request(request)?;
        check_plan_name(&request.name)?;
        if request.document.len() > MAX_DOCUMENT_BYTES {
            return Err(EngineError::InvalidRequest(format!(
                "document is {} bytes; the limit is {MAX_DOCUMENT_BYTES}",
                request.document.len()
            )));
        }
        let compiled = CompiledPlan::compile(&request.name, 0, &request.document)
            .map_err(|e| EngineError::InvalidRequest(format!("document: {e}")))?;
        let store = &self.shared.store;
        let dbs = store.log_dbs.governance;
        let _changes = self.shared.governance.changes.lock();
        let plan = self.write_log(|txn| {
            let newest = newest_plan(txn, &dbs, &request.name)?;
            if request.create_only && newest.is_some() {
                return Err(EngineError::AlreadyExists(format!(
                    "a tracking plan named {:?} exists (apply a new version instead)",
                    request.name
                )));
            }
            let plan = TrackingPlan {
                name: request.name.clone(),
                version: newest.map_or(1, |p| p.version + 1),
                document: request.document.clone(),
                created_at_ms: time::now_ms(),
                event_count: compiled.event_count() as u32,
                sources: Vec::new(),
            };
            dbs.plans
                .put(txn, &store::plan_key(&plan.name, plan.version), &plan.encode_to_vec())?;
            Ok(plan)
        })?;
        self.shared.governance.reload(store)?;
        log::info!("tracking plan {:?} is now version {}", plan.name, plan.version);
        self.with_sources(plan)
    }

    /// `AdminService.GetTrackingPlan`: one version (the newest by default).
    pub fn get_tracking_plan(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: GetTrackingPlanRequest = proto::decode_request(request)?;
        let dbs = self.shared.store.log_dbs.governance;
        let plan = {
            let txn = self.shared.store.log.read()?;
            if request.version == 0 {
                newest_plan(&txn.txn, &dbs, &request.name)?
            } else {
                dbs.plans
                    .get(&txn.txn, &store::plan_key(&request.name, request.version))?
                    .map(|bytes| proto::decode_record::<TrackingPlan>(bytes, "a tracking plan"))
                    .transpose()?
            }
        };
        let plan = plan.ok_or_else(|| match request.version {
            0 => EngineError::NotFound(format!("no tracking plan named {:?}", request.name)),
            v => EngineError::NotFound(format!("tracking plan {:?} has no version {v}", request.name)),
        })?;
        self.with_sources(plan)
    }

    /// `AdminService.ListTrackingPlans`: the newest version of each plan, with its sources.
    pub fn list_tracking_plans(&self, request: &[u8]) -> Result<Vec<u8>> {
        proto::decode_request::<ListTrackingPlansRequest>(request)?;
        let dbs = self.shared.store.log_dbs.governance;
        let mut newest: Vec<TrackingPlan> = Vec::new();
        let users = {
            let txn = self.shared.store.log.read()?;
            for entry in dbs.plans.iter(&txn.txn)? {
                let (key, value) = entry?;
                let Some((name, _)) = store::parse_plan_key(key) else {
                    continue;
                };
                // Keys sort by name, then version: the last of a name is its newest.
                let plan: TrackingPlan = proto::decode_record(value, "a tracking plan")?;
                match newest.last_mut() {
                    Some(last) if last.name == name => *last = plan,
                    _ => newest.push(plan),
                }
            }
            self.plan_users(&txn.txn)?
        };
        for plan in &mut newest {
            plan.document.clear();
            plan.sources = users.get(&plan.name).cloned().unwrap_or_default();
        }
        Ok(ListTrackingPlansResponse { plans: newest }.encode_to_vec())
    }

    /// `AdminService.SetSourcePolicy`: what a source enforces (checked, then applied to its
    /// next request).
    pub fn set_source_policy(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: SetSourcePolicyRequest = proto::decode_request(request)?;
        let mut policy = request
            .policy
            .ok_or_else(|| EngineError::InvalidRequest("policy is required".into()))?;
        for (field, value, known) in [
            (
                "unplanned_events",
                policy.unplanned_events,
                UnplannedEvents::try_from(policy.unplanned_events).is_ok(),
            ),
            (
                "on_violation",
                policy.on_violation,
                OnViolation::try_from(policy.on_violation).is_ok(),
            ),
        ] {
            if !known {
                return Err(EngineError::InvalidRequest(format!(
                    "policy.{field}: {value} is not a known mode"
                )));
            }
        }
        transform::parse(&policy.transformations).map_err(|e| EngineError::InvalidRequest(format!("policy.{e}")))?;
        pii_rules(&policy.pii, &self.shared.governance.classifier())
            .map_err(|e| EngineError::InvalidRequest(format!("policy.{e}")))?;
        let source = self.source_called(&policy.source)?;
        let store = &self.shared.store;
        let dbs = store.log_dbs.governance;
        let name = std::mem::take(&mut policy.source);
        let _changes = self.shared.governance.changes.lock();
        self.write_log(|txn| {
            if !policy.plan.is_empty() && newest_plan(txn, &dbs, &policy.plan)?.is_none() {
                return Err(EngineError::NotFound(format!(
                    "policy.plan: no tracking plan named {:?}",
                    policy.plan
                )));
            }
            dbs.policies.put(txn, &source.id, &policy.encode_to_vec())?;
            Ok(())
        })?;
        self.shared.governance.reload(store)?;
        log::info!("source {name:?} now enforces {:?}", policy.plan);
        policy.source = name;
        Ok(policy.encode_to_vec())
    }

    /// `AdminService.GetSourcePolicy`: a source's policy (the default, allowing everything,
    /// when none was set).
    pub fn get_source_policy(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: GetSourcePolicyRequest = proto::decode_request(request)?;
        let source = self.source_called(&request.source)?;
        let txn = self.shared.store.log.read()?;
        let mut policy = match self
            .shared
            .store
            .log_dbs
            .governance
            .policies
            .get(&txn.txn, &source.id)?
        {
            Some(bytes) => proto::decode_record(bytes, "a source policy")?,
            None => SourcePolicy::default(),
        };
        policy.source = source.name;
        Ok(policy.encode_to_vec())
    }

    /// `AdminService.ListViolations`.
    pub fn list_violations(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: ListViolationsRequest = proto::decode_request(request)?;
        let source = match request.source.as_str() {
            "" => None,
            name => Some(self.source_called(name)?.id),
        };
        let since_ms = match request.since_ms {
            0 => time::now_ms() - DAY_MS,
            ms => ms,
        };
        let limit = match request.limit {
            0 => DEFAULT_VIOLATIONS,
            n => n as usize,
        };
        let txn = self.shared.store.log.read()?;
        let names = self.source_names(&txn.txn)?;
        let event = (!request.event.is_empty()).then_some(request.event.as_str());
        let found = store::list(&txn.txn, &self.shared.store.log_dbs.governance, source, event, since_ms)?;
        let violations = found
            .into_iter()
            .take(limit)
            .map(|(source, mut violation)| {
                violation.source = names.get(&source).cloned().unwrap_or_else(|| source.to_string());
                violation
            })
            .collect();
        Ok(ListViolationsResponse { violations }.encode_to_vec())
    }

    /// `AdminService.GetPiiSettings`.
    pub fn get_pii_settings(&self, request: &[u8]) -> Result<Vec<u8>> {
        proto::decode_request::<proto::GetPiiSettingsRequest>(request)?;
        let txn = self.shared.store.log.read()?;
        Ok(pii_settings(&txn.txn, &self.shared.store.log_dbs.governance)?.encode_to_vec())
    }

    /// `AdminService.SetPiiSettings`: the workspace's custom classes (checked by compiling them).
    /// A pattern a source's rule uses cannot be removed.
    pub fn set_pii_settings(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: SetPiiSettingsRequest = proto::decode_request(request)?;
        let settings = request.settings.unwrap_or_default();
        let classifier =
            Classifier::new(&settings.patterns).map_err(|e| EngineError::InvalidRequest(format!("settings.{e}")))?;
        let store = &self.shared.store;
        let dbs = store.log_dbs.governance;
        let _changes = self.shared.governance.changes.lock();
        self.write_log(|txn| {
            for entry in dbs.policies.iter(txn)? {
                let (_, value) = entry?;
                let policy: SourcePolicy = proto::decode_record(value, "a source policy")?;
                if let Some(rule) = policy.pii.iter().find(|r| classifier.class_named(&r.class).is_none()) {
                    return Err(EngineError::FailedPrecondition(format!(
                        "settings: class {:?} is used by a source's PII rules (change them first)",
                        rule.class
                    )));
                }
            }
            dbs.privacy.put(txn, "settings", &settings.encode_to_vec())?;
            Ok(())
        })?;
        self.shared.governance.reload(store)?;
        Ok(settings.encode_to_vec())
    }

    fn source_called(&self, name: &str) -> Result<Source> {
        if name.is_empty() {
            return Err(EngineError::InvalidRequest("source is required".into()));
        }
        self.source_named(name)?
            .ok_or_else(|| EngineError::NotFound(format!("no source named {name:?}")))
    }

    fn source_names(&self, txn: &heed::RoTxn<'_, heed::WithoutTls>) -> Result<FxHashMap<u32, String>> {
        let mut names = FxHashMap::default();
        for entry in self.shared.store.log_dbs.sources.iter(txn)? {
            let (id, value) = entry?;
            let source: Source = proto::decode_record(value, "a source record")?;
            names.insert(id, source.name);
        }
        Ok(names)
    }

    /// Plan name → the sources enforcing it.
    fn plan_users(&self, txn: &heed::RoTxn<'_, heed::WithoutTls>) -> Result<FxHashMap<String, Vec<String>>> {
        let names = self.source_names(txn)?;
        let mut users: FxHashMap<String, Vec<String>> = FxHashMap::default();
        for entry in self.shared.store.log_dbs.governance.policies.iter(txn)? {
            let (source, value) = entry?;
            let policy: SourcePolicy = proto::decode_record(value, "a source policy")?;
            if !policy.plan.is_empty() {
                let name = names.get(&source).cloned().unwrap_or_else(|| source.to_string());
                users.entry(policy.plan).or_default().push(name);
            }
        }
        Ok(users)
    }

    fn with_sources(&self, mut plan: TrackingPlan) -> Result<Vec<u8>> {
        let txn = self.shared.store.log.read()?;
        plan.sources = self.plan_users(&txn.txn)?.remove(&plan.name).unwrap_or_default();
        Ok(plan.encode_to_vec())
    }
}
