//! How long frames wait in the queues, as a Prometheus histogram per priority class
//! (`distributor_queue_wait_seconds`): the distributor's own view of latency, for alerts and
//! dashboards without the toolkit. A frame's wait is its dispatch stamp less its queue
//! stamp (the two stamps every DELIVER carries).
//!
//! Each analyzer writer counts into a slot of its own ([`WriterWaits`]: two uncontended
//! atomic adds per frame, no cache line shared with another writer, nothing to merge when
//! it goes idle); a reading ([`QueueWaits::read`], at a scrape or a stats row) sums the
//! slots of the live writers and the counts of the ended ones. Merging a writer's counts
//! into shared buckets after every batch cost 8% of saturation throughput; merging them
//! whenever the writer went idle cost a merge per message at fan-in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

/// One writer's counts (aligned so that no other writer's counts share its cache lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot {
    counts: [[AtomicU64; BUCKETS]; 4],
    sum_ns: [AtomicU64; 4],
}

impl Slot {
    fn add(&self, class: usize, wait_ns: u64) {
        self.counts[class][bucket_of(wait_ns)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns[class].fetch_add(wait_ns, Ordering::Relaxed);
    }

    fn add_to(&self, out: &mut WaitCounts) {
        for c in 0..4 {
            for b in 0..BUCKETS {
                out.counts[c][b] += self.counts[c][b].load(Ordering::Relaxed);
            }
            out.sum_ns[c] += self.sum_ns[c].load(Ordering::Relaxed);
        }
    }
}

/// The histograms: the live writers' slots, and what ended writers counted.
#[derive(Debug, Default)]
pub struct QueueWaits {
    live: Mutex<Vec<Arc<Slot>>>,
    ended: Mutex<WaitCounts>,
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
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters stay consistent whatever panicked while they were held.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl QueueWaits {
    /// The counts now: every live writer's and every ended one's.
    pub fn read(&self) -> WaitCounts {
        let mut out = *lock(&self.ended);
        for slot in lock(&self.live).iter() {
            slot.add_to(&mut out);
        }
        out
    }
}

/// A writer's slot of the histogram; when dropped (the session ended) its counts move to
/// the ended writers' total.
#[derive(Debug)]
pub struct WriterWaits<'a> {
    shared: &'a QueueWaits,
    slot: Arc<Slot>,
}

impl<'a> WriterWaits<'a> {
    /// A new writer's slot, nothing counted yet.
    pub fn new(shared: &'a QueueWaits) -> Self {
        let slot = Arc::new(Slot::default());
        lock(&shared.live).push(Arc::clone(&slot));
        Self { shared, slot }
    }

    /// Counts the frames of a batch, given as `(priority, queued_ns)`, dispatched at
    /// `dispatch_ns`.
    pub fn add(&mut self, frames: impl IntoIterator<Item = (u8, u64)>, dispatch_ns: u64) {
        for (priority, queued_ns) in frames {
            self.slot
                .add(class_of(priority), dispatch_ns.saturating_sub(queued_ns));
        }
    }
}

impl Drop for WriterWaits<'_> {
    fn drop(&mut self) {
        // Under the ended total's lock first, so a reading never sees the slot twice or
        // not at all.
        let mut ended = lock(&self.shared.ended);
        let mut live = lock(&self.shared.live);
        self.slot.add_to(&mut ended);
        live.retain(|s| !Arc::ptr_eq(s, &self.slot));
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
        let mut writer = WriterWaits::new(&w);
        assert_eq!(w.read(), WaitCounts::default());
        writer.add(
            [
                frame(0, at - 50_000),           // 50 µs: first bucket
                frame(63, at - 1_000_000),       // exactly 1 ms: the 1 ms bucket (le is inclusive)
                frame(64, at - 3_000_000_000),   // 3 s: the 5 s bucket
                frame(255, at - 11_000_000_000), // 11 s: +Inf
            ],
            at,
        );
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
        // A second writer adds; an ended writer's counts stay.
        let mut other = WriterWaits::new(&w);
        other.add([frame(5, at - 1)], at);
        assert_eq!(w.read().count(0), 3);
        drop(writer);
        assert_eq!(w.read().count(0), 3);
        drop(other);
        assert_eq!(w.read().count(0), 3);
        assert_eq!(w.read().count(1), 1);
        assert_eq!(class_of(128), 2);
        let mut local = WaitCounts::default();
        local.add([frame(200, 0)], 2_000_000_000);
        assert_eq!(local.count(3), 1);
    }
}
