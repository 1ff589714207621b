//! Standard Webhooks signatures (standardwebhooks.com), as a webhook source checks them: the
//! tool signs `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 under the shared secret
//! (`whsec_` + base64) and sends `webhook-signature: v1,<base64>` (several, space-separated,
//! during a rotation). A timestamp more than five minutes from now is refused, so a captured
//! request cannot be replayed later.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far `webhook-timestamp` may be from now, either way (the specification's default).
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The secret's key bytes: base64 after the `whsec_` prefix (which is optional).
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .filter(|key| !key.is_empty())
}

/// The three headers of a signed request.
pub struct Signed<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub signatures: &'a str,
}

/// `Ok` when one of the `v1` signatures is the body's under `secret` and the timestamp is
/// fresh; `Err` says what is wrong (never which signature was expected).
pub fn verify(secret: &str, signed: &Signed<'_>, body: &[u8], now_secs: i64) -> Result<(), &'static str> {
    let key = secret_key(secret).ok_or("the source's signing secret is not base64")?;
    let timestamp: i64 = signed
        .timestamp
        .trim()
        .parse()
        .map_err(|_| "webhook-timestamp is not a number of seconds")?;
    if (now_secs - timestamp).abs() > TOLERANCE_SECS {
        return Err("webhook-timestamp is more than 5 minutes from now");
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| "the signing secret is unusable")?;
    mac.update(signed.id.as_bytes());
    mac.update(b".");
    mac.update(signed.timestamp.trim().as_bytes());
    mac.update(b".");
    mac.update(body);
    let engine = base64::engine::general_purpose::STANDARD;
    let matches = signed
        .signatures
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| engine.decode(encoded).ok())
        // verify_slice compares in constant time.
        .any(|candidate| mac.clone().verify_slice(&candidate).is_ok());
    if matches {
        Ok(())
    } else {
        Err("no webhook-signature matches the body under the source's signing secret")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of the Standard Webhooks specification's reference test suite.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: &str = "1614265330";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn signed(signatures: &str) -> Signed<'_> {
        Signed {
            id: ID,
            timestamp: TIMESTAMP,
            signatures,
        }
    }

    #[test]
    fn the_reference_signature_verifies() {
        assert_eq!(verify(SECRET, &signed(SIGNATURE), BODY, 1614265330), Ok(()));
        let rotated = format!("v1,bm90IGl0 {SIGNATURE}");
        assert_eq!(verify(SECRET, &signed(&rotated), BODY, 1614265330 + 299), Ok(()));
    }

    #[test]
    fn a_changed_body_id_or_secret_or_a_stale_time_is_refused() {
        assert!(verify(SECRET, &signed(SIGNATURE), br#"{"test": 2432232315}"#, 1614265330).is_err());
        let other_id = Signed {
            id: "msg_other",
            ..signed(SIGNATURE)
        };
        assert!(verify(SECRET, &other_id, BODY, 1614265330).is_err());
        assert!(verify("whsec_c2VjcmV0", &signed(SIGNATURE), BODY, 1614265330).is_err());
        assert_eq!(
            verify(SECRET, &signed(SIGNATURE), BODY, 1614265330 + 301),
            Err("webhook-timestamp is more than 5 minutes from now")
        );
        assert!(verify(
            SECRET,
            &signed("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            BODY,
            1614265330
        )
        .is_err());
        assert!(verify(SECRET, &signed(""), BODY, 1614265330).is_err());
    }

    proptest::proptest! {
        /// Any headers and secret: a verdict, never a panic (timestamps far from now included).
        #[test]
        fn any_signature_headers_give_a_verdict(
            secret in "(whsec_)?[A-Za-z0-9+/=]{0,40}|\\PC{0,20}",
            id in "\\PC{0,20}",
            timestamp in "-?[0-9]{0,20}|\\PC{0,12}",
            signatures in "((v1,|v2,)?[A-Za-z0-9+/=]{0,48} ?){0,4}|\\PC{0,40}",
            now in proptest::prelude::any::<i64>(),
        ) {
            let _ = verify(&secret, &Signed { id: &id, timestamp: &timestamp, signatures: &signatures }, b"{}", now);
        }

        /// What a tool signs verifies, alone or among others; any other body does not.
        #[test]
        fn a_signature_made_with_the_secret_verifies(
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40),
            id in "[a-z0-9_]{1,20}",
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100),
            now in 0i64..4_000_000_000,
        ) {
            let engine = base64::engine::general_purpose::STANDARD;
            let secret = format!("whsec_{}", engine.encode(&key));
            let timestamp = now.to_string();
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(&body);
            let signatures = format!("v1,bm90IGl0 v1,{}", engine.encode(mac.finalize().into_bytes()));
            let signed = Signed { id: &id, timestamp: &timestamp, signatures: &signatures };
            proptest::prop_assert_eq!(verify(&secret, &signed, &body, now), Ok(()));
            let mut other = body.clone();
            other.push(b'!');
            proptest::prop_assert!(verify(&secret, &signed, &other, now).is_err());
        }
    }
}
