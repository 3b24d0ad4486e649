//! Frames that wait on disk instead of memory: with a data directory, a frame that finds
//! no room (every queue for its priority full, `--max-queued-bytes` reached, or no analyzer
//! live) keeps only its place in the journal here, 8 bytes, and is read back when room
//! frees, most urgent level first, oldest first within a level. Frames recovered at start
//! wait here too.

use crate::journal::Loc;
use std::collections::{BTreeMap, VecDeque};

/// The places of the frames waiting on disk, by priority.
#[derive(Debug, Default)]
pub(crate) struct DiskQueue {
    levels: BTreeMap<u8, VecDeque<Loc>>,
    /// Taken out to be read back, per priority; they still count as waiting until placed.
    loading: BTreeMap<u8, usize>,
    len: usize,
    /// Frames that ever waited here for lack of room (recovered ones not counted).
    total: u64,
}

impl DiskQueue {
    /// Frames waiting on disk, those being read back included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no frame waits on disk.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frames that ever waited here for lack of room (recovered frames not included).
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Whether frames of `priority` wait on disk: a new frame of that priority must then
    /// wait behind them.
    pub(crate) fn has(&self, priority: u8) -> bool {
        self.levels.contains_key(&priority) || self.loading.contains_key(&priority)
    }

    /// A frame without room waits behind the others of its priority.
    pub(crate) fn push(&mut self, priority: u8, at: Loc) {
        self.levels.entry(priority).or_default().push_back(at);
        self.len += 1;
        self.total += 1;
    }

    /// A frame recovered at start.
    pub(crate) fn recovered(&mut self, priority: u8, at: Loc) {
        self.levels.entry(priority).or_default().push_back(at);
        self.len += 1;
    }

    /// A frame read back that found no room after all goes back in front.
    pub(crate) fn put_back(&mut self, priority: u8, at: Loc) {
        self.levels.entry(priority).or_default().push_front(at);
        self.len += 1;
    }

    /// The priorities with frames on disk, most urgent first.
    pub(crate) fn priorities(&self) -> Vec<u8> {
        self.levels.keys().copied().collect()
    }

    /// Takes up to `n` frames of `priority` from the front, stopping at the first one at or
    /// past `written` (its record is not in the file yet). They count as loading until
    /// [`DiskQueue::loaded`].
    pub(crate) fn take(&mut self, priority: u8, n: usize, written: Loc) -> Vec<Loc> {
        let Some(level) = self.levels.get_mut(&priority) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while out.len() < n {
            match level.front() {
                Some(&at) if at < written => {
                    level.pop_front();
                    out.push(at);
                }
                _ => break,
            }
        }
        if level.is_empty() {
            self.levels.remove(&priority);
        }
        if !out.is_empty() {
            *self.loading.entry(priority).or_default() += out.len();
        }
        out
    }

    /// Takes out every place at or past `from`: the priorities of those frames.
    pub(crate) fn take_from(&mut self, from: Loc) -> Vec<u8> {
        let mut out = Vec::new();
        for (p, level) in &mut self.levels {
            let before = level.len();
            level.retain(|at| *at < from);
            out.extend(std::iter::repeat_n(*p, before - level.len()));
        }
        self.levels.retain(|_, l| !l.is_empty());
        self.len -= out.len().min(self.len);
        out
    }

    /// `n` frames of `priority` taken by [`DiskQueue::take`] are handled (placed, put back or
    /// dropped).
    pub(crate) fn loaded(&mut self, priority: u8, n: usize) {
        if let Some(l) = self.loading.get_mut(&priority) {
            *l -= n.min(*l);
            if *l == 0 {
                self.loading.remove(&priority);
            }
        }
        self.len -= n.min(self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::loc;

    #[test]
    fn levels_come_back_in_order_and_unwritten_records_wait() {
        let mut s = DiskQueue::default();
        for i in 0..4 {
            s.push(5, loc(1, 8 + i * 10));
        }
        s.push(0, loc(1, 100));
        assert_eq!(s.priorities(), [0, 5]);
        assert!(s.has(5) && !s.has(1));
        let got = s.take(5, 10, loc(1, 28));
        assert_eq!(
            got,
            [loc(1, 8), loc(1, 18)],
            "stops at the first unwritten record"
        );
        assert_eq!(s.len(), 5, "loading frames still count");
        s.put_back(5, got[1]);
        s.loaded(5, 2);
        assert_eq!(s.len(), 4);
        assert_eq!(s.take(5, 1, Loc::MAX), [loc(1, 18)]);
        s.loaded(5, 1);
        assert_eq!(s.total(), 5);
        assert_eq!(s.len(), 3);
        assert!(!s.has(1) && s.has(0));
    }
}
