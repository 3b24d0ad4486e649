//! The OpenMetrics text of `/metrics` (what Prometheus scrapes), encoded by
//! `prometheus-client` from one [`Snapshot`], after the engine's lock is released, and the
//! standard `process_*` series ([`super::process`]). Names are
//! `distributor_<name>_<unit>[_total]`; labels come from a small fixed set (`analyzer`,
//! `reason`, `priority`, `priority_class`, `listener`). Every family, as the test
//! `the_table_lists_every_family` holds it:
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `distributor_received_frames_total` | counter | LOG frames accepted from emitters |
//! | `distributor_delivered_frames_total` | counter | written (best effort) or acknowledged (at least once) |
//! | `distributor_dropped_frames_total{reason}` | counter | given up, by reason (every reason from the start, at 0) |
//! | `distributor_dropped_frames_by_priority_total{reason,priority}` | counter | given up, by reason and priority (pairs with drops only) |
//! | `distributor_protocol_errors_total` | counter | connections ended for bad input |
//! | `distributor_truncated_frames_total` | counter | partial frames at the end of an emitter stream |
//! | `distributor_emitter_connections_total` | counter | emitter connections accepted |
//! | `distributor_emitter_connections_open` | gauge | emitter connections now open |
//! | `distributor_analyzer_sessions_total` | counter | HELLOs accepted |
//! | `distributor_rejected_hellos_total{reason}` | counter | HELLOs answered with REJECT, by reason |
//! | `distributor_rejected_emitter_hellos_total{reason}` | counter | EMITTER HELLOs answered with REJECT, by reason |
//! | `distributor_acked_emitter_connections_total` | counter | emitter connections that asked for ACKs |
//! | `distributor_emitter_acks_total` | counter | ACK frames sent to emitters |
//! | `distributor_tls_handshake_failures_total{listener,reason}` | counter | failed TLS handshakes |
//! | `distributor_closed_connections_total{reason}` | counter | connections the distributor closed on its own |
//! | `distributor_forgotten_analyzers_total` | counter | ids dropped from the per-analyzer series (their counts stay in the totals) |
//! | `distributor_holding_frames` | gauge | frames waiting for any analyzer |
//! | `distributor_queued_bytes` | gauge | bytes queued, in flight or held, against `--max-queued-bytes` |
//! | `distributor_buffered_bytes` | gauge | bytes of partial frames over every emitter connection |
//! | `distributor_max_queued_bytes` | gauge | `--max-queued-bytes` |
//! | `distributor_max_buffered_bytes` | gauge | `--max-buffered-bytes` |
//! | `distributor_holding_capacity_frames` | gauge | `--holding-capacity` |
//! | `distributor_queue_capacity_frames` | gauge | `--queue-capacity` |
//! | `distributor_queued_frames_by_priority{priority_class}` | gauge | frames in every analyzer's queues, by priority class |
//! | `distributor_queue_wait_seconds{priority_class}` | histogram | time from queue stamp to dispatch stamp |
//! | `distributor_recovered_frames_total` | counter | frames the journal held at start, not done |
//! | `distributor_disk_spilled_frames_total` | counter | frames that found no room in memory and waited on disk |
//! | `distributor_disk_waiting_frames` | gauge | frames waiting on disk now |
//! | `distributor_journal_bytes` | gauge | bytes of the journal (with `--data-dir`) |
//! | `distributor_journal_max_bytes` | gauge | `--journal-max-bytes` |
//! | `distributor_journal_segments` | gauge | segment files |
//! | `distributor_journal_fsyncs_total` | counter | group commits |
//! | `distributor_journal_fsync_seconds_total` | counter | time in fdatasync |
//! | `distributor_journal_fsync_max_seconds` | gauge | the longest fdatasync of the last one to two seconds |
//! | `distributor_journal_torn_tails_total` | counter | records cut by a crash, cut off at start |
//! | `distributor_journal_corrupt_records_total` | counter | records whose bytes were wrong |
//! | `distributor_journal_write_errors_total` | counter | writes to the journal that failed (tried again in place) |
//! | `distributor_journal_disk_full` | gauge | 1 while the journal's disk is full: nothing new is taken, what is inside is still delivered |
//! | `distributor_analyzer_delivered_frames_total{analyzer}` | counter | delivered to the analyzer |
//! | `distributor_routed_frames_total{analyzer}` | counter | queued for it (re-routes included) |
//! | `distributor_spilled_out_frames_total{analyzer}` | counter | chosen for it by weight, sent to another (its queue full) |
//! | `distributor_spilled_in_frames_total{analyzer}` | counter | taken for another whose queue was full |
//! | `distributor_written_frames_total{analyzer}` | counter | DELIVER frames written to it |
//! | `distributor_acked_frames_total{analyzer}` | counter | frames it acknowledged |
//! | `distributor_rerouted_frames_total{analyzer}` | counter | taken off it after it failed |
//! | `distributor_analyzer_failures_total{analyzer,reason}` | counter | its sessions that ended by failure, by reason |
//! | `distributor_analyzer_live{analyzer}` | gauge | 1 while a session is live |
//! | `distributor_analyzer_weight{analyzer}` | gauge | its weight |
//! | `distributor_queued_frames{analyzer}` | gauge | frames in its priority queues |
//! | `distributor_inflight_frames{analyzer}` | gauge | frames dispatched to it, not yet released |
//! | `distributor_build_info{version,commit}` | gauge | 1, labelled with the build's version and git commit |
//! | `process_cpu_seconds_total` | counter | user and system CPU time |
//! | `process_resident_memory_bytes` | gauge | resident memory |
//! | `process_open_fds` | gauge | open file descriptors |
//! | `process_max_fds` | gauge | the soft limit on file descriptors |
//! | `process_start_time_seconds` | gauge | when the process started, since the Unix epoch |

use super::process::{ProcessCollector, ProcessStats};
use crate::accounting::waits;
use crate::accounting::{
    AnalyzerStats, CloseReason, DropReason, EmitterReject, FailureReason, Listener, RejectKind,
    Snapshot,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use runner::tls::HandshakeFailure;

/// The exposition of `snapshot` and `process` in the OpenMetrics text format, encoded by
/// `prometheus-client` through a collector over each.
pub(crate) fn render(snapshot: Snapshot, process: ProcessStats) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot)));
    registry.register_collector(Box::new(ProcessCollector(process)));
    let mut out = String::with_capacity(8192);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Content type of [`render`].
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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
        "distributor_journal_write_errors",
        "Writes to the journal's files that failed (each tried again in place).",
        j.write_errors,
    )?;
    gauge(
        enc,
        "distributor_journal_disk_full",
        "1 while the journal's disk is full: no new frame is taken, the frames inside are still delivered.",
        u64::from(j.disk_full),
    )?;
    counter(
        enc,
        "distributor_journal_corrupt_records",
        "Journal records whose bytes were wrong (CRC or length), at start or read back.",
        j.corrupt,
    )
}

/// A counter family with one `reason` label, a series per reason.
fn by_reason<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    counts: impl Iterator<Item = (&'a str, u64)>,
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
            CloseReason::ALL
                .iter()
                .map(|&r| (r.as_str(), t.closed_connections[r as usize])),
        )?;
        by_reason(
            &mut enc,
            "distributor_rejected_hellos",
            "HELLOs answered with REJECT, by reason.",
            RejectKind::ALL
                .iter()
                .map(|&k| (k.as_str(), t.rejected_hellos[k as usize])),
        )?;
        by_reason(
            &mut enc,
            "distributor_rejected_emitter_hellos",
            "EMITTER HELLOs answered with REJECT, by reason.",
            EmitterReject::ALL
                .iter()
                .map(|&k| (k.as_str(), t.rejected_emitter_hellos[k as usize])),
        )?;
        let mut m = enc.encode_descriptor(
            "distributor_tls_handshake_failures",
            "TLS handshakes that failed, by listener and reason.",
            None,
            MetricType::Counter,
        )?;
        for &l in Listener::ALL {
            for &r in HandshakeFailure::ALL {
                let labels = [("listener", l.as_str()), ("reason", r.as_str())];
                ConstCounter::new(t.tls_failures[l as usize][r as usize])
                    .encode(m.encode_family(&labels)?)?;
            }
        }
        by_reason(
            &mut enc,
            "distributor_dropped_frames",
            "Frames given up, by reason.",
            DropReason::ALL
                .iter()
                .map(|&r| (r.as_str(), t.dropped_by(r))),
        )?;
        let mut m = enc.encode_descriptor(
            "distributor_dropped_frames_by_priority",
            "Frames given up, by reason and priority (only pairs with drops).",
            None,
            MetricType::Counter,
        )?;
        for &reason in DropReason::ALL {
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
            for &reason in FailureReason::ALL {
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
            let labels = [("priority_class", waits::class_label(c))];
            ConstGauge::new(*n).encode(m.encode_family(&labels)?)?;
        }
        let mut m = enc.encode_descriptor(
            "distributor_queue_wait_seconds",
            "How long frames waited in an analyzer's queues (dispatch stamp less queue stamp), by priority class.",
            None,
            MetricType::Histogram,
        )?;
        for c in 0..waits::CLASSES.len() {
            let labels = [("priority_class", waits::class_label(c))];
            let buckets: Vec<(f64, u64)> = waits::BOUNDS_S
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
    fn sample_process() -> ProcessStats {
        ProcessStats {
            cpu_seconds: Some(1.5),
            resident_bytes: Some(4096),
            open_fds: Some(7),
            max_fds: None,
            start_time: 1_700_000_000.25,
        }
    }

    #[test]
    fn prometheus_text() {
        let text = render(crate::accounting::sample_snapshot(), sample_process());
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
        assert!(text.contains("\nprocess_cpu_seconds_total 1.5\n"), "{text}");
        assert!(
            text.contains("\nprocess_resident_memory_bytes 4096.0\n"),
            "{text}"
        );
        assert!(
            text.contains("\nprocess_start_time_seconds 1700000000.25\n"),
            "{text}"
        );
        // A figure the kernel did not give is left out, not shown as 0.
        assert!(!text.contains("process_max_fds"), "{text}");
        let build = format!(
            "\ndistributor_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            runner::COMMIT
        );
        assert!(text.contains(&build), "{text}");
        assert!(text.ends_with("# EOF\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(
                name.starts_with("distributor_") || name.starts_with("process_"),
                "{line}"
            );
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn the_table_lists_every_family() {
        // A snapshot with a journal, so that every family is rendered.
        let mut s = crate::accounting::sample_snapshot();
        s.journal = Some(crate::journal::JournalStats::default());
        let all = ProcessStats {
            max_fds: Some(1024),
            ..sample_process()
        };
        let text = render(s, all);
        let rendered: std::collections::BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| {
                let (name, kind) = l.split_once(' ').unwrap();
                match kind {
                    "counter" => format!("{name}_total"),
                    _ => name.to_owned(),
                }
            })
            .collect();
        let doc = include_str!("metrics.rs");
        let listed: std::collections::BTreeSet<String> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .map(|l| l.split(['`', '{']).next().unwrap().to_owned())
            .collect();
        assert_eq!(rendered, listed, "the module's table and /metrics differ");
    }
}
