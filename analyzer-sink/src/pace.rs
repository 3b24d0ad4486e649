//! A simulated slow analyzer: at most `capacity` messages per second, as a pure schedule
//! (message `k` of a session may be processed no earlier than `k / capacity` after the
//! session started) driven by the caller's clock.

use std::time::Duration;

/// Processing pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as frames arrive.
    Unlimited,
    /// At most this many messages per second.
    PerSecond(f64),
}

impl Pace {
    /// From the flags: `--capacity` (msg/s) or `--delay-us` (per message).
    pub fn from_flags(capacity: Option<f64>, delay_us: Option<u64>) -> Self {
        match (capacity, delay_us) {
            (Some(c), _) => Pace::PerSecond(c),
            (None, Some(d)) if d > 0 => Pace::PerSecond(1e6 / d as f64),
            _ => Pace::Unlimited,
        }
    }

    /// How many of the next messages may be processed now, with `done` processed since
    /// the session started `elapsed` ago; `Err` carries how long to wait for the next.
    pub fn allowed(&self, done: u64, elapsed: Duration) -> Result<u64, Duration> {
        match self {
            Pace::Unlimited => Ok(u64::MAX),
            Pace::PerSecond(rate) => {
                let due = (elapsed.as_secs_f64() * rate).floor() as u64 + 1;
                if due > done {
                    Ok(due - done)
                } else {
                    Err(Duration::from_secs_f64(done as f64 / rate).saturating_sub(elapsed))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_by_the_clock() {
        let p = Pace::from_flags(Some(100.0), None);
        assert_eq!(p.allowed(0, Duration::ZERO), Ok(1));
        assert_eq!(p.allowed(1, Duration::ZERO), Err(Duration::from_millis(10)));
        assert_eq!(p.allowed(1, Duration::from_millis(25)), Ok(2));
        assert_eq!(
            p.allowed(100, Duration::from_millis(995)),
            Err(Duration::from_millis(5))
        );
        assert_eq!(Pace::from_flags(None, Some(1000)), Pace::PerSecond(1000.0));
        assert_eq!(
            Pace::from_flags(None, None).allowed(1 << 40, Duration::ZERO),
            Ok(u64::MAX)
        );
    }
}
