//! The distributor's state and every decision about a frame, behind one mutex.
//!
//! One lock is enough here because nothing holds it across I/O and every operation is
//! batched: an emitter connection offers all frames of one read at once, a writer takes a
//! whole batch off its queues at once, an ACK releases many frames at once. Locking per
//! batch costs far less than a lock-free design would save on two cores, and it keeps the
//! accounting invariant (`received = delivered + dropped + in the system`) exact.
//!
//! Every method takes the time as a [`Now`] read by the caller, so the core never reads a
//! clock and tests drive it with any instant they like.
//!
//! Wake-ups are collected while the lock is held ([`Core::take_wakes`]) and issued after it is
//! released, so a woken task never blocks on the lock its waker still holds.

use crate::frame::{COMPACT_AFTER_NS, Frame};
use crate::health::{Hang, RetrySchedule};
use crate::holding::Holding;
use crate::journal::{Journal, Loc, Recovered};
use crate::router::{Router, Routing};
use crate::secured::Origin;
use crate::session::{
    AckViolation, Registered, RejectKind, RejectReason, Released, Session, SessionEnd, SessionKey,
    SessionLimits,
};
use crate::spill::Spill;
use crate::stats::{AnalyzerStats, DropReason, Snapshot, Totals};
use protocol::analyzer::Hello;
use protocol::log::LogFrame;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What happens to a frame when every live analyzer's queue for its priority is full (or
/// no analyzer is live and the holding queue is full); shared with profiles.
pub use runfolder::Overflow;

/// What the router does when the analyzer it chose by weight has no room at the frame's
/// priority; shared with profiles.
pub use runfolder::WhenFull;

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

/// The settings the core needs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Routing strategy.
    pub routing: Routing,
    /// Seed of the random router.
    pub seed: u64,
    /// Frames per priority level per analyzer.
    pub queue_capacity: usize,
    /// Full-queue policy.
    pub overflow: Overflow,
    /// Whether a frame whose chosen analyzer is full may go to another.
    pub when_full: WhenFull,
    /// Bytes ([`Frame::cost`]) queued, held and in flight at most; new frames past it meet
    /// the overflow policy.
    pub max_queued_bytes: usize,
    /// Unacknowledged frames per at-least-once analyzer.
    pub ack_window: usize,
    /// No progress for this long: the analyzer is hung.
    pub hang_timeout: Duration,
    /// Frames held while no analyzer can take them, before overflow applies.
    pub holding_capacity: usize,
    /// Retry schedule of held frames.
    pub retry: RetrySchedule,
    /// Weights pinned by configuration, by analyzer id; they win over the HELLO.
    pub pinned: HashMap<String, f64>,
    /// Live analyzer sessions at most; another id's HELLO is refused.
    pub max_analyzers: usize,
    /// The largest weight a HELLO may claim (pinned weights are not limited).
    pub max_weight: f64,
    /// An id without a session this long is forgotten: its counters fold into one total.
    pub forget_after: Duration,
}

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
    /// Every frame was taken (routed, held or dropped and counted).
    Taken,
    /// Backpressure: the frames left in the batch must wait for room.
    Blocked,
}

/// The distributor's state.
#[derive(Debug)]
pub struct Core {
    cfg: CoreConfig,
    router: Router,
    /// Live sessions, in the router's member order.
    live: Vec<Session>,
    holding: Holding,
    /// [`Frame::cost`] of every frame inside: queued, in flight or held.
    bytes: usize,
    totals: Totals,
    analyzers: BTreeMap<String, AnalyzerStats>,
    /// Ids without a live session, since when: forgotten after `forget_after`.
    gone_since: HashMap<String, Instant>,
    /// The folded counters of forgotten ids, and how many.
    forgotten: (AnalyzerStats, u64),
    next_key: SessionKey,
    wakes: Vec<Arc<Notify>>,
    room_freed: bool,
    draining: bool,
    /// With a data directory: the journal, and the frames waiting in it.
    journal: Option<Arc<Journal>>,
    spill: Spill,
}

impl Core {
    /// An empty distributor state.
    pub fn new(cfg: CoreConfig) -> Self {
        Self {
            router: Router::new(cfg.routing, cfg.seed),
            holding: Holding::new(cfg.holding_capacity, cfg.retry),
            cfg,
            live: Vec::new(),
            bytes: 0,
            totals: Totals::default(),
            analyzers: BTreeMap::new(),
            gone_since: HashMap::new(),
            forgotten: (AnalyzerStats::default(), 0),
            next_key: 1,
            wakes: Vec::new(),
            room_freed: false,
            draining: false,
            journal: None,
            spill: Spill::default(),
        }
    }

    /// Journals every frame taken from now on, and takes the records the last run left
    /// (they wait as spilled frames, read back by priority as room frees).
    pub fn set_journal(&mut self, journal: Arc<Journal>, recovered: Recovered) {
        self.totals.recovered += recovered.frames.len() as u64;
        for (at, priority, _) in recovered.frames {
            self.spill.recovered(priority, at);
        }
        self.journal = Some(journal);
    }

    /// The wake-ups collected since the last call, and whether room freed for blocked
    /// emitters. The caller issues them after releasing the lock.
    pub fn take_wakes(&mut self) -> (Vec<Arc<Notify>>, bool) {
        (
            std::mem::take(&mut self.wakes),
            std::mem::take(&mut self.room_freed),
        )
    }

    fn index(&self, key: SessionKey) -> Option<usize> {
        self.live.iter().position(|s| s.key == key)
    }

    fn wake(&mut self, i: usize) {
        let s = &mut self.live[i];
        if !s.wake_pending {
            s.wake_pending = true;
            self.wakes.push(Arc::clone(&s.notify));
        }
    }

    fn rebuild_router(&mut self) {
        let weights: Vec<f64> = self.live.iter().map(|s| s.weight).collect();
        self.router.set_weights(&weights);
    }

    fn stats_of(&mut self, id: &str) -> &mut AnalyzerStats {
        self.analyzers.entry(id.to_owned()).or_default()
    }

    /// Queues `frame` on an analyzer chosen by weight, or (`--when-full spill`) on another
    /// with room when that one's level is full. Gives the frame back when it finds no room.
    fn place(&mut self, mut frame: Frame, now_ns: u64) -> Result<(), Frame> {
        let Some(first) = self.router.pick() else {
            return Err(frame);
        };
        let p = frame.priority;
        let i = if self.live[first].queues.has_room(p) {
            first
        } else if self.cfg.when_full == WhenFull::Strict {
            return Err(frame);
        } else {
            let live = &self.live;
            match self.router.pick_where(|j| live[j].queues.has_room(p)) {
                Some(j) => {
                    self.live[first].spilled_out += 1;
                    self.live[j].spilled_in += 1;
                    j
                }
                None => return Err(frame),
            }
        };
        frame.queued_ns = now_ns;
        let s = &mut self.live[i];
        s.queues.push(frame)?;
        s.routed += 1;
        self.wake(i);
        Ok(())
    }

    /// Routes the frames of `batch` from the front, taking each one that can be taken.
    /// Frames taken leave the batch; under backpressure the rest stay for a later offer.
    /// A frame outside `source`'s allowed priorities is dropped (`forbidden`); with an
    /// origin, each frame taken gets its ticket.
    pub fn offer(&mut self, batch: &mut VecDeque<LogFrame>, now: Now, source: &Source) -> Offer {
        if !self.holding.is_empty() {
            self.drain_holding(now);
        }
        if let Some(journal) = self.journal.clone() {
            return self.offer_journaled(&journal, batch, now, source);
        }
        while let Some(log) = batch.pop_front() {
            let mut frame = Frame::new(log.payload, log.priority);
            frame.ticket = source.origin.as_ref().map(Origin::ticket);
            let priority = frame.priority;
            if !source.priorities.contains(&priority) {
                self.totals.received += 1;
                self.totals.drop_frame(DropReason::Forbidden, priority);
                continue;
            }
            let cost = frame.cost();
            let fits = self.bytes + cost <= self.cfg.max_queued_bytes;
            // Held frames go first: a new frame bypasses them only by being dropped.
            let placed = if self.holding.is_empty() && fits {
                self.place(frame, now.ns)
            } else {
                Err(frame)
            };
            let Err(mut frame) = placed else {
                self.totals.received += 1;
                self.bytes += cost;
                continue;
            };
            if fits && self.live.is_empty() && self.holding.has_room() {
                self.totals.received += 1;
                self.bytes += cost;
                self.holding.push(frame, now.instant);
                continue;
            }
            match self.cfg.overflow {
                Overflow::Drop => {
                    self.totals.received += 1;
                    let reason = if !fits {
                        DropReason::BytesFull
                    } else if self.live.is_empty() {
                        DropReason::HoldingFull
                    } else {
                        DropReason::QueueFull
                    };
                    self.totals.drop_frame(reason, priority);
                }
                Overflow::Backpressure => {
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

    /// [`Core::offer`] with a journal: each frame allowed is appended (its ticket secured by
    /// the flush that covers it), then queued, or spilled when it finds no room. Only a full
    /// journal meets the overflow policy (`journal_full`).
    fn offer_journaled(
        &mut self,
        journal: &Journal,
        batch: &mut VecDeque<LogFrame>,
        now: Now,
        source: &Source,
    ) -> Offer {
        let mut taken = Vec::with_capacity(batch.len());
        let mut offer = Offer::Taken;
        {
            // No frame may be dropped while the appender holds the journal's lock (a mark
            // records itself done under that lock): frames taken are handled after.
            let mut log = journal.appender();
            while let Some(log_frame) = batch.pop_front() {
                let ticket = source.origin.as_ref().map(Origin::ticket);
                let priority = log_frame.priority;
                if !source.priorities.contains(&priority) {
                    self.totals.received += 1;
                    self.totals.drop_frame(DropReason::Forbidden, priority);
                    continue;
                }
                // A writer behind catches up within one cycle: wait, whatever the policy.
                let full = !log.has_room(log_frame.payload.len());
                if log.behind() || (full && self.cfg.overflow == Overflow::Backpressure) {
                    if let Some(t) = ticket {
                        t.revoke();
                    }
                    batch.push_front(log_frame);
                    offer = Offer::Blocked;
                    break;
                }
                if full {
                    self.totals.received += 1;
                    self.totals.drop_frame(DropReason::JournalFull, priority);
                    continue;
                }
                let mut frame = Frame::new(log_frame.payload, priority);
                frame.mark = Some(log.append(priority, &frame.payload));
                if let Some(t) = ticket {
                    log.secure_after_flush(t);
                }
                self.totals.received += 1;
                taken.push(frame);
            }
        }
        for frame in taken {
            self.admit(frame, now);
        }
        offer
    }

    /// Queues a journaled frame, or spills it: when frames of its priority already wait on
    /// disk (they go first), when `--max-queued-bytes` is reached, or when no analyzer has
    /// room.
    fn admit(&mut self, frame: Frame, now: Now) {
        let cost = frame.cost();
        let frame =
            if !self.spill.has(frame.priority) && self.bytes + cost <= self.cfg.max_queued_bytes {
                match self.place(frame, now.ns) {
                    Ok(()) => {
                        self.bytes += cost;
                        return;
                    }
                    Err(f) => f,
                }
            } else {
                frame
            };
        self.spill_frame(frame);
    }

    /// Lets go of a journaled frame's bytes; its place waits in the spill index.
    fn spill_frame(&mut self, mut frame: Frame) {
        match frame.mark.take() {
            Some(mark) => self.spill.push(frame.priority, mark.keep()),
            // Only journaled frames spill; a frame without a record is held instead.
            None => self.holding.push(frame, Instant::now()),
        }
    }

    /// Picks spilled frames to read back: of the most urgent priority that some live
    /// analyzer has room for, as many as there is room (at most `max`), written already.
    /// They count as spilled until [`Core::unspill`].
    pub fn plan_unspill(&mut self, max: usize, written: Loc) -> Option<(u8, Vec<Loc>)> {
        if self.spill.is_empty() || self.bytes >= self.cfg.max_queued_bytes {
            return None;
        }
        for p in self.spill.priorities() {
            let room: usize = self.live.iter().map(|s| s.queues.room(p)).sum();
            if room == 0 {
                continue;
            }
            let locs = self.spill.take(p, room.min(max), written);
            if !locs.is_empty() {
                return Some((p, locs));
            }
        }
        None
    }

    /// Places frames read back from the journal (`read[i]` is the record at `locs[i]`);
    /// those that find no room go back in front. A record that cannot be read is dropped,
    /// counted (`journal_corrupt`) and logged. Returns how many were placed.
    pub fn unspill(
        &mut self,
        priority: u8,
        locs: &[Loc],
        read: Vec<Result<(u8, bytes::Bytes), String>>,
        now: Now,
    ) -> usize {
        let Some(journal) = self.journal.clone() else {
            return 0;
        };
        let mut placed_n = 0;
        self.spill.loaded(priority, locs.len());
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
                Err(error) => {
                    journal.corrupt();
                    tracing::error!(%error, priority, "a spilled frame cannot be read back from the journal; dropped (reason journal_corrupt)");
                    self.totals.drop_frame(DropReason::JournalCorrupt, priority);
                    drop(journal.mark(at));
                }
            }
        }
        for (p, at) in back.into_iter().rev() {
            self.spill.put_back(p, at);
        }
        placed_n
    }

    /// Counts the frames left in a blocked batch as received and dropped (`shutdown`): the
    /// shutdown grace ended before room freed for them.
    pub fn drop_at_shutdown(&mut self, batch: &mut VecDeque<LogFrame>) {
        for log in batch.drain(..) {
            self.totals.received += 1;
            self.totals.drop_frame(DropReason::Shutdown, log.priority);
        }
    }

    /// Moves held frames, oldest first, to analyzers with room.
    fn drain_holding(&mut self, now: Now) {
        // Taken out for the loop, as placing needs the rest of the core mutably; an empty
        // holding queue allocates nothing.
        let mut holding = std::mem::replace(&mut self.holding, Holding::new(0, self.cfg.retry));
        if holding.drain(|f| self.place(f, now.ns)) > 0 {
            self.room_freed = true;
        }
        self.holding = holding;
    }

    /// Checks an accepted HELLO against the configuration and makes it a live session. A
    /// live session with the same id is replaced (its frames re-routed).
    pub fn register(&mut self, hello: &Hello, now: Now) -> Result<Registered, RejectReason> {
        let weight = match self.cfg.pinned.get(&hello.id) {
            Some(w) => Ok(*w),
            None if !hello.weight_is_valid() => Err(RejectReason::InvalidWeight {
                id: hello.id.clone(),
                weight: hello.weight,
            }),
            None if hello.weight > self.cfg.max_weight => Err(RejectReason::WeightTooLarge {
                id: hello.id.clone(),
                weight: hello.weight,
                max: self.cfg.max_weight,
            }),
            None => Ok(hello.weight),
        };
        let replacing = self.live.iter().any(|s| s.id == hello.id);
        let weight = weight.and_then(|w| {
            if !replacing && self.live.len() >= self.cfg.max_analyzers {
                Err(RejectReason::TooManyAnalyzers {
                    id: hello.id.clone(),
                    max: self.cfg.max_analyzers,
                })
            } else {
                Ok(w)
            }
        });
        let weight = match weight {
            Ok(w) => w,
            Err(reason) => {
                self.rejected_hello(reason.kind());
                return Err(reason);
            }
        };
        let key = self.next_key;
        self.next_key += 1;
        let limits = SessionLimits {
            queue_capacity: self.cfg.queue_capacity,
            ack_window: self.cfg.ack_window,
            hang_timeout: self.cfg.hang_timeout,
        };
        let (session, registered) = Session::new(key, &hello.id, weight, hello.acks, limits);
        let replaced = self.live.iter().find(|s| s.id == hello.id).map(|s| s.key);
        self.live.push(session);
        self.rebuild_router();
        self.totals.analyzer_sessions += 1;
        self.gone_since.remove(&hello.id);
        let stats = self.stats_of(&hello.id);
        stats.live = true;
        stats.weight = weight;
        if let Some(old) = replaced {
            self.fail(old, &SessionEnd::Replaced, now);
        }
        self.drain_holding(now);
        Ok(registered)
    }

    /// Ends a session as failed: out of routing at once, its queued and unacknowledged
    /// frames re-routed by weight (or held). Returns how many were re-routed, or `None`
    /// when the session had already ended.
    pub fn fail(&mut self, key: SessionKey, reason: &SessionEnd, now: Now) -> Option<u64> {
        let i = self.index(key)?;
        let mut s = self.live.remove(i);
        self.rebuild_router();
        s.cancel.cancel();
        s.notify.notify_one();
        let frames = s.take_all();
        let rerouted = frames.len() as u64;
        let still_live = self.live.iter().any(|o| o.id == s.id);
        let stats = self.stats_of(&s.id);
        s.add_to(stats);
        stats.rerouted += rerouted;
        stats.failures += 1;
        stats.failures_by[reason.reason() as usize] += 1;
        stats.live = still_live;
        stats.queued = 0;
        stats.inflight = 0;
        if !still_live {
            self.gone_since.insert(s.id.clone(), now.instant);
        }
        let mut spilled = Vec::new();
        for f in frames {
            if let Err(f) = self.place(f, now.ns) {
                if f.mark.is_some() {
                    spilled.push(f);
                } else {
                    self.holding.push(f, now.instant);
                }
            }
        }
        // With a journal they wait on disk, in front of the frames that spilled after them.
        for mut f in spilled.into_iter().rev() {
            self.bytes -= f.cost();
            if let Some(m) = f.mark.take() {
                self.spill.put_back(f.priority, m.keep());
            }
        }
        self.room_freed = true;
        tracing::warn!(analyzer = %s.id, session = key, %reason, rerouted, "analyzer session ended");
        Some(rerouted)
    }

    /// Takes the next batch for session `key` off its queues, most urgent first, into
    /// `out` (at most `max_frames`, about `max_bytes`, and within the ACK window), moving
    /// the frames in flight. Returns the dispatch stamp, or `None` if the session is gone.
    pub fn take_batch(
        &mut self,
        key: SessionKey,
        max_frames: usize,
        max_bytes: usize,
        out: &mut Vec<Frame>,
        now: Now,
    ) -> Option<u64> {
        let i = self.index(key)?;
        if self.live[i].take_batch(max_frames, max_bytes, out, now) > 0 {
            self.room_freed = true;
            if !self.holding.is_empty() {
                self.drain_holding(now);
            }
        }
        Some(now.ns)
    }

    /// Records write progress of session `key`: `frames` more DELIVER frames were written
    /// whole; `done` when its batch is all written.
    pub fn wrote(&mut self, key: SessionKey, frames: usize, done: bool, now: Now) {
        let Some(i) = self.index(key) else { return };
        let released = self.live[i].wrote(frames, done, now);
        self.release(released);
    }

    fn release(&mut self, r: Released) {
        self.totals.delivered += r.frames;
        self.bytes -= r.bytes;
        if r.bytes > 0 {
            self.room_freed = true;
        }
    }

    /// Applies a cumulative ACK `count` on session `key`.
    pub fn ack(&mut self, key: SessionKey, count: u64, now: Now) -> Result<(), AckViolation> {
        let Some(i) = self.index(key) else {
            return Ok(());
        };
        let released = self.live[i].ack(count, now)?;
        if released.frames > 0 {
            self.release(released);
            if !self.live[i].queues.is_empty() {
                self.wake(i);
            }
        }
        Ok(())
    }

    /// Periodic work at `now`: sessions without progress are failed as hung; held frames
    /// past their last retry are dropped; the rest are retried; frames that have waited
    /// get their own bytes. Returns the hung sessions.
    pub fn tick(&mut self, now: Now) -> Vec<(String, Hang)> {
        let hung: Vec<(SessionKey, String, Hang)> = self
            .live
            .iter()
            .filter_map(|s| {
                s.liveness
                    .check(now.instant)
                    .map(|h| (s.key, s.id.clone(), h))
            })
            .collect();
        for (key, id, hang) in &hung {
            tracing::warn!(analyzer = %id, %hang, "analyzer hung");
            self.fail(*key, &SessionEnd::Hung(*hang), now);
        }
        if !self.draining {
            let expired = self.holding.expire(now.instant);
            self.room_freed |= !expired.is_empty();
            for (p, cost) in expired {
                self.totals.drop_frame(DropReason::RetriesExhausted, p);
                self.bytes -= cost;
            }
        }
        self.drain_holding(now);
        let cutoff = now.ns.saturating_sub(COMPACT_AFTER_NS);
        for s in &mut self.live {
            s.compact(cutoff);
        }
        self.forget(now.instant);
        hung.into_iter().map(|(_, id, h)| (id, h)).collect()
    }

    /// Folds the counters of ids gone for `forget_after` into one total, so that ids that
    /// come and go do not grow the metrics and the stats without bound.
    fn forget(&mut self, now: Instant) {
        let after = self.cfg.forget_after;
        let old: Vec<String> = self
            .gone_since
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= after)
            .map(|(id, _)| id.clone())
            .collect();
        for id in old {
            self.gone_since.remove(&id);
            if let Some(a) = self.analyzers.remove(&id) {
                let f = &mut self.forgotten.0;
                f.routed += a.routed;
                f.spilled_out += a.spilled_out;
                f.spilled_in += a.spilled_in;
                f.delivered += a.delivered;
                f.written += a.written;
                f.acked += a.acked;
                f.rerouted += a.rerouted;
                f.failures += a.failures;
                self.forgotten.1 += 1;
            }
        }
    }

    /// Counts a protocol error.
    pub fn protocol_error(&mut self) {
        self.totals.protocol_errors += 1;
    }

    /// Counts a connection the distributor closed on its own.
    pub fn closed_connection(&mut self, reason: crate::stats::CloseReason) {
        self.totals.closed_connections[reason as usize] += 1;
    }

    /// Counts a partial frame at the end of an emitter stream.
    pub fn truncated(&mut self) {
        self.totals.truncated += 1;
    }

    /// Counts an emitter connection opening (`true`) or closing.
    pub fn emitter_connection(&mut self, open: bool) {
        if open {
            self.totals.emitter_connections += 1;
            self.totals.emitter_connections_open += 1;
        } else {
            self.totals.emitter_connections_open -= 1;
        }
    }

    /// Counts a refused HELLO.
    pub fn rejected_hello(&mut self, kind: RejectKind) {
        self.totals.rejected_hellos[kind as usize] += 1;
    }

    /// Counts a refused EMITTER HELLO.
    pub fn rejected_emitter_hello(&mut self, kind: crate::stats::EmitterReject) {
        self.totals.rejected_emitter_hellos[kind as usize] += 1;
    }

    /// Counts an emitter connection that asked for ACKs.
    pub fn acked_emitter_connection(&mut self) {
        self.totals.acked_emitter_connections += 1;
    }

    /// Counts an ACK frame sent to an emitter.
    pub fn emitter_ack(&mut self) {
        self.totals.emitter_acks += 1;
    }

    /// Counts a failed TLS handshake.
    pub fn tls_failure(
        &mut self,
        listener: crate::stats::Listener,
        reason: runner::tls::HandshakeFailure,
    ) {
        self.totals.tls_failures[listener as usize][reason as usize] += 1;
    }

    /// Ends every live session whose id `allowed` refuses (the access file changed); their
    /// frames are re-routed. Returns the ids ended.
    pub fn revoke(&mut self, allowed: impl Fn(&str) -> bool, now: Now) -> Vec<String> {
        let gone: Vec<(SessionKey, String)> = self
            .live
            .iter()
            .filter(|s| !allowed(&s.id))
            .map(|s| (s.key, s.id.clone()))
            .collect();
        for (key, _) in &gone {
            self.fail(*key, &SessionEnd::Revoked, now);
        }
        gone.into_iter().map(|(_, id)| id).collect()
    }

    /// From now on held frames wait until shutdown instead of expiring.
    pub fn start_draining(&mut self) {
        self.draining = true;
    }

    /// Frames still inside: queued, in flight, held or spilled.
    pub fn in_system(&self) -> usize {
        self.holding.len() + self.live.iter().map(Session::len).sum::<usize>() + self.spill.len()
    }

    /// At the drain deadline every session ends. Without a journal every frame still
    /// inside is counted as dropped (`shutdown`); with one, frames keep their records and
    /// are delivered after the next start (they stay counted as spilled). Returns how many
    /// were dropped and how many kept.
    pub fn abandon(&mut self) -> (u64, u64) {
        let mut dropped = 0;
        for p in self.holding.take_all() {
            self.totals.drop_frame(DropReason::Shutdown, p);
            dropped += 1;
        }
        for mut s in std::mem::take(&mut self.live) {
            s.cancel.cancel();
            for mut f in s.take_all() {
                match f.mark.take() {
                    Some(m) => {
                        self.spill.put_back(f.priority, m.keep());
                    }
                    None => {
                        self.totals.drop_frame(DropReason::Shutdown, f.priority);
                        dropped += 1;
                    }
                }
            }
            let a = self.stats_of(&s.id);
            s.add_to(a);
            a.live = false;
        }
        self.rebuild_router();
        self.bytes = 0;
        (dropped, self.spill.len() as u64)
    }

    /// Ends every live session without re-routing (their frames were all released).
    pub fn close_all(&mut self) {
        for s in &self.live {
            s.cancel.cancel();
        }
    }

    /// The counters now.
    pub fn snapshot(&self, now: Now) -> Snapshot {
        let mut analyzers = self.analyzers.clone();
        let mut queued_by_class = [0u64; 4];
        for s in &self.live {
            if let Some(a) = analyzers.get_mut(&s.id) {
                s.add_to(a);
                a.queued = s.queues.len() as u64;
                a.inflight = s.inflight.len() as u64;
            }
            for (p, n) in s.queues.levels() {
                queued_by_class[crate::waits::class_of(p)] += n as u64;
            }
        }
        Snapshot {
            ts_ns: now.ns,
            totals: self.totals.clone(),
            analyzers,
            holding: self.holding.len() as u64,
            spilled: self.spill.len() as u64,
            spilled_total: self.spill.total(),
            journal: self.journal.as_ref().map(|j| j.stats()),
            queued_bytes: self.bytes as u64,
            buffered_bytes: 0,
            forgotten: self.forgotten.0.clone(),
            forgotten_ids: self.forgotten.1,
            queued_by_class,
            limits: crate::stats::Limits {
                max_queued_bytes: self.cfg.max_queued_bytes as u64,
                max_buffered_bytes: 0,
                holding_capacity: self.cfg.holding_capacity as u64,
                queue_capacity: self.cfg.queue_capacity as u64,
            },
            waits: crate::waits::WaitCounts::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn at(ns: u64) -> Now {
        Now {
            instant: Instant::now(),
            ns,
        }
    }

    fn core() -> Core {
        Core::new(CoreConfig {
            routing: Routing::Smooth,
            seed: 0,
            queue_capacity: 1000,
            overflow: Overflow::Backpressure,
            when_full: WhenFull::Spill,
            max_queued_bytes: 1 << 30,
            ack_window: 16,
            hang_timeout: Duration::from_secs(5),
            holding_capacity: 10,
            retry: RetrySchedule::new(3),
            pinned: HashMap::new(),
            max_analyzers: 2,
            max_weight: 100.0,
            forget_after: Duration::from_secs(60),
        })
    }

    fn hello(id: &str) -> Hello {
        Hello {
            version: 1,
            acks: false,
            weight: 1.0,
            id: id.into(),
        }
    }

    #[test]
    fn waiting_frames_stop_pinning_the_read_buffer() {
        let mut c = core();
        c.register(&hello("a"), at(1)).unwrap();
        let buffer = Bytes::from(vec![7u8; 300 * 10]);
        let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
        let shared = |c: &Core| -> Vec<bool> {
            let q = &c.live[0].queues;
            q.iter()
                .map(|f| range.contains(&(f.payload.as_ptr() as usize)))
                .collect()
        };
        let t0 = 1_000_000_000;
        let mut first: VecDeque<LogFrame> = (0..200)
            .map(|i| LogFrame {
                priority: (i % 2) as u8,
                payload: buffer.slice(i * 10..i * 10 + 10),
            })
            .collect();
        assert_eq!(
            c.offer(&mut first, at(t0), &Source::default()),
            Offer::Taken
        );
        let mut later: VecDeque<LogFrame> = (200..300)
            .map(|i| LogFrame {
                priority: (i % 2) as u8,
                payload: buffer.slice(i * 10..i * 10 + 10),
            })
            .collect();
        assert_eq!(
            c.offer(&mut later, at(t0 + COMPACT_AFTER_NS), &Source::default()),
            Offer::Taken
        );
        assert!(
            shared(&c).iter().all(|s| *s),
            "queued frames start zero-copy"
        );
        // 100 ms after the first batch, only it has waited long enough to be compacted.
        c.tick(at(t0 + COMPACT_AFTER_NS + 1));
        assert_eq!(shared(&c).iter().filter(|s| !**s).count(), 200);
        c.tick(at(t0 + 3 * COMPACT_AFTER_NS));
        assert!(
            shared(&c).iter().all(|s| !*s),
            "every waiting frame owns its bytes"
        );
        let payloads: Vec<u8> = std::iter::from_fn(|| c.live[0].queues.pop())
            .map(|f| f.payload[0])
            .collect();
        assert_eq!(payloads, vec![7u8; 300], "bytes unchanged");
    }

    #[test]
    fn analyzer_and_weight_limits_reject_with_the_limit() {
        let mut c = core();
        let heavy = Hello {
            weight: 1000.0,
            ..hello("h")
        };
        let err = c.register(&heavy, at(1)).unwrap_err();
        assert!(
            matches!(err, RejectReason::WeightTooLarge { max: 100.0, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("--max-weight"));
        c.register(&hello("a"), at(2)).unwrap();
        c.register(&hello("b"), at(3)).unwrap();
        let err = c.register(&hello("c"), at(4)).unwrap_err();
        assert!(err.to_string().contains("--max-analyzers"), "{err}");
        // A live id may still come back (replacement), the limit notwithstanding.
        c.register(&hello("a"), at(5)).unwrap();
        let t = &c.totals;
        assert_eq!(t.rejected_hellos[RejectKind::WeightTooLarge as usize], 1);
        assert_eq!(t.rejected_hellos[RejectKind::TooManyAnalyzers as usize], 1);
    }

    #[test]
    fn ids_gone_long_enough_are_forgotten_but_still_counted() {
        let mut c = core();
        let t0 = Instant::now();
        let now = |secs: u64| Now {
            instant: t0 + Duration::from_secs(secs),
            ns: secs,
        };
        for (i, id) in ["x1", "x2"].iter().enumerate() {
            let r = c.register(&hello(id), now(i as u64)).unwrap();
            let mut batch: VecDeque<LogFrame> = (0..3)
                .map(|_| LogFrame {
                    priority: 0,
                    payload: Bytes::from_static(b"p"),
                })
                .collect();
            c.offer(&mut batch, now(i as u64), &Source::default());
            let mut out = Vec::new();
            c.take_batch(r.key, 10, 1 << 20, &mut out, now(i as u64));
            c.wrote(r.key, out.len(), true, now(i as u64));
            c.fail(r.key, &SessionEnd::Closed, now(i as u64));
        }
        let before = c.snapshot(now(2)).stats_rows()[0].clone();
        c.tick(now(60));
        let s = c.snapshot(now(60));
        assert_eq!(s.analyzers.len(), 1, "x1 gone 60 s: forgotten; x2 not yet");
        assert_eq!(s.forgotten_ids, 1);
        c.tick(now(61));
        let s = c.snapshot(now(61));
        assert!(s.analyzers.is_empty());
        let after = s.stats_rows()[0].clone();
        assert_eq!(
            (after.routed, after.written, after.delivered),
            (before.routed, before.written, before.delivered)
        );
        assert!(
            s.prometheus()
                .contains("distributor_forgotten_analyzers_total 2")
        );
        assert!(!s.prometheus().contains("analyzer=\"x1\""));
    }

    #[test]
    fn queued_bytes_cap_new_frames_and_come_back_to_zero() {
        let mut c = Core::new(CoreConfig {
            overflow: Overflow::Drop,
            max_queued_bytes: 3 * (8 + crate::frame::FRAME_OVERHEAD),
            ..core().cfg
        });
        let a = c.register(&hello("a"), at(1)).unwrap();
        let mut batch: VecDeque<LogFrame> = (0..5)
            .map(|_| LogFrame {
                priority: 0,
                payload: Bytes::from(vec![1u8; 8]),
            })
            .collect();
        assert_eq!(c.offer(&mut batch, at(2), &Source::default()), Offer::Taken);
        assert_eq!(c.snapshot(at(2)).queued_bytes, 3 * 72);
        assert_eq!(c.totals.dropped_by(DropReason::BytesFull), 2);
        // In flight still counts; written (best effort) releases.
        let mut out = Vec::new();
        c.take_batch(a.key, 10, 1 << 20, &mut out, at(3));
        assert_eq!(c.snapshot(at(3)).queued_bytes, 3 * 72);
        c.wrote(a.key, 3, true, at(4));
        assert_eq!(c.snapshot(at(4)).queued_bytes, 0);
        assert_eq!(c.totals.delivered, 3);
    }

    #[test]
    fn accounting_holds_through_holding_failure_and_drops() {
        let mut c = core();
        let frames = |n: usize| -> VecDeque<LogFrame> {
            (0..n)
                .map(|i| LogFrame {
                    priority: (i % 3) as u8,
                    payload: Bytes::from(vec![1u8; 8]),
                })
                .collect()
        };
        // No analyzer: 10 held, the rest wait (backpressure).
        let mut batch = frames(15);
        assert_eq!(
            c.offer(&mut batch, at(1), &Source::default()),
            Offer::Blocked
        );
        assert_eq!(
            (c.totals.received, c.holding.len(), batch.len()),
            (10, 10, 5)
        );
        // An analyzer arrives: the held frames move to it, the rest follow.
        let a = c.register(&hello("a"), at(2)).unwrap();
        assert_eq!(c.offer(&mut batch, at(3), &Source::default()), Offer::Taken);
        assert_eq!(c.in_system(), 15);
        // It takes 4 (best effort) and fails: its other 11 are held until "b" comes.
        let mut out = Vec::new();
        c.take_batch(a.key, 4, 1 << 20, &mut out, at(4)).unwrap();
        c.wrote(a.key, 4, true, at(4));
        assert_eq!(c.fail(a.key, &SessionEnd::Closed, at(5)), Some(11));
        assert_eq!(c.holding.len(), 11);
        c.register(&hello("b"), at(6)).unwrap();
        assert_eq!(c.holding.len(), 0);
        // At the drain deadline, what is still queued for "b" is counted as dropped.
        let left = c.abandon();
        let t = &c.totals;
        assert_eq!(left, (11, 0));
        assert_eq!(t.received, t.delivered + t.dropped_total());
        assert_eq!((t.delivered, t.dropped_by(DropReason::Shutdown)), (4, 11));
    }
}
