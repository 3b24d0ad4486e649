//! Which frames of an acknowledged emitter connection are secured (PROTOCOL.md §5).
//!
//! Without a journal a frame is secured once the distributor is done with it: delivered
//! (written to a best-effort analyzer, acknowledged by an at-least-once one) or dropped and
//! counted. Each frame of such a connection carries a [`Ticket`]; the distributor lets go of
//! a frame exactly when it is done with it, so the ticket's `Drop` marks it secured. That
//! holds by construction on every path (delivery, every drop reason, the drain deadline),
//! and a frame re-routed after a failure keeps its ticket, so it is not secured until its
//! second delivery.
//!
//! Frames finish out of order (they go to different analyzers), while the ACK's count is
//! a prefix: frames 1..=count are all secured. [`Origin`] keeps one flag per frame between
//! the secured prefix and the newest frame, so its memory follows the frames in flight.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The secured frames of one emitter connection.
#[derive(Debug, Default)]
pub struct Origin {
    marks: Mutex<Marks>,
    /// Woken when the secured prefix grows.
    changed: Notify,
}

#[derive(Debug, Default)]
struct Marks {
    /// Frames 1..=secured are secured.
    secured: u64,
    /// `done[i]`: frame `secured + 1 + i` is secured (while an earlier one is not).
    done: VecDeque<bool>,
}

impl Marks {
    fn next_seq(&self) -> u64 {
        self.secured + self.done.len() as u64 + 1
    }
}

impl Origin {
    /// A connection with no frames yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        // The marks stay consistent whatever panicked while they were held: each update is
        // one flag and a prefix walk.
        self.marks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A ticket for the connection's next frame.
    pub fn ticket(self: &Arc<Self>) -> Ticket {
        let mut m = self.marks();
        let seq = m.next_seq();
        m.done.push_back(false);
        Ticket {
            origin: Some(Arc::clone(self)),
            seq,
        }
    }

    /// How many frames from the first are all secured.
    pub fn secured(&self) -> u64 {
        self.marks().secured
    }

    /// Resolves after the secured prefix grows (a change since the last wait is kept).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    fn secure(&self, seq: u64) {
        let grew = {
            let mut m = self.marks();
            let Some(i) = seq.checked_sub(m.secured + 1) else {
                return;
            };
            if let Some(flag) = m.done.get_mut(i as usize) {
                *flag = true;
            }
            let before = m.secured;
            while m.done.front() == Some(&true) {
                m.done.pop_front();
                m.secured += 1;
            }
            m.secured > before
        };
        if grew {
            self.changed.notify_one();
        }
    }

    /// Takes back the newest ticket, unused (its frame was not taken after all).
    fn unassign(&self, seq: u64) {
        let mut m = self.marks();
        if m.next_seq() == seq + 1 {
            m.done.pop_back();
        }
    }
}

/// The claim of one frame on its connection's ACK: dropped when the distributor is done
/// with the frame, which secures it.
#[derive(Debug)]
pub struct Ticket {
    origin: Option<Arc<Origin>>,
    seq: u64,
}

impl Ticket {
    /// Gives the ticket back unused: the newest frame was not taken (it waits for room and
    /// will get a new ticket when it is).
    pub fn revoke(mut self) {
        if let Some(origin) = self.origin.take() {
            origin.unassign(self.seq);
        }
    }

    /// Lets go of the ticket without securing its frame: the journal could not flush it,
    /// so its ACK must never be sent (the distributor is stopping).
    pub fn forfeit(mut self) {
        self.origin = None;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(origin) = self.origin.take() {
            origin.secure(self.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_the_secured_prefix_whatever_the_order() {
        let o = Origin::new();
        let mut t: Vec<Option<Ticket>> = (0..5).map(|_| Some(o.ticket())).collect();
        t[2] = None;
        t[1] = None;
        assert_eq!(o.secured(), 0, "frame 1 is still held");
        t[0] = None;
        assert_eq!(o.secured(), 3);
        t[4] = None;
        assert_eq!(o.secured(), 3);
        t[3] = None;
        assert_eq!(o.secured(), 5);
        assert!(o.marks().done.is_empty());
    }

    #[test]
    fn a_revoked_ticket_is_reissued_to_the_same_frame() {
        let o = Origin::new();
        let first = o.ticket();
        let waiting = o.ticket();
        waiting.revoke();
        let again = o.ticket();
        assert_eq!(again.seq, 2);
        drop(first);
        drop(again);
        assert_eq!(o.secured(), 2);
    }

    #[tokio::test]
    async fn growth_wakes_a_waiter_even_if_it_came_before_the_wait() {
        let o = Origin::new();
        drop(o.ticket());
        tokio::time::timeout(std::time::Duration::from_secs(1), o.changed())
            .await
            .unwrap();
        assert_eq!(o.secured(), 1);
    }
}
