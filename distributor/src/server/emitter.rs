//! Emitter connections: read LOG frames (each read sized by the connection's traffic, no
//! buffer while it is quiet), offer them to the engine in batches. A connection may open
//! with an EMITTER HELLO (PROTOCOL.md §5): its id names the emitter (and over mutual TLS
//! must be the certificate's identity), and with ACKs asked a writer task of its own sends
//! the secured count back whenever it grows.
//!
//! The read loop is lean, because at fan-in every message is one wake-up: per wake-up one
//! clock reading, one lock of the engine for the whole read, and a signal (close, or the
//! distributor stops) looked at with an atomic load, not a lock. There is no timer per
//! connection: the frame timeout is a sweep over every connection ([`super::conns`]), and
//! the shutdown grace makes one sleep, once. ACKs never hold up reading: the writer only
//! ever sends the latest count, and a full send buffer toward the emitter stops it alone.

use super::Shared;
use super::conns::{Signal, Slot};
use crate::accounting::{CloseReason, EmitterReject};
use crate::engine::{Now, Offer, Source};
use crate::secured::Origin;
use bytes::BytesMut;
use protocol::emitter::{EmitterDecoder, EmitterHello, Item, StreamError};
use protocol::log::LogFrame;
use runner::framed::FramedRead;
use runner::net::{ReadHalf, Stream, WriteHalf};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The largest read: enough for ~100 typical frames per syscall on a busy connection, small
/// enough that a few frames kept queued do not pin much memory each. Quiet connections read
/// far less (see `FramedRead::read_ready`).
const READ_CHUNK: usize = 64 * 1024;

/// At shutdown, how long an emitter connection is still read after the distributor
/// half-closed it (bounded by the drain timeout).
pub(super) const EMITTER_GRACE: Duration = Duration::from_secs(2);

/// When the connection ends, how long its ACK writer may still try to send the last count.
const LAST_ACK_WITHIN: Duration = Duration::from_secs(1);

/// The shortest time between two ACKs of one connection (PROTOCOL.md allows 50 ms from a
/// change of the count). Without a pace, an emitter that reads its ACKs slowly over a small
/// receive buffer gets a storm of 13-byte segments; on loopback, where every segment takes
/// far more of the buffer than its 13 bytes, the kernel then drops segments (with the
/// acknowledgments of the emitter's own data in them) and both directions of the
/// connection back off for tens of seconds: measured, 20 such emitters, 3 to 12 stalled.
const ACK_PACE: Duration = Duration::from_millis(5);

/// What bounds one emitter connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Largest `frame_len`.
    pub(super) max_frame: u32,
    /// At shutdown, how long the connection is still read.
    pub(super) grace: Duration,
}

/// One emitter connection, until EOF, an error, a protocol error, a limit that closes it,
/// or the end of the grace period after the distributor began to stop.
pub(super) async fn connection(
    shared: Arc<Shared>,
    stream: Stream,
    peer: SocketAddr,
    identity: Option<String>,
    limits: Limits,
) {
    // The distributor writes on this socket only ACKs (13 bytes, to emitters that asked
    // for them) and a REJECT: each should leave at once, not wait for Nagle. An error here
    // only loses an optimisation.
    let _ = stream.tcp().set_nodelay(true);
    let slot = shared.conns.open_from(Some(peer.ip()));
    shared.with(|c| c.emitter_connection(true));
    tracing::debug!(%peer, identity = identity.as_deref().unwrap_or(""), "emitter connected");
    let (rd, wr) = stream.split();
    let from = From::new(&shared, identity);
    let mut conn = Connection {
        shared: Arc::clone(&shared),
        slot,
        peer,
        limits,
        framed: FramedRead::new(rd, EmitterDecoder::new(limits.max_frame), READ_CHUNK),
        from,
        batch: VecDeque::new(),
        writer: Writer::Direct(wr),
        grace: None,
    };
    conn.serve().await;
    conn.writer.finish().await;
    drop(conn);
    shared.with(|c| c.emitter_connection(false));
    tracing::debug!(%peer, "emitter disconnected");
}

/// Why the read loop woke up.
enum Wake {
    /// The socket had something (or EOF, or an error).
    Read(std::io::Result<usize>),
    /// The connection was told something.
    Signal(Signal),
    /// The shutdown grace is over.
    GraceOver,
}

/// One emitter connection's state.
struct Connection {
    shared: Arc<Shared>,
    slot: Slot,
    peer: SocketAddr,
    limits: Limits,
    framed: FramedRead<ReadHalf, EmitterDecoder>,
    /// Who the emitter is, what it may send, whether it gets ACKs.
    from: From,
    /// Grows with the frames of one read; a quiet connection holds none.
    batch: VecDeque<LogFrame>,
    writer: Writer,
    /// Set at shutdown: the distributor has half-closed the connection and reads on until
    /// the emitter closes its side or this sleep ends.
    grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Connection {
    /// The read loop: one wake-up at a time until the connection ends.
    async fn serve(&mut self) {
        loop {
            let wake = tokio::select! {
                // Biased: the signal first (a close must not wait behind a busy socket),
                // and no random draw per wake-up.
                biased;
                s = self.slot.signal(self.grace.is_none()) => Wake::Signal(s),
                () = grace_over(&mut self.grace) => Wake::GraceOver,
                r = self.framed.read_ready() => Wake::Read(r),
            };
            let go_on = match wake {
                Wake::Read(r) => self.on_read(r).await,
                Wake::Signal(Signal::Stop) => {
                    self.begin_grace().await;
                    true
                }
                Wake::Signal(Signal::Close(reason)) => {
                    self.on_told(reason);
                    false
                }
                Wake::GraceOver => {
                    self.on_grace_over();
                    false
                }
            };
            if !go_on {
                return;
            }
        }
    }

    /// What a read brought: frames to offer, an EMITTER HELLO, EOF or an error. Returns
    /// whether to go on.
    async fn on_read(&mut self, read: std::io::Result<usize>) -> bool {
        let peer = self.peer;
        let got = match read {
            Ok(0) => {
                if self.framed.buffered() > 0 {
                    self.shared.with(|c| c.truncated());
                    tracing::warn!(%peer, bytes = self.framed.buffered(), offset = self.framed.decoder().offset(), "emitter closed mid-frame; partial frame lost");
                }
                return false;
            }
            Ok(n) => n,
            Err(e) => {
                tracing::info!(%peer, error = %e, "emitter connection error");
                return false;
            }
        };
        let mut hello = None;
        let fault = loop {
            match self.framed.decode() {
                Ok(Some(Item::Log(frame))) => self.batch.push_back(frame),
                Ok(Some(Item::Hello(h))) => hello = Some(h),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        if let Some(h) = hello {
            // Nothing of this connection was offered yet: the HELLO is its first bytes.
            if let Err(reason) = self.open(h) {
                self.reject(&reason).await;
                return false;
            }
        }
        if !self.from.admitted && !self.batch.is_empty() {
            // A stream without an EMITTER HELLO: judged by its certificate's identity (the
            // empty name without one), before any of its frames is taken.
            if !self.from.allowed(&self.shared) {
                self.batch.clear();
                self.shared
                    .with(|c| c.closed_connection(CloseReason::NotAllowed));
                tracing::warn!(%peer, identity = %self.from.name, "closing an emitter connection without an EMITTER HELLO: its identity may not connect as an emitter (the access file's roles.emitters)");
                return false;
            }
            self.from.admitted = true;
        }
        self.from.refresh(&self.shared);
        // One clock reading per wake-up serves the registry and the engine.
        let now = Now::read();
        // A frame completed: what is buffered now (if anything) began in this read.
        let completed = !self.batch.is_empty();
        self.slot
            .read(now.instant, got, self.framed.buffered(), completed);
        if !self.offer(now).await {
            // Received whole, but the grace ended before room freed: counted as dropped.
            let n = self.batch.len();
            self.shared.with(|c| c.drop_at_shutdown(&mut self.batch));
            tracing::warn!(%peer, frames = n, "shutdown grace ended with frames that found no room; dropped (reason shutdown)");
            return false;
        }
        match fault {
            None => true,
            Some(StreamError::Hello(e)) => {
                self.reject(&Refusal::Malformed(e)).await;
                false
            }
            Some(e @ (StreamError::Log(_) | StreamError::Decompress(_))) => {
                self.shared.with(|c| c.protocol_error());
                tracing::warn!(%peer, error = %e, "protocol error from emitter; closing this connection");
                false
            }
        }
    }

    /// The connection was told to close: counts and logs why.
    fn on_told(&mut self, reason: CloseReason) {
        let peer = self.peer;
        let partial = self.framed.buffered();
        self.shared.with(|c| {
            if partial > 0 {
                c.truncated();
            }
            c.closed_connection(reason);
        });
        let offset = self.framed.decoder().offset();
        match reason {
            CloseReason::MaxConnections => {
                tracing::debug!(%peer, "closing the emitter connection idle longest to admit a new one (--max-connections)")
            }
            CloseReason::SlowFrame => {
                tracing::warn!(%peer, bytes = partial, offset, "a frame did not arrive whole within the frame timeout; closing this connection")
            }
            _ => {
                tracing::warn!(%peer, bytes = partial, offset, "partial frames over --max-buffered-bytes: closing this connection (the largest partial frames go first, stalled ones before active ones); its partial frame is lost")
            }
        }
    }

    /// At the end of the shutdown grace: the frame under way is lost with the connection.
    fn on_grace_over(&mut self) {
        let peer = self.peer;
        tracing::warn!(%peer, grace_s = self.limits.grace.as_secs_f64(), "emitter did not close within the shutdown grace period");
        if self.framed.buffered() > 0 {
            // Counted, as at EOF.
            self.shared.with(|c| c.truncated());
            tracing::warn!(%peer, bytes = self.framed.buffered(), offset = self.framed.decoder().offset(), "partial frame lost at the end of the shutdown grace");
        }
    }

    /// At shutdown: half-closes the connection (FIN tells the emitter to stop at a frame
    /// boundary and close; what it has written until then is still read, so a cooperating
    /// emitter loses nothing) and starts the grace period.
    async fn begin_grace(&mut self) {
        self.writer.half_close().await;
        self.grace = Some(Box::pin(tokio::time::sleep(self.limits.grace)));
    }

    /// Offers the batch until it is all taken; under backpressure waits for room, until
    /// the grace period ends (returns false then; the frames stay in the batch). Frames
    /// taken leave the batch.
    async fn offer(&mut self, now: Now) -> bool {
        let source = &self.from.source;
        if self.batch.is_empty()
            || self.shared.with(|c| c.offer(&mut self.batch, now, source)) == Offer::Taken
        {
            return true;
        }
        let waited_from = Instant::now();
        self.slot.blocked(true, Duration::ZERO);
        let shared = Arc::clone(&self.shared);
        let taken = loop {
            // Register interest before trying again, so room freed in between is not missed.
            let room = shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let source = &self.from.source;
            if shared.with(|c| c.offer(&mut self.batch, Now::read(), source)) == Offer::Taken {
                break true;
            }
            tokio::select! {
                _ = &mut room => {}
                // A full journal frees room when the writer deletes a finished segment; its
                // wake-up is not registered ahead like `room`, so look again every 50 ms too.
                _ = journal_room(&shared) => {}
                s = self.slot.signal(self.grace.is_none()) => {
                    if s == Signal::Stop {
                        self.begin_grace().await;
                    }
                }
                () = grace_over(&mut self.grace) => break false,
            }
        };
        self.slot.blocked(false, waited_from.elapsed());
        taken
    }

    /// Applies the EMITTER HELLO that opened the connection; with ACKs asked, the writer
    /// becomes a task of its own.
    fn open(&mut self, hello: EmitterHello) -> Result<(), Refusal> {
        if let Some(origin) = self.from.open(&self.shared, hello)? {
            self.writer.start_acks(&self.shared, origin, self.peer);
        }
        Ok(())
    }

    /// Counts and logs a refused EMITTER HELLO, writes the REJECT (best effort).
    async fn reject(&mut self, reason: &Refusal) {
        let kind = match reason {
            Refusal::Malformed(_) => EmitterReject::Malformed,
            Refusal::Identity { .. } => EmitterReject::Identity,
            Refusal::NotAllowed { .. } => EmitterReject::NotAllowed,
        };
        self.shared.with(|c| {
            c.protocol_error();
            c.rejected_emitter_hello(kind);
        });
        tracing::warn!(peer = %self.peer, %reason, "rejecting emitter");
        let mut frame = BytesMut::new();
        protocol::analyzer::encode_reject(&reason.to_string(), &mut frame);
        self.writer.reject(&frame).await;
    }
}

/// Resolves when the shutdown grace ends; never before it began.
async fn grace_over(grace: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match grace {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Resolves when a full journal may have room again (never without a journal).
async fn journal_room(shared: &Shared) {
    match &shared.journal {
        Some(j) => {
            tokio::select! {
                _ = j.room() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        None => std::future::pending().await,
    }
}

/// Why an EMITTER HELLO is refused.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// Not an acceptable EMITTER HELLO.
    #[error(transparent)]
    Malformed(protocol::emitter::HelloError),
    /// Over mutual TLS, an id other than the certificate's identity.
    #[error("EMITTER HELLO id {id:?} is not this connection's certificate identity {identity:?}")]
    Identity {
        /// The id claimed.
        id: String,
        /// The identity proven.
        identity: String,
    },
    /// The access file does not let this identity be an emitter.
    #[error("{identity:?} may not connect as an emitter (the access file's roles.emitters)")]
    NotAllowed {
        /// The identity (or, without mutual TLS, the EMITTER HELLO id).
        identity: String,
    },
}

/// Who an emitter connection is and what follows from it.
struct From {
    /// The certificate's identity (mutual TLS).
    identity: Option<String>,
    /// The name access rules match: the identity, else the EMITTER HELLO's id, else "".
    name: String,
    /// What offers carry: the allowed priorities and the ACK origin.
    source: Source,
    /// The access rules' generation `source` was made from.
    generation: u64,
    /// Whether its role was checked (at the EMITTER HELLO, or the first frame without).
    admitted: bool,
}

impl From {
    fn new(shared: &Shared, identity: Option<String>) -> Self {
        let name = identity.clone().unwrap_or_default();
        let (generation, rules) = shared.access.current();
        Self {
            identity,
            source: Source {
                priorities: rules.priorities(&name),
                origin: None,
            },
            name,
            generation,
            admitted: false,
        }
    }

    /// Whether the access rules let this connection's name be an emitter.
    fn allowed(&self, shared: &Shared) -> bool {
        shared.access.current().1.emitter_allowed(&self.name)
    }

    /// Picks up reloaded access rules (one atomic load when they did not change).
    fn refresh(&mut self, shared: &Shared) {
        if shared.access.generation() != self.generation {
            let (generation, rules) = shared.access.current();
            self.generation = generation;
            self.source.priorities = rules.priorities(&self.name);
        }
    }

    /// Applies the EMITTER HELLO that opened the connection; the ACK origin when it asked
    /// for ACKs.
    fn open(
        &mut self,
        shared: &Shared,
        hello: EmitterHello,
    ) -> Result<Option<Arc<Origin>>, Refusal> {
        if let Some(identity) = &self.identity
            && *identity != hello.id
        {
            return Err(Refusal::Identity {
                id: hello.id,
                identity: identity.clone(),
            });
        }
        if self.identity.is_none() {
            self.name = hello.id;
            self.generation = u64::MAX;
            self.refresh(shared);
        }
        if !self.allowed(shared) {
            return Err(Refusal::NotAllowed {
                identity: self.name.clone(),
            });
        }
        self.admitted = true;
        tracing::debug!(emitter = %self.name, acks = hello.acks, "EMITTER HELLO");
        if !hello.acks {
            return Ok(None);
        }
        let origin = Origin::new();
        self.source.origin = Some(Arc::clone(&origin));
        shared.with(|c| c.acked_emitter_connection());
        Ok(Some(origin))
    }
}

/// The write side of an emitter connection: ours while nothing but a REJECT or a FIN may
/// go out, the ACK writer's once ACKs were asked for.
enum Writer {
    /// The read loop writes (a REJECT, the FIN at shutdown).
    Direct(WriteHalf),
    /// An ACK writer task owns it.
    Acks(AckWriter),
    /// Closed, or being handed over.
    Gone,
}

impl Writer {
    /// Hands the write side to an ACK writer task.
    fn start_acks(&mut self, shared: &Arc<Shared>, origin: Arc<Origin>, peer: SocketAddr) {
        if let Writer::Direct(wr) = std::mem::replace(self, Writer::Gone) {
            *self = Writer::Acks(AckWriter::start(Arc::clone(shared), origin, wr, peer));
        }
    }

    /// Writes a REJECT and closes (within 1 s, best effort: the peer may be gone).
    async fn reject(&mut self, frame: &[u8]) {
        if let Writer::Direct(wr) = self {
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                let _ = wr.write_all(frame).await;
                let _ = wr.shutdown().await;
            })
            .await;
        }
    }

    /// Half-closes the connection (after the last ACK, with an ACK writer).
    async fn half_close(&mut self) {
        match std::mem::replace(self, Writer::Gone) {
            Writer::Direct(mut wr) => {
                let _ = wr.shutdown().await;
            }
            Writer::Acks(acks) => acks.finish(),
            Writer::Gone => {}
        }
    }

    /// The connection ends: an ACK writer sends the last count (briefly) and stops.
    async fn finish(&mut self) {
        if let Writer::Acks(acks) = std::mem::replace(self, Writer::Gone) {
            acks.finish();
        }
    }
}

/// The task that writes a connection's ACKs: it holds only the latest secured count, so
/// however far behind the emitter is in reading them, it sends one frame per write, never
/// a backlog, and the read side never waits for it.
struct AckWriter {
    /// Tells the task to send the last count and half-close.
    done: Arc<Notify>,
}

impl AckWriter {
    fn start(shared: Arc<Shared>, origin: Arc<Origin>, wr: WriteHalf, peer: SocketAddr) -> Self {
        let done = Arc::new(Notify::new());
        tokio::spawn(ack_loop(shared, origin, wr, Arc::clone(&done), peer));
        Self { done }
    }

    /// Asks the task to send the last count and close its side.
    fn finish(self) {
        self.done.notify_one();
    }
}

/// Writes an ACK whenever the secured count grew, until told to finish (then the last
/// count, within [`LAST_ACK_WITHIN`], and a FIN) or the write fails.
async fn ack_loop(
    shared: Arc<Shared>,
    origin: Arc<Origin>,
    mut wr: WriteHalf,
    done: Arc<Notify>,
    peer: SocketAddr,
) {
    let mut sent = 0u64;
    let mut buf = BytesMut::with_capacity(protocol::analyzer::ACK_LEN as usize);
    // Set when told to finish during the pace after a write.
    let mut finishing = false;
    loop {
        if !finishing {
            finishing = tokio::select! {
                () = origin.changed() => false,
                () = done.notified() => true,
            };
        }
        let write = send_ack(&shared, &origin, &mut wr, &mut sent, &mut buf);
        let wrote = if finishing {
            tokio::time::timeout(LAST_ACK_WITHIN, write)
                .await
                .unwrap_or(Ok(()))
        } else {
            // A write waits as long as the emitter does not read; meanwhile the count
            // keeps growing and the next write carries it.
            tokio::select! {
                r = write => r,
                () = done.notified() => {
                    let _ = wr.shutdown().await;
                    return;
                }
            }
        };
        if let Err(e) = wrote {
            tracing::info!(%peer, error = %e, "cannot write ACKs to the emitter");
            return;
        }
        if finishing {
            let _ = tokio::time::timeout(LAST_ACK_WITHIN, wr.shutdown()).await;
            return;
        }
        // What changes meanwhile goes out in the next ACK (the change is kept).
        finishing = tokio::select! {
            () = tokio::time::sleep(ACK_PACE) => false,
            () = done.notified() => true,
        };
    }
}

/// Writes one ACK with the secured count, if it grew since `sent`.
async fn send_ack(
    shared: &Shared,
    origin: &Origin,
    wr: &mut WriteHalf,
    sent: &mut u64,
    buf: &mut BytesMut,
) -> std::io::Result<()> {
    let count = origin.secured();
    if count <= *sent {
        return Ok(());
    }
    buf.clear();
    protocol::analyzer::encode_ack(count, buf);
    wr.write_all(buf).await?;
    wr.flush().await?;
    *sent = count;
    shared.with(|c| c.emitter_ack());
    Ok(())
}
