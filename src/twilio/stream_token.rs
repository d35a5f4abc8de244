//! Stream tokens: the voice webhook mints one per call and puts it in the TwiML's
//! `<Parameter name="token">`; the media stream's `start` must present it before any audio flows.
//!
//! A token is 256 random bits, good once, for one CallSid, for `STREAM_TOKEN_TTL`. Only its SHA-256
//! is kept, so lookups compare digests, never the secret itself, and a memory dump holds no token.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use dashmap::DashMap;
use phone_agent_actors::ids::CallSid;
use phone_agent_actors::media::admission::{AdmissionError, StreamAuthorizer};
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// The system's random source failed; no token can be minted.
#[derive(Debug, thiserror::Error)]
#[error("random number generator failed")]
pub struct RandomError;

struct Minted {
    call_sid: CallSid,
    expires: Instant,
}

/// The stream tokens minted and not yet used or expired.
pub struct StreamTokens {
    ttl: Duration,
    minted: DashMap<[u8; 32], Minted>,
    random: SystemRandom,
    last_sweep: Mutex<Instant>,
}

/// Expired tokens are swept at most this often.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl StreamTokens {
    /// An empty store whose tokens live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            minted: DashMap::new(),
            random: SystemRandom::new(),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// Mints a token for `call_sid` at `now`. Expired tokens are swept on the way, at most once per
    /// [`SWEEP_INTERVAL`], so a burst of webhooks costs one sweep, not one per request.
    pub fn mint(&self, call_sid: &CallSid, now: Instant) -> Result<String, RandomError> {
        let mut secret = [0u8; 32];
        self.random.fill(&mut secret).map_err(|_| RandomError)?;
        let token = URL_SAFE_NO_PAD.encode(secret);
        self.sweep_expired(now);
        self.minted.insert(
            hash(&token),
            Minted {
                call_sid: call_sid.clone(),
                expires: now + self.ttl,
            },
        );
        Ok(token)
    }

    fn sweep_expired(&self, now: Instant) {
        let mut last = self
            .last_sweep
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if now.duration_since(*last) < SWEEP_INTERVAL {
            return;
        }
        *last = now;
        drop(last);
        self.minted.retain(|_, minted| minted.expires > now);
    }

    /// Whether `token` was minted, is unused and unexpired at `now` (it is redeemed later, by the
    /// call's `start`).
    pub fn is_outstanding(&self, token: &str, now: Instant) -> bool {
        self.minted
            .get(&hash(token))
            .is_some_and(|minted| minted.expires > now)
    }

    /// Withdraws `token` before it is used (its call turned out not to be granted a stream).
    pub fn revoke(&self, token: &str) {
        self.minted.remove(&hash(token));
    }

    /// Tokens waiting to be used at `now`: minted, not redeemed, not expired.
    pub fn outstanding(&self, now: Instant) -> usize {
        self.minted
            .iter()
            .filter(|minted| minted.expires > now)
            .count()
    }
}

impl StreamAuthorizer for StreamTokens {
    fn redeem(&self, call_sid: &CallSid, token: &str, now: Instant) -> Result<(), AdmissionError> {
        // Removed whatever the outcome: a token shown once with the wrong CallSid is burnt.
        let (_, minted) = self
            .minted
            .remove(&hash(token))
            .ok_or(AdmissionError::InvalidToken)?;
        if minted.expires <= now || minted.call_sid != *call_sid {
            return Err(AdmissionError::InvalidToken);
        }
        Ok(())
    }
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

    #[test]
    fn a_token_works_once_for_its_call() {
        let tokens = StreamTokens::new(Duration::from_secs(60));
        let now = Instant::now();
        let token = tokens.mint(&sid(1), now).unwrap();
        assert_eq!(token.len(), 43);
        assert_eq!(tokens.redeem(&sid(1), &token, now), Ok(()));
        assert_eq!(
            tokens.redeem(&sid(1), &token, now),
            Err(AdmissionError::InvalidToken)
        );
    }

    #[test]
    fn wrong_call_unknown_and_expired_tokens_fail() {
        let tokens = StreamTokens::new(Duration::from_secs(60));
        let now = Instant::now();
        let token = tokens.mint(&sid(1), now).unwrap();
        assert_eq!(
            tokens.redeem(&sid(2), &token, now),
            Err(AdmissionError::InvalidToken)
        );
        assert_eq!(
            tokens.redeem(&sid(1), &token, now),
            Err(AdmissionError::InvalidToken),
            "burnt"
        );
        assert_eq!(
            tokens.redeem(&sid(1), "made-up", now),
            Err(AdmissionError::InvalidToken)
        );

        let token = tokens.mint(&sid(3), now).unwrap();
        let expired = now + Duration::from_secs(60);
        assert_eq!(
            tokens.redeem(&sid(3), &token, expired),
            Err(AdmissionError::InvalidToken)
        );
        let token = tokens.mint(&sid(3), now).unwrap();
        let just_in_time = expired - Duration::from_millis(1);
        assert_eq!(tokens.redeem(&sid(3), &token, just_in_time), Ok(()));
    }

    #[test]
    fn tokens_differ() {
        let tokens = StreamTokens::new(Duration::from_secs(60));
        let now = Instant::now();
        assert_ne!(
            tokens.mint(&sid(1), now).unwrap(),
            tokens.mint(&sid(1), now).unwrap()
        );
        assert_eq!(tokens.outstanding(now), 2);
        assert_eq!(
            tokens.outstanding(now + Duration::from_secs(60)),
            0,
            "expired"
        );
    }
}
