//! API tokens: how they look, how they are hashed, what they may do.
//!
//! A token is `pa_live_` followed by 256 random bits in URL-safe base64 (43 characters). It is
//! shown once, at creation; only its SHA-256 is stored. Its id (`tok_…`, 96 random bits) names it
//! in lists, logs and the audit trail.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::digest::{digest, SHA256, SHA256_OUTPUT_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// Every token starts with this, so a leaked one is recognisable (secret scanners, log review).
pub const TOKEN_PREFIX: &str = "pa_live_";
/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// The SHA-256 of a whole token string: what is stored and looked up.
pub type TokenHash = [u8; SHA256_OUTPUT_LEN];

/// Hashes a presented token.
pub fn hash_token(token: &str) -> TokenHash {
    digest(&SHA256, token.as_bytes())
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// A newly minted token: the secret (shown once) and what is stored of it.
pub struct MintedToken {
    /// The token's id.
    pub id: String,
    /// The token itself; never stored, never logged.
    pub secret: String,
    /// Its hash.
    pub hash: TokenHash,
}

impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The system's random generator failed.
#[derive(Debug, thiserror::Error)]
#[error("no randomness available")]
pub struct NoRandomness;

/// Mints a token from the system's secure random generator.
pub fn mint() -> Result<MintedToken, NoRandomness> {
    let random = SystemRandom::new();
    let mut secret = [0u8; TOKEN_BYTES];
    let mut id = [0u8; 12];
    random.fill(&mut secret).map_err(|_| NoRandomness)?;
    random.fill(&mut id).map_err(|_| NoRandomness)?;
    let secret = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    Ok(MintedToken {
        id: format!("tok_{}", hex(&id)),
        hash: hash_token(&secret),
        secret,
    })
}

/// Whether `a` and `b` are equal, in time independent of their contents.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    #[allow(deprecated)] // ring keeps it for exactly this use; its replacement is not public.
    ring::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// One permission a token can carry.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Scope {
    /// List and inspect calls.
    #[serde(rename = "calls:read")]
    CallsRead,
    /// Place, schedule and hang up calls.
    #[serde(rename = "calls:write")]
    CallsWrite,
    /// Erase calls and their recordings of speech.
    #[serde(rename = "calls:delete")]
    CallsDelete,
    /// Create, list, revoke and rotate tokens.
    #[serde(rename = "tokens:admin")]
    TokensAdmin,
    /// Register and remove webhook endpoints, rotate their secrets, list and replay deliveries.
    #[serde(rename = "webhooks:admin")]
    WebhooksAdmin,
    /// Talk to the agent from the browser console's softphone (each such call is a call).
    #[serde(rename = "calls:softphone")]
    CallsSoftphone,
}

impl Scope {
    /// Every scope, in order.
    pub const ALL: [Scope; 6] = [
        Scope::CallsRead,
        Scope::CallsWrite,
        Scope::CallsDelete,
        Scope::TokensAdmin,
        Scope::WebhooksAdmin,
        Scope::CallsSoftphone,
    ];

    /// The scope's wire name (`calls:read`).
    pub fn name(self) -> &'static str {
        match self {
            Scope::CallsRead => "calls:read",
            Scope::CallsWrite => "calls:write",
            Scope::CallsDelete => "calls:delete",
            Scope::TokensAdmin => "tokens:admin",
            Scope::WebhooksAdmin => "webhooks:admin",
            Scope::CallsSoftphone => "calls:softphone",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Parses names separated by commas or spaces (`calls:read,calls:write`).
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split([',', ' '])
            .filter(|name| !name.is_empty())
            .map(|name| {
                Scope::ALL
                    .into_iter()
                    .find(|scope| scope.name() == name)
                    .ok_or_else(|| format!("unknown scope {name:?}"))
            })
            .collect()
    }

    /// Space-separated names, the stored form.
    pub fn to_names(self) -> String {
        self.iter().map(Scope::name).collect::<Vec<_>>().join(" ")
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, scope| bits | scope.bit()))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Scope::name)).finish()
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Scope>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_prefixed_random_and_hashed() {
        let a = mint().unwrap();
        let b = mint().unwrap();
        assert!(a.secret.starts_with(TOKEN_PREFIX));
        assert_eq!(a.secret.len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.id, b.id);
        assert_eq!(a.hash, hash_token(&a.secret));
        assert!(!format!("{a:?}").contains(&a.secret));
    }

    #[test]
    fn scopes_parse_print_and_round_trip_as_json() {
        let scopes = Scopes::parse("calls:read, tokens:admin").unwrap();
        assert!(scopes.contains(Scope::CallsRead));
        assert!(!scopes.contains(Scope::CallsWrite));
        assert_eq!(scopes.to_names(), "calls:read tokens:admin");
        assert_eq!(Scopes::parse(&scopes.to_names()).unwrap(), scopes);
        let json = serde_json::to_string(&scopes).unwrap();
        assert_eq!(json, r#"["calls:read","tokens:admin"]"#);
        assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), scopes);
        assert!(Scopes::parse("calls:read,admin").is_err());
        assert!(serde_json::from_str::<Scopes>(r#"["root"]"#).is_err());
    }
}
