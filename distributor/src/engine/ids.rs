//! The analyzer ids the distributor has seen, with their counters kept across sessions,
//! and the forgetting that keeps ids that come and go from growing memory, `/metrics` and
//! the stats CSV without bound.
//!
//! An id without a live session is *remembered* (its series stay, so a restarting analyzer
//! keeps its counts) until `--forget-after` has passed or more than `--max-remembered-ids`
//! are remembered; then the least recently seen are folded into one total at once. Live
//! ids are bounded by `--max-analyzers`, so the per-id series number at most
//! `max-analyzers + max-remembered-ids`, whatever the churn.

use crate::accounting::AnalyzerStats;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Counters by analyzer id, and the folded counters of the ids forgotten.
#[derive(Debug)]
pub(crate) struct Ids {
    stats: BTreeMap<String, AnalyzerStats>,
    /// Ids without a live session: since when, and the number of their entry in `gone`.
    gone_since: HashMap<String, (Instant, u64)>,
    /// The same ids, least recently seen first, by entry number; entries of ids that came
    /// back since (their number no longer the one in `gone_since`) are skipped.
    gone: VecDeque<(u64, String)>,
    next: u64,
    /// Remembered ids at most.
    cap: usize,
    /// The folded counters of forgotten ids.
    forgotten: AnalyzerStats,
    /// How many ids were forgotten.
    forgotten_ids: u64,
}

impl Ids {
    /// No id yet; at most `cap` remembered without a session.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            stats: BTreeMap::new(),
            gone_since: HashMap::new(),
            gone: VecDeque::new(),
            next: 0,
            cap,
            forgotten: AnalyzerStats::default(),
            forgotten_ids: 0,
        }
    }

    /// The counters of `id`, made on first use.
    pub(crate) fn stats_of(&mut self, id: &str) -> &mut AnalyzerStats {
        self.stats.entry(id.to_owned()).or_default()
    }

    /// `id` has a live session again.
    pub(crate) fn back(&mut self, id: &str) {
        self.gone_since.remove(id);
    }

    /// `id` has no live session since `now`; past the cap, the least recently seen ids
    /// are forgotten at once.
    pub(crate) fn gone(&mut self, id: &str, now: Instant) {
        let n = self.next;
        self.next += 1;
        self.gone_since.insert(id.to_owned(), (now, n));
        self.gone.push_back((n, id.to_owned()));
        while self.gone_since.len() > self.cap {
            if !self.forget_oldest() {
                break;
            }
        }
        // Entries of ids that came back pile up only as fast as sessions start.
        if self.gone.len() > 2 * self.gone_since.len() + 64 {
            let live = &self.gone_since;
            self.gone
                .retain(|(n, id)| live.get(id).is_some_and(|(_, m)| m == n));
        }
    }

    /// Folds the counters of ids gone for `after` into one total.
    pub(crate) fn forget(&mut self, now: Instant, after: Duration) {
        while let Some((n, id)) = self.gone.front() {
            match self.gone_since.get(id) {
                Some((since, m)) if m == n => {
                    if now.saturating_duration_since(*since) < after {
                        return;
                    }
                    self.forget_oldest();
                }
                // Came back since: not gone any more (or gone again, later in the line).
                _ => {
                    self.gone.pop_front();
                }
            }
        }
    }

    /// Forgets the least recently seen id without a session; false when there is none.
    fn forget_oldest(&mut self) -> bool {
        while let Some((n, id)) = self.gone.pop_front() {
            if self.gone_since.get(&id).is_none_or(|(_, m)| *m != n) {
                continue;
            }
            self.gone_since.remove(&id);
            if let Some(a) = self.stats.remove(&id) {
                self.forgotten.fold(&a);
                self.forgotten_ids += 1;
            }
            return true;
        }
        false
    }

    /// Every id's counters, by id.
    pub(crate) fn all(&self) -> &BTreeMap<String, AnalyzerStats> {
        &self.stats
    }

    /// The forgotten ids' counters folded together, and how many ids they were.
    pub(crate) fn forgotten(&self) -> (&AnalyzerStats, u64) {
        (&self.forgotten, self.forgotten_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_the_least_recently_seen_go_first() {
        let t0 = Instant::now();
        let mut ids = Ids::new(2);
        for id in ["a", "b", "c"] {
            ids.stats_of(id).routed = 1;
        }
        ids.gone("a", t0);
        ids.gone("b", t0);
        ids.back("a");
        ids.gone("a", t0);
        ids.gone("c", t0);
        // Remembered: b (gone first), a (gone again later), c; one too many: b goes.
        assert!(!ids.all().contains_key("b"));
        assert!(ids.all().contains_key("a") && ids.all().contains_key("c"));
        assert_eq!(
            ids.forgotten(),
            (
                &AnalyzerStats {
                    routed: 1,
                    ..Default::default()
                },
                1
            )
        );
    }

    #[test]
    fn churn_keeps_memory_bounded() {
        let t0 = Instant::now();
        let mut ids = Ids::new(100);
        for i in 0..100_000u32 {
            let id = format!("x{i}");
            ids.stats_of(&id).written = 1;
            ids.gone(&id, t0);
        }
        assert_eq!(ids.all().len(), 100);
        assert!(ids.gone.len() <= 2 * 100 + 64);
        assert_eq!(ids.forgotten().1, 99_900);
        assert_eq!(ids.forgotten().0.written, 99_900);
    }

    #[test]
    fn ids_gone_long_enough_are_forgotten_in_order() {
        let t0 = Instant::now();
        let mut ids = Ids::new(10);
        for (i, id) in ["a", "b"].iter().enumerate() {
            ids.stats_of(id);
            ids.gone(id, t0 + Duration::from_secs(i as u64));
        }
        ids.forget(t0 + Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(ids.all().keys().collect::<Vec<_>>(), ["b"]);
        ids.forget(t0 + Duration::from_secs(61), Duration::from_secs(60));
        assert!(ids.all().is_empty());
    }
}
