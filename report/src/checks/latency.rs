//! End-to-end latency (`arrival_ns - sent_ns`, both CLOCK_REALTIME on one host):
//! p50/p90/p99/p999/max overall and per priority. FAILs only against a limit set in the
//! profile (`[checks] latency_p99_ms`).

use super::{Outcome, Row, Status, Unit};
use crate::model::Run;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// Merges per-priority histograms.
pub fn merge<'a>(
    sources: impl Iterator<Item = &'a BTreeMap<u8, Histogram<u64>>>,
) -> BTreeMap<u8, Histogram<u64>> {
    let mut out: BTreeMap<u8, Histogram<u64>> = BTreeMap::new();
    for m in sources {
        for (p, h) in m {
            match out.get_mut(p) {
                Some(acc) => {
                    let _ = acc.add(h);
                }
                None => {
                    out.insert(*p, h.clone());
                }
            }
        }
    }
    out
}

/// All priorities in one histogram.
pub fn overall(by_priority: &BTreeMap<u8, Histogram<u64>>) -> Option<Histogram<u64>> {
    let mut it = by_priority.values();
    let mut acc = it.next()?.clone();
    for h in it {
        let _ = acc.add(h);
    }
    Some(acc)
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// The latency check.
pub fn check(run: &Run) -> Outcome {
    if run.settings.traffic == runfolder::Traffic::Foreign {
        return Outcome::not_exercised(
            "latency",
            "not exercised: foreign traffic carries no send stamp, so end-to-end latency is unknown",
        );
    }
    let by_priority = merge(run.analyzers.iter().map(|a| &a.latency));
    let Some(all) = overall(&by_priority).filter(|h| !h.is_empty()) else {
        return Outcome::not_exercised("latency", "no latency samples (no intact probe arrived)");
    };
    let p99 = all.value_at_quantile(0.99) as f64 / 1000.0;
    let (status, expected) = match run.settings.latency_p99_ms {
        Some(limit) if p99 > limit => (Status::Fail, format!("p99 <= {limit} ms")),
        Some(limit) => (Status::Pass, format!("p99 <= {limit} ms")),
        None => (Status::Pass, "no limit set".to_owned()),
    };
    let q = |h: &Histogram<u64>, q: f64| ms(h.value_at_quantile(q));
    let headline = match run.settings.latency_p99_ms {
        Some(limit) => format!(
            "p99 {p99:.3} ms {} {limit} ms; p50 {} ms, max {} ms over {} samples",
            if p99 > limit { ">" } else { "<=" },
            q(&all, 0.5),
            ms(all.max()),
            all.len()
        ),
        None => format!(
            "p99 {p99:.3} ms (no limit set); p50 {} ms, max {} ms over {} samples",
            q(&all, 0.5),
            ms(all.max()),
            all.len()
        ),
    };
    let mut rows = vec![
        Row::new(
            "latency",
            status,
            format!("{p99:.3}"),
            expected,
            format!(
                "{} samples, ms: p50 {} p90 {} p99 {} p999 {} max {}",
                all.len(),
                q(&all, 0.5),
                q(&all, 0.9),
                q(&all, 0.99),
                q(&all, 0.999),
                ms(all.max())
            ),
        )
        .measured(p99, run.settings.latency_p99_ms, Unit::Ms),
    ];
    let in_ms = |us: u64| us as f64 / 1000.0;
    for (name, quantile) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
        rows.push(
            Row::new(
                format!("latency:{name}_ms:all"),
                status,
                q(&all, quantile),
                "",
                format!("{} samples", all.len()),
            )
            .measured(in_ms(all.value_at_quantile(quantile)), None, Unit::Ms),
        );
    }
    rows.push(
        Row::new("latency:max_ms:all", status, ms(all.max()), "", "").measured(
            in_ms(all.max()),
            None,
            Unit::Ms,
        ),
    );
    for (p, h) in &by_priority {
        rows.push(
            Row::new(
                format!("latency:p99_ms:priority_{p}"),
                status,
                q(h, 0.99),
                "",
                format!(
                    "{} samples; p50 {} ms, max {} ms",
                    h.len(),
                    q(h, 0.5),
                    ms(h.max())
                ),
            )
            .measured(in_ms(h.value_at_quantile(0.99)), None, Unit::Ms),
        );
    }
    Outcome {
        status,
        headline,
        rows,
    }
}
