//! Delivery order on one analyzer connection (PROTOCOL.md §3): whenever the distributor
//! takes the next frame for an analyzer it takes the most urgent one, so no frame A is
//! delivered before a more urgent frame B when `queued_ns(B) < dispatch_ns(A)`.
//!
//! [`OrderCheck`] checks a stream of deliveries against that rule as they arrive, in
//! O(log 256) per frame; the analyzer sink and the report both use it.

/// Online check of delivery order on one connection, O(log 256) per frame: a Fenwick tree
/// of the largest `dispatch_ns` delivered so far per priority, indexed from the least
/// urgent level, answers "the latest dispatch of any less urgent frame".
#[derive(Debug, Clone)]
pub struct OrderCheck {
    tree: [u64; 257],
    max_queued: u64,
}

impl Default for OrderCheck {
    fn default() -> Self {
        Self {
            tree: [0; 257],
            max_queued: 0,
        }
    }
}

impl OrderCheck {
    /// The next frame delivered on the connection: (inverted, overtaken).
    pub fn observe(&mut self, priority: u8, queued_ns: u64, dispatch_ns: u64) -> (bool, bool) {
        // Levels less urgent than `priority` are positions 1..=255-priority.
        let mut i = 255 - usize::from(priority);
        let mut latest = 0;
        while i > 0 {
            latest = latest.max(self.tree[i]);
            i &= i - 1;
        }
        let inverted = latest > queued_ns;
        let overtaken = queued_ns < self.max_queued;
        self.max_queued = self.max_queued.max(queued_ns);
        let mut i = 256 - usize::from(priority);
        while i <= 256 {
            self.tree[i] = self.tree[i].max(dispatch_ns);
            i += i & i.wrapping_neg();
        }
        (inverted, overtaken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_check_finds_inversions_and_overtaking() {
        let mut o = OrderCheck::default();
        // (priority, queued, dispatch) in delivery order.
        assert_eq!(o.observe(5, 10, 20), (false, false));
        assert_eq!(
            o.observe(1, 15, 21),
            (true, false),
            "more urgent, queued before 5's dispatch"
        );
        assert_eq!(
            o.observe(1, 30, 31),
            (false, false),
            "queued after every earlier dispatch"
        );
        assert_eq!(
            o.observe(9, 12, 40),
            (false, true),
            "less urgent, overtaken: fine"
        );
        assert_eq!(
            o.observe(0, 35, 41),
            (true, false),
            "9 was dispatched at 40, after 35"
        );
        assert_eq!(o.observe(255, 1, 50), (false, true));
        let mut o = OrderCheck::default();
        assert_eq!(o.observe(0, 5, 6), (false, false));
        assert_eq!(
            o.observe(0, 1, 7),
            (false, true),
            "same priority never inverts"
        );
    }
}
