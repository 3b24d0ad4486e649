//! Accounting: every frame received is, at any moment, delivered, dropped (counted by
//! reason and priority) or still inside the distributor (queued, in flight or held):
//! `received = delivered + dropped + queued + inflight + holding`.
//!
//! Rendered two ways from one [`Snapshot`]: Prometheus text ([`Snapshot::prometheus`]) and
//! the per-second stats CSV ([`Snapshot::stats_rows`], `runfolder::rows::Stats`). Metric names (namespace
//! `distributor`, labels `analyzer`, `reason`, `priority` only):
//!
//! | metric | meaning |
//! |---|---|
//! | `distributor_received_frames_total` | LOG frames accepted from emitters |
//! | `distributor_delivered_frames_total` | written (best effort) or acknowledged (at least once) |
//! | `distributor_dropped_frames_total{reason,priority}` | given up, by reason and priority |
//! | `distributor_protocol_errors_total` | connections ended for bad input |
//! | `distributor_truncated_frames_total` | partial frames at the end of an emitter stream |
//! | `distributor_emitter_connections_total` | emitter connections accepted |
//! | `distributor_analyzer_sessions_total` | HELLOs accepted |
//! | `distributor_rejected_hellos_total` | HELLOs answered with REJECT |
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
//! | `distributor_emitter_connections_open` (gauge) | emitter connections now open |

use runfolder::rows::{Scope, Stats};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Why a frame was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// `--overflow drop` and every live analyzer's queue for its priority was full.
    QueueFull,
    /// `--overflow drop`, no analyzer live and the holding queue full.
    HoldingFull,
    /// It waited in the holding queue through `--max-attempts` retries.
    RetriesExhausted,
    /// Still inside the distributor when the drain deadline passed at shutdown.
    Shutdown,
}

impl DropReason {
    /// Every reason, in the order of the counters.
    pub const ALL: [DropReason; 4] = [
        DropReason::QueueFull,
        DropReason::HoldingFull,
        DropReason::RetriesExhausted,
        DropReason::Shutdown,
    ];

    /// The label used in metrics, CSV and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::HoldingFull => "holding_full",
            DropReason::RetriesExhausted => "retries_exhausted",
            DropReason::Shutdown => "shutdown",
        }
    }
}

/// Distributor-wide counters.
#[derive(Debug, Clone)]
pub struct Totals {
    /// LOG frames accepted.
    pub received: u64,
    /// Frames written (best effort) or acknowledged (at least once).
    pub delivered: u64,
    /// Dropped frames by reason (index of [`DropReason::ALL`]) and priority.
    pub dropped: [[u64; 256]; 4],
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
    /// HELLOs refused.
    pub rejected_hellos: u64,
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            received: 0,
            delivered: 0,
            dropped: [[0; 256]; 4],
            protocol_errors: 0,
            truncated: 0,
            emitter_connections: 0,
            emitter_connections_open: 0,
            analyzer_sessions: 0,
            rejected_hellos: 0,
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
    /// Whether a session is live now.
    pub live: bool,
    /// Its weight (the last one seen).
    pub weight: f64,
    /// Frames in its queues now.
    pub queued: u64,
    /// Frames dispatched and not yet released (being written, or awaiting ACK).
    pub inflight: u64,
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
        self.queued() + self.inflight() + self.holding
    }

    /// The stats CSV rows of this instant: one `*` row of totals, then one per analyzer.
    pub fn stats_rows(&self) -> Vec<Stats> {
        let t = &self.totals;
        let live = || self.analyzers.values().filter(|a| a.live);
        let sum = |f: fn(&AnalyzerStats) -> u64| self.analyzers.values().map(f).sum::<u64>();
        let total = Stats {
            ts_ns: self.ts_ns,
            analyzer: Scope::Total,
            live: live().count() as u64,
            weight: live().map(|a| a.weight).sum(),
            received: t.received,
            delivered: t.delivered,
            routed: sum(|a| a.routed),
            written: sum(|a| a.written),
            acked: sum(|a| a.acked),
            rerouted: sum(|a| a.rerouted),
            failures: sum(|a| a.failures),
            dropped_queue_full: t.dropped_by(DropReason::QueueFull),
            dropped_holding_full: t.dropped_by(DropReason::HoldingFull),
            dropped_retries_exhausted: t.dropped_by(DropReason::RetriesExhausted),
            dropped_shutdown: t.dropped_by(DropReason::Shutdown),
            protocol_errors: t.protocol_errors,
            truncated: t.truncated,
            emitter_connections_open: t.emitter_connections_open,
            queued: self.queued(),
            inflight: self.inflight(),
            holding: self.holding,
        };
        let per_analyzer = self.analyzers.iter().map(|(id, a)| Stats {
            ts_ns: self.ts_ns,
            analyzer: Scope::Analyzer(id.clone()),
            live: u64::from(a.live),
            weight: a.weight,
            received: 0,
            delivered: a.delivered,
            routed: a.routed,
            written: a.written,
            acked: a.acked,
            rerouted: a.rerouted,
            failures: a.failures,
            dropped_queue_full: 0,
            dropped_holding_full: 0,
            dropped_retries_exhausted: 0,
            dropped_shutdown: 0,
            protocol_errors: 0,
            truncated: 0,
            emitter_connections_open: 0,
            queued: a.queued,
            inflight: a.inflight,
            holding: 0,
        });
        std::iter::once(total).chain(per_analyzer).collect()
    }

    /// The Prometheus text exposition (format 0.0.4) of this instant.
    pub fn prometheus(&self) -> String {
        let t = &self.totals;
        let mut out = String::with_capacity(4096);
        let mut scalar = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        scalar(
            "distributor_received_frames_total",
            "counter",
            "LOG frames accepted from emitters.",
            t.received,
        );
        scalar(
            "distributor_delivered_frames_total",
            "counter",
            "Frames written (best effort) or acknowledged (at least once).",
            t.delivered,
        );
        scalar(
            "distributor_protocol_errors_total",
            "counter",
            "Connections ended for bad input.",
            t.protocol_errors,
        );
        scalar(
            "distributor_truncated_frames_total",
            "counter",
            "Partial frames at the end of an emitter stream.",
            t.truncated,
        );
        scalar(
            "distributor_emitter_connections_total",
            "counter",
            "Emitter connections accepted.",
            t.emitter_connections,
        );
        scalar(
            "distributor_analyzer_sessions_total",
            "counter",
            "HELLOs accepted.",
            t.analyzer_sessions,
        );
        scalar(
            "distributor_rejected_hellos_total",
            "counter",
            "HELLOs answered with REJECT.",
            t.rejected_hellos,
        );
        scalar(
            "distributor_holding_frames",
            "gauge",
            "Frames waiting for any analyzer.",
            self.holding,
        );
        scalar(
            "distributor_emitter_connections_open",
            "gauge",
            "Emitter connections now open.",
            t.emitter_connections_open,
        );
        let _ = writeln!(
            out,
            "# HELP distributor_dropped_frames_total Frames given up, by reason and priority.\n# TYPE distributor_dropped_frames_total counter"
        );
        for reason in DropReason::ALL {
            for (p, n) in t.dropped[reason as usize].iter().enumerate() {
                if *n > 0 {
                    let _ = writeln!(
                        out,
                        "distributor_dropped_frames_total{{reason=\"{}\",priority=\"{p}\"}} {n}",
                        reason.as_str()
                    );
                }
            }
        }
        type Field = fn(&AnalyzerStats) -> String;
        let per: [(&str, &str, &str, Field); 10] = [
            (
                "distributor_analyzer_delivered_frames_total",
                "counter",
                "Frames delivered to the analyzer (written, or acknowledged with ACKs).",
                |a| a.delivered.to_string(),
            ),
            (
                "distributor_routed_frames_total",
                "counter",
                "Frames queued for the analyzer.",
                |a| a.routed.to_string(),
            ),
            (
                "distributor_written_frames_total",
                "counter",
                "DELIVER frames written to the analyzer.",
                |a| a.written.to_string(),
            ),
            (
                "distributor_acked_frames_total",
                "counter",
                "Frames the analyzer acknowledged.",
                |a| a.acked.to_string(),
            ),
            (
                "distributor_rerouted_frames_total",
                "counter",
                "Frames taken off the analyzer after it failed.",
                |a| a.rerouted.to_string(),
            ),
            (
                "distributor_analyzer_failures_total",
                "counter",
                "Sessions that ended by failure.",
                |a| a.failures.to_string(),
            ),
            (
                "distributor_analyzer_live",
                "gauge",
                "1 while a session is live.",
                |a| u8::from(a.live).to_string(),
            ),
            (
                "distributor_analyzer_weight",
                "gauge",
                "The analyzer's weight.",
                |a| a.weight.to_string(),
            ),
            (
                "distributor_queued_frames",
                "gauge",
                "Frames in the analyzer's priority queues.",
                |a| a.queued.to_string(),
            ),
            (
                "distributor_inflight_frames",
                "gauge",
                "Frames dispatched to the analyzer and not yet released.",
                |a| a.inflight.to_string(),
            ),
        ];
        for (name, kind, help, field) in per {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (id, a) in &self.analyzers {
                let _ = writeln!(
                    out,
                    "{name}{{analyzer=\"{}\"}} {}",
                    label_value(id),
                    field(a)
                );
            }
        }
        out
    }
}

/// Escapes a Prometheus label value.
fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let mut s = Snapshot {
            ts_ns: 5,
            holding: 2,
            ..Snapshot::default()
        };
        s.totals.received = 10;
        s.totals.delivered = 7;
        s.totals.drop_frame(DropReason::QueueFull, 3);
        s.analyzers.insert(
            "a,\"1\"".into(),
            AnalyzerStats {
                routed: 8,
                delivered: 7,
                written: 7,
                live: true,
                weight: 2.5,
                queued: 1,
                ..AnalyzerStats::default()
            },
        );
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
        assert_eq!(lines[1], "5,*,1,2.5,10,7,8,7,0,0,0,1,0,0,0,0,0,0,1,0,2");
        assert_eq!(
            lines[2],
            "5,\"a,\"\"1\"\"\",1,2.5,0,7,8,7,0,0,0,0,0,0,0,0,0,0,1,0,0"
        );
        let back = runfolder::table::read_all::<Stats>(&path).unwrap();
        assert_eq!(back, sample().stats_rows());
    }

    #[test]
    fn prometheus_text() {
        let text = sample().prometheus();
        assert!(text.contains("\ndistributor_received_frames_total 10\n"));
        assert!(text.contains(
            "distributor_dropped_frames_total{reason=\"queue_full\",priority=\"3\"} 1\n"
        ));
        assert!(text.contains("distributor_analyzer_weight{analyzer=\"a,\\\"1\\\"\"} 2.5\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("distributor_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
