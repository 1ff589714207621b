//! Admin decisions that keep identifiers apart: `SplitProfile` separates two identifiers and
//! `RemoveIdentifier` isolates one from every other. They act as one more rule in flat matching
//! (a union that would break one is refused, like a limit), so replaying a cluster with them in
//! force rebuilds it from the links that remain.

use rustc_hash::{FxHashMap, FxHashSet};

/// Identifiers by `Identifier::hash128`.
#[derive(Clone, Debug, Default)]
pub struct Separations {
    pairs: FxHashMap<u128, Vec<u128>>,
    isolated: FxHashSet<u128>,
}

impl Separations {
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty() && self.isolated.is_empty()
    }

    /// `a` and `b` may never share a profile.
    pub fn separate(&mut self, a: u128, b: u128) {
        for (from, to) in [(a, b), (b, a)] {
            let partners = self.pairs.entry(from).or_default();
            if !partners.contains(&to) {
                partners.push(to);
            }
        }
    }

    /// `identifier` may only be in a profile of its own.
    pub fn isolate(&mut self, identifier: u128) {
        self.isolated.insert(identifier);
    }

    /// True when one profile may hold all of `members`.
    pub fn allows(&self, members: &FxHashSet<u128>) -> bool {
        if members.len() > 1 && members.iter().any(|m| self.isolated.contains(m)) {
            return false;
        }
        !members.iter().any(|m| {
            self.pairs
                .get(m)
                .is_some_and(|partners| partners.iter().any(|p| members.contains(p)))
        })
    }

    /// True when `member` takes part in a separation that one profile holding `members` (which
    /// include it) would break.
    pub fn breaks(&self, member: u128, members: &FxHashSet<u128>) -> bool {
        (members.len() > 1 && self.isolated.contains(&member))
            || self
                .pairs
                .get(&member)
                .is_some_and(|partners| partners.iter().any(|p| members.contains(p)))
    }

    /// True when the identifier takes part in any separation.
    pub fn involves(&self, identifier: u128) -> bool {
        self.isolated.contains(&identifier) || self.pairs.contains_key(&identifier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[u128]) -> FxHashSet<u128> {
        items.iter().copied().collect()
    }

    #[test]
    fn pairs_and_isolation() {
        let mut s = Separations::default();
        assert!(s.is_empty() && s.allows(&set(&[1, 2, 3])));
        s.separate(1, 2);
        assert!(!s.allows(&set(&[2, 3, 1])));
        assert!(s.allows(&set(&[1, 3])) && s.allows(&set(&[2, 3])));
        s.isolate(4);
        assert!(s.allows(&set(&[4])));
        assert!(!s.allows(&set(&[4, 3])));
        assert!(s.involves(1) && s.involves(4) && !s.involves(3));
        let together = set(&[1, 2, 3, 4]);
        assert!(s.breaks(1, &together) && s.breaks(2, &together) && s.breaks(4, &together));
        assert!(!s.breaks(3, &together) && !s.breaks(4, &set(&[4])));
    }
}
