//! Time-dependent decisions as pure structs driven by an injected clock (`Instant`s passed
//! in), so they are tested without sleeping: hang detection of an analyzer session and the
//! retry schedule of the holding queue.

use runner::backoff::Backoff;
use std::time::{Duration, Instant};

/// Why a session is considered hung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hang {
    /// A write has been pending with no byte accepted by the socket.
    Write(Duration),
    /// Frames are outstanding and no ACK has advanced.
    Ack(Duration),
}

impl std::fmt::Display for Hang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hang::Write(d) => write!(f, "no write progress for {:.1}s", d.as_secs_f64()),
            Hang::Ack(d) => write!(
                f,
                "no ACK progress for {:.1}s with frames outstanding",
                d.as_secs_f64()
            ),
        }
    }
}

/// Progress bookkeeping of one analyzer session.
#[derive(Debug, Clone)]
pub struct Liveness {
    timeout: Duration,
    /// Set while a write is pending: the time of its last progress (or its start).
    write_progress: Option<Instant>,
    /// Set while ACKs are outstanding: the time of the last ACK progress (or since when
    /// frames have been outstanding).
    ack_progress: Option<Instant>,
}

impl Liveness {
    /// A session that is hung after `timeout` without progress.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            write_progress: None,
            ack_progress: None,
        }
    }

    /// A write of pending bytes starts.
    pub fn write_started(&mut self, now: Instant) {
        self.write_progress = Some(now);
    }

    /// The socket accepted some bytes; `done` when nothing is left to write.
    pub fn wrote(&mut self, now: Instant, done: bool) {
        self.write_progress = if done { None } else { Some(now) };
    }

    /// The number of written but unacknowledged frames changed to `outstanding`, by an
    /// ACK (`advanced`) or by a write.
    pub fn outstanding(&mut self, now: Instant, outstanding: usize, advanced: bool) {
        if outstanding == 0 {
            self.ack_progress = None;
        } else if advanced || self.ack_progress.is_none() {
            self.ack_progress = Some(now);
        }
    }

    /// Whether the session is hung at `now`.
    pub fn check(&self, now: Instant) -> Option<Hang> {
        let stalled = |since: Option<Instant>| {
            since
                .map(|t| now.saturating_duration_since(t))
                .filter(|d| *d >= self.timeout)
        };
        stalled(self.write_progress)
            .map(Hang::Write)
            .or_else(|| stalled(self.ack_progress).map(Hang::Ack))
    }
}

/// Exponential backoff of the holding queue: retry `k` (from 0) happens `backoff.delay(k)`
/// after the previous one (10 ms doubling to 2 s); after `max_attempts` failed retries a
/// frame is given up.
#[derive(Debug, Clone, Copy)]
pub struct RetrySchedule {
    /// The delays between retries.
    pub backoff: Backoff,
    /// Retries before a frame is dropped.
    pub max_attempts: u32,
}

impl RetrySchedule {
    /// The schedule used by the distributor: 10 ms doubling to 2 s.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_secs(2)),
            max_attempts,
        }
    }

    /// The delay before retry `k` (0-based).
    pub fn delay(&self, k: u32) -> Duration {
        self.backoff.delay(k)
    }

    /// How long a frame may wait before its last retry has failed.
    pub fn give_up_after(&self) -> Duration {
        (0..self.max_attempts).map(|k| self.delay(k)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn write_hang_needs_a_pending_write_without_progress() {
        let t0 = Instant::now();
        let mut l = Liveness::new(T);
        assert_eq!(l.check(t0 + T * 10), None, "idle is not hung");
        l.write_started(t0);
        assert_eq!(l.check(t0 + Duration::from_secs(4)), None);
        l.wrote(t0 + Duration::from_secs(4), false);
        assert_eq!(
            l.check(t0 + Duration::from_secs(8)),
            None,
            "progress resets the clock"
        );
        assert_eq!(l.check(t0 + Duration::from_secs(9)), Some(Hang::Write(T)));
        l.wrote(t0 + Duration::from_secs(9), true);
        assert_eq!(
            l.check(t0 + Duration::from_secs(60)),
            None,
            "write finished"
        );
    }

    #[test]
    fn ack_hang_needs_outstanding_frames_without_ack_progress() {
        let t0 = Instant::now();
        let mut l = Liveness::new(T);
        l.outstanding(t0, 10, false);
        l.outstanding(t0 + Duration::from_secs(3), 20, false);
        assert_eq!(l.check(t0 + Duration::from_secs(4)), None);
        assert_eq!(
            l.check(t0 + T),
            Some(Hang::Ack(T)),
            "more writes are not ACK progress"
        );
        l.outstanding(t0 + T, 5, true);
        assert_eq!(l.check(t0 + Duration::from_secs(9)), None);
        l.outstanding(t0 + Duration::from_secs(9), 0, true);
        assert_eq!(l.check(t0 + Duration::from_secs(100)), None);
    }

    #[test]
    fn retry_schedule_doubles_to_the_cap() {
        let s = RetrySchedule::new(20);
        let ms = |k| s.delay(k).as_millis();
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(7), ms(8), ms(19), ms(40)],
            [10, 20, 40, 1280, 2000, 2000, 2000]
        );
        assert_eq!(s.give_up_after(), Duration::from_millis(2550 + 12 * 2000));
        assert_eq!(RetrySchedule::new(0).give_up_after(), Duration::ZERO);
    }
}
