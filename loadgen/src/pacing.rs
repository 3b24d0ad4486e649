//! Open-loop pacing against the clock: message `i` of an emitter is due at `i / rate`
//! seconds after the start, whatever happened before. A sender that fell behind sends what
//! is due at once (in batches), so the offered load is met exactly and the lag is measured,
//! not hidden. Pure: the caller passes the elapsed time.

use std::time::Duration;

/// The schedule of one emitter at a fixed rate.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    rate: f64,
}

impl Schedule {
    /// `rate` messages per second (finite, > 0).
    pub fn new(rate: f64) -> Self {
        Self { rate }
    }

    /// How many messages are due `elapsed` after the start (message 0 is due at once).
    pub fn due(&self, elapsed: Duration) -> u64 {
        (elapsed.as_secs_f64() * self.rate).floor() as u64 + 1
    }

    /// When message `i` is due.
    pub fn at(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// How far behind the schedule a sender is that has handled `handled` messages at
    /// `elapsed`: zero when it is up to date.
    pub fn lag(&self, handled: u64, elapsed: Duration) -> Duration {
        elapsed.saturating_sub(self.at(handled))
    }

    /// Messages due in `[from, to)` of elapsed time, for the total over a run.
    pub fn due_between(&self, from: Duration, to: Duration) -> u64 {
        self.due(to).saturating_sub(self.due(from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_counts_follow_the_clock_exactly() {
        let s = Schedule::new(800.0);
        assert_eq!(s.due(Duration::ZERO), 1);
        assert_eq!(s.due(Duration::from_micros(1249)), 1);
        assert_eq!(s.due(Duration::from_micros(1250)), 2);
        assert_eq!(s.due(Duration::from_secs(10)), 8001);
        assert_eq!(s.at(800), Duration::from_secs(1));
        assert_eq!(
            s.due_between(Duration::ZERO, Duration::from_secs(120)),
            96_000
        );
    }

    #[test]
    fn lag_is_time_behind_schedule() {
        let s = Schedule::new(1000.0);
        assert_eq!(s.lag(1001, Duration::from_secs(1)), Duration::ZERO);
        assert_eq!(
            s.lag(500, Duration::from_secs(1)),
            Duration::from_millis(500)
        );
    }
}
