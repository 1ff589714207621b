//! A definition evaluated over every profile (or account) at once. Junctions become bitmap AND,
//! OR and ANDNOT over profile numbers (union-find roots); a comparison the indexes can answer
//! is answered from them:
//! - `trait('k') <comparator> literal`: the comparator is tested once per distinct value of `k`,
//!   the nodes holding passing values are ORed and mapped to profiles; only profiles with
//!   several nodes are checked against their latest value;
//! - `event('E')[.within(…)][.between(…)].count() <comparator> literal`: the profiles with
//!   events of `E` on the window's days are the candidates, each one's count is summed from its
//!   nodes' event times (exact to the millisecond); when the comparator holds for a count of 0,
//!   every other profile is in too;
//! - `trait('key')` of a saved USERS audience: its members, computed once per evaluation.
//!
//! Everything else (property filters, other reducers, comparisons between two expressions) is
//! evaluated profile by profile (`evaluate`), over the candidates the other parts of an AND left.

use std::cell::RefCell;
use std::rc::Rc;

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use super::evaluate::{literal_value, test, time_window, Entity, Evaluator};
use super::events::{day_of, Counter};
use crate::error::Result;
use crate::profiles::AccountLinks;
use crate::query::{Body, Comparator, Comparison, Condition, Kind, Literal, Reducer, Scalar};

/// One evaluation over all entities.
pub struct Run<'a> {
    pub ev: Evaluator<'a>,
    pub links: &'a AccountLinks,
    /// Every profile's root.
    pub roots: &'a RoaringBitmap,
    /// Members of saved USERS audiences, computed once.
    saved_members: RefCell<FxHashMap<String, Rc<RoaringBitmap>>>,
}

impl<'a> Run<'a> {
    pub fn new(ev: Evaluator<'a>, links: &'a AccountLinks) -> Self {
        let roots = ev.graph.root_bitmap();
        Self {
            ev,
            links,
            roots,
            saved_members: RefCell::default(),
        }
    }

    /// A profile's entity.
    pub fn user(&self, root: u32) -> Entity {
        Entity::user(self.ev.graph.members_at(root).to_vec())
    }

    /// The profiles (roots) in a USERS audience.
    pub fn users(&self, condition: &Condition) -> Result<RoaringBitmap> {
        self.members(condition, self.roots)
    }

    /// Each profile's value of a USERS computed trait (profiles without one are left out).
    pub fn user_values(&self, scalar: &Scalar) -> Result<Vec<(u32, Value)>> {
        let mut out = Vec::new();
        for root in self.roots {
            if let Some(value) = self.ev.value_for(scalar, &self.user(root))? {
                out.push((root, value));
            }
        }
        Ok(out)
    }

    /// Every account (group id), in order.
    pub fn account_ids(&self) -> Vec<&'a str> {
        let mut ids: Vec<&str> = self.links.users.keys().map(String::as_str).collect();
        ids.extend(
            self.links
                .calls
                .keys()
                .filter(|g| !self.links.users.contains_key(*g))
                .map(String::as_str),
        );
        ids.sort_unstable();
        ids
    }

    /// An account's traits, folded from its group calls.
    pub fn account_traits(&self, group: &str) -> Result<Map<String, Value>> {
        let calls = self.links.calls.get(group);
        let (winners, _) = crate::profile_reads::fold_traits_in(
            self.ev.log.store(),
            self.ev.log.txn(),
            calls.map_or(&[][..], Vec::as_slice),
        )?;
        Ok(winners.into_iter().map(|(name, winner)| (name, winner.value)).collect())
    }

    /// The accounts a profile is linked to: group calls naming any of its identifiers.
    pub fn accounts_of(&self, root: u32) -> Vec<&'a str> {
        let graph = self.ev.graph;
        let mut groups: Vec<&'a str> = graph
            .members_at(root)
            .iter()
            .filter_map(|&node| self.links.accounts.get(&graph.identifier_at(node).hash128()))
            .flatten()
            .map(|(group, _)| group.as_str())
            .collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }

    /// An account's entity: its traits folded from its group calls, its users in profile-id
    /// order. None for a group no call named.
    pub fn account(&self, group: &str) -> Result<Option<Entity>> {
        let users = self.links.users.get(group);
        if !self.links.calls.contains_key(group) && users.is_none() {
            return Ok(None);
        }
        let traits = self.account_traits(group)?;
        let graph = self.ev.graph;
        let mut roots: Vec<u32> = users
            .into_iter()
            .flatten()
            .filter_map(|(identifier, _)| graph.linked_root(identifier))
            .collect();
        roots.sort_unstable();
        roots.dedup();
        let mut users: Vec<(String, Rc<Entity>)> = roots
            .into_iter()
            .filter_map(|root| Some((graph.id_at(root)?.to_string(), Rc::new(self.user(root)))))
            .collect();
        users.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(Entity::account(traits, users)))
    }

    /// The accounts in an ACCOUNTS audience.
    pub fn accounts(&self, condition: &Condition) -> Result<Vec<&'a str>> {
        let mut out = Vec::new();
        for group in self.account_ids() {
            if let Some(account) = self.account(group)? {
                if self.ev.holds_for(condition, &account)? {
                    out.push(group);
                }
            }
        }
        Ok(out)
    }

    /// Each account's value of an ACCOUNTS computed trait.
    pub fn account_values(&self, scalar: &Scalar) -> Result<Vec<(&'a str, Value)>> {
        let mut out = Vec::new();
        for group in self.account_ids() {
            if let Some(account) = self.account(group)? {
                if let Some(value) = self.ev.value_for(scalar, &account)? {
                    out.push((group, value));
                }
            }
        }
        Ok(out)
    }

    /// The profiles of `universe` for which `condition` holds.
    fn members(&self, condition: &Condition, universe: &RoaringBitmap) -> Result<RoaringBitmap> {
        match condition {
            Condition::And(parts) => {
                // Parts the indexes answer first: they narrow what the others scan.
                let mut ordered: Vec<&Condition> = parts.iter().collect();
                ordered.sort_by_key(|part| u8::from(!self.is_indexed(part)));
                let mut left = universe.clone();
                for part in ordered {
                    if left.is_empty() {
                        break;
                    }
                    left = self.members(part, &left)?;
                }
                Ok(left)
            }
            Condition::Or(parts) => {
                let (mut found, mut rest) = (RoaringBitmap::new(), universe.clone());
                for part in parts {
                    if rest.is_empty() {
                        break;
                    }
                    let matched = self.members(part, &rest)?;
                    rest -= &matched;
                    found |= matched;
                }
                Ok(found)
            }
            Condition::Not(inner) => Ok(universe - self.members(inner, universe)?),
            Condition::Compare(comparison) => match self.indexed(comparison, universe)? {
                Some(found) => Ok(found),
                None => self.one_by_one(condition, universe),
            },
            Condition::Any(_) | Condition::All(_) => self.one_by_one(condition, universe),
        }
    }

    fn one_by_one(&self, condition: &Condition, universe: &RoaringBitmap) -> Result<RoaringBitmap> {
        let mut found = Vec::new();
        for root in universe {
            if self.ev.holds_for(condition, &self.user(root))? {
                found.push(root);
            }
        }
        Ok(RoaringBitmap::from_sorted_iter(found).unwrap_or_default())
    }

    fn is_indexed(&self, condition: &Condition) -> bool {
        match condition {
            Condition::Compare(comparison) => shape(comparison, self.ev.saved, self.ev.now_ms).is_some(),
            Condition::Not(inner) => self.is_indexed(inner),
            Condition::And(parts) | Condition::Or(parts) => parts.iter().all(|part| self.is_indexed(part)),
            Condition::Any(_) | Condition::All(_) => false,
        }
    }

    /// The comparison answered from the indexes, or None when it has another shape.
    fn indexed(&self, comparison: &Comparison, universe: &RoaringBitmap) -> Result<Option<RoaringBitmap>> {
        let Some(shape) = shape(comparison, self.ev.saved, self.ev.now_ms) else {
            return Ok(None);
        };
        let comparator = &comparison.comparator;
        let operand = comparator.operand().map(|operand| match operand {
            Scalar::Literal(literal) => literal_value(literal),
            _ => unreachable!("shape() takes literal operands only"),
        });
        let now = self.ev.now_ms;
        let passes = |value: Option<&Value>| test(comparator, value, operand.as_ref(), now);
        let graph = self.ev.graph;
        Ok(Some(match shape {
            Shape::Membership(key) => {
                let members = self.saved_members(key)?;
                let mut found = RoaringBitmap::new();
                if passes(Some(&Value::Bool(true))) {
                    found |= universe & &*members;
                }
                if passes(None) {
                    found |= universe - &*members;
                }
                found
            }
            Shape::Trait(name) => {
                let index = &self.ev.engage.traits;
                let Some(trait_id) = index.trait_id(name) else {
                    return Ok(Some(if passes(None) {
                        universe.clone()
                    } else {
                        RoaringBitmap::new()
                    }));
                };
                let mut found = self.profiles_with_trait(name, trait_id, &|value| passes(Some(value)), universe);
                if passes(None) {
                    found |= universe - self.profiles_with_trait(name, trait_id, &|_| true, universe);
                }
                found
            }
            Shape::Count { name, from, to } => {
                let events = &self.ev.engage.events;
                let at_zero = passes(Some(&Value::from(0u64)));
                let Some(name_id) = events.name_id(name) else {
                    return Ok(Some(if at_zero {
                        universe.clone()
                    } else {
                        RoaringBitmap::new()
                    }));
                };
                let any_one = from == i64::MIN && to == i64::MAX && passes(Some(&Value::from(1u64)));
                let (candidates, mut found) = if any_one && is_at_least_one(&comparison.comparator) {
                    // `count() >= 1` over all time: who has any such event at all.
                    let nodes = events.nodes_with(name_id).cloned().unwrap_or_default();
                    let candidates = graph.roots_of(&nodes, self.roots) & universe;
                    (candidates.clone(), candidates)
                } else {
                    if saturates_in_a_byte(&comparison.comparator) {
                        self.counted::<u8>(name_id, from, to, universe, &passes)
                    } else {
                        self.counted::<u32>(name_id, from, to, universe, &passes)
                    }
                };
                if at_zero {
                    found |= universe - candidates;
                }
                found
            }
        }))
    }

    /// The profiles of `within` whose stored trait `name` (numbered `trait_id`) is present and
    /// passes `test`. A profile with several nodes holding the trait takes the latest of their
    /// values, so those (each has a node holding one that is not its root) are checked one by one.
    pub fn profiles_with_trait(
        &self,
        name: &str,
        trait_id: u32,
        test: &dyn Fn(&Value) -> bool,
        within: &RoaringBitmap,
    ) -> RoaringBitmap {
        let (index, graph) = (&self.ev.engage.traits, self.ev.graph);
        let found = graph.roots_of(&index.nodes_where(trait_id, test), self.roots) & within;
        let several = graph.roots_of(&(index.nodes_holding(trait_id) - self.roots), self.roots);
        let wrong: RoaringBitmap = (&found & &several)
            .into_iter()
            .filter(|&root| {
                !self
                    .ev
                    .user_trait(graph.members_at(root), name)
                    .as_ref()
                    .is_some_and(test)
            })
            .collect();
        found - wrong
    }

    /// The profiles of `universe` with events of `name_id` on the days of `from..=to` (the
    /// candidates), and those of them whose count in `from..=to` passes. Counted over the
    /// window's events into a slot per node, then per profile.
    fn counted<C: Counter>(
        &self,
        name_id: u32,
        from: i64,
        to: i64,
        universe: &RoaringBitmap,
        passes: &dyn Fn(Option<&Value>) -> bool,
    ) -> (RoaringBitmap, RoaringBitmap) {
        let graph = self.ev.graph;
        let events = &self.ev.engage.events;
        let mut counts = vec![C::default(); graph.node_count()];
        events.count_between(name_id, from, to, &mut counts);
        let nodes = events.nodes_between(name_id, day_of(from), day_of(to));
        let mut candidates = &nodes & self.roots;
        // Nodes of profiles with several: their events count for the profile.
        for node in &nodes - self.roots {
            if let Some(root) = graph.root_of(node) {
                let moved = std::mem::take(&mut counts[node as usize]);
                counts[root as usize].absorb(moved);
                candidates.insert(root);
            }
        }
        candidates &= universe;
        // The verdict of each small count, worked out once.
        let verdicts: Vec<bool> = (0..64u32).map(|n| passes(Some(&Value::from(n)))).collect();
        let verdict = |n: u32| {
            verdicts
                .get(n as usize)
                .copied()
                .unwrap_or_else(|| passes(Some(&Value::from(n))))
        };
        let found = candidates.iter().filter(|&root| verdict(counts[root as usize].count()));
        let found = RoaringBitmap::from_sorted_iter(found).unwrap_or_default();
        (candidates, found)
    }

    fn saved_members(&self, key: &str) -> Result<Rc<RoaringBitmap>> {
        if let Some(found) = self.saved_members.borrow().get(key) {
            return Ok(Rc::clone(found));
        }
        let Some(Body::Audience(condition)) = self.ev.saved.get(key).map(|d| &d.body) else {
            return Ok(Rc::default());
        };
        let members = Rc::new(self.members(condition, self.roots)?);
        self.saved_members
            .borrow_mut()
            .insert(key.to_owned(), Rc::clone(&members));
        Ok(members)
    }
}

/// The comparisons the indexes answer.
enum Shape<'q> {
    /// `trait('key')` of a saved USERS audience.
    Membership(&'q str),
    /// A stored trait.
    Trait(&'q str),
    /// `event(name)` counted over `from..=to` (ms).
    Count { name: &'q str, from: i64, to: i64 },
}

fn shape<'q>(
    comparison: &'q Comparison,
    saved: &FxHashMap<String, crate::query::Definition>,
    now_ms: i64,
) -> Option<Shape<'q>> {
    if comparison
        .comparator
        .operand()
        .is_some_and(|operand| !matches!(operand, Scalar::Literal(_)))
    {
        return None;
    }
    match &comparison.subject {
        Scalar::Trait(name) => match saved.get(name) {
            None => Some(Shape::Trait(name)),
            Some(definition) => {
                let users_audience = definition.kind == Kind::Users && matches!(definition.body, Body::Audience(_));
                users_audience.then_some(Shape::Membership(name))
            }
        },
        Scalar::Reduced(reduction) if reduction.reducer == Reducer::Count => {
            let (from, to) = time_window(&reduction.stream.filters, now_ms)?;
            Some(Shape::Count {
                name: &reduction.stream.name,
                from,
                to,
            })
        }
        _ => None,
    }
}

/// `>= 1`, `> 0` and the like: true for every count from 1 up, false at 0.
fn number(scalar: &Scalar) -> Option<f64> {
    match scalar {
        Scalar::Literal(Literal::Integer(n)) => Some(*n as f64),
        Scalar::Literal(Literal::Decimal(x)) => Some(*x),
        _ => None,
    }
}

/// Whether a count's verdict is the same for every count from 255 up (a comparison with a
/// number below that, or whether it exists), so counts may stop at 255.
fn saturates_in_a_byte(comparator: &Comparator) -> bool {
    match comparator {
        Comparator::Exists | Comparator::Absent => true,
        other => other.operand().and_then(number).is_some_and(|x| x < 250.0),
    }
}

fn is_at_least_one(comparator: &Comparator) -> bool {
    let literal = number;
    match comparator {
        Comparator::AtLeast(operand) => literal(operand).is_some_and(|x| x > 0.0 && x <= 1.0),
        Comparator::GreaterThan(operand) => literal(operand).is_some_and(|x| (0.0..1.0).contains(&x)),
        _ => false,
    }
}
