//! Rate limiting: governor's keyed GCRA limiters per endpoint class, keyed by client IP and by
//! token, with graduated IP blocks for repeated excess, and the operator's allow and deny lists.
//!
//! Decisions are made on shared, lock-sharded state ([`RateLimits`]) by the request's own worker:
//! no mailbox on the hot path. The [`RateLimitActor`] owns that state's upkeep (forgetting idle
//! keys and quiet IPs).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use super::client_ip::IpList;
use super::penalty::{PenaltyBox, PenaltySettings, Strike};

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
        Ok(Self { requests, per })
    }

    fn quota(self) -> Quota {
        Quota::with_period(self.per / self.requests.get())
            .expect("a limit's period is not zero")
            .allow_burst(self.requests)
    }
}

/// Everything the rate limiter is configured with.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// The limit per class, applied per client IP and per token (in [`EndpointClass`] order).
    pub limits: [Limit; EndpointClass::COUNT],
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

type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, DefaultClock, StateInformationMiddleware>;

struct ClassLimiters {
    limit: Limit,
    by_ip: Keyed<IpAddr>,
    by_token: Keyed<u64>,
}

/// The limiters and blocks, shared by every worker.
pub struct RateLimits {
    classes: Vec<ClassLimiters>,
    blocks: PenaltyBox,
    allow: IpList,
    deny: IpList,
    clock: DefaultClock,
}

impl RateLimits {
    /// Limiters for `settings`.
    pub fn new(settings: &RateLimitSettings) -> Self {
        let classes = settings
            .limits
            .iter()
            .map(|&limit| ClassLimiters {
                limit,
                by_ip: RateLimiter::dashmap(limit.quota())
                    .with_middleware::<StateInformationMiddleware>(),
                by_token: RateLimiter::dashmap(limit.quota())
                    .with_middleware::<StateInformationMiddleware>(),
            })
            .collect();
        Self {
            classes,
            blocks: PenaltyBox::new(settings.blocks),
            allow: settings.allow.clone(),
            deny: settings.deny.clone(),
            clock: DefaultClock::default(),
        }
    }

    /// Whether `ip` is allow-listed (then no limit or block applies to it).
    pub fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.contains(ip)
    }

    /// Counts a request from `ip` in `class`.
    pub fn check_ip(&self, ip: IpAddr, class: EndpointClass) -> Decision {
        if self.deny.contains(ip) {
            return Err(Refusal::Denied);
        }
        if self.allowed(ip) {
            return Ok(None);
        }
        let now = Instant::now();
        if let Some(retry_after) = self.blocks.blocked(ip, now) {
            return Err(Refusal::Blocked { retry_after });
        }
        let limiters = &self.classes[class as usize];
        self.decide(
            limiters.limit,
            limiters.by_ip.check_key(&ip),
            ip,
            class,
            now,
        )
    }

    /// Counts a request by the token keyed `token` (from `ip`) in `class`.
    pub fn check_token(&self, token: u64, ip: IpAddr, class: EndpointClass) -> Decision {
        if self.allowed(ip) {
            return Ok(None);
        }
        let limiters = &self.classes[class as usize];
        let outcome = limiters.by_token.check_key(&token);
        self.decide(limiters.limit, outcome, ip, class, Instant::now())
    }

    fn decide(
        &self,
        limit: Limit,
        outcome: Result<
            governor::middleware::StateSnapshot,
            governor::NotUntil<<DefaultClock as Clock>::Instant>,
        >,
        ip: IpAddr,
        class: EndpointClass,
        now: Instant,
    ) -> Decision {
        let per_request = limit.per / limit.requests.get();
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
                    Err(Refusal::Blocked { retry_after })
                }
            },
        }
    }

    /// Forgets idle keys and quiet IPs.
    pub fn sweep(&self) {
        for class in &self.classes {
            class.by_ip.retain_recent();
            class.by_token.retain_recent();
            class.by_ip.shrink_to_fit();
            class.by_token.shrink_to_fit();
        }
        self.blocks.sweep(Instant::now());
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
        ctx.run_interval(SWEEP_INTERVAL, |actor, _| actor.limits.sweep());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::Method;

    fn settings(limit: &str) -> RateLimitSettings {
        let limit = Limit::parse(limit).unwrap();
        RateLimitSettings {
            limits: [limit; EndpointClass::COUNT],
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
        let limits = RateLimits::new(&settings("3/min"));
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let first = limits.check_ip(a, EndpointClass::ApiRead).unwrap().unwrap();
        assert_eq!((first.limit, first.remaining), (3, 2));
        assert_eq!(first.reset, Duration::from_secs(20));
        limits.check_ip(a, EndpointClass::ApiRead).unwrap();
        limits.check_ip(a, EndpointClass::ApiRead).unwrap();
        match limits.check_ip(a, EndpointClass::ApiRead) {
            Err(Refusal::Limited { retry_after, limit }) => {
                assert_eq!(limit, 3);
                assert!(
                    retry_after > Duration::from_secs(15) && retry_after <= Duration::from_secs(20)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            limits.check_ip(b, EndpointClass::ApiRead).is_ok(),
            "another IP"
        );
        assert!(
            limits.check_ip(a, EndpointClass::ApiWrite).is_ok(),
            "another class"
        );
        assert!(
            limits.check_token(7, a, EndpointClass::ApiRead).is_ok(),
            "a token"
        );
    }

    #[test]
    fn repeated_excess_blocks_the_ip() {
        let limits = RateLimits::new(&settings("1/min"));
        let ip: IpAddr = [192, 0, 2, 1].into();
        limits.check_ip(ip, EndpointClass::ApiRead).unwrap();
        for _ in 0..2 {
            assert!(matches!(
                limits.check_ip(ip, EndpointClass::ApiRead),
                Err(Refusal::Limited { .. })
            ));
        }
        assert_eq!(
            limits.check_ip(ip, EndpointClass::ApiRead),
            Err(Refusal::Blocked {
                retry_after: Duration::from_secs(10)
            })
        );
        assert!(
            matches!(
                limits.check_ip(ip, EndpointClass::Twilio),
                Err(Refusal::Blocked { .. })
            ),
            "a block covers every class"
        );
    }

    #[test]
    fn allow_and_deny_lists_come_first() {
        let limits = RateLimits::new(&settings("1/min"));
        let allowed: IpAddr = [10, 9, 1, 1].into();
        for _ in 0..10 {
            assert_eq!(limits.check_ip(allowed, EndpointClass::Twilio), Ok(None));
        }
        assert_eq!(
            limits.check_ip([10, 6, 6, 6].into(), EndpointClass::ApiRead),
            Err(Refusal::Denied)
        );
    }
}
