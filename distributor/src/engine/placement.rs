//! Where a frame waits when no analyzer queue can take it, and how it comes back.
//!
//! In memory, a frame that finds no room waits in the [`Holding`] queue while no analyzer
//! is live (or was re-routed off a failed one); otherwise the overflow policy applies. On a
//! journal (`--data-dir`) every frame has a record, so a frame without room leaves memory
//! and keeps only its place in the [`DiskQueue`]; a loader reads such frames back, most
//! urgent first, as room frees ([`Engine::plan_load`], [`Engine::load`]). Frames recovered
//! at start wait there too.

use super::disk_queue::DiskQueue;
use super::frame::Frame;
use super::health::RetrySchedule;
use super::holding::Holding;
use super::{Engine, Now};
use crate::accounting::DropReason;
use crate::journal::{Journal, JournalReadError, Loc, Recovered};
use std::sync::Arc;
use std::time::Instant;

/// The waiting places of the engine.
#[derive(Debug)]
pub(crate) struct Placement {
    /// Frames in memory that no analyzer can take yet (frames without a journal record).
    holding: Holding,
    /// With a journal: the journal, and the frames waiting in it.
    disk: Option<OnDisk>,
}

/// The journal and the places of the frames that wait in it.
#[derive(Debug)]
struct OnDisk {
    journal: Arc<Journal>,
    queue: DiskQueue,
}

impl Placement {
    /// In memory only.
    pub(crate) fn memory(holding_capacity: usize, retry: RetrySchedule) -> Self {
        Self {
            holding: Holding::new(holding_capacity, retry),
            disk: None,
        }
    }

    /// On `journal`, with the records the last run left waiting on disk.
    pub(crate) fn on_journal(journal: Arc<Journal>, recovered: Recovered) -> Self {
        let mut queue = DiskQueue::default();
        for (at, priority, _) in recovered.frames {
            queue.recovered(priority, at);
        }
        Self {
            holding: Holding::new(0, RetrySchedule::new(0)),
            disk: Some(OnDisk { journal, queue }),
        }
    }

    /// The journal, with a data directory.
    pub(crate) fn journal_ref(&self) -> Option<&Arc<Journal>> {
        self.disk.as_ref().map(|d| &d.journal)
    }

    /// The journal's counters, with a data directory.
    pub(crate) fn journal(&self) -> Option<&Journal> {
        self.disk.as_ref().map(|d| &*d.journal)
    }

    /// Whether a new frame of `priority` must wait behind frames that already wait: held
    /// frames go first (a new frame passes them only by being dropped), and on disk each
    /// level stays first in, first out.
    pub(crate) fn older_waiting(&self, priority: u8) -> bool {
        match &self.disk {
            Some(d) => d.queue.has(priority),
            None => !self.holding.is_empty(),
        }
    }

    /// Lets `frame` (taken, not placed) wait: on disk when it has a record, else in the
    /// holding queue when it may be held (no analyzer live, room, and `fits` the byte cap).
    /// Gives it back when it may not wait; `Ok(true)` when it left memory (its bytes are no
    /// longer counted).
    pub(crate) fn wait(
        &mut self,
        mut frame: Frame,
        none_live: bool,
        fits: bool,
        now: Instant,
    ) -> Result<bool, Frame> {
        if let Some(d) = &mut self.disk
            && let Some(mark) = frame.mark.take()
        {
            d.queue.push(frame.priority, mark.keep());
            return Ok(true);
        }
        if fits && none_live && self.holding.has_room() {
            self.holding.push(frame, now);
            return Ok(false);
        }
        Err(frame)
    }

    /// Frames re-routed off a failed session that found no place: held (their bytes stay
    /// counted), or back on disk in front of the frames that waited there after them.
    /// Returns the bytes that left memory.
    pub(crate) fn take_back(&mut self, frames: Vec<Frame>, now: Instant) -> usize {
        let mut to_disk = Vec::new();
        for mut f in frames {
            match f.mark.take() {
                Some(mark) if self.disk.is_some() => {
                    to_disk.push((f.cost(), f.priority, mark.keep()));
                }
                mark => {
                    f.mark = mark;
                    self.holding.push(f, now);
                }
            }
        }
        let mut left = 0;
        if let Some(d) = &mut self.disk {
            for (cost, priority, at) in to_disk.into_iter().rev() {
                left += cost;
                d.queue.put_back(priority, at);
            }
        }
        left
    }

    /// Held frames past their last retry, taken out: their priorities and costs.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(u8, usize)> {
        self.holding.expire(now)
    }

    /// At the drain deadline: the frames still inside (`frames`, off the sessions, and
    /// the held ones) are dropped, but those with a journal record, which stay for the
    /// next start. Returns the priorities of the frames dropped.
    pub(crate) fn abandon(&mut self, frames: Vec<Frame>, _now: Instant) -> Vec<u8> {
        let mut dropped = self.holding.take_all();
        for mut f in frames {
            match (&mut self.disk, f.mark.take()) {
                (Some(d), Some(mark)) => d.queue.put_back(f.priority, mark.keep()),
                // Without a journal a frame has no mark: dropped, counted by the caller.
                (_, mark) => {
                    f.mark = mark;
                    dropped.push(f.priority);
                }
            }
        }
        dropped
    }

    /// After the journal closed: the frames waiting on disk whose records never reached it
    /// (at or past `written`: the disk took nothing more) are given up. Returns their
    /// priorities.
    pub(crate) fn forget_unwritten(&mut self, written: Loc) -> Vec<u8> {
        match &mut self.disk {
            Some(d) => d.queue.take_from(written),
            None => Vec::new(),
        }
    }

    /// Frames waiting: held or on disk.
    pub(crate) fn len(&self) -> usize {
        self.held() + self.on_disk()
    }

    /// Frames in the holding queue.
    pub(crate) fn held(&self) -> usize {
        self.holding.len()
    }

    /// Frames waiting on disk (those being read back included).
    pub(crate) fn on_disk(&self) -> usize {
        self.disk.as_ref().map_or(0, |d| d.queue.len())
    }

    /// Frames that ever waited on disk for lack of room (recovered ones not included).
    pub(crate) fn disk_total(&self) -> u64 {
        self.disk.as_ref().map_or(0, |d| d.queue.total())
    }
}

impl Engine {
    /// Moves held frames, oldest first, to analyzers with room.
    pub(crate) fn drain_holding(&mut self, now: Now) {
        if self.placement.holding.is_empty() {
            return;
        }
        // Taken out for the loop, as placing needs the rest of the engine mutably; an
        // empty holding queue allocates nothing.
        let mut holding =
            std::mem::replace(&mut self.placement.holding, Holding::new(0, self.cfg.retry));
        if holding.drain(|f| self.place(f, now.ns)) > 0 {
            self.room_freed = true;
        }
        self.placement.holding = holding;
    }

    /// Picks frames to read back from disk: of the most urgent priority that some live
    /// analyzer has room for, as many as there is room (at most `max`), placed before
    /// `readable` (records the journal can give back now). They count as waiting on disk
    /// until [`Engine::load`].
    pub(crate) fn plan_load(&mut self, max: usize, readable: Loc) -> Option<(u8, Vec<Loc>)> {
        let d = self.placement.disk.as_mut()?;
        if d.queue.is_empty() || self.bytes >= self.cfg.max_queued_bytes {
            return None;
        }
        for p in d.queue.priorities() {
            let room: usize = self.live.iter().map(|s| s.queues.room(p)).sum();
            if room == 0 {
                continue;
            }
            let locs = d.queue.take(p, room.min(max), readable);
            if !locs.is_empty() {
                return Some((p, locs));
            }
        }
        None
    }

    /// Places frames read back from disk (`read[i]` is the record at `locs[i]`); those that
    /// find no room go back in front. A record that cannot be read is dropped, counted
    /// (`journal_corrupt`) and logged. Returns how many were placed.
    pub(crate) fn load(
        &mut self,
        priority: u8,
        locs: &[Loc],
        read: Vec<Result<(u8, bytes::Bytes), JournalReadError>>,
        now: Now,
    ) -> usize {
        let Some(journal) = self.placement.journal_ref().cloned() else {
            return 0;
        };
        if let Some(d) = self.placement.disk.as_mut() {
            d.queue.loaded(priority, locs.len());
        }
        let mut placed_n = 0;
        let mut back = Vec::new();
        for (&at, got) in locs.iter().zip(read) {
            match got {
                Ok((p, payload)) => {
                    let mut frame = Frame::new(payload, p);
                    frame.mark = Some(journal.mark(at));
                    let cost = frame.cost();
                    let placed = if self.bytes + cost <= self.cfg.max_queued_bytes {
                        self.place(frame, now.ns)
                    } else {
                        Err(frame)
                    };
                    match placed {
                        Ok(()) => {
                            self.bytes += cost;
                            placed_n += 1;
                        }
                        Err(mut f) => back.extend(f.mark.take().map(|m| (f.priority, m.keep()))),
                    }
                }
                // Being written this very moment: it waits in front, as it was.
                Err(JournalReadError::NotYet) => back.push((priority, at)),
                Err(error) => {
                    journal.corrupt();
                    tracing::error!(%error, priority, "a frame waiting on disk cannot be read back from the journal; dropped (reason journal_corrupt)");
                    self.totals.drop_frame(DropReason::JournalCorrupt, priority);
                    drop(journal.mark(at));
                }
            }
        }
        if let Some(d) = self.placement.disk.as_mut() {
            for (p, at) in back.into_iter().rev() {
                d.queue.put_back(p, at);
            }
        }
        placed_n
    }
}
