//! The holding queue: frames that no analyzer can take (none is live, or every live one's
//! queue for the frame's priority is full while a failed analyzer's frames are re-routed).
//!
//! Held frames go first: whenever room may have freed (an analyzer joined, a writer took a
//! batch, an emitter offered frames, and at every tick of the hang timer, at most 100 ms
//! apart) the core places them, oldest first, before any new frame. A frame that has waited
//! as long as `max_attempts` retries on the backoff would take (10 ms doubling to 2 s:
//! 26.5 s for the default 20) is dropped and counted `retries_exhausted`, except while the
//! distributor drains at shutdown. Held frames own their bytes (compacted on entry), so the
//! queue never pins emitter read buffers.

use crate::engine::frame::{Frame, compact};
use crate::engine::health::RetrySchedule;
use std::collections::VecDeque;
use std::time::Instant;

/// A frame waiting for any analyzer.
#[derive(Debug)]
struct Held {
    frame: Frame,
    entered: Instant,
}

/// The holding queue, oldest first.
#[derive(Debug)]
pub(crate) struct Holding {
    frames: VecDeque<Held>,
    capacity: usize,
    retry: RetrySchedule,
}

impl Holding {
    /// At most `capacity` frames while no analyzer is live, given up on `retry`'s schedule.
    pub(crate) fn new(capacity: usize, retry: RetrySchedule) -> Self {
        Self {
            frames: VecDeque::new(),
            capacity,
            retry,
        }
    }

    /// Whether a new frame may be held (re-routed frames are held whatever the count: they
    /// were accepted before and must be delivered or counted; their bytes stay within
    /// `--max-queued-bytes`, which they already counted against).
    pub(crate) fn has_room(&self) -> bool {
        self.frames.len() < self.capacity
    }

    /// Holds `frame` (at the back), with its own bytes.
    pub(crate) fn push(&mut self, mut frame: Frame, now: Instant) {
        frame.payload = compact(frame.payload);
        self.frames.push_back(Held {
            frame,
            entered: now,
        });
    }

    /// Offers held frames, oldest first, to `place` until it gives one back (which stays
    /// first in line). Returns how many were placed.
    pub(crate) fn drain(&mut self, mut place: impl FnMut(Frame) -> Result<(), Frame>) -> usize {
        let mut placed = 0;
        while let Some(held) = self.frames.pop_front() {
            match place(held.frame) {
                Ok(()) => placed += 1,
                Err(frame) => {
                    self.frames.push_front(Held {
                        frame,
                        entered: held.entered,
                    });
                    break;
                }
            }
        }
        placed
    }

    /// Removes the frames whose retries are exhausted at `now`; their priorities and costs.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(u8, usize)> {
        let give_up = self.retry.give_up_after();
        let mut expired = Vec::new();
        while let Some(front) = self.frames.front() {
            if now.saturating_duration_since(front.entered) < give_up {
                break;
            }
            expired.push((front.frame.priority, front.frame.cost()));
            self.frames.pop_front();
        }
        expired
    }

    /// Removes every frame; their priorities.
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        self.frames.drain(..).map(|h| h.frame.priority).collect()
    }

    /// Frames held.
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn frame(priority: u8) -> Frame {
        Frame {
            payload: Bytes::from_static(b"x"),
            priority,
            queued_ns: 0,
            ticket: None,
            mark: None,
        }
    }

    #[test]
    fn oldest_first_and_expiry_on_the_schedule() {
        let t0 = Instant::now();
        let mut h = Holding::new(2, RetrySchedule::new(3));
        h.push(frame(1), t0);
        h.push(frame(2), t0 + Duration::from_millis(20));
        assert!(!h.has_room());
        // The first placement succeeds, the second is refused and stays first in line.
        let mut calls = 0;
        let placed = h.drain(|f| {
            calls += 1;
            if calls == 1 { Ok(()) } else { Err(f) }
        });
        assert_eq!((placed, h.len()), (1, 1));
        // 3 retries on 10/20/40 ms: given up 70 ms after it entered.
        assert!(h.expire(t0 + Duration::from_millis(89)).is_empty());
        assert_eq!(h.expire(t0 + Duration::from_millis(90)), vec![(2, 1 + 64)]);
        assert!(h.is_empty());
    }
}
