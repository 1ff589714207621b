//! Identifiers carried by an event, as `(type, value)` pairs: the keys of the event index now
//! and the nodes of the identity graph later. Types are lowercase; emails are trimmed and
//! lowercased so that one person's address is one identifier.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// One identifier; `key()` is its storage key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
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

    /// xxh3-128 of `key()`, computed without building the key.
    pub fn hash128(&self) -> u128 {
        hash_parts(&self.kind, &self.value)
    }

    pub fn key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.kind.len() + 1 + self.value.len());
        key.extend_from_slice(self.kind.as_bytes());
        key.push(SEPARATOR);
        key.extend_from_slice(self.value.as_bytes());
        key
    }
}

/// xxh3-128 of an identifier's storage key (`type`, separator, `value`), from its parts.
pub fn hash_parts(kind: &str, value: &str) -> u128 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(kind.as_bytes());
    hasher.update(&[SEPARATOR]);
    hasher.update(value.as_bytes());
    hasher.digest128()
}

/// An identifier's storage key with its 128-bit hash, computed once where the event is prepared
/// (on the caller's thread) so that in-memory maps hash and compare it cheaply.
#[derive(Clone, Debug)]
pub struct IdentKey {
    pub hash: u128,
    pub bytes: Vec<u8>,
}

impl IdentKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            hash: xxhash_rust::xxh3::xxh3_128(&bytes),
            bytes,
        }
    }
}

impl PartialEq for IdentKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.bytes == other.bytes
    }
}

impl Eq for IdentKey {}

impl std::hash::Hash for IdentKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.hash);
    }
}

/// The event's parts that carry identifiers; `traits` and `context` are JSON bytes that have
/// already been validated (only the few fields read here are decoded, borrowing the input).
pub struct IdentifierSources<'a> {
    pub user_id: &'a str,
    pub anonymous_id: &'a str,
    pub group_id: &'a str,
    pub traits: &'a [u8],
    pub context: &'a [u8],
    pub integrations: &'a [u8],
}

#[derive(Deserialize, Default)]
struct TraitIds<'a> {
    #[serde(borrow, default)]
    email: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct ContextIds<'a> {
    #[serde(borrow, default)]
    traits: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "externalIds")]
    external_ids: Option<&'a RawValue>,
    #[serde(borrow, default)]
    device: Option<&'a RawValue>,
    #[serde(borrow, default)]
    integrations: Option<&'a RawValue>,
}

/// `context.device`: mobile device ids, the advertising id and the push token.
#[derive(Deserialize, Default)]
struct DeviceIds<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "advertisingId")]
    advertising_id: Option<Cow<'a, str>>,
    #[serde(default, rename = "adTrackingEnabled")]
    ad_tracking_enabled: Option<bool>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    token: Option<Cow<'a, str>>,
}

/// `integrations["Google Analytics"].clientId`, read as the `ga_client_id` identifier.
#[derive(Deserialize, Default)]
struct IntegrationIds<'a> {
    #[serde(borrow, default, rename = "Google Analytics")]
    google_analytics: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct GoogleAnalytics<'a> {
    #[serde(borrow, default, rename = "clientId")]
    client_id: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ExternalId<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

/// Lenient: a field of an unexpected shape carries no identifier (the event stays valid).
fn lenient<'a, T: Deserialize<'a> + Default>(json: &'a str) -> T {
    serde_json::from_str(json).unwrap_or_default()
}

/// The text of a JSON string or number.
fn scalar_text(raw: &RawValue) -> Option<String> {
    match serde_json::from_str::<Cow<'_, str>>(raw.get()) {
        Ok(text) => Some(text.into_owned()),
        Err(_) => serde_json::from_str::<serde_json::Number>(raw.get())
            .ok()
            .map(|n| n.to_string()),
    }
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

/// Identifier types a workspace reads from named traits or properties (Segment's custom
/// identifiers), e.g. `phone` from `traits.phone`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomIdentifiers {
    /// (type, trait name): read from `traits` (not a group call's) and `context.traits`.
    pub traits: Vec<(String, String)>,
    /// (type, property name): read from `properties`.
    pub properties: Vec<(String, String)>,
}

impl CustomIdentifiers {
    pub fn is_empty(&self) -> bool {
        self.traits.is_empty() && self.properties.is_empty()
    }
}

/// Every identifier on an event (see `extract`), with the workspace's custom types. A group
/// call's traits describe the account (e.g. its billing email), so they carry no identifier of
/// the user.
pub fn of_event(event: &crate::proto::Event, custom: &CustomIdentifiers) -> Vec<Identifier> {
    let is_group = event.r#type == crate::proto::EventType::Group as i32;
    let traits: &[u8] = if is_group { b"" } else { &event.traits };
    let mut found = extract(&IdentifierSources {
        user_id: &event.user_id,
        anonymous_id: &event.anonymous_id,
        group_id: &event.group_id,
        traits,
        context: &event.context,
        integrations: &event.integrations,
    });
    if !custom.is_empty() {
        extract_custom(custom, traits, &event.context, &event.properties, &mut found);
        found.sort();
        found.dedup();
    }
    found
}

/// Appends the custom identifiers found (strings and numbers; other shapes carry none).
fn extract_custom(
    custom: &CustomIdentifiers,
    traits: &[u8],
    context: &[u8],
    properties: &[u8],
    out: &mut Vec<Identifier>,
) {
    type Fields<'a> = std::collections::HashMap<Cow<'a, str>, &'a RawValue>;
    let mut push = |kind: &str, raw: Option<&&RawValue>| {
        if let Some(value) = raw.and_then(|raw| scalar_text(raw)) {
            let identifier = Identifier::new(kind, &value);
            if !identifier.value.is_empty() {
                out.push(identifier);
            }
        }
    };
    if !custom.traits.is_empty() {
        let own: Fields<'_> = lenient(text(traits));
        let context: ContextIds<'_> = lenient(text(context));
        let from_context: Fields<'_> = context.traits.map(|raw| lenient(raw.get())).unwrap_or_default();
        for (kind, name) in &custom.traits {
            for fields in [&own, &from_context] {
                push(kind, fields.get(name.as_str()));
            }
        }
    }
    if !custom.properties.is_empty() {
        let fields: Fields<'_> = lenient(text(properties));
        for (kind, name) in &custom.properties {
            push(kind, fields.get(name.as_str()));
        }
    }
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
    let context: ContextIds<'_> = lenient(text(src.context));
    let traits: TraitIds<'_> = lenient(text(src.traits));
    let context_traits: TraitIds<'_> = context.traits.map(|raw| lenient(raw.get())).unwrap_or_default();
    for email in [traits.email, context_traits.email].into_iter().flatten() {
        if let Ok(email) = serde_json::from_str::<Cow<'_, str>>(email.get()) {
            push("email", &email);
        }
    }
    let device: DeviceIds<'_> = context.device.map(|raw| lenient(raw.get())).unwrap_or_default();
    let platform = device.kind.as_deref().map(str::to_ascii_lowercase);
    if let Some(platform @ ("ios" | "android")) = platform.as_deref() {
        if let Some(id) = &device.id {
            push(&format!("{platform}.id"), id);
        }
        if let (Some(idfa), Some(true)) = (&device.advertising_id, device.ad_tracking_enabled) {
            push(&format!("{platform}.idfa"), idfa);
        }
        if let Some(token) = &device.token {
            push(&format!("{platform}.push_token"), token);
        }
    }
    for integrations in [Some(text(src.integrations)), context.integrations.map(RawValue::get)]
        .into_iter()
        .flatten()
    {
        let integrations: IntegrationIds<'_> = lenient(integrations);
        let ga: GoogleAnalytics<'_> = integrations
            .google_analytics
            .map(|raw| lenient(raw.get()))
            .unwrap_or_default();
        if let Some(client_id) = ga.client_id.and_then(scalar_text) {
            push("ga_client_id", &client_id);
        }
    }
    let external: Vec<&RawValue> = context.external_ids.map(|raw| lenient(raw.get())).unwrap_or_default();
    let entries = external
        .into_iter()
        .filter_map(|raw| serde_json::from_str::<ExternalId<'_>>(raw.get()).ok());
    for entry in entries {
        let value = entry.id.and_then(scalar_text);
        if let (Some(kind), Some(value)) = (entry.kind, value) {
            if !kind.trim().is_empty() {
                push(&kind, &value);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_ids_emails_and_external_ids() {
        let traits = br#"{"email": "  Ann@Example.COM ", "name": {"first": "Ann"}}"#;
        let context = br#"{
            "traits": {"email": "ann@example.com"},
            "externalIds": [{"id": "c-9", "type": "Stripe_Customer", "collection": "users"}, {"id": 7, "type": "crm"}, 5]
        }"#;
        let ids = extract(&IdentifierSources {
            user_id: "u1",
            anonymous_id: "",
            group_id: "",
            traits,
            context,
            integrations: b"",
        });
        let pairs: Vec<_> = ids.iter().map(|i| (i.kind.as_str(), i.value.as_str())).collect();
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
    fn device_ids_follow_the_platform_and_ad_tracking_consent() {
        let ids = |context: &[u8], integrations: &[u8]| {
            let src = IdentifierSources {
                user_id: "",
                anonymous_id: "",
                group_id: "",
                traits: b"",
                context,
                integrations,
            };
            extract(&src)
                .into_iter()
                .map(|i| format!("{}:{}", i.kind, i.value))
                .collect::<Vec<_>>()
        };
        let ios = br#"{"device": {"type": "ios", "id": "D1", "advertisingId": "A1", "adTrackingEnabled": true, "token": "T1"}}"#;
        assert_eq!(ids(ios, b""), vec!["ios.id:D1", "ios.idfa:A1", "ios.push_token:T1"]);
        let no_ads =
            br#"{"device": {"type": "Android", "id": "D2", "advertisingId": "A2", "adTrackingEnabled": false}}"#;
        assert_eq!(ids(no_ads, b""), vec!["android.id:D2"]);
        let other =
            br#"{"device": {"type": "tv", "id": "D3"}, "integrations": {"Google Analytics": {"clientId": "c.1"}}}"#;
        assert_eq!(ids(other, b""), vec!["ga_client_id:c.1"]);
        assert_eq!(
            ids(b"", br#"{"Google Analytics": {"clientId": 42}, "All": true}"#),
            vec!["ga_client_id:42"]
        );
    }

    #[test]
    fn odd_shapes_carry_no_identifier() {
        for (traits, context) in [
            (&br#"{"email": 5}"#[..], &br#"{"externalIds": {"id": "x"}}"#[..]),
            (
                b"",
                br#"{"traits": [1], "externalIds": [{"id": null, "type": "crm"}, {"id": "1"}]}"#,
            ),
        ] {
            let src = IdentifierSources {
                user_id: "",
                anonymous_id: "a",
                group_id: "",
                traits,
                context,
                integrations: b"[]",
            };
            assert_eq!(extract(&src), vec![Identifier::new("anonymous_id", "a")]);
        }
    }

    #[test]
    fn hash128_is_the_hash_of_the_key() {
        let identifier = Identifier::new("email", "Ann@x.com");
        assert_eq!(identifier.hash128(), IdentKey::new(identifier.key()).hash);
    }

    #[test]
    fn parse_requires_type_and_value() {
        assert_eq!(Identifier::parse("user_id:a:b").unwrap().value, "a:b");
        assert!(Identifier::parse("user_id:").is_none());
        assert!(Identifier::parse("nocolon").is_none());
    }

    #[test]
    fn custom_types_are_read_from_named_traits_and_properties() {
        let custom = CustomIdentifiers {
            traits: vec![("phone".into(), "phone".into())],
            properties: vec![("order_ref".into(), "ref".into())],
        };
        let event = crate::proto::Event {
            r#type: crate::proto::EventType::Identify as i32,
            user_id: "u1".into(),
            traits: br#"{"phone": "+31 6 1234", "email": "A@x.com"}"#.to_vec(),
            context: br#"{"traits": {"phone": 316}}"#.to_vec(),
            properties: br#"{"ref": {"nested": 1}}"#.to_vec(),
            ..Default::default()
        };
        let found = of_event(&event, &custom);
        assert_eq!(
            found,
            vec![
                Identifier::new("email", "a@x.com"),
                Identifier::new("phone", "+31 6 1234"),
                Identifier::new("phone", "316"),
                Identifier::new("user_id", "u1"),
            ]
        );
        let group = crate::proto::Event {
            r#type: crate::proto::EventType::Group as i32,
            group_id: "g".into(),
            traits: br#"{"phone": "1"}"#.to_vec(),
            properties: br#"{"ref": "R-1"}"#.to_vec(),
            ..Default::default()
        };
        let found = of_event(&group, &custom);
        assert_eq!(
            found,
            vec![Identifier::new("group_id", "g"), Identifier::new("order_ref", "R-1")]
        );
        assert_eq!(of_event(&group, &CustomIdentifiers::default()).len(), 1);
    }
}
