//! Personal data in events (Segment's Privacy Portal): each leaf value of an event's properties,
//! traits and context is classified — email, phone, credit card (Luhn), IP address, a name-like
//! key, or a custom pattern — for the inventory (`inventory.rs`), and a source may hash
//! (SHA-256, as Segment does for matching) or drop a class before its events are stored.

use regex::Regex;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::proto::{PiiAction, PiiPattern};

/// The built-in classes, by name.
pub const BUILT_IN: [&str; 5] = ["email", "phone", "credit_card", "ip", "name"];

/// Most custom patterns a workspace may have.
pub const MAX_PATTERNS: usize = 100;

/// A class: one of `BUILT_IN`, or a custom pattern by its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Email,
    Phone,
    CreditCard,
    Ip,
    Name,
    Custom(usize),
}

struct Custom {
    name: String,
    value: Option<Regex>,
    key: Option<Regex>,
}

/// Classifies leaf values; holds the workspace's custom patterns, compiled.
#[derive(Default)]
pub struct Classifier {
    custom: Vec<Custom>,
}

impl Classifier {
    /// Compiles the custom patterns; the error names the pattern at fault.
    pub fn new(patterns: &[PiiPattern]) -> Result<Self, String> {
        if patterns.len() > MAX_PATTERNS {
            return Err(format!("{} patterns; the limit is {MAX_PATTERNS}", patterns.len()));
        }
        let mut custom = Vec::with_capacity(patterns.len());
        for (i, pattern) in patterns.iter().enumerate() {
            let name = pattern.name.trim();
            let fine = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !fine {
                return Err(format!(
                    "patterns[{i}].name: {name:?} must be 1 to 64 letters, digits, '_' or '-'"
                ));
            }
            if BUILT_IN.contains(&name) || custom.iter().any(|c: &Custom| c.name == name) {
                return Err(format!("patterns[{i}].name: {name:?} is taken"));
            }
            let compile = |text: &str, field: &str| -> Result<Option<Regex>, String> {
                if text.is_empty() {
                    return Ok(None);
                }
                regex::RegexBuilder::new(text)
                    .size_limit(1 << 20)
                    .build()
                    .map(Some)
                    .map_err(|e| format!("patterns[{i}].{field}: {e}"))
            };
            let value = compile(&pattern.value_pattern, "value_pattern")?;
            let key = compile(&pattern.key_pattern, "key_pattern")?;
            if value.is_none() && key.is_none() {
                return Err(format!("patterns[{i}]: give a value_pattern, a key_pattern or both"));
            }
            custom.push(Custom {
                name: name.to_owned(),
                value,
                key,
            });
        }
        Ok(Self { custom })
    }

    pub fn name(&self, class: Class) -> &str {
        match class {
            Class::Email => "email",
            Class::Phone => "phone",
            Class::CreditCard => "credit_card",
            Class::Ip => "ip",
            Class::Name => "name",
            Class::Custom(i) => &self.custom[i].name,
        }
    }

    /// The class called `name`, if there is one.
    pub fn class_named(&self, name: &str) -> Option<Class> {
        match name {
            "email" => Some(Class::Email),
            "phone" => Some(Class::Phone),
            "credit_card" => Some(Class::CreditCard),
            "ip" => Some(Class::Ip),
            "name" => Some(Class::Name),
            other => self.custom.iter().position(|c| c.name == other).map(Class::Custom),
        }
    }

    /// The class of a leaf `value` under `key` (custom patterns first), if any.
    pub fn classify(&self, key: &str, value: &Value) -> Option<Class> {
        let text = match value {
            Value::String(text) => text.as_str(),
            // A card number sent as a JSON number.
            Value::Number(n) => {
                return n
                    .as_u64()
                    .filter(|n| is_card_number(&n.to_string()))
                    .map(|_| Class::CreditCard)
            }
            _ => return None,
        };
        for (i, custom) in self.custom.iter().enumerate() {
            let key_ok = custom.key.as_ref().is_none_or(|re| re.is_match(key));
            let value_ok = custom.value.as_ref().is_none_or(|re| re.is_match(text));
            if key_ok && value_ok {
                return Some(Class::Custom(i));
            }
        }
        if is_card_number(text) {
            Some(Class::CreditCard)
        } else if is_email(text) {
            Some(Class::Email)
        } else if is_phone(key, text) {
            Some(Class::Phone)
        } else if text.len() <= 45 && text.parse::<std::net::IpAddr>().is_ok() {
            Some(Class::Ip)
        } else if is_name_key(key) && !text.is_empty() {
            Some(Class::Name)
        } else {
            None
        }
    }
}

fn is_email(text: &str) -> bool {
    let text = text.trim();
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    text.len() <= 254
        && !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
}

/// 13 to 19 digits (spaces and dashes between them allowed) passing the Luhn check.
fn is_card_number(text: &str) -> bool {
    let mut digits = Vec::with_capacity(19);
    for c in text.chars() {
        match c {
            '0'..='9' => digits.push(c as u8 - b'0'),
            ' ' | '-' => {}
            _ => return false,
        }
        if digits.len() > 19 {
            return false;
        }
    }
    if digits.len() < 13 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A phone number: an international one (`+` and 8 to 15 digits), or 7 to 15 digits under a
/// phone-like key; separators ` -().` allowed.
fn is_phone(key: &str, text: &str) -> bool {
    let (international, rest) = match text.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut digits = 0;
    for c in rest.chars() {
        match c {
            '0'..='9' => digits += 1,
            ' ' | '-' | '(' | ')' | '.' => {}
            _ => return false,
        }
    }
    if international {
        (8..=15).contains(&digits)
    } else {
        let key = normalized_key(key);
        (7..=15).contains(&digits) && (key.contains("phone") || key.contains("mobile") || key == "tel")
    }
}

fn normalized_key(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn is_name_key(key: &str) -> bool {
    matches!(
        normalized_key(key).as_str(),
        "name"
            | "firstname"
            | "lastname"
            | "fullname"
            | "givenname"
            | "familyname"
            | "surname"
            | "middlename"
            | "username"
    )
}

/// Calls `leaf(path, key, value)` for every leaf of `map`; the path is dotted from `prefix`, array
/// items as `$`.
pub fn walk(map: &Map<String, Value>, prefix: &str, leaf: &mut impl FnMut(&str, &str, &Value)) {
    let mut path = prefix.to_owned();
    walk_map(map, &mut path, leaf);
}

fn walk_map(map: &Map<String, Value>, path: &mut String, leaf: &mut impl FnMut(&str, &str, &Value)) {
    for (key, value) in map {
        let before = path.len();
        path.push('.');
        path.push_str(key);
        walk_value(value, key, path, leaf);
        path.truncate(before);
    }
}

fn walk_value(value: &Value, key: &str, path: &mut String, leaf: &mut impl FnMut(&str, &str, &Value)) {
    match value {
        Value::Object(map) => walk_map(map, path, leaf),
        Value::Array(items) => {
            let before = path.len();
            path.push_str(".$");
            for item in items {
                walk_value(item, key, path, leaf);
            }
            path.truncate(before);
        }
        other => leaf(path, key, other),
    }
}

/// Hashes or drops, in place, the leaves of `map` whose class has an action in `rules`; true when
/// something changed.
pub fn redact(map: &mut Map<String, Value>, classifier: &Classifier, rules: &[(Class, PiiAction)]) -> bool {
    let mut changed = false;
    map.retain(
        |key, value| match redact_value(key, value, classifier, rules, &mut changed) {
            Some(PiiAction::Drop) => {
                changed = true;
                false
            }
            _ => true,
        },
    );
    changed
}

/// The action to take on a leaf itself (containers are redacted inside).
fn redact_value(
    key: &str,
    value: &mut Value,
    classifier: &Classifier,
    rules: &[(Class, PiiAction)],
    changed: &mut bool,
) -> Option<PiiAction> {
    match value {
        Value::Object(map) => {
            *changed |= redact(map, classifier, rules);
            None
        }
        Value::Array(items) => {
            let before = items.len();
            let mut i = 0;
            items.retain_mut(|item| {
                i += 1;
                redact_value(key, item, classifier, rules, changed) != Some(PiiAction::Drop)
            });
            *changed |= items.len() != before;
            None
        }
        leaf => {
            let class = classifier.classify(key, leaf)?;
            let action = rules.iter().find(|(c, _)| *c == class).map(|(_, action)| *action)?;
            if action == PiiAction::Hash {
                *leaf = Value::String(hashed(class, leaf));
                *changed = true;
            }
            Some(action)
        }
    }
}

/// SHA-256 in hex of the value, normalised as Segment does for matching: emails trimmed and
/// lower-cased, phone numbers and card numbers reduced to their digits (and a leading `+`).
pub fn hashed(class: Class, value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let normal = match class {
        Class::Email => text.trim().to_lowercase(),
        Class::Phone | Class::CreditCard => text.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect(),
        _ => text,
    };
    let digest = Sha256::digest(normal.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn class_of(key: &str, value: Value) -> Option<String> {
        let classifier = Classifier::new(&[PiiPattern {
            name: "employee_id".into(),
            value_pattern: "^EMP-[0-9]{5}$".into(),
            key_pattern: String::new(),
        }])
        .unwrap();
        classifier.classify(key, &value).map(|c| classifier.name(c).to_owned())
    }

    #[test]
    fn values_are_classified_by_pattern_and_key() {
        let cases = [
            ("contact", json!("Ann.Lee@example.com"), Some("email")),
            ("contact", json!("not an@address"), None),
            ("card", json!("4111 1111 1111 1111"), Some("credit_card")),
            ("card", json!(4111111111111111u64), Some("credit_card")),
            ("card", json!("4111 1111 1111 1112"), None),
            ("order_id", json!("1234567890123"), None),
            ("anything", json!("+1 (415) 555-0100"), Some("phone")),
            ("phone_number", json!("415 555 0100"), Some("phone")),
            ("count", json!("415 555 0100"), None),
            ("ip", json!("192.168.1.20"), Some("ip")),
            ("addr", json!("2001:db8::1"), Some("ip")),
            ("version", json!("1.2.3"), None),
            ("first_name", json!("Ann"), Some("name")),
            ("lastName", json!("Lee"), Some("name")),
            ("title", json!("Ann"), None),
            ("who", json!("EMP-12345"), Some("employee_id")),
            ("flag", json!(true), None),
        ];
        for (key, value, expected) in cases {
            assert_eq!(class_of(key, value.clone()).as_deref(), expected, "{key}: {value}");
        }
    }

    #[test]
    fn bad_patterns_are_refused_naming_the_pattern() {
        let pattern = |name: &str, value: &str| PiiPattern {
            name: name.into(),
            value_pattern: value.into(),
            key_pattern: String::new(),
        };
        assert!(Classifier::new(&[pattern("x", "(")])
            .err()
            .unwrap()
            .starts_with("patterns[0].value_pattern"));
        assert!(Classifier::new(&[pattern("email", "a")])
            .err()
            .unwrap()
            .contains("taken"));
        assert!(Classifier::new(&[pattern("a b", "a")])
            .err()
            .unwrap()
            .contains("patterns[0].name"));
        assert!(Classifier::new(&[pattern("x", "")]).is_err());
    }

    #[test]
    fn redaction_hashes_and_drops_deep_leaves_and_paths_name_them() {
        let classifier = Classifier::default();
        let mut map = json!({
            "email": " Ann@Example.com ",
            "billing": {"card": "4111-1111-1111-1111", "city": "Oslo"},
            "ips": ["10.0.0.1", "x"],
            "n": 3
        })
        .as_object()
        .unwrap()
        .clone();
        let mut seen = Vec::new();
        walk(&map, "properties", &mut |path, key, value| {
            seen.push((
                path.to_owned(),
                classifier.classify(key, value).map(|c| classifier.name(c).to_owned()),
            ));
        });
        seen.sort();
        assert_eq!(seen[0], ("properties.billing.card".into(), Some("credit_card".into())));
        assert!(seen.contains(&("properties.ips.$".into(), Some("ip".into()))));
        let rules = [
            (Class::Email, PiiAction::Hash),
            (Class::CreditCard, PiiAction::Drop),
            (Class::Ip, PiiAction::Drop),
        ];
        assert!(redact(&mut map, &classifier, &rules));
        let expected_hash = hashed(Class::Email, &json!("ann@example.com"));
        assert_eq!(expected_hash.len(), 64);
        assert_eq!(
            Value::Object(map),
            json!({"email": expected_hash, "billing": {"city": "Oslo"}, "ips": ["x"], "n": 3})
        );
    }
}
