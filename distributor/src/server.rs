//! The I/O around [`Core`]: accept loops, emitter connections, analyzer sessions, the
//! metrics endpoint, the stats CSV, the periodic tick and the shutdown drain.

mod analyzer;
mod conns;
mod emitter;
mod http;
mod nofile;

use crate::access::Access;
use crate::config::Config;
use crate::core::{Core, Now};
use crate::journal::Journal;
use crate::stats::{DropReason, Listener, Snapshot};
use runfolder::TableWriter;
use runfolder::rows::Stats;
use runner::net::Stream;
use runner::tls::ServerFiles;
use runner::tls::TlsAcceptor;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The bound sockets the distributor serves; tests bind them on port 0.
#[derive(Debug)]
pub struct Listeners {
    /// Emitter port.
    pub emitter: TcpListener,
    /// Analyzer port.
    pub analyzer: TcpListener,
    /// Metrics endpoint, when wanted.
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of `config`.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let emitter = listen(config.emitter_listen)
            .with_context(|| format!("cannot listen for emitters on {}", config.emitter_listen))?;
        let analyzer = listen(config.analyzer_listen).with_context(|| {
            format!("cannot listen for analyzers on {}", config.analyzer_listen)
        })?;
        let metrics = match config.metrics_listen {
            Some(addr) => {
                Some(listen(addr).with_context(|| format!("cannot listen for metrics on {addr}"))?)
            }
            None => None,
        };
        Ok(Self {
            emitter,
            analyzer,
            metrics,
        })
    }
}

/// Connections the kernel may hold for the accept loop (it caps this at
/// `net.core.somaxconn`). A fleet of emitters reconnecting at once after a restart must not
/// overflow it: an overflowed connection looks open to its emitter until it is reset, and
/// what was written on it is lost.
const LISTEN_BACKLOG: u32 = 8192;

/// A listening socket on `addr` with [`LISTEN_BACKLOG`] and SO_REUSEADDR (a restart does not
/// wait for the old connections' TIME_WAIT).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// State shared by every task: the core, the signal that room freed for emitters, and the
/// open emitter connections.
#[derive(Debug)]
pub(crate) struct Shared {
    core: Mutex<Core>,
    /// Emitters blocked by backpressure wait here.
    room: Notify,
    conns: Arc<conns::Conns>,
    /// How long frames waited in the queues (the writers record, outside the lock).
    waits: crate::waits::QueueWaits,
    /// TLS on every listener, when configured.
    tls: Option<Tls>,
    /// The access rules in force.
    access: Rules,
    /// The journal, with a data directory.
    journal: Option<Arc<Journal>>,
}

/// TLS on the listeners: the files, and the acceptors made from them (made again on
/// SIGHUP; connections open keep the one they began with). The metrics endpoint asks for
/// no client certificate: mutual TLS covers the emitter and analyzer ports.
struct Tls {
    files: ServerFiles,
    /// For the emitter and analyzer ports, then for /metrics.
    acceptors: RwLock<(TlsAcceptor, TlsAcceptor)>,
    /// A client that has not finished its handshake by then is closed (`timeout`): a
    /// stalled handshake holds a connection slot and nothing else.
    timeout: Duration,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Tls {
    fn new(files: ServerFiles, timeout: Duration) -> Result<Self, runner::tls::TlsError> {
        let acceptors = Self::acceptors(&files)?;
        Ok(Self {
            files,
            acceptors: RwLock::new(acceptors),
            timeout,
        })
    }

    fn acceptors(files: &ServerFiles) -> Result<(TlsAcceptor, TlsAcceptor), runner::tls::TlsError> {
        let metrics = ServerFiles {
            client_ca: None,
            ..files.clone()
        };
        Ok((files.acceptor()?, metrics.acceptor()?))
    }

    fn acceptor(&self, kind: Listener) -> TlsAcceptor {
        let a = self.acceptors.read().unwrap_or_else(|e| e.into_inner());
        match kind {
            Listener::Metrics => a.1.clone(),
            Listener::Emitter | Listener::Analyzer => a.0.clone(),
        }
    }

    /// Reads the files again.
    fn reload(&self) -> Result<(), runner::tls::TlsError> {
        let fresh = Self::acceptors(&self.files)?;
        *self.acceptors.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

/// The access rules in force and their generation; connections look at the generation
/// (one atomic load per read) and pick up new rules when it moves.
#[derive(Debug)]
pub(crate) struct Rules {
    path: Option<PathBuf>,
    current: RwLock<Arc<Access>>,
    generation: AtomicU64,
}

impl Rules {
    fn new(path: Option<PathBuf>) -> Result<Self, crate::access::AccessError> {
        let access = match &path {
            Some(p) => Access::load(p)?,
            None => Access::default(),
        };
        Ok(Self {
            path,
            current: RwLock::new(Arc::new(access)),
            generation: AtomicU64::new(0),
        })
    }

    /// The generation in force.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The rules in force, with their generation.
    pub(crate) fn current(&self) -> (u64, Arc<Access>) {
        let rules = self.current.read().unwrap_or_else(|e| e.into_inner());
        (self.generation(), Arc::clone(&rules))
    }

    fn replace(&self, access: Access) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(access);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

impl Shared {
    /// Runs `f` under the lock, then issues the wake-ups it caused.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        let (r, (wakes, room)) = {
            // A panic elsewhere cannot leave the counters half-updated in a way that
            // matters more than stopping; keep serving with the inner state.
            let mut core = self.core.lock().unwrap_or_else(|e| e.into_inner());
            let r = f(&mut core);
            (r, core.take_wakes())
        };
        for w in wakes {
            w.notify_one();
        }
        if room {
            self.room.notify_waiters();
        }
        r
    }

    /// The counters now, with the emitter connections' buffered bytes.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut s = self.with(|c| c.snapshot(Now::read()));
        s.buffered_bytes = self.conns.buffered() as u64;
        s.waits = self.waits.read();
        s.limits.max_buffered_bytes = self.conns.budget() as u64;
        s
    }
}

/// Runs the distributor on `listeners` until `shutdown` completes, then stops accepting
/// emitters, drains to live analyzers within the drain timeout and returns the final
/// accounting.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Snapshot> {
    config.validate()?;
    let tls = match config.tls() {
        Some(files) => Some(Tls::new(files, config.handshake_timeout)?),
        None => None,
    };
    let access = Rules::new(config.access.clone())?;
    let mut core = Core::new(config.core());
    let journal = match config.journal() {
        Some(cfg) => {
            let (journal, recovered) = Journal::open(cfg)?;
            let journal = Arc::new(journal);
            core.set_journal(Arc::clone(&journal), recovered);
            Some(journal)
        }
        None => None,
    };
    warn_plain_non_loopback(&config, &listeners, tls.is_some())?;
    let shared = Arc::new(Shared {
        core: Mutex::new(core),
        room: Notify::new(),
        conns: Arc::new(conns::Conns::new(
            usize::try_from(config.max_buffered_bytes).unwrap_or(usize::MAX),
        )),
        waits: crate::waits::QueueWaits::default(),
        tls,
        access,
        journal: journal.clone(),
    });
    let max_connections = nofile::emitter_cap(config.max_connections, config.max_analyzers);
    let emitters_stop = CancellationToken::new();
    let everything_stop = CancellationToken::new();
    let emitter_tasks = TaskTracker::new();
    let tasks = TaskTracker::new();

    tracing::info!(
        emitter = %listeners.emitter.local_addr()?,
        analyzer = %listeners.analyzer.local_addr()?,
        routing = %config.routing,
        overflow = %config.overflow,
        when_full = %config.when_full,
        max_connections,
        max_queued_bytes = config.max_queued_bytes,
        max_buffered_bytes = config.max_buffered_bytes,
        tls = config.tls_cert.is_some(),
        mutual_tls = config.tls_client_ca.is_some(),
        access = config.access.as_ref().map(|p| p.display().to_string()),
        data_dir = config.data_dir.as_ref().map(|p| p.display().to_string()),
        fsync = %config.fsync,
        "distributor listening"
    );
    {
        let (shared, stop) = (Arc::clone(&shared), emitters_stop.clone());
        let limits = emitter::Limits {
            max_frame: config.max_frame,
            grace: config.drain_timeout.min(emitter::EMITTER_GRACE),
            frame_timeout: config.frame_timeout,
        };
        emitter_tasks.spawn(serve(
            Arc::clone(&shared),
            Listener::Emitter,
            listeners.emitter,
            Some(Cap {
                connections: max_connections,
                conns: Arc::clone(&shared.conns),
            }),
            emitters_stop.clone(),
            emitter_tasks.clone(),
            move |stream, peer, identity| {
                emitter::connection(
                    Arc::clone(&shared),
                    stream,
                    peer,
                    identity,
                    limits,
                    stop.clone(),
                )
            },
        ));
    }
    {
        let (shared, stop) = (Arc::clone(&shared), everything_stop.clone());
        tasks.spawn(serve(
            Arc::clone(&shared),
            Listener::Analyzer,
            listeners.analyzer,
            None,
            everything_stop.clone(),
            tasks.clone(),
            move |stream, peer, identity| {
                analyzer::session(Arc::clone(&shared), stream, peer, identity, stop.clone())
            },
        ));
    }
    if let Some(l) = listeners.metrics {
        tracing::info!(metrics = %l.local_addr()?, "serving /metrics");
        let scrape = Arc::clone(&shared);
        tasks.spawn(serve(
            Arc::clone(&shared),
            Listener::Metrics,
            l,
            None,
            everything_stop.clone(),
            tasks.clone(),
            move |stream, _, _| http::connection(Arc::clone(&scrape), stream),
        ));
    }
    tasks.spawn(reload_loop(Arc::clone(&shared), everything_stop.clone()));
    if let Some(j) = &journal {
        tasks.spawn(unspill_loop(
            Arc::clone(&shared),
            Arc::clone(j),
            everything_stop.clone(),
        ));
    }
    tasks.spawn(tick_loop(
        Arc::clone(&shared),
        config.hang_timeout,
        everything_stop.clone(),
    ));
    let stats_task = match &config.stats_csv {
        Some(path) => {
            let out = TableWriter::<Stats>::create(path)?;
            Some(tokio::spawn(stats_loop(
                Arc::clone(&shared),
                out,
                everything_stop.clone(),
            )))
        }
        None => None,
    };

    shutdown.await;
    tracing::info!("shutdown: no more emitters; draining queues to live analyzers");
    emitters_stop.cancel();
    emitter_tasks.close();
    emitter_tasks.wait().await;
    shared.with(|c| c.start_draining());
    let deadline = Instant::now() + config.drain_timeout;
    let left = loop {
        let left = shared.with(|c| c.in_system());
        if left == 0 || Instant::now() >= deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    if left > 0 {
        let (dropped, kept) = shared.with(|c| c.abandon());
        if dropped > 0 {
            tracing::error!(
                dropped,
                drain_timeout_s = config.drain_timeout.as_secs_f64(),
                "drain deadline passed: frames still queued, in flight or held are dropped (reason shutdown)"
            );
        }
        if kept > 0 {
            tracing::warn!(
                kept,
                drain_timeout_s = config.drain_timeout.as_secs_f64(),
                "drain deadline passed: frames not delivered stay in the journal for the next start"
            );
        }
    }
    shared.with(|c| c.close_all());
    everything_stop.cancel();
    tasks.close();
    if tokio::time::timeout(Duration::from_secs(2), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connection tasks did not end within 2 s of shutdown");
    }
    if let Some(t) = stats_task {
        match t.await {
            Ok(Err(e)) => tracing::error!(error = %e, "stats CSV could not be written"),
            Err(e) => tracing::error!(error = %e, "stats task failed"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(j) = &journal {
        // Writes and flushes what is pending and the done marks.
        let j = Arc::clone(j);
        let _ = tokio::task::spawn_blocking(move || j.close()).await;
    }
    let snapshot = shared.snapshot();
    log_final(&snapshot);
    Ok(snapshot)
}

/// A cap on the connections of a listener, with the registry that finds the one idle
/// longest.
struct Cap {
    connections: usize,
    conns: Arc<conns::Conns>,
}

/// The accept loop of every listener: accepts until `stop`, runs the TLS handshake (when
/// TLS is on) and then `handler` for each connection as a task of `tracker`. With a cap, at
/// most that many connections are open at once: a connection accepted at the cap closes
/// the one idle longest (at least [`conns::IDLE_EVICT_AFTER`]) to take its place, or waits
/// for one to close while the next ones wait in the kernel's accept backlog.
async fn serve<F, Fut>(
    shared: Arc<Shared>,
    kind: Listener,
    listener: TcpListener,
    cap: Option<Cap>,
    stop: CancellationToken,
    tracker: TaskTracker,
    handler: F,
) where
    F: Fn(Stream, SocketAddr, Option<String>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    // A permit per connection, moved into its task.
    let permits = cap
        .as_ref()
        .map(|c| Arc::new(Semaphore::new(c.connections)));
    let mut last_warned: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let permit = match (&permits, &cap) {
                    (Some(permits), Some(cap)) => {
                        let p = tokio::select! {
                            p = admit(permits, cap, kind, &mut last_warned) => p,
                            _ = stop.cancelled() => return,
                        };
                        Some(p)
                    }
                    _ => None,
                };
                if shared.tls.is_none() {
                    // Boxed: an async block that awaits a future it owns stores it twice
                    // (once as captured, once as awaited), which doubled every task.
                    let connection = Box::pin(handler(Stream::Plain(stream), peer, None));
                    tracker.spawn(async move {
                        connection.await;
                        drop(permit);
                    });
                } else {
                    let (shared, handler, stop) =
                        (Arc::clone(&shared), handler.clone(), stop.clone());
                    tracker.spawn(async move {
                        if let Some((stream, identity)) =
                            handshake(&shared, kind, stream, peer, &stop).await
                        {
                            Box::pin(handler(stream, peer, identity)).await;
                        }
                        drop(permit);
                    });
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(listener = %kind, error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The server side of a TLS handshake, within the handshake timeout: the stream and the
/// peer's identity, or `None` (the failure logged once with the peer and counted).
async fn handshake(
    shared: &Shared,
    kind: Listener,
    tcp: TcpStream,
    peer: SocketAddr,
    stop: &CancellationToken,
) -> Option<(Stream, Option<String>)> {
    let tls = shared.tls.as_ref()?;
    let acceptor = tls.acceptor(kind);
    let done = tokio::select! {
        r = runner::tls::accept(&acceptor, tcp, tls.timeout) => r,
        _ = stop.cancelled() => return None,
    };
    match done {
        Ok(opened) => Some(opened),
        Err(refused) => {
            shared.with(|c| c.tls_failure(kind, refused.reason));
            tracing::warn!(listener = %kind, %peer, reason = %refused.reason, error = %refused.error, "TLS handshake failed; connection closed");
            None
        }
    }
}

/// Listening beyond loopback without TLS: anyone on the network can send logs and take
/// over analyzer ids. Worth a WARN at start, not a refusal (a trusted network is a choice).
fn warn_plain_non_loopback(
    config: &Config,
    listeners: &Listeners,
    tls: bool,
) -> std::io::Result<()> {
    if tls {
        return Ok(());
    }
    let mut addrs = vec![
        (Listener::Emitter, listeners.emitter.local_addr()?),
        (Listener::Analyzer, listeners.analyzer.local_addr()?),
    ];
    if let Some(m) = &listeners.metrics {
        addrs.push((Listener::Metrics, m.local_addr()?));
    }
    for (kind, addr) in addrs {
        if !addr.ip().is_loopback() {
            tracing::warn!(listener = %kind, %addr, "listening beyond loopback without TLS: any host that can reach it can send logs or claim an analyzer id (see --tls-cert, --tls-client-ca)");
        }
    }
    if config.access.is_some() && config.tls_client_ca.is_none() {
        tracing::warn!(
            "access rules without --tls-client-ca judge the ids peers claim, which nothing proves"
        );
    }
    Ok(())
}

/// On SIGHUP: reads the TLS files and the access file again. A file that cannot be used
/// leaves what is in force and says why; analyzers the new rules refuse are ended.
async fn reload_loop(shared: Arc<Shared>, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP: TLS files and access rules load at start only");
            return;
        }
    };
    loop {
        tokio::select! {
            got = hup.recv() => if got.is_none() { return },
            _ = stop.cancelled() => return,
        }
        reload(&shared);
    }
}

/// Reads the TLS files and the access file again (what SIGHUP does).
pub(crate) fn reload(shared: &Shared) {
    if let Some(tls) = &shared.tls {
        match tls.reload() {
            Ok(()) => {
                tracing::info!(cert = %tls.files.cert.display(), "SIGHUP: TLS certificate and key reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: TLS files not reloaded; the ones in force stay")
            }
        }
    }
    let Some(path) = &shared.access.path else {
        if shared.tls.is_none() {
            tracing::info!("SIGHUP: no TLS files or access file to reload");
        }
        return;
    };
    match Access::load(path) {
        Ok(access) => {
            let (emitters, analyzers) = access.rules();
            let allowed = access.clone();
            shared.access.replace(access);
            let revoked = shared.with(|c| c.revoke(|id| allowed.analyzer_allowed(id), Now::read()));
            tracing::info!(file = %path.display(), emitter_rules = emitters, analyzer_patterns = analyzers, ?revoked, "SIGHUP: access rules reloaded");
        }
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: access file refused; the rules in force stay")
        }
    }
}

/// A permit for a connection accepted at `cap`: at once when one is free, else by closing
/// the connection idle longest, else when one closes.
async fn admit(
    permits: &Arc<Semaphore>,
    cap: &Cap,
    kind: Listener,
    last_warned: &mut Option<Instant>,
) -> tokio::sync::OwnedSemaphorePermit {
    if let Ok(p) = Arc::clone(permits).try_acquire_owned() {
        return p;
    }
    let mut evicted = 0u64;
    loop {
        if cap.conns.evict_idle(conns::IDLE_EVICT_AFTER) {
            evicted += 1;
        }
        let warn = last_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if warn {
            *last_warned = Some(Instant::now());
            tracing::warn!(listener = %kind, max_connections = cap.connections, evicted, "at the connection cap: the connection idle longest (at least 1 s) is closed for each new one; with none idle, new connections wait");
        }
        tokio::select! {
            p = Arc::clone(permits).acquire_owned() => {
                // The semaphore is never closed.
                if let Ok(p) = p {
                    return p;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// Hang detection and holding-queue retries, ten times per hang timeout (at most every
/// 100 ms).
async fn tick_loop(shared: Arc<Shared>, hang_timeout: Duration, stop: CancellationToken) {
    let period = (hang_timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(100));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.cancelled() => return,
        }
        shared.with(|c| c.tick(Now::read()));
    }
}

/// Frames read back from the journal per round: enough to refill queues quickly, few
/// enough that one round's reads take milliseconds.
const UNSPILL_BATCH: usize = 4096;

/// Reads spilled and recovered frames back from the journal into the queues as room frees,
/// most urgent priority first. Woken by room freeing; also looks every 20 ms, as a record
/// becomes readable only once the writer has written it.
async fn unspill_loop(shared: Arc<Shared>, journal: Arc<Journal>, stop: CancellationToken) {
    loop {
        let room = shared.room.notified();
        tokio::pin!(room);
        room.as_mut().enable();
        let written = journal.written();
        let plan = shared.with(|c| c.plan_unspill(UNSPILL_BATCH, written));
        let Some((priority, locs)) = plan else {
            if !wait_for_room(room, &stop).await {
                return;
            }
            continue;
        };
        let read = {
            let (journal, locs) = (Arc::clone(&journal), locs.clone());
            tokio::task::spawn_blocking(move || journal.read(&locs)).await
        };
        let read = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reading spilled frames failed");
                locs.iter()
                    .map(|_| Err("the read task failed".to_owned()))
                    .collect()
            }
        };
        let placed = shared.with(|c| c.unspill(priority, &locs, read, Now::read()));
        // Room by count is not room for the router's choice (`--when-full strict`): when
        // nothing found a place, wait instead of reading the same frames again at once.
        if placed == 0 && !wait_for_room(room, &stop).await {
            return;
        }
    }
}

/// Waits for room to free (or 20 ms); false when stopping.
async fn wait_for_room(
    room: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    stop: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = room => true,
        _ = tokio::time::sleep(Duration::from_millis(20)) => true,
        _ = stop.cancelled() => false,
    }
}

/// Writes the stats CSV: rows every second and once more at the end.
async fn stats_loop(
    shared: Arc<Shared>,
    mut out: TableWriter<Stats>,
    stop: CancellationToken,
) -> Result<(), runfolder::Error> {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        let last = tokio::select! {
            _ = interval.tick() => false,
            _ = stop.cancelled() => true,
        };
        let snapshot = shared.snapshot();
        // Small writes once a second; not worth a blocking-pool hop.
        for row in snapshot.stats_rows() {
            out.write(&row)?;
        }
        out.flush()?;
        if last {
            return Ok(());
        }
    }
}

/// The final accounting, in the log.
fn log_final(s: &Snapshot) {
    let t = &s.totals;
    tracing::info!(
        received = t.received,
        delivered = t.delivered,
        dropped = t.dropped_total(),
        dropped_queue_full = t.dropped_by(DropReason::QueueFull),
        dropped_holding_full = t.dropped_by(DropReason::HoldingFull),
        dropped_retries_exhausted = t.dropped_by(DropReason::RetriesExhausted),
        dropped_shutdown = t.dropped_by(DropReason::Shutdown),
        dropped_bytes_full = t.dropped_by(DropReason::BytesFull),
        dropped_forbidden = t.dropped_by(DropReason::Forbidden),
        in_system = s.in_system(),
        protocol_errors = t.protocol_errors,
        truncated = t.truncated,
        emitter_connections = t.emitter_connections,
        analyzer_sessions = t.analyzer_sessions,
        "final accounting"
    );
    for (id, a) in &s.analyzers {
        tracing::info!(
            analyzer = %id,
            weight = a.weight,
            routed = a.routed,
            written = a.written,
            acked = a.acked,
            delivered = a.delivered,
            rerouted = a.rerouted,
            failures = a.failures,
            "final accounting per analyzer"
        );
    }
}
