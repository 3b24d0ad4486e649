//! The read side of a framed connection: one type owns a socket's read buffer and its
//! decoder, and every read-and-decode loop of the workspace goes through it (the
//! distributor's emitter connections, analyzer HELLOs and ACKs, the analyzer sink's
//! DELIVER stream).
//!
//! Reading and decoding are separate steps so a caller can `select!` on [`FramedRead::read`]
//! (cancel safe: it is one `read_buf`) and then take every whole frame the read completed
//! with [`FramedRead::decode`]: many frames per syscall, as the hot paths need.

use bytes::BytesMut;
use protocol::Decode;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// Why [`FramedRead::next`] returned no frame.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E: std::error::Error + 'static> {
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed with {buffered} bytes of an incomplete frame")]
    Truncated {
        /// Bytes of the incomplete frame.
        buffered: usize,
    },
    /// A read failed.
    #[error("read error: {0}")]
    Io(std::io::Error),
    /// The bytes are not a frame of this kind.
    #[error(transparent)]
    Decode(E),
}

/// A socket's read half, its buffer and its decoder.
#[derive(Debug)]
pub struct FramedRead<R, D> {
    io: R,
    buf: BytesMut,
    decoder: D,
    chunk: usize,
    /// Bytes asked of the next [`FramedRead::read_ready`], between [`MIN_READ`] and `chunk`.
    want: usize,
}

/// The smallest read of [`FramedRead::read_ready`]: a few typical log lines.
pub const MIN_READ: usize = 2048;

thread_local! {
    /// Where quiet connections read (one [`MIN_READ`] buffer per thread), so a connection
    /// that gets one message per wake-up allocates only that message's bytes.
    static SCRATCH: std::cell::RefCell<[u8; MIN_READ]> = const { std::cell::RefCell::new([0; MIN_READ]) };
}

impl<R: AsyncRead + Unpin, D: Decode> FramedRead<R, D> {
    /// Reads from `io` in chunks of `chunk` bytes, decoding with `decoder`.
    pub fn new(io: R, decoder: D, chunk: usize) -> Self {
        Self {
            io,
            // Allocated by the first read, sized by it.
            buf: BytesMut::new(),
            decoder,
            chunk,
            want: MIN_READ.min(chunk),
        }
    }

    /// Reads once into the buffer: the bytes read, 0 at EOF. Cancel safe.
    pub async fn read(&mut self) -> std::io::Result<usize> {
        // Grow by a whole chunk only when little room is left, so the frames still held
        // from the last chunk (payloads are slices of it) do not force a copy every read.
        if self.buf.capacity() - self.buf.len() < self.chunk / 4 {
            self.buf.reserve(self.chunk);
        }
        self.io.read_buf(&mut self.buf).await
    }

    /// Takes the next whole frame already in the buffer; `Ok(None)` when none is.
    pub fn decode(&mut self) -> Result<Option<D::Frame>, D::Error> {
        self.decoder.decode(&mut self.buf)
    }

    /// Reads until a whole frame is there. `Ok(None)`: the peer closed the connection at a
    /// frame boundary.
    pub async fn next(&mut self) -> Result<Option<D::Frame>, ReadError<D::Error>> {
        loop {
            if let Some(frame) = self.decode().map_err(ReadError::Decode)? {
                return Ok(Some(frame));
            }
            if self.read().await.map_err(ReadError::Io)? == 0 {
                return match self.buf.len() {
                    0 => Ok(None),
                    buffered => Err(ReadError::Truncated { buffered }),
                };
            }
        }
    }

    /// Bytes read and not yet decoded (an incomplete frame, or bytes no frame began).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The decoder.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// The same connection and buffer with another decoder (a handshake done, what follows
    /// is a stream of another frame kind).
    pub fn with_decoder<D2: Decode>(self, decoder: D2, chunk: usize) -> FramedRead<R, D2> {
        FramedRead {
            io: self.io,
            buf: self.buf,
            decoder,
            chunk,
            want: MIN_READ.min(chunk),
        }
    }
}

impl<D: Decode> FramedRead<crate::net::ReadHalf, D> {
    /// A connection read with buffers sized by its traffic: empty while it waits between
    /// frames, then a read of a size that doubles (up to the chunk) while reads fill it and
    /// halves (down to [`MIN_READ`]) while they do not. Thousands of quiet connections then
    /// hold no buffer at all, and a busy one still reads a whole chunk per syscall. Frames
    /// already decoded keep only their own part of an old buffer alive. Cancel safe.
    ///
    /// Over TLS this is [`FramedRead::read`]: decrypted bytes can wait inside the session
    /// while the socket has nothing, so readiness says nothing about them.
    pub async fn read_ready(&mut self) -> std::io::Result<usize> {
        let crate::net::ReadHalf::Plain(_) = &self.io else {
            return self.read().await;
        };
        loop {
            if self.buf.is_empty() && self.buf.capacity() > 0 {
                self.buf = BytesMut::new();
            }
            if let crate::net::ReadHalf::Plain(io) = &self.io {
                io.readable().await?;
            }
            if self.buf.is_empty() && self.want <= MIN_READ {
                // A quiet connection: read into this thread's scratch and keep only what
                // arrived (a small allocation, from the allocator's per-thread cache),
                // instead of allocating a whole read buffer per message.
                let attempt = std::future::poll_fn(|cx| {
                    SCRATCH.with_borrow_mut(|scratch| {
                        let mut rb = ReadBuf::new(&mut scratch[..self.want.min(MIN_READ)]);
                        match std::pin::Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                            std::task::Poll::Ready(Ok(())) => {
                                self.buf.extend_from_slice(rb.filled());
                                std::task::Poll::Ready(Some(Ok(rb.filled().len())))
                            }
                            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Some(Err(e))),
                            std::task::Poll::Pending => std::task::Poll::Ready(None),
                        }
                    })
                })
                .await;
                let Some(n) = attempt.transpose()? else {
                    continue;
                };
                if n == self.want.min(MIN_READ) {
                    self.want = (self.want * 2).min(self.chunk);
                }
                return Ok(n);
            }
            if self.buf.capacity() - self.buf.len() < self.want / 2 {
                self.buf.reserve(self.want);
            }
            let room = self.buf.capacity() - self.buf.len();
            // One attempt, as a read (not `try_read`): a short read tells the runtime the
            // socket is drained, which saves the next wait a syscall that would only say
            // "would block". Readiness can be stale (a new socket reports it before any
            // byte came): then the buffer is let go again rather than held while waiting.
            let attempt = std::future::poll_fn(|cx| {
                let io = std::pin::Pin::new(&mut self.io);
                match tokio_util::io::poll_read_buf(io, cx, &mut self.buf) {
                    std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
                    std::task::Poll::Pending => std::task::Poll::Ready(None),
                }
            })
            .await;
            let Some(n) = attempt.transpose()? else {
                continue;
            };
            if n == room {
                self.want = (self.want * 2).min(self.chunk);
            } else if n < self.want / 8 {
                self.want = (self.want / 2).max(MIN_READ.min(self.chunk));
            }
            return Ok(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::log::LogDecoder;
    use tokio::io::AsyncWriteExt;

    fn log_frame(priority: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 5) as u32).to_be_bytes().to_vec();
        v.push(priority);
        v.extend_from_slice(payload);
        v
    }

    #[tokio::test]
    async fn frames_split_across_reads_and_many_per_read() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut framed = FramedRead::new(rx, LogDecoder::new(1024), 16);
        let writer = tokio::spawn(async move {
            let mut all = Vec::new();
            for i in 0..50u8 {
                all.extend(log_frame(i, &[i; 9]));
            }
            for piece in all.chunks(7) {
                tx.write_all(piece).await.unwrap();
            }
        });
        let mut got = Vec::new();
        while let Some(f) = framed.next().await.unwrap() {
            got.push(f.priority);
        }
        writer.await.unwrap();
        assert_eq!(got, (0..50).collect::<Vec<u8>>());
    }

    #[tokio::test]
    async fn read_ready_holds_no_buffer_between_frames_and_grows_with_traffic() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut tx = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (rx, _) = listener.accept().await.unwrap();
        let (rd, _wr) = crate::net::Stream::Plain(rx).split();
        let mut framed = FramedRead::new(rd, LogDecoder::new(1 << 20), 64 * 1024);
        assert_eq!(
            framed.buf.capacity(),
            0,
            "nothing allocated before the first read"
        );
        tx.write_all(&log_frame(1, b"one")).await.unwrap();
        assert!(framed.read_ready().await.unwrap() > 0);
        assert_eq!(framed.decode().unwrap().unwrap().priority, 1);
        assert_eq!(framed.want, MIN_READ, "a short read keeps the read small");
        // 1 MiB at once: each read that fills its room doubles the next, up to the chunk.
        let mut all = Vec::new();
        for i in 0..2048u32 {
            all.extend(log_frame((i % 256) as u8, &[7; 507]));
        }
        let writer = tokio::spawn(async move {
            tx.write_all(&all).await.unwrap();
            tx
        });
        let (mut got, mut reads) = (0, 0);
        while got < 2048 {
            framed.read_ready().await.unwrap();
            reads += 1;
            while let Some(f) = framed.decode().unwrap() {
                assert_eq!(f.priority, (got % 256) as u8);
                got += 1;
            }
        }
        assert!(
            framed.want > MIN_READ,
            "grew under traffic: {}",
            framed.want
        );
        assert!(reads < 2048 * 512 / MIN_READ, "{reads} reads for 1 MiB");
        let tx = writer.await.unwrap();
        // Between frames, waiting for the next read holds no buffer.
        assert_eq!(framed.buffered(), 0);
        let wait = std::time::Duration::from_millis(20);
        assert!(
            tokio::time::timeout(wait, framed.read_ready())
                .await
                .is_err()
        );
        assert_eq!(framed.buf.capacity(), 0);
        drop(tx);
        assert_eq!(framed.read_ready().await.unwrap(), 0, "EOF");
    }

    #[tokio::test]
    async fn eof_mid_frame_and_bad_input_are_errors() {
        let (mut tx, rx) = tokio::io::duplex(64);
        tx.write_all(&log_frame(1, b"abc")[..6]).await.unwrap();
        drop(tx);
        let mut framed = FramedRead::new(rx, LogDecoder::new(1024), 16);
        assert!(matches!(
            framed.next().await,
            Err(ReadError::Truncated { buffered: 6 })
        ));

        let (mut tx, rx) = tokio::io::duplex(64);
        tx.write_all(&[0, 0, 0, 2, 0]).await.unwrap();
        let mut framed = FramedRead::new(rx, LogDecoder::new(1024), 16);
        assert!(matches!(framed.next().await, Err(ReadError::Decode(_))));
    }
}
