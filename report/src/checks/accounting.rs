//! Every message is accounted for (Jepsen total-queue style): per emitter, the seqs sent
//! (the loadgen manifest) against the seqs delivered over all analyzers. A missing seq is
//! explained when its write failed (in doubt: the distributor died under it) or by the
//! distributor's count of dropped frames; anything else is an unexplained loss and FAILs.
//! With acknowledged emitters (`loadgen --acks`) the seqs the distributor secured are never
//! in doubt: a secured seq that never arrived is lost unless the distributor counted it
//! dropped (secured means delivered or counted, without a data directory).
//! Duplicates are reported; they are expected only after a failure in at-least-once runs.

use super::{Outcome, Row, Status, Unit};
use crate::model::{Emitter, Run};

/// How many lost ranges the report lists.
const LIST: usize = 10;

/// Missing seqs of one emitter.
struct Missing {
    total: u64,
    /// Of which in doubt (their write failed, and they were not secured).
    doubt: u64,
    /// Of which secured.
    secured: u64,
    /// The first ranges not in doubt.
    ranges: Vec<(u64, u64)>,
}

fn missing(run: &Run, e: &Emitter) -> Missing {
    let (mut total, mut doubt, mut secured) = (0, 0, 0);
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let secured_below = e.secured.unwrap_or(0);
    for seq in 0..e.sent {
        if run.seen.has(e.id, seq) {
            continue;
        }
        total += 1;
        if seq < secured_below {
            secured += 1;
        } else if e.in_doubt.iter().any(|(a, b)| (*a..*b).contains(&seq)) {
            doubt += 1;
            continue;
        }
        match ranges.last_mut() {
            Some((_, last)) if *last + 1 == seq => *last = seq,
            _ => {
                if ranges.len() < LIST {
                    ranges.push((seq, seq));
                }
            }
        }
    }
    Missing {
        total,
        doubt,
        secured,
        ranges,
    }
}

/// Accounting of foreign traffic, which names no emitter or seq: by the distributor's
/// counters. Everything it received was delivered or dropped (and counted), and the sinks
/// received at least what it delivered (more after re-deliveries).
fn by_counters(run: &Run) -> Outcome {
    let d = &run.distributor;
    let dropped = d.dropped_total();
    let arrived: u64 = run.analyzers.iter().map(|a| a.received).sum();
    let unexplained =
        d.received.saturating_sub(d.delivered + dropped) + d.delivered.saturating_sub(arrived);
    let status = if unexplained == 0 {
        Status::Pass
    } else {
        Status::Fail
    };
    let op = if unexplained == 0 { "<=" } else { ">" };
    let detail = format!(
        "foreign traffic, by the distributor's counters: received {}, delivered {}, dropped {dropped}; the sinks received {arrived}",
        d.received, d.delivered
    );
    let headline = format!("{unexplained} unexplained losses {op} 0: {detail}");
    Outcome {
        status,
        headline,
        rows: vec![
            Row::new("accounting", status, unexplained, 0, detail).measured(
                unexplained as f64,
                Some(0.0),
                Unit::Messages,
            ),
            Row::new(
                "accounting:received",
                status,
                d.received,
                "",
                "frames the distributor received",
            )
            .measured(d.received as f64, None, Unit::Messages),
            Row::new(
                "accounting:delivered",
                status,
                d.delivered,
                d.received - dropped.min(d.received),
                "frames the distributor delivered",
            )
            .measured(
                d.delivered as f64,
                Some((d.received - dropped.min(d.received)) as f64),
                Unit::Messages,
            ),
            Row::new(
                "accounting:arrived",
                status,
                arrived,
                d.delivered,
                "frames the sinks received",
            )
            .measured(arrived as f64, Some(d.delivered as f64), Unit::Messages),
        ],
    }
}

/// The accounting check.
pub fn check(run: &Run) -> Outcome {
    if run.settings.traffic == runfolder::Traffic::Foreign {
        return by_counters(run);
    }
    if run.emitters.is_empty() {
        return Outcome::not_exercised(
            "accounting",
            "no loadgen manifest (emitters-*.csv) in the run folder",
        );
    }
    let sent: u64 = run.emitters.iter().map(|e| e.sent).sum();
    let unique: u64 = run.emitters.iter().map(|e| run.seen.unique(e.id)).sum();
    let dropped = run.distributor.dropped_total();
    let mut rows = Vec::new();
    let (mut lost, mut in_doubt, mut secured_missing) = (0, 0, 0);
    for e in &run.emitters {
        let Missing {
            total: m,
            doubt: d,
            secured: s,
            ranges,
        } = missing(run, e);
        lost += m;
        in_doubt += d;
        secured_missing += s;
        if m > d {
            let list: Vec<String> = ranges
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            rows.push(Row::new(
                format!("accounting:emitter:{}", e.id),
                Status::Fail,
                m - d,
                0,
                format!(
                    "{} of {} seqs missing ({d} in doubt); first missing: {}",
                    m,
                    e.sent,
                    list.join(", ")
                ),
            ));
        }
    }
    let explained_by_drops = dropped.min(lost - in_doubt);
    let unexplained = lost - in_doubt - explained_by_drops;
    let failures = run.distributor.failures > 0 || !run.events.is_empty();
    let dup = run.seen.duplicates;
    let status = if unexplained > 0 || (dup > 0 && !failures) {
        Status::Fail
    } else if sent == 0 {
        Status::NotExercised
    } else {
        Status::Pass
    };
    if unexplained == 0 {
        // Emitter rows above were losses before the drop count was applied.
        for r in &mut rows {
            r.status = Status::Pass;
        }
    }
    let mut detail = format!(
        "sent {sent}, delivered unique {unique}, duplicates {dup}, dropped by the distributor {dropped}, missing {lost} ({in_doubt} in doubt, {explained_by_drops} explained by drops), unexplained {unexplained}"
    );
    if dup > 0 && !failures {
        detail.push_str("; duplicates without any failure are a bug");
    }
    if run.emitters.iter().any(|e| e.secured.is_some()) {
        let secured: u64 = run.emitters.iter().filter_map(|e| e.secured).sum();
        detail.push_str(&format!(
            "; secured by the distributor (acknowledged emitters) {secured}, of which missing {secured_missing}"
        ));
    }
    if dropped > lost {
        detail.push_str(&format!(
            "; the distributor counted {} more drops than messages are missing",
            dropped - lost
        ));
    }
    let op = if unexplained == 0 { "<=" } else { ">" };
    let headline = format!(
        "{unexplained} unexplained losses {op} 0: sent {sent}, delivered unique {unique}, dropped {dropped}, in doubt {in_doubt}, duplicates {dup}{}",
        if dup > 0 && !failures {
            " (duplicates without any failure)"
        } else {
            ""
        }
    );
    let mut head = vec![
        Row::new("accounting", status, unexplained, 0, detail).measured(
            unexplained as f64,
            Some(0.0),
            Unit::Messages,
        ),
        Row::new(
            "accounting:sent",
            status,
            sent,
            "",
            "messages written by the loadgen (next seq)",
        )
        .measured(sent as f64, None, Unit::Messages),
        Row::new(
            "accounting:delivered_unique",
            status,
            unique,
            sent - dropped.min(sent),
            "distinct (emitter, seq) over all analyzers",
        )
        .measured(
            unique as f64,
            Some((sent - dropped.min(sent)) as f64),
            Unit::Messages,
        ),
        Row::new(
            "accounting:duplicates",
            status,
            dup,
            if failures { "after failures" } else { "0" },
            "arrivals of an (emitter, seq) already delivered",
        )
        .measured(dup as f64, (!failures).then_some(0.0), Unit::Messages),
        Row::new(
            "accounting:dropped",
            status,
            dropped,
            "",
            format!("counted by the distributor: {:?}", run.distributor.dropped),
        )
        .measured(dropped as f64, None, Unit::Messages),
        Row::new(
            "accounting:in_doubt",
            status,
            in_doubt,
            "",
            "missing seqs whose write failed at the emitter",
        )
        .measured(in_doubt as f64, None, Unit::Messages),
        Row::new(
            "accounting:secured_missing",
            status,
            secured_missing,
            "",
            "seqs the distributor secured (acknowledged emitters) that never arrived: never in doubt, lost unless counted dropped",
        )
        .measured(secured_missing as f64, None, Unit::Messages),
        Row::new(
            "accounting:recovered",
            status,
            run.distributor.recovered,
            "",
            "frames the distributor took back from its journal after a restart or crash (not lost: delivered again)",
        )
        .measured(run.distributor.recovered as f64, None, Unit::Messages),
        Row::new(
            "accounting:unsent",
            status,
            run.emitters.iter().map(|e| e.unsent).sum::<u64>(),
            "",
            "due while disconnected, never sent (no seq)",
        )
        .measured(
            run.emitters.iter().map(|e| e.unsent).sum::<u64>() as f64,
            None,
            Unit::Messages,
        ),
    ];
    head.extend(rows);
    Outcome {
        status,
        headline,
        rows: head,
    }
}
