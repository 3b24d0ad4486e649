//! A simulated slow analyzer: at most `rate` messages per second, as a pure pacer driven
//! by the caller's clock. Message `k` is processed no earlier than `1 / rate` after message
//! `k - 1` was due, so the average rate is exact even though a sleep is only worth taking
//! when it is at least a millisecond (the timer's resolution).
//!
//! The rate can change at run time (SIGUSR1 switches a sink to its `--slow-capacity`,
//! SIGUSR2 back), for a slow phase in the middle of a run.

use std::time::{Duration, Instant};

/// Sleeps shorter than this are deferred: the debt is kept and paid by a later, longer one.
pub const MIN_SLEEP: Duration = Duration::from_millis(1);
/// How far behind the clock the schedule may fall (a sleep that overslept) and still be
/// caught up; idle time beyond it is not banked for a burst.
pub const CREDIT: Duration = Duration::from_millis(5);

/// Processing pace of one sink.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval: Option<Duration>,
    next: Option<Instant>,
}

/// Messages per second from the flags: `--capacity` or `--delay-us` (1e6 / N).
pub fn rate_from_flags(capacity: Option<f64>, delay_us: Option<u64>) -> Option<f64> {
    match (capacity, delay_us) {
        (Some(c), _) => Some(c),
        (None, Some(d)) if d > 0 => Some(1e6 / d as f64),
        _ => None,
    }
}

impl Pacer {
    /// At most `rate` messages per second; `None`: as fast as they come.
    pub fn new(rate: Option<f64>) -> Self {
        Self {
            interval: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            next: None,
        }
    }

    /// Switches to `rate` from now on.
    pub fn set_rate(&mut self, rate: Option<f64>, now: Instant) {
        let interval = rate.map(|r| Duration::from_secs_f64(1.0 / r));
        if interval != self.interval {
            self.interval = interval;
            self.next = Some(now);
        }
    }

    /// Admits the next message at `now`: how long to sleep first (zero: go on).
    pub fn admit(&mut self, now: Instant) -> Duration {
        let Some(interval) = self.interval else {
            return Duration::ZERO;
        };
        let due = self
            .next
            .map_or(now, |n| n.max(now.checked_sub(CREDIT).unwrap_or(now)));
        self.next = Some(due + interval);
        let wait = due.saturating_duration_since(now);
        if wait >= MIN_SLEEP {
            wait
        } else {
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_by_the_clock_without_sleeping_below_a_millisecond() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Some(500.0)); // 2 ms per message
        assert_eq!(p.admit(t0), Duration::ZERO);
        assert_eq!(p.admit(t0), Duration::from_millis(2));
        // After sleeping 2 ms, the third is due at 4 ms.
        assert_eq!(
            p.admit(t0 + Duration::from_millis(2)),
            Duration::from_millis(2)
        );
        // 1000 admissions at one instant are spread over 2 s.
        let mut p = Pacer::new(Some(500.0));
        let last = (0..1000).map(|_| p.admit(t0)).last().unwrap();
        assert_eq!(last, Duration::from_millis(1998));
    }

    #[test]
    fn fast_rates_defer_short_sleeps_but_keep_the_average() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Some(10_000.0)); // 100 µs per message
        let waits: Vec<Duration> = (0..15).map(|_| p.admit(t0)).collect();
        assert!(waits[..10].iter().all(|w| w.is_zero()));
        assert_eq!(waits[10], Duration::from_millis(1));
    }

    #[test]
    fn idle_time_is_not_banked_and_rates_switch() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Some(1000.0));
        p.admit(t0);
        // A long pause allows no burst beyond CREDIT (5 ms: 5 messages at 1000/s).
        let later = t0 + Duration::from_secs(10);
        let waits: Vec<Duration> = (0..7).map(|_| p.admit(later)).collect();
        assert!(waits[..6].iter().all(|w| w.is_zero()), "{waits:?}");
        assert_eq!(waits[6], Duration::from_millis(1));
        p.set_rate(None, later);
        assert_eq!(p.admit(later), Duration::ZERO);
        assert_eq!(p.admit(later), Duration::ZERO);
        assert_eq!(rate_from_flags(None, Some(250)), Some(4000.0));
        assert_eq!(rate_from_flags(Some(7.0), Some(250)), Some(7.0));
        assert_eq!(rate_from_flags(None, None), None);
    }
}
