//! Priority order on every analyzer connection (PROTOCOL.md §3): no frame A delivered
//! before a more urgent frame B when `queued_ns(B) < dispatch_ns(A)`.
//!
//! Exercised only when priority actually reordered something: some frame was overtaken by
//! a more urgent one queued after it, which takes a backlog of mixed priorities. Without
//! that, a zero inversion count proves nothing and the check says NOT_EXERCISED.

use super::{Outcome, Row, Status, Unit};
use crate::model::Run;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// The priority check.
pub fn check(run: &Run) -> Outcome {
    let inversions: u64 = run.analyzers.iter().map(|a| a.inversions).sum();
    let overtaken: u64 = run.analyzers.iter().map(|a| a.overtaken).sum();
    let backlog_seconds: usize = run.analyzers.iter().map(|a| a.backlog_seconds.len()).sum();
    let max_wait = run
        .analyzers
        .iter()
        .map(|a| a.queue_wait_max_us)
        .max()
        .unwrap_or(0);
    let status = if inversions > 0 {
        Status::Fail
    } else if overtaken == 0 {
        Status::NotExercised
    } else {
        Status::Pass
    };
    let detail = match status {
        Status::NotExercised => format!(
            "no frame was overtaken by a more urgent one (largest queue wait {:.1} ms): no backlog of mixed priorities formed",
            max_wait as f64 / 1000.0
        ),
        _ => format!(
            "{overtaken} frames overtaken by more urgent ones; {backlog_seconds} analyzer-seconds with a backlog (queue wait >= {} ms); largest queue wait {:.1} ms",
            run.settings.backlog_ms,
            max_wait as f64 / 1000.0
        ),
    };
    let single_level = match run.sent_per_priority.keys().collect::<Vec<_>>()[..] {
        [p] => Some(*p),
        _ => None,
    };
    let headline = match (status, single_level) {
        (Status::NotExercised, Some(p)) => format!(
            "not exercised, by design: every message had priority {p}, so there is nothing to reorder"
        ),
        (Status::NotExercised, None) => format!(
            "not exercised: no backlog of mixed priorities formed (no frame was overtaken by a more urgent one; largest queue wait {:.1} ms)",
            max_wait as f64 / 1000.0
        ),
        (_, _) => format!(
            "{inversions} inversions {} 0; {overtaken} frames overtaken by more urgent ones, largest queue wait {:.1} ms",
            if inversions == 0 { "<=" } else { ">" },
            max_wait as f64 / 1000.0
        ),
    };
    let mut rows = vec![
        Row::new("priority", status, inversions, 0, detail).measured(
            inversions as f64,
            Some(0.0),
            Unit::Messages,
        ),
    ];
    for a in &run.analyzers {
        let s = if a.inversions > 0 {
            Status::Fail
        } else if a.overtaken == 0 {
            Status::NotExercised
        } else {
            Status::Pass
        };
        let examples = if a.inversion_examples.is_empty() {
            String::new()
        } else {
            format!("; first: {}", a.inversion_examples.join(" | "))
        };
        rows.push(Row::new(
            format!("priority:{}", a.id),
            s,
            a.inversions,
            0,
            format!(
                "inversions {}, overtaken {}, backlog seconds {}, max queue wait {:.1} ms{examples}",
                a.inversions,
                a.overtaken,
                a.backlog_seconds.len(),
                a.queue_wait_max_us as f64 / 1000.0
            ),
        )
        .measured(a.inversions as f64, Some(0.0), Unit::Messages));
    }
    for (p, h) in backlog_latency(run) {
        rows.push(
            Row::new(
                format!("priority:backlog_latency_p99_ms:{p}"),
                status,
                format!("{:.3}", h.value_at_quantile(0.99) as f64 / 1000.0),
                "",
                format!(
                    "{} arrivals of priority {p} during backlogs; p50 {:.3} ms",
                    h.len(),
                    h.value_at_quantile(0.5) as f64 / 1000.0
                ),
            )
            .measured(h.value_at_quantile(0.99) as f64 / 1000.0, None, Unit::Ms),
        );
    }
    Outcome {
        status,
        headline,
        rows,
    }
}

/// Latency per priority over all analyzers, only while a backlog existed.
pub fn backlog_latency(run: &Run) -> BTreeMap<u8, Histogram<u64>> {
    crate::checks::latency::merge(run.analyzers.iter().map(|a| &a.latency_backlog))
}
