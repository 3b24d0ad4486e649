//! Emitter connections: read LOG frames in large chunks, offer them to the core in batches.

use super::Shared;
use crate::config::Config;
use crate::core::Offer;
use bytes::BytesMut;
use protocol::log::{LogDecoder, LogFrame};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Bytes asked of the kernel per read: large enough for ~100 typical frames per syscall,
/// small enough that a few frames kept queued do not pin much memory each.
const READ_CHUNK: usize = 64 * 1024;

/// At shutdown, how long an emitter connection is still read after the distributor
/// half-closed it (bounded by the drain timeout).
const EMITTER_GRACE: Duration = Duration::from_secs(2);

/// Accepts emitter connections until `stop`, at most `max_connections` open at once.
pub(super) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    config: Config,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    // A permit per connection, moved into its task: past the cap, connections wait in the
    // kernel's accept backlog instead of taking memory here.
    let limit = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&limit).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let shared = Arc::clone(&shared);
                let stop = stop.clone();
                let max_frame = config.max_frame;
                let grace = config.drain_timeout.min(EMITTER_GRACE);
                tracker.spawn(async move {
                    connection(shared, stream, peer, max_frame, grace, stop).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accepting an emitter connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// One emitter connection, until EOF, an error, a protocol error, or the end of the grace
/// period after `stop`.
async fn connection(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    max_frame: u32,
    grace: Duration,
    stop: CancellationToken,
) {
    // Emitters send small frames back to back; the distributor never replies on this
    // socket, so Nagle's algorithm has nothing to delay, but set it off for symmetry with
    // analyzer sockets. An error here only loses an optimisation.
    let _ = stream.set_nodelay(true);
    shared.with(|c| c.emitter_connection(true));
    tracing::debug!(%peer, "emitter connected");
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut decoder = LogDecoder::new(max_frame);
    let mut batch: VecDeque<LogFrame> = VecDeque::with_capacity(256);
    // Set at shutdown: the distributor has half-closed the connection and reads on until
    // the emitter closes its side or this deadline passes.
    let mut grace_until: Option<tokio::time::Instant> = None;
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let read = tokio::select! {
            r = stream.read_buf(&mut buf) => r,
            _ = stop.cancelled(), if grace_until.is_none() => {
                // FIN tells the emitter to stop at a frame boundary and close; what it has
                // written until then is still read, so a cooperating emitter loses nothing.
                let _ = stream.shutdown().await;
                grace_until = Some(tokio::time::Instant::now() + grace);
                continue;
            }
            _ = tokio::time::sleep_until(grace_until.unwrap_or_else(tokio::time::Instant::now)), if grace_until.is_some() => {
                tracing::warn!(%peer, grace_s = grace.as_secs_f64(), "emitter did not close within the shutdown grace period");
                break;
            }
        };
        match read {
            Ok(0) => {
                if !buf.is_empty() {
                    shared.with(|c| c.truncated());
                    tracing::warn!(%peer, bytes = buf.len(), offset = decoder.offset(), "emitter closed mid-frame; partial frame lost");
                }
                break;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::info!(%peer, error = %e, "emitter connection error");
                break;
            }
        }
        let fault = loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => batch.push_back(frame),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        if !offer(&shared, &mut batch, &stop).await {
            // Shutting down: these frames were received whole, so they are held for the
            // drain (and counted if the drain cannot deliver them).
            shared.with(|c| c.accept_into_holding(&mut batch, Instant::now()));
        }
        if let Some(e) = fault {
            shared.with(|c| c.protocol_error());
            tracing::warn!(%peer, error = %e, "protocol error from emitter; closing this connection");
            break;
        }
    }
    shared.with(|c| c.emitter_connection(false));
    tracing::debug!(%peer, "emitter disconnected");
}

/// Offers `batch` until it is all taken; under backpressure waits for room. `false` when
/// `stop` came first (the rest of the batch is still in it).
async fn offer(shared: &Shared, batch: &mut VecDeque<LogFrame>, stop: &CancellationToken) -> bool {
    if batch.is_empty()
        || shared.with(|c| c.offer(batch, Instant::now(), protocol::now_ns())) == Offer::Taken
    {
        return true;
    }
    loop {
        // Register interest before trying again, so room freed in between is not missed.
        let room = shared.room.notified();
        tokio::pin!(room);
        room.as_mut().enable();
        if shared.with(|c| c.offer(batch, Instant::now(), protocol::now_ns())) == Offer::Taken {
            return true;
        }
        tokio::select! {
            _ = &mut room => {}
            _ = stop.cancelled() => return false,
        }
    }
}
