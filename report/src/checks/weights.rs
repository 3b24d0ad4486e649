//! Each analyzer's share of the deliveries against its expected share.
//!
//! The expected share follows the live set over time: for every second, the arrivals of
//! that second are expected to split over the analyzers the distributor had live then, in
//! proportion to their weights (an analyzer that is down expects nothing). Summed over the
//! run this gives each analyzer's expected count `E_i` out of `N`.
//!
//! - `smooth` routing is deterministic: PASS when `|O_i - E_i| / E_i <= tolerance`.
//! - `random` routing: the observed share has a 95% confidence interval
//!   `p̂ ± 1.96 sqrt(p (1 - p) / N)` (p = E_i / N). PASS when the interval lies inside the
//!   band `p (1 ± tolerance)`, FAIL when it lies outside, INCONCLUSIVE otherwise, with the
//!   N that would decide.
//! - A chi-square goodness-of-fit statistic and p-value over all analyzers are reported.
//!
//! Under `--when-full spill` (the distributor's default) a frame whose weighted choice has
//! a full queue goes to another analyzer, counted per analyzer in the stats. When a run
//! spilled, the shares are judged on the router's choices (each analyzer's arrivals plus
//! what spilled away from it less what it took for others, per second) and the delivered
//! shares are shown beside them with the number spilled. A `--when-full strict` run never
//! spills: its delivered shares are judged as they are.

use super::{Outcome, Row, Status, Unit, chi_square_p};
use crate::model::Run;
use std::collections::{BTreeMap, BTreeSet};

/// 95% two-sided normal quantile.
const Z: f64 = 1.96;

/// The live analyzers and weights at second `s`: the distributor's latest sample, or the
/// profile's weights when there are no stats at all.
fn live_set(run: &Run, s: u64) -> Option<Vec<(String, f64)>> {
    let mut live: Vec<(String, f64)> = match run.distributor.live.range(..=s).next_back() {
        Some((_, samples)) => samples
            .iter()
            .filter(|x| x.live)
            .map(|x| (x.analyzer.clone(), x.weight))
            .collect(),
        None if run.distributor.live.is_empty() => run
            .settings
            .weights
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        None => return None,
    };
    live.sort_by(|a, b| a.0.cmp(&b.0));
    Some(live)
}

/// Seconds the live set says nothing reliable about: the second of each distributor
/// restart or crash and the two after it. The analyzers reconnect one by one (with backoff,
/// up to 1 s apart) while acknowledged emitters resend what was not secured, so the first
/// analyzers back take a burst alone, and the new incarnation's first sample (all live
/// again) cannot show it.
fn after_distributor_events(run: &Run) -> BTreeSet<u64> {
    run.events
        .iter()
        .filter(|e| e.action.on_distributor())
        .flat_map(|e| {
            let s = e.ts_ns / 1_000_000_000;
            s..=s + 2
        })
        .collect()
}

/// Expected counts per analyzer, the observed ones (arrivals, or with `chosen` the
/// router's choices: arrivals corrected by the spills of the same second), and the arrivals
/// they cover.
fn expected(run: &Run, chosen: bool) -> (BTreeMap<String, f64>, BTreeMap<String, u64>, u64) {
    let seconds: BTreeSet<u64> = run
        .analyzers
        .iter()
        .flat_map(|a| a.per_second.keys().copied())
        .collect();
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    let mut observed: BTreeMap<String, u64> = BTreeMap::new();
    let mut covered = 0;
    let unsettled = after_distributor_events(run);
    for s in seconds {
        if unsettled.contains(&s) {
            continue;
        }
        // The live set sampled during second s may predate a join or a failure later in
        // that second; when the samples of s and s + 1 disagree, the second is a
        // transition with no clear expectation and is left out (observed and expected).
        let Some(live) = live_set(run, s) else {
            continue;
        };
        if !run.distributor.live.is_empty() && live_set(run, s + 1).as_ref() != Some(&live) {
            continue;
        }
        let total_weight: f64 = live.iter().map(|(_, w)| w).sum();
        if live.is_empty() || total_weight <= 0.0 {
            continue;
        }
        let n: u64 = run
            .analyzers
            .iter()
            .map(|a| a.per_second.get(&s).copied().unwrap_or(0))
            .sum();
        covered += n;
        for (id, w) in live {
            *expected.entry(id).or_default() += n as f64 * w / total_weight;
        }
        for a in &run.analyzers {
            *observed.entry(a.id.clone()).or_default() +=
                a.per_second.get(&s).copied().unwrap_or(0);
        }
        if chosen {
            for (id, net) in run.distributor.spilled_net.get(&s).into_iter().flatten() {
                let o = observed.entry(id.clone()).or_default();
                *o = o.saturating_add_signed(*net);
            }
        }
    }
    (expected, observed, covered)
}

/// The messages a conclusive interval needs when the observed share is `p_hat`.
fn needed(p: f64, p_hat: f64, tolerance: f64) -> f64 {
    let margin = (tolerance * p - (p_hat - p).abs()).abs();
    if margin <= 0.0 {
        return f64::INFINITY;
    }
    (Z * Z * p * (1.0 - p) / (margin * margin)).ceil()
}

/// The weights check.
pub fn check(run: &Run) -> Outcome {
    let spilled = run.distributor.spilled;
    let by_choice = spilled > 0;
    let (expected, observed, n) = expected(run, by_choice);
    let delivered = by_choice.then(|| self::expected(run, false).1);
    let tol = run.settings.weight_tolerance;
    let random = run.settings.routing != runfolder::Routing::Smooth;
    if n == 0 || expected.is_empty() {
        let why = if n == 0 {
            "no arrivals"
        } else {
            "no weights known (no distributor stats, no profile)"
        };
        return Outcome::not_exercised("weights", why);
    }
    let mut rows = Vec::new();
    let mut status = Status::Pass;
    // INCONCLUSIVE: the most messages any analyzer's interval needs to decide.
    let mut need: f64 = 0.0;
    let mut chi2 = 0.0;
    let mut k = 0;
    let ids: BTreeSet<&String> = expected.keys().chain(observed.keys()).collect();
    for id in ids {
        let e = expected.get(id).copied().unwrap_or(0.0);
        let o = observed.get(id).copied().unwrap_or(0) as f64;
        let (p, p_hat) = (e / n as f64, o / n as f64);
        if e <= 0.0 {
            let s = if o > 0.0 {
                Status::Fail
            } else {
                Status::NotExercised
            };
            status = status.worst(s);
            rows.push(Row::new(
                format!("weights:{id}"),
                s,
                format!("{p_hat:.4}"),
                "0",
                format!("{o} arrivals while never live"),
            ));
            continue;
        }
        chi2 += (o - e).powi(2) / e;
        k += 1;
        let rel = (o - e).abs() / e;
        let (s, detail) = if random {
            let half = Z * (p * (1.0 - p) / n as f64).sqrt();
            let (lo, hi) = (p * (1.0 - tol), p * (1.0 + tol));
            let ci = format!(
                "95% CI [{:.4}, {:.4}] vs band [{lo:.4}, {hi:.4}]",
                p_hat - half,
                p_hat + half
            );
            if p_hat - half >= lo && p_hat + half <= hi {
                (Status::Pass, ci)
            } else if p_hat + half < lo || p_hat - half > hi {
                (Status::Fail, ci)
            } else {
                need = need.max(needed(p, p_hat, tol));
                (
                    Status::Inconclusive,
                    format!(
                        "{ci}; about {} messages would decide",
                        needed(p, p_hat, tol)
                    ),
                )
            }
        } else if rel <= tol {
            (
                Status::Pass,
                format!(
                    "smooth routing: relative error {:.2}% <= {:.1}%",
                    rel * 100.0,
                    tol * 100.0
                ),
            )
        } else {
            (
                Status::Fail,
                format!(
                    "smooth routing: relative error {:.2}% > {:.1}%",
                    rel * 100.0,
                    tol * 100.0
                ),
            )
        };
        status = status.worst(s);
        rows.push(
            Row::new(
                format!("weights:{id}"),
                s,
                format!("{p_hat:.4}"),
                format!("{p:.4}"),
                match &delivered {
                    None => format!(
                        "{o} of {n} (expected {e:.0}, relative error {:.2}%); {detail}",
                        rel * 100.0
                    ),
                    Some(d) => {
                        let got = d.get(id).copied().unwrap_or(0);
                        format!(
                            "chosen by the router {o} of {n} (expected {e:.0}, relative error {:.2}%), delivered {got} ({:.4}) after spills; {detail}",
                            rel * 100.0,
                            got as f64 / n as f64
                        )
                    }
                },
            )
            .measured(p_hat, Some(p), Unit::Share),
        );
    }
    let dof = (k.max(1) - 1) as f64;
    let p_value = chi_square_p(chi2, dof);
    let max = max_rel(&rows);
    // In percent, without the float noise of tol * 100 (0.05 * 100 = 5.000000000000001).
    let limit = (tol * 100.0 * 1e6).round() / 1e6;
    let headline = match status {
        Status::Inconclusive if need.is_finite() => format!(
            "max relative error {max:.2}% vs {limit}%: too close to call over {n} arrivals; about {need:.0} messages would decide"
        ),
        Status::Inconclusive => {
            format!("max relative error {max:.2}% vs {limit}%: too close to call over {n} arrivals")
        }
        Status::Fail => format!(
            "max relative error {max:.2}% {} {limit}% ({} routing over {n} arrivals)",
            if max > limit { ">" } else { "vs" },
            run.settings.routing
        ),
        _ => format!(
            "max relative error {max:.2}% <= {limit}% ({} routing over {n} arrivals)",
            run.settings.routing
        ),
    };
    let spill_note = if by_choice {
        format!(
            "; judged on the router's choices: {spilled} frames ({:.2}%) went to another analyzer because the chosen one's queue was full (--when-full spill; strict holds delivered shares)",
            spilled as f64 / n.max(1) as f64 * 100.0
        )
    } else {
        String::new()
    };
    let headline = format!("{headline}{spill_note}");
    let mut head = vec![Row::new(
        "weights",
        status,
        format!("{max:.2}%"),
        format!("<= {:.1}%", limit),
        format!(
            "{} routing over {n} arrivals; chi-square {chi2:.2} with {dof} dof, p = {p_value:.4}{spill_note}",
            run.settings.routing
        ),
    )
    .measured(max, Some(limit), Unit::Percent)];
    head.push(
        Row::new(
            "weights:chi_square",
            status,
            format!("{chi2:.3}"),
            format!("dof {dof}"),
            format!("p-value {p_value:.4}"),
        )
        .measured(chi2, None, Unit::None),
    );
    head.extend(rows);
    Outcome {
        status,
        headline,
        rows: head,
    }
}

/// The largest relative error among the analyzer rows, in %.
fn max_rel(rows: &[Row]) -> f64 {
    rows.iter()
        .filter_map(|r| {
            let (o, e) = (r.value_num?, r.limit_num?);
            (e > 0.0).then(|| (o - e).abs() / e * 100.0)
        })
        .fold(0.0, f64::max)
}

/// Per analyzer: (id, delivered share, expected share), for the chart.
pub fn shares(run: &Run) -> Vec<(String, f64, f64)> {
    let (expected, observed, n) = expected(run, false);
    if n == 0 {
        return Vec::new();
    }
    let ids: BTreeSet<&String> = expected.keys().chain(observed.keys()).collect();
    ids.into_iter()
        .map(|id| {
            let o = observed.get(id).copied().unwrap_or(0) as f64 / n as f64;
            let e = expected.get(id).copied().unwrap_or(0.0) / n as f64;
            (id.clone(), o, e)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Analyzer, Event, LiveSample};
    use runfolder::ChaosAction;

    /// Two analyzers (2:1) live all along, 300 arrivals a second for 20 s in shares 2:1,
    /// but for seconds 10-12, right after a distributor crash, when `a` took everything.
    fn crashed_run(with_event: bool) -> Run {
        let mut run = Run::default();
        for s in 0..20u64 {
            run.distributor.live.insert(
                s,
                ["a", "b"]
                    .iter()
                    .zip([2.0, 1.0])
                    .map(|(id, w)| LiveSample {
                        analyzer: (*id).to_owned(),
                        live: true,
                        weight: w,
                    })
                    .collect(),
            );
        }
        for (id, share) in [("a", 2), ("b", 1)] {
            let mut a = Analyzer::new(id, runfolder::LogMode::Summary);
            for s in 0..20u64 {
                let n = match (s, id) {
                    (10..=12, "a") => 300,
                    (10..=12, _) => 0,
                    _ => 100 * share,
                };
                a.per_second.insert(s, n);
            }
            run.analyzers.push(a);
        }
        if with_event {
            run.events.push(Event {
                ts_ns: 10 * 1_000_000_000 + 400_000_000,
                action: ChaosAction::KillDistributor,
                target: "distributor".into(),
            });
        }
        run
    }

    #[test]
    fn the_seconds_after_a_distributor_crash_are_not_judged() {
        let (want, got, n) = expected(&crashed_run(true), false);
        assert_eq!(n, 17 * 300);
        assert_eq!(got["a"], 17 * 200);
        assert!((want["a"] - 3400.0).abs() < 1e-6);
        // Without the event, the burst counts against the shares.
        let (want, got, _) = expected(&crashed_run(false), false);
        assert_eq!(got["a"], 17 * 200 + 900);
        assert!(want["a"] < got["a"] as f64 - 100.0);
    }
}
