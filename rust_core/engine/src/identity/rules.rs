//! Identity resolution rules per identifier type (Segment's "Identity Resolution settings"):
//! blocked values, a limit of values per profile (optionally within a sliding window) and a
//! priority. Defaults follow Segment: `user_id` limit 1, every other type 5; priority `user_id`,
//! then `email`, then the other types alphabetically; blocked `^[0-]*$`, `-1`, `null`,
//! `anonymous`, `undefined` and the empty value.

use std::collections::HashMap;
use std::time::Duration;

use regex::RegexSet;
use rustc_hash::FxHashMap;

use crate::identifiers::Identifier;

/// The period a limit counts values over (a sliding window ending now).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitWindow {
    Ever,
    Weekly,
    Monthly,
    Annually,
}

impl LimitWindow {
    /// The window's length; `None` for `Ever`.
    pub fn length(self) -> Option<Duration> {
        const DAY: u64 = 24 * 3600;
        match self {
            LimitWindow::Ever => None,
            LimitWindow::Weekly => Some(Duration::from_secs(7 * DAY)),
            LimitWindow::Monthly => Some(Duration::from_secs(30 * DAY)),
            LimitWindow::Annually => Some(Duration::from_secs(365 * DAY)),
        }
    }
}

/// How many values of a type one profile may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub values: u32,
    pub window: LimitWindow,
}

/// The rule of one identifier type; `None` fields fall back to the defaults.
#[derive(Clone, Debug, Default)]
pub struct TypeRule {
    pub limit: Option<Limit>,
    /// Lower is more important; types without one sort after those with one, alphabetically.
    pub priority: Option<u32>,
    pub blocked_values: Vec<String>,
    pub blocked_patterns: Vec<String>,
}

/// A rule that could not be used, naming the type and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct RuleError(pub String);

/// Values no identifier type links on, unless a type's own rule says otherwise.
const DEFAULT_BLOCKED_VALUES: [&str; 5] = ["-1", "null", "anonymous", "undefined", ""];
const DEFAULT_BLOCKED_PATTERNS: [&str; 1] = ["^[0-]*$"];
pub const DEFAULT_LIMIT: u32 = 5;

#[derive(Clone)]
struct CompiledRule {
    limit: Limit,
    priority: Option<u32>,
    blocked_values: Vec<String>,
    blocked_patterns: RegexSet,
}

/// The compiled rules of a workspace.
#[derive(Clone)]
pub struct IdentityRules {
    types: FxHashMap<String, CompiledRule>,
    default: CompiledRule,
}

impl IdentityRules {
    /// Builds the rules; every pattern must compile and every limit be at least 1.
    pub fn new(rules: HashMap<String, TypeRule>) -> Result<Self, RuleError> {
        let default = compile(
            "*",
            &TypeRule::default(),
            Limit {
                values: DEFAULT_LIMIT,
                window: LimitWindow::Ever,
            },
        )?;
        let mut types = FxHashMap::default();
        for (kind, rule) in rules {
            let kind = kind.trim().to_ascii_lowercase();
            let fallback = Limit {
                values: if kind == "user_id" { 1 } else { DEFAULT_LIMIT },
                window: LimitWindow::Ever,
            };
            types.insert(kind.clone(), compile(&kind, &rule, fallback)?);
        }
        for (kind, priority) in [("user_id", 1), ("email", 2)] {
            types.entry(kind.to_owned()).or_insert_with(|| CompiledRule {
                limit: Limit {
                    values: if kind == "user_id" { 1 } else { DEFAULT_LIMIT },
                    window: LimitWindow::Ever,
                },
                priority: Some(priority),
                blocked_values: default_values(),
                blocked_patterns: default_patterns(),
            });
        }
        Ok(Self { types, default })
    }

    fn rule(&self, kind: &str) -> &CompiledRule {
        self.types.get(kind).unwrap_or(&self.default)
    }

    /// True when the identifier must never link (it still stays in the event's payload).
    pub fn is_blocked(&self, identifier: &Identifier) -> bool {
        let rule = self.rule(&identifier.kind);
        let value = identifier.value.trim();
        rule.blocked_values
            .iter()
            .any(|blocked| blocked.eq_ignore_ascii_case(value))
            || rule.blocked_patterns.is_match(value)
    }

    /// True when any type's limit counts values over a sliding window (decisions then depend on
    /// "last seen" times, so fewer shortcuts are exact).
    pub fn has_windows(&self) -> bool {
        self.types
            .values()
            .chain([&self.default])
            .any(|rule| rule.limit.window.length().is_some())
    }

    pub fn limit(&self, kind: &str) -> Limit {
        self.rule(kind).limit
    }

    /// A sort key: identifiers that sort first are kept longest when limits force a choice.
    pub fn priority_key<'a>(&self, kind: &'a str) -> (u32, &'a str) {
        (self.rule(kind).priority.unwrap_or(u32::MAX), kind)
    }
}

impl Default for IdentityRules {
    fn default() -> Self {
        Self::new(HashMap::new()).expect("the default rules compile")
    }
}

fn default_values() -> Vec<String> {
    DEFAULT_BLOCKED_VALUES.iter().map(|v| (*v).to_owned()).collect()
}

fn default_patterns() -> RegexSet {
    RegexSet::new(DEFAULT_BLOCKED_PATTERNS).expect("the default patterns compile")
}

fn compile(kind: &str, rule: &TypeRule, fallback: Limit) -> Result<CompiledRule, RuleError> {
    let limit = rule.limit.unwrap_or(fallback);
    if limit.values == 0 {
        return Err(RuleError(format!("{kind}: limit must be at least 1")));
    }
    let mut values = default_values();
    values.extend(rule.blocked_values.iter().map(|v| v.trim().to_owned()));
    let patterns = DEFAULT_BLOCKED_PATTERNS
        .iter()
        .map(|p| (*p).to_owned())
        .chain(rule.blocked_patterns.iter().cloned());
    let blocked_patterns =
        RegexSet::new(patterns).map_err(|e| RuleError(format!("{kind}: a blocked pattern does not compile: {e}")))?;
    Ok(CompiledRule {
        limit,
        priority: rule.priority,
        blocked_values: values,
        blocked_patterns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, value: &str) -> Identifier {
        Identifier::new(kind, value)
    }

    #[test]
    fn segment_defaults() {
        let rules = IdentityRules::default();
        for value in ["0", "000-000", "-1", "NULL", "anonymous", "undefined", " ", "---"] {
            assert!(rules.is_blocked(&id("anonymous_id", value)), "{value:?}");
        }
        for value in ["a0", "10", "user-1"] {
            assert!(!rules.is_blocked(&id("user_id", value)), "{value:?}");
        }
        assert_eq!(
            rules.limit("user_id"),
            Limit {
                values: 1,
                window: LimitWindow::Ever
            }
        );
        assert_eq!(rules.limit("anonymous_id").values, 5);
        let mut kinds = vec!["anonymous_id", "email", "android.id", "user_id", "ga_client_id"];
        kinds.sort_by_key(|kind| rules.priority_key(kind));
        assert_eq!(
            kinds,
            vec!["user_id", "email", "android.id", "anonymous_id", "ga_client_id"]
        );
    }

    #[test]
    fn configured_rules_add_to_the_defaults() {
        let rule = TypeRule {
            limit: Some(Limit {
                values: 2,
                window: LimitWindow::Weekly,
            }),
            priority: Some(3),
            blocked_values: vec!["team@company.com".into()],
            blocked_patterns: vec!["@example\\.com$".into()],
        };
        let rules = IdentityRules::new(HashMap::from([("Email".to_owned(), rule)])).unwrap();
        assert!(rules.is_blocked(&id("email", "Team@Company.com")));
        assert!(rules.is_blocked(&id("email", "x@example.com")));
        assert!(rules.is_blocked(&id("email", "null")));
        assert!(!rules.is_blocked(&id("email", "ann@acme.io")));
        assert_eq!(
            rules.limit("email"),
            Limit {
                values: 2,
                window: LimitWindow::Weekly
            }
        );
        assert_eq!(LimitWindow::Weekly.length(), Some(Duration::from_secs(604_800)));
    }

    #[test]
    fn bad_rules_are_named() {
        let zero = TypeRule {
            limit: Some(Limit {
                values: 0,
                window: LimitWindow::Ever,
            }),
            ..TypeRule::default()
        };
        let err = IdentityRules::new(HashMap::from([("crm".to_owned(), zero)]))
            .err()
            .unwrap();
        assert!(err.0.starts_with("crm: limit"), "{err:?}");
        let bad = TypeRule {
            blocked_patterns: vec!["(".into()],
            ..TypeRule::default()
        };
        let err = IdentityRules::new(HashMap::from([("crm".to_owned(), bad)]))
            .err()
            .unwrap();
        assert!(err.0.starts_with("crm: a blocked pattern"), "{err:?}");
    }
}
