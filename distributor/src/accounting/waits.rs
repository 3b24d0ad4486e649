//! How long frames wait in the queues, as a Prometheus histogram per priority class
//! (`distributor_queue_wait_seconds`): the distributor's own view of latency, for alerts and
//! dashboards without the toolkit. A frame's wait is its dispatch stamp less its queue
//! stamp (the two stamps every DELIVER carries).
//!
//! Writers count waits into a table of their own ([`WaitCounts::add`], no atomics) and
//! merge it into the shared histogram ([`QueueWaits::merge`], one atomic add per touched
//! bucket) at most every [`MERGE_EVERY`], and before they go idle: at saturation the
//! shared counters are touched ten times a second per writer, not per batch.

use std::sync::atomic::{AtomicU64, Ordering};

/// The priority classes, each a label value `lo-hi`: four quarters of the 256 levels.
pub const CLASSES: [(u8, u8); 4] = [(0, 63), (64, 127), (128, 191), (192, 255)];

/// Upper bounds of the buckets, seconds (a last bucket, +Inf, follows): 100 µs to 10 s.
pub const BOUNDS_S: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The same bounds in ns, for the hot path (integer compares, no division).
const BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Buckets per class, +Inf included.
pub const BUCKETS: usize = BOUNDS_S.len() + 1;

/// The class of a priority.
pub fn class_of(priority: u8) -> usize {
    usize::from(priority / 64)
}

/// The label value of class `c`.
pub fn class_label(c: usize) -> String {
    let (lo, hi) = CLASSES[c];
    format!("{lo}-{hi}")
}

/// The bucket of a wait in ns.
fn bucket_of(wait_ns: u64) -> usize {
    BOUNDS_NS.partition_point(|b| *b < wait_ns)
}

/// How often a busy writer merges its counts into the shared histogram.
pub const MERGE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The histograms, shared by every writer (aligned so that no other hot field shares
/// their cache lines).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct QueueWaits {
    counts: [[AtomicU64; BUCKETS]; 4],
    sum_ns: [AtomicU64; 4],
}

/// A reading of [`QueueWaits`]: per class, the count of each bucket (not cumulative) and
/// the sum of waits in ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitCounts {
    /// Per class, per bucket.
    pub counts: [[u64; BUCKETS]; 4],
    /// Per class, the sum of waits, ns.
    pub sum_ns: [u64; 4],
}

impl WaitCounts {
    /// Observations of class `c`.
    pub fn count(&self, c: usize) -> u64 {
        self.counts[c].iter().sum()
    }

    /// Counts the waits of frames given as `(priority, queued_ns)`, dispatched at
    /// `dispatch_ns`.
    pub fn add(&mut self, frames: impl IntoIterator<Item = (u8, u64)>, dispatch_ns: u64) {
        for (priority, queued_ns) in frames {
            let c = class_of(priority);
            let wait = dispatch_ns.saturating_sub(queued_ns);
            self.counts[c][bucket_of(wait)] += 1;
            self.sum_ns[c] += wait;
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.sum_ns.iter().all(|s| *s == 0) && self.counts.iter().flatten().all(|n| *n == 0)
    }
}

impl QueueWaits {
    /// Adds a writer's counts (and leaves them to it to reset).
    pub fn merge(&self, local: &WaitCounts) {
        for c in 0..4 {
            for (b, n) in local.counts[c].iter().enumerate() {
                if *n > 0 {
                    self.counts[c][b].fetch_add(*n, Ordering::Relaxed);
                }
            }
            if local.sum_ns[c] > 0 {
                self.sum_ns[c].fetch_add(local.sum_ns[c], Ordering::Relaxed);
            }
        }
    }

    /// The counts now.
    pub fn read(&self) -> WaitCounts {
        let mut out = WaitCounts::default();
        for c in 0..4 {
            for b in 0..BUCKETS {
                out.counts[c][b] = self.counts[c][b].load(Ordering::Relaxed);
            }
            out.sum_ns[c] = self.sum_ns[c].load(Ordering::Relaxed);
        }
        out
    }
}

/// A writer's share of the histogram: counts locally, merges into `shared` at most every
/// [`MERGE_EVERY`], when asked ([`WriterWaits::flush`], before going idle), and when
/// dropped (the session ended).
#[derive(Debug)]
pub struct WriterWaits<'a> {
    shared: &'a QueueWaits,
    local: WaitCounts,
    merged: std::time::Instant,
}

impl<'a> WriterWaits<'a> {
    /// Nothing counted yet.
    pub fn new(shared: &'a QueueWaits) -> Self {
        Self {
            shared,
            local: WaitCounts::default(),
            merged: std::time::Instant::now(),
        }
    }

    /// Counts a batch dispatched at `dispatch_ns`; at `now` (the writer's clock reading of
    /// the same moment), merges when the last merge is [`MERGE_EVERY`] old.
    pub fn add(
        &mut self,
        frames: impl IntoIterator<Item = (u8, u64)>,
        dispatch_ns: u64,
        now: std::time::Instant,
    ) {
        self.local.add(frames, dispatch_ns);
        if now.saturating_duration_since(self.merged) >= MERGE_EVERY {
            self.merge(now);
        }
    }

    /// Merges what was counted since the last merge (before the writer goes idle).
    pub fn flush(&mut self) {
        self.merge(std::time::Instant::now());
    }

    fn merge(&mut self, now: std::time::Instant) {
        if !self.local.is_empty() {
            self.shared.merge(&self.local);
            self.local = WaitCounts::default();
        }
        self.merged = now;
    }
}

impl Drop for WriterWaits<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(priority: u8, queued_ns: u64) -> (u8, u64) {
        (priority, queued_ns)
    }

    #[test]
    fn waits_land_in_their_class_and_bucket() {
        let w = QueueWaits::default();
        let at = 20_000_000_000;
        let mut local = WaitCounts::default();
        assert!(local.is_empty());
        local.add(
            [
                frame(0, at - 50_000),           // 50 µs: first bucket
                frame(63, at - 1_000_000),       // exactly 1 ms: the 1 ms bucket (le is inclusive)
                frame(64, at - 3_000_000_000),   // 3 s: the 5 s bucket
                frame(255, at - 11_000_000_000), // 11 s: +Inf
            ],
            at,
        );
        assert!(!local.is_empty());
        w.merge(&local);
        let r = w.read();
        assert_eq!(r.counts[0][0], 1);
        assert_eq!(r.counts[0][3], 1);
        assert_eq!(r.count(0), 2);
        assert_eq!(r.counts[1][14], 1);
        assert_eq!(r.counts[3][BUCKETS - 1], 1);
        assert_eq!(r.sum_ns[0], 1_050_000);
        assert_eq!(r.count(2), 0);
        assert_eq!(class_label(3), "192-255");
        for (ns, s) in BOUNDS_NS.iter().zip(BOUNDS_S) {
            assert_eq!(*ns as f64 / 1e9, s);
        }
        // Merging adds.
        w.merge(&local);
        assert_eq!(w.read().count(0), 4);
        // A writer's counts reach the histogram by the time it is dropped.
        let shared = QueueWaits::default();
        {
            let mut writer = WriterWaits::new(&shared);
            writer.add([frame(5, at - 1)], at, std::time::Instant::now());
        }
        assert_eq!(shared.read().count(0), 1);
        assert_eq!(class_of(128), 2);
    }
}
