//! The one path every LOG frame takes into the distributor, whether it is kept in memory or
//! on a journal:
//!
//! 1. **access**: a priority the emitter may not send is dropped (`forbidden`);
//! 2. **securing**: on a journal the frame is appended first, and its emitter's ACK ticket
//!    goes to the journal's writer, which releases it after the flush that covers it; a
//!    writer behind makes the emitter wait, a full journal meets the overflow policy. In
//!    memory the ticket rides with the frame and is released when the frame is delivered
//!    or dropped;
//! 3. **queueing**: on an analyzer chosen by weight, unless frames that came before it
//!    still wait (held frames go first; on disk each level stays first in, first out) or
//!    `--max-queued-bytes` is reached;
//! 4. **waiting** when it found no room ([`super::placement`]): on disk with a journal,
//!    else in the holding queue while no analyzer is live; else the overflow policy: drop
//!    and count, or backpressure (the frame and those after it stay in the batch).
//!
//! Every frame that leaves the batch is counted received exactly once, whatever became of
//! it; a frame left in the batch is not counted and its ticket is given back.

use super::frame::Frame;
use super::{Engine, Now};
use crate::accounting::DropReason;
use crate::journal::Appender;
use crate::secured::{Origin, Ticket};
use protocol::log::LogFrame;
use runfolder::Overflow;
use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::Arc;

/// Where an offered batch comes from: what its emitter may send, and whether it wants to
/// know what is secured.
#[derive(Debug, Clone)]
pub struct Source {
    /// Priorities the access file allows this emitter; others are dropped (`forbidden`).
    pub priorities: RangeInclusive<u8>,
    /// An emitter that asked for ACKs: each frame taken carries a ticket of this origin.
    pub origin: Option<Arc<Origin>>,
}

impl Default for Source {
    /// Every priority, no ACKs: an emitter of PROTOCOL.md §1.
    fn default() -> Self {
        Self {
            priorities: 0..=u8::MAX,
            origin: None,
        }
    }
}

/// What happened to a batch offered by an emitter connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Every frame was taken (routed, left to wait, or dropped and counted).
    Taken,
    /// Backpressure: the frames left in the batch must wait for room.
    Blocked,
}

/// What securing a frame gave.
enum Secured {
    /// The frame, ready to be queued.
    Frame(Frame),
    /// Not taken now: the emitter must wait (the frame goes back in the batch).
    Wait(LogFrame),
    /// Given up and counted for this reason (its ticket, dropped, secures it).
    Dropped(DropReason),
}

impl Engine {
    /// Routes the frames of `batch` from the front, taking each one that can be taken.
    /// Frames taken leave the batch; under backpressure the rest stay for a later offer.
    pub(crate) fn offer(
        &mut self,
        batch: &mut VecDeque<LogFrame>,
        now: Now,
        source: &Source,
    ) -> Offer {
        self.drain_holding(now);
        let journal = self.placement.journal_ref().cloned();
        // Held for the whole batch: one lock for the journal's appends. Nothing below drops
        // a frame that has a record while it is held (a record's mark takes that lock).
        let mut appender = journal.as_ref().map(|j| j.appender());
        while let Some(log) = batch.pop_front() {
            let priority = log.priority;
            // Every LOG frame of an acknowledged connection has its place in the count,
            // forbidden ones included (dropped and counted, so secured).
            let ticket = source.origin.as_ref().map(Origin::ticket);
            if !source.priorities.contains(&priority) {
                self.totals.received += 1;
                self.totals.drop_frame(DropReason::Forbidden, priority);
                continue;
            }
            let frame = match secure(appender.as_mut(), log, ticket, self.cfg.overflow) {
                Secured::Frame(f) => f,
                Secured::Wait(log) => {
                    batch.push_front(log);
                    return Offer::Blocked;
                }
                Secured::Dropped(reason) => {
                    self.totals.received += 1;
                    self.totals.drop_frame(reason, priority);
                    continue;
                }
            };
            match self.admit(frame, now) {
                Ok(()) => self.totals.received += 1,
                Err(mut frame) => {
                    if let Some(t) = frame.ticket.take() {
                        t.revoke();
                    }
                    batch.push_front(LogFrame {
                        priority,
                        payload: frame.payload,
                    });
                    return Offer::Blocked;
                }
            }
        }
        Offer::Taken
    }

    /// Counts the frames left in a blocked batch as received and dropped (`shutdown`): the
    /// shutdown grace ended before room freed for them.
    pub(crate) fn drop_at_shutdown(&mut self, batch: &mut VecDeque<LogFrame>) {
        for log in batch.drain(..) {
            self.totals.received += 1;
            self.totals.drop_frame(DropReason::Shutdown, log.priority);
        }
    }

    /// Queues a secured frame, lets it wait, or drops it by the overflow policy (counted).
    /// Gives it back under backpressure.
    fn admit(&mut self, frame: Frame, now: Now) -> Result<(), Frame> {
        let cost = frame.cost();
        let fits = self.bytes + cost <= self.cfg.max_queued_bytes;
        let frame = if fits && !self.placement.older_waiting(frame.priority) {
            match self.place(frame, now.ns) {
                Ok(()) => {
                    self.bytes += cost;
                    return Ok(());
                }
                Err(f) => f,
            }
        } else {
            frame
        };
        let priority = frame.priority;
        let none_live = self.live.is_empty();
        match self.placement.wait(frame, none_live, fits, now.instant) {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.bytes += cost;
                Ok(())
            }
            Err(frame) => match self.cfg.overflow {
                Overflow::Backpressure => Err(frame),
                Overflow::Drop => {
                    let reason = if !fits {
                        DropReason::BytesFull
                    } else if none_live {
                        DropReason::HoldingFull
                    } else {
                        DropReason::QueueFull
                    };
                    self.totals.drop_frame(reason, priority);
                    Ok(())
                }
            },
        }
    }
}

/// Secures one frame: appended to the journal when there is one (its ticket then secured
/// by the flush that covers it), else the ticket rides with the frame.
fn secure(
    appender: Option<&mut Appender<'_>>,
    log: LogFrame,
    ticket: Option<Ticket>,
    overflow: Overflow,
) -> Secured {
    let Some(journal) = appender else {
        let mut frame = Frame::new(log.payload, log.priority);
        frame.ticket = ticket;
        return Secured::Frame(frame);
    };
    let full = !journal.has_room(log.payload.len());
    // A writer behind catches up within one cycle: wait, whatever the policy.
    if journal.behind() || (full && overflow == Overflow::Backpressure) {
        if let Some(t) = ticket {
            t.revoke();
        }
        return Secured::Wait(log);
    }
    if full {
        return Secured::Dropped(DropReason::JournalFull);
    }
    let mut frame = Frame::new(log.payload, log.priority);
    frame.mark = Some(journal.append(frame.priority, &frame.payload));
    if let Some(t) = ticket {
        journal.secure_after_flush(t);
    }
    Secured::Frame(frame)
}
