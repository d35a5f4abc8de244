//! Stream tokens: the voice webhook mints one per call and puts it in the TwiML's
//! `<Parameter name="token">`; the media stream's `start` must present it before any audio flows.
//!
//! A token says which call it is for and until when, and is signed (HMAC-SHA256) with a key every
//! instance sharing the data key derives from it ([`crate::store::Store::stream_token_keys`]): the
//! voice webhook may be answered by one instance and the media socket land on another. Its
//! form: `base64url(expires_ms ‖ nonce ‖ CallSid) "." base64url(tag)`, the expiry in Unix
//! milliseconds (8 bytes, big-endian), the nonce 128 random bits.
//!
//! A token is good once. The instance that redeems it remembers it until it expires (by its
//! SHA-256: a memory dump holds no token); among instances, a call's stream is claimed once in
//! its record ([`crate::calls::ownership`]), so the same token shown to another instance finds
//! the call taken.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use dashmap::DashMap;
use phone_agent_actors::ids::CallSid;
use phone_agent_actors::media::admission::{AdmissionError, StreamAuthorizer};
use ring::digest::{digest, SHA256};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The system's random source failed; no token can be minted.
#[derive(Debug, thiserror::Error)]
#[error("random number generator failed")]
pub struct RandomError;

/// Random bytes in a token.
const NONCE_LEN: usize = 16;

/// The stream tokens this instance mints and redeems.
pub struct StreamTokens {
    ttl: Duration,
    /// Signs with the first; verifies with any (a data key being rotated).
    keys: Vec<hmac::Key>,
    random: SystemRandom,
    /// Minted here and not redeemed here, by SHA-256 of the token, with their expiry (ms): the
    /// calls on their way to this instance, or to another one until they expire.
    minted: DashMap<[u8; 32], i64>,
    /// Redeemed (or burnt) here, by SHA-256 of the token, until they expire.
    spent: DashMap<[u8; 32], i64>,
    last_sweep: Mutex<i64>,
}

/// Expired tokens are swept at most this often.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// What a valid token says.
struct Claims {
    call_sid: String,
    expires_ms: i64,
}

impl StreamTokens {
    /// Tokens only this process verifies: signed with a random key of its own (one instance, or
    /// a test).
    pub fn new(ttl: Duration) -> Self {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .expect("the system's random source works at start-up");
        Self::shared(ttl, vec![key])
    }

    /// Tokens every instance holding `keys` verifies (the first signs). Panics without a key.
    pub fn shared(ttl: Duration, keys: Vec<hmac::Key>) -> Self {
        assert!(!keys.is_empty(), "a stream token needs a key to sign with");
        Self {
            ttl,
            keys,
            random: SystemRandom::new(),
            minted: DashMap::new(),
            spent: DashMap::new(),
            last_sweep: Mutex::new(0),
        }
    }

    /// Mints a token for `call_sid` at `now`. Expired tokens are swept on the way, at most once per
    /// [`SWEEP_INTERVAL`], so a burst of webhooks costs one sweep, not one per request.
    pub fn mint(&self, call_sid: &CallSid, now: SystemTime) -> Result<String, RandomError> {
        let now = epoch_ms(now);
        let expires_ms = now.saturating_add(self.ttl.as_millis() as i64);
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| RandomError)?;
        let mut payload = Vec::with_capacity(8 + NONCE_LEN + call_sid.as_str().len());
        payload.extend_from_slice(&expires_ms.to_be_bytes());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(call_sid.as_str().as_bytes());
        let tag = hmac::sign(&self.keys[0], &payload);
        let token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        );
        self.sweep_expired(now);
        self.minted.insert(hash(&token), expires_ms);
        Ok(token)
    }

    /// What `token` says, if one of our keys signed it (checked in constant time).
    fn verify(&self, token: &str) -> Option<Claims> {
        let (payload, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.keys
            .iter()
            .any(|key| hmac::verify(key, &payload, &tag).is_ok())
            .then_some(())?;
        let (expires, rest) = payload.split_first_chunk::<8>()?;
        let call_sid = rest.get(NONCE_LEN..)?;
        Some(Claims {
            call_sid: String::from_utf8(call_sid.to_vec()).ok()?,
            expires_ms: i64::from_be_bytes(*expires),
        })
    }

    fn sweep_expired(&self, now: i64) {
        let mut last = self
            .last_sweep
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if now.saturating_sub(*last) < SWEEP_INTERVAL.as_millis() as i64 {
            return;
        }
        *last = now;
        drop(last);
        self.minted.retain(|_, expires| *expires > now);
        self.spent.retain(|_, expires| *expires > now);
    }

    /// Whether `token` is one of ours, unexpired at `now` and not spent here (it is redeemed
    /// later, by the call's `start`).
    pub fn is_outstanding(&self, token: &str, now: SystemTime) -> bool {
        self.verify(token)
            .is_some_and(|claims| claims.expires_ms > epoch_ms(now))
            && !self.spent.contains_key(&hash(token))
    }

    /// Withdraws `token` before it is used (its call turned out not to be granted a stream).
    pub fn revoke(&self, token: &str) {
        let digest = hash(token);
        if let Some((_, expires)) = self.minted.remove(&digest) {
            self.spent.insert(digest, expires);
        }
    }

    /// Tokens minted here and waiting to be used at `now`: not redeemed here, not expired (one
    /// redeemed by another instance counts here until it expires).
    pub fn outstanding(&self, now: SystemTime) -> usize {
        let now = epoch_ms(now);
        self.minted
            .iter()
            .filter(|minted| *minted.value() > now)
            .count()
    }
}

impl StreamAuthorizer for StreamTokens {
    fn redeem(
        &self,
        call_sid: &CallSid,
        token: &str,
        now: SystemTime,
    ) -> Result<(), AdmissionError> {
        let claims = self.verify(token).ok_or(AdmissionError::InvalidToken)?;
        let now = epoch_ms(now);
        self.sweep_expired(now);
        let digest = hash(token);
        self.minted.remove(&digest);
        // Spent whatever the outcome: a token shown once with the wrong CallSid is burnt.
        if self.spent.insert(digest, claims.expires_ms).is_some()
            || claims.expires_ms <= now
            || claims.call_sid != call_sid.as_str()
        {
            return Err(AdmissionError::InvalidToken);
        }
        Ok(())
    }
}

/// `at` in milliseconds since the Unix epoch.
fn epoch_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

fn hash(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u8) -> CallSid {
        CallSid::parse(&format!("CA{:032x}", n)).unwrap()
    }

    fn key(byte: u8) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &[byte; 32])
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + ms)
    }

    #[test]
    fn a_token_works_once_for_its_call() {
        let tokens = StreamTokens::new(Duration::from_secs(60));
        let token = tokens.mint(&sid(1), at(0)).unwrap();
        assert!(token.len() < 200, "fits a TwiML parameter: {token}");
        assert!(tokens.is_outstanding(&token, at(0)));
        assert_eq!(tokens.redeem(&sid(1), &token, at(0)), Ok(()));
        assert!(!tokens.is_outstanding(&token, at(0)));
        assert_eq!(
            tokens.redeem(&sid(1), &token, at(0)),
            Err(AdmissionError::InvalidToken)
        );
    }

    #[test]
    fn wrong_call_unknown_forged_and_expired_tokens_fail() {
        let tokens = StreamTokens::new(Duration::from_secs(60));
        let token = tokens.mint(&sid(1), at(0)).unwrap();
        assert_eq!(
            tokens.redeem(&sid(2), &token, at(0)),
            Err(AdmissionError::InvalidToken)
        );
        assert_eq!(
            tokens.redeem(&sid(1), &token, at(0)),
            Err(AdmissionError::InvalidToken),
            "burnt"
        );
        for made_up in ["made-up", "", ".", "AAAA.AAAA"] {
            assert_eq!(
                tokens.redeem(&sid(1), made_up, at(0)),
                Err(AdmissionError::InvalidToken)
            );
        }
        // Another call's token with this call's CallSid put in: the tag no longer matches.
        let other = tokens.mint(&sid(3), at(0)).unwrap();
        let (payload, tag) = other.split_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(payload).unwrap();
        let sid_at = bytes.len() - 34;
        bytes[sid_at..].copy_from_slice(sid(4).as_str().as_bytes());
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(
            tokens.redeem(&sid(4), &forged, at(0)),
            Err(AdmissionError::InvalidToken)
        );

        let token = tokens.mint(&sid(5), at(0)).unwrap();
        assert_eq!(
            tokens.redeem(&sid(5), &token, at(60_000)),
            Err(AdmissionError::InvalidToken),
            "expired"
        );
        let token = tokens.mint(&sid(5), at(0)).unwrap();
        assert_eq!(tokens.redeem(&sid(5), &token, at(59_999)), Ok(()));
    }

    #[test]
    fn an_instance_sharing_the_key_redeems_what_another_minted() {
        let ttl = Duration::from_secs(60);
        let a = StreamTokens::shared(ttl, vec![key(1)]);
        let b = StreamTokens::shared(ttl, vec![key(1)]);
        let stranger = StreamTokens::shared(ttl, vec![key(2)]);
        let token = a.mint(&sid(1), at(0)).unwrap();
        assert!(b.is_outstanding(&token, at(0)));
        assert!(!stranger.is_outstanding(&token, at(0)));
        assert_eq!(
            stranger.redeem(&sid(1), &token, at(0)),
            Err(AdmissionError::InvalidToken)
        );
        assert_eq!(b.redeem(&sid(1), &token, at(0)), Ok(()));
        assert_eq!(
            a.outstanding(at(0)),
            1,
            "counted by its minter until it expires"
        );
        assert_eq!(a.outstanding(at(60_000)), 0);
        // During a key rotation, a token signed with the previous key still verifies.
        let rotated = StreamTokens::shared(ttl, vec![key(3), key(1)]);
        let token = a.mint(&sid(2), at(0)).unwrap();
        assert_eq!(rotated.redeem(&sid(2), &token, at(0)), Ok(()));
    }

    #[test]
    fn tokens_differ_and_expire_from_the_count() {
        let tokens = StreamTokens::new(Duration::from_secs(60));
        let first = tokens.mint(&sid(1), at(0)).unwrap();
        let second = tokens.mint(&sid(1), at(0)).unwrap();
        assert_ne!(first, second);
        assert_eq!(tokens.outstanding(at(0)), 2);
        tokens.revoke(&first);
        assert_eq!(tokens.outstanding(at(0)), 1, "revoked");
        assert!(!tokens.is_outstanding(&first, at(0)));
        assert_eq!(tokens.outstanding(at(60_000)), 0, "expired");
    }
}
