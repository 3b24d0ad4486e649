//! Open-loop pacing against the clock: message `i` of an emitter is due at
//! `(i + phase) / rate` seconds after the start, whatever happened before. Emitters get
//! phases spread over `[0, 1)`, so that a thousand emitters at 50 msg/s send 50 messages
//! every millisecond, as independent hosts would, not 1,000 at once every 20 ms. A sender that fell behind sends what
//! is due at once (in batches), so the offered load is met exactly and the lag is measured,
//! not hidden. Pure: the caller passes the elapsed time.

use std::time::Duration;

/// The schedule of one emitter at a fixed rate.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    rate: f64,
    /// Fraction of a period by which every message is late, in `[0, 1)`.
    phase: f64,
}

impl Schedule {
    /// `rate` messages per second (finite, > 0), message 0 due at once.
    pub fn new(rate: f64) -> Self {
        Self { rate, phase: 0.0 }
    }

    /// The same schedule shifted by `phase` of a period (taken modulo 1).
    pub fn with_phase(self, phase: f64) -> Self {
        Self {
            phase: phase.rem_euclid(1.0),
            ..self
        }
    }

    /// The phase of emitter `k` of `n`: evenly spread over a period.
    pub fn spread(k: u32, n: u32) -> f64 {
        f64::from(k) / f64::from(n.max(1))
    }

    /// How many messages are due `elapsed` after the start.
    pub fn due(&self, elapsed: Duration) -> u64 {
        let periods = elapsed.as_secs_f64() * self.rate - self.phase;
        if periods < 0.0 {
            0
        } else {
            periods.floor() as u64 + 1
        }
    }

    /// When message `i` is due.
    pub fn at(&self, i: u64) -> Duration {
        Duration::from_secs_f64((i as f64 + self.phase) / self.rate)
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
    fn a_phase_delays_every_message_by_that_part_of_a_period() {
        let s = Schedule::new(50.0).with_phase(0.25);
        assert_eq!(s.due(Duration::ZERO), 0);
        assert_eq!(s.due(Duration::from_micros(4999)), 0);
        assert_eq!(s.due(Duration::from_millis(5)), 1);
        assert_eq!(s.at(0), Duration::from_millis(5));
        assert_eq!(s.at(1), Duration::from_millis(25));
        assert_eq!(s.due(Duration::from_secs(1)), 50);
        // 1,000 emitters at 50 msg/s: within any 1 ms, 50 of them are due.
        let due_in = |from: u64, to: u64| {
            (0..1000)
                .map(|k| {
                    Schedule::new(50.0)
                        .with_phase(Schedule::spread(k, 1000))
                        .due_between(Duration::from_millis(from), Duration::from_millis(to))
                })
                .sum::<u64>()
        };
        assert_eq!(due_in(100, 101), 50);
        assert_eq!(due_in(107, 108), 50);
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
