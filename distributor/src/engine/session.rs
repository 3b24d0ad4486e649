//! One live analyzer session inside the core: its priority queues, the frames in flight,
//! its counters and liveness; and the reasons a session ends or a HELLO is refused.

use super::Now;
use crate::accounting::AnalyzerStats;
use crate::accounting::{FailureReason, RejectKind};
use crate::engine::frame::{Frame, compact_front};
use crate::engine::health::{Hang, Liveness};
use crate::engine::queues::PriorityQueues;
use protocol::analyzer::HelloError;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Identifies one analyzer session (ids are reused across sessions, keys never).
pub type SessionKey = u64;

/// What the analyzer task gets for an accepted HELLO.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The session's key.
    pub key: SessionKey,
    /// The weight in force (pinned or from the HELLO).
    pub weight: f64,
    /// Notified when the session has frames to write or window room.
    pub notify: Arc<Notify>,
    /// Cancelled when the session ends (failure, replacement, shutdown).
    pub cancel: CancellationToken,
}

/// Why a HELLO gets a REJECT.
#[derive(Debug, thiserror::Error)]
pub enum RejectReason {
    /// Not an acceptable HELLO.
    #[error(transparent)]
    Malformed(#[from] HelloError),
    /// A weight that is not finite and > 0, for an id with no pinned weight.
    #[error("invalid weight {weight} for analyzer {id:?}: must be finite and > 0")]
    InvalidWeight {
        /// The analyzer id.
        id: String,
        /// The weight it sent.
        weight: f64,
    },
    /// A weight above `--max-weight` or the access file's limit for the identity, for an
    /// id with no pinned weight.
    #[error("weight {weight} for analyzer {id:?} exceeds the limit of {max} ({limit})")]
    WeightTooLarge {
        /// The analyzer id.
        id: String,
        /// The weight it sent.
        weight: f64,
        /// The limit.
        max: f64,
        /// Which setting sets it.
        limit: &'static str,
    },
    /// `--max-analyzers` sessions are live and this id is not one of them.
    #[error("{max} analyzers are live, the limit (--max-analyzers); {id:?} is not one of them")]
    TooManyAnalyzers {
        /// The analyzer id.
        id: String,
        /// The limit.
        max: usize,
    },
    /// Over mutual TLS, a HELLO id other than the client certificate's identity.
    #[error("HELLO id {id:?} is not this connection's certificate identity {identity:?}")]
    Identity {
        /// The id the HELLO claimed.
        id: String,
        /// The identity the certificate proves.
        identity: String,
    },
    /// The access file does not allow this identity to connect as an analyzer.
    #[error("{identity:?} may not connect as an analyzer (the access file's roles.analyzers)")]
    NotAllowed {
        /// The identity (or, without mutual TLS, the HELLO id).
        identity: String,
    },
}

impl RejectReason {
    /// The reason as counted in `distributor_rejected_hellos_total{reason}`.
    pub fn kind(&self) -> RejectKind {
        match self {
            RejectReason::Malformed(_) => RejectKind::Malformed,
            RejectReason::InvalidWeight { .. } => RejectKind::InvalidWeight,
            RejectReason::WeightTooLarge { .. } => RejectKind::WeightTooLarge,
            RejectReason::TooManyAnalyzers { .. } => RejectKind::TooManyAnalyzers,
            RejectReason::Identity { .. } => RejectKind::Identity,
            RejectReason::NotAllowed { .. } => RejectKind::NotAllowed,
        }
    }
}

/// Why a session ended; every one re-routes the session's frames.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    /// The analyzer closed its side.
    #[error("connection closed by the analyzer")]
    Closed,
    /// A write returned 0: the connection is gone.
    #[error("connection closed while writing")]
    ClosedWhileWriting,
    /// A read failed.
    #[error("read error: {0}")]
    Read(std::io::Error),
    /// A write failed.
    #[error("write error: {0}")]
    Write(std::io::Error),
    /// Bytes that are not a well-formed ACK, or an ACK that breaks the rules.
    #[error("protocol error: {0}")]
    Protocol(Violation),
    /// No progress for the hang timeout.
    #[error("hung: {0}")]
    Hung(Hang),
    /// A new session with the same id took over.
    #[error("replaced by a new session with the same id")]
    Replaced,
    /// The access file, reloaded, no longer allows this analyzer.
    #[error("no longer allowed by the access file (reloaded)")]
    Revoked,
}

impl SessionEnd {
    /// The reason label of the failure in metrics.
    pub fn reason(&self) -> FailureReason {
        match self {
            SessionEnd::Closed | SessionEnd::ClosedWhileWriting => FailureReason::Closed,
            SessionEnd::Read(_) | SessionEnd::Write(_) => FailureReason::IoError,
            SessionEnd::Protocol(_) => FailureReason::ProtocolError,
            SessionEnd::Hung(_) => FailureReason::Hung,
            SessionEnd::Replaced => FailureReason::Replaced,
            SessionEnd::Revoked => FailureReason::Revoked,
        }
    }
}

/// What an analyzer sent after its HELLO that breaks the protocol.
#[derive(Debug, thiserror::Error)]
pub enum Violation {
    /// Bytes on a session that did not ask for ACKs.
    #[error("{0} unexpected bytes after HELLO on a session without ACKs")]
    UnexpectedBytes(usize),
    /// Bytes that are not an ACK frame.
    #[error(transparent)]
    Malformed(#[from] protocol::analyzer::AckError),
    /// An ACK frame whose count breaks the rules.
    #[error(transparent)]
    Ack(#[from] AckViolation),
}

/// An ACK that breaks the protocol; the session ends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckViolation {
    /// The session did not ask for ACKs.
    #[error("ACK on a session whose HELLO did not ask for ACKs")]
    NotAsked,
    /// The cumulative count went down.
    #[error("ACK count {count} is below the previous count {previous}")]
    Decreased {
        /// The new count.
        count: u64,
        /// The previous count.
        previous: u64,
    },
    /// More frames acknowledged than were sent.
    #[error("ACK count {count} exceeds the {dispatched} frames delivered on this session")]
    Exceeds {
        /// The count.
        count: u64,
        /// Frames dispatched on the session.
        dispatched: u64,
    },
}

/// Frames that left a session delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Released {
    /// How many.
    pub(crate) frames: u64,
    /// Their [`Frame::cost`] in total.
    pub(crate) bytes: usize,
}

/// One live analyzer session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) key: SessionKey,
    pub(crate) id: String,
    pub(crate) weight: f64,
    pub(crate) acks: bool,
    /// Unacknowledged frames at most (with ACKs).
    ack_window: usize,
    pub(crate) queues: PriorityQueues,
    /// Frames taken off the queues and not yet released, oldest first: being written,
    /// or (with ACKs) written and awaiting acknowledgement.
    pub(crate) inflight: VecDeque<Frame>,
    /// How many frames at the front of `inflight` own their bytes.
    inflight_owned: usize,
    /// Counters of this session; folded into the id's [`AnalyzerStats`] when it ends.
    pub(crate) routed: u64,
    /// Frames the router chose for this session that went to another (its level was full).
    pub(crate) spilled_out: u64,
    /// Frames this session took for another whose level was full.
    pub(crate) spilled_in: u64,
    dispatched: u64,
    written: u64,
    acked: u64,
    pub(crate) liveness: Liveness,
    pub(crate) notify: Arc<Notify>,
    pub(crate) wake_pending: bool,
    pub(crate) cancel: CancellationToken,
}

/// The settings a session needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimits {
    /// Frames per priority level.
    pub(crate) queue_capacity: usize,
    /// Unacknowledged frames at most (at-least-once sessions).
    pub(crate) ack_window: usize,
    /// No progress for this long: hung.
    pub(crate) hang_timeout: Duration,
}

impl Session {
    /// A session for an accepted HELLO, and what its task gets.
    pub(crate) fn new(
        key: SessionKey,
        id: &str,
        weight: f64,
        acks: bool,
        limits: SessionLimits,
    ) -> (Self, Registered) {
        let registered = Registered {
            key,
            weight,
            notify: Arc::new(Notify::new()),
            cancel: CancellationToken::new(),
        };
        let session = Self {
            key,
            id: id.to_owned(),
            weight,
            acks,
            ack_window: limits.ack_window,
            queues: PriorityQueues::new(limits.queue_capacity),
            inflight: VecDeque::new(),
            inflight_owned: 0,
            routed: 0,
            spilled_out: 0,
            spilled_in: 0,
            dispatched: 0,
            written: 0,
            acked: 0,
            liveness: Liveness::new(limits.hang_timeout),
            notify: Arc::clone(&registered.notify),
            wake_pending: false,
            cancel: registered.cancel.clone(),
        };
        (session, registered)
    }

    /// Every frame of the session, in flight first (oldest), then queued by priority.
    pub(crate) fn take_all(&mut self) -> Vec<Frame> {
        let mut frames: Vec<Frame> = self.inflight.drain(..).collect();
        self.inflight_owned = 0;
        while let Some(f) = self.queues.pop() {
            frames.push(f);
        }
        frames
    }

    /// Frames queued or in flight.
    pub(crate) fn len(&self) -> usize {
        self.queues.len() + self.inflight.len()
    }

    /// Adds this session's counters to `a`.
    pub(crate) fn add_to(&self, a: &mut AnalyzerStats) {
        a.routed += self.routed;
        a.spilled_out += self.spilled_out;
        a.spilled_in += self.spilled_in;
        a.written += self.written;
        if self.acks {
            a.acked += self.acked;
            a.delivered += self.acked;
        } else {
            a.delivered += self.written;
        }
    }

    /// Moves the next batch (most urgent first, at most `max_frames`, about `max_bytes`,
    /// within the ACK window) into flight and into `out`. Returns how many.
    pub(crate) fn take_batch(
        &mut self,
        max_frames: usize,
        max_bytes: usize,
        out: &mut Vec<Frame>,
        now: Now,
    ) -> usize {
        self.wake_pending = false;
        let limit = if self.acks {
            max_frames.min(self.ack_window.saturating_sub(self.inflight.len()))
        } else {
            max_frames
        };
        let start = out.len();
        let mut bytes = 0;
        while out.len() - start < limit && bytes < max_bytes {
            let Some(mut f) = self.queues.pop() else {
                break;
            };
            bytes += f.payload.len() + protocol::analyzer::DELIVER_HEADER_LEN;
            f.queued_ns = f.queued_ns.min(now.ns);
            out.push(f.to_send());
            self.inflight.push_back(f);
        }
        let n = out.len() - start;
        if n > 0 {
            self.dispatched += n as u64;
            self.liveness.write_started(now.instant);
        }
        n
    }

    /// `frames` more DELIVER frames were written whole (`done`: the batch is all written).
    /// Returns what that delivered (best effort: written is delivered).
    pub(crate) fn wrote(&mut self, frames: usize, done: bool, now: Now) -> Released {
        self.written += frames as u64;
        self.liveness.wrote(now.instant, done);
        if self.acks {
            let outstanding = self.written.saturating_sub(self.acked) as usize;
            self.liveness.outstanding(now.instant, outstanding, false);
            Released::default()
        } else {
            self.release(frames)
        }
    }

    /// Applies a cumulative ACK; returns what it released.
    pub(crate) fn ack(&mut self, count: u64, now: Now) -> Result<Released, AckViolation> {
        if !self.acks {
            return Err(AckViolation::NotAsked);
        }
        if count < self.acked {
            return Err(AckViolation::Decreased {
                count,
                previous: self.acked,
            });
        }
        if count > self.dispatched {
            return Err(AckViolation::Exceeds {
                count,
                dispatched: self.dispatched,
            });
        }
        let released = self.release((count - self.acked) as usize);
        self.acked = count;
        let outstanding = self.written.saturating_sub(self.acked) as usize;
        self.liveness
            .outstanding(now.instant, outstanding, released.frames > 0);
        Ok(released)
    }

    /// Drops the `n` oldest frames in flight (delivered).
    fn release(&mut self, n: usize) -> Released {
        let n = n.min(self.inflight.len());
        let bytes = self.inflight.drain(..n).map(|f| f.cost()).sum();
        self.inflight_owned = self.inflight_owned.saturating_sub(n);
        Released {
            frames: n as u64,
            bytes,
        }
    }

    /// Gives the frames that queued before `cutoff` (ns) their own bytes.
    pub(crate) fn compact(&mut self, cutoff: u64) {
        self.queues.compact_waiting(cutoff);
        compact_front(&mut self.inflight, &mut self.inflight_owned, cutoff);
    }
}
