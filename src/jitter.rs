//! Random fractions for backoff jitter, injected so that tests choose them: the system's secure
//! generator in production (`ring`), fixed fractions in tests.

use ring::rand::{SecureRandom, SystemRandom};

/// A source of uniform random fractions.
pub trait Jitter {
    /// A number drawn uniformly from `[0, 1]`.
    fn fraction(&self) -> f64;
}

impl Jitter for SystemRandom {
    /// 53 random bits as a fraction; the whole delay (1.0) if the system's generator fails, which
    /// only costs waiting longer.
    fn fraction(&self) -> f64 {
        let mut bytes = [0u8; 8];
        if self.fill(&mut bytes).is_err() {
            return 1.0;
        }
        (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_randomness_draws_fractions_within_bounds() {
        let random = SystemRandom::new();
        for _ in 0..100 {
            let fraction = random.fraction();
            assert!((0.0..=1.0).contains(&fraction), "{fraction}");
        }
    }
}
