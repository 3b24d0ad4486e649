//! One emitter: its connection, open-loop pacing, batched writes, reconnects and counters.
//!
//! Each batch is built in one buffer and written with one `write_all`, so frames are never
//! split across connections. When the distributor half-closes the connection (it does at
//! shutdown), the emitter stops at the batch boundary, closes its side and reconnects with
//! backoff: everything it wrote was read, so nothing is lost. Frames of a batch whose write
//! failed (the distributor died) may or may not have arrived: their seqs are recorded as
//! in doubt. So is everything a connection carried when it ends with a reset instead of
//! a FIN (the kernel's accept queue overflowed, or the distributor died between writes):
//! the bytes were written, but nobody may have read them. Messages that came due while no
//! connection was up are counted as unsent and never sent late; seqs number only what was
//! written, so they stay gap-free.

use crate::Config;
use crate::acks::Acked;
use crate::generate::{EmitterGen, PriorityGen, SizeGen};
use crate::pacing::Schedule;
use crate::progress::Counters;
use anyhow::Context as _;
use bytes::BytesMut;
use protocol::codec::StreamCompressor;
use protocol::emitter::{EmitterHello, Reply, ReplyDecoder};
use runner::backoff::Backoff;
use runner::framed::FramedRead;
use runner::net::{ReadHalf, Stream, WriteHalf};
use runner::tls::{Client, TlsError};
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Bytes per write: past ~64 KiB a loopback write gains nothing more (measured here:
/// ~2.2 GB/s at 64 KiB per write).
const BATCH_BYTES: usize = 64 * 1024;
/// A paced emitter sleeps at least this long between batches, so 100 emitters at 800 msg/s
/// make ~20k wake-ups per second instead of 80k; stamps are taken at send time, so
/// measured latency is not affected.
const MIN_SLEEP: Duration = Duration::from_millis(5);
/// How long a write under way when the run ends may still take before its frames are
/// counted as in doubt.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Connects and reconnects: 50 ms doubling to 1 s.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));

/// Messages sent by one emitter at one priority in one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondRow {
    /// Unix time, whole seconds, of the send.
    pub second: u64,
    /// Priority.
    pub priority: u8,
    /// Messages.
    pub sent: u64,
}

/// What one emitter did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Emitter id.
    pub emitter: u32,
    /// Messages written = the next seq (in-doubt ones included).
    pub sent: u64,
    /// Bytes written (LOG frames, or framed syslog messages), before compression.
    pub bytes: u64,
    /// Bytes written on the sockets (EMITTER HELLOs included), after compression.
    pub wire_bytes: u64,
    /// Write or connect errors.
    pub errors: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// Seq ranges `[start, end)` of batches whose write failed: they may or may not have
    /// reached the distributor.
    pub in_doubt: Vec<(u64, u64)>,
    /// Messages that came due while no connection was up: never sent.
    pub unsent: u64,
    /// First and last `sent_ns` stamped.
    pub first_sent_ns: u64,
    /// See `first_sent_ns`.
    pub last_sent_ns: u64,
    /// Largest delay behind the open-loop schedule.
    pub max_lag: Duration,
    /// Per second and priority.
    pub seconds: Vec<SecondRow>,
    /// With `--acks`: seqs `0..secured` were secured by the distributor.
    pub secured: Option<u64>,
    /// With `--acks`: from first written to secured, µs.
    pub secured_latency: Option<hdrhistogram::Histogram<u64>>,
}

/// Connects every emitter, retrying each for up to `--connect-timeout`.
pub async fn connect_all(config: &Config, counters: &Counters) -> anyhow::Result<Vec<Stream>> {
    let timeout = Duration::from_secs_f64(config.connect_timeout);
    let tls = config.tls.client().context("invalid --tls-* settings")?;
    // The first emitter that finds no distributor says so, once, rather than all wait in
    // silence.
    let said = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..config.emitters {
        let target = config.target;
        let said = Arc::clone(&said);
        let tls = tls.clone();
        set.spawn(async move {
            (
                i,
                connect_retrying(target, tls.as_ref(), timeout, &said).await,
            )
        });
    }
    let mut streams: Vec<Option<Stream>> = (0..config.emitters).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, result) = joined.context("a connect task failed")?;
        let stream = result.with_context(|| {
            format!(
                "emitter {} cannot connect to the distributor at {} within {:.1} s",
                config.emitter_id_base + i,
                config.target,
                timeout.as_secs_f64()
            )
        })?;
        streams[i as usize] = Some(stream);
    }
    counters
        .connected
        .store(u64::from(config.emitters), Relaxed);
    Ok(streams.into_iter().flatten().collect())
}

/// Tries to connect with backoff (50 ms doubling to 1 s) until `timeout`. A refused TLS
/// handshake is not retried: another try would be refused the same way.
async fn connect_retrying(
    target: std::net::SocketAddr,
    tls: Option<&Client>,
    timeout: Duration,
    said: &std::sync::atomic::AtomicBool,
) -> Result<Stream, TlsError> {
    let deadline = Instant::now() + timeout;
    let mut retry = RECONNECT.retry();
    loop {
        match Stream::connect(target, tls).await {
            Ok(s) => return Ok(s),
            Err(e @ TlsError::Handshake { .. }) => return Err(e),
            Err(e) => {
                let delay = retry.next_delay();
                if Instant::now() + delay >= deadline {
                    return Err(e);
                }
                if !said.swap(true, Relaxed) {
                    tracing::info!(%target, error = %e, timeout_s = timeout.as_secs_f64(), "waiting for the distributor");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The write side of a connection: what goes after the EMITTER HELLO passes through the
/// connection's compressor (`--compress`), flushed at every write.
pub(crate) struct Writer {
    wr: WriteHalf,
    compressor: Option<StreamCompressor>,
    /// The compressed bytes of the write under way.
    buf: BytesMut,
    /// Bytes written on the socket by this emitter, over all its connections.
    wire: Arc<AtomicU64>,
}

impl Writer {
    /// Writes `raw` (compressed, if the connection is) and flushes.
    pub(crate) async fn send(&mut self, raw: &[u8]) -> std::io::Result<()> {
        let bytes = match self.compressor.as_mut() {
            None => raw,
            Some(c) => {
                self.buf.clear();
                c.compress(raw, &mut self.buf)
                    .map_err(std::io::Error::other)?;
                &self.buf[..]
            }
        };
        self.wr.write_all(bytes).await?;
        self.wire.fetch_add(bytes.len() as u64, Relaxed);
        // Flushed: over TLS, bytes may otherwise wait inside the session.
        self.wr.flush().await
    }

    /// Writes `bytes` as they are (an EMITTER HELLO).
    pub(crate) async fn send_plain(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.wr.write_all(bytes).await?;
        self.wire.fetch_add(bytes.len() as u64, Relaxed);
        Ok(())
    }

    /// Ends the compressed stream (best effort) and closes the write side.
    async fn close(&mut self) {
        if let Some(c) = self.compressor.as_mut() {
            self.buf.clear();
            if c.finish(&mut self.buf).is_ok() && self.wr.write_all(&self.buf).await.is_ok() {
                self.wire.fetch_add(self.buf.len() as u64, Relaxed);
            }
        }
        let _ = self.wr.shutdown().await;
    }
}

/// A live connection.
struct Conn {
    peer: Peer,
    out: Writer,
    /// The first seq written on this connection.
    first_seq: u64,
    /// With `--acks` or `--compress`: its EMITTER HELLO (and the window) not written yet.
    fresh: bool,
}

/// How an emitter learns that the distributor closed or broke its connection (it sends no
/// data on a plain emitter connection).
enum Peer {
    /// Plain TCP without ACKs: a non-blocking read of the socket tells.
    Plain(OwnedReadHalf),
    /// TLS, or ACKs: a task reads the connection (ACKs, a REJECT, a close_notify, a FIN or
    /// an error) and says here.
    Watched(watch::Receiver<News>),
}

/// What the reader of a watched connection has seen.
#[derive(Debug, Clone, Default)]
struct News {
    /// The last ACK count.
    acked: u64,
    /// How the connection ended, once it did.
    end: Option<End>,
}

#[derive(Debug, Clone)]
enum End {
    /// An orderly close.
    Closed,
    /// An error.
    Failed(ErrorKind, String),
    /// The distributor refused the EMITTER HELLO.
    Rejected(String),
}

/// What the distributor's side of a connection says.
enum PeerState {
    /// Nothing: still open.
    Open,
    /// A FIN: it read everything and closed (it does at shutdown).
    Closed,
    /// A reset or another error: what was written may not have been read.
    Failed(std::io::Error),
    /// The distributor refused the EMITTER HELLO: retrying will not help.
    Rejected(String),
}

impl Conn {
    /// `hello`: the connection opens with an EMITTER HELLO (so the distributor may answer
    /// with a REJECT, and with ACKs); `compressor`: what follows it is compressed.
    fn new(
        s: Stream,
        first_seq: u64,
        hello: bool,
        compressor: Option<StreamCompressor>,
        wire: &Arc<AtomicU64>,
    ) -> Self {
        let (rd, wr) = s.split();
        let peer = match rd {
            ReadHalf::Plain(rd) if !hello => Peer::Plain(rd),
            rd => Peer::Watched(watch_peer(rd)),
        };
        Self {
            peer,
            out: Writer {
                wr,
                compressor,
                buf: BytesMut::new(),
                wire: Arc::clone(wire),
            },
            first_seq,
            fresh: hello,
        }
    }

    /// The last ACK count of this connection.
    fn acked(&self) -> u64 {
        match &self.peer {
            Peer::Plain(_) => 0,
            Peer::Watched(rx) => rx.borrow().acked,
        }
    }

    /// The distributor's side (it never sends data).
    fn peer(&self) -> PeerState {
        match &self.peer {
            Peer::Plain(rd) => {
                let mut byte = [0u8; 16];
                match rd.try_read(&mut byte) {
                    Ok(0) => PeerState::Closed,
                    Ok(_) => PeerState::Open,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => PeerState::Open,
                    Err(e) => PeerState::Failed(e),
                }
            }
            Peer::Watched(rx) => match &rx.borrow().end {
                None => PeerState::Open,
                Some(End::Closed) => PeerState::Closed,
                Some(End::Failed(kind, what)) => {
                    PeerState::Failed(std::io::Error::new(*kind, what.clone()))
                }
                Some(End::Rejected(why)) => PeerState::Rejected(why.clone()),
            },
        }
    }

    /// Resolves when the distributor's side may have changed.
    async fn readable(&mut self) {
        match &mut self.peer {
            Peer::Plain(rd) => {
                let _ = rd.readable().await;
            }
            Peer::Watched(rx) => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    async fn close(mut self) {
        self.out.close().await;
    }
}

/// Reads a connection's read half until it ends, publishing the ACK counts it carries.
fn watch_peer(rd: ReadHalf) -> watch::Receiver<News> {
    let (tx, rx) = watch::channel(News::default());
    tokio::spawn(async move {
        let mut framed = FramedRead::new(rd, ReplyDecoder, 1024);
        let end = loop {
            let read = tokio::select! {
                r = framed.read() => r,
                () = tx.closed() => return,
            };
            match read {
                Ok(0) => break End::Closed,
                Ok(_) => {}
                Err(e) => break End::Failed(e.kind(), e.to_string()),
            }
            let end = loop {
                match framed.decode() {
                    Ok(Some(Reply::Ack(n))) => {
                        tx.send_modify(|news| news.acked = n);
                    }
                    Ok(Some(Reply::Reject(why))) => break Some(End::Rejected(why)),
                    Ok(None) => break None,
                    Err(e) => break Some(End::Failed(ErrorKind::InvalidData, e.to_string())),
                }
            };
            if let Some(end) = end {
                break end;
            }
        };
        tx.send_modify(|news| news.end = Some(end));
    });
    rx
}

/// Per-second, per-priority counts of the second under way.
struct SecondCounts {
    second: u64,
    counts: Box<[u64; 256]>,
    rows: Vec<SecondRow>,
}

impl SecondCounts {
    fn add(&mut self, second: u64, priority: u8) {
        if second != self.second {
            self.flush();
            self.second = second;
        }
        self.counts[priority as usize] += 1;
    }

    fn flush(&mut self) {
        for (p, n) in self.counts.iter_mut().enumerate() {
            if *n > 0 {
                self.rows.push(SecondRow {
                    second: self.second,
                    priority: p as u8,
                    sent: *n,
                });
                *n = 0;
            }
        }
    }
}

/// Runs emitter `id` on `stream` until `stop`; returns its report. `identity` (the client
/// certificate's, over mutual TLS) is the id of its EMITTER HELLO with `--acks`.
pub async fn run(
    config: Arc<Config>,
    id: u32,
    identity: Option<Arc<str>>,
    stream: Stream,
    started: Instant,
    counters: Arc<Counters>,
    stop: CancellationToken,
) -> Report {
    let size = SizeGen::new(
        config.size_mean,
        config.size_sigma,
        config.size_min,
        config.size_max,
    );
    let Ok(size) = size else {
        // Checked by Config::validate before any emitter starts.
        return Report {
            emitter: id,
            ..Report::default()
        };
    };
    let priority = PriorityGen::new(config.priority_mode, config.priority, config.priority_range);
    let mut generator = EmitterGen::new(config.seed, id, priority, size);
    generator = match config.format {
        runfolder::Format::Log => generator.with_payload(config.payload()),
        runfolder::Format::Syslog => generator.syslog(config.framing),
    };
    let schedule = match config.rate {
        crate::Rate::PerSecond(r) => Some(Schedule::new(r).with_phase(Schedule::spread(
            id - config.emitter_id_base,
            config.emitters,
        ))),
        crate::Rate::Max => None,
    };
    let mut report = Report {
        emitter: id,
        ..Report::default()
    };
    let mut seconds = SecondCounts {
        second: 0,
        counts: Box::new([0; 256]),
        rows: Vec::new(),
    };
    let name = identity.map_or_else(|| format!("emitter-{id}"), |i| i.to_string());
    let codec = config.codec();
    // Without --acks, --compress still opens each connection with an EMITTER HELLO.
    let mut hello = BytesMut::new();
    if let Err(e) = (EmitterHello {
        acks: config.acks,
        compression: codec,
        id: name.clone(),
    })
    .encode(&mut hello)
    {
        tracing::error!(emitter = id, error = %e, "cannot make the EMITTER HELLO");
        return report;
    }
    let wire = Arc::new(AtomicU64::new(0));
    let connection = |s: Stream, first_seq: u64| -> Option<Conn> {
        let compressor = match codec.map(|c| StreamCompressor::new(c, config.zstd_level)) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                // Checked by Config::validate before any emitter starts.
                tracing::error!(emitter = id, error = %e, "cannot make the compressor");
                return None;
            }
        };
        let hello = config.acks || codec.is_some();
        Some(Conn::new(s, first_seq, hello, compressor, &wire))
    };
    let mut acked = match config.acks {
        true => match Acked::new(&name, config.ack_window, codec) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!(emitter = id, error = %e, "cannot set up the acknowledged session");
                return report;
            }
        },
        false => None,
    };
    let mut conn = connection(stream, 0);
    let mut handled = 0u64; // messages due so far that were sent or counted unsent
    let mut bounds: Vec<(u64, usize, usize)> = Vec::new();
    let mut out = BytesMut::with_capacity(BATCH_BYTES + config.size_max + 64);
    let mut frame_priorities: Vec<u8> = Vec::with_capacity(1024);
    loop {
        if stop.is_cancelled() {
            break;
        }
        let Some(c) = conn.as_mut() else {
            conn = reconnect(&config, &mut report, &counters, &stop)
                .await
                .and_then(|s| connection(s, report.sent));
            if let (Some(s), Some(_)) = (schedule, conn.as_ref()) {
                // What came due while disconnected is not sent late.
                let due = s.due(started.elapsed());
                let missed = due.saturating_sub(handled);
                report.unsent += missed;
                counters.unsent.fetch_add(missed, Relaxed);
                handled = due.max(handled);
            }
            continue;
        };
        if std::mem::take(&mut c.fresh) {
            let opened = match acked.as_mut() {
                Some(a) => a.open(&mut c.out).await,
                None => c.out.send_plain(&hello).await,
            };
            if let Err(e) = opened {
                tracing::warn!(emitter = id, error = %e, "cannot open the session (EMITTER HELLO); reconnecting");
                report.errors += 1;
                counters.errors.fetch_add(1, Relaxed);
                conn = None;
                continue;
            }
        }
        if let Some(a) = acked.as_mut() {
            a.apply(c.acked());
        }
        match c.peer() {
            PeerState::Open => {}
            PeerState::Rejected(why) => {
                tracing::error!(emitter = id, reason = %why, "the distributor refused the EMITTER HELLO; this emitter stops");
                report.errors += 1;
                counters.errors.fetch_add(1, Relaxed);
                break;
            }
            PeerState::Closed => {
                tracing::info!(
                    emitter = id,
                    "distributor closed the connection; reconnecting"
                );
                if let Some(c) = conn.take() {
                    c.close().await;
                }
                continue;
            }
            PeerState::Failed(e) => {
                let seqs = c.first_seq..report.sent;
                if acked.is_some() {
                    tracing::warn!(emitter = id, error = %e, "connection failed; what is not secured is sent again; reconnecting");
                } else {
                    tracing::warn!(emitter = id, error = %e, ?seqs, "connection failed; what it carried is in doubt; reconnecting");
                    if !seqs.is_empty() {
                        report.in_doubt.push((seqs.start, seqs.end));
                    }
                }
                report.errors += 1;
                counters.errors.fetch_add(1, Relaxed);
                conn = None;
                continue;
            }
        }
        let elapsed = started.elapsed();
        let want = match schedule {
            Some(s) => {
                let lag = s.lag(handled, elapsed);
                report.max_lag = report.max_lag.max(lag);
                counters.lag_us.store(lag.as_micros() as u64, Relaxed);
                s.due(elapsed).saturating_sub(handled)
            }
            None => u64::MAX,
        };
        // A full window waits for ACKs: the schedule lags, nothing is dropped.
        let want = want.min(acked.as_ref().map_or(u64::MAX, Acked::room));
        if want == 0 {
            let next = schedule
                .map_or(MIN_SLEEP, |s| s.at(handled).saturating_sub(elapsed))
                .max(MIN_SLEEP);
            let readable = c.readable();
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = readable => {}
                _ = stop.cancelled() => break,
            }
            continue;
        }
        out.clear();
        frame_priorities.clear();
        let sent_ns = protocol::now_ns();
        let first_seq = report.sent;
        bounds.clear();
        while (frame_priorities.len() as u64) < want && out.len() < BATCH_BYTES {
            let seq = first_seq + frame_priorities.len() as u64;
            let start = out.len();
            let (p, _) = generator.frame(seq, sent_ns, &mut out);
            frame_priorities.push(p);
            bounds.push((seq, start, out.len()));
        }
        let n = frame_priorities.len() as u64;
        let len = out.len() as u64;
        let written = match acked.as_mut() {
            Some(a) => {
                // The window keeps slices of this batch until they are secured.
                let batch = out.split().freeze();
                a.keep(&batch, bounds.iter().copied());
                write_batch(conn.as_mut(), &batch, &stop).await
            }
            None => write_batch(conn.as_mut(), &out, &stop).await,
        };
        report.sent += n;
        handled += n;
        if report.first_sent_ns == 0 {
            report.first_sent_ns = sent_ns;
        }
        report.last_sent_ns = sent_ns;
        counters.sent.fetch_add(n, Relaxed);
        if let Err(e) = written {
            report.errors += 1;
            counters.errors.fetch_add(1, Relaxed);
            if acked.is_some() {
                tracing::warn!(emitter = id, error = %e, "write failed; what is not secured is sent again");
            } else {
                tracing::warn!(emitter = id, error = %e, seqs = ?(first_seq..first_seq + n), "write failed; these frames are in doubt");
                report.in_doubt.push((first_seq, first_seq + n));
            }
            conn = None;
            continue;
        }
        report.bytes += len;
        counters.bytes.fetch_add(len, Relaxed);
        let second = sent_ns / 1_000_000_000;
        for p in &frame_priorities {
            seconds.add(second, *p);
        }
    }
    if let Some(a) = acked.as_mut() {
        settle(a, conn.as_mut(), id).await;
        report.secured = Some(a.secured());
        report.secured_latency = Some(a.latency().clone());
        if let Some(range) = a.unsecured() {
            report.in_doubt.push(range);
        }
    }
    match conn.take() {
        Some(c) => c.close().await,
        None => {
            if let Some(s) = schedule {
                // Stopped while disconnected: what came due meanwhile was never sent.
                let end = started
                    .elapsed()
                    .min(Duration::from_secs_f64(config.duration));
                let missed = s.due(end).saturating_sub(handled);
                report.unsent += missed;
                counters.unsent.fetch_add(missed, Relaxed);
            }
        }
    }
    seconds.flush();
    report.seconds = seconds.rows;
    report.wire_bytes = wire.load(Relaxed);
    report
}

/// At the end of a run with `--acks`: waits (at most [`STOP_GRACE`]) for the ACKs of what
/// is still in the window. What stays unsecured is in doubt.
async fn settle(a: &mut Acked, conn: Option<&mut Conn>, id: u32) {
    let Some(c) = conn else { return };
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    loop {
        a.apply(c.acked());
        if a.outstanding() == 0 || !matches!(c.peer(), PeerState::Open) {
            break;
        }
        tokio::select! {
            () = c.readable() => {}
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(emitter = id, unsecured = a.outstanding(), "ACKs still missing at the end of the run; those messages are in doubt");
                break;
            }
        }
    }
}

/// Writes one batch whole; a write under way when `stop` comes gets [`STOP_GRACE`] more.
async fn write_batch(
    conn: Option<&mut Conn>,
    bytes: &[u8],
    stop: &CancellationToken,
) -> std::io::Result<()> {
    let Some(c) = conn else {
        return Err(std::io::Error::new(
            ErrorKind::NotConnected,
            "no connection",
        ));
    };
    let write = c.out.send(bytes);
    tokio::pin!(write);
    tokio::select! {
        r = &mut write => return r,
        _ = stop.cancelled() => {}
    }
    match tokio::time::timeout(STOP_GRACE, write).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            ErrorKind::TimedOut,
            "write still blocked when the run ended",
        )),
    }
}

/// Reconnects with backoff (50 ms doubling to 1 s) until connected or `stop`.
async fn reconnect(
    config: &Config,
    report: &mut Report,
    counters: &Counters,
    stop: &CancellationToken,
) -> Option<Stream> {
    counters.connected.fetch_sub(1, Relaxed);
    let mut retry = RECONNECT.retry();
    let tls = match config.tls.client() {
        Ok(tls) => tls,
        Err(e) => {
            tracing::error!(emitter = report.emitter, error = %e, "TLS settings unusable; not reconnecting");
            return None;
        }
    };
    loop {
        let attempt = tokio::select! {
            r = Stream::connect(config.target, tls.as_ref()) => r,
            _ = stop.cancelled() => return None,
        };
        match attempt {
            Ok(s) => {
                report.reconnects += 1;
                counters.reconnects.fetch_add(1, Relaxed);
                counters.connected.fetch_add(1, Relaxed);
                tracing::info!(emitter = report.emitter, "reconnected");
                return Some(s);
            }
            Err(e) => {
                tracing::debug!(emitter = report.emitter, error = %e, "reconnect failed");
                tokio::select! {
                    _ = tokio::time::sleep(retry.next_delay()) => {}
                    _ = stop.cancelled() => return None,
                }
            }
        }
    }
}
