//! The analyzer ids the distributor has seen, with their counters kept across sessions,
//! and the forgetting that keeps ids that come and go from growing the metrics and the
//! stats CSV without bound.

use crate::accounting::AnalyzerStats;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Counters by analyzer id, and the folded counters of the ids forgotten.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    stats: BTreeMap<String, AnalyzerStats>,
    /// Ids without a live session, since when: forgotten after `forget_after`.
    gone_since: HashMap<String, Instant>,
    /// The folded counters of forgotten ids.
    forgotten: AnalyzerStats,
    /// How many ids were forgotten.
    forgotten_ids: u64,
}

impl Ids {
    /// The counters of `id`, made on first use.
    pub(crate) fn stats_of(&mut self, id: &str) -> &mut AnalyzerStats {
        self.stats.entry(id.to_owned()).or_default()
    }

    /// `id` has a live session again.
    pub(crate) fn back(&mut self, id: &str) {
        self.gone_since.remove(id);
    }

    /// `id` has no live session since `now`.
    pub(crate) fn gone(&mut self, id: &str, now: Instant) {
        self.gone_since.insert(id.to_owned(), now);
    }

    /// Folds the counters of ids gone for `after` into one total.
    pub(crate) fn forget(&mut self, now: Instant, after: Duration) {
        let old: Vec<String> = self
            .gone_since
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= after)
            .map(|(id, _)| id.clone())
            .collect();
        for id in old {
            self.gone_since.remove(&id);
            if let Some(a) = self.stats.remove(&id) {
                self.forgotten.fold(&a);
                self.forgotten_ids += 1;
            }
        }
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
