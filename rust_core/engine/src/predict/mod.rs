//! Predictions, the engine's part (`docs/predictions.md`): point-in-time feature rows and their
//! labels for the models the server trains (`features`), the leak guard, scores written back as
//! profile traits (identify calls from the Engage source, like computed traits), and the records
//! the server keeps (definitions, models, scored snapshots) in the log environment.
//!
//! Python trains and scores; it never sees an event. The rows cross as one buffer of `f32`.

pub mod features;
#[cfg(test)]
mod tests;
pub mod trees;

use roaring::RoaringBitmap;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::engage::plan::Run;
use crate::engage::EventIndex;
use crate::error::{EngineError, Result};
use crate::identity::graph::{ProfileId, ProfileLookup};
use crate::proto::EventType;
use crate::query::{Body, Kind};
use crate::Engine;

/// Most rows computed under one hold of the graph lock (a few milliseconds' work), released
/// fairly, and at once when ingest waits to resolve (`Profiles::ingest_waiting`): a refresh
/// computes rows over a million profiles for seconds; with 10,000 rows a hold (~180 ms), ingest
/// alongside it fell to a fifth of its rate, with 256 to half.
const ROWS_PER_LOCK: usize = 256;
/// Most scores compared with the profiles' traits under one hold (a comparison costs a fraction
/// of a row's features), released in the same way.
const SCORES_PER_LOCK: usize = 1_024;
/// Profiles the leak guard recomputes from their known events alone.
const AUDIT_ROWS: usize = 2_000;

/// The traits a prediction KEY writes: KEY_probability (KEY_value for lifetime value),
/// KEY_percentile and KEY_decile.
pub const SCORE_TRAITS: [&str; 4] = ["probability", "value", "percentile", "decile"];

/// Whether the computation `key` (an audience, a computed trait, a prediction) writes the trait
/// `name`: an audience or computed trait its own key, a prediction its score traits. Destinations
/// connected to a key get these.
pub fn writes_trait(key: &str, name: &str) -> bool {
    name == key
        || name
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|suffix| SCORE_TRAITS.contains(&suffix))
}

/// What the server asks for: the rows at one cutoff.
#[derive(Deserialize)]
pub struct RowsRequest {
    /// The event names the model reads.
    pub names: Vec<String>,
    /// The traits it reads.
    #[serde(default)]
    pub traits: Vec<String>,
    pub cutoff_ms: i64,
    /// A saved USERS audience: only its members (evaluated at the cutoff) get rows.
    #[serde(default)]
    pub population: Option<String>,
    /// Only these profiles (a profile id or `kind:value` identifier each, as `GetProfile` takes
    /// them), at any cutoff.
    #[serde(default)]
    pub profiles: Option<Vec<String>>,
    #[serde(default)]
    pub label: Option<LabelRequest>,
    /// The leak guard's deliberately leaky column (tests of the guard only).
    #[serde(default)]
    pub probe_leak: bool,
    /// Run the leak guard on (up to `AUDIT_ROWS` of) these rows.
    #[serde(default)]
    pub audit: bool,
    /// Rows of about this many profiles at most: when there are more, a fixed sample of them,
    /// picked by a hash of the profile id, so a profile is in it at every cutoff or at none.
    #[serde(default)]
    pub max_profiles: Option<u64>,
}

/// Whether the profile `id` is in the sample that keeps `share` of all profiles: its id (random
/// already) mixed by SplitMix64's finalizer, below `share` of the range.
fn sampled(id: u128, share: f64) -> bool {
    let mut z = (id as u64) ^ ((id >> 64) as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z as f64) < share * u64::MAX as f64
}

/// The label of each row: what happened in the horizon after the cutoff, as known now.
#[derive(Deserialize)]
pub struct LabelRequest {
    pub horizon_ms: i64,
    /// A USERS audience condition evaluated at `cutoff + horizon` (the goal with
    /// `.within(horizon)` appended by the server): 1 for its members.
    #[serde(default)]
    pub condition: Option<String>,
    /// 1 for those NOT in `condition` (churn: did none of the events).
    #[serde(default)]
    pub negate: bool,
    /// Instead: the revenue of these names' events in `(cutoff, cutoff + horizon]` (lifetime value).
    #[serde(default)]
    pub revenue_of: Option<Vec<String>>,
}

/// The spec's names and traits with their index ids, as the indexes number them now.
type Ids = (Vec<(String, Option<u32>)>, Vec<(String, Option<u32>)>);

fn ids_of(request: &RowsRequest, engage: &crate::engage::Engage) -> Ids {
    let names = request
        .names
        .iter()
        .map(|n| (n.clone(), engage.events.name_id(n)))
        .collect();
    let traits = request
        .traits
        .iter()
        .map(|n| (n.clone(), engage.traits.trait_id(n)))
        .collect();
    (names, traits)
}

/// Rows at one cutoff.
pub struct Table {
    pub columns: Vec<String>,
    /// Each row's profile id.
    pub ids: Vec<u128>,
    /// Row-major, `columns.len()` wide.
    pub values: Vec<f32>,
    /// One per row when a label was asked for.
    pub labels: Vec<f64>,
    /// Columns the leak guard found reading past the cutoff.
    pub leaky: Vec<String>,
    /// The last seq known at the cutoff.
    pub through: u64,
}

/// The label of `root`'s profile: the revenue of `names` in `(from, to]` over its nodes.
fn revenue_between(events: &EventIndex, nodes: &[u32], names: &[Option<u32>], from: i64, to: i64) -> f64 {
    let mut total = 0.0;
    for id in names.iter().filter_map(|id| *id) {
        for &node in nodes {
            let Some(list) = events.events(node, id) else {
                continue;
            };
            let revenue = list.revenue();
            for (i, &(ms, _)) in list.all().iter().enumerate() {
                if from < ms && ms <= to {
                    total += revenue.get(i).copied().unwrap_or(0.0);
                }
            }
        }
    }
    total
}

/// Recomputes `rows`' features from an event index holding only what was known at the cutoff
/// (their events with time ≤ t and seq ≤ through): a column that differs read something a
/// cutoff must hide. The point-in-time property the proptest proves, checked on live data.
fn leaks(run: &Run<'_>, spec: &features::Spec<'_>, roots: &[u32], t: i64, through: u64, rows: &[f32]) -> Vec<usize> {
    let (graph, events) = (run.ev.graph, &run.ev.engage.events);
    let traits = &run.ev.engage.traits;
    let mut known = EventIndex::default();
    for &root in roots {
        for &node in graph.members_at(root) {
            for (name, id) in spec.names {
                let Some(list) = id.and_then(|id| events.events(node, id)) else {
                    continue;
                };
                let revenue = list.revenue();
                for (i, &(ms, seq)) in list.all().iter().enumerate() {
                    if ms <= t && seq <= through {
                        known.record(node, name, ms, seq, revenue.get(i).copied());
                    }
                }
            }
        }
    }
    let names: Vec<(String, Option<u32>)> = spec.names.iter().map(|(n, _)| (n.clone(), known.name_id(n))).collect();
    let known_spec = features::Spec {
        names: &names,
        traits: spec.traits,
        probe_leak: spec.probe_leak,
    };
    let mut again = features::Rows::new((graph, &known, traits, run.ev.log), &known_spec, t, through);
    let mut recomputed = Vec::with_capacity(rows.len());
    for &root in roots {
        again.push(root, &mut recomputed);
    }
    let width = features::columns(spec).len();
    if recomputed.len() != rows.len() {
        // A row appeared or vanished: every column is suspect.
        return (0..width).collect();
    }
    features::differing_columns(rows, &recomputed, width)
}

impl Engine {
    /// The feature rows (and labels) at one cutoff. Rows are computed in chunks, each under its
    /// own hold of the graph lock, so ingest goes on resolving meanwhile.
    pub fn prediction_rows(&self, request: &RowsRequest) -> Result<Table> {
        let t = request.cutoff_ms;
        // The rows' profiles: every profile with an event of the names (or the ones asked for),
        // within the population.
        let (candidates, through) = self.with_run(t, |run| {
            let (graph, events) = (run.ev.graph, &run.ev.engage.events);
            let (names, traits) = ids_of(request, run.ev.engage);
            let spec = features::Spec {
                names: &names,
                traits: &traits,
                probe_leak: request.probe_leak,
            };
            let mut roots = match &request.profiles {
                Some(profiles) => {
                    let mut roots = RoaringBitmap::new();
                    for text in profiles {
                        let lookup = crate::profile_reads::parse_lookup("profile", text)?;
                        roots.extend(graph.root_for(&lookup));
                    }
                    roots
                }
                None => features::candidates(graph, events, &spec),
            };
            if let Some(key) = &request.population {
                roots &= population(run, key)?;
            }
            Ok((roots, run.ev.engage.clock.through(t)))
        })?;
        let candidates: Vec<u32> = candidates.into_iter().collect();
        let share = match request.max_profiles {
            Some(max) if (max as usize) < candidates.len() => Some(max as f64 / candidates.len() as f64),
            _ => None,
        };
        let mut table = Table {
            columns: Vec::new(),
            ids: Vec::new(),
            values: Vec::new(),
            labels: Vec::new(),
            leaky: Vec::new(),
            through,
        };
        let mut kept: Vec<u32> = Vec::new();
        let mut rest = &candidates[..];
        while !rest.is_empty() {
            let log = crate::engage::evaluate::LogReader::new(&self.shared.store)?;
            let state = self.shared.profiles.lock();
            let graph = &state.graph;
            let (names, traits) = ids_of(request, &state.engage);
            let spec = features::Spec {
                names: &names,
                traits: &traits,
                probe_leak: request.probe_leak,
            };
            if table.columns.is_empty() {
                table.columns = features::columns(&spec);
            }
            let indexes = (graph, &state.engage.events, &state.engage.traits, &log);
            let mut rows = features::Rows::new(indexes, &spec, t, through);
            let mut done = 0;
            for &root in rest.iter().take(ROWS_PER_LOCK) {
                if done > 0 && self.shared.profiles.ingest_waiting() {
                    break;
                }
                done += 1;
                // A profile merged into another since the chunk was listed is the other's row.
                let Some(root) = graph.root_of(root) else {
                    continue;
                };
                let Some(id) = graph.id_at(root) else {
                    continue;
                };
                if share.is_some_and(|share| !sampled(id.0, share)) {
                    continue;
                }
                if rows.push(root, &mut table.values) {
                    table.ids.push(id.0);
                    kept.push(root);
                }
            }
            drop(rows);
            parking_lot::MutexGuard::unlock_fair(state);
            rest = &rest[done..];
        }
        if table.columns.is_empty() {
            let names: Vec<(String, Option<u32>)> = request.names.iter().map(|n| (n.clone(), None)).collect();
            let traits: Vec<(String, Option<u32>)> = request.traits.iter().map(|n| (n.clone(), None)).collect();
            table.columns = features::columns(&features::Spec {
                names: &names,
                traits: &traits,
                probe_leak: request.probe_leak,
            });
        }
        if request.audit || request.label.is_some() {
            self.with_run(t, |run| {
                let (names, traits) = ids_of(request, run.ev.engage);
                let spec = features::Spec {
                    names: &names,
                    traits: &traits,
                    probe_leak: request.probe_leak,
                };
                if request.audit {
                    let sample = kept.len().min(AUDIT_ROWS);
                    let width = table.columns.len();
                    let found = leaks(run, &spec, &kept[..sample], t, through, &table.values[..sample * width]);
                    table.leaky = found.into_iter().map(|i| table.columns[i].clone()).collect();
                }
                Ok(())
            })?;
        }
        if let Some(label) = &request.label {
            table.labels = self.labels(label, t, &kept)?;
        }
        Ok(table)
    }

    /// Each row's label (see `LabelRequest`), for the profiles rooted at `roots`.
    fn labels(&self, label: &LabelRequest, t: i64, roots: &[u32]) -> Result<Vec<f64>> {
        if label.horizon_ms <= 0 {
            return Err(EngineError::InvalidRequest(
                "label: the horizon must be positive".into(),
            ));
        }
        let end = t.saturating_add(label.horizon_ms);
        if let Some(names) = &label.revenue_of {
            let state = self.shared.profiles.lock();
            let events = &state.engage.events;
            let ids: Vec<Option<u32>> = names.iter().map(|n| events.name_id(n)).collect();
            return Ok(roots
                .iter()
                .map(|&root| revenue_between(events, state.graph.members_at(root), &ids, t, end))
                .collect());
        }
        let Some(text) = &label.condition else {
            return Err(EngineError::InvalidRequest(
                "label: a condition or revenue_of is required".into(),
            ));
        };
        let definition = crate::query::parse_audience(text, Kind::Users)
            .map_err(|err| EngineError::InvalidRequest(format!("goal: {err}\n{}", err.caret(text))))?;
        let Body::Audience(condition) = &definition.body else {
            return Err(EngineError::InvalidRequest("goal: not a condition".into()));
        };
        let members = self.with_run(end, |run| run.users(condition))?;
        Ok(roots
            .iter()
            .map(|root| f64::from(u8::from(members.contains(*root) != label.negate)))
            .collect())
    }

    /// Writes scores as profile traits: for each row (a profile id), the traits of `columns`
    /// (name, value per row) that differ from what the profile holds, in one identify call from
    /// the Engage source at `at_ms` (so they flow to destinations and into audiences like any
    /// computed trait's). Waits until they are committed. Returns (profiles written, unchanged,
    /// gone: no longer a profile, or nothing to carry the call).
    pub fn write_prediction_scores(
        &self,
        key: &str,
        at_ms: i64,
        ids: &[u128],
        columns: &[(String, Vec<Value>)],
    ) -> Result<(u64, u64, u64)> {
        if columns.iter().any(|(_, values)| values.len() != ids.len()) {
            return Err(EngineError::InvalidRequest(
                "scores: a column's length differs from the rows'".into(),
            ));
        }
        let cause = *self.shared.committed.lock();
        let (mut events, mut unchanged, mut gone) = (Vec::new(), 0u64, 0u64);
        let mut seen = RoaringBitmap::new();
        let mut next = 0;
        while next < ids.len() {
            self.with_run(at_ms, |run| {
                let graph = run.ev.graph;
                let first = next;
                for (row, &id) in ids.iter().enumerate().skip(first).take(SCORES_PER_LOCK) {
                    if row > first && self.shared.profiles.ingest_waiting() {
                        break;
                    }
                    next = row + 1;
                    let Some(root) = graph.root_for(&ProfileLookup::Id(ProfileId(id))) else {
                        gone += 1;
                        continue;
                    };
                    if !seen.insert(root) {
                        // Two rows of one profile now (merged since): the first stands.
                        continue;
                    }
                    let members = graph.members_at(root);
                    let mut traits = Map::new();
                    for (name, values) in columns {
                        let value = &values[row];
                        if run.ev.user_trait(members, name).as_ref() != Some(value) {
                            traits.insert(name.clone(), value.clone());
                        }
                    }
                    if traits.is_empty() {
                        unchanged += 1;
                        continue;
                    }
                    let Some(carrier) = crate::engage::realtime::Carrier::of(graph, root) else {
                        gone += 1;
                        continue;
                    };
                    let profile = graph.id_at(root).unwrap_or(ProfileId(id));
                    let personas = json!({"computation_class": "prediction", "computation_key": key});
                    events.push(crate::proto::Event {
                        r#type: EventType::Identify as i32,
                        message_id: format!("predict-{key}-{profile}-{cause:020}"),
                        traits: serde_json::to_vec(&traits).unwrap_or_default(),
                        context: carrier.context(personas),
                        ..carrier.event(at_ms)
                    });
                }
                Ok(())
            })?;
        }
        let written = events.len() as u64;
        let jobs = self.job_sender()?;
        crate::engage::realtime::write_own_events(&self.shared, &jobs, &events, |_| Ok(()))?;
        Ok((written, unchanged, gone))
    }

    /// Every event name Engage has seen, with how many identifiers have events of it (the
    /// server picks the names a model reads by it).
    pub fn event_name_reach(&self) -> Vec<(String, u64)> {
        let state = self.shared.profiles.lock();
        let events = &state.engage.events;
        let mut names: Vec<(String, u64)> = events
            .name_ids()
            .map(|(name, id)| (name.to_owned(), events.nodes_with(id).map_or(0, RoaringBitmap::len)))
            .collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        names
    }

    /// The server's prediction records (`key` → bytes) under `prefix`, in key order.
    pub fn prediction_records(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.prediction_records_where(prefix, |_| true)
    }

    /// The prediction records under `prefix` whose key `wanted` accepts, in key order, read in
    /// one transaction: only those are copied (the debugger reads definitions and reports without
    /// the models and scored snapshots beside them). `wanted` sees every key under `prefix`, in
    /// order, once.
    pub fn prediction_records_where(
        &self,
        prefix: &str,
        mut wanted: impl FnMut(&str) -> bool,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self.shared.store.log.read()?;
        let mut out = Vec::new();
        let db = self.shared.store.log_dbs.predictions;
        // LMDB refuses an empty key, so an empty prefix (everything) is a plain iteration.
        let entries: Box<dyn Iterator<Item = heed::Result<(&str, &[u8])>>> = if prefix.is_empty() {
            Box::new(db.iter(&txn.txn)?)
        } else {
            Box::new(db.prefix_iter(&txn.txn, prefix)?)
        };
        for entry in entries {
            let (key, value) = entry?;
            if wanted(key) {
                out.push((key.to_owned(), value.to_vec()));
            }
        }
        Ok(out)
    }

    /// Stores (`Some`) or removes (`None`) prediction records, in one transaction.
    pub fn put_prediction_records(&self, records: &[(String, Option<Vec<u8>>)]) -> Result<()> {
        let dbs = &self.shared.store.log_dbs;
        self.shared.store.log.write_with_growth(|txn| {
            for (key, value) in records {
                match value {
                    Some(value) => dbs.predictions.put(txn, key, value)?,
                    None => {
                        dbs.predictions.delete(txn, key)?;
                    }
                }
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Removes every record under `prefix` (a deleted prediction).
    pub fn delete_prediction_records(&self, prefix: &str) -> Result<u64> {
        let dbs = &self.shared.store.log_dbs;
        let (removed, _) = self.shared.store.log.write_with_growth(|txn| {
            let mut removed = 0;
            let mut iter = dbs.predictions.prefix_iter_mut(txn, prefix)?;
            while let Some(entry) = iter.next() {
                entry?;
                // SAFETY: nothing borrowed from the database is kept across the deletion.
                unsafe { iter.del_current()? };
                removed += 1;
            }
            Ok(removed)
        })?;
        Ok(removed)
    }
}

/// The members of a saved USERS audience at the run's time.
fn population(run: &Run<'_>, key: &str) -> Result<RoaringBitmap> {
    let Some(definition) = run.ev.saved.get(key) else {
        return Err(EngineError::NotFound(format!("population: no audience {key:?}")));
    };
    match (&definition.body, definition.kind) {
        (Body::Audience(condition), Kind::Users) => run.users(condition),
        _ => Err(EngineError::InvalidRequest(format!(
            "population: {key:?} is not a USERS audience"
        ))),
    }
}
