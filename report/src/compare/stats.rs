//! The statistics behind `report compare`: means, coefficients of variation, and two
//! confidence intervals of the difference of means (candidate minus base): Welch's t
//! interval (unequal variances, Welch-Satterthwaite degrees of freedom) and a percentile
//! bootstrap, for the latency percentiles whose per-second values are skewed.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The arithmetic mean (0 for no samples).
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// The sample variance (n - 1 in the denominator; 0 below two samples).
pub fn variance(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64
}

/// The coefficient of variation: standard deviation over the absolute mean (0 for a
/// constant series, infinite for a zero mean with spread).
pub fn cv(xs: &[f64]) -> f64 {
    let (m, sd) = (mean(xs).abs(), variance(xs).sqrt());
    if sd == 0.0 {
        0.0
    } else if m == 0.0 {
        f64::INFINITY
    } else {
        sd / m
    }
}

/// An interval of candidate mean minus base mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

impl Interval {
    /// Whether the difference is significant: the interval does not contain 0.
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// Welch's two-sided interval at `confidence` (0.9 = 90%) for mean(cand) - mean(base);
/// `None` below two samples on a side.
pub fn welch(base: &[f64], cand: &[f64], confidence: f64) -> Option<Interval> {
    let (n1, n2) = (base.len() as f64, cand.len() as f64);
    if n1 < 2.0 || n2 < 2.0 {
        return None;
    }
    let diff = mean(cand) - mean(base);
    let (a, b) = (variance(base) / n1, variance(cand) / n2);
    let se = (a + b).sqrt();
    if se == 0.0 {
        // Two constant series: the difference is exact.
        return Some(Interval {
            low: diff,
            high: diff,
        });
    }
    let df = (a + b).powi(2) / (a * a / (n1 - 1.0) + b * b / (n2 - 1.0));
    let t = StudentsT::new(0.0, 1.0, df)
        .ok()?
        .inverse_cdf(0.5 + confidence / 2.0);
    Some(Interval {
        low: diff - t * se,
        high: diff + t * se,
    })
}

/// Resamples of a bootstrap.
pub const RESAMPLES: usize = 2000;

/// A percentile bootstrap interval at `confidence` for mean(cand) - mean(base): both sides
/// resampled with replacement `resamples` times from a fixed seed (the same input gives
/// the same interval). `None` below two samples on a side.
pub fn bootstrap(
    base: &[f64],
    cand: &[f64],
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> Option<Interval> {
    if base.len() < 2 || cand.len() < 2 || resamples == 0 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut resampled_mean = |xs: &[f64]| {
        let sum: f64 = (0..xs.len())
            .map(|_| xs[rng.random_range(0..xs.len())])
            .sum();
        sum / xs.len() as f64
    };
    let mut diffs: Vec<f64> = (0..resamples)
        .map(|_| resampled_mean(cand) - resampled_mean(base))
        .collect();
    diffs.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = (q * (resamples - 1) as f64).round() as usize;
        diffs[i.min(resamples - 1)]
    };
    let tail = (1.0 - confidence) / 2.0;
    Some(Interval {
        low: at(tail),
        high: at(1.0 - tail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Normal samples (Box-Muller) from a seed.
    fn normal(n: usize, mean: f64, sd: f64, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
                mean + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect()
    }

    #[test]
    fn moments() {
        assert_eq!(mean(&[1.0, 2.0, 3.0]), 2.0);
        assert_eq!(variance(&[1.0, 2.0, 3.0]), 1.0);
        assert_eq!(cv(&[1.0, 2.0, 3.0]), 0.5);
        assert_eq!(cv(&[4.0, 4.0]), 0.0);
        assert!(cv(&[-1.0, 1.0]).is_infinite());
        assert_eq!(mean(&[]), 0.0);
    }

    #[test]
    fn welch_matches_a_worked_example() {
        // scipy.stats.ttest_ind(x, y, equal_var=False).confidence_interval(0.95):
        // -3.98410 to -0.34924 for mean(x) - mean(y), df 24.99.
        let x = [
            27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7,
            21.4,
        ];
        let y = [
            27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5,
            24.4,
        ];
        // Our difference is cand - base: base y, cand x.
        let i = welch(&y, &x, 0.95).unwrap();
        assert!((i.low - -3.98410).abs() < 1e-4, "{i:?}");
        assert!((i.high - -0.34924).abs() < 1e-4, "{i:?}");
        assert!(i.excludes_zero());
        assert!(welch(&[1.0], &x, 0.9).is_none());
        let same = welch(&[2.0, 2.0], &[3.0, 3.0], 0.9).unwrap();
        assert_eq!((same.low, same.high), (1.0, 1.0));
    }

    /// How often an interval excludes 0 when both sides come from one distribution: the
    /// false-positive rate of significance alone, which must be close to 1 - confidence.
    fn false_positive_rate(
        f: impl Fn(&[f64], &[f64], u64) -> Option<Interval>,
        trials: u64,
    ) -> f64 {
        let hits = (0..trials)
            .filter(|&seed| {
                let base = normal(40, 1000.0, 30.0, seed * 2);
                let cand = normal(40, 1000.0, 30.0, seed * 2 + 1);
                f(&base, &cand, seed).is_some_and(|i| i.excludes_zero())
            })
            .count();
        hits as f64 / trials as f64
    }

    #[test]
    fn welch_is_calibrated_on_pure_noise() {
        let rate = false_positive_rate(|b, c, _| welch(b, c, 0.9), 2000);
        assert!((0.08..=0.12).contains(&rate), "false-positive rate {rate}");
    }

    #[test]
    fn bootstrap_is_calibrated_on_pure_noise() {
        let rate = false_positive_rate(|b, c, s| bootstrap(b, c, 0.9, 1000, s), 400);
        // A percentile bootstrap is a little liberal at small n; 400 trials give about
        // +-3.5 points of sampling error.
        assert!((0.05..=0.17).contains(&rate), "false-positive rate {rate}");
    }

    #[test]
    fn intervals_find_a_real_shift() {
        let base = normal(60, 1000.0, 30.0, 1);
        let cand = normal(60, 900.0, 30.0, 2);
        for i in [
            welch(&base, &cand, 0.9).unwrap(),
            bootstrap(&base, &cand, 0.9, RESAMPLES, 7).unwrap(),
        ] {
            assert!(i.high < -80.0 && i.low > -120.0, "{i:?}");
        }
        assert_eq!(
            bootstrap(&base, &cand, 0.9, 500, 3),
            bootstrap(&base, &cand, 0.9, 500, 3),
            "a bootstrap is reproducible"
        );
    }
}
