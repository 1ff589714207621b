//! A Tracking API request's write key, as Segment takes it: HTTP Basic with the key as the user
//! name (`base64("<writeKey>:")`; the colon may be missing), or `writeKey` in the JSON body.

use std::borrow::Cow;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The write key of a `Basic …` authorization header; `Err` names what is wrong with it.
pub fn key_from_header(header: &str) -> Result<String, &'static str> {
    let (scheme, encoded) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if !scheme.eq_ignore_ascii_case("basic") || encoded.trim().is_empty() {
        return Err("malformed Authorization: expected 'Basic base64(<write key>:)'");
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or("malformed Authorization: not base64 of '<write key>:'")?;
    let key = decoded.split(':').next().unwrap_or_default();
    if key.is_empty() {
        return Err("malformed Authorization: the write key is empty");
    }
    Ok(key.to_owned())
}

/// The `writeKey` field of a JSON body's top-level object, if it has one. (A body that is not
/// an object, or not JSON, has none: the JSON entry point reports what is wrong with it.)
pub fn key_from_body(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "writeKey", borrow, default)]
        write_key: Option<Cow<'a, str>>,
    }
    let envelope: Envelope<'_> = serde_json::from_slice(body).ok()?;
    envelope.write_key.map(Cow::into_owned).filter(|key| !key.is_empty())
}

/// The digest sources' write keys are stored under (as the gRPC side computes it).
pub fn digest(write_key: &str) -> [u8; 32] {
    Sha256::digest(write_key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_basic_auth_with_or_without_the_colon_or_from_the_body() {
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        assert_eq!(key_from_header(&format!("Basic {}", encode("wk:"))).unwrap(), "wk");
        assert_eq!(key_from_header(&format!("basic {}", encode("wk"))).unwrap(), "wk");
        assert!(key_from_header("Bearer x").is_err());
        assert!(key_from_header("Basic !!!").is_err());
        assert!(key_from_header(&format!("Basic {}", encode(":"))).is_err());
        assert_eq!(key_from_body(br#"{"writeKey":"wk","batch":[]}"#).as_deref(), Some("wk"));
        assert_eq!(key_from_body(br#"{"batch":[]}"#), None);
        assert_eq!(key_from_body(b"not json"), None);
        assert_eq!(digest("a"), <[u8; 32]>::from(Sha256::digest(b"a")));
    }

    proptest::proptest! {
        /// Any header text: a key or the reason, never a panic; a key never contains ':'.
        #[test]
        fn any_authorization_header_gives_a_key_or_a_reason(header in "\\PC{0,60}|(?i:basic) [A-Za-z0-9+/=]{0,40}") {
            if let Ok(key) = key_from_header(&header) {
                proptest::prop_assert!(!key.is_empty() && !key.contains(':'));
            }
        }

        /// Every key without ':' comes back from its Basic header, with or without the colon.
        #[test]
        fn a_basic_header_round_trips_its_key(key in "[^:\\x00]{1,40}", colon in proptest::bool::ANY) {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}{}", if colon { ":" } else { "" }));
            proptest::prop_assert_eq!(key_from_header(&format!("Basic {encoded}")), Ok(key));
        }

        #[test]
        fn any_body_gives_its_write_key_or_none(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Some(key) = key_from_body(&body) {
                proptest::prop_assert!(!key.is_empty());
            }
        }
    }
}
