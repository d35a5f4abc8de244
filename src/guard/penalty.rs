//! Temporary IP blocks that grow: the graduated response shared by authentication lockout and
//! rate limiting.
//!
//! Each offence (a failed authentication, a request over the limit) is a strike. `threshold`
//! strikes within `window` block the IP for `base`; each further block doubles, up to `cap`. An
//! IP's record (and so its doubling) is forgotten once it has been quiet for `cap` after its last
//! block ended. An IPv6 client is its network ([`ClientNetworks`]): addresses rotated inside it
//! share one record.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::mpsc;

use super::client_ip::ClientNetworks;

/// How strikes turn into blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PenaltySettings {
    /// Strikes within `window` that start a block.
    pub threshold: u32,
    /// The window strikes are counted in.
    pub window: Duration,
    /// The first block's length.
    pub base: Duration,
    /// The longest block.
    pub cap: Duration,
}

#[derive(Debug)]
struct Record {
    strikes: u32,
    window_start: Instant,
    blocks: u32,
    blocked_until: Option<Instant>,
}

/// What a strike led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    /// Counted; no block yet.
    Counted,
    /// The IP is now blocked for this long (the `n`th block in a row).
    Blocked(Duration, u32),
}

/// What an instance tells the others sharing its database about a client, for them to act as
/// if they had seen it (see [`crate::calls::relay`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerNews {
    /// The client failed to authenticate.
    AuthFailure(IpAddr),
    /// The client was blocked for this long for excess over the rate limits.
    Blocked(IpAddr, Duration),
}

/// Where a guard's [`PeerNews`] goes once the server connects it to the other instances (until
/// then, and on SQLite, nowhere). News that finds the queue full stays with this instance.
#[derive(Debug, Default)]
pub struct PeerLine(OnceLock<mpsc::Sender<PeerNews>>);

impl PeerLine {
    /// Sends the news from now on to `peers` (the first connection holds).
    pub fn connect(&self, peers: mpsc::Sender<PeerNews>) {
        let _ = self.0.set(peers);
    }

    /// Tells the other instances `news`, if connected and the queue has room.
    pub fn tell(&self, news: PeerNews) {
        if let Some(peers) = self.0.get() {
            let _ = peers.try_send(news);
        }
    }
}

/// Clients a box keeps records of, at most (about 100 bytes each). Past it, a new client's strikes
/// go uncounted until a sweep frees room: a spray from more addresses than that defeats per-client
/// counting anyway, and memory stays bounded whatever the request rate.
pub const MAX_RECORDS: usize = 200_000;

/// Per-client strikes and blocks.
#[derive(Debug)]
pub struct PenaltyBox {
    settings: PenaltySettings,
    networks: ClientNetworks,
    records: DashMap<IpAddr, Record>,
    untracked: AtomicU64,
}

impl PenaltyBox {
    /// An empty box keeping a record per client of `networks`.
    pub fn new(settings: PenaltySettings, networks: ClientNetworks) -> Self {
        Self {
            settings,
            networks,
            records: DashMap::new(),
            untracked: AtomicU64::new(0),
        }
    }

    /// How much longer `ip` is blocked, if it is.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let record = self.records.get(&self.networks.key(ip))?;
        let until = record.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts an offence by `ip`.
    pub fn strike(&self, ip: IpAddr, now: Instant) -> Strike {
        let settings = self.settings;
        let key = self.networks.key(ip);
        if self.records.len() >= MAX_RECORDS && !self.records.contains_key(&key) {
            let untracked = self.untracked.fetch_add(1, Ordering::Relaxed) + 1;
            if untracked.is_power_of_two() {
                tracing::warn!(
                    untracked,
                    "penalty box full: strikes of new clients are not counted until a sweep"
                );
            }
            return Strike::Counted;
        }
        let mut record = self.records.entry(key).or_insert(Record {
            strikes: 0,
            window_start: now,
            blocks: 0,
            blocked_until: None,
        });
        if now.duration_since(record.window_start) > settings.window {
            record.strikes = 0;
            record.window_start = now;
        }
        record.strikes += 1;
        if record.strikes < settings.threshold {
            return Strike::Counted;
        }
        let doubling = 1u32 << record.blocks.min(20);
        let length = settings.base.saturating_mul(doubling).min(settings.cap);
        record.blocks += 1;
        record.strikes = 0;
        record.window_start = now;
        record.blocked_until = Some(now + length);
        Strike::Blocked(length, record.blocks)
    }

    /// Blocks `ip` for `length` from `now`, as another instance did (its strikes and the
    /// doubling of its blocks are that instance's), unless it is blocked longer already.
    pub fn block(&self, ip: IpAddr, length: Duration, now: Instant) {
        let key = self.networks.key(ip);
        if self.records.len() >= MAX_RECORDS && !self.records.contains_key(&key) {
            return;
        }
        let mut record = self.records.entry(key).or_insert(Record {
            strikes: 0,
            window_start: now,
            blocks: 0,
            blocked_until: None,
        });
        record.blocked_until = record.blocked_until.max(Some(now + length));
    }

    /// Forgets IPs that have been quiet long enough; bounds memory under a spray of addresses.
    pub fn sweep(&self, now: Instant) {
        let PenaltySettings { window, cap, .. } = self.settings;
        self.records.retain(|_, record| match record.blocked_until {
            Some(until) => until + cap > now,
            None => now.duration_since(record.window_start) <= window,
        });
    }

    /// IPs with a record.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no IP has a record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_block_from_elsewhere_holds_its_length_and_never_shortens_one() {
        let box_ = penalties();
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let now = Instant::now();
        box_.block(ip, 60 * SECOND, now);
        assert_eq!(box_.blocked(ip, now), Some(60 * SECOND));
        box_.block(ip, 10 * SECOND, now);
        assert_eq!(box_.blocked(ip, now), Some(60 * SECOND), "not shortened");
        assert_eq!(box_.blocked(ip, now + 60 * SECOND), None);
        // The client's own strikes still count from zero here.
        assert_eq!(box_.strike(ip, now), Strike::Counted);
    }

    fn penalties() -> PenaltyBox {
        PenaltyBox::new(
            PenaltySettings {
                threshold: 3,
                window: 10 * SECOND,
                base: 2 * SECOND,
                cap: 5 * SECOND,
            },
            ClientNetworks::default(),
        )
    }

    #[test]
    fn threshold_strikes_block_and_blocks_double_up_to_the_cap() {
        let penalties = penalties();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let t0 = Instant::now();
        assert_eq!(penalties.strike(ip, t0), Strike::Counted);
        assert_eq!(penalties.strike(ip, t0), Strike::Counted);
        assert_eq!(penalties.strike(ip, t0), Strike::Blocked(2 * SECOND, 1));
        assert_eq!(penalties.blocked(ip, t0 + SECOND), Some(SECOND));
        assert_eq!(penalties.blocked(ip, t0 + 2 * SECOND), None);
        let t1 = t0 + 3 * SECOND;
        penalties.strike(ip, t1);
        penalties.strike(ip, t1);
        assert_eq!(penalties.strike(ip, t1), Strike::Blocked(4 * SECOND, 2));
        let t2 = t1 + 5 * SECOND;
        penalties.strike(ip, t2);
        penalties.strike(ip, t2);
        assert_eq!(penalties.strike(ip, t2), Strike::Blocked(5 * SECOND, 3));
        assert_eq!(penalties.blocked([10, 0, 0, 2].into(), t2), None);
    }

    #[test]
    fn strikes_expire_with_their_window() {
        let penalties = penalties();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let t0 = Instant::now();
        penalties.strike(ip, t0);
        penalties.strike(ip, t0);
        assert_eq!(penalties.strike(ip, t0 + 11 * SECOND), Strike::Counted);
        penalties.strike(ip, t0 + 11 * SECOND);
        assert_eq!(
            penalties.strike(ip, t0 + 12 * SECOND),
            Strike::Blocked(2 * SECOND, 1)
        );
    }

    #[test]
    fn addresses_rotated_inside_an_ipv6_network_share_its_strikes() {
        let penalties = penalties();
        let t0 = Instant::now();
        for host in 1..=2 {
            let ip: IpAddr = format!("2001:db8:0:7::{host}").parse().unwrap();
            assert_eq!(penalties.strike(ip, t0), Strike::Counted);
        }
        let third: IpAddr = "2001:db8:0:7:ffff::3".parse().unwrap();
        assert_eq!(penalties.strike(third, t0), Strike::Blocked(2 * SECOND, 1));
        assert!(penalties
            .blocked("2001:db8:0:7::99".parse().unwrap(), t0)
            .is_some());
        assert_eq!(
            penalties.blocked("2001:db8:0:8::1".parse().unwrap(), t0),
            None
        );
    }

    #[test]
    fn a_spray_of_clients_is_bounded() {
        let penalties = penalties();
        let t0 = Instant::now();
        for n in 0..(MAX_RECORDS as u32 + 10) {
            penalties.strike(IpAddr::V4(n.into()), t0);
        }
        assert_eq!(penalties.len(), MAX_RECORDS);
        let known = IpAddr::V4(0.into());
        penalties.strike(known, t0);
        assert_eq!(
            penalties.strike(known, t0),
            Strike::Blocked(2 * SECOND, 1),
            "clients already tracked still count"
        );
        let late = IpAddr::V4(u32::MAX.into());
        for _ in 0..3 {
            assert_eq!(penalties.strike(late, t0), Strike::Counted, "no room");
        }
        let t1 = t0 + 11 * SECOND;
        penalties.sweep(t1);
        assert!(penalties.is_empty());
        penalties.strike(late, t1);
        penalties.strike(late, t1);
        assert_eq!(
            penalties.strike(late, t1),
            Strike::Blocked(2 * SECOND, 1),
            "room again after the sweep"
        );
    }

    #[test]
    fn quiet_ips_are_forgotten() {
        let penalties = penalties();
        let t0 = Instant::now();
        penalties.strike([10, 0, 0, 1].into(), t0);
        for _ in 0..3 {
            penalties.strike([10, 0, 0, 2].into(), t0);
        }
        penalties.sweep(t0 + 6 * SECOND);
        assert_eq!(penalties.len(), 2);
        penalties.sweep(t0 + 8 * SECOND);
        assert_eq!(
            penalties.len(),
            1,
            "a block is remembered for the cap after it ends"
        );
        penalties.sweep(t0 + 11 * SECOND);
        assert!(penalties.is_empty());
    }
}
