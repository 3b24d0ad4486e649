//! The open emitter connections, for the two limits that weigh one connection against the
//! others: the bytes of partial frames they buffer (`--max-buffered-bytes`) and how many
//! may be open (`--max-connections`).
//!
//! Each connection keeps its figures in atomics on its own hot path (two per read); the map
//! of connections is locked only to open or close one and to choose whom to close:
//!
//! - **Buffer budget.** Past the budget, connections are closed until the total is back
//!   under it: first those whose partial frame has stalled (nothing received for
//!   [`STALLED_AFTER`]), largest first, then the largest of the others. A connection
//!   waiting on our own backpressure is never chosen: its silence is ours. Closing beats
//!   reading less: a reader that waits for budget cannot tell a stalled attacker from a
//!   slow honest sender, and every waiter would wait on the slowest.
//! - **Idle eviction.** At the connection cap, the connection that received nothing for
//!   longest (at least [`IDLE_EVICT_AFTER`]) is closed to admit the new one.

use crate::accounting::CloseReason;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A partial frame with nothing received for this long counts as stalled.
pub(crate) const STALLED_AFTER: Duration = Duration::from_secs(1);

/// At the connection cap, only a connection idle at least this long is closed for a new one.
pub(crate) const IDLE_EVICT_AFTER: Duration = Duration::from_secs(1);

/// The open emitter connections.
#[derive(Debug)]
pub(crate) struct Conns {
    budget: usize,
    buffered: AtomicUsize,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    epoch: Instant,
}

/// One connection's figures, shared with whoever may close it.
#[derive(Debug)]
struct Conn {
    /// Bytes of its partial frame.
    buffered: AtomicUsize,
    /// When it last received bytes, ms after [`Conns::epoch`].
    last_read_ms: AtomicU64,
    /// Waiting on our own backpressure (not reading through no fault of its own).
    blocked: AtomicBool,
    /// Why it was told to close (a [`CloseReason`] index + 1; 0: not told).
    reason: AtomicU8,
    close: CancellationToken,
}

impl Conns {
    /// The budget of partial frames, bytes.
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    /// No connection yet; partial frames bounded by `budget` bytes in total.
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            buffered: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection.
    pub(crate) fn open(self: &Arc<Self>) -> Slot {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            buffered: AtomicUsize::new(0),
            last_read_ms: AtomicU64::new(self.ms(Instant::now())),
            blocked: AtomicBool::new(false),
            reason: AtomicU8::new(0),
            close: CancellationToken::new(),
        });
        self.lock().insert(id, Arc::clone(&conn));
        Slot {
            conns: Arc::clone(self),
            id,
            conn,
        }
    }

    /// Bytes of partial frames over every connection.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Adds `new - old` to the total.
    fn account(&self, old: usize, new: usize) {
        if new >= old {
            self.buffered.fetch_add(new - old, Ordering::Relaxed);
        } else {
            self.buffered.fetch_sub(old - new, Ordering::Relaxed);
        }
    }

    /// Closes connections, stalled and largest first, until the partial frames fit the
    /// budget again (or no connection may be closed). Returns how many were told to close.
    fn shed(&self, now: Instant) -> usize {
        let now_ms = self.ms(now);
        let stalled_ms = STALLED_AFTER.as_millis() as u64;
        let open = self.lock();
        let mut candidates: Vec<(bool, usize, &Arc<Conn>)> = open
            .values()
            .filter(|c| !c.told() && !c.blocked.load(Ordering::Relaxed))
            .map(|c| {
                let idle = now_ms.saturating_sub(c.last_read_ms.load(Ordering::Relaxed));
                (idle >= stalled_ms, c.buffered.load(Ordering::Relaxed), c)
            })
            .filter(|(_, bytes, _)| *bytes > 0)
            .collect();
        // Stalled before active, then largest first.
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        let mut closed = 0;
        for (_, _, c) in candidates {
            if self.buffered() <= self.budget {
                break;
            }
            c.tell(CloseReason::BufferBudget);
            // Its bytes leave the total now: they are freed as soon as its task sees the
            // token, and counting them until then would close more connections than needed.
            let bytes = c.buffered.swap(0, Ordering::Relaxed);
            self.account(bytes, 0);
            closed += 1;
        }
        closed
    }

    /// At the connection cap: tells the connection that received nothing for longest (at
    /// least `min_idle`) to close. Returns whether one was.
    pub(crate) fn evict_idle(&self, min_idle: Duration) -> bool {
        let now_ms = self.ms(Instant::now());
        let open = self.lock();
        let oldest = open
            .values()
            .filter(|c| !c.told() && !c.blocked.load(Ordering::Relaxed))
            .min_by_key(|c| c.last_read_ms.load(Ordering::Relaxed));
        match oldest {
            Some(c)
                if now_ms.saturating_sub(c.last_read_ms.load(Ordering::Relaxed))
                    >= min_idle.as_millis() as u64 =>
            {
                c.tell(CloseReason::MaxConnections);
                true
            }
            _ => false,
        }
    }
}

impl Conn {
    /// Whether it was told to close: an atomic load, where asking the token takes its lock.
    fn told(&self) -> bool {
        self.reason.load(Ordering::Relaxed) != 0
    }

    fn tell(&self, reason: CloseReason) {
        self.reason.store(reason as u8 + 1, Ordering::Relaxed);
        self.close.cancel();
    }
}

/// A connection's registration; dropping it unregisters the connection.
#[derive(Debug)]
pub(crate) struct Slot {
    conns: Arc<Conns>,
    id: u64,
    conn: Arc<Conn>,
}

impl Slot {
    /// After a read at `now` of `got` bytes (0: none) that left `buffered` bytes of a
    /// partial frame: updates the total and, past the budget, closes connections until it
    /// fits.
    pub(crate) fn read(&self, now: Instant, got: usize, buffered: usize) {
        if got > 0 {
            self.conn
                .last_read_ms
                .store(self.conns.ms(now), Ordering::Relaxed);
        }
        if self.conn.told() {
            return;
        }
        let old = self.conn.buffered.swap(buffered, Ordering::Relaxed);
        self.conns.account(old, buffered);
        if buffered > old && self.conns.buffered() > self.conns.budget {
            self.conns.shed(now);
        }
    }

    /// Marks the connection as waiting on our backpressure (`true`) or not.
    pub(crate) fn blocked(&self, blocked: bool) {
        self.conn.blocked.store(blocked, Ordering::Relaxed);
        if !blocked {
            // Its silence while blocked was ours: idle time starts again now.
            self.conn
                .last_read_ms
                .store(self.conns.ms(Instant::now()), Ordering::Relaxed);
        }
    }

    /// Completes when the connection is told to close; then [`Slot::reason`] says why.
    pub(crate) fn told(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.conn.close.cancelled()
    }

    /// Why the connection was told to close, if it was.
    pub(crate) fn reason(&self) -> Option<CloseReason> {
        match self.conn.reason.load(Ordering::Relaxed) {
            0 => None,
            n => CloseReason::ALL.get(usize::from(n) - 1).copied(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns.lock().remove(&self.id);
        let bytes = self.conn.buffered.swap(0, Ordering::Relaxed);
        self.conns.account(bytes, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_budget_closes_stalled_then_largest_and_frees_their_bytes() {
        let conns = Arc::new(Conns::new(1000));
        let a = conns.open();
        let b = conns.open();
        let c = conns.open();
        a.read(Instant::now(), 400, 400);
        b.read(Instant::now(), 300, 300);
        // `a` has been silent for longer than STALLED_AFTER; `b` and `c` are active.
        a.conn.last_read_ms.store(0, Ordering::Relaxed);
        let later = conns.epoch + STALLED_AFTER * 3;
        b.conn
            .last_read_ms
            .store(conns.ms(later), Ordering::Relaxed);
        c.conn
            .last_read_ms
            .store(conns.ms(later), Ordering::Relaxed);
        assert_eq!(conns.buffered(), 700);
        // `c` grows past the budget: the stalled `a` goes first although `c` is larger.
        let old = c.conn.buffered.swap(500, Ordering::Relaxed);
        conns.account(old, 500);
        assert_eq!(conns.shed(later), 1);
        assert_eq!(a.reason(), Some(CloseReason::BufferBudget));
        assert_eq!((b.reason(), c.reason()), (None, None));
        assert_eq!(conns.buffered(), 800);
        // Still over: the largest of the active ones.
        let old = b.conn.buffered.swap(600, Ordering::Relaxed);
        conns.account(old, 600);
        assert_eq!(conns.shed(later), 1);
        assert_eq!(b.reason(), Some(CloseReason::BufferBudget));
        assert_eq!(conns.buffered(), 500);
        drop((a, b));
        assert_eq!(
            conns.buffered(),
            500,
            "closed slots gave their bytes back once"
        );
        drop(c);
        assert_eq!(conns.buffered(), 0);
    }

    #[test]
    fn blocked_connections_are_never_chosen() {
        let conns = Arc::new(Conns::new(100));
        let a = conns.open();
        a.read(Instant::now(), 90, 90);
        a.blocked(true);
        a.conn.last_read_ms.store(0, Ordering::Relaxed);
        let b = conns.open();
        b.read(Instant::now(), 20, 20);
        assert_eq!(b.reason(), Some(CloseReason::BufferBudget), "a is blocked");
        assert_eq!(a.reason(), None);
        assert!(!conns.evict_idle(Duration::ZERO), "nothing else may go");
    }

    #[test]
    fn idle_eviction_takes_the_longest_idle_past_the_minimum() {
        let conns = Arc::new(Conns::new(100));
        let a = conns.open();
        let b = conns.open();
        assert!(!conns.evict_idle(Duration::from_secs(3600)));
        b.conn.last_read_ms.store(0, Ordering::Relaxed);
        a.conn.last_read_ms.store(5, Ordering::Relaxed);
        assert!(conns.evict_idle(Duration::ZERO));
        assert_eq!(b.reason(), Some(CloseReason::MaxConnections));
        assert!(conns.evict_idle(Duration::ZERO));
        assert_eq!(a.reason(), Some(CloseReason::MaxConnections));
        assert!(!conns.evict_idle(Duration::ZERO), "both already told");
    }
}
