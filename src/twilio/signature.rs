//! `X-Twilio-Signature`: base64 of HMAC-SHA1 under the account's auth token, over the URL Twilio
//! requested followed by the form parameters sorted by name (each name then its value; repeated
//! names sorted by value). A JSON body is instead covered by the `bodySHA256` query parameter
//! (lowercase hex SHA-256 of the raw body), and the URL alone is signed.
//!
//! The URL is the public one (`https://PUBLIC_HOST…`, or `wss://` for the media socket), never
//! one rebuilt from proxy headers. Twilio may or may not include the default port, so both forms
//! are tried. Comparisons are constant-time (`ring::hmac::verify`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::digest::{digest, SHA256};
use ring::hmac;

use crate::guard::token::{constant_time_eq, hex};

/// In development without `TWILIO_AUTH_TOKEN`, the server generates an auth token into this file
/// in `DATA_DIR`, and the simulator signs with it.
pub const DEV_TWILIO_AUTH_TOKEN_FILE: &str = "twilio-auth-token";

/// The header Twilio signs with.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// Signs and checks Twilio requests with one auth token.
pub struct TwilioSigner {
    key: hmac::Key,
}

impl std::fmt::Debug for TwilioSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TwilioSigner(<redacted>)")
    }
}

/// A request as the signature sees it.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The full public URL, query included (`https://host/twilio/voice?x=1`).
    pub url: &'a str,
    /// The body if it is form-encoded (its parameters are signed).
    pub form: Option<&'a [u8]>,
    /// The raw body otherwise (checked against `bodySHA256` when the URL has one).
    pub raw: &'a [u8],
}

impl TwilioSigner {
    /// A signer for `auth_token`.
    pub fn new(auth_token: &str) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes()),
        }
    }

    /// The signature of `url` with form parameters `params`.
    pub fn sign(&self, url: &str, params: &[(String, String)]) -> String {
        BASE64.encode(hmac::sign(&self.key, &signed_content(url, params)).as_ref())
    }

    /// Whether `signature` is valid for `request` at its URL or that URL with or without the
    /// explicit default port. A body that is not a form is covered only by the URL's
    /// `bodySHA256`: without one, only an empty body passes (a URL-only signature says nothing of
    /// a body).
    pub fn verify(&self, request: SignedRequest<'_>, signature: &str) -> bool {
        let Ok(tag) = BASE64.decode(signature.trim()) else {
            return false;
        };
        let params = match request.form {
            Some(form) => form_params(form),
            None => {
                match query_param(request.url, "bodySHA256") {
                    Some(expected) => {
                        let actual = hex(digest(&SHA256, request.raw).as_ref());
                        if !constant_time_eq(
                            actual.as_bytes(),
                            expected.to_ascii_lowercase().as_bytes(),
                        ) {
                            return false;
                        }
                    }
                    None if !request.raw.is_empty() => return false,
                    None => {}
                }
                Vec::new()
            }
        };
        url_variants(request.url)
            .iter()
            .any(|url| hmac::verify(&self.key, &signed_content(url, &params), &tag).is_ok())
    }
}

fn signed_content(url: &str, params: &[(String, String)]) -> Vec<u8> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut content = url.as_bytes().to_vec();
    for (name, value) in sorted {
        content.extend_from_slice(name.as_bytes());
        content.extend_from_slice(value.as_bytes());
    }
    content
}

/// The parameters of a form-encoded body.
pub fn form_params(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// `url` as given, and with the scheme's default port added (or removed, if it is there).
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let default_port = match scheme {
        "https" | "wss" => "443",
        "http" | "ws" => "80",
        _ => return variants,
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let bracketed_end = authority.rfind(']').map_or(0, |i| i + 1);
    match authority[bracketed_end..].rsplit_once(':') {
        Some((_, port)) if port == default_port => {
            let host = &authority[..authority.len() - port.len() - 1];
            variants.push(format!("{scheme}://{host}{tail}"));
        }
        Some(_) => {}
        None => variants.push(format!("{scheme}://{authority}:{default_port}{tail}")),
    }
    variants
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twilio's published example (docs: "Validating requests"), as in `shared/PROTOCOLS.md`.
    const EXAMPLE_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const EXAMPLE_FORM: &[u8] = b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212";
    const EXAMPLE_SIGNATURE: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

    fn form(form: &[u8]) -> SignedRequest<'_> {
        SignedRequest {
            url: EXAMPLE_URL,
            form: Some(form),
            raw: form,
        }
    }

    #[test]
    fn twilios_example_vector_signs_and_verifies() {
        let signer = TwilioSigner::new("12345");
        assert_eq!(
            signer.sign(EXAMPLE_URL, &form_params(EXAMPLE_FORM)),
            EXAMPLE_SIGNATURE
        );
        assert!(signer.verify(form(EXAMPLE_FORM), EXAMPLE_SIGNATURE));
        let reordered = b"To=%2B18005551212&From=%2B12349013030&Digits=1234&Caller=%2B12349013030&CallSid=CA1234567890ABCDE";
        assert!(signer.verify(form(reordered), EXAMPLE_SIGNATURE));
    }

    #[test]
    fn any_change_fails() {
        let signer = TwilioSigner::new("12345");
        let tampered = b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1235&From=%2B12349013030&To=%2B18005551212";
        assert!(!signer.verify(form(tampered), EXAMPLE_SIGNATURE));
        assert!(!TwilioSigner::new("54321").verify(form(EXAMPLE_FORM), EXAMPLE_SIGNATURE));
        let other_url = SignedRequest {
            url: "https://mycompany.com/myapp.php?foo=1&bar=3",
            ..form(EXAMPLE_FORM)
        };
        assert!(!signer.verify(other_url, EXAMPLE_SIGNATURE));
        assert!(!signer.verify(form(EXAMPLE_FORM), "not base64!"));
        assert!(!signer.verify(form(EXAMPLE_FORM), ""));
    }

    #[test]
    fn the_default_port_may_be_present_or_not() {
        let signer = TwilioSigner::new("12345");
        let with_port = signer.sign(
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &form_params(EXAMPLE_FORM),
        );
        assert!(signer.verify(form(EXAMPLE_FORM), &with_port));
        let signed_bare = signer.sign("wss://agent.test/twilio/media", &[]);
        let ported = SignedRequest {
            url: "wss://agent.test:443/twilio/media",
            form: None,
            raw: b"",
        };
        assert!(signer.verify(ported, &signed_bare));
        assert_eq!(
            url_variants("https://[::1]:8443/x"),
            vec!["https://[::1]:8443/x".to_owned()]
        );
    }

    #[test]
    fn json_bodies_are_covered_by_body_sha256() {
        let signer = TwilioSigner::new("12345");
        let body = br#"{"CallSid":"CA1"}"#;
        let hash = hex(digest(&SHA256, body).as_ref());
        let url = format!("https://agent.test/twilio/status?bodySHA256={hash}");
        let signature = signer.sign(&url, &[]);
        let request = |raw: &'static [u8]| SignedRequest {
            url: &url,
            form: None,
            raw,
        };
        assert!(signer.verify(request(body), &signature));
        assert!(!signer.verify(request(br#"{"CallSid":"CA2"}"#), &signature));
        let bare = "https://agent.test/twilio/status";
        let url_only = SignedRequest {
            url: bare,
            form: None,
            raw: body,
        };
        assert!(
            !signer.verify(url_only, &signer.sign(bare, &[])),
            "a body without bodySHA256 is not covered by a URL-only signature"
        );
    }
}
