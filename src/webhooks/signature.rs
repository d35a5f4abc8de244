//! Signatures of inbound webhooks, checked on the raw body before anything parses it. Two schemes,
//! told apart by the headers present:
//!
//! - **The product's own** (the security guide): `Resend-Timestamp` (Unix seconds) and
//!   `Resend-Signature`, the lowercase hex HMAC-SHA256 of `"{timestamp}.{body}"` keyed with
//!   `WEBHOOK_SECRET`.
//! - **Standard Webhooks** (Svix, what the email provider sends): `svix-id`, `svix-timestamp`,
//!   `svix-signature` (or the `webhook-*` spellings); the signature header is a space-separated
//!   list of `v1,<base64>`, any one of which may match (several during a key rotation), over
//!   `"{id}.{timestamp}.{body}"`, keyed with the base64 after `whsec_` of `SVIX_WEBHOOK_SECRET`.
//!
//! Either way the timestamp must be an integer within [`TOLERANCE`] of now, in either direction,
//! and the comparison is constant-time (`ring::hmac::verify`). A verified message has an id for
//! replay protection: the Standard Webhooks id, or the signature itself for the product's scheme.
//! Sans-I/O: headers come as a lookup, the time as `now`.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::hmac;

/// How far a webhook's timestamp may be from now, either way.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Which scheme signed a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Resend-Signature`: the product's own.
    Resend,
    /// Standard Webhooks (Svix).
    Standard,
}

impl Scheme {
    /// Name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resend => "resend",
            Self::Standard => "standard_webhooks",
        }
    }
}

/// A message whose signature held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// What signed it.
    pub scheme: Scheme,
    /// Its id for replay protection (scheme-prefixed, so the two schemes never collide).
    pub message_id: String,
}

/// Why a message was refused. Logged, never shown: the sender gets the generic 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Neither scheme's headers are there (or only some of them).
    #[error("signature headers missing")]
    Missing,
    /// The scheme the headers name has no secret configured.
    #[error("no secret configured for {0}")]
    NotConfigured(&'static str),
    /// The timestamp is not a whole number of seconds.
    #[error("timestamp is not an integer")]
    BadTimestamp,
    /// The timestamp is more than [`TOLERANCE`] from now.
    #[error("timestamp outside the tolerance ({0} s from now)")]
    Stale(i64),
    /// No signature matches.
    #[error("signature does not match")]
    Mismatch,
}

/// A `SVIX_WEBHOOK_SECRET` that is not `whsec_` followed by base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected whsec_ followed by base64")]
pub struct BadSecret;

/// The configured secrets.
#[derive(Clone)]
pub struct WebhookKeys {
    resend: Option<hmac::Key>,
    standard: Option<hmac::Key>,
}

impl std::fmt::Debug for WebhookKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookKeys")
            .field("resend", &self.resend.is_some())
            .field("standard", &self.standard.is_some())
            .finish()
    }
}

impl WebhookKeys {
    /// Keys from `WEBHOOK_SECRET` (used as given) and `SVIX_WEBHOOK_SECRET` (`whsec_<base64>`).
    pub fn new(resend: Option<&str>, standard: Option<&str>) -> Result<Self, BadSecret> {
        Ok(Self {
            resend: resend.map(|secret| hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())),
            standard: standard.map(standard_key).transpose()?,
        })
    }

    /// Checks `body` against the signature headers `header` finds (by lowercase name), at
    /// `now` (Unix seconds).
    pub fn verify<'h>(
        &self,
        header: impl Fn(&str) -> Option<&'h str>,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, SignatureError> {
        let standard = ["svix", "webhook"].into_iter().find_map(|prefix| {
            let id = header(&format!("{prefix}-id"))?;
            let timestamp = header(&format!("{prefix}-timestamp"))?;
            let signatures = header(&format!("{prefix}-signature"))?;
            Some((id, timestamp, signatures))
        });
        if let Some((id, timestamp, signatures)) = standard {
            let key = self
                .standard
                .as_ref()
                .ok_or(SignatureError::NotConfigured("SVIX_WEBHOOK_SECRET"))?;
            let timestamp = fresh(timestamp, now)?;
            let signed = standard_content(id, timestamp, body);
            let matched = signatures
                .split_whitespace()
                .filter_map(|entry| entry.strip_prefix("v1,"))
                .filter_map(|encoded| BASE64.decode(encoded).ok())
                .any(|tag| hmac::verify(key, &signed, &tag).is_ok());
            return if matched {
                Ok(Verified {
                    scheme: Scheme::Standard,
                    message_id: format!("standard:{id}"),
                })
            } else {
                Err(SignatureError::Mismatch)
            };
        }
        let (Some(timestamp), Some(signature)) =
            (header("resend-timestamp"), header("resend-signature"))
        else {
            return Err(SignatureError::Missing);
        };
        let key = self
            .resend
            .as_ref()
            .ok_or(SignatureError::NotConfigured("WEBHOOK_SECRET"))?;
        let timestamp = fresh(timestamp, now)?;
        let tag = hex_decode(signature.trim()).ok_or(SignatureError::Mismatch)?;
        let signed = [timestamp.as_bytes(), b".", body].concat();
        hmac::verify(key, &signed, &tag).map_err(|_| SignatureError::Mismatch)?;
        Ok(Verified {
            scheme: Scheme::Resend,
            message_id: format!("resend:{}", signature.trim().to_ascii_lowercase()),
        })
    }
}

/// The key of a Standard Webhooks secret, `whsec_<base64>`.
pub fn standard_key(secret: &str) -> Result<hmac::Key, BadSecret> {
    let encoded = secret.strip_prefix("whsec_").ok_or(BadSecret)?;
    let key = BASE64.decode(encoded).map_err(|_| BadSecret)?;
    if key.is_empty() {
        return Err(BadSecret);
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &key))
}

/// What Standard Webhooks signs: `"{id}.{timestamp}.{body}"`.
fn standard_content(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    [id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat()
}

/// The Standard Webhooks signature of an outbound message: `v1,<base64>` of the HMAC of
/// `"{id}.{timestamp}.{body}"`.
pub fn sign_standard(key: &hmac::Key, id: &str, timestamp: i64, body: &[u8]) -> String {
    let content = standard_content(id, &timestamp.to_string(), body);
    format!("v1,{}", BASE64.encode(hmac::sign(key, &content)))
}

/// The timestamp as signed, if it is an integer within [`TOLERANCE`] of `now`.
fn fresh(timestamp: &str, now: i64) -> Result<&str, SignatureError> {
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let off = seconds.saturating_sub(now);
    if off.unsigned_abs() > TOLERANCE.as_secs() {
        return Err(SignatureError::Stale(off));
    }
    Ok(timestamp)
}

/// Lowercase or uppercase hex, whole bytes.
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// The Standard Webhooks test vector, published with its reference libraries.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn check(
        keys: &WebhookKeys,
        headers: &[(&str, &str)],
        body: &[u8],
        now: i64,
    ) -> Result<Verified, SignatureError> {
        let headers: HashMap<String, &str> = headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), *value))
            .collect();
        keys.verify(|name| headers.get(name).copied(), body, now)
    }

    fn standard_keys() -> WebhookKeys {
        WebhookKeys::new(None, Some(VECTOR_SECRET)).unwrap()
    }

    fn vector_headers<'a>(prefix: &str, signatures: &'a str) -> Vec<(String, &'a str)> {
        vec![
            (format!("{prefix}-id"), VECTOR_ID),
            (format!("{prefix}-timestamp"), "1614265330"),
            (format!("{prefix}-signature"), signatures),
        ]
    }

    fn as_refs<'a>(headers: &'a [(String, &'a str)]) -> Vec<(&'a str, &'a str)> {
        headers.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }

    #[test]
    fn the_standard_webhooks_test_vector_verifies_under_both_spellings() {
        for prefix in ["svix", "webhook"] {
            let headers = vector_headers(prefix, VECTOR_SIGNATURE);
            let verified = check(
                &standard_keys(),
                &as_refs(&headers),
                VECTOR_BODY,
                VECTOR_TIMESTAMP,
            );
            assert_eq!(
                verified,
                Ok(Verified {
                    scheme: Scheme::Standard,
                    message_id: format!("standard:{VECTOR_ID}"),
                })
            );
        }
    }

    #[test]
    fn outbound_messages_are_signed_as_the_test_vector_says() {
        let key = standard_key(VECTOR_SECRET).unwrap();
        assert_eq!(
            sign_standard(&key, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
        assert_eq!(
            standard_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").err(),
            Some(BadSecret)
        );
        assert_eq!(standard_key("whsec_").err(), Some(BadSecret));
    }

    #[test]
    fn any_signature_of_a_rotation_list_may_match_and_none_of_the_wrong_ones_do() {
        let rotating = format!("v1,bm9wZQ== v2,abc {VECTOR_SIGNATURE}");
        let headers = vector_headers("svix", &rotating);
        let keys = standard_keys();
        assert!(check(&keys, &as_refs(&headers), VECTOR_BODY, VECTOR_TIMESTAMP).is_ok());
        let wrong = vector_headers("svix", "v1,bm9wZQ== v1,not-base64!");
        assert_eq!(
            check(&keys, &as_refs(&wrong), VECTOR_BODY, VECTOR_TIMESTAMP),
            Err(SignatureError::Mismatch)
        );
        let headers = vector_headers("svix", VECTOR_SIGNATURE);
        assert_eq!(
            check(
                &keys,
                &as_refs(&headers),
                br#"{"test": 2432232315}"#,
                VECTOR_TIMESTAMP
            ),
            Err(SignatureError::Mismatch),
            "a changed body"
        );
    }

    #[test]
    fn timestamps_outside_five_minutes_either_way_or_not_integers_are_refused() {
        let headers = vector_headers("svix", VECTOR_SIGNATURE);
        let keys = standard_keys();
        let at = |now| check(&keys, &as_refs(&headers), VECTOR_BODY, now);
        assert!(at(VECTOR_TIMESTAMP + 300).is_ok());
        assert!(at(VECTOR_TIMESTAMP - 300).is_ok());
        assert_eq!(at(VECTOR_TIMESTAMP + 301), Err(SignatureError::Stale(-301)));
        assert_eq!(at(VECTOR_TIMESTAMP - 301), Err(SignatureError::Stale(301)));
        let odd = [
            ("svix-id", VECTOR_ID),
            ("svix-timestamp", "1614265330.5"),
            ("svix-signature", VECTOR_SIGNATURE),
        ];
        assert_eq!(
            check(&keys, &odd, VECTOR_BODY, VECTOR_TIMESTAMP),
            Err(SignatureError::BadTimestamp)
        );
    }

    /// The product's scheme's signature (tests/it/webhooks.rs checks it against an HMAC written
    /// out from its definition).
    fn resend_signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let signed = [timestamp.as_bytes(), b".", body].concat();
        let tag = hmac::sign(&key, &signed);
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_products_own_scheme_is_hex_hmac_of_timestamp_dot_body() {
        let secret = "a-webhook-secret-of-the-product";
        let keys = WebhookKeys::new(Some(secret), None).unwrap();
        let body = br#"{"type":"email.delivered","data":{"email_id":"e1"}}"#;
        let signature = resend_signature(secret.as_bytes(), "1700000000", body);
        let headers = [
            ("Resend-Timestamp", "1700000000"),
            ("Resend-Signature", signature.as_str()),
        ];
        let verified = check(&keys, &headers, body, 1_700_000_100).unwrap();
        assert_eq!(verified.scheme, Scheme::Resend);
        assert_eq!(verified.message_id, format!("resend:{signature}"));

        let upper = signature.to_uppercase();
        let headers = [
            ("Resend-Timestamp", "1700000000"),
            ("Resend-Signature", &upper),
        ];
        assert!(check(&keys, &headers, body, 1_700_000_100).is_ok());
        let headers = [
            ("Resend-Timestamp", "1700000001"),
            ("Resend-Signature", &upper),
        ];
        assert_eq!(
            check(&keys, &headers, body, 1_700_000_100),
            Err(SignatureError::Mismatch),
            "the timestamp is signed"
        );
        assert_eq!(
            check(
                &keys,
                &[("Resend-Timestamp", "1700000000")],
                body,
                1_700_000_100
            ),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn a_scheme_without_its_secret_is_refused_and_bad_secrets_are_caught_at_start_up() {
        let resend_only = WebhookKeys::new(Some("secret"), None).unwrap();
        let headers = vector_headers("svix", VECTOR_SIGNATURE);
        assert_eq!(
            check(
                &resend_only,
                &as_refs(&headers),
                VECTOR_BODY,
                VECTOR_TIMESTAMP
            ),
            Err(SignatureError::NotConfigured("SVIX_WEBHOOK_SECRET"))
        );
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_%%%"] {
            assert_eq!(
                WebhookKeys::new(None, Some(bad)).unwrap_err(),
                BadSecret,
                "{bad}"
            );
        }
        let debug = format!("{:?}", standard_keys());
        assert!(!debug.contains("MfKQ"), "{debug}");
    }
}
