//! The checks. Each returns PASS, FAIL, NOT_EXERCISED or INCONCLUSIVE with the figures
//! behind it; none passes vacuously (no data gives NOT_EXERCISED).
//!
//! - [`weights`]: each analyzer's share against its expected share (following the live set
//!   over time), with a confidence interval for random routing and a chi-square test.
//! - [`priority`]: no inversion on any connection (PROTOCOL.md §3); exercised only when a
//!   backlog actually made the scheduler reorder frames.
//! - [`integrity`]: no corrupt, foreign or unknown frame.
//! - [`accounting`]: sent = delivered unique + dropped (+ in doubt); no unexplained loss.
//! - [`latency`]: end-to-end percentiles overall and per priority.
//! - [`alerting`] (runs with `--prometheus`): every analyzer kill raised `AnalyzerDown`
//!   within 15 s; a run without chaos fired no alert.
//! - [`security`] (profiles with `[security]`): the impostor was rejected; the restricted
//!   emitters' out-of-range messages were counted `forbidden`, exactly.

pub mod accounting;
pub mod alerting;
pub mod integrity;
pub mod latency;
pub mod priority;
pub mod security;
pub mod weights;

use crate::model::Run;

/// A check's verdict (shared with `summary.csv` readers).
pub use runfolder::Status;

/// The unit of a row's numbers (shared with `summary.csv` and `summary.json` readers).
pub use runfolder::Unit;

/// One row of `summary.csv`: a check or one of its figures (the run folder's row type).
pub use runfolder::rows::CheckRow as Row;

/// A check's verdict with its figures; `rows[0]` is the check itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The verdict.
    pub status: Status,
    /// The verdict line for a person: value against limit with its unit; for INCONCLUSIVE
    /// how much data would decide; for NOT_EXERCISED why.
    pub headline: String,
    /// The summary rows, the check first.
    pub rows: Vec<Row>,
}

impl Outcome {
    /// The check's name.
    pub fn name(&self) -> &str {
        self.rows.first().map_or("", |r| r.check.as_str())
    }

    /// A check that had nothing to look at, and why.
    pub fn not_exercised(check: &str, why: impl Into<String>) -> Self {
        let why = why.into();
        Self {
            status: Status::NotExercised,
            headline: why.clone(),
            rows: vec![Row::new(check, Status::NotExercised, "", "", why)],
        }
    }
}

/// The run's verdict over all checks: FAIL if any failed; else INCONCLUSIVE if any was,
/// or if none passed (checks that are all NOT_EXERCISED or INFO prove nothing); else PASS.
pub fn overall(outcomes: &[Outcome]) -> Status {
    let any = |s: Status| outcomes.iter().any(|o| o.status == s);
    if any(Status::Fail) {
        Status::Fail
    } else if any(Status::Inconclusive) || !any(Status::Pass) {
        Status::Inconclusive
    } else {
        Status::Pass
    }
}

/// `RESULT: PASS (4 passed, 1 not exercised)`: the verdict and the count of each status.
pub fn result_line(outcomes: &[Outcome]) -> String {
    let count = |s: Status| outcomes.iter().filter(|o| o.status == s).count();
    let parts: Vec<String> = [
        (Status::Fail, "failed"),
        (Status::Inconclusive, "inconclusive"),
        (Status::Pass, "passed"),
        (Status::NotExercised, "not exercised"),
        (Status::Info, "info"),
    ]
    .into_iter()
    .filter(|(s, _)| count(*s) > 0)
    .map(|(s, word)| format!("{} {word}", count(s)))
    .collect();
    format!("RESULT: {} ({})", overall(outcomes), parts.join(", "))
}

/// Runs every check.
pub fn all(run: &Run) -> Vec<Outcome> {
    let mut all = vec![
        weights::check(run),
        priority::check(run),
        integrity::check(run),
        accounting::check(run),
        latency::check(run),
    ];
    all.extend(alerting::check(run));
    all.extend(security::check(run));
    all
}

/// The upper tail probability of a chi-square statistic `x` with `dof` degrees of freedom
/// (1 for `dof` 0 or `x` <= 0).
pub fn chi_square_p(x: f64, dof: f64) -> f64 {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    if x <= 0.0 || dof <= 0.0 {
        return 1.0;
    }
    ChiSquared::new(dof).map_or(1.0, |d| d.sf(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_square_tail_matches_tables() {
        // Critical values at p = 0.05 and 0.01.
        for (x, dof, p) in [
            (3.841, 1.0, 0.05),
            (5.991, 2.0, 0.05),
            (9.210, 2.0, 0.01),
            (16.919, 9.0, 0.05),
            (124.342, 100.0, 0.05),
        ] {
            let got = chi_square_p(x, dof);
            assert!((got - p).abs() < 5e-4, "x={x} dof={dof}: {got}");
        }
        assert_eq!(chi_square_p(0.0, 3.0), 1.0);
        assert_eq!(chi_square_p(5.0, 0.0), 1.0);
    }

    fn outcome(status: Status) -> Outcome {
        Outcome {
            status,
            headline: String::new(),
            rows: Vec::new(),
        }
    }

    #[test]
    fn the_result_line_counts_every_status() {
        use Status::*;
        let run = |s: &[Status]| result_line(&s.iter().map(|s| outcome(*s)).collect::<Vec<_>>());
        assert_eq!(
            run(&[Pass, Pass, NotExercised]),
            "RESULT: PASS (2 passed, 1 not exercised)"
        );
        assert_eq!(
            run(&[Pass, Fail, Inconclusive]),
            "RESULT: FAIL (1 failed, 1 inconclusive, 1 passed)"
        );
        assert_eq!(
            run(&[Pass, Inconclusive]),
            "RESULT: INCONCLUSIVE (1 inconclusive, 1 passed)"
        );
        // Nothing passed: nothing was shown.
        assert_eq!(
            run(&[NotExercised, NotExercised]),
            "RESULT: INCONCLUSIVE (2 not exercised)"
        );
        // A figure without a limit is not a pass.
        assert_eq!(run(&[Pass, Info]), "RESULT: PASS (1 passed, 1 info)");
        assert_eq!(
            run(&[Info, NotExercised]),
            "RESULT: INCONCLUSIVE (1 not exercised, 1 info)"
        );
    }

    #[test]
    fn worst_status() {
        assert_eq!(Status::Pass.worst(Status::Fail), Status::Fail);
        assert_eq!(
            Status::Inconclusive.worst(Status::Pass),
            Status::Inconclusive
        );
        assert_eq!(Status::NotExercised.worst(Status::Pass), Status::Pass);
    }
}
