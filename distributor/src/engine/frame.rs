//! A LOG frame inside the distributor, and the compaction that keeps waiting frames from
//! pinning the read buffers they were sliced from.

use crate::journal::Mark;
use crate::secured::Ticket;
use bytes::Bytes;
use std::collections::VecDeque;

/// A LOG frame inside the distributor. Not `Clone`: the one copy that holds the ticket is
/// the one whose end secures the frame ([`Frame::to_send`] copies it for the writer).
#[derive(Debug)]
pub struct Frame {
    /// The payload, a slice of the emitter connection's read buffer until it is compacted.
    pub payload: Bytes,
    /// 0 most urgent.
    pub priority: u8,
    /// When it entered the current analyzer's queue (ns since the epoch); 0 while unqueued.
    pub queued_ns: u64,
    /// From an emitter that asked for ACKs: dropped with the frame, which secures it.
    pub ticket: Option<Ticket>,
    /// With a journal: its record, marked done when the frame is dropped.
    pub mark: Option<Mark>,
}

impl Frame {
    /// A frame without a ticket.
    pub fn new(payload: Bytes, priority: u8) -> Self {
        Self {
            payload,
            priority,
            queued_ns: 0,
            ticket: None,
            mark: None,
        }
    }

    /// The writer's copy: the same bytes and stamps, no ticket (the session keeps the
    /// original until the frame is delivered).
    pub fn to_send(&self) -> Self {
        Self {
            payload: self.payload.clone(),
            priority: self.priority,
            queued_ns: self.queued_ns,
            ticket: None,
            mark: None,
        }
    }

    /// What the frame counts against `--max-queued-bytes`: its payload and
    /// [`FRAME_OVERHEAD`].
    pub fn cost(&self) -> usize {
        self.payload.len() + FRAME_OVERHEAD
    }
}

/// Bytes a queued frame costs beyond its payload: the frame itself, its queue slot and the
/// allocator's share, rounded up. Small frames are mostly this.
pub const FRAME_OVERHEAD: usize = 64;

/// Frames that have waited this long get their own allocation (see [`compact`]).
pub const COMPACT_AFTER_NS: u64 = 100_000_000;

/// A payload that waits gets its own allocation. Payloads are slices of an emitter
/// connection's 64 KiB read buffer, and one waiting slice keeps the whole buffer alive: a
/// backlog of 512-byte frames would otherwise pin 64 KiB each (seen: 627 MiB RSS for a 26k
/// frame backlog). Frames that pass through in under 100 ms stay zero-copy (at saturation
/// copying every frame cost 70% more CPU per message); the tick copies the ones that wait
/// longer, so memory follows the bytes queued.
pub fn compact(payload: Bytes) -> Bytes {
    Bytes::copy_from_slice(&payload)
}

/// Compacts the frames of a FIFO that queued before `cutoff`, past the `owned` prefix of
/// frames already compacted (the front waits longest).
pub fn compact_front(frames: &mut VecDeque<Frame>, owned: &mut usize, cutoff: u64) {
    while let Some(f) = frames.get_mut(*owned) {
        if f.queued_ns >= cutoff {
            break;
        }
        f.payload = compact(std::mem::take(&mut f.payload));
        *owned += 1;
    }
}
