//! Emitter connections: read LOG frames (each read sized by the connection's traffic, no
//! buffer while it is quiet), offer them to the core in batches.

use super::Shared;
use super::conns::Slot;
use crate::core::{Now, Offer};
use crate::stats::CloseReason;
use protocol::log::{LogDecoder, LogFrame};
use runner::framed::FramedRead;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
    stream: TcpStream,
    peer: SocketAddr,
    limits: Limits,
    stop: CancellationToken,
) {
    let Limits {
        max_frame,
        grace,
        frame_timeout,
    } = limits;
    // Emitters send small frames back to back; the distributor never replies on this
    // socket, so Nagle's algorithm has nothing to delay, but set it off for symmetry with
    // analyzer sockets. An error here only loses an optimisation.
    let _ = stream.set_nodelay(true);
    let slot = shared.conns.open();
    shared.with(|c| c.emitter_connection(true));
    tracing::debug!(%peer, "emitter connected");
    let (rd, mut wr) = stream.into_split();
    let mut framed = FramedRead::new(rd, LogDecoder::new(max_frame), READ_CHUNK);
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
            let read = tokio::select! {
                r = framed.read_ready() => r,
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
            let fault = loop {
                match framed.decode() {
                    Ok(Some(frame)) => batch.push_back(frame),
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            // One clock read serves the registry and the frame timeout.
            let offered = Instant::now();
            slot.read(offered.into_std(), got, framed.buffered());
            // A frame completed: what is buffered now (if anything) is a new frame.
            let completed = !batch.is_empty();
            let taken = loop {
                match offer(&shared, &slot, &mut batch, &stop, grace_until).await {
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
            if let Some(e) = fault {
                shared.with(|c| c.protocol_error());
                tracing::warn!(%peer, error = %e, "protocol error from emitter; closing this connection");
                break;
            }
        }
    }
    drop(slot);
    shared.with(|c| c.emitter_connection(false));
    tracing::debug!(%peer, "emitter disconnected");
}

/// At shutdown: half-closes the connection (FIN tells the emitter to stop at a frame
/// boundary and close; what it has written until then is still read, so a cooperating
/// emitter loses nothing). Returns the end of the grace period.
async fn begin_grace(wr: &mut OwnedWriteHalf, grace: Duration) -> Instant {
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

/// Offers `batch` until it is all taken; under backpressure waits for room, until `stop`
/// (when not stopping yet) or the end of the grace period `grace_until`. Frames taken
/// leave the batch; the others stay in it.
async fn offer(
    shared: &Shared,
    slot: &Slot,
    batch: &mut VecDeque<LogFrame>,
    stop: &CancellationToken,
    grace_until: Option<Instant>,
) -> Wait {
    if batch.is_empty() || shared.with(|c| c.offer(batch, Now::read())) == Offer::Taken {
        return Wait::Taken;
    }
    slot.blocked(true);
    let wait = loop {
        // Register interest before trying again, so room freed in between is not missed.
        let room = shared.room.notified();
        tokio::pin!(room);
        room.as_mut().enable();
        if shared.with(|c| c.offer(batch, Now::read())) == Offer::Taken {
            break Wait::Taken;
        }
        tokio::select! {
            _ = &mut room => {}
            _ = stop.cancelled(), if grace_until.is_none() => break Wait::Stopping,
            _ = tokio::time::sleep_until(grace_until.unwrap_or_else(Instant::now)), if grace_until.is_some() => break Wait::GraceOver,
        }
    };
    slot.blocked(false);
    wait
}
