//! The engine: the distributor's state and every decision about a frame, behind one mutex
//! that the server holds for one batch at a time. One entry per decision:
//!
//! - [`admission`]: the one path a frame takes in (access rules, securing it, queueing
//!   it or letting it wait, the overflow policy);
//! - [`placement`]: where frames wait when no queue can take them (in memory, the
//!   [`holding`] queue; on a journal, the [`disk_queue`]) and how they come back;
//! - [`router`]: which analyzer, by weight; this module's `place` applies `--when-full`;
//! - [`session`] and [`queues`]: one analyzer's 256 priority queues, frames in flight and
//!   ACKs; [`health`]: hang detection and the holding queue's retry schedule;
//! - [`ids`]: counters per analyzer id across sessions, and forgetting them;
//! - [`frame`]: a frame inside the distributor; [`clock`]: the time every method is given.
//!
//! One lock is enough here because nothing holds it across I/O and every operation is
//! batched: an emitter connection offers all frames of one read at once, a writer takes a
//! whole batch off its queues at once, an ACK releases many frames at once. Locking per
//! batch costs far less than a lock-free design would save on two cores, and it keeps the
//! accounting invariant (`received + recovered = delivered + dropped + inside`) exact. (A
//! sharded engine, several ingest shards each admitting its own connections' frames over
//! a shared routing table with per-analyzer queues merged by priority at dequeue, would
//! split this state by connection; nothing here assumes a single admitter beyond the lock.)
//!
//! Every method takes the time as a [`Now`] read by the caller: the engine never reads a
//! clock. Wake-ups are collected while the lock is held ([`Engine::take_wakes`]) and issued
//! after it is released, so a woken task never blocks on the lock its waker still holds.

pub(crate) mod admission;
pub(crate) mod clock;
pub(crate) mod disk_queue;
pub(crate) mod frame;
pub(crate) mod health;
pub(crate) mod holding;
pub(crate) mod ids;
pub(crate) mod log_budget;
pub(crate) mod placement;
pub(crate) mod queues;
pub mod router;
pub(crate) mod session;

pub use admission::{Offer, Source};
pub use clock::Now;

use crate::accounting::{
    CloseReason, DropReason, EmitterReject, Listener, RejectKind, Snapshot, Totals,
};
use crate::journal::{Journal, Recovered};
use frame::{COMPACT_AFTER_NS, Frame};
use health::{Hang, RetrySchedule};
use ids::Ids;
use log_budget::{Line, LogBudget};
use placement::Placement;
use protocol::analyzer::Hello;
use router::{Router, Routing};
use runfolder::{Overflow, WhenFull};
use session::{
    AckViolation, Registered, RejectReason, Released, Session, SessionEnd, SessionKey,
    SessionLimits,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The settings the engine needs.
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    /// Routing strategy.
    pub(crate) routing: Routing,
    /// Seed of the random router.
    pub(crate) seed: u64,
    /// Frames per priority level per analyzer.
    pub(crate) queue_capacity: usize,
    /// Full-queue policy.
    pub(crate) overflow: Overflow,
    /// Whether a frame whose chosen analyzer is full may go to another.
    pub(crate) when_full: WhenFull,
    /// Bytes ([`Frame::cost`]) queued, held and in flight at most; new frames past it meet
    /// the overflow policy.
    pub(crate) max_queued_bytes: usize,
    /// Unacknowledged frames per at-least-once analyzer.
    pub(crate) ack_window: usize,
    /// No progress for this long: the analyzer is hung.
    pub(crate) hang_timeout: Duration,
    /// Frames held while no analyzer can take them, before overflow applies.
    pub(crate) holding_capacity: usize,
    /// Retry schedule of held frames.
    pub(crate) retry: RetrySchedule,
    /// Weights pinned by configuration, by analyzer id; they win over the HELLO.
    pub(crate) pinned: HashMap<String, f64>,
    /// Live analyzer sessions at most; another id's HELLO is refused.
    pub(crate) max_analyzers: usize,
    /// The largest weight a HELLO may claim (pinned weights are not limited).
    pub(crate) max_weight: f64,
    /// An id without a session this long is forgotten: its counters fold into one total.
    pub(crate) forget_after: Duration,
    /// Ids without a session remembered at most; past it the least recently seen are
    /// forgotten at once.
    pub(crate) max_remembered_ids: usize,
}

/// The analyzer writers one locked call woke, to notify once the lock is released: a few
/// inline (one per analyzer a batch reached), more on the heap.
#[derive(Debug, Default)]
pub(crate) struct Wakes {
    inline: [Option<Arc<Notify>>; 4],
    extra: Vec<Arc<Notify>>,
}

impl Wakes {
    /// Notifies each.
    pub(crate) fn notify(self) {
        for w in self.inline.into_iter().flatten().chain(self.extra) {
            w.notify_one();
        }
    }
}

/// The distributor's state.
#[derive(Debug)]
pub(crate) struct Engine {
    cfg: EngineConfig,
    router: Router,
    /// Live sessions, in the router's member order.
    live: Vec<Session>,
    /// Where frames without room wait: the holding queue, or the journal's disk queue.
    placement: Placement,
    /// [`Frame::cost`] of every frame in memory: queued, in flight or held.
    bytes: usize,
    totals: Totals,
    ids: Ids,
    next_key: SessionKey,
    wakes: Vec<Arc<Notify>>,
    room_freed: bool,
    draining: bool,
    /// Lines about analyzer sessions, which clients can cause at any rate.
    session_lines: LogBudget,
    /// The latest queue or dispatch stamp given, in lock order. Callers read the clock
    /// outside the lock, so a stamp read earlier may be used later: stamps never go below
    /// this one, so a frame queued after another was dispatched never reads as queued
    /// before it (which the priority check would take for an inversion).
    stamp_floor_ns: u64,
}

impl Engine {
    /// An empty distributor state, in memory.
    pub(crate) fn new(cfg: EngineConfig) -> Self {
        let remembered = cfg.max_remembered_ids;
        Self {
            router: Router::new(cfg.routing, cfg.seed),
            placement: Placement::memory(cfg.holding_capacity, cfg.retry),
            cfg,
            live: Vec::new(),
            bytes: 0,
            totals: Totals::default(),
            ids: Ids::new(remembered),
            next_key: 1,
            wakes: Vec::new(),
            room_freed: false,
            draining: false,
            session_lines: LogBudget::default(),
            stamp_floor_ns: 0,
        }
    }

    /// Whether a line about an analyzer session (start, end, refusal) may be logged at
    /// `now` (see [`log_budget`]).
    pub(crate) fn session_line(&mut self, now: std::time::Instant) -> Line {
        self.session_lines.line(now)
    }

    /// Journals every frame taken from now on, and takes the records the last run left
    /// (they wait on disk, read back by priority as room frees).
    pub(crate) fn set_journal(&mut self, journal: Arc<Journal>, recovered: Recovered) {
        self.totals.recovered += recovered.frames.len() as u64;
        self.placement = Placement::on_journal(journal, recovered);
    }

    /// The wake-ups collected since the last call (the engine's list keeps its room: no
    /// allocation per batch), and whether room freed for blocked emitters. The caller
    /// issues them after releasing the lock.
    pub(crate) fn take_wakes(&mut self) -> (Wakes, bool) {
        let mut out = Wakes::default();
        for (i, w) in self.wakes.drain(..).enumerate() {
            match out.inline.get_mut(i) {
                Some(slot) => *slot = Some(w),
                None => out.extra.push(w),
            }
        }
        (out, std::mem::take(&mut self.room_freed))
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
        frame.queued_ns = self.stamp(now_ns);
        let s = &mut self.live[i];
        s.queues.push(frame)?;
        s.routed += 1;
        self.wake(i);
        Ok(())
    }

    /// Checks an accepted HELLO against the configuration and makes it a live session. A
    /// live session with the same id is replaced (its frames re-routed).
    pub(crate) fn register(&mut self, hello: &Hello, now: Now) -> Result<Registered, RejectReason> {
        let weight = match self.admit_hello(hello) {
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
        self.ids.back(&hello.id);
        let stats = self.ids.stats_of(&hello.id);
        stats.live = true;
        stats.weight = weight;
        if let Some(old) = replaced {
            self.fail(old, &SessionEnd::Replaced, now);
        }
        self.drain_holding(now);
        Ok(registered)
    }

    /// Whether the operator pinned `id`'s weight (`--weight`): its HELLO's weight is not
    /// used, so no limit applies to it.
    pub(crate) fn pinned(&self, id: &str) -> bool {
        self.cfg.pinned.contains_key(id)
    }

    /// The weight a HELLO gets, or why it is refused.
    fn admit_hello(&self, hello: &Hello) -> Result<f64, RejectReason> {
        let weight = match self.cfg.pinned.get(&hello.id) {
            Some(w) => *w,
            None if !hello.weight_is_valid() => {
                return Err(RejectReason::InvalidWeight {
                    id: hello.id.clone(),
                    weight: hello.weight,
                });
            }
            None if hello.weight > self.cfg.max_weight => {
                return Err(RejectReason::WeightTooLarge {
                    id: hello.id.clone(),
                    weight: hello.weight,
                    max: self.cfg.max_weight,
                    limit: "--max-weight",
                });
            }
            None => hello.weight,
        };
        let replacing = self.live.iter().any(|s| s.id == hello.id);
        if !replacing && self.live.len() >= self.cfg.max_analyzers {
            return Err(RejectReason::TooManyAnalyzers {
                id: hello.id.clone(),
                max: self.cfg.max_analyzers,
            });
        }
        Ok(weight)
    }

    /// Ends a session as failed: out of routing at once, its queued and unacknowledged
    /// frames re-routed by weight (or left to wait). Returns how many were re-routed, or
    /// `None` when the session had already ended.
    pub(crate) fn fail(&mut self, key: SessionKey, reason: &SessionEnd, now: Now) -> Option<u64> {
        let i = self.index(key)?;
        let mut s = self.live.remove(i);
        self.rebuild_router();
        s.cancel.cancel();
        s.notify.notify_one();
        let frames = s.take_all();
        let rerouted = frames.len() as u64;
        let still_live = self.live.iter().any(|o| o.id == s.id);
        let stats = self.ids.stats_of(&s.id);
        s.add_to(stats);
        stats.rerouted += rerouted;
        stats.failures += 1;
        stats.failures_by[reason.reason() as usize] += 1;
        stats.live = still_live;
        stats.queued = 0;
        stats.inflight = 0;
        if !still_live {
            self.ids.gone(&s.id, now.instant);
        }
        let mut unplaced = Vec::new();
        for f in frames {
            if let Err(f) = self.place(f, now.ns) {
                unplaced.push(f);
            }
        }
        let released = self.placement.take_back(unplaced, now.instant);
        self.bytes -= released;
        self.room_freed = true;
        if let Line::Log { suppressed } = self.session_lines.line(now.instant) {
            tracing::warn!(analyzer = %s.id, session = key, %reason, rerouted, suppressed, "analyzer session ended");
        }
        Some(rerouted)
    }

    /// Takes the next batch for session `key` off its queues, most urgent first, into
    /// `out` (at most `max_frames`, about `max_bytes`, and within the ACK window), moving
    /// the frames in flight. Returns the dispatch stamp, or `None` if the session is gone.
    pub(crate) fn take_batch(
        &mut self,
        key: SessionKey,
        max_frames: usize,
        max_bytes: usize,
        out: &mut Vec<Frame>,
        now: Now,
    ) -> Option<u64> {
        let i = self.index(key)?;
        let now = Now {
            ns: self.stamp(now.ns),
            ..now
        };
        if self.live[i].take_batch(max_frames, max_bytes, out, now) > 0 {
            self.room_freed = true;
            self.drain_holding(now);
        }
        Some(now.ns)
    }

    /// A queue or dispatch stamp for a clock reading of `ns`, never below the last one.
    fn stamp(&mut self, ns: u64) -> u64 {
        self.stamp_floor_ns = self.stamp_floor_ns.max(ns);
        self.stamp_floor_ns
    }

    /// Records write progress of session `key`: `frames` more DELIVER frames were written
    /// whole; `done` when its batch is all written.
    pub(crate) fn wrote(&mut self, key: SessionKey, frames: usize, done: bool, now: Now) {
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
    pub(crate) fn ack(
        &mut self,
        key: SessionKey,
        count: u64,
        now: Now,
    ) -> Result<(), AckViolation> {
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
    pub(crate) fn tick(&mut self, now: Now) -> Vec<(String, Hang)> {
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
            let expired = self.placement.expire(now.instant);
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
        self.ids.forget(now.instant, self.cfg.forget_after);
        hung.into_iter().map(|(_, id, h)| (id, h)).collect()
    }

    /// Counts a protocol error.
    pub(crate) fn protocol_error(&mut self) {
        self.totals.protocol_errors += 1;
    }

    /// Counts a connection the distributor closed on its own.
    pub(crate) fn closed_connection(&mut self, reason: CloseReason) {
        self.totals.closed_connections[reason as usize] += 1;
    }

    /// Counts a partial frame at the end of an emitter stream.
    pub(crate) fn truncated(&mut self) {
        self.totals.truncated += 1;
    }

    /// Counts an emitter connection opening (`true`) or closing.
    pub(crate) fn emitter_connection(&mut self, open: bool) {
        if open {
            self.totals.emitter_connections += 1;
            self.totals.emitter_connections_open += 1;
        } else {
            self.totals.emitter_connections_open -= 1;
        }
    }

    /// Counts a refused HELLO.
    pub(crate) fn rejected_hello(&mut self, kind: RejectKind) {
        self.totals.rejected_hellos[kind as usize] += 1;
    }

    /// Counts a refused EMITTER HELLO.
    pub(crate) fn rejected_emitter_hello(&mut self, kind: EmitterReject) {
        self.totals.rejected_emitter_hellos[kind as usize] += 1;
    }

    /// Counts an emitter connection that asked for ACKs.
    pub(crate) fn acked_emitter_connection(&mut self) {
        self.totals.acked_emitter_connections += 1;
    }

    /// Counts an ACK frame sent to an emitter.
    pub(crate) fn emitter_ack(&mut self) {
        self.totals.emitter_acks += 1;
    }

    /// Counts a failed TLS handshake.
    pub(crate) fn tls_failure(
        &mut self,
        listener: Listener,
        reason: runner::tls::HandshakeFailure,
    ) {
        self.totals.tls_failures[listener as usize][reason as usize] += 1;
    }

    /// Ends every live session whose id `allowed` refuses (the access file changed); their
    /// frames are re-routed. Returns the ids ended.
    pub(crate) fn revoke(&mut self, allowed: impl Fn(&str) -> bool, now: Now) -> Vec<String> {
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
    pub(crate) fn start_draining(&mut self) {
        self.draining = true;
    }

    /// Frames still inside: queued, in flight, held or waiting on disk.
    pub(crate) fn in_system(&self) -> usize {
        self.placement.len() + self.live.iter().map(Session::len).sum::<usize>()
    }

    /// At the drain deadline every session ends. Without a journal every frame still
    /// inside is counted as dropped (`shutdown`); with one, frames keep their records and
    /// are delivered after the next start (they stay counted as waiting on disk). Returns
    /// how many were dropped and how many kept.
    pub(crate) fn abandon(&mut self, now: Now) -> (u64, u64) {
        let mut frames = Vec::new();
        for mut s in std::mem::take(&mut self.live) {
            s.cancel.cancel();
            frames.extend(s.take_all());
            let a = self.ids.stats_of(&s.id);
            s.add_to(a);
            a.live = false;
        }
        self.rebuild_router();
        let dropped = self.placement.abandon(frames, now.instant);
        for p in &dropped {
            self.totals.drop_frame(DropReason::Shutdown, *p);
        }
        self.bytes = 0;
        (dropped.len() as u64, self.placement.len() as u64)
    }

    /// After the journal closed: frames waiting on disk whose records never reached it
    /// (the disk took nothing at shutdown) are counted as dropped (`shutdown`). Returns how
    /// many.
    pub(crate) fn forget_unwritten(&mut self) -> u64 {
        let Some(written) = self.placement.journal().map(Journal::written) else {
            return 0;
        };
        let lost = self.placement.forget_unwritten(written);
        for p in &lost {
            self.totals.drop_frame(DropReason::Shutdown, *p);
        }
        lost.len() as u64
    }

    /// Ends every live session without re-routing (their frames were all released).
    pub(crate) fn close_all(&mut self) {
        for s in &self.live {
            s.cancel.cancel();
        }
    }

    /// The counters now.
    pub(crate) fn snapshot(&self, now: Now) -> Snapshot {
        let mut analyzers = self.ids.all().clone();
        let mut queued_by_class = [0u64; 4];
        for s in &self.live {
            if let Some(a) = analyzers.get_mut(&s.id) {
                s.add_to(a);
                a.queued = s.queues.len() as u64;
                a.inflight = s.inflight.len() as u64;
            }
            for (p, n) in s.queues.levels() {
                queued_by_class[crate::accounting::waits::class_of(p)] += n as u64;
            }
        }
        let (forgotten, forgotten_ids) = self.ids.forgotten();
        Snapshot {
            ts_ns: now.ns,
            totals: self.totals.clone(),
            analyzers,
            holding: self.placement.held() as u64,
            spilled: self.placement.on_disk() as u64,
            spilled_total: self.placement.disk_total(),
            journal: self.placement.journal().map(|j| j.stats()),
            queued_bytes: self.bytes as u64,
            buffered_bytes: 0,
            forgotten: forgotten.clone(),
            forgotten_ids,
            queued_by_class,
            limits: crate::accounting::Limits {
                max_queued_bytes: self.cfg.max_queued_bytes as u64,
                max_buffered_bytes: 0,
                holding_capacity: self.cfg.holding_capacity as u64,
                queue_capacity: self.cfg.queue_capacity as u64,
            },
            waits: crate::accounting::waits::WaitCounts::default(),
        }
    }
}

#[cfg(test)]
mod tests;
