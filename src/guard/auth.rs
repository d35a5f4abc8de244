//! Bearer-token authentication: the [`Authenticator`] every worker checks requests with, and the
//! [`AuthActor`] that owns the token state behind it.
//!
//! The hot path is a SHA-256 of the presented token, one lookup in a read-mostly `DashMap` keyed
//! by hash, a constant-time comparison of the hashes, and two counters: no mailbox, no database.
//! Through a mailbox every request would queue behind one actor (`cargo bench --bench guard`
//! compares the two). The actor loads the cache from the store at start and every
//! `AUTH_CACHE_REFRESH` (so tokens changed by the CLI or another instance take effect), applies
//! API token changes and refreshes at once, flushes the audit trail and `last_used_at`, and
//! forgets quiet IPs.
//!
//! Failed authentications count against the client's IP: `AUTH_LOCKOUT_FAILURES` within
//! `AUTH_LOCKOUT_WINDOW` lock it out for `AUTH_LOCKOUT`, doubling up to `AUTH_LOCKOUT_MAX`.
//!
//! The authenticator is told the time, it does not ask: a monotonic `now` for lockouts and the
//! wall clock (Unix milliseconds, as tokens expire) for expiry, so tests use made-up times.

use std::collections::HashSet;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt as _, AsyncContext, Context, Handler, Message, ResponseFuture,
    WrapFuture as _,
};
use dashmap::DashMap;
use tokio::sync::mpsc;

use super::admin::{self, AdminError, ChangedBy, Issued, NewToken};
use super::audit::AuditLog;
use super::client_ip::ClientNetworks;
use super::penalty::{PeerLine, PeerNews, PenaltyBox, PenaltySettings, Strike};
use super::token::{constant_time_eq, hash_token, Scope, Scopes, TokenHash, TOKEN_PREFIX};
use crate::store::audit::AuditEvent;
use crate::store::now_ms;
use crate::store::tokens::{HashedToken, TokenRecord};
use crate::store::{Store, StoreError};

/// How authentication behaves.
#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    /// When failures lock an IP out.
    pub lockout: PenaltySettings,
    /// How often the token cache is reloaded from the store.
    pub cache_refresh: Duration,
    /// How often audit rows and last-used times are written.
    pub flush_interval: Duration,
}

#[derive(Debug, Clone)]
struct CachedToken {
    id: Arc<str>,
    hash: TokenHash,
    scopes: Scopes,
    expires_at: Option<i64>,
    revoked: bool,
}

/// Who a request is: a valid token's id and scopes.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's id.
    pub token_id: Arc<str>,
    /// What it may do.
    pub scopes: Scopes,
    /// The key of its rate limit (from its hash).
    pub limit_key: u64,
    /// The client's address.
    pub client: IpAddr,
}

impl Principal {
    /// Whether the token carries `scope`.
    pub fn can(&self, scope: Scope) -> bool {
        self.scopes.contains(scope)
    }
}

/// Why a request is not authenticated. The HTTP answer is the same 401 for all but the lockout;
/// the reason goes to the audit log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A token we never issued (or not a token at all).
    Unknown,
    /// A token past its expiry (or its rotation overlap).
    Expired,
    /// A revoked token.
    Revoked,
    /// The client's IP is locked out for repeated failures; this long to go.
    LockedOut(Duration),
}

impl AuthFailure {
    fn reason(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing credentials",
            AuthFailure::Unknown => "unknown token",
            AuthFailure::Expired => "expired token",
            AuthFailure::Revoked => "revoked token",
            AuthFailure::LockedOut(_) => "client locked out",
        }
    }
}

/// Checks bearer tokens against the cached token state.
#[derive(Debug)]
pub struct Authenticator {
    tokens: DashMap<TokenHash, CachedToken>,
    lockout: PenaltyBox,
    audit: Arc<AuditLog>,
    /// Where failures go for the other instances sharing the database to count them too.
    peers: PeerLine,
}

impl Authenticator {
    /// An authenticator with no tokens yet (see [`Authenticator::load`]), locking out clients of
    /// `networks`.
    pub fn new(lockout: PenaltySettings, networks: ClientNetworks, audit: Arc<AuditLog>) -> Self {
        Self {
            tokens: DashMap::new(),
            lockout: PenaltyBox::new(lockout, networks),
            audit,
            peers: PeerLine::default(),
        }
    }

    /// Sends each failure from now on to `peers` as well (the other instances sharing the
    /// database, which count it as their own: a lockout holds across instances). A failure that
    /// finds the queue full is counted here only.
    pub fn share_failures(&self, peers: mpsc::Sender<PeerNews>) {
        self.peers.connect(peers);
    }

    /// Counts a failure another instance saw from `client` at `now` (its audit row is that
    /// instance's).
    pub fn failed_elsewhere(&self, client: IpAddr, now: Instant) {
        self.lockout.strike(client, now);
    }

    /// Replaces the cached token state with `tokens` (as stored).
    pub fn load(&self, tokens: &[HashedToken]) {
        let fresh: Vec<CachedToken> = tokens
            .iter()
            .filter_map(|token| {
                Some(CachedToken {
                    id: token.record.id.as_str().into(),
                    hash: parse_hash(&token.hash_hex)?,
                    scopes: token.record.scopes,
                    expires_at: token.record.expires_at,
                    revoked: token.record.revoked_at.is_some(),
                })
            })
            .collect();
        let stored: HashSet<TokenHash> = fresh.iter().map(|token| token.hash).collect();
        self.tokens.retain(|hash, _| stored.contains(hash));
        for token in fresh {
            self.tokens.insert(token.hash, token);
        }
    }

    /// Authenticates `authorization` (the header's value) from `client` at `now`. `unix_ms`
    /// reads the wall clock in Unix milliseconds ([`crate::store::now_ms`] outside tests); it is
    /// called only for a token that expires and for a failure's audit row, so the common case
    /// costs no second clock read.
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        client: IpAddr,
        now: Instant,
        unix_ms: impl Fn() -> i64,
    ) -> Result<Principal, AuthFailure> {
        if let Some(left) = self.lockout.blocked(client, now) {
            return Err(AuthFailure::LockedOut(left));
        }
        let outcome = self.check(authorization, client, &unix_ms);
        match &outcome {
            // A success does not clear the IP's failures: a guesser holding a token of its own
            // would use it to reset the count between guesses.
            Ok(principal) => self.audit.success(&principal.token_id, client),
            Err(failure) => self.fail(*failure, client, now, unix_ms()),
        }
        outcome
    }

    fn check(
        &self,
        authorization: Option<&[u8]>,
        client: IpAddr,
        unix_ms: impl Fn() -> i64,
    ) -> Result<Principal, AuthFailure> {
        let token = authorization
            .and_then(bearer_token)
            .ok_or(AuthFailure::Missing)?;
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(AuthFailure::Unknown);
        }
        let hash = hash_token(token);
        let cached = self.tokens.get(&hash).ok_or(AuthFailure::Unknown)?;
        // The map found it by hash; compare the hashes again in constant time all the same.
        if !constant_time_eq(&cached.hash, &hash) {
            return Err(AuthFailure::Unknown);
        }
        if cached.revoked {
            return Err(AuthFailure::Revoked);
        }
        if cached.expires_at.is_some_and(|at| at <= unix_ms()) {
            return Err(AuthFailure::Expired);
        }
        Ok(Principal {
            token_id: cached.id.clone(),
            scopes: cached.scopes,
            limit_key: u64::from_le_bytes(hash[..8].try_into().expect("8 bytes")),
            client,
        })
    }

    /// Counts a failure against `client`: an aggregated audit row, or a row of its own when it
    /// locks the client out.
    fn fail(&self, failure: AuthFailure, client: IpAddr, now: Instant, unix_ms: i64) {
        self.peers.tell(PeerNews::AuthFailure(client));
        match self.lockout.strike(client, now) {
            Strike::Counted => self.audit.failure(client, failure.reason(), unix_ms),
            Strike::Blocked(length, blocks) => self.audit.record(AuditEvent {
                at: unix_ms,
                kind: "auth.lockout".into(),
                token_id: None,
                client: Some(client.to_string()),
                detail: format!(
                    "{}; locked out for {}s (lockout {blocks})",
                    failure.reason(),
                    length.as_secs()
                ),
                count: 1,
            }),
        }
    }

    /// Forgets IPs whose failures are old at `now`.
    fn sweep(&self, now: Instant) {
        self.lockout.sweep(now);
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
pub fn bearer_token(header: &[u8]) -> Option<&str> {
    let header = std::str::from_utf8(header).ok()?;
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn parse_hash(hex: &str) -> Option<TokenHash> {
    let mut hash = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(hash)
}

/// Creates a token; the cache holds it before the reply.
#[derive(Debug, Message)]
#[rtype(result = "Result<Issued, AdminError>")]
pub struct CreateToken {
    /// The token's name, scopes and lifetime.
    pub token: NewToken,
    /// Who asked, for the audit trail.
    pub by: ChangedBy,
}

/// Revokes a token at once; replies whether there was a live token by that id.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, AdminError>")]
pub struct RevokeToken {
    /// The token's id (`tok_…`).
    pub id: String,
    /// Who asked, for the audit trail.
    pub by: ChangedBy,
}

/// Replaces a token with a new one; the old one keeps working for `overlap`. Replies the
/// replacement, or `None` when there is no live, unrotated token by that id.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<Issued>, AdminError>")]
pub struct RotateToken {
    /// The token's id (`tok_…`).
    pub id: String,
    /// How long the old token keeps working.
    pub overlap: Duration,
    /// Who asked, for the audit trail.
    pub by: ChangedBy,
}

/// Lists every token's record (never the tokens themselves), newest first.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<TokenRecord>, AdminError>")]
pub struct ListTokens;

/// Writes the pending audit rows and last-used times now, instead of at the next flush
/// interval (shutdown, tests).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct FlushAudit;

/// How long a revoked or expired token's row is kept (for its audit trail and `GET /api/tokens`)
/// before it is deleted.
pub const DEAD_TOKENS_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often dead tokens are looked for.
const DEAD_TOKEN_SWEEP: Duration = Duration::from_secs(3600);

/// Owns the token state: loads and refreshes the [`Authenticator`]'s cache, applies token changes
/// from the API, flushes the audit trail, and deletes tokens dead for [`DEAD_TOKENS_KEPT`].
pub struct AuthActor {
    store: Store,
    authenticator: Arc<Authenticator>,
    audit: Arc<AuditLog>,
    settings: AuthSettings,
}

impl AuthActor {
    /// An actor over `store`, keeping `authenticator` current.
    pub fn new(
        store: Store,
        authenticator: Arc<Authenticator>,
        audit: Arc<AuditLog>,
        settings: AuthSettings,
    ) -> Self {
        Self {
            store,
            authenticator,
            audit,
            settings,
        }
    }

    fn refresh(&self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let authenticator = self.authenticator.clone();
        ctx.spawn(
            async move { reload(&store, &authenticator).await }
                .into_actor(self)
                .map(|result, _, _| {
                    if let Err(error) = result {
                        tracing::error!(%error, "token cache refresh failed; keeping the last state");
                    }
                }),
        );
    }

    fn purge_dead_tokens(&self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let kept = i64::try_from(DEAD_TOKENS_KEPT.as_millis()).unwrap_or(i64::MAX);
        ctx.spawn(
            async move {
                let now = now_ms();
                let purged = store.purge_dead_tokens(now - kept).await?;
                if purged > 0 {
                    let days = DEAD_TOKENS_KEPT.as_secs() / 86_400;
                    let detail =
                        format!("{purged} tokens revoked or expired over {days} days ago deleted");
                    tracing::info!(%detail, "dead tokens purged");
                    let event = AuditEvent {
                        at: now,
                        kind: "tokens.purged".into(),
                        token_id: None,
                        client: None,
                        detail,
                        count: 1,
                    };
                    store.append_audit(&[event]).await?;
                }
                Ok::<_, StoreError>(())
            }
            .into_actor(self)
            .map(|result, _, _| {
                if let Err(error) = result {
                    tracing::error!(%error, "purging dead tokens failed");
                }
            }),
        );
    }

    fn flush(&self, ctx: &mut Context<Self>) {
        let (events, used) = self.audit.drain();
        if events.is_empty() && used.is_empty() {
            return;
        }
        ctx.spawn(
            write_audit(self.store.clone(), events, used)
                .into_actor(self)
                .map(|result, _, _| {
                    if let Err(error) = result {
                        tracing::error!(%error, "audit flush failed");
                    }
                }),
        );
    }

    /// Runs a token change on the store, then reloads the cache, so the change holds for every
    /// request answered after the reply.
    fn change<T, F>(
        &self,
        change: impl FnOnce(Store) -> F + 'static,
    ) -> ResponseFuture<Result<T, AdminError>>
    where
        F: Future<Output = Result<T, AdminError>> + 'static,
    {
        let store = self.store.clone();
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            let outcome = change(store.clone()).await?;
            reload(&store, &authenticator).await?;
            Ok(outcome)
        })
    }
}

/// Loads every token from `store` into `authenticator`.
pub async fn reload(store: &Store, authenticator: &Authenticator) -> Result<(), StoreError> {
    authenticator.load(&store.tokens().await?);
    Ok(())
}

/// Writes drained audit rows and last-used times.
async fn write_audit(
    store: Store,
    events: Vec<AuditEvent>,
    used: Vec<(String, i64)>,
) -> Result<(), StoreError> {
    store.append_audit(&events).await?;
    store.touch_tokens(&used).await
}

impl Actor for AuthActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.settings.cache_refresh, |actor, ctx| actor.refresh(ctx));
        self.purge_dead_tokens(ctx);
        ctx.run_interval(DEAD_TOKEN_SWEEP, |actor, ctx| actor.purge_dead_tokens(ctx));
        ctx.run_interval(self.settings.flush_interval, |actor, ctx| {
            actor.flush(ctx);
            actor.authenticator.sweep(Instant::now());
        });
    }

    fn stopping(&mut self, ctx: &mut Self::Context) -> actix::Running {
        self.flush(ctx);
        actix::Running::Stop
    }
}

impl Handler<CreateToken> for AuthActor {
    type Result = ResponseFuture<Result<Issued, AdminError>>;

    fn handle(&mut self, message: CreateToken, _: &mut Self::Context) -> Self::Result {
        self.change(
            move |store| async move { admin::create(&store, &message.token, &message.by).await },
        )
    }
}

impl Handler<RevokeToken> for AuthActor {
    type Result = ResponseFuture<Result<bool, AdminError>>;

    fn handle(&mut self, message: RevokeToken, _: &mut Self::Context) -> Self::Result {
        self.change(
            move |store| async move { admin::revoke(&store, &message.id, &message.by).await },
        )
    }
}

impl Handler<RotateToken> for AuthActor {
    type Result = ResponseFuture<Result<Option<Issued>, AdminError>>;

    fn handle(&mut self, message: RotateToken, _: &mut Self::Context) -> Self::Result {
        self.change(move |store| async move {
            admin::rotate(&store, &message.id, message.overlap, &message.by).await
        })
    }
}

impl Handler<ListTokens> for AuthActor {
    type Result = ResponseFuture<Result<Vec<TokenRecord>, AdminError>>;

    fn handle(&mut self, _: ListTokens, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { admin::list(&store).await })
    }
}

impl Handler<FlushAudit> for AuthActor {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, _: FlushAudit, _: &mut Self::Context) -> Self::Result {
        let (events, used) = self.audit.drain();
        Box::pin(write_audit(self.store.clone(), events, used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::token::mint;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const SECOND: Duration = Duration::from_secs(1);
    /// The made-up wall clock the tests run at (Unix milliseconds).
    const NOW_MS: i64 = 1_700_000_000_000;

    fn authenticator(threshold: u32) -> Authenticator {
        Authenticator::new(
            PenaltySettings {
                threshold,
                window: 60 * SECOND,
                base: 30 * SECOND,
                cap: 300 * SECOND,
            },
            ClientNetworks::default(),
            Arc::new(AuditLog::default()),
        )
    }

    fn stored(
        secret_hash: &TokenHash,
        id: &str,
        expires_at: Option<i64>,
        revoked_at: Option<i64>,
    ) -> HashedToken {
        HashedToken {
            record: TokenRecord {
                id: id.into(),
                name: "t".into(),
                scopes: [Scope::CallsRead].into_iter().collect(),
                created_at: 0,
                expires_at,
                last_used_at: None,
                revoked_at,
                replaced_by: None,
            },
            hash_hex: crate::guard::token::hex(secret_hash),
        }
    }

    fn header(token: &str) -> Vec<u8> {
        format!("Bearer {token}").into_bytes()
    }

    /// Authenticates `header` from `client` at `now` and the wall-clock time `unix_ms`.
    fn at(
        auth: &Authenticator,
        header: Option<&[u8]>,
        client: IpAddr,
        now: Instant,
        unix_ms: i64,
    ) -> Result<Principal, AuthFailure> {
        auth.authenticate(header, client, now, || unix_ms)
    }

    #[test]
    fn valid_tokens_pass_and_each_kind_of_bad_one_fails() {
        let auth = authenticator(100);
        let now = Instant::now();
        let [good, expired, revoked] = [mint().unwrap(), mint().unwrap(), mint().unwrap()];
        auth.load(&[
            stored(&good.hash, "tok_good", Some(NOW_MS + 60_000), None),
            stored(&expired.hash, "tok_expired", Some(NOW_MS - 1), None),
            stored(&revoked.hash, "tok_revoked", None, Some(1)),
        ]);
        let principal = at(&auth, Some(&header(&good.secret)), CLIENT, now, NOW_MS).unwrap();
        assert_eq!(&*principal.token_id, "tok_good");
        assert!(principal.can(Scope::CallsRead));
        assert!(!principal.can(Scope::TokensAdmin));
        let lowercase = format!("bearer {}", good.secret).into_bytes();
        assert!(at(&auth, Some(&lowercase), CLIENT, now, NOW_MS).is_ok());
        let cases: [(Option<Vec<u8>>, AuthFailure); 6] = [
            (None, AuthFailure::Missing),
            (Some(b"Basic abc".to_vec()), AuthFailure::Missing),
            (Some(header("pa_live_nope")), AuthFailure::Unknown),
            (Some(header("something-else")), AuthFailure::Unknown),
            (Some(header(&expired.secret)), AuthFailure::Expired),
            (Some(header(&revoked.secret)), AuthFailure::Revoked),
        ];
        for (header, expected) in cases {
            assert_eq!(
                at(&auth, header.as_deref(), CLIENT, now, NOW_MS).unwrap_err(),
                expected
            );
        }
    }

    #[test]
    fn a_token_works_until_its_expiry_and_not_from_then_on() {
        let auth = authenticator(100);
        let now = Instant::now();
        let token = mint().unwrap();
        let expires_at = NOW_MS + 1_000;
        auth.load(&[stored(&token.hash, "tok_a", Some(expires_at), None)]);
        let header = header(&token.secret);
        assert!(at(&auth, Some(&header), CLIENT, now, expires_at - 1).is_ok());
        for unix_ms in [expires_at, expires_at + 1] {
            assert_eq!(
                at(&auth, Some(&header), CLIENT, now, unix_ms).unwrap_err(),
                AuthFailure::Expired
            );
        }
    }

    #[test]
    fn repeated_failures_lock_the_ip_out_even_for_good_tokens_for_a_doubling_time() {
        let auth = authenticator(3);
        let t0 = Instant::now();
        let good = mint().unwrap();
        auth.load(&[stored(&good.hash, "tok_good", None, None)]);
        let guess = |now| at(&auth, Some(&header("pa_live_x")), CLIENT, now, NOW_MS);
        let with_good = |client, now| at(&auth, Some(&header(&good.secret)), client, now, NOW_MS);
        for _ in 0..3 {
            guess(t0).unwrap_err();
        }
        assert_eq!(
            with_good(CLIENT, t0).unwrap_err(),
            AuthFailure::LockedOut(30 * SECOND)
        );
        assert!(with_good([192, 0, 2, 2].into(), t0).is_ok(), "another IP");
        assert_eq!(
            with_good(CLIENT, t0 + 29 * SECOND).unwrap_err(),
            AuthFailure::LockedOut(SECOND)
        );
        let t1 = t0 + 30 * SECOND;
        assert!(with_good(CLIENT, t1).is_ok(), "unlocked");
        for _ in 0..3 {
            guess(t1).unwrap_err();
        }
        assert_eq!(
            with_good(CLIENT, t1).unwrap_err(),
            AuthFailure::LockedOut(60 * SECOND),
            "doubled"
        );
    }

    #[test]
    fn a_valid_token_between_guesses_does_not_reset_the_count() {
        let auth = authenticator(3);
        let now = Instant::now();
        let own = mint().unwrap();
        auth.load(&[stored(&own.hash, "tok_own", None, None)]);
        for _ in 0..2 {
            at(&auth, Some(&header("pa_live_x")), CLIENT, now, NOW_MS).unwrap_err();
            at(&auth, Some(&header(&own.secret)), CLIENT, now, NOW_MS).unwrap();
        }
        at(&auth, Some(&header("pa_live_x")), CLIENT, now, NOW_MS).unwrap_err();
        assert_eq!(
            at(&auth, Some(&header(&own.secret)), CLIENT, now, NOW_MS).unwrap_err(),
            AuthFailure::LockedOut(30 * SECOND),
            "three guesses lock the IP out, whatever succeeded between them"
        );
    }

    #[test]
    fn reloading_drops_deleted_tokens_and_applies_revocations() {
        let auth = authenticator(100);
        let now = Instant::now();
        let token = mint().unwrap();
        let header = header(&token.secret);
        auth.load(&[stored(&token.hash, "tok_a", None, None)]);
        assert!(at(&auth, Some(&header), CLIENT, now, NOW_MS).is_ok());
        auth.load(&[stored(&token.hash, "tok_a", None, Some(5))]);
        assert_eq!(
            at(&auth, Some(&header), CLIENT, now, NOW_MS).unwrap_err(),
            AuthFailure::Revoked
        );
        auth.load(&[]);
        assert_eq!(
            at(&auth, Some(&header), CLIENT, now, NOW_MS).unwrap_err(),
            AuthFailure::Unknown
        );
    }
}
