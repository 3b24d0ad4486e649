//! End-to-end latency (`arrival_ns - sent_ns`, both CLOCK_REALTIME on one host):
//! p50/p90/p99/p999/max overall and per priority, judged against the profile's limits
//! (`[checks] latency_p99_ms` over every priority, `[[checks.latency_class]]` per class of
//! priorities). With no limit the check is INFO: the figures, never a pass.

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

/// One limit and what the run gave against it.
struct Judged {
    /// `all` or `priorities A-B`.
    what: String,
    /// The row's key suffix: `all` or `class_A-B`.
    key: String,
    limit: f64,
    /// p99 in ms and the sample count; `None` when the class carried nothing.
    p99: Option<(f64, u64)>,
}

impl Judged {
    fn status(&self) -> Status {
        match self.p99 {
            None => Status::NotExercised,
            Some((p99, _)) if p99 > self.limit => Status::Fail,
            Some(_) => Status::Pass,
        }
    }

    fn describe(&self) -> String {
        match self.p99 {
            None => format!("{} carried no sample (limit {} ms)", self.what, self.limit),
            Some((p99, n)) => format!(
                "{} p99 {p99:.3} ms {} {} ms ({n} samples)",
                self.what,
                if p99 > self.limit { ">" } else { "<=" },
                self.limit
            ),
        }
    }

    fn row(&self) -> Row {
        let value = self.p99.map_or(String::new(), |(p, _)| format!("{p:.3}"));
        let row = Row::new(
            format!("latency:p99_ms:{}", self.key),
            self.status(),
            value,
            format!("p99 <= {} ms", self.limit),
            self.describe(),
        );
        match self.p99 {
            Some((p99, _)) => row.measured(p99, Some(self.limit), Unit::Ms),
            None => row,
        }
    }
}

/// The limits of the profile (overall and per class), each against the run's figures.
fn judge(
    run: &Run,
    all: &Histogram<u64>,
    by_priority: &BTreeMap<u8, Histogram<u64>>,
) -> Vec<Judged> {
    let p99_of = |h: &Histogram<u64>| {
        (!h.is_empty()).then(|| (h.value_at_quantile(0.99) as f64 / 1000.0, h.len()))
    };
    let mut out = Vec::new();
    if let Some(limit) = run.settings.latency_p99_ms {
        out.push(Judged {
            what: "all priorities".into(),
            key: "all_limit".into(),
            limit,
            p99: p99_of(all),
        });
    }
    for class in &run.settings.latency_class {
        // Validated when the profile was loaded; an unparsable class judges nothing.
        let Ok(range) = class.range() else { continue };
        let merged = overall(
            &by_priority
                .range(range)
                .map(|(p, h)| (*p, h.clone()))
                .collect(),
        );
        out.push(Judged {
            what: format!("priorities {}", class.priorities),
            key: format!("class_{}", class.priorities),
            limit: class.p99_ms,
            p99: merged.as_ref().and_then(p99_of),
        });
    }
    out
}

/// The latency check: FAIL when a limit of the profile is exceeded, PASS when every limit
/// that had samples held, INFO (figures only) when the profile sets no limit.
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
    let judged = judge(run, &all, &by_priority);
    let status = if judged.is_empty() {
        Status::Info
    } else {
        judged
            .iter()
            .fold(Status::NotExercised, |s, j| s.worst(j.status()))
    };
    let q = |h: &Histogram<u64>, q: f64| ms(h.value_at_quantile(q));
    let figures = format!(
        "p50 {} ms, p99 {p99:.3} ms, max {} ms over {} samples",
        q(&all, 0.5),
        ms(all.max()),
        all.len()
    );
    let headline = if judged.is_empty() {
        format!("no limit set ([checks] latency_p99_ms or latency_class): {figures}")
    } else {
        let limits: Vec<String> = judged.iter().map(Judged::describe).collect();
        format!("{}; {figures}", limits.join("; "))
    };
    let expected = if judged.is_empty() {
        "no limit set".to_owned()
    } else {
        judged
            .iter()
            .map(|j| format!("{}: p99 <= {} ms", j.what, j.limit))
            .collect::<Vec<_>>()
            .join("; ")
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
    rows.extend(judged.iter().map(Judged::row));
    let in_ms = |us: u64| us as f64 / 1000.0;
    for (name, quantile) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
        rows.push(
            Row::new(
                format!("latency:{name}_ms:all"),
                Status::Info,
                q(&all, quantile),
                "",
                format!("{} samples", all.len()),
            )
            .measured(in_ms(all.value_at_quantile(quantile)), None, Unit::Ms),
        );
    }
    rows.push(
        Row::new("latency:max_ms:all", Status::Info, ms(all.max()), "", "").measured(
            in_ms(all.max()),
            None,
            Unit::Ms,
        ),
    );
    for (p, h) in &by_priority {
        rows.push(
            Row::new(
                format!("latency:p99_ms:priority_{p}"),
                Status::Info,
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
