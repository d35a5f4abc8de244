//! Ids for stored rows: `call_…` for calls (they appear in URLs and webhooks), a hex id for the
//! rest.

use ring::rand::{SecureRandom as _, SystemRandom};

use super::crypto::CryptoError;
use super::StoreError;
use crate::guard::token::hex;

/// Prefix of our call ids.
const CALL_ID_PREFIX: &str = "call_";

/// A new call id: `call_` and 26 lowercase base32 characters of 128 random bits.
pub(super) fn new_call_id() -> Result<String, StoreError> {
    Ok(format!("{CALL_ID_PREFIX}{}", base32(&random::<16>()?)))
}

/// A random id: `prefix` and 96 bits in hex.
pub(super) fn random_id(prefix: &str) -> Result<String, StoreError> {
    Ok(format!("{prefix}{}", hex(&random::<12>()?)))
}

/// `N` random bytes from the system's generator.
pub(super) fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CryptoError::Random)?;
    Ok(bytes)
}

/// RFC 4648 base32, lowercase, without padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u16, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((buffer >> bits) & 31)]));
        }
    }
    if bits > 0 {
        out.push(char::from(
            ALPHABET[usize::from((buffer << (5 - bits)) & 31)],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc_4648_in_lowercase_without_padding() {
        for (input, expected) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32(input.as_bytes()), expected, "{input}");
        }
        assert_eq!(base32(&[0xff; 16]), format!("{}4", "7".repeat(25)));
    }

    #[test]
    fn call_ids_are_26_base32_characters_after_the_prefix_and_differ() {
        let id = new_call_id().unwrap();
        let body = id.strip_prefix("call_").unwrap();
        assert_eq!(body.len(), 26);
        assert!(body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)));
        assert_ne!(id, new_call_id().unwrap());
        assert_eq!(random_id("aud_").unwrap().len(), 4 + 24);
    }
}
