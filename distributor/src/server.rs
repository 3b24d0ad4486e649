//! The I/O around the [`Engine`]: accept loops, emitter connections, analyzer sessions, the
//! HTTP endpoint, the periodic loops and the shutdown drain.
//!
//! - [`emitter`]: one emitter connection (LOG frames in, ACKs out when asked);
//! - [`analyzer`]: one analyzer session (HELLO or REJECT, then DELIVER batches and ACKs);
//! - [`conns`]: the open emitter connections, for the byte budget of partial frames and
//!   the connection cap;
//! - [`http`] and [`metrics`]: `GET /metrics` in OpenMetrics text;
//! - [`tls`]: TLS on the listeners, the access rules in force, SIGHUP;
//! - [`loops`]: the tick, the loader of frames waiting on disk, the stats CSV;
//! - [`nofile`]: the open-files limit and the emitter cap it allows.

mod analyzer;
mod conns;
mod emitter;
mod http;
mod loops;
pub(crate) mod metrics;
mod nofile;
pub(crate) mod process;
mod tls;

use crate::accounting::{DropReason, Listener, Snapshot};
use crate::config::{Config, ConfigError};
use crate::engine::{Engine, Now};
use crate::journal::{Journal, JournalError};
use runfolder::TableWriter;
use runfolder::rows::Stats;
use runner::net::Stream;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tls::{Rules, Tls};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the distributor could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A setting cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen for {listener} on {addr}: {error}")]
    Bind {
        /// Which listener.
        listener: Listener,
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The TLS files cannot be used.
    #[error(transparent)]
    Tls(#[from] runner::tls::TlsError),
    /// The access file cannot be used.
    #[error(transparent)]
    Access(#[from] crate::access::AccessError),
    /// The journal cannot be opened, or failed (a failed fdatasync ends the process).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The stats CSV cannot be written.
    #[error(transparent)]
    Stats(#[from] runfolder::Error),
    /// Another I/O failure.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl RunError {
    /// The exit code this error ends the process with: 2 for settings or files that
    /// cannot be used, 74 (EX_IOERR) for a failed fdatasync of the journal, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Config(_) | RunError::Tls(_) | RunError::Access(_) => 2,
            RunError::Journal(JournalError::Fsync { .. }) => 74,
            _ => 1,
        }
    }
}

impl runner::Failure for RunError {
    fn exit_code(&self) -> u8 {
        RunError::exit_code(self)
    }
}

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
    pub async fn bind(config: &Config) -> Result<Self, RunError> {
        let bind = |listener, addr| {
            listen(addr).map_err(|error| RunError::Bind {
                listener,
                addr,
                error,
            })
        };
        Ok(Self {
            emitter: bind(Listener::Emitter, config.emitter_listen)?,
            analyzer: bind(Listener::Analyzer, config.analyzer_listen)?,
            metrics: match config.metrics_listen {
                Some(addr) => Some(bind(Listener::Metrics, addr)?),
                None => None,
            },
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

/// State shared by every task: the engine, the signal that room freed for emitters, and
/// the open emitter connections.
#[derive(Debug)]
pub(crate) struct Shared {
    engine: Mutex<Engine>,
    /// Emitters blocked by backpressure wait here.
    room: Notify,
    conns: Arc<conns::Conns>,
    /// How long frames waited in the queues (the writers record, outside the lock).
    waits: crate::accounting::waits::QueueWaits,
    /// TLS on every listener, when configured.
    tls: Option<Tls>,
    /// The access rules in force.
    access: Rules,
    /// The journal, with a data directory.
    journal: Option<Arc<Journal>>,
    /// What `/ready` says: [`READY`] once every listener is served, [`DRAINING`] from
    /// SIGTERM on.
    readiness: std::sync::atomic::AtomicU8,
}

/// [`Shared::readiness`] while the listeners are being set up.
const STARTING: u8 = 0;
/// [`Shared::readiness`] while serving.
const READY: u8 = 1;
/// [`Shared::readiness`] from SIGTERM on.
const DRAINING: u8 = 2;

impl Shared {
    /// Runs `f` under the lock, then issues the wake-ups it caused.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        let (r, (wakes, room)) = {
            // A panic elsewhere cannot leave the counters half-updated in a way that
            // matters more than stopping; keep serving with the inner state.
            let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
            let r = f(&mut engine);
            (r, engine.take_wakes())
        };
        wakes.notify();
        if room {
            self.room.notify_waiters();
        }
        r
    }

    /// `/ready`'s answer: `None` when ready, else why not (`starting`, `draining`).
    pub(crate) fn not_ready(&self) -> Option<&'static str> {
        match self.readiness.load(std::sync::atomic::Ordering::Acquire) {
            READY => None,
            DRAINING => Some("draining"),
            _ => Some("starting"),
        }
    }

    fn set_readiness(&self, state: u8) {
        self.readiness
            .store(state, std::sync::atomic::Ordering::Release);
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

/// Resolves with the journal's fatal error, if it has one (never without a journal).
async fn journal_failure(journal: Option<&Journal>) -> JournalError {
    match journal {
        Some(j) => j.failed().await,
        None => std::future::pending().await,
    }
}

/// Runs the distributor on `listeners` until `shutdown` completes, then stops accepting
/// emitters, drains to live analyzers within the drain timeout and returns the final
/// accounting. A failed fdatasync of the journal ends it at once with that error.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<Snapshot, RunError> {
    process::record_start();
    config.validate()?;
    let tls = match config.tls() {
        Some(files) => Some(Tls::new(files, config.handshake_timeout)?),
        None => None,
    };
    let access = Rules::new(config.access.clone(), config.tls_client_ca.is_some())?;
    let mut engine = Engine::new(config.engine());
    let journal = match config.journal() {
        Some(cfg) => {
            let (journal, recovered) = Journal::open(cfg)?;
            let journal = Arc::new(journal);
            engine.set_journal(Arc::clone(&journal), recovered);
            Some(journal)
        }
        None => None,
    };
    warn_plain_non_loopback(&config, &listeners, tls.is_some())?;
    let shared = Arc::new(Shared {
        engine: Mutex::new(engine),
        room: Notify::new(),
        conns: Arc::new(
            conns::Conns::new(usize::try_from(config.max_buffered_bytes).unwrap_or(usize::MAX))
                .with_known(config.known_emitters.clone()),
        ),
        waits: crate::accounting::waits::QueueWaits::default(),
        tls,
        access,
        journal: journal.clone(),
        readiness: std::sync::atomic::AtomicU8::new(STARTING),
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
        let conns = Arc::clone(&shared.conns);
        let shared = Arc::clone(&shared);
        let limits = emitter::Limits {
            max_frame: config.max_frame,
            grace: config.drain_timeout.min(emitter::EMITTER_GRACE),
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
                emitter::connection(Arc::clone(&shared), stream, peer, identity, limits)
            },
        ));
        emitter_tasks.spawn(loops::frame_timeout_loop(
            conns,
            config.frame_timeout,
            emitters_stop.clone(),
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
    tasks.spawn(tls::reload_loop(
        Arc::clone(&shared),
        everything_stop.clone(),
    ));
    if let Some(j) = &journal {
        tasks.spawn(loops::load_loop(
            Arc::clone(&shared),
            Arc::clone(j),
            everything_stop.clone(),
        ));
    }
    tasks.spawn(loops::tick_loop(
        Arc::clone(&shared),
        config.hang_timeout,
        everything_stop.clone(),
    ));
    let stats_task = match &config.stats_csv {
        Some(path) => {
            let out = TableWriter::<Stats>::create(path)?;
            Some(tokio::spawn(loops::stats_loop(
                Arc::clone(&shared),
                out,
                everything_stop.clone(),
            )))
        }
        None => None,
    };

    shared.set_readiness(READY);
    let failed = tokio::select! {
        () = shutdown => None,
        e = journal_failure(journal.as_deref()) => Some(e),
    };
    shared.set_readiness(DRAINING);
    // Not ready, still serving: a load balancer checking /ready moves new connections
    // away before the listeners close.
    let failed = match failed {
        None if !config.drain_delay.is_zero() => {
            tracing::info!(
                drain_delay_s = config.drain_delay.as_secs_f64(),
                "shutdown: /ready answers 503; serving on for the drain delay"
            );
            tokio::select! {
                () = tokio::time::sleep(config.drain_delay) => None,
                e = journal_failure(journal.as_deref()) => Some(e),
            }
        }
        failed => failed,
    };
    if let Some(error) = failed {
        // As a crash would: no drain (nothing since the last good flush can be trusted,
        // and no ACK goes out for it), every task stopped, the error up to `main`.
        tracing::error!(%error, "the journal failed: stopping now (no ACK was sent for what it did not flush); check the disk, then start the distributor again");
        emitters_stop.cancel();
        shared.conns.stop_all();
        shared.with(|c| c.close_all());
        everything_stop.cancel();
        emitter_tasks.close();
        tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            emitter_tasks.wait().await;
            tasks.wait().await;
        })
        .await;
        return Err(RunError::Journal(error));
    }
    tracing::info!("shutdown: no more emitters; draining queues to live analyzers");
    emitters_stop.cancel();
    shared.conns.stop_all();
    emitter_tasks.close();
    // Each connection ends within its grace; the bound is for safety.
    let _ = tokio::time::timeout(
        config.drain_timeout.min(emitter::EMITTER_GRACE) + Duration::from_secs(2),
        emitter_tasks.wait(),
    )
    .await;
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
        let (dropped, kept) = shared.with(|c| c.abandon(Now::read()));
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
        // Writes and flushes what is pending, and the done marks (within a bound when the
        // disk takes nothing).
        let j = Arc::clone(j);
        let _ = tokio::task::spawn_blocking(move || j.close()).await;
        let lost = shared.with(|c| c.forget_unwritten());
        if lost > 0 {
            tracing::error!(
                lost,
                "frames whose journal records never reached the disk are dropped (reason shutdown); none was acknowledged"
            );
        }
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
                            p = admit(permits, cap, kind, peer, &mut last_warned) => p,
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

/// A permit for a connection accepted at `cap`: at once when one is free, else by closing
/// the connection idle longest (for a peer in a known emitter network, else the newest
/// connection from elsewhere), else when one closes.
async fn admit(
    permits: &Arc<Semaphore>,
    cap: &Cap,
    kind: Listener,
    peer: SocketAddr,
    last_warned: &mut Option<Instant>,
) -> tokio::sync::OwnedSemaphorePermit {
    if let Ok(p) = Arc::clone(permits).try_acquire_owned() {
        return p;
    }
    let known = cap.conns.is_known(peer.ip());
    let mut evicted = 0u64;
    loop {
        if cap.conns.evict_idle(conns::IDLE_EVICT_AFTER, known)
            || (known && cap.conns.evict_newest_unknown())
        {
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
