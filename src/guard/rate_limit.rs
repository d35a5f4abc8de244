//! Rate limiting: governor's keyed GCRA limiters per endpoint class, keyed by client IP and by
//! token, with graduated IP blocks for repeated excess, and the operator's allow and deny lists.
//!
//! Decisions are made on shared, lock-sharded state ([`RateLimits`]) by the request's own worker:
//! no mailbox on the hot path. The [`RateLimitActor`] owns that state's upkeep (forgetting idle
//! keys and quiet IPs).
//!
//! Time: the IP blocks are told the request's `now` (read once per request by the middleware);
//! governor's GCRA reads the limiters' clock `C`, since its API cannot be told the time: quanta's
//! in the server, a `FakeRelativeClock` in tests, which move it together with the `now` they pass.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::state::keyed::DashMapStateStore;
use governor::{NotUntil, Quota, RateLimiter};
use tokio::sync::mpsc;

use super::client_ip::{ClientNetworks, IpList};
use super::penalty::{PeerLine, PeerNews, PenaltyBox, PenaltySettings, Strike};

/// Which limits a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointClass {
    /// `GET`/`HEAD` on the API, and the operational endpoints.
    ApiRead,
    /// Everything else on the API.
    ApiWrite,
    /// Inbound provider webhooks (`/webhooks/…`).
    Webhooks,
    /// Twilio's webhooks and media socket (`/twilio/…`).
    Twilio,
}

impl EndpointClass {
    const COUNT: usize = 4;

    /// The class of a request.
    pub fn of(method: &actix_web::http::Method, path: &str) -> Self {
        if path.starts_with("/twilio/") {
            Self::Twilio
        } else if path.starts_with("/webhooks/") {
            Self::Webhooks
        } else if path.starts_with("/api/")
            && !matches!(
                *method,
                actix_web::http::Method::GET | actix_web::http::Method::HEAD
            )
        {
            Self::ApiWrite
        } else {
            Self::ApiRead
        }
    }

    /// The name used in settings and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::ApiRead => "api-read",
            Self::ApiWrite => "api-write",
            Self::Webhooks => "webhooks",
            Self::Twilio => "twilio",
        }
    }
}

/// A limit: `requests` per `per` (all of them may come at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests allowed per period (and the burst).
    pub requests: NonZeroU32,
    /// The period.
    pub per: Duration,
}

impl Limit {
    /// Parses `600/min`, `10/s`, `1000/h`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected =
            || format!("{text:?} (expected requests/period, e.g. 600/min, 10/s, 1000/h)");
        let (count, unit) = text.split_once('/').ok_or_else(expected)?;
        let requests = count.trim().parse().map_err(|_| expected())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(expected()),
        };
        let limit = Self { requests, per };
        if limit.spacing().is_zero() {
            return Err(format!(
                "{text:?} (more requests than nanoseconds in the period)"
            ));
        }
        Ok(limit)
    }

    /// The time one request's allowance takes to come back.
    fn spacing(self) -> Duration {
        self.per / self.requests.get()
    }

    fn quota(self) -> Quota {
        Quota::with_period(self.spacing())
            .expect("parse refuses limits spaced by less than a nanosecond")
            .allow_burst(self.requests)
    }
}

/// Everything the rate limiter is configured with.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// The limit per class for each client IP (in [`EndpointClass`] order).
    pub limits: [Limit; EndpointClass::COUNT],
    /// The limit per class for each API token (tokens are only checked on the API's classes).
    pub token_limits: [Limit; EndpointClass::COUNT],
    /// When repeated excess blocks an IP.
    pub blocks: PenaltySettings,
    /// Never limited nor blocked (e.g. Twilio's egress ranges).
    pub allow: IpList,
    /// Always refused.
    pub deny: IpList,
}

/// How much of a limit is left, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headroom {
    /// The limit's requests per period.
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
    /// Until the limit is whole again.
    pub reset: Duration,
}

impl Headroom {
    /// The tighter of two.
    pub fn tighter(self, other: Option<Headroom>) -> Headroom {
        match other {
            Some(other) if other.remaining < self.remaining => other,
            _ => self,
        }
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The IP is on the deny list (403).
    Denied,
    /// Over the limit (429).
    Limited {
        /// When a request would be allowed again.
        retry_after: Duration,
        /// The limit.
        limit: u32,
    },
    /// The IP is blocked for repeated excess (429).
    Blocked {
        /// Until the block ends.
        retry_after: Duration,
    },
}

/// A decision: go on (with the headroom left, unless the IP is allow-listed), or not.
pub type Decision = Result<Option<Headroom>, Refusal>;

type Keyed<K, C> = RateLimiter<K, DashMapStateStore<K>, C, StateInformationMiddleware>;

/// A limiter of `limit` per key, on `clock`.
fn keyed<K: Hash + Eq + Clone, C: Clock>(limit: Limit, clock: C) -> Keyed<K, C> {
    RateLimiter::new(limit.quota(), DashMapStateStore::default(), clock)
}

struct ClassLimiters<C: Clock> {
    ip_limit: Limit,
    by_ip: Keyed<IpAddr, C>,
    token_limit: Limit,
    by_token: Keyed<u64, C>,
}

/// The limiters and blocks, shared by every worker; governor's limiters read the clock `C`.
pub struct RateLimits<C: Clock = DefaultClock> {
    classes: Vec<ClassLimiters<C>>,
    blocks: PenaltyBox,
    /// Where the blocks this instance starts go, for the others sharing its database.
    peers: PeerLine,
    networks: ClientNetworks,
    allow: IpList,
    deny: IpList,
    clock: C,
}

impl RateLimits {
    /// Limiters for `settings`, one budget per client of `networks`, on the real clock.
    pub fn new(settings: &RateLimitSettings, networks: ClientNetworks) -> Self {
        Self::with_clock(settings, networks, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// Limiters for `settings`, one budget per client of `networks`, whose GCRA reads `clock`
    /// (tests pass a fake one).
    pub fn with_clock(settings: &RateLimitSettings, networks: ClientNetworks, clock: C) -> Self {
        let classes = settings
            .limits
            .iter()
            .zip(&settings.token_limits)
            .map(|(&ip_limit, &token_limit)| ClassLimiters {
                ip_limit,
                by_ip: keyed(ip_limit, clock.clone()),
                token_limit,
                by_token: keyed(token_limit, clock.clone()),
            })
            .collect();
        Self {
            classes,
            blocks: PenaltyBox::new(settings.blocks, networks),
            peers: PeerLine::default(),
            networks,
            allow: settings.allow.clone(),
            deny: settings.deny.clone(),
            clock,
        }
    }

    /// Sends each block this instance starts to `peers` as well (the other instances sharing the
    /// database, which block the client too). A block that finds the queue full stays here.
    pub fn share_blocks(&self, peers: mpsc::Sender<PeerNews>) {
        self.peers.connect(peers);
    }

    /// Blocks `ip` for `length` from `now`: another instance blocked it.
    pub fn blocked_elsewhere(&self, ip: IpAddr, length: Duration, now: Instant) {
        self.blocks.block(ip, length, now);
    }

    /// Whether `ip` is allow-listed (then no limit or block applies to it).
    pub fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.contains(ip)
    }

    /// Counts a request from `ip` in `class`, made at `now`.
    pub fn check_ip(&self, ip: IpAddr, class: EndpointClass, now: Instant) -> Decision {
        if self.deny.contains(ip) {
            return Err(Refusal::Denied);
        }
        if self.allowed(ip) {
            return Ok(None);
        }
        if let Some(retry_after) = self.blocks.blocked(ip, now) {
            return Err(Refusal::Blocked { retry_after });
        }
        let limiters = &self.classes[class as usize];
        self.decide(
            limiters.ip_limit,
            limiters.by_ip.check_key(&self.networks.key(ip)),
            ip,
            class,
            now,
        )
    }

    /// Counts a request by the token keyed `token` (from `ip`) in `class`, made at `now`.
    pub fn check_token(
        &self,
        token: u64,
        ip: IpAddr,
        class: EndpointClass,
        now: Instant,
    ) -> Decision {
        if self.allowed(ip) {
            return Ok(None);
        }
        let limiters = &self.classes[class as usize];
        let outcome = limiters.by_token.check_key(&token);
        self.decide(limiters.token_limit, outcome, ip, class, now)
    }

    fn decide(
        &self,
        limit: Limit,
        outcome: Result<StateSnapshot, NotUntil<C::Instant>>,
        ip: IpAddr,
        class: EndpointClass,
        now: Instant,
    ) -> Decision {
        let per_request = limit.spacing();
        match outcome {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Ok(Some(Headroom {
                    limit: limit.requests.get(),
                    remaining,
                    reset: per_request * (limit.requests.get() - remaining),
                }))
            }
            Err(not_until) => match self.blocks.strike(ip, now) {
                Strike::Counted => Err(Refusal::Limited {
                    retry_after: not_until.wait_time_from(self.clock.now()),
                    limit: limit.requests.get(),
                }),
                Strike::Blocked(retry_after, blocks) => {
                    tracing::warn!(
                        target: "audit",
                        kind = "ip.blocked",
                        client = %ip,
                        class = class.name(),
                        block_s = retry_after.as_secs_f64(),
                        blocks,
                        "client blocked for repeated excess over the rate limit"
                    );
                    self.peers.tell(PeerNews::Blocked(ip, retry_after));
                    Err(Refusal::Blocked { retry_after })
                }
            },
        }
    }

    /// Forgets idle keys, and IPs quiet at `now`.
    pub fn sweep(&self, now: Instant) {
        for class in &self.classes {
            class.by_ip.retain_recent();
            class.by_token.retain_recent();
            class.by_ip.shrink_to_fit();
            class.by_token.shrink_to_fit();
        }
        self.blocks.sweep(now);
    }
}

/// How often the actor sweeps.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Owns the rate limiter's upkeep; the limits themselves are read by every worker directly.
pub struct RateLimitActor {
    limits: Arc<RateLimits>,
}

impl RateLimitActor {
    /// An actor keeping `limits` tidy.
    pub fn new(limits: Arc<RateLimits>) -> Self {
        Self { limits }
    }
}

impl Actor for RateLimitActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SWEEP_INTERVAL, |actor, _| {
            actor.limits.sweep(Instant::now())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::Method;
    use governor::clock::FakeRelativeClock;

    const SECOND: Duration = Duration::from_secs(1);

    fn settings(limit: &str) -> RateLimitSettings {
        let limit = Limit::parse(limit).unwrap();
        RateLimitSettings {
            limits: [limit; EndpointClass::COUNT],
            token_limits: [limit; EndpointClass::COUNT],
            blocks: PenaltySettings {
                threshold: 3,
                window: Duration::from_secs(60),
                base: Duration::from_secs(10),
                cap: Duration::from_secs(60),
            },
            allow: IpList::parse("10.9.0.0/16").unwrap(),
            deny: IpList::parse("10.6.6.6").unwrap(),
        }
    }

    /// Rate limits on made-up time: governor's fake clock and the `now` the blocks are told,
    /// moved together.
    struct FakeTime {
        limits: RateLimits<FakeRelativeClock>,
        clock: FakeRelativeClock,
        now: Instant,
    }

    impl FakeTime {
        fn new(limit: &str) -> Self {
            let clock = FakeRelativeClock::default();
            Self {
                limits: RateLimits::with_clock(
                    &settings(limit),
                    ClientNetworks::default(),
                    clock.clone(),
                ),
                clock,
                now: Instant::now(),
            }
        }

        fn advance(&mut self, by: Duration) {
            self.clock.advance(by);
            self.now += by;
        }

        fn check_ip(&self, ip: IpAddr, class: EndpointClass) -> Decision {
            self.limits.check_ip(ip, class, self.now)
        }
    }

    #[test]
    fn limits_parse() {
        assert_eq!(
            Limit::parse("600/min").unwrap(),
            Limit {
                requests: NonZeroU32::new(600).unwrap(),
                per: Duration::from_secs(60)
            }
        );
        for bad in ["600", "0/min", "x/min", "5/day", "-1/s"] {
            assert!(Limit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn classes_follow_method_and_path() {
        assert_eq!(
            EndpointClass::of(&Method::GET, "/api/calls"),
            EndpointClass::ApiRead
        );
        assert_eq!(
            EndpointClass::of(&Method::POST, "/api/calls"),
            EndpointClass::ApiWrite
        );
        assert_eq!(
            EndpointClass::of(&Method::POST, "/twilio/voice"),
            EndpointClass::Twilio
        );
        assert_eq!(
            EndpointClass::of(&Method::POST, "/webhooks/resend"),
            EndpointClass::Webhooks
        );
        assert_eq!(
            EndpointClass::of(&Method::GET, "/health"),
            EndpointClass::ApiRead
        );
    }

    #[test]
    fn each_key_has_its_own_budget_and_excess_says_when_to_retry() {
        let time = FakeTime::new("3/min");
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let first = time.check_ip(a, EndpointClass::ApiRead).unwrap().unwrap();
        assert_eq!((first.limit, first.remaining), (3, 2));
        assert_eq!(first.reset, 20 * SECOND);
        time.check_ip(a, EndpointClass::ApiRead).unwrap();
        time.check_ip(a, EndpointClass::ApiRead).unwrap();
        assert_eq!(
            time.check_ip(a, EndpointClass::ApiRead),
            Err(Refusal::Limited {
                retry_after: 20 * SECOND,
                limit: 3
            })
        );
        assert!(
            time.check_ip(b, EndpointClass::ApiRead).is_ok(),
            "another IP"
        );
        assert!(
            time.check_ip(a, EndpointClass::ApiWrite).is_ok(),
            "another class"
        );
        assert!(
            time.limits
                .check_token(7, a, EndpointClass::ApiRead, time.now)
                .is_ok(),
            "a token"
        );
    }

    #[test]
    fn a_spent_budget_refills_at_the_limits_pace() {
        let mut time = FakeTime::new("3/min");
        let ip: IpAddr = [192, 0, 2, 1].into();
        for _ in 0..3 {
            time.check_ip(ip, EndpointClass::ApiRead).unwrap();
        }
        time.advance(19 * SECOND);
        assert!(matches!(
            time.check_ip(ip, EndpointClass::ApiRead),
            Err(Refusal::Limited { retry_after, .. }) if retry_after == SECOND
        ));
        time.advance(SECOND);
        let refilled = time.check_ip(ip, EndpointClass::ApiRead).unwrap().unwrap();
        assert_eq!(refilled.remaining, 0);
        assert!(time.check_ip(ip, EndpointClass::ApiRead).is_err());
    }

    #[test]
    fn repeated_excess_blocks_the_ip() {
        let time = FakeTime::new("1/min");
        let ip: IpAddr = [192, 0, 2, 1].into();
        time.check_ip(ip, EndpointClass::ApiRead).unwrap();
        for _ in 0..2 {
            assert!(matches!(
                time.check_ip(ip, EndpointClass::ApiRead),
                Err(Refusal::Limited { .. })
            ));
        }
        assert_eq!(
            time.check_ip(ip, EndpointClass::ApiRead),
            Err(Refusal::Blocked {
                retry_after: 10 * SECOND
            })
        );
        assert!(
            matches!(
                time.check_ip(ip, EndpointClass::Twilio),
                Err(Refusal::Blocked { .. })
            ),
            "a block covers every class"
        );
    }

    #[test]
    fn a_block_ends_after_its_time_and_the_next_one_doubles() {
        let mut time = FakeTime::new("1/min");
        let ip: IpAddr = [192, 0, 2, 1].into();
        time.check_ip(ip, EndpointClass::ApiRead).unwrap();
        for _ in 0..3 {
            time.check_ip(ip, EndpointClass::ApiRead).unwrap_err();
        }
        time.advance(9 * SECOND);
        assert_eq!(
            time.check_ip(ip, EndpointClass::ApiRead),
            Err(Refusal::Blocked {
                retry_after: SECOND
            })
        );
        time.advance(SECOND);
        assert!(
            matches!(
                time.check_ip(ip, EndpointClass::ApiRead),
                Err(Refusal::Limited { .. })
            ),
            "the block is over; the minute's budget is still spent"
        );
        time.check_ip(ip, EndpointClass::ApiRead).unwrap_err();
        assert_eq!(
            time.check_ip(ip, EndpointClass::ApiRead),
            Err(Refusal::Blocked {
                retry_after: 20 * SECOND
            }),
            "doubled"
        );
    }

    #[test]
    fn allow_and_deny_lists_come_first() {
        let time = FakeTime::new("1/min");
        let allowed: IpAddr = [10, 9, 1, 1].into();
        for _ in 0..10 {
            assert_eq!(time.check_ip(allowed, EndpointClass::Twilio), Ok(None));
        }
        assert_eq!(
            time.check_ip([10, 6, 6, 6].into(), EndpointClass::ApiRead),
            Err(Refusal::Denied)
        );
    }
}
