//! The engine's time: one reading of both clocks, taken by the caller once per wake-up and
//! passed to every engine method, so the engine itself never reads a clock and tests drive
//! it with any instant they like.

use std::time::Instant;

/// One instant on both clocks: monotonic for timeouts, wall-clock nanoseconds for the
/// stamps that go on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// For timeouts and durations.
    pub instant: Instant,
    /// Nanoseconds since the Unix epoch, for `queued_ns` and `dispatch_ns`.
    pub ns: u64,
}

impl Now {
    /// Both clocks now.
    pub fn read() -> Self {
        Self {
            instant: Instant::now(),
            ns: protocol::now_ns(),
        }
    }
}
