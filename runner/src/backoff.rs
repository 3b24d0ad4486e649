//! Exponential backoff as a pure value: the delay before attempt `k` is `initial * 2^k`,
//! capped at `max`. [`Retry`] walks it for one reconnect loop. Every retry in the
//! workspace uses it: the loadgen's and the sink's reconnects and the distributor's
//! holding-queue retries.

use std::time::Duration;

/// Delays that double from `initial` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Backoff {
    /// Delays from `initial`, doubling up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The delay before retry `k` (0-based).
    pub fn delay(&self, k: u32) -> Duration {
        self.initial
            .checked_mul(1u32.checked_shl(k).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// A fresh walk through the delays.
    pub fn retry(self) -> Retry {
        Retry {
            backoff: self,
            attempt: 0,
        }
    }
}

/// One loop's place in a [`Backoff`].
#[derive(Debug, Clone)]
pub struct Retry {
    backoff: Backoff,
    attempt: u32,
}

impl Retry {
    /// The delay to wait now; the next one is twice as long (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.backoff.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// After a success: the next failure waits the initial delay again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let b = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        let mut r = b.retry();
        let ms: Vec<u128> = (0..7).map(|_| r.next_delay().as_millis()).collect();
        assert_eq!(ms, [50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(r.attempts(), 7);
        r.reset();
        assert_eq!(r.next_delay(), Duration::from_millis(50));
        assert_eq!(b.delay(1000), Duration::from_secs(1), "no overflow far out");
    }
}
