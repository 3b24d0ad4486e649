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
//! - **Frame timeout.** A periodic sweep ([`Conns::sweep`]) closes the connections whose
//!   partial frame began longer than `--frame-timeout` ago (`slow_frame`); our own
//!   backpressure waits do not count. No connection keeps a timer of its own.
//!
//! Telling a connection to close, and telling every one that the distributor stops, is an
//! atomic store and a wake of its task ([`AtomicWaker`]): a connection looks at its signal
//! on every wake-up without taking a lock.

use crate::accounting::CloseReason;
use atomic_waker::AtomicWaker;
use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

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
    /// The distributor stops: every connection opened from now on is told so at once.
    stopping: AtomicBool,
    /// Networks of known emitters (`--known-emitter`).
    known: Vec<crate::config::Network>,
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
    /// From a known emitter network: never closed to make room for another.
    known: bool,
    /// Why it was told to close (a [`CloseReason`] index + 1; 0: not told).
    reason: AtomicU8,
    /// The distributor stops.
    stopping: AtomicBool,
    /// When its partial frame began (ms after [`Conns::epoch`], pushed back by our own
    /// backpressure waits); [`NO_PARTIAL`] without one.
    partial_since_ms: AtomicU64,
    /// The connection's task, woken when it is told to close or the distributor stops.
    waker: AtomicWaker,
}

/// `partial_since_ms` of a connection without a partial frame.
const NO_PARTIAL: u64 = u64::MAX;

/// What a connection is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Close, for this reason.
    Close(CloseReason),
    /// The distributor stops: begin the shutdown grace.
    Stop,
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
            stopping: AtomicBool::new(false),
            known: Vec::new(),
        }
    }

    /// The same, with the networks of known emitters.
    pub(crate) fn with_known(self, known: Vec<crate::config::Network>) -> Self {
        Self { known, ..self }
    }

    /// Whether `ip` is in a known emitter network.
    pub(crate) fn is_known(&self, ip: std::net::IpAddr) -> bool {
        self.known.iter().any(|n| n.contains(ip))
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection from `peer`.
    pub(crate) fn open_from(self: &Arc<Self>, peer: Option<std::net::IpAddr>) -> Slot {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            buffered: AtomicUsize::new(0),
            last_read_ms: AtomicU64::new(self.ms(Instant::now())),
            blocked: AtomicBool::new(false),
            known: peer.is_some_and(|ip| self.is_known(ip)),
            reason: AtomicU8::new(0),
            stopping: AtomicBool::new(false),
            partial_since_ms: AtomicU64::new(NO_PARTIAL),
            waker: AtomicWaker::new(),
        });
        {
            // Under the map's lock, so that a stop either finds it or is seen here.
            let mut open = self.lock();
            if self.stopping.load(Ordering::Relaxed) {
                conn.stopping.store(true, Ordering::Relaxed);
            }
            open.insert(id, Arc::clone(&conn));
        }
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

    /// Tells every connection, and every one opened from now on, that the distributor
    /// stops.
    pub(crate) fn stop_all(&self) {
        let open = self.lock();
        self.stopping.store(true, Ordering::Relaxed);
        for c in open.values() {
            c.stopping.store(true, Ordering::Release);
            c.waker.wake();
        }
    }

    /// Tells the connections whose partial frame began `timeout` or longer before `now`
    /// (not counting our own backpressure waits) to close (`slow_frame`). Returns how many.
    pub(crate) fn sweep(&self, now: Instant, timeout: Duration) -> usize {
        let now_ms = self.ms(now);
        let timeout_ms = timeout.as_millis() as u64;
        let open = self.lock();
        let mut closed = 0;
        for c in open.values() {
            let since = c.partial_since_ms.load(Ordering::Relaxed);
            if since != NO_PARTIAL
                && now_ms.saturating_sub(since) >= timeout_ms
                && !c.told()
                && !c.blocked.load(Ordering::Relaxed)
            {
                c.tell(CloseReason::SlowFrame);
                closed += 1;
            }
        }
        closed
    }

    /// At the connection cap, for a connection from a known network: tells the newest
    /// connection from elsewhere to close, busy or not. Returns whether one was.
    pub(crate) fn evict_newest_unknown(&self) -> bool {
        let open = self.lock();
        let newest = open
            .iter()
            .filter(|(_, c)| !c.known && !c.told())
            .max_by_key(|(id, _)| **id);
        match newest {
            Some((_, c)) => {
                c.tell(CloseReason::MaxConnections);
                true
            }
            None => false,
        }
    }

    /// At the connection cap: tells the connection that received nothing for longest (at
    /// least `min_idle`) to close; one from a known network only for another `known`.
    /// Returns whether one was.
    pub(crate) fn evict_idle(&self, min_idle: Duration, known: bool) -> bool {
        let now_ms = self.ms(Instant::now());
        let open = self.lock();
        let oldest = open
            .values()
            .filter(|c| !c.told() && !c.blocked.load(Ordering::Relaxed) && (known || !c.known))
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
        self.reason.store(reason as u8 + 1, Ordering::Release);
        self.waker.wake();
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
    /// partial frame (`new_partial`: one that began in this read): updates the total and,
    /// past the budget, closes connections until it fits.
    pub(crate) fn read(&self, now: Instant, got: usize, buffered: usize, new_partial: bool) {
        let now_ms = self.conns.ms(now);
        if got > 0 {
            self.conn.last_read_ms.store(now_ms, Ordering::Relaxed);
        }
        let since = &self.conn.partial_since_ms;
        if buffered == 0 {
            since.store(NO_PARTIAL, Ordering::Relaxed);
        } else if new_partial || since.load(Ordering::Relaxed) == NO_PARTIAL {
            since.store(now_ms, Ordering::Relaxed);
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

    /// Marks the connection as waiting on our backpressure (`true`) or not; `waited` is
    /// how long the wait took, which does not count against its frame timeout.
    pub(crate) fn blocked(&self, blocked: bool, waited: Duration) {
        self.conn.blocked.store(blocked, Ordering::Relaxed);
        if !blocked {
            // Its silence while blocked was ours: idle time starts again now.
            self.conn
                .last_read_ms
                .store(self.conns.ms(Instant::now()), Ordering::Relaxed);
            let since = &self.conn.partial_since_ms;
            let s = since.load(Ordering::Relaxed);
            if s != NO_PARTIAL {
                since.store(s + waited.as_millis() as u64, Ordering::Relaxed);
            }
        }
    }

    /// What the connection is told, as soon as it is: to close (any time), or that the
    /// distributor stops (only while `stop` is wanted). Lock-free: an atomic load, and the
    /// task's waker registered when nothing was said yet.
    pub(crate) async fn signal(&self, stop: bool) -> Signal {
        poll_fn(|cx| {
            let look = || match self.reason() {
                Some(r) => Some(Signal::Close(r)),
                None if stop && self.conn.stopping.load(Ordering::Acquire) => Some(Signal::Stop),
                None => None,
            };
            if let Some(s) = look() {
                return Poll::Ready(s);
            }
            self.conn.waker.register(cx.waker());
            match look() {
                Some(s) => Poll::Ready(s),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Why the connection was told to close, if it was.
    pub(crate) fn reason(&self) -> Option<CloseReason> {
        match self.conn.reason.load(Ordering::Acquire) {
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
        let a = conns.open_from(None);
        let b = conns.open_from(None);
        let c = conns.open_from(None);
        a.read(Instant::now(), 400, 400, true);
        b.read(Instant::now(), 300, 300, true);
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
    fn a_known_network_takes_the_place_of_the_newest_unknown_connection() {
        let known: crate::config::Network = "127.0.0.2/32".parse().unwrap();
        let conns = Arc::new(Conns::new(100).with_known(vec![known]));
        let ip = |s: &str| Some(s.parse().unwrap());
        let old = conns.open_from(ip("127.0.0.1"));
        let friend = conns.open_from(ip("127.0.0.2"));
        let newest = conns.open_from(ip("10.1.1.1"));
        assert!(conns.is_known("127.0.0.2".parse().unwrap()));
        assert!(
            conns.is_known("::ffff:127.0.0.2".parse().unwrap()),
            "mapped IPv4"
        );
        assert!(conns.evict_newest_unknown());
        assert_eq!(newest.reason(), Some(CloseReason::MaxConnections));
        assert!(conns.evict_newest_unknown());
        assert_eq!(old.reason(), Some(CloseReason::MaxConnections));
        assert!(!conns.evict_newest_unknown(), "a known one is never taken");
        assert!(
            !conns.evict_idle(Duration::ZERO, false),
            "nor closed, idle, for an unknown one"
        );
        assert_eq!(friend.reason(), None);
        assert!(conns.evict_idle(Duration::ZERO, true));
        assert_eq!(friend.reason(), Some(CloseReason::MaxConnections));
    }

    #[test]
    fn blocked_connections_are_never_chosen() {
        let conns = Arc::new(Conns::new(100));
        let a = conns.open_from(None);
        a.read(Instant::now(), 90, 90, true);
        a.blocked(true, Duration::ZERO);
        a.conn.last_read_ms.store(0, Ordering::Relaxed);
        let b = conns.open_from(None);
        b.read(Instant::now(), 20, 20, true);
        assert_eq!(b.reason(), Some(CloseReason::BufferBudget), "a is blocked");
        assert_eq!(a.reason(), None);
        assert!(
            !conns.evict_idle(Duration::ZERO, false),
            "nothing else may go"
        );
    }

    #[test]
    fn idle_eviction_takes_the_longest_idle_past_the_minimum() {
        let conns = Arc::new(Conns::new(100));
        let a = conns.open_from(None);
        let b = conns.open_from(None);
        assert!(!conns.evict_idle(Duration::from_secs(3600), false));
        b.conn.last_read_ms.store(0, Ordering::Relaxed);
        a.conn.last_read_ms.store(5, Ordering::Relaxed);
        assert!(conns.evict_idle(Duration::ZERO, false));
        assert_eq!(b.reason(), Some(CloseReason::MaxConnections));
        assert!(conns.evict_idle(Duration::ZERO, false));
        assert_eq!(a.reason(), Some(CloseReason::MaxConnections));
        assert!(
            !conns.evict_idle(Duration::ZERO, false),
            "both already told"
        );
    }

    #[test]
    fn the_sweep_closes_old_partial_frames_but_not_our_own_waits() {
        let conns = Arc::new(Conns::new(1 << 20));
        let t0 = conns.epoch;
        let (slow, blocked, whole) = (
            conns.open_from(None),
            conns.open_from(None),
            conns.open_from(None),
        );
        slow.read(t0, 10, 10, true);
        blocked.read(t0, 10, 10, true);
        blocked.blocked(true, Duration::ZERO);
        whole.read(t0, 10, 0, false);
        let timeout = Duration::from_millis(500);
        assert_eq!(conns.sweep(t0 + Duration::from_millis(499), timeout), 0);
        assert_eq!(conns.sweep(t0 + timeout, timeout), 1);
        assert_eq!(slow.reason(), Some(CloseReason::SlowFrame));
        assert_eq!((blocked.reason(), whole.reason()), (None, None));
        // A wait of ours of 400 ms pushes its deadline back by as much.
        blocked.blocked(false, Duration::from_millis(400));
        assert_eq!(conns.sweep(t0 + Duration::from_millis(899), timeout), 0);
        assert_eq!(conns.sweep(t0 + Duration::from_millis(900), timeout), 1);
        assert_eq!(blocked.reason(), Some(CloseReason::SlowFrame));
    }

    #[tokio::test]
    async fn a_stop_reaches_connections_opened_before_and_after() {
        let conns = Arc::new(Conns::new(100));
        let before = conns.open_from(None);
        conns.stop_all();
        let after = conns.open_from(None);
        for s in [&before, &after] {
            let got = tokio::time::timeout(Duration::from_secs(1), s.signal(true)).await;
            assert_eq!(got.unwrap(), Signal::Stop);
        }
        // Not wanted (the grace began already): only a close is said.
        let waiting = tokio::time::timeout(Duration::from_millis(50), before.signal(false)).await;
        assert!(waiting.is_err());
        before.conn.tell(CloseReason::MaxConnections);
        assert_eq!(
            before.signal(false).await,
            Signal::Close(CloseReason::MaxConnections)
        );
    }
}
