//! Analyzer sessions: HELLO (or REJECT), then one writer of DELIVER batches and one reader
//! of ACKs per session.

use super::Shared;
use crate::accounting::waits::WriterWaits;
use crate::engine::Now;
use crate::engine::frame::Frame;
use crate::engine::log_budget::Line;
use crate::engine::session::{Registered, RejectReason, SessionEnd, SessionKey, Violation};
use bytes::BytesMut;
use protocol::analyzer as wire;
use protocol::{AckDecoder, HelloDecoder};
use runner::framed::{FramedRead, ReadError};
use runner::net::{ReadHalf, Stream, WriteHalf};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// Frames per write batch at most.
const MAX_BATCH_FRAMES: usize = 2048;
/// Bytes per write batch, about: many frames per syscall (measured on loopback here, 64 KiB
/// writes move ~2.2 GB/s where one 512-byte write per frame moves ~80 MB/s) while a batch
/// stays well under a millisecond of wire time.
const MAX_BATCH_BYTES: usize = 128 * 1024;

/// Bytes read per syscall before the HELLO (at most 4096 bytes) and after it (ACKs are 13
/// bytes; an analyzer sends a few per batch).
const HELLO_CHUNK: usize = 4096;
const ACK_CHUNK: usize = 1024;

/// An analyzer connection without a HELLO this long is closed (counted as `no_hello`).
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// SO_SNDBUF of analyzer connections, before the kernel doubles it.
const ANALYZER_SNDBUF: usize = 64 * 1024;

/// Whether a line about an analyzer connection may be logged (any client can cause them at
/// any rate): `Some(lines left out before it)`.
fn line(shared: &Shared) -> Option<u64> {
    match shared.with(|c| c.session_line(std::time::Instant::now())) {
        Line::Log { suppressed } => Some(suppressed),
        Line::Quiet => None,
    }
}

async fn reject(shared: &Shared, mut wr: WriteHalf, peer: SocketAddr, reason: &RejectReason) {
    if let Some(suppressed) = line(shared) {
        tracing::warn!(%peer, %reason, suppressed, "rejecting analyzer");
    }
    let mut frame = BytesMut::new();
    wire::encode_reject(&reason.to_string(), &mut frame);
    // Best effort: the peer may already be gone; the connection closes either way.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = wr.write_all(&frame).await;
        let _ = wr.shutdown().await;
    })
    .await;
}

/// One analyzer connection from HELLO to its end. Over mutual TLS, `identity` is the
/// client certificate's and the HELLO's id must be it.
pub(super) async fn session(
    shared: Arc<Shared>,
    stream: Stream,
    peer: SocketAddr,
    identity: Option<String>,
    stop: CancellationToken,
) {
    // DELIVER batches are written whole; the last partial segment of a batch should leave
    // at once rather than wait for an ACK (Nagle), which would add up to 40 ms of latency.
    let _ = stream.tcp().set_nodelay(true);
    // Bytes the kernel holds for a slow analyzer are beyond the priority scheduler: they
    // are delivered FIFO whatever arrives later. A small send buffer (the kernel doubles
    // it: 128 KiB, ~250 typical frames) keeps a backlog in the priority queues, where an
    // urgent frame can overtake it. Loopback throughput does not need more: the receiver
    // drains it at memory speed. Best effort: without it, only latency under backlog
    // suffers.
    let _ = socket2::SockRef::from(stream.tcp()).set_send_buffer_size(ANALYZER_SNDBUF);
    let (rd, wr) = stream.split();
    let mut framed = FramedRead::new(rd, HelloDecoder, HELLO_CHUNK);
    let hello = tokio::select! {
        h = tokio::time::timeout(HELLO_TIMEOUT, framed.next()) => h,
        _ = stop.cancelled() => return,
    };
    let hello = match hello {
        Ok(Ok(Some(h))) => h,
        Ok(Err(ReadError::Decode(e))) => {
            shared.with(|c| {
                c.protocol_error();
                c.rejected_hello(crate::accounting::RejectKind::Malformed);
            });
            reject(&shared, wr, peer, &RejectReason::Malformed(e)).await;
            return;
        }
        Ok(Ok(None)) => {
            if let Some(suppressed) = line(&shared) {
                tracing::info!(%peer, suppressed, "analyzer connection closed before its HELLO");
            }
            return;
        }
        Ok(Err(e)) => {
            if let Some(suppressed) = line(&shared) {
                tracing::info!(%peer, error = %e, suppressed, "analyzer connection ended before its HELLO");
            }
            return;
        }
        Err(_) => {
            shared.with(|c| {
                c.protocol_error();
                c.closed_connection(crate::accounting::CloseReason::NoHello);
            });
            if let Some(suppressed) = line(&shared) {
                tracing::warn!(%peer, timeout_s = HELLO_TIMEOUT.as_secs_f64(), suppressed, "no HELLO within the HELLO timeout; closing");
            }
            return;
        }
    };
    if let Err(reason) = admit(&shared, &hello, identity) {
        shared.with(|c| c.rejected_hello(reason.kind()));
        reject(&shared, wr, peer, &reason).await;
        return;
    }
    let registered = match shared.with(|c| c.register(&hello, Now::read())) {
        Ok(r) => r,
        Err(reason) => {
            reject(&shared, wr, peer, &reason).await;
            return;
        }
    };
    let key = registered.key;
    if let Some(suppressed) = line(&shared) {
        tracing::info!(analyzer = %hello.id, %peer, session = key, weight = registered.weight, acks = hello.acks, suppressed, "analyzer session started");
    }
    let reason = tokio::select! {
        r = write_loop(&shared, &registered, wr) => r,
        r = read_loop(&shared, key, framed.with_decoder(AckDecoder, ACK_CHUNK), hello.acks) => Some(r),
        _ = registered.cancel.cancelled() => None,
    };
    if let Some(reason) = reason {
        shared.with(|c| c.fail(key, &reason, Now::read()));
    }
}

/// Checks a HELLO against the certificate's identity (mutual TLS) and the access file's
/// `roles.analyzers` and `analyzers.max_weights` (which, without mutual TLS, judge the
/// claimed id).
fn admit(
    shared: &Shared,
    hello: &wire::Hello,
    identity: Option<String>,
) -> Result<(), RejectReason> {
    let id = hello.id.as_str();
    if let Some(identity) = identity
        && identity != id
    {
        return Err(RejectReason::Identity {
            id: id.to_owned(),
            identity,
        });
    }
    let rules = shared.access.current().1;
    if !rules.analyzer_allowed(id) {
        return Err(RejectReason::NotAllowed {
            identity: id.to_owned(),
        });
    }
    if let Some(max) = rules.max_weight(id)
        && hello.weight > max
        && !shared.with(|c| c.pinned(id))
    {
        return Err(RejectReason::WeightTooLarge {
            id: id.to_owned(),
            weight: hello.weight,
            max,
            limit: "the access file's analyzers.max_weights",
        });
    }
    Ok(())
}

/// Writes DELIVER batches until the connection fails; returns why (`None`: the session had
/// already ended).
async fn write_loop(shared: &Shared, reg: &Registered, mut wr: WriteHalf) -> Option<SessionEnd> {
    let mut frames: Vec<Frame> = Vec::with_capacity(MAX_BATCH_FRAMES);
    let mut out = BytesMut::with_capacity(MAX_BATCH_BYTES + 64 * 1024);
    let mut ends: Vec<usize> = Vec::with_capacity(MAX_BATCH_FRAMES);
    // Queue waits, counted in this writer's own slot of the histogram.
    let mut waits = WriterWaits::new(&shared.waits);
    // One clock reading, taken outside the lock, per batch: its dispatch stamp and the
    // time the session's liveness goes by.
    let take = |frames: &mut Vec<Frame>, now: Now| {
        shared.with(|c| c.take_batch(reg.key, MAX_BATCH_FRAMES, MAX_BATCH_BYTES, frames, now))
    };
    let mut stamp = take(&mut frames, Now::read());
    loop {
        // The session already ended (the engine failed it and logged why).
        let dispatch_ns = stamp?;
        if frames.is_empty() {
            reg.notify.notified().await;
            // Let the other ready tasks (emitter reads woken by the same poll) queue their
            // frames first: one write then carries them all.
            tokio::task::yield_now().await;
            stamp = take(&mut frames, Now::read());
            continue;
        }
        out.clear();
        ends.clear();
        for f in &frames {
            out.extend_from_slice(&wire::deliver_header(
                f.priority,
                f.queued_ns,
                dispatch_ns,
                f.payload.len(),
            ));
            out.extend_from_slice(&f.payload);
            ends.push(out.len());
        }
        waits.add(
            frames.iter().map(|f| (f.priority, f.queued_ns)),
            dispatch_ns,
        );
        // The batch holds its own copy now; release the payloads early.
        frames.clear();
        let mut off = 0;
        let mut whole = 0;
        loop {
            match wr.write(&out[off..]).await {
                Ok(0) => return Some(SessionEnd::ClosedWhileWriting),
                Ok(n) => off += n,
                Err(e) => return Some(SessionEnd::Write(e)),
            }
            // Over TLS the bytes may still sit in the session: on the socket before they
            // count as written (over plain TCP this returns at once).
            if let Err(e) = wr.flush().await {
                return Some(SessionEnd::Write(e));
            }
            let completed = ends[whole..].iter().take_while(|end| **end <= off).count();
            whole += completed;
            let now = Now::read();
            if off < out.len() {
                shared.with(|c| c.wrote(reg.key, completed, false, now));
                continue;
            }
            // The batch is written: record it and take the next one under one lock.
            stamp = shared.with(|c| {
                c.wrote(reg.key, completed, true, now);
                c.take_batch(reg.key, MAX_BATCH_FRAMES, MAX_BATCH_BYTES, &mut frames, now)
            });
            break;
        }
    }
}

/// Reads ACKs (or, on a session without ACKs, waits for EOF) until the connection fails;
/// returns why.
async fn read_loop(
    shared: &Shared,
    key: SessionKey,
    mut framed: FramedRead<ReadHalf, AckDecoder>,
    acks: bool,
) -> SessionEnd {
    loop {
        let violation = if !acks && framed.buffered() > 0 {
            Some(Violation::UnexpectedBytes(framed.buffered()))
        } else {
            loop {
                match framed.decode() {
                    Ok(Some(count)) => match shared.with(|c| c.ack(key, count, Now::read())) {
                        Ok(()) => continue,
                        Err(v) => break Some(Violation::Ack(v)),
                    },
                    Ok(None) => break None,
                    Err(e) => break Some(Violation::Malformed(e)),
                }
            }
        };
        if let Some(v) = violation {
            shared.with(|c| c.protocol_error());
            if let Some(suppressed) = line(shared) {
                tracing::warn!(session = key, error = %v, suppressed, "analyzer protocol error");
            }
            return SessionEnd::Protocol(v);
        }
        match framed.read().await {
            Ok(0) => return SessionEnd::Closed,
            Ok(_) => {}
            Err(e) => return SessionEnd::Read(e),
        }
    }
}
