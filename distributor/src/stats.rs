//! Accounting: every frame received (or recovered from the journal) is, at any moment,
//! delivered, dropped (counted by reason and priority) or still inside the distributor
//! (queued, in flight, held, or waiting in the journal):
//! `received + recovered = delivered + dropped + queued + inflight + holding + disk_waiting`.
//!
//! Rendered two ways from one [`Snapshot`]: OpenMetrics text for Prometheus, encoded by
//! `prometheus-client` ([`Snapshot::prometheus`]), and the per-second stats CSV
//! ([`Snapshot::stats_rows`], `runfolder::rows::Stats`). The snapshot is taken under the
//! core's lock; both renderings happen after it is released. Metric names (namespace
//! `distributor`, labels `analyzer`, `reason`, `priority` only):
//!
//! | metric | meaning |
//! |---|---|
//! | `distributor_received_frames_total` | LOG frames accepted from emitters |
//! | `distributor_delivered_frames_total` | written (best effort) or acknowledged (at least once) |
//! | `distributor_dropped_frames_total{reason}` | given up, by reason (every reason exported from the start, at 0) |
//! | `distributor_dropped_frames_by_priority_total{reason,priority}` | given up, by reason and priority (pairs with drops only) |
//! | `distributor_protocol_errors_total` | connections ended for bad input |
//! | `distributor_truncated_frames_total` | partial frames at the end of an emitter stream |
//! | `distributor_emitter_connections_total` | emitter connections accepted |
//! | `distributor_analyzer_sessions_total` | HELLOs accepted |
//! | `distributor_rejected_hellos_total{reason}` | HELLOs answered with REJECT, by reason (`malformed`, `invalid_weight`, `weight_too_large`, `too_many_analyzers`, `identity`, `not_allowed`; every reason from the start) |
//! | `distributor_rejected_emitter_hellos_total{reason}` | EMITTER HELLOs answered with REJECT (`malformed`, `identity`) |
//! | `distributor_acked_emitter_connections_total` | emitter connections that asked for ACKs |
//! | `distributor_emitter_acks_total` | ACK frames sent to emitters |
//! | `distributor_tls_handshake_failures_total{listener,reason}` | failed TLS handshakes: `no_certificate`, `unknown_issuer`, `expired`, `bad_certificate`, `not_tls`, `timeout`, `other` |
//! | `distributor_routed_frames_total{analyzer}` | frames queued for an analyzer (re-routes included) |
//! | `distributor_analyzer_delivered_frames_total{analyzer}` | delivered to that analyzer |
//! | `distributor_written_frames_total{analyzer}` | DELIVER frames written to its socket |
//! | `distributor_acked_frames_total{analyzer}` | frames it acknowledged |
//! | `distributor_rerouted_frames_total{analyzer}` | frames taken off it after it failed |
//! | `distributor_analyzer_failures_total{analyzer}` | sessions that ended by failure |
//! | `distributor_analyzer_live{analyzer}` (gauge) | 1 while a session is live |
//! | `distributor_analyzer_weight{analyzer}` (gauge) | its weight while live |
//! | `distributor_queued_frames{analyzer}` (gauge) | frames in its priority queues |
//! | `distributor_inflight_frames{analyzer}` (gauge) | frames written or being written, not yet released |
//! | `distributor_holding_frames` (gauge) | frames waiting for any analyzer |
//! | `distributor_recovered_frames_total` | frames the journal held at start, not done, delivered again |
//! | `distributor_disk_spilled_frames_total` | frames that found no room in memory and waited in the journal |
//! | `distributor_disk_waiting_frames` (gauge) | frames waiting in the journal now (spilled or recovered) |
//! | `distributor_journal_bytes`, `distributor_journal_segments`, `distributor_journal_max_bytes` (gauges) | size of the journal on disk (with `--data-dir`), and its limit |
//! | `distributor_journal_fsyncs_total`, `distributor_journal_fsync_seconds_total` | group commits and the time spent in them |
//! | `distributor_journal_fsync_max_seconds` (gauge) | the longest fdatasync of the last one to two seconds |
//! | `distributor_journal_torn_tails_total`, `distributor_journal_corrupt_records_total` | bad records met at start (torn tails cut off) or read back |
//! | `distributor_emitter_connections_open` (gauge) | emitter connections now open |
//! | `distributor_closed_connections_total{reason}` | connections closed by the distributor: `slow_frame` (an emitter's frame not whole within `--frame-timeout`), `no_hello` (an analyzer without a HELLO for 10 s) |
//! | `distributor_forgotten_analyzers_total` | ids dropped from the per-analyzer series after `--forget-after` (their counts stay in the totals) |

use crate::session::RejectKind;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use runfolder::rows::{Scope, Stats};
use runner::tls::HandshakeFailure;
use std::collections::BTreeMap;

/// Why a frame was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// `--overflow drop` and every live analyzer's queue for its priority was full.
    QueueFull,
    /// `--overflow drop`, no analyzer live and the holding queue full.
    HoldingFull,
    /// It waited in the holding queue through `--max-attempts` retries.
    RetriesExhausted,
    /// Still inside the distributor when the drain deadline passed at shutdown, or read in
    /// the shutdown grace and never found room.
    Shutdown,
    /// `--overflow drop` and `--max-queued-bytes` reached.
    BytesFull,
    /// A priority the access file does not allow the emitter's identity.
    Forbidden,
    /// `--overflow drop` and the journal at `--journal-max-bytes`.
    JournalFull,
    /// Spilled to the journal, and its record could not be read back.
    JournalCorrupt,
}

impl DropReason {
    /// Every reason, in the order of the counters.
    pub const ALL: [DropReason; 8] = [
        DropReason::QueueFull,
        DropReason::HoldingFull,
        DropReason::RetriesExhausted,
        DropReason::Shutdown,
        DropReason::BytesFull,
        DropReason::Forbidden,
        DropReason::JournalFull,
        DropReason::JournalCorrupt,
    ];

    /// The label used in metrics, CSV and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::HoldingFull => "holding_full",
            DropReason::RetriesExhausted => "retries_exhausted",
            DropReason::Shutdown => "shutdown",
            DropReason::BytesFull => "bytes_full",
            DropReason::Forbidden => "forbidden",
            DropReason::JournalFull => "journal_full",
            DropReason::JournalCorrupt => "journal_corrupt",
        }
    }
}

/// The distributor's listeners, as named in logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The emitter port.
    Emitter,
    /// The analyzer port.
    Analyzer,
    /// The metrics endpoint.
    Metrics,
}

impl Listener {
    /// Every listener, in the order of the counters.
    pub const ALL: [Listener; 3] = [Listener::Emitter, Listener::Analyzer, Listener::Metrics];

    /// The label in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Emitter => "emitter",
            Listener::Analyzer => "analyzer",
            Listener::Metrics => "metrics",
        }
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an EMITTER HELLO was refused, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitterReject {
    /// Not an acceptable EMITTER HELLO.
    Malformed,
    /// Over mutual TLS, an id other than the certificate's identity.
    Identity,
}

impl EmitterReject {
    /// Every reason, in the order of the counters.
    pub const ALL: [EmitterReject; 2] = [EmitterReject::Malformed, EmitterReject::Identity];

    /// The label in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EmitterReject::Malformed => "malformed",
            EmitterReject::Identity => "identity",
        }
    }
}

/// Why the distributor closed a connection on its own (besides bad input and failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// An emitter's frame did not arrive whole within `--frame-timeout`.
    SlowFrame,
    /// An analyzer connection sent no HELLO within 10 s.
    NoHello,
    /// Partial frames over `--max-buffered-bytes`: the largest stalled ones are closed.
    BufferBudget,
    /// At `--max-connections`, the emitter connection idle longest makes room for a new one.
    MaxConnections,
}

impl CloseReason {
    /// Every reason, in the order of the counters.
    pub const ALL: [CloseReason; 4] = [
        CloseReason::SlowFrame,
        CloseReason::NoHello,
        CloseReason::BufferBudget,
        CloseReason::MaxConnections,
    ];

    /// The label in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::SlowFrame => "slow_frame",
            CloseReason::NoHello => "no_hello",
            CloseReason::BufferBudget => "buffer_budget",
            CloseReason::MaxConnections => "max_connections",
        }
    }
}

/// Why an analyzer session failed, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// The analyzer closed its side (or the connection closed under a write).
    Closed,
    /// A read or write failed.
    IoError,
    /// It broke the protocol (bytes that are no ACK, a bad ACK count).
    ProtocolError,
    /// No write or ACK progress for the hang timeout.
    Hung,
    /// A new session with the same id took over.
    Replaced,
    /// The reloaded access file no longer allows it.
    Revoked,
}

impl FailureReason {
    /// Every reason, in the order of the counters.
    pub const ALL: [FailureReason; 6] = [
        FailureReason::Closed,
        FailureReason::IoError,
        FailureReason::ProtocolError,
        FailureReason::Hung,
        FailureReason::Replaced,
        FailureReason::Revoked,
    ];

    /// The label in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Closed => "closed",
            FailureReason::IoError => "io_error",
            FailureReason::ProtocolError => "protocol_error",
            FailureReason::Hung => "hung",
            FailureReason::Replaced => "replaced",
            FailureReason::Revoked => "revoked",
        }
    }
}

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
    pub closed_connections: [u64; 4],
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
            closed_connections: [0; 4],
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
    /// [`crate::frame::Frame::cost`] of every frame queued, in flight or held.
    pub queued_bytes: u64,
    /// Bytes of partial frames buffered over every emitter connection.
    pub buffered_bytes: u64,
    /// The counters of analyzer ids forgotten after `--forget-after` without a session,
    /// folded together (they leave the per-analyzer series but not the totals).
    pub forgotten: AnalyzerStats,
    /// How many ids were forgotten.
    pub forgotten_ids: u64,
    /// Frames queued per priority class ([`crate::waits::CLASSES`]) over all analyzers.
    pub queued_by_class: [u64; 4],
    /// The configured limits, for alerts that compare usage with them.
    pub limits: Limits,
    /// How long frames waited in the queues, per priority class.
    pub waits: crate::waits::WaitCounts,
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

    /// The exposition of this instant in the OpenMetrics text format (which Prometheus
    /// scrapes), encoded by `prometheus-client` through a collector over this snapshot.
    pub fn prometheus(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector(self.clone())));
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// Content type of [`Snapshot::prometheus`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A [`Snapshot`] as a `prometheus-client` collector: the core's counters are plain
/// numbers behind the lock, so each scrape encodes one snapshot of them.
#[derive(Debug)]
struct SnapshotCollector(Snapshot);

/// A per-analyzer series: name (without `_total`), kind, help, value.
type PerAnalyzer = (
    &'static str,
    MetricType,
    &'static str,
    fn(&AnalyzerStats) -> f64,
);

const PER_ANALYZER: [PerAnalyzer; 11] = [
    (
        "distributor_analyzer_delivered_frames",
        MetricType::Counter,
        "Frames delivered to the analyzer (written, or acknowledged with ACKs).",
        |a| a.delivered as f64,
    ),
    (
        "distributor_routed_frames",
        MetricType::Counter,
        "Frames queued for the analyzer.",
        |a| a.routed as f64,
    ),
    (
        "distributor_spilled_out_frames",
        MetricType::Counter,
        "Frames chosen for the analyzer that went to another, its queue being full.",
        |a| a.spilled_out as f64,
    ),
    (
        "distributor_spilled_in_frames",
        MetricType::Counter,
        "Frames the analyzer took for another whose queue was full.",
        |a| a.spilled_in as f64,
    ),
    (
        "distributor_written_frames",
        MetricType::Counter,
        "DELIVER frames written to the analyzer.",
        |a| a.written as f64,
    ),
    (
        "distributor_acked_frames",
        MetricType::Counter,
        "Frames the analyzer acknowledged.",
        |a| a.acked as f64,
    ),
    (
        "distributor_rerouted_frames",
        MetricType::Counter,
        "Frames taken off the analyzer after it failed.",
        |a| a.rerouted as f64,
    ),
    (
        "distributor_analyzer_live",
        MetricType::Gauge,
        "1 while a session is live.",
        |a| f64::from(u8::from(a.live)),
    ),
    (
        "distributor_analyzer_weight",
        MetricType::Gauge,
        "The analyzer's weight.",
        |a| a.weight,
    ),
    (
        "distributor_queued_frames",
        MetricType::Gauge,
        "Frames in the analyzer's priority queues.",
        |a| a.queued as f64,
    ),
    (
        "distributor_inflight_frames",
        MetricType::Gauge,
        "Frames dispatched to the analyzer and not yet released.",
        |a| a.inflight as f64,
    ),
];

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(m)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(m)
}

/// The journal's series (with a data directory only).
fn encode_journal(
    enc: &mut DescriptorEncoder,
    j: &crate::journal::JournalStats,
) -> Result<(), std::fmt::Error> {
    gauge(
        enc,
        "distributor_journal_bytes",
        "Bytes of the journal's segment files, against --journal-max-bytes.",
        j.bytes,
    )?;
    gauge(
        enc,
        "distributor_journal_max_bytes",
        "--journal-max-bytes: distributor_journal_bytes at most.",
        j.max_bytes,
    )?;
    gauge(
        enc,
        "distributor_journal_segments",
        "Segment files in the data directory.",
        j.segments,
    )?;
    counter(
        enc,
        "distributor_journal_fsyncs",
        "fdatasync calls of the journal (each a group commit).",
        j.fsyncs,
    )?;
    let m = enc.encode_descriptor(
        "distributor_journal_fsync_seconds",
        "Time spent in the journal's fdatasync calls.",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(j.fsync_us as f64 / 1e6).encode(m)?;
    let m = enc.encode_descriptor(
        "distributor_journal_fsync_max_seconds",
        "The longest fdatasync in the last one to two seconds.",
        None,
        MetricType::Gauge,
    )?;
    ConstGauge::new(j.fsync_max_us as f64 / 1e6).encode(m)?;
    counter(
        enc,
        "distributor_journal_torn_tails",
        "Records cut by a crash, cut off at start.",
        j.torn,
    )?;
    counter(
        enc,
        "distributor_journal_corrupt_records",
        "Journal records whose bytes were wrong (CRC or length), at start or read back.",
        j.corrupt,
    )
}

/// A counter family with one `reason` label, a series per reason.
fn by_reason<const N: usize>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    counts: [(&str, u64); N],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (reason, n) in counts {
        ConstCounter::new(n).encode(m.encode_family(&[("reason", reason)])?)?;
    }
    Ok(())
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let t = &s.totals;
        let scalars: [(&str, &str, u64); 8] = [
            (
                "distributor_acked_emitter_connections",
                "Emitter connections that asked for ACKs in an EMITTER HELLO.",
                t.acked_emitter_connections,
            ),
            (
                "distributor_emitter_acks",
                "ACK frames sent to emitters.",
                t.emitter_acks,
            ),
            (
                "distributor_received_frames",
                "LOG frames accepted from emitters.",
                t.received,
            ),
            (
                "distributor_delivered_frames",
                "Frames written (best effort) or acknowledged (at least once).",
                t.delivered,
            ),
            (
                "distributor_protocol_errors",
                "Connections ended for bad input.",
                t.protocol_errors,
            ),
            (
                "distributor_truncated_frames",
                "Partial frames at the end of an emitter stream.",
                t.truncated,
            ),
            (
                "distributor_emitter_connections",
                "Emitter connections accepted.",
                t.emitter_connections,
            ),
            (
                "distributor_analyzer_sessions",
                "HELLOs accepted.",
                t.analyzer_sessions,
            ),
        ];
        for (name, help, value) in scalars {
            counter(&mut enc, name, help, value)?;
        }
        gauge(
            &mut enc,
            "distributor_holding_frames",
            "Frames waiting for any analyzer.",
            s.holding,
        )?;
        counter(
            &mut enc,
            "distributor_recovered_frames",
            "Frames the journal held at start, not done, delivered again.",
            t.recovered,
        )?;
        counter(
            &mut enc,
            "distributor_disk_spilled_frames",
            "Frames that found no room in memory and waited in the journal.",
            s.spilled_total,
        )?;
        gauge(
            &mut enc,
            "distributor_disk_waiting_frames",
            "Frames waiting in the journal for room (spilled or recovered).",
            s.spilled,
        )?;
        if let Some(j) = &s.journal {
            encode_journal(&mut enc, j)?;
        }
        gauge(
            &mut enc,
            "distributor_queued_bytes",
            "Bytes of frames queued, in flight or held (payload plus 64 per frame), against --max-queued-bytes.",
            s.queued_bytes,
        )?;
        gauge(
            &mut enc,
            "distributor_buffered_bytes",
            "Bytes of partial frames buffered over every emitter connection, against --max-buffered-bytes.",
            s.buffered_bytes,
        )?;
        let limits: [(&str, &str, u64); 4] = [
            (
                "distributor_max_queued_bytes",
                "--max-queued-bytes: distributor_queued_bytes at most.",
                s.limits.max_queued_bytes,
            ),
            (
                "distributor_max_buffered_bytes",
                "--max-buffered-bytes: distributor_buffered_bytes at most.",
                s.limits.max_buffered_bytes,
            ),
            (
                "distributor_holding_capacity_frames",
                "--holding-capacity: distributor_holding_frames at most.",
                s.limits.holding_capacity,
            ),
            (
                "distributor_queue_capacity_frames",
                "--queue-capacity: frames per priority level per analyzer at most.",
                s.limits.queue_capacity,
            ),
        ];
        for (name, help, value) in limits {
            gauge(&mut enc, name, help, value)?;
        }
        counter(
            &mut enc,
            "distributor_forgotten_analyzers",
            "Analyzer ids dropped from the per-analyzer series after --forget-after without a session.",
            s.forgotten_ids,
        )?;
        gauge(
            &mut enc,
            "distributor_emitter_connections_open",
            "Emitter connections now open.",
            t.emitter_connections_open,
        )?;
        // Every reason from the start, at 0 until its first event.
        by_reason(
            &mut enc,
            "distributor_closed_connections",
            "Connections the distributor closed on its own, by reason.",
            CloseReason::ALL.map(|r| (r.as_str(), t.closed_connections[r as usize])),
        )?;
        by_reason(
            &mut enc,
            "distributor_rejected_hellos",
            "HELLOs answered with REJECT, by reason.",
            RejectKind::ALL.map(|k| (k.as_str(), t.rejected_hellos[k as usize])),
        )?;
        by_reason(
            &mut enc,
            "distributor_rejected_emitter_hellos",
            "EMITTER HELLOs answered with REJECT, by reason.",
            EmitterReject::ALL.map(|k| (k.as_str(), t.rejected_emitter_hellos[k as usize])),
        )?;
        let mut m = enc.encode_descriptor(
            "distributor_tls_handshake_failures",
            "TLS handshakes that failed, by listener and reason.",
            None,
            MetricType::Counter,
        )?;
        for l in Listener::ALL {
            for r in HandshakeFailure::ALL {
                let labels = [("listener", l.as_str()), ("reason", r.label())];
                ConstCounter::new(t.tls_failures[l as usize][r as usize])
                    .encode(m.encode_family(&labels)?)?;
            }
        }
        by_reason(
            &mut enc,
            "distributor_dropped_frames",
            "Frames given up, by reason.",
            DropReason::ALL.map(|r| (r.as_str(), t.dropped_by(r))),
        )?;
        let mut m = enc.encode_descriptor(
            "distributor_dropped_frames_by_priority",
            "Frames given up, by reason and priority (only pairs with drops).",
            None,
            MetricType::Counter,
        )?;
        for reason in DropReason::ALL {
            for (p, n) in t.dropped[reason as usize].iter().enumerate() {
                if *n > 0 {
                    let labels = [
                        ("reason", reason.as_str().to_owned()),
                        ("priority", p.to_string()),
                    ];
                    ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        let mut m = enc.encode_descriptor(
            "distributor_analyzer_failures",
            "Analyzer sessions that ended by failure, by reason (closed, io_error, protocol_error, hung, replaced, revoked).",
            None,
            MetricType::Counter,
        )?;
        for (id, a) in &s.analyzers {
            for reason in FailureReason::ALL {
                let labels = [("analyzer", id.as_str()), ("reason", reason.as_str())];
                ConstCounter::new(a.failures_by[reason as usize])
                    .encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "distributor_queued_frames_by_priority",
            "Frames in the priority queues of every analyzer, by priority class.",
            None,
            MetricType::Gauge,
        )?;
        for (c, n) in s.queued_by_class.iter().enumerate() {
            let labels = [("priority_class", crate::waits::class_label(c))];
            ConstGauge::new(*n).encode(m.encode_family(&labels)?)?;
        }
        let mut m = enc.encode_descriptor(
            "distributor_queue_wait_seconds",
            "How long frames waited in an analyzer's queues (dispatch stamp less queue stamp), by priority class.",
            None,
            MetricType::Histogram,
        )?;
        for c in 0..crate::waits::CLASSES.len() {
            let labels = [("priority_class", crate::waits::class_label(c))];
            let buckets: Vec<(f64, u64)> = crate::waits::BOUNDS_S
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(s.waits.counts[c])
                .collect();
            m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                s.waits.sum_ns[c] as f64 / 1e9,
                s.waits.count(c),
                &buckets,
                None,
            )?;
        }
        for (name, kind, help, field) in PER_ANALYZER {
            let mut m = enc.encode_descriptor(name, help, None, kind)?;
            for (id, a) in &s.analyzers {
                let labels = [("analyzer", id.as_str())];
                let family = m.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => ConstCounter::new(field(a)).encode(family)?,
                    _ => ConstGauge::new(field(a)).encode(family)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
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
        let mut waits = crate::waits::WaitCounts::default();
        let frame = |priority, queued_ns| crate::frame::Frame {
            payload: bytes::Bytes::new(),
            priority,
            queued_ns,
            ticket: None,
            mark: None,
        };
        // 200 µs and 30 ms at priority 0, 2 s at priority 200.
        waits.add(
            &[
                frame(0, 1_999_800_000),
                frame(0, 1_970_000_000),
                frame(200, 0),
            ],
            2_000_000_000,
        );
        s.waits = waits;
        s
    }

    #[test]
    fn stats_rows_are_quoted_by_the_csv_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats-1.csv");
        let mut w = runfolder::TableWriter::<Stats>::create(&path).unwrap();
        for row in sample().stats_rows() {
            w.write(&row).unwrap();
        }
        w.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "5,*,1,2.5,10,7,8,3,0,7,0,0,2,1,0,0,0,0,0,0,0,1,0,2,1234,99,0,0,0,0,0,0,0,0,0,0,0,0"
        );
        assert_eq!(
            lines[2],
            "5,\"a,\"\"1\"\"\",1,2.5,0,7,8,3,0,7,0,0,2,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0"
        );
        let back = runfolder::table::read_all::<Stats>(&path).unwrap();
        assert_eq!(back, sample().stats_rows());
    }

    #[test]
    fn prometheus_text() {
        let text = sample().prometheus();
        assert!(
            text.contains("\ndistributor_received_frames_total 10\n"),
            "{text}"
        );
        assert!(text.contains("distributor_dropped_frames_total{reason=\"queue_full\"} 1\n"));
        // Known reasons are there from the start, at 0.
        assert!(text.contains("distributor_dropped_frames_total{reason=\"shutdown\"} 0\n"));
        assert!(text.contains("\ndistributor_queued_bytes 1234\n"));
        assert!(text.contains("\ndistributor_buffered_bytes 99\n"), "{text}");
        assert!(
            text.contains("distributor_spilled_out_frames_total{analyzer=\"a,\\\"1\\\"\"} 3.0\n"),
            "{text}"
        );
        assert!(text.contains(
            "distributor_dropped_frames_by_priority_total{reason=\"queue_full\",priority=\"3\"} 1\n"
        ));
        assert!(
            text.contains("distributor_analyzer_weight{analyzer=\"a,\\\"1\\\"\"} 2.5\n"),
            "{text}"
        );
        assert!(text.contains(
            "distributor_analyzer_failures_total{analyzer=\"a,\\\"1\\\"\",reason=\"hung\"} 1\n"
        ));
        assert!(text.contains(
            "distributor_analyzer_failures_total{analyzer=\"a,\\\"1\\\"\",reason=\"io_error\"} 0\n"
        ));
        assert!(
            text.contains("distributor_queued_frames_by_priority{priority_class=\"128-191\"} 4\n")
        );
        // Buckets are cumulative; the sum is in seconds.
        for (le, n) in [
            ("0.0001", 0),
            ("0.00025", 1),
            ("0.025", 1),
            ("0.05", 2),
            ("+Inf", 2),
        ] {
            let line = format!(
                "distributor_queue_wait_seconds_bucket{{le=\"{le}\",priority_class=\"0-63\"}} {n}\n"
            );
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(text.contains("distributor_queue_wait_seconds_count{priority_class=\"0-63\"} 2\n"));
        assert!(
            text.contains("distributor_queue_wait_seconds_sum{priority_class=\"0-63\"} 0.0302\n"),
            "{text}"
        );
        assert!(text.contains(
            "distributor_queue_wait_seconds_bucket{le=\"2.5\",priority_class=\"192-255\"} 1\n"
        ));
        assert!(text.ends_with("# EOF\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("distributor_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
