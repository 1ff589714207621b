//! Identifiers carried by an event, as `(type, value)` pairs: the keys of the event index now
//! and the nodes of the identity graph later. Types are lowercase; emails are trimmed and
//! lowercased so that one person's address is one identifier.

use serde_json::{Map, Value};

/// One identifier; `key()` is its storage key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier {
    pub kind: String,
    pub value: String,
}

/// Separates type from value in a storage key (cannot appear in a type name).
const SEPARATOR: u8 = 0x1f;

impl Identifier {
    pub fn new(kind: &str, value: &str) -> Self {
        let kind = kind.trim().to_ascii_lowercase();
        let value = if kind == "email" {
            value.trim().to_lowercase()
        } else {
            value.to_owned()
        };
        Self { kind, value }
    }

    /// Parses the user-facing `type:value` form.
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, value) = text.split_once(':')?;
        (!kind.trim().is_empty() && !value.is_empty()).then(|| Self::new(kind, value))
    }

    pub fn key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.kind.len() + 1 + self.value.len());
        key.extend_from_slice(self.kind.as_bytes());
        key.push(SEPARATOR);
        key.extend_from_slice(self.value.as_bytes());
        key
    }
}

/// The event's parts that carry identifiers.
pub struct IdentifierSources<'a> {
    pub user_id: &'a str,
    pub anonymous_id: &'a str,
    pub group_id: &'a str,
    pub traits: Option<&'a Map<String, Value>>,
    pub context: Option<&'a Map<String, Value>>,
}

/// Every identifier on an event, deduplicated, in a stable order.
pub fn extract(src: &IdentifierSources<'_>) -> Vec<Identifier> {
    let mut out = Vec::with_capacity(4);
    let mut push = |kind: &str, value: &str| {
        if !value.is_empty() {
            out.push(Identifier::new(kind, value));
        }
    };
    push("user_id", src.user_id);
    push("anonymous_id", src.anonymous_id);
    push("group_id", src.group_id);
    let context_traits = src
        .context
        .and_then(|c| c.get("traits"))
        .and_then(Value::as_object);
    for traits in [src.traits, context_traits].into_iter().flatten() {
        if let Some(email) = traits.get("email").and_then(Value::as_str) {
            push("email", email);
        }
    }
    if let Some(external) = src
        .context
        .and_then(|c| c.get("externalIds"))
        .and_then(Value::as_array)
    {
        for entry in external.iter().filter_map(Value::as_object) {
            let kind = entry.get("type").and_then(Value::as_str).unwrap_or("");
            let value = entry.get("id").and_then(scalar_text);
            if let (false, Some(value)) = (kind.trim().is_empty(), value) {
                push(kind, &value);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_ids_emails_and_external_ids() {
        let traits = json!({"email": "  Ann@Example.COM "});
        let context = json!({
            "traits": {"email": "ann@example.com"},
            "externalIds": [{"id": "c-9", "type": "Stripe_Customer", "collection": "users"}, {"id": 7, "type": "crm"}]
        });
        let ids = extract(&IdentifierSources {
            user_id: "u1",
            anonymous_id: "",
            group_id: "",
            traits: traits.as_object(),
            context: context.as_object(),
        });
        let pairs: Vec<_> = ids
            .iter()
            .map(|i| (i.kind.as_str(), i.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("crm", "7"),
                ("email", "ann@example.com"),
                ("stripe_customer", "c-9"),
                ("user_id", "u1")
            ]
        );
    }

    #[test]
    fn parse_requires_type_and_value() {
        assert_eq!(Identifier::parse("user_id:a:b").unwrap().value, "a:b");
        assert!(Identifier::parse("user_id:").is_none());
        assert!(Identifier::parse("nocolon").is_none());
    }
}
