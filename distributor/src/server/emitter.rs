//! Emitter connections: read LOG frames (each read sized by the connection's traffic, no
//! buffer while it is quiet), offer them to the core in batches. A connection may open with
//! an EMITTER HELLO (PROTOCOL.md §5): its id names the emitter (and over mutual TLS must be
//! the certificate's identity), and with ACKs asked the connection writes the secured count
//! back whenever it grows.

use super::Shared;
use super::conns::Slot;
use crate::accounting::{CloseReason, EmitterReject};
use crate::engine::{Now, Offer, Source};
use crate::secured::Origin;
use bytes::BytesMut;
use protocol::emitter::{EmitterDecoder, EmitterHello, Item, StreamError};
use protocol::log::LogFrame;
use runner::framed::FramedRead;
use runner::net::{Stream, WriteHalf};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// An emitter that does not read its ACKs for this long (its receive buffer full) has its
/// connection closed; what it sent is still accounted for.
const ACK_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest read: enough for ~100 typical frames per syscall on a busy connection, small
/// enough that a few frames kept queued do not pin much memory each. Quiet connections read
/// far less (see `FramedRead::read_ready`).
const READ_CHUNK: usize = 64 * 1024;

/// At shutdown, how long an emitter connection is still read after the distributor
/// half-closed it (bounded by the drain timeout).
pub(super) const EMITTER_GRACE: Duration = Duration::from_secs(2);

/// What bounds one emitter connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Largest `frame_len`.
    pub(super) max_frame: u32,
    /// At shutdown, how long the connection is still read.
    pub(super) grace: Duration,
    /// How long a frame may take to arrive whole once it began (our own backpressure
    /// waits excluded); past it the connection ends, counted as `slow_frame`.
    pub(super) frame_timeout: Duration,
}

/// One emitter connection, until EOF, an error, a protocol error, a limit that closes it,
/// or the end of the grace period after `stop`.
pub(super) async fn connection(
    shared: Arc<Shared>,
    stream: Stream,
    peer: SocketAddr,
    identity: Option<String>,
    limits: Limits,
    stop: CancellationToken,
) {
    let Limits {
        max_frame,
        grace,
        frame_timeout,
    } = limits;
    // The distributor writes on this socket only ACKs (13 bytes, to emitters that asked
    // for them) and a REJECT: each should leave at once, not wait for Nagle. An error here
    // only loses an optimisation.
    let _ = stream.tcp().set_nodelay(true);
    let slot = shared.conns.open();
    shared.with(|c| c.emitter_connection(true));
    tracing::debug!(%peer, identity = identity.as_deref().unwrap_or(""), "emitter connected");
    let (rd, mut wr) = stream.split();
    let mut framed = FramedRead::new(rd, EmitterDecoder::new(max_frame), READ_CHUNK);
    // Who the emitter is (its certificate's identity, else its EMITTER HELLO's id), what it
    // may send, and whether it gets ACKs.
    let mut from = From::new(&shared, identity);
    // Grows with the frames of one read; a quiet connection holds none.
    let mut batch: VecDeque<LogFrame> = VecDeque::new();
    // Set at shutdown: the distributor has half-closed the connection and reads on until
    // the emitter closes its side or this deadline passes.
    let mut grace_until: Option<Instant> = None;
    // When the frame now partly buffered is due whole.
    let mut frame_due: Option<Instant> = None;
    {
        // Made once, not per read: each one registers with its token (a lock) when first polled.
        let told = slot.told();
        tokio::pin!(told);
        let stopping = stop.cancelled();
        tokio::pin!(stopping);
        loop {
            from.refresh(&shared);
            let read = tokio::select! {
                r = framed.read_ready() => r,
                () = from.acks.changed(), if from.acks.wanted() => {
                    if let Err(e) = from.acks.send(&shared, &mut wr).await {
                        tracing::warn!(%peer, error = %e, "cannot write ACKs to the emitter; closing this connection");
                        break;
                    }
                    continue;
                }
                _ = &mut told => {
                    let reason = slot.reason().unwrap_or(CloseReason::BufferBudget);
                    let partial = framed.buffered();
                    shared.with(|c| {
                        if partial > 0 {
                            c.truncated();
                        }
                        c.closed_connection(reason);
                    });
                    match reason {
                        CloseReason::MaxConnections => tracing::debug!(%peer, "closing the emitter connection idle longest to admit a new one (--max-connections)"),
                        _ => tracing::warn!(%peer, bytes = partial, offset = framed.decoder().offset(), "partial frames over --max-buffered-bytes: closing this connection (the largest partial frames go first, stalled ones before active ones); its partial frame is lost"),
                    }
                    break;
                }
                _ = tokio::time::sleep_until(frame_due.unwrap_or_else(Instant::now)), if frame_due.is_some() => {
                    shared.with(|c| {
                        c.truncated();
                        c.closed_connection(CloseReason::SlowFrame);
                    });
                    tracing::warn!(%peer, bytes = framed.buffered(), offset = framed.decoder().offset(), timeout_s = frame_timeout.as_secs_f64(), "a frame did not arrive whole within the frame timeout; closing this connection");
                    break;
                }
                _ = &mut stopping, if grace_until.is_none() => {
                    grace_until = Some(begin_grace(&mut wr, grace).await);
                    continue;
                }
                _ = tokio::time::sleep_until(grace_until.unwrap_or_else(Instant::now)), if grace_until.is_some() => {
                    tracing::warn!(%peer, grace_s = grace.as_secs_f64(), "emitter did not close within the shutdown grace period");
                    if framed.buffered() > 0 {
                        // The frame under way is lost with the connection: counted, as at EOF.
                        shared.with(|c| c.truncated());
                        tracing::warn!(%peer, bytes = framed.buffered(), offset = framed.decoder().offset(), "partial frame lost at the end of the shutdown grace");
                    }
                    break;
                }
            };
            let got = match read {
                Ok(0) => {
                    if framed.buffered() > 0 {
                        shared.with(|c| c.truncated());
                        tracing::warn!(%peer, bytes = framed.buffered(), offset = framed.decoder().offset(), "emitter closed mid-frame; partial frame lost");
                    }
                    break;
                }
                Ok(n) => n,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "emitter connection error");
                    break;
                }
            };
            let mut hello = None;
            let fault = loop {
                match framed.decode() {
                    Ok(Some(Item::Log(frame))) => batch.push_back(frame),
                    Ok(Some(Item::Hello(h))) => hello = Some(h),
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            if let Some(h) = hello {
                // Nothing of this connection was offered yet: the HELLO is its first bytes.
                if let Err(reason) = from.open(&shared, h) {
                    reject(&shared, &mut wr, peer, &reason).await;
                    break;
                }
            }
            // One clock read serves the registry and the frame timeout.
            let offered = Instant::now();
            slot.read(offered.into_std(), got, framed.buffered());
            // A frame completed: what is buffered now (if anything) is a new frame.
            let completed = !batch.is_empty();
            let taken = loop {
                match offer(
                    &shared,
                    &slot,
                    &mut batch,
                    &mut from,
                    &mut wr,
                    &stop,
                    grace_until,
                )
                .await
                {
                    Wait::Taken => break true,
                    Wait::Stopping => grace_until = Some(begin_grace(&mut wr, grace).await),
                    Wait::GraceOver => break false,
                }
            };
            if !taken {
                // Received whole, but the grace ended before room freed: counted as dropped.
                let n = batch.len();
                shared.with(|c| c.drop_at_shutdown(&mut batch));
                tracing::warn!(%peer, frames = n, "shutdown grace ended with frames that found no room; dropped (reason shutdown)");
                break;
            }
            // The frame timeout counts the emitter's time, not ours: a backpressure wait
            // pushes the deadline back by its length.
            frame_due = match (framed.buffered(), frame_due) {
                (0, _) => None,
                (_, Some(due)) if !completed => Some(due + offered.elapsed()),
                _ => Some(Instant::now() + frame_timeout),
            };
            match fault {
                None => {}
                Some(StreamError::Hello(e)) => {
                    reject(&shared, &mut wr, peer, &Refusal::Malformed(e)).await;
                    break;
                }
                Some(e @ (StreamError::Log(_) | StreamError::Decompress(_))) => {
                    shared.with(|c| c.protocol_error());
                    tracing::warn!(%peer, error = %e, "protocol error from emitter; closing this connection");
                    break;
                }
            }
        }
    }
    drop(slot);
    shared.with(|c| c.emitter_connection(false));
    tracing::debug!(%peer, "emitter disconnected");
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
}

/// Counts and logs a refused EMITTER HELLO, writes the REJECT (best effort).
async fn reject(shared: &Shared, wr: &mut WriteHalf, peer: SocketAddr, reason: &Refusal) {
    let kind = match reason {
        Refusal::Malformed(_) => EmitterReject::Malformed,
        Refusal::Identity { .. } => EmitterReject::Identity,
    };
    shared.with(|c| {
        c.protocol_error();
        c.rejected_emitter_hello(kind);
    });
    tracing::warn!(%peer, %reason, "rejecting emitter");
    let mut frame = BytesMut::new();
    protocol::analyzer::encode_reject(&reason.to_string(), &mut frame);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = wr.write_all(&frame).await;
        let _ = wr.shutdown().await;
    })
    .await;
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
    acks: Acks,
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
            acks: Acks::default(),
        }
    }

    /// Picks up reloaded access rules.
    fn refresh(&mut self, shared: &Shared) {
        if shared.access.generation() != self.generation {
            let (generation, rules) = shared.access.current();
            self.generation = generation;
            self.source.priorities = rules.priorities(&self.name);
        }
    }

    /// Applies the EMITTER HELLO that opened the connection.
    fn open(&mut self, shared: &Shared, hello: EmitterHello) -> Result<(), Refusal> {
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
        if hello.acks {
            let origin = Origin::new();
            self.source.origin = Some(Arc::clone(&origin));
            self.acks.origin = Some(origin);
            shared.with(|c| c.acked_emitter_connection());
        }
        tracing::debug!(emitter = %self.name, acks = hello.acks, "EMITTER HELLO");
        Ok(())
    }
}

/// The ACKs of a connection that asked for them.
#[derive(Default)]
struct Acks {
    origin: Option<Arc<Origin>>,
    /// The count last written.
    sent: u64,
    buf: BytesMut,
}

impl Acks {
    fn wanted(&self) -> bool {
        self.origin.is_some()
    }

    /// Resolves when the secured count grew (never without ACKs).
    async fn changed(&self) {
        match &self.origin {
            Some(o) => o.changed().await,
            None => std::future::pending().await,
        }
    }

    /// Writes an ACK with the secured count, if it grew.
    async fn send(&mut self, shared: &Shared, wr: &mut WriteHalf) -> std::io::Result<()> {
        let Some(origin) = &self.origin else {
            return Ok(());
        };
        let count = origin.secured();
        if count <= self.sent {
            return Ok(());
        }
        self.buf.clear();
        protocol::analyzer::encode_ack(count, &mut self.buf);
        let write = async {
            wr.write_all(&self.buf).await?;
            wr.flush().await
        };
        tokio::time::timeout(ACK_WRITE_TIMEOUT, write)
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the emitter has not read its ACKs for 10 s",
                )
            })??;
        self.sent = count;
        shared.with(|c| c.emitter_ack());
        Ok(())
    }
}

/// At shutdown: half-closes the connection (FIN tells the emitter to stop at a frame
/// boundary and close; what it has written until then is still read, so a cooperating
/// emitter loses nothing). Returns the end of the grace period.
async fn begin_grace(wr: &mut WriteHalf, grace: Duration) -> Instant {
    let _ = wr.shutdown().await;
    Instant::now() + grace
}

/// How an offer ended.
enum Wait {
    /// Every frame of the batch was taken.
    Taken,
    /// Shutdown began while the batch waited for room.
    Stopping,
    /// The shutdown grace ended while the batch waited for room.
    GraceOver,
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

/// Offers `batch` until it is all taken; under backpressure waits for room, until `stop`
/// (when not stopping yet) or the end of the grace period `grace_until`. Frames taken
/// leave the batch; the others stay in it.
/// ACKs keep flowing while the batch waits: the emitter may be waiting for them.
async fn offer(
    shared: &Shared,
    slot: &Slot,
    batch: &mut VecDeque<LogFrame>,
    from: &mut From,
    wr: &mut WriteHalf,
    stop: &CancellationToken,
    grace_until: Option<Instant>,
) -> Wait {
    let source = &from.source;
    if batch.is_empty() || shared.with(|c| c.offer(batch, Now::read(), source)) == Offer::Taken {
        return Wait::Taken;
    }
    slot.blocked(true);
    let wait = loop {
        // Register interest before trying again, so room freed in between is not missed.
        let room = shared.room.notified();
        tokio::pin!(room);
        room.as_mut().enable();
        if shared.with(|c| c.offer(batch, Now::read(), &from.source)) == Offer::Taken {
            break Wait::Taken;
        }
        tokio::select! {
            _ = &mut room => {}
            // A full journal frees room when the writer deletes a finished segment; its
            // wake-up is not registered ahead like `room`, so look again every 50 ms too.
            _ = journal_room(shared) => {}
            _ = from.acks.changed(), if from.acks.wanted() => {
                // A failed write ends the connection at its next read.
                let _ = from.acks.send(shared, wr).await;
            }
            _ = stop.cancelled(), if grace_until.is_none() => break Wait::Stopping,
            _ = tokio::time::sleep_until(grace_until.unwrap_or_else(Instant::now)), if grace_until.is_some() => break Wait::GraceOver,
        }
    };
    slot.blocked(false);
    wait
}
