//! Counting dropped audio without flooding the log.

/// A running count of dropped items that says when to log: at the first drop and each time the
/// total passes another power of two (1, 2, 4, 8, …), however many are dropped at once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DropCounter(u64);

impl DropCounter {
    /// Adds `dropped`; returns the new total when it is worth a log line.
    pub fn add(&mut self, dropped: u64) -> Option<u64> {
        let before = self.0;
        self.0 += dropped;
        let crossed = dropped > 0 && (before == 0 || before.ilog2() != self.0.ilog2());
        crossed.then_some(self.0)
    }

    /// Items dropped so far.
    pub fn total(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_at_each_power_of_two_even_in_batches() {
        let mut drops = DropCounter::default();
        assert_eq!(drops.add(0), None);
        assert_eq!(drops.add(1), Some(1));
        assert_eq!(drops.add(1), Some(2));
        assert_eq!(drops.add(1), None);
        assert_eq!(drops.add(3), Some(6), "passed 4");
        assert_eq!(drops.add(1), None);
        assert_eq!(drops.add(100), Some(107));
        assert_eq!(drops.total(), 107);
    }
}
