//! One analyzer connection at a time: connect, HELLO, read and verify DELIVER frames, log
//! them, ACK what is logged; after a failure reconnect with backoff (100 ms doubling to
//! 2 s) and log the gap.

use crate::Config;
use crate::pace::{Pacer, rate_from_flags};
use crate::record::{LinkRow, Recorder, TotalsRow};
use crate::verify::{Counts, Tracker};
use bytes::BytesMut;
use protocol::analyzer::{self as wire, Downstream, DownstreamDecoder, DownstreamStats, Hello};
use runner::backoff::Backoff;
use runner::framed::FramedRead;
use runner::net::{Stream, WriteHalf};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;

/// ACK at least this often while frames are unacknowledged.
const ACK_INTERVAL: Duration = Duration::from_millis(100);
/// ... or after this many frames.
const ACK_EVERY: u64 = 1024;
/// On shutdown, the session stops once nothing has arrived for this long.
const QUIET: Duration = Duration::from_millis(300);
/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 * 1024;
/// While the distributor cannot be reached, a WARN this often.
const UNREACHABLE_EVERY: Duration = Duration::from_secs(10);
/// Reconnects: 100 ms doubling to 2 s.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));

/// Why a session that was under way ended; the sink reconnects.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    /// The HELLO could not be sent.
    #[error("sending HELLO: {0}")]
    SendHello(std::io::Error),
    /// An ACK could not be sent.
    #[error("sending ACK: {0}")]
    SendAck(std::io::Error),
    /// The distributor closed the connection.
    #[error("the distributor closed the connection")]
    Closed,
    /// A read failed.
    #[error("read error: {0}")]
    Read(std::io::Error),
    /// The distributor sent bytes that are not a frame.
    #[error("bad frame from the distributor: {0}")]
    BadFrame(protocol::analyzer::DownstreamError),
    /// The sink is stopping (planned).
    #[error("stopping")]
    Stopping,
}

/// How a session ended.
enum End {
    /// Could not connect.
    Connect(std::io::Error),
    /// The connection failed or closed; reconnect.
    Lost(Lost),
    /// The distributor refused the HELLO; reconnecting would not help.
    Rejected(String),
    /// Logging failed; stop.
    Fatal(anyhow::Error),
}

/// The sink's state across sessions.
#[derive(Debug)]
pub struct Sink {
    config: Config,
    /// TLS to the distributor (`--tls-ca`).
    tls: Option<runner::tls::Client>,
    tracker: Tracker,
    recorder: Recorder,
    pacer: Pacer,
    /// Set by SIGUSR1 (slow phase on), cleared by SIGUSR2.
    slow: Arc<AtomicBool>,
    sessions: u64,
    first_arrival_ns: u64,
    last_arrival_ns: u64,
    /// What the links carried, over every session.
    link: DownstreamStats,
    /// Sessions ended by a bad frame from the distributor.
    bad_frames: u64,
}

impl Sink {
    /// Opens the output files.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let recorder = Recorder::open(config.log, &config.out, &config.id)?;
        let tls = config.tls.client()?;
        Ok(Self {
            tls,
            pacer: Pacer::new(rate_from_flags(config.capacity, config.delay_us)),
            slow: Arc::new(AtomicBool::new(false)),
            config,
            tracker: Tracker::new(),
            recorder,
            sessions: 0,
            first_arrival_ns: 0,
            last_arrival_ns: 0,
            link: DownstreamStats::default(),
            bad_frames: 0,
        })
    }

    /// The flag that switches the slow phase (`--slow-capacity`) on and off.
    pub fn slow_switch(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.slow)
    }

    /// The rate in force now.
    fn rate(&self) -> Option<f64> {
        match (self.slow.load(Ordering::Relaxed), self.config.slow_capacity) {
            (true, Some(slow)) => Some(slow),
            _ => rate_from_flags(self.config.capacity, self.config.delay_us),
        }
    }

    /// Sessions until `shutdown`; then flush and write the totals.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<Counts> {
        tokio::pin!(shutdown);
        let mut retry = RECONNECT.retry();
        let mut unreachable_said: Option<Instant> = None;
        let mut down_since: Option<Instant> = None;
        let mut failure: Option<anyhow::Error> = None;
        // Set on shutdown: the session under way reads what the distributor already sent
        // (until it closes, or nothing comes for QUIET), then the sink stops.
        let stopping = CancellationToken::new();
        loop {
            if stopping.is_cancelled() {
                break;
            }
            let end = {
                let session = self.session(&mut down_since, &stopping);
                tokio::pin!(session);
                loop {
                    tokio::select! {
                        e = &mut session => break e,
                        _ = &mut shutdown, if !stopping.is_cancelled() => stopping.cancel(),
                    }
                }
            };
            if stopping.is_cancelled() && !matches!(end, End::Rejected(_) | End::Fatal(_)) {
                break;
            }
            match end {
                End::Connect(e) => {
                    // Said at the first failure and every 10 s after, not at each retry.
                    if unreachable_said.is_none_or(|t: Instant| t.elapsed() >= UNREACHABLE_EVERY) {
                        unreachable_said = Some(Instant::now());
                        tracing::warn!(id = %self.config.id, distributor = %self.config.distributor, error = %e, attempts = retry.attempts() + 1, "cannot reach the distributor; retrying");
                    } else {
                        tracing::debug!(error = %e, "cannot connect to the distributor");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(retry.next_delay()) => {}
                        _ = &mut shutdown => break,
                    }
                }
                End::Lost(why) => {
                    // A clean close is the distributor's own doing (shutdown, restart, or
                    // a failure it logs itself); an error or a bad frame is news.
                    if matches!(why, Lost::Closed) {
                        tracing::info!(id = %self.config.id, %why, "session closed; reconnecting");
                    } else if matches!(why, Lost::BadFrame(_)) {
                        self.bad_frames += 1;
                        tracing::error!(id = %self.config.id, session = self.sessions, %why, "protocol error from the distributor; reconnecting");
                    } else {
                        tracing::warn!(id = %self.config.id, %why, "session lost; reconnecting");
                    }
                    down_since = Some(Instant::now());
                    // Just said; if the distributor stays away, say so again in 10 s.
                    unreachable_said = Some(Instant::now());
                    retry.reset();
                    // Not at once: a distributor that is shutting down still accepts for a
                    // moment and would only reset the new connection.
                    tokio::select! {
                        _ = tokio::time::sleep(retry.next_delay()) => {}
                        _ = &mut shutdown => break,
                    }
                }
                End::Rejected(reason) => {
                    failure = Some(anyhow::anyhow!(
                        "the distributor rejected the HELLO: {reason}"
                    ));
                    break;
                }
                End::Fatal(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let counts = self.tracker.counts();
        let totals = TotalsRow {
            id: self.config.id.clone(),
            mode: self.config.log,
            traffic: self.config.traffic,
            sessions: self.sessions,
            first_arrival_ns: self.first_arrival_ns,
            last_arrival_ns: self.last_arrival_ns,
        };
        let link = LinkRow {
            id: self.config.id.clone(),
            compression: self.config.compress,
            stats: self.link,
            bad_frames: self.bad_frames,
        };
        self.recorder.finish(&self.tracker, &totals, &link)?;
        tracing::info!(
            id = %self.config.id, received = counts.received, unique = counts.unique,
            duplicates = counts.duplicates, corrupt = counts.corrupt, non_probe = counts.non_probe,
            sessions = self.sessions, "sink finished"
        );
        match failure {
            Some(e) => Err(e),
            None => Ok(counts),
        }
    }

    async fn connect(&self) -> std::io::Result<Stream> {
        let addr = self.config.distributor;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(bytes) = self.config.recv_buffer {
            socket.set_recv_buffer_size(bytes)?;
        }
        let stream = socket.connect(addr).await?;
        // ACKs are 13 bytes; send them now rather than wait to coalesce.
        stream.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Stream::Plain(stream)),
            Some(client) => client
                .handshake(stream, addr)
                .await
                .map_err(std::io::Error::other),
        }
    }

    async fn session(
        &mut self,
        down_since: &mut Option<Instant>,
        stopping: &CancellationToken,
    ) -> End {
        let stream = match self.connect().await {
            Ok(s) => s,
            Err(e) => return End::Connect(e),
        };
        let (rd, mut wr) = stream.split();
        let hello = Hello {
            version: wire::VERSION,
            acks: self.config.acks,
            compression: self.config.compress.map(crate::codec),
            weight: self.config.weight,
            id: self.config.id.clone(),
        };
        let mut out = BytesMut::new();
        if let Err(e) = hello.encode(&mut out) {
            return End::Fatal(e.into());
        }
        if let Err(e) = write_flushed(&mut wr, &out).await {
            return End::Lost(Lost::SendHello(e));
        }
        self.sessions += 1;
        self.tracker.new_session();
        match down_since.take() {
            Some(t) => {
                tracing::info!(id = %self.config.id, gap_s = t.elapsed().as_secs_f64(), "reconnected")
            }
            None => {
                tracing::info!(id = %self.config.id, distributor = %self.config.distributor, "connected")
            }
        }
        let decoder = DownstreamDecoder::new(self.config.max_frame)
            .with_codec(self.config.compress.map(crate::codec));
        let mut framed = FramedRead::new(rd, decoder, READ_CHUNK);
        let end = self.read_session(&mut framed, &mut wr, stopping).await;
        let s = framed.decoder().stats();
        self.link.wire_bytes += s.wire_bytes;
        self.link.raw_bytes += s.raw_bytes;
        self.link.batches += s.batches;
        self.link.batched += s.batched;
        end
    }

    /// Reads, verifies, logs and ACKs one session's frames until it ends.
    async fn read_session(
        &mut self,
        framed: &mut FramedRead<runner::net::ReadHalf, DownstreamDecoder>,
        wr: &mut WriteHalf,
        stopping: &CancellationToken,
    ) -> End {
        let base = self.tracker.counts().received;
        let mut acks = AckState {
            sent: 0,
            at: Instant::now(),
        };
        let mut tick = tokio::time::interval(ACK_INTERVAL);
        let mut quiet_until: Option<tokio::time::Instant> = None;
        loop {
            // Stopping: what is already in the socket is still read; the session ends
            // once nothing has arrived for QUIET.
            if stopping.is_cancelled() && quiet_until.is_none() {
                quiet_until = Some(tokio::time::Instant::now() + QUIET);
            }
            // Completes with true when the quiet deadline passes, false when stopping begins.
            let quiet = async {
                match quiet_until {
                    Some(t) => {
                        tokio::time::sleep_until(t).await;
                        true
                    }
                    None => {
                        stopping.cancelled().await;
                        false
                    }
                }
            };
            let read = tokio::select! {
                r = framed.read() => r,
                _ = tick.tick() => {
                    if let Err(e) = self.ack(wr, &mut acks, base, true).await {
                        return e;
                    }
                    continue;
                }
                passed = quiet => {
                    if !passed {
                        quiet_until = Some(tokio::time::Instant::now() + QUIET);
                        continue;
                    }
                    // Final ACK for what was logged, then stop.
                    let _ = self.recorder.flush_pending();
                    let _ = self.ack(wr, &mut acks, base, true).await;
                    return End::Lost(Lost::Stopping);
                }
            };
            match read {
                Ok(0) => return End::Lost(Lost::Closed),
                Ok(_) if quiet_until.is_some() => {
                    quiet_until = Some(tokio::time::Instant::now() + QUIET)
                }
                Ok(_) => {}
                Err(e) => return End::Lost(Lost::Read(e)),
            }
            loop {
                let frame = match framed.decode() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return End::Lost(Lost::BadFrame(e)),
                };
                let d = match frame {
                    Downstream::Deliver(d) => d,
                    Downstream::Reject(reason) => return End::Rejected(reason),
                };
                let rate = self.rate();
                self.pacer.set_rate(rate, Instant::now());
                let wait = self.pacer.admit(Instant::now());
                if !wait.is_zero() {
                    // A slow sink: hand over what is recorded and ACK it before waiting.
                    if let Err(e) = self.recorder.flush_pending() {
                        return End::Fatal(e);
                    }
                    if let Err(e) = self.ack(wr, &mut acks, base, false).await {
                        return e;
                    }
                    tokio::time::sleep(wait).await;
                }
                let now = protocol::now_ns();
                let arrival = self.tracker.observe(&d, now);
                if self.first_arrival_ns == 0 {
                    self.first_arrival_ns = now;
                }
                self.last_arrival_ns = now;
                if let Err(e) = self.recorder.record(arrival) {
                    return End::Fatal(e);
                }
            }
            if let Err(e) = self.recorder.flush_pending() {
                return End::Fatal(e);
            }
            if let Err(e) = self.ack(wr, &mut acks, base, false).await {
                return e;
            }
        }
    }

    /// Sends a cumulative ACK for what is recorded, when due (`timer`: the interval passed).
    async fn ack(
        &self,
        wr: &mut WriteHalf,
        acks: &mut AckState,
        base: u64,
        timer: bool,
    ) -> Result<(), End> {
        if !self.config.acks {
            return Ok(());
        }
        let received = self.tracker.counts().received - base;
        let recorded = self.recorder.recorded().saturating_sub(base).min(received);
        let due = recorded > acks.sent
            && (timer || recorded - acks.sent >= ACK_EVERY || acks.at.elapsed() >= ACK_INTERVAL);
        if !due {
            return Ok(());
        }
        let mut out = BytesMut::with_capacity(13);
        wire::encode_ack(recorded, &mut out);
        write_flushed(wr, &out)
            .await
            .map_err(|e| End::Lost(Lost::SendAck(e)))?;
        acks.sent = recorded;
        acks.at = Instant::now();
        Ok(())
    }
}

/// Writes `bytes` onto the socket (over TLS, out of the session too).
async fn write_flushed(wr: &mut WriteHalf, bytes: &[u8]) -> std::io::Result<()> {
    wr.write_all(bytes).await?;
    wr.flush().await
}

/// The last ACK of a session.
struct AckState {
    sent: u64,
    at: Instant,
}
