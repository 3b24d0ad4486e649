//! `report compare`: is a candidate slower than a base, with what confidence? The regression
//! gate of the toolkit, after the detector Vector and the Datadog Agent run in CI.
//!
//! Each side is one or more replicates: run folders of one profile, or `harness bench`
//! folders. Per scenario and metric the samples of a side are pooled (for run folders, the
//! whole seconds of the load after a warm-up; for bench folders, one sample per run), and
//! the difference of means gets a confidence interval: Welch's t for throughput, CPU per
//! message and peak RSS, a percentile bootstrap for the latency percentiles (their
//! per-second values are skewed; below [`MIN_BOOTSTRAP`] samples a side, where a bootstrap
//! cannot see the spread, Welch's too).
//!
//! The confidence holds for the whole comparison, not for each metric: with `m` metrics
//! judged by an interval, each interval is drawn at `1 - (1 - confidence) / m`
//! (Bonferroni). Comparing two runs of one build then finds a regression in at most about
//! `1 - confidence` of comparisons, however many metrics and scenarios there are. A metric
//! is
//!
//! - a **regression** (or an **improvement**) when the interval excludes 0 and the change
//!   is at least the tolerance (5% of the base's mean by default), in the worse (better)
//!   direction; a series whose coefficient of variation exceeds 0.1 must moreover have
//!   moved by more than its own spread (|Δ| ≥ CV);
//! - **erratic** when a series' coefficient of variation exceeds 0.1 and no such change
//!   shows: too noisy to say "no change", and never a failure;
//! - **no change** otherwise.
//!
//! Losses are counts, not statistics: any loss beyond the base's is a regression, and so
//! are drops where the base had none. With one sample on a side (one run's peak RSS) there
//! is no interval: the tolerance alone decides (method `single`).
//!
//! - [`stats`]: means, CV, Welch and bootstrap intervals.
//! - [`input`]: folders into samples, refusing folders that do not compare.
//! - [`page`]: the terminal table, `compare.csv`, `compare.json` and `compare.html`.

pub mod input;
pub mod page;
pub mod stats;

use anyhow::Context as _;
use runfolder::rows::CompareRow;
use runfolder::{Better, Method, Unit, Verdict, names};
use std::path::{Path, PathBuf};

/// How to judge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Relative effect size below which a change does not count (0.05 = 5%).
    pub tolerance: f64,
    /// Confidence of the intervals (0.9 = 90%).
    pub confidence: f64,
    /// Coefficient of variation above which a series is noisy.
    pub erratic_cv: f64,
    /// Seconds left out at the start of each run's load.
    pub warmup_s: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tolerance: 0.05,
            confidence: 0.9,
            erratic_cv: 0.1,
            warmup_s: 2,
        }
    }
}

/// How a metric's samples are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A mean, with Welch's interval.
    Mean,
    /// A latency percentile, with a bootstrap interval.
    Percentile,
    /// Losses: any more than the base's is a regression.
    Loss,
    /// Drops: any where the base had none is a regression; otherwise as [`Kind::Mean`].
    Drops,
}

/// One metric of one scenario, with the samples of both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    /// The profile, or `group/scenario` of a bench.
    pub scenario: String,
    /// The metric's name.
    pub metric: &'static str,
    /// Unit of the samples.
    pub unit: Unit,
    /// Which way is better.
    pub better: Better,
    /// How to judge it.
    pub kind: Kind,
    /// Base samples.
    pub base: Vec<f64>,
    /// Candidate samples.
    pub candidate: Vec<f64>,
}

/// Fewest samples a side for a bootstrap interval; below, Welch's.
pub const MIN_BOOTSTRAP: usize = 10;

/// Whether `s` is judged by an interval (and so counts in the Bonferroni family).
fn by_interval(s: &Samples) -> bool {
    let enough = s.base.len() >= 2 && s.candidate.len() >= 2;
    match s.kind {
        Kind::Mean | Kind::Percentile => enough,
        Kind::Drops => enough && s.base.iter().any(|x| *x != 0.0),
        Kind::Loss => false,
    }
}

/// The confidence of each interval when `family` metrics share `confidence` (Bonferroni).
pub fn per_metric_confidence(confidence: f64, family: usize) -> f64 {
    1.0 - (1.0 - confidence) / family.max(1) as f64
}

/// A seed for a metric's bootstrap: the same input gives the same interval.
fn seed(s: &Samples) -> u64 {
    // FNV-1a over the names.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.scenario.bytes().chain(s.metric.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn pct(x: f64) -> String {
    format!("{x:+.1}%")
}

/// A confidence as a percentage with the digits it needs (90%, 99.64%).
pub fn percent(c: f64) -> String {
    let s = format!("{:.2}", 100.0 * c);
    format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
}

/// Judges one metric, its interval drawn at `confidence` (see [`per_metric_confidence`]).
pub fn judge(s: &Samples, set: &Settings, confidence: f64) -> CompareRow {
    use stats::{cv, mean};
    let (bm, cm) = (mean(&s.base), mean(&s.candidate));
    let (bcv, ccv) = (cv(&s.base), cv(&s.candidate));
    let of_base = |x: f64| (bm != 0.0).then(|| 100.0 * x / bm);
    let delta_pct = of_base(cm - bm);
    let worse = match s.better {
        Better::Higher => cm < bm,
        Better::Lower => cm > bm,
    };
    let directed = if worse {
        Verdict::Regression
    } else {
        Verdict::Improvement
    };
    let mut row = CompareRow {
        scenario: s.scenario.clone(),
        metric: s.metric.to_owned(),
        unit: s.unit,
        better: s.better,
        method: Method::Count,
        base_n: s.base.len(),
        base_mean: bm,
        base_cv: bcv,
        candidate_n: s.candidate.len(),
        candidate_mean: cm,
        candidate_cv: ccv,
        delta_pct,
        ci_low_pct: None,
        ci_high_pct: None,
        verdict: Verdict::NoChange,
        detail: String::new(),
    };
    let per_run = |m: f64| {
        if m.fract() == 0.0 {
            format!("{m:.0} per run")
        } else {
            format!("{m:.1} per run")
        }
    };
    match s.kind {
        Kind::Loss => {
            (row.verdict, row.detail) = if cm > bm {
                let what = if bm == 0.0 { "new loss" } else { "more loss" };
                (
                    Verdict::Regression,
                    format!(
                        "{what}: the candidate lost {} against the base's {}; any loss beyond the base's is a regression",
                        per_run(cm),
                        per_run(bm)
                    ),
                )
            } else if cm < bm {
                (
                    Verdict::Improvement,
                    format!("the candidate lost {} against {}", per_run(cm), per_run(bm)),
                )
            } else {
                (Verdict::NoChange, format!("both lost {}", per_run(cm)))
            };
            return row;
        }
        Kind::Drops if bm == 0.0 => {
            (row.verdict, row.detail) = if cm > 0.0 {
                (
                    Verdict::Regression,
                    format!(
                        "new drops: the candidate dropped {} where the base dropped none",
                        per_run(cm)
                    ),
                )
            } else {
                (Verdict::NoChange, "neither dropped a frame".to_owned())
            };
            return row;
        }
        Kind::Mean | Kind::Percentile | Kind::Drops => {}
    }
    let bootstrap =
        s.kind == Kind::Percentile && s.base.len().min(s.candidate.len()) >= MIN_BOOTSTRAP;
    let interval = if bootstrap {
        row.method = Method::Bootstrap;
        stats::bootstrap(&s.base, &s.candidate, confidence, stats::RESAMPLES, seed(s))
    } else {
        row.method = Method::Welch;
        stats::welch(&s.base, &s.candidate, confidence)
    };
    let tol = 100.0 * set.tolerance;
    let Some(delta) = delta_pct else {
        row.method = Method::Single;
        (row.verdict, row.detail) = if cm == bm {
            (Verdict::NoChange, "both 0".to_owned())
        } else {
            (
                directed,
                format!("{cm:.3} against 0: no relative change to judge"),
            )
        };
        return row;
    };
    let beyond = delta.abs() >= tol;
    let Some(i) = interval else {
        row.method = Method::Single;
        (row.verdict, row.detail) = if beyond {
            (
                directed,
                format!(
                    "{} is beyond the {tol:.0}% tolerance (one sample on a side: no confidence interval, the tolerance alone decides)",
                    pct(delta)
                ),
            )
        } else {
            (
                Verdict::NoChange,
                format!(
                    "{} is within the {tol:.0}% tolerance (one sample on a side: no confidence interval)",
                    pct(delta)
                ),
            )
        };
        return row;
    };
    row.ci_low_pct = of_base(i.low);
    row.ci_high_pct = of_base(i.high);
    let interval_text = format!(
        "{} [{}, {}] at {} confidence",
        pct(delta),
        pct(row.ci_low_pct.unwrap_or(0.0)),
        pct(row.ci_high_pct.unwrap_or(0.0)),
        percent(confidence)
    );
    let noise = bcv.max(ccv);
    let noisy = noise > set.erratic_cv;
    let beyond_noise = !noisy || delta.abs() >= 100.0 * noise;
    (row.verdict, row.detail) = if i.excludes_zero() && beyond && beyond_noise {
        let side = if worse { "worse" } else { "better" };
        let mut d = format!("{interval_text}: {side} by more than the {tol:.0}% tolerance");
        if noisy {
            d.push_str(&format!(
                ", and by more than the series' own spread (CV {noise:.2})"
            ));
        }
        (directed, d)
    } else if noisy {
        (
            Verdict::Erratic,
            format!(
                "{interval_text}: a series varies too much to judge (CV {noise:.2} > {:.2}) and the change is not larger than its spread",
                set.erratic_cv
            ),
        )
    } else if !i.excludes_zero() {
        (
            Verdict::NoChange,
            format!("{interval_text}: the interval contains 0"),
        )
    } else {
        (
            Verdict::NoChange,
            format!("{interval_text}: significant, but within the {tol:.0}% tolerance"),
        )
    };
    row
}

/// What to compare and where to write.
#[derive(Debug, Clone)]
pub struct Request {
    /// Base folders.
    pub base: Vec<PathBuf>,
    /// Candidate folders.
    pub candidate: Vec<PathBuf>,
    /// How to judge.
    pub settings: Settings,
    /// Output folder.
    pub out: PathBuf,
}

/// A finished comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The result as written to `compare.json`.
    pub result: runfolder::json::Compare,
    /// The output folder.
    pub out: PathBuf,
}

impl Comparison {
    /// 1 when a metric regressed, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.result.regressions > 0)
    }
}

/// Reads both sides, judges every metric, writes `compare.csv`, `compare.json` and
/// `compare.html` into `req.out`. An [`input::CompareError`] inside the error means
/// unusable input (exit 2).
pub fn run(req: &Request) -> anyhow::Result<Comparison> {
    let loaded = input::load(&req.base, &req.candidate, req.settings.warmup_s)?;
    let family = loaded.samples.iter().filter(|s| by_interval(s)).count();
    let each = per_metric_confidence(req.settings.confidence, family);
    let rows: Vec<CompareRow> = loaded
        .samples
        .iter()
        .map(|s| judge(s, &req.settings, each))
        .collect();
    let show = |v: &[PathBuf]| v.iter().map(|p| p.display().to_string()).collect();
    let result = runfolder::json::Compare {
        kind: loaded.kind.as_str().to_owned(),
        base: show(&req.base),
        candidate: show(&req.candidate),
        base_commits: loaded.base_commits.clone(),
        candidate_commits: loaded.candidate_commits.clone(),
        tolerance: req.settings.tolerance,
        confidence: req.settings.confidence,
        per_metric_confidence: each,
        erratic_cv: req.settings.erratic_cv,
        regressions: rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
            .count(),
        rows,
        notes: loaded.notes.clone(),
    };
    write(&req.out, &result, &loaded)?;
    Ok(Comparison {
        result,
        out: req.out.clone(),
    })
}

fn write(
    out: &Path,
    result: &runfolder::json::Compare,
    loaded: &input::Loaded,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut csv = runfolder::TableWriter::<CompareRow>::create(&out.join(names::COMPARE_CSV))?;
    for r in &result.rows {
        csv.write(r)?;
    }
    csv.flush()?;
    runfolder::table::write_json(&out.join(names::COMPARE_JSON), result)?;
    let html = page::html(result, loaded).context("drawing compare.html")?;
    let path = out.join(names::COMPARE_HTML);
    std::fs::write(&path, html).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(kind: Kind, better: Better, base: Vec<f64>, candidate: Vec<f64>) -> Samples {
        Samples {
            scenario: "s".into(),
            metric: "m",
            unit: Unit::None,
            better,
            kind,
            base,
            candidate,
        }
    }

    fn judge_at_90(s: &Samples, set: &Settings) -> CompareRow {
        judge(s, set, 0.9)
    }

    fn around(mean: f64, spread: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| mean + spread * ((i % 5) as f64 - 2.0) / 2.0)
            .collect()
    }

    #[test]
    fn the_confidence_is_shared_by_the_metrics() {
        assert_eq!(per_metric_confidence(0.9, 1), 0.9);
        assert!((per_metric_confidence(0.9, 8) - 0.9875).abs() < 1e-12);
        assert_eq!(percent(0.9), "90%");
        assert_eq!(percent(0.9875), "98.75%");
        // Few samples: Welch, also for a percentile.
        let few = samples(
            Kind::Percentile,
            Better::Lower,
            vec![1.0, 1.1, 0.9],
            vec![2.0, 2.1, 1.9],
        );
        let r = judge(&few, &Settings::default(), 0.9);
        assert_eq!((r.method, r.verdict), (Method::Welch, Verdict::Regression));
    }

    #[test]
    fn direction_decides_regression_or_improvement() {
        let set = Settings::default();
        let slower = samples(
            Kind::Mean,
            Better::Higher,
            around(1000.0, 10.0, 30),
            around(900.0, 10.0, 30),
        );
        let r = judge(&slower, &set, 0.9);
        assert_eq!(r.verdict, Verdict::Regression, "{}", r.detail);
        assert_eq!(r.method, Method::Welch);
        assert!((r.delta_pct.unwrap() + 10.0).abs() < 1e-9);
        assert!(r.ci_low_pct.unwrap() < -10.0 && r.ci_high_pct.unwrap() > -10.0);
        let faster_latency = samples(
            Kind::Percentile,
            Better::Lower,
            slower.base,
            slower.candidate,
        );
        let r = judge(&faster_latency, &set, 0.9);
        assert_eq!(r.verdict, Verdict::Improvement, "{}", r.detail);
        assert_eq!(r.method, Method::Bootstrap);
    }

    #[test]
    fn small_significant_changes_are_within_the_tolerance() {
        let r = judge_at_90(
            &samples(
                Kind::Mean,
                Better::Higher,
                around(1000.0, 2.0, 60),
                around(990.0, 2.0, 60),
            ),
            &Settings::default(),
        );
        assert_eq!(r.verdict, Verdict::NoChange);
        assert!(r.detail.contains("within the 5% tolerance"), "{}", r.detail);
    }

    #[test]
    fn noisy_series_are_erratic_unless_the_change_exceeds_the_noise() {
        let set = Settings::default();
        // CV about 0.3: a 10% drop is within the noise.
        let r = judge_at_90(
            &samples(
                Kind::Mean,
                Better::Higher,
                around(1000.0, 600.0, 200),
                around(900.0, 600.0, 200),
            ),
            &set,
        );
        assert_eq!(r.verdict, Verdict::Erratic, "{}", r.detail);
        // A halving is beyond it.
        let r = judge_at_90(
            &samples(
                Kind::Mean,
                Better::Higher,
                around(1000.0, 600.0, 200),
                around(500.0, 300.0, 200),
            ),
            &set,
        );
        assert_eq!(r.verdict, Verdict::Regression, "{}", r.detail);
    }

    #[test]
    fn losses_and_new_drops_are_regressions_whatever_the_statistics() {
        let set = Settings::default();
        let r = judge_at_90(
            &samples(Kind::Loss, Better::Lower, vec![0.0; 3], vec![0.0, 0.0, 1.0]),
            &set,
        );
        assert_eq!(r.verdict, Verdict::Regression);
        assert!(r.detail.starts_with("new loss"), "{}", r.detail);
        let r = judge_at_90(
            &samples(Kind::Loss, Better::Lower, vec![0.0; 3], vec![0.0; 3]),
            &set,
        );
        assert_eq!(r.verdict, Verdict::NoChange);
        let r = judge_at_90(
            &samples(Kind::Drops, Better::Lower, vec![0.0], vec![5.0]),
            &set,
        );
        assert_eq!(r.verdict, Verdict::Regression);
        // Drops on both sides are judged like any mean.
        let r = judge_at_90(
            &samples(
                Kind::Drops,
                Better::Lower,
                vec![100.0, 104.0],
                vec![102.0, 101.0],
            ),
            &set,
        );
        assert_eq!(r.verdict, Verdict::NoChange, "{}", r.detail);
    }

    #[test]
    fn one_sample_a_side_is_judged_on_the_tolerance_alone() {
        let set = Settings::default();
        let r = judge_at_90(
            &samples(Kind::Mean, Better::Lower, vec![40.0], vec![50.0]),
            &set,
        );
        assert_eq!((r.verdict, r.method), (Verdict::Regression, Method::Single));
        let r = judge_at_90(
            &samples(Kind::Mean, Better::Lower, vec![40.0], vec![41.0]),
            &set,
        );
        assert_eq!((r.verdict, r.method), (Verdict::NoChange, Method::Single));
    }
}
