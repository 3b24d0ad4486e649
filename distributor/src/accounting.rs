//! Accounting: every frame received (or recovered from the journal) is, at any moment,
//! delivered, dropped (counted by reason and priority) or still inside the distributor
//! (queued, in flight, held, or waiting on disk):
//! `received + recovered = delivered + dropped + queued + inflight + holding + disk_waiting`.
//!
//! The engine keeps the counters ([`Totals`], [`AnalyzerStats`] per id) and takes a
//! [`Snapshot`] of them under its lock; the snapshot is rendered after the lock is released,
//! as the per-second stats CSV ([`Snapshot::stats_rows`], `runfolder::rows::Stats`) here and
//! as OpenMetrics text by the server (`server::metrics`). The closed sets counted by are in
//! [`reasons`]; the queue-wait histogram, which the analyzer writers record outside the
//! lock, in [`waits`].

pub mod reasons;
pub mod waits;

pub use reasons::{CloseReason, DropReason, EmitterReject, FailureReason, Listener, RejectKind};

use runfolder::rows::{Scope, Stats};
use runner::tls::HandshakeFailure;
use std::collections::BTreeMap;

/// Distributor-wide counters.
#[derive(Debug, Clone)]
pub struct Totals {
    /// LOG frames accepted.
    pub received: u64,
    /// Frames the journal held at start, not done: delivered as if received again.
    pub recovered: u64,
    /// Frames written (best effort) or acknowledged (at least once).
    pub delivered: u64,
    /// Dropped frames by reason (index of [`DropReason::ALL`]) and priority.
    pub dropped: [[u64; 256]; DropReason::ALL.len()],
    /// Connections ended for bad input.
    pub protocol_errors: u64,
    /// Partial frames at the end of an emitter stream.
    pub truncated: u64,
    /// Emitter connections accepted.
    pub emitter_connections: u64,
    /// Emitter connections now open.
    pub emitter_connections_open: u64,
    /// HELLOs accepted.
    pub analyzer_sessions: u64,
    /// HELLOs refused, by reason (index of `RejectKind::ALL`).
    pub rejected_hellos: [u64; RejectKind::ALL.len()],
    /// EMITTER HELLOs refused, by reason (index of [`EmitterReject::ALL`]).
    pub rejected_emitter_hellos: [u64; EmitterReject::ALL.len()],
    /// Emitter connections that opened with an EMITTER HELLO asking for ACKs.
    pub acked_emitter_connections: u64,
    /// ACK frames sent to emitters.
    pub emitter_acks: u64,
    /// TLS handshakes that failed, by listener and reason (indexes of [`Listener::ALL`] and
    /// `HandshakeFailure::ALL`).
    pub tls_failures: [[u64; HandshakeFailure::ALL.len()]; Listener::ALL.len()],
    /// Connections the distributor closed, by reason (index of [`CloseReason::ALL`]).
    pub closed_connections: [u64; CloseReason::ALL.len()],
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            received: 0,
            recovered: 0,
            delivered: 0,
            dropped: [[0; 256]; DropReason::ALL.len()],
            protocol_errors: 0,
            truncated: 0,
            emitter_connections: 0,
            emitter_connections_open: 0,
            analyzer_sessions: 0,
            rejected_hellos: [0; RejectKind::ALL.len()],
            rejected_emitter_hellos: [0; EmitterReject::ALL.len()],
            acked_emitter_connections: 0,
            emitter_acks: 0,
            tls_failures: [[0; HandshakeFailure::ALL.len()]; Listener::ALL.len()],
            closed_connections: [0; CloseReason::ALL.len()],
        }
    }
}

impl Totals {
    /// Counts one dropped frame.
    pub fn drop_frame(&mut self, reason: DropReason, priority: u8) {
        self.dropped[reason as usize][priority as usize] += 1;
    }

    /// Dropped frames for one reason.
    pub fn dropped_by(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].iter().sum()
    }

    /// Dropped frames for every reason.
    pub fn dropped_total(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.dropped_by(*r)).sum()
    }
}

/// Counters of one analyzer id, kept across its sessions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalyzerStats {
    /// Frames queued for it.
    pub routed: u64,
    /// Frames the router chose for it that went to another analyzer, its queue for their
    /// priority being full (`--when-full spill`).
    pub spilled_out: u64,
    /// Frames it took for another analyzer whose queue was full.
    pub spilled_in: u64,
    /// Frames delivered to it: written (best effort) or acknowledged (at least once).
    pub delivered: u64,
    /// DELIVER frames written to it.
    pub written: u64,
    /// Frames it acknowledged.
    pub acked: u64,
    /// Frames taken off it after a failure.
    pub rerouted: u64,
    /// Sessions that ended by failure (closed, errored, hung, protocol error, replaced).
    pub failures: u64,
    /// The same by reason (index of [`FailureReason::ALL`]).
    pub failures_by: [u64; FailureReason::ALL.len()],
    /// Whether a session is live now.
    pub live: bool,
    /// Its weight (the last one seen).
    pub weight: f64,
    /// Frames in its queues now.
    pub queued: u64,
    /// Frames dispatched and not yet released (being written, or awaiting ACK).
    pub inflight: u64,
}

impl AnalyzerStats {
    /// Adds the counters of `other` (a forgotten id's) to these.
    pub(crate) fn fold(&mut self, other: &AnalyzerStats) {
        self.routed += other.routed;
        self.spilled_out += other.spilled_out;
        self.spilled_in += other.spilled_in;
        self.delivered += other.delivered;
        self.written += other.written;
        self.acked += other.acked;
        self.rerouted += other.rerouted;
        self.failures += other.failures;
        for (f, o) in self.failures_by.iter_mut().zip(other.failures_by) {
            *f += o;
        }
    }
}

/// The limits usage is judged against (`--max-queued-bytes`, `--max-buffered-bytes`,
/// `--holding-capacity`, `--queue-capacity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes queued, in flight or held at most.
    pub max_queued_bytes: u64,
    /// Bytes of partial frames over every emitter connection at most.
    pub max_buffered_bytes: u64,
    /// Frames in the holding queue at most.
    pub holding_capacity: u64,
    /// Frames per priority level per analyzer at most.
    pub queue_capacity: u64,
}

/// Everything the metrics endpoint and the stats CSV show, taken at one instant.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// When it was taken, ns since the epoch.
    pub ts_ns: u64,
    /// Distributor-wide counters.
    pub totals: Totals,
    /// Per analyzer id.
    pub analyzers: BTreeMap<String, AnalyzerStats>,
    /// Frames in the holding queue.
    pub holding: u64,
    /// Frames waiting in the journal instead of memory (spilled or recovered).
    pub spilled: u64,
    /// Frames that ever spilled.
    pub spilled_total: u64,
    /// The journal's counters, with a data directory.
    pub journal: Option<crate::journal::JournalStats>,
    /// Bytes of every frame queued, in flight or held (its payload plus 64 each).
    pub queued_bytes: u64,
    /// Bytes of partial frames buffered over every emitter connection.
    pub buffered_bytes: u64,
    /// The counters of analyzer ids forgotten after `--forget-after` without a session,
    /// folded together (they leave the per-analyzer series but not the totals).
    pub forgotten: AnalyzerStats,
    /// How many ids were forgotten.
    pub forgotten_ids: u64,
    /// Frames queued per priority class ([`waits::CLASSES`]) over all analyzers.
    pub queued_by_class: [u64; 4],
    /// The configured limits, for alerts that compare usage with them.
    pub limits: Limits,
    /// How long frames waited in the queues, per priority class.
    pub waits: waits::WaitCounts,
}

impl Snapshot {
    /// Frames queued over all analyzers.
    pub fn queued(&self) -> u64 {
        self.analyzers.values().map(|a| a.queued).sum()
    }

    /// Frames in flight over all analyzers.
    pub fn inflight(&self) -> u64 {
        self.analyzers.values().map(|a| a.inflight).sum()
    }

    /// Frames inside the distributor: queued, in flight or held.
    pub fn in_system(&self) -> u64 {
        self.queued() + self.inflight() + self.holding + self.spilled
    }

    /// The stats CSV rows of this instant: one `*` row of totals, then one per analyzer.
    pub fn stats_rows(&self) -> Vec<Stats> {
        let t = &self.totals;
        let j = self.journal.unwrap_or_default();
        let live = || self.analyzers.values().filter(|a| a.live);
        let sum = |f: fn(&AnalyzerStats) -> u64| {
            self.analyzers.values().map(f).sum::<u64>() + f(&self.forgotten)
        };
        let total = Stats {
            ts_ns: self.ts_ns,
            analyzer: Scope::Total,
            live: live().count() as u64,
            weight: live().fold(0.0, |sum, a| sum + a.weight),
            received: t.received,
            delivered: t.delivered,
            routed: sum(|a| a.routed),
            spilled_out: sum(|a| a.spilled_out),
            spilled_in: sum(|a| a.spilled_in),
            written: sum(|a| a.written),
            acked: sum(|a| a.acked),
            rerouted: sum(|a| a.rerouted),
            failures: sum(|a| a.failures),
            dropped_queue_full: t.dropped_by(DropReason::QueueFull),
            dropped_holding_full: t.dropped_by(DropReason::HoldingFull),
            dropped_retries_exhausted: t.dropped_by(DropReason::RetriesExhausted),
            dropped_shutdown: t.dropped_by(DropReason::Shutdown),
            dropped_bytes_full: t.dropped_by(DropReason::BytesFull),
            dropped_forbidden: t.dropped_by(DropReason::Forbidden),
            dropped_journal_full: t.dropped_by(DropReason::JournalFull),
            dropped_journal_corrupt: t.dropped_by(DropReason::JournalCorrupt),
            recovered: t.recovered,
            disk_spilled: self.spilled_total,
            disk_waiting: self.spilled,
            journal_bytes: j.bytes,
            journal_segments: j.segments,
            fsyncs: j.fsyncs,
            fsync_us: j.fsync_us,
            fsync_max_us: j.fsync_max_us,
            emitter_acks: t.emitter_acks,
            journal_write_errors: j.write_errors,
            journal_disk_full: u64::from(j.disk_full),
            protocol_errors: t.protocol_errors,
            truncated: t.truncated,
            emitter_connections_open: t.emitter_connections_open,
            queued: self.queued(),
            inflight: self.inflight(),
            holding: self.holding,
            queued_bytes: self.queued_bytes,
            buffered_bytes: self.buffered_bytes,
        };
        let per_analyzer = self.analyzers.iter().map(|(id, a)| Stats {
            live: u64::from(a.live),
            weight: a.weight,
            delivered: a.delivered,
            routed: a.routed,
            spilled_out: a.spilled_out,
            spilled_in: a.spilled_in,
            written: a.written,
            acked: a.acked,
            rerouted: a.rerouted,
            failures: a.failures,
            queued: a.queued,
            inflight: a.inflight,
            ..Stats::zeroed(self.ts_ns, Scope::Analyzer(id.clone()))
        });
        std::iter::once(total).chain(per_analyzer).collect()
    }
}

/// A snapshot with a value in most families, for the renderers' tests.
#[cfg(test)]
pub(crate) fn sample_snapshot() -> Snapshot {
    let mut s = Snapshot {
        ts_ns: 5,
        holding: 2,
        queued_bytes: 1234,
        buffered_bytes: 99,
        ..Snapshot::default()
    };
    s.totals.received = 10;
    s.totals.delivered = 7;
    s.totals.drop_frame(DropReason::QueueFull, 3);
    s.analyzers.insert(
        "a,\"1\"".into(),
        AnalyzerStats {
            routed: 8,
            spilled_out: 3,
            delivered: 7,
            written: 7,
            live: true,
            weight: 2.5,
            queued: 1,
            failures: 2,
            failures_by: [1, 0, 0, 1, 0, 0],
            ..AnalyzerStats::default()
        },
    );
    s.queued_by_class = [1, 0, 4, 0];
    let mut w = waits::WaitCounts::default();
    // 200 µs and 30 ms at priority 0, 2 s at priority 200.
    w.add(
        [(0, 1_999_800_000), (0, 1_970_000_000), (200, 0)],
        2_000_000_000,
    );
    s.waits = w;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_rows_are_quoted_by_the_csv_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats-1.csv");
        let mut w = runfolder::TableWriter::<Stats>::create(&path).unwrap();
        for row in sample_snapshot().stats_rows() {
            w.write(&row).unwrap();
        }
        w.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "5,*,1,2.5,10,7,8,3,0,7,0,0,2,1,0,0,0,0,0,0,0,1,0,2,1234,99,0,0,0,0,0,0,0,0,0,0,0,0,0,0"
        );
        assert_eq!(
            lines[2],
            "5,\"a,\"\"1\"\"\",1,2.5,0,7,8,3,0,7,0,0,2,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0"
        );
        let back = runfolder::table::read_all::<Stats>(&path).unwrap();
        assert_eq!(back, sample_snapshot().stats_rows());
    }
}
