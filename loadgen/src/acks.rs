//! `--acks`: an emitter that knows which of its messages are secured (PROTOCOL.md §5).
//!
//! Each connection opens with an EMITTER HELLO asking for ACKs. Every message written stays
//! in the window until an ACK covers it; a full window (`--ack-window`) stops new messages
//! (the schedule lags, nothing is dropped). After a broken connection the emitter sends
//! every message still in the window again, first, on the new connection, behind a new
//! HELLO: the distributor may deliver some twice, never none. What was secured is a prefix
//! of the seqs (messages go out, and are sent again, in seq order), recorded as `secured`.

use crate::emitter::Writer;
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use protocol::codec::Codec;
use protocol::emitter::EmitterHello;
use std::collections::VecDeque;
use std::time::Instant;

/// Bytes per write when sending the window again.
const RESEND_BATCH: usize = 64 * 1024;

/// The window of one emitter.
#[derive(Debug)]
pub struct Acked {
    hello: Bytes,
    window: usize,
    /// Written, not secured, in seq order: (seq, the LOG frame's bytes, when it was first
    /// written).
    pending: VecDeque<(u64, Bytes, Instant)>,
    /// The ACK count applied on the current connection.
    acked: u64,
    /// Seqs `0..secured` are secured.
    secured: u64,
    /// From first written to secured (the ACK applied), µs.
    latency: Histogram<u64>,
}

impl Acked {
    /// A window of `window` messages for an emitter that says `id` in its HELLO (and
    /// `compression`, if its stream is compressed).
    pub fn new(id: &str, window: usize, compression: Option<Codec>) -> anyhow::Result<Self> {
        let mut hello = BytesMut::new();
        EmitterHello {
            acks: true,
            compression,
            id: id.to_owned(),
        }
        .encode(&mut hello)?;
        Ok(Self {
            hello: hello.freeze(),
            window: window.max(1),
            pending: VecDeque::new(),
            acked: 0,
            secured: 0,
            latency: runfolder::latency::histogram()?,
        })
    }

    /// How many more messages may be written now.
    pub fn room(&self) -> u64 {
        self.window.saturating_sub(self.pending.len()) as u64
    }

    /// Seqs `0..secured` are secured.
    pub fn secured(&self) -> u64 {
        self.secured
    }

    /// Messages written and not secured.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Keeps the frames of a batch just written: `frames` holds `(seq, start, end)` within
    /// `batch`.
    pub fn keep(&mut self, batch: &Bytes, frames: impl Iterator<Item = (u64, usize, usize)>) {
        let now = Instant::now();
        for (seq, start, end) in frames {
            self.pending.push_back((seq, batch.slice(start..end), now));
        }
    }

    /// How long messages took from first written to secured, µs.
    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// Applies the connection's cumulative ACK `count`: the messages it covers leave the
    /// window. Returns how many did.
    pub fn apply(&mut self, count: u64) -> u64 {
        let n = count
            .saturating_sub(self.acked)
            .min(self.pending.len() as u64);
        let now = Instant::now();
        for (_, _, written) in self.pending.drain(..n as usize) {
            let us = now.saturating_duration_since(written).as_micros() as u64;
            // The histogram grows to fit (auto-resize), so this cannot fail.
            let _ = self.latency.record(us.max(1));
        }
        self.acked = count.max(self.acked);
        self.secured += n;
        n
    }

    /// Opens a new connection: the HELLO, then every message of the window again
    /// (through the connection's compressor, if it has one). Counts start again at 0 on it.
    pub(crate) async fn open(&mut self, wr: &mut Writer) -> std::io::Result<()> {
        self.acked = 0;
        wr.send_plain(&self.hello).await?;
        let mut out = BytesMut::with_capacity(RESEND_BATCH + 1024);
        for (_, frame, _) in &self.pending {
            if out.len() + frame.len() > RESEND_BATCH && !out.is_empty() {
                wr.send(&out).await?;
                out.clear();
            }
            out.extend_from_slice(frame);
        }
        wr.send(&out).await
    }

    /// The seqs written and not secured, as a range (they may or may not have arrived).
    pub fn unsecured(&self) -> Option<(u64, u64)> {
        let first = self.pending.front()?.0;
        let last = self.pending.back()?.0;
        Some((first, last + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(n: u64) -> Acked {
        let mut a = Acked::new("e", 4, None).unwrap();
        let batch = Bytes::from(vec![0u8; n as usize * 10]);
        a.keep(
            &batch,
            (0..n).map(|i| (i, i as usize * 10, i as usize * 10 + 10)),
        );
        a
    }

    #[test]
    fn acks_free_the_window_from_the_front() {
        let mut a = kept(4);
        assert_eq!(a.room(), 0, "a full window");
        assert_eq!(a.apply(3), 3);
        assert_eq!((a.secured(), a.room(), a.unsecured()), (3, 3, Some((3, 4))));
        assert_eq!(a.apply(3), 0, "the same count again frees nothing");
        assert_eq!(a.apply(9), 1, "never more than what is pending");
        assert_eq!(a.unsecured(), None);
    }

    #[test]
    fn counts_start_again_on_a_new_connection() {
        let mut a = kept(3);
        a.apply(1);
        // A new connection: the 2 pending are sent again; its ACK 1 secures seq 1.
        a.acked = 0;
        assert_eq!(a.apply(1), 1);
        assert_eq!((a.secured(), a.unsecured()), (2, Some((2, 3))));
    }
}
