//! The 256 strict-priority FIFO queues of one analyzer.
//!
//! A 256-bit occupancy bitmap finds the most urgent non-empty level in O(1) (four words,
//! one `trailing_zeros`), so a writer never scans empty levels.

use crate::engine::frame::{Frame, compact_front};
use std::collections::VecDeque;

/// 256 bounded FIFO queues, one per priority level.
#[derive(Debug)]
pub struct PriorityQueues {
    levels: Vec<VecDeque<Frame>>,
    /// Per level, how many frames at the front own their bytes (see [`crate::engine::frame::compact`]).
    owned: Vec<usize>,
    occupied: [u64; 4],
    capacity: usize,
    len: usize,
}

impl PriorityQueues {
    /// Queues holding at most `capacity` frames per priority level.
    pub fn new(capacity: usize) -> Self {
        Self {
            levels: (0..256).map(|_| VecDeque::new()).collect(),
            owned: vec![0; 256],
            occupied: [0; 4],
            capacity,
            len: 0,
        }
    }

    /// Whether the level of `priority` has room for one more frame.
    pub fn has_room(&self, priority: u8) -> bool {
        self.levels[priority as usize].len() < self.capacity
    }

    /// How many more frames the level of `priority` takes.
    pub fn room(&self, priority: u8) -> usize {
        self.capacity
            .saturating_sub(self.levels[priority as usize].len())
    }

    /// Appends `frame` to its level; gives it back when that level is full.
    pub fn push(&mut self, frame: Frame) -> Result<(), Frame> {
        let p = frame.priority as usize;
        if self.levels[p].len() >= self.capacity {
            return Err(frame);
        }
        self.levels[p].push_back(frame);
        self.occupied[p / 64] |= 1 << (p % 64);
        self.len += 1;
        Ok(())
    }

    /// Takes the oldest frame of the most urgent non-empty level.
    pub fn pop(&mut self) -> Option<Frame> {
        let word = self.occupied.iter().position(|w| *w != 0)?;
        let p = word * 64 + self.occupied[word].trailing_zeros() as usize;
        let level = &mut self.levels[p];
        let frame = level.pop_front();
        self.owned[p] = self.owned[p].saturating_sub(1);
        if level.is_empty() {
            self.occupied[word] &= !(1 << (p % 64));
        }
        self.len -= usize::from(frame.is_some());
        frame
    }

    /// Gives every frame queued before `cutoff` (ns) its own allocation, oldest first;
    /// each frame is copied at most once.
    pub fn compact_waiting(&mut self, cutoff: u64) {
        for (word, bits) in self.occupied.iter().enumerate() {
            let mut bits = *bits;
            while bits != 0 {
                let p = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                compact_front(&mut self.levels[p], &mut self.owned[p], cutoff);
            }
        }
    }

    /// Every queued frame, most urgent level first (for inspection).
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = &Frame> {
        self.levels.iter().flatten()
    }

    /// The non-empty levels with their lengths, most urgent first.
    pub fn levels(&self) -> impl Iterator<Item = (u8, usize)> + '_ {
        self.occupied
            .iter()
            .enumerate()
            .flat_map(move |(word, bits)| {
                let mut bits = *bits;
                std::iter::from_fn(move || {
                    if bits == 0 {
                        return None;
                    }
                    let p = word * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    Some((p as u8, self.levels[p].len()))
                })
            })
    }

    /// Frames queued over all levels.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether every level is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(priority: u8, tag: u8) -> Frame {
        Frame {
            payload: Bytes::from(vec![tag]),
            priority,
            queued_ns: 0,
            ticket: None,
            mark: None,
        }
    }

    #[test]
    fn strict_priority_then_fifo() {
        let mut q = PriorityQueues::new(10);
        for (p, tag) in [(200, 1), (3, 2), (255, 3), (3, 4), (0, 5), (64, 6), (63, 7)] {
            q.push(frame(p, tag)).unwrap();
        }
        assert_eq!(q.len(), 7);
        let order: Vec<(u8, u8)> = std::iter::from_fn(|| q.pop())
            .map(|f| (f.priority, f.payload[0]))
            .collect();
        assert_eq!(
            order,
            [(0, 5), (3, 2), (3, 4), (63, 7), (64, 6), (200, 1), (255, 3)]
        );
        assert!(q.is_empty());
        assert!(q.pop().is_none());
    }

    #[test]
    fn bounded_per_level() {
        let mut q = PriorityQueues::new(2);
        q.push(frame(9, 1)).unwrap();
        q.push(frame(9, 2)).unwrap();
        assert!(!q.has_room(9));
        assert!(q.has_room(10));
        assert_eq!(q.push(frame(9, 3)).unwrap_err().payload[0], 3);
        q.push(frame(10, 4)).unwrap();
        assert_eq!(q.pop().unwrap().payload[0], 1);
        assert!(q.has_room(9));
    }
}
