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

pub mod accounting;
pub mod integrity;
pub mod latency;
pub mod priority;
pub mod weights;

use crate::model::Run;

/// A check's verdict (shared with `summary.csv` readers).
pub use runfolder::Status;

/// One row of `summary.csv`: a check or one of its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `weights`, `weights:a1`, `latency:p99:all`, ...
    pub check: String,
    /// The verdict the row belongs to.
    pub status: Status,
    /// What was measured.
    pub value: String,
    /// What was expected.
    pub expected: String,
    /// Why, for a person.
    pub detail: String,
}

impl Row {
    /// A row.
    pub fn new(
        check: impl Into<String>,
        status: Status,
        value: impl ToString,
        expected: impl ToString,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            check: check.into(),
            status,
            value: value.to_string(),
            expected: expected.to_string(),
            detail: detail.into(),
        }
    }
}

/// A check's verdict with its figures; `rows[0]` is the check itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The verdict.
    pub status: Status,
    /// The summary rows, the check first.
    pub rows: Vec<Row>,
}

impl Outcome {
    /// The check's name.
    pub fn name(&self) -> &str {
        self.rows.first().map_or("", |r| r.check.as_str())
    }
}

/// Runs every check.
pub fn all(run: &Run) -> Vec<Outcome> {
    vec![
        weights::check(run),
        priority::check(run),
        integrity::check(run),
        accounting::check(run),
        latency::check(run),
    ]
}

/// The upper tail probability of a chi-square statistic `x` with `dof` degrees of freedom:
/// Q(dof/2, x/2), the regularized upper incomplete gamma function (series below a + 1,
/// continued fraction above; Numerical Recipes §6.2).
pub fn chi_square_p(x: f64, dof: f64) -> f64 {
    if x <= 0.0 || dof <= 0.0 {
        return 1.0;
    }
    let (a, x) = (dof / 2.0, x / 2.0);
    let gln = ln_gamma(a);
    if x < a + 1.0 {
        let (mut sum, mut del, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..500 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        1.0 - sum * (-x + a * x.ln() - gln).exp()
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..500 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (-x + a * x.ln() - gln).exp() * h
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return std::f64::consts::PI.ln()
            - (std::f64::consts::PI * x).sin().ln()
            - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let sum: f64 = G[0]
        + G[1..]
            .iter()
            .enumerate()
            .map(|(i, g)| g / (x + i as f64 + 1.0))
            .sum::<f64>();
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
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
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
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
