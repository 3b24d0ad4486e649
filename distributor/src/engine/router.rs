//! Weighted choice of an analyzer, in O(1) (random) or O(log n) (smooth) per pick.
//!
//! Members are indexed `0..n` in the order given to [`Router::set_weights`]; the caller keeps
//! its sessions in the same order. Weights change only when analyzers join or leave, so the
//! structures are rebuilt then (O(n)) and never touched on the hot path.
//!
//! - [`Routing::Random`] draws from Walker's alias table: O(1) per pick (one random
//!   number, two table reads), so 1000 analyzers cost what 3 do.
//! - [`Routing::Smooth`] is earliest-deadline-first: member `i`, picked `n_i` times so far,
//!   is due at `(n_i + 1) / w_i`; a binary heap yields the earliest (ties to the lower index).
//!   Every member is within one pick of its exact share at all times, and exact whenever the
//!   pick count is a multiple of the weights' common period (5/3/2: every 10 picks).

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// How to choose among live analyzers (shared with the run folder's files and profiles).
pub use runfolder::Routing;

/// Walker's alias table (Vose's construction): a weighted draw in O(1) whatever the number
/// of members, from one random u64: its high half picks a column, its low half decides
/// between the column's own member and its alias.
#[derive(Debug, Default, Clone)]
struct AliasTable {
    /// Probability of keeping column `i`'s own member, scaled to 2^32.
    keep: Vec<u64>,
    alias: Vec<usize>,
}

impl AliasTable {
    fn build(weights: &[f64]) -> Self {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|i| scaled[*i] < 1.0);
        let mut keep = vec![1u64 << 32; n];
        let mut alias: Vec<usize> = (0..n).collect();
        while let (Some(l), Some(g)) = (small.pop(), large.pop()) {
            keep[l] = (scaled[l] * (1u64 << 32) as f64) as u64;
            alias[l] = g;
            scaled[g] += scaled[l] - 1.0;
            if scaled[g] < 1.0 {
                small.push(g);
            } else {
                large.push(g);
            }
        }
        // What is left has probability 1 (up to rounding): keep[i] stays 2^32.
        Self { keep, alias }
    }

    fn draw(&self, r: u64) -> usize {
        let n = self.keep.len() as u64;
        let column = (((r >> 32) * n) >> 32) as usize;
        if r & 0xffff_ffff < self.keep[column] {
            column
        } else {
            self.alias[column]
        }
    }
}

/// A deadline in the smooth schedule, ordered by value then index.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Due(f64, usize);

impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Weighted choice among the live analyzers.
#[derive(Debug)]
pub struct Router {
    strategy: Routing,
    weights: Vec<f64>,
    table: AliasTable,
    picks: Vec<u64>,
    heap: BinaryHeap<Reverse<Due>>,
    rng: SmallRng,
}

impl Router {
    /// An empty router; `seed` makes random routing reproducible.
    pub fn new(strategy: Routing, seed: u64) -> Self {
        Self {
            strategy,
            weights: Vec::new(),
            table: AliasTable::default(),
            picks: Vec::new(),
            heap: BinaryHeap::new(),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Replaces the members' weights (all finite and > 0). Restarts the smooth schedule.
    pub fn set_weights(&mut self, weights: &[f64]) {
        self.weights = weights.to_vec();
        self.table = AliasTable::build(weights);
        self.picks = vec![0; weights.len()];
        self.heap = weights
            .iter()
            .enumerate()
            .map(|(i, w)| Reverse(Due(1.0 / w, i)))
            .collect();
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Chooses a member in proportion to weight; `None` without members.
    pub fn pick(&mut self) -> Option<usize> {
        if self.weights.is_empty() {
            return None;
        }
        match self.strategy {
            Routing::Random => Some(self.table.draw(self.rng.random::<u64>())),
            Routing::Smooth => {
                let Reverse(Due(_, i)) = self.heap.pop()?;
                self.picks[i] += 1;
                let due = (self.picks[i] + 1) as f64 / self.weights[i];
                self.heap.push(Reverse(Due(due, i)));
                Some(i)
            }
        }
    }

    /// Chooses, in proportion to weight, among the members for which `eligible` holds
    /// (the overflow path when the first choice is full). O(n).
    pub fn pick_where(&mut self, mut eligible: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut candidates: Vec<(usize, f64)> = Vec::new();
        let mut total = 0.0;
        for (i, w) in self.weights.iter().enumerate() {
            if eligible(i) {
                total += w;
                candidates.push((i, total));
            }
        }
        let u = self.rng.random::<f64>() * total;
        candidates
            .iter()
            .find(|(_, upto)| u < *upto)
            .or(candidates.last())
            .map(|(i, _)| *i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_table_is_exact() {
        let weights = [5.0, 3.0, 2.0, 0.5, 1.5, 7.0];
        let t = AliasTable::build(&weights);
        let n = weights.len() as f64;
        let mut mass = vec![0.0; weights.len()];
        for (i, keep) in t.keep.iter().enumerate() {
            let p = *keep as f64 / (1u64 << 32) as f64;
            mass[i] += p / n;
            mass[t.alias[i]] += (1.0 - p) / n;
        }
        let total: f64 = weights.iter().sum();
        for (m, w) in mass.iter().zip(weights) {
            assert!((m - w / total).abs() < 1e-9, "{mass:?}");
        }
        // The column comes from the high half, the choice within it from the low half.
        let single = AliasTable::build(&[1.0]);
        assert_eq!(single.draw(u64::MAX), 0);
    }

    #[test]
    fn random_holds_one_percent_over_a_million_picks() {
        let weights = [5.0, 3.0, 2.0];
        let mut r = Router::new(Routing::Random, 42);
        r.set_weights(&weights);
        let mut counts = [0u64; 3];
        let n = 1_000_000;
        for _ in 0..n {
            counts[r.pick().unwrap()] += 1;
        }
        for (i, w) in weights.iter().enumerate() {
            let expected = w / 10.0 * n as f64;
            let rel = (counts[i] as f64 - expected).abs() / expected;
            assert!(
                rel < 0.01,
                "analyzer {i}: {} vs {expected} ({rel})",
                counts[i]
            );
        }
    }

    #[test]
    fn random_is_reproducible_by_seed() {
        let picks = |seed| {
            let mut r = Router::new(Routing::Random, seed);
            r.set_weights(&[1.0, 1.0, 1.0, 1.0]);
            (0..64).map(|_| r.pick().unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(picks(7), picks(7));
        assert_ne!(picks(7), picks(8));
    }

    #[test]
    fn smooth_is_exact_at_multiples_of_the_period() {
        let mut r = Router::new(Routing::Smooth, 0);
        r.set_weights(&[5.0, 3.0, 2.0]);
        let mut counts = [0u64; 3];
        for n in 1..=100_000u64 {
            counts[r.pick().unwrap()] += 1;
            if n % 10 == 0 {
                assert_eq!(counts, [n / 2, n * 3 / 10, n / 5], "after {n} picks");
            }
            for (i, w) in [0.5, 0.3, 0.2].iter().enumerate() {
                assert!((counts[i] as f64 - w * n as f64).abs() <= 1.0);
            }
        }
    }

    #[test]
    fn smooth_interleaves() {
        let mut r = Router::new(Routing::Smooth, 0);
        r.set_weights(&[5.0, 3.0, 2.0]);
        let seq: Vec<usize> = (0..10).map(|_| r.pick().unwrap()).collect();
        // No member picked twice in a row more often than its weight requires.
        assert_eq!(seq, vec![0, 1, 0, 2, 0, 1, 0, 0, 1, 2]);
    }

    #[test]
    fn pick_where_respects_eligibility_and_weight() {
        let mut r = Router::new(Routing::Random, 1);
        r.set_weights(&[5.0, 3.0, 2.0]);
        let mut counts = [0u64; 3];
        for _ in 0..100_000 {
            counts[r.pick_where(|i| i != 0).unwrap()] += 1;
        }
        assert_eq!(counts[0], 0);
        let ratio = counts[1] as f64 / counts[2] as f64;
        assert!((ratio - 1.5).abs() < 0.05, "{ratio}");
        assert_eq!(r.pick_where(|_| false), None);
    }

    #[test]
    fn empty_router_picks_nothing() {
        let mut r = Router::new(Routing::Smooth, 0);
        assert_eq!(r.pick(), None);
        r.set_weights(&[2.0]);
        assert_eq!(r.pick(), Some(0));
    }
}
