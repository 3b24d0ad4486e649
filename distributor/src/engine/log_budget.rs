//! Log lines that clients can cause at any rate (analyzer sessions starting, ending, being
//! refused) under a budget: at most [`LINES`] per [`WINDOW`]; the first line allowed after
//! some were left out says how many (`suppressed=N`), so churn shows in the log without
//! filling it.

use std::time::{Duration, Instant};

/// Lines allowed per window.
pub(crate) const LINES: u32 = 50;

/// The window.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// Whether a line may be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// Log it, saying how many lines were left out before it.
    Log {
        /// Lines left out since the last one logged.
        suppressed: u64,
    },
    /// Leave it out (counted).
    Quiet,
}

/// The budget: a pure struct, the time given by the caller.
#[derive(Debug, Default)]
pub(crate) struct LogBudget {
    window_start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    /// Takes one line's worth of the budget at `now`.
    pub(crate) fn line(&mut self, now: Instant) -> Line {
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= WINDOW {
            self.window_start = Some(now);
            self.used = 0;
        }
        if self.used >= LINES {
            self.suppressed += 1;
            return Line::Quiet;
        }
        self.used += 1;
        Line::Log {
            suppressed: std::mem::take(&mut self.suppressed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_cut_and_counted_in_the_next_window() {
        let t0 = Instant::now();
        let mut b = LogBudget::default();
        let logged = (0..1000).filter(|_| b.line(t0) != Line::Quiet).count();
        assert_eq!(logged, LINES as usize);
        assert_eq!(b.line(t0 + WINDOW / 2), Line::Quiet);
        assert_eq!(b.line(t0 + WINDOW), Line::Log { suppressed: 951 });
        assert_eq!(b.line(t0 + WINDOW), Line::Log { suppressed: 0 });
    }
}
