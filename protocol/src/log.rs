//! The emitter stream: LOG frames, back to back, no handshake, no reply (PROTOCOL.md §1).
//!
//! ```text
//!  0        4          5
//! +--------+----------+------------------------------+
//! |frame_len| priority |  payload (frame_len - 5)    |
//! |  u32 BE |    u8    |  opaque, forwarded unchanged |
//! +--------+----------+------------------------------+
//!  frame_len counts the whole frame, its own 4 bytes included:
//!  5 <= frame_len <= max_frame (default 1 MiB)
//! ```

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes before the payload: `frame_len` and `priority`.
pub const HEADER_LEN: usize = 5;
/// The default largest accepted `frame_len`: 1 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 1 << 20;

/// One LOG frame as received: the priority and the payload, which shares the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFrame {
    /// 0 is the most urgent, 255 the least.
    pub priority: u8,
    /// Opaque bytes, forwarded unchanged.
    pub payload: Bytes,
}

/// A fault in the emitter stream. Either one ends that connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// `frame_len` below the 5-byte minimum.
    #[error("frame_len {frame_len} at stream offset {offset} is below the minimum of 5")]
    TooShort {
        /// The declared length.
        frame_len: u32,
        /// Byte offset of the frame in the connection's stream.
        offset: u64,
    },
    /// `frame_len` above the configured maximum.
    #[error("frame_len {frame_len} at stream offset {offset} exceeds max_frame {max_frame}")]
    TooLong {
        /// The declared length.
        frame_len: u32,
        /// The configured maximum.
        max_frame: u32,
        /// Byte offset of the frame in the connection's stream.
        offset: u64,
    },
}

/// Appends one LOG frame to `dst`.
///
/// Fails when the payload does not fit a `frame_len` of u32.
pub fn encode(priority: u8, payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameTooLarge> {
    let frame_len = frame_len_for(payload.len())?;
    dst.reserve(frame_len as usize);
    dst.put_u32(frame_len);
    dst.put_u8(priority);
    dst.put_slice(payload);
    Ok(())
}

/// `frame_len` for a payload of `payload_len` bytes.
pub fn frame_len_for(payload_len: usize) -> Result<u32, FrameTooLarge> {
    payload_len
        .checked_add(HEADER_LEN)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(FrameTooLarge { payload_len })
}

/// A payload too large for any frame (`frame_len` is a u32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a payload of {payload_len} bytes does not fit a u32 frame_len")]
pub struct FrameTooLarge {
    /// The offending payload length.
    pub payload_len: usize,
}

/// Incremental decoder for one emitter connection.
#[derive(Debug, Clone)]
pub struct LogDecoder {
    max_frame: u32,
    /// Stream offset of the first byte still in the caller's buffer, for error messages.
    offset: u64,
}

impl LogDecoder {
    /// A decoder that accepts frames of at most `max_frame` bytes (`frame_len`).
    pub fn new(max_frame: u32) -> Self {
        Self {
            max_frame: max_frame.max(HEADER_LEN as u32),
            offset: 0,
        }
    }

    /// Stream offset of the next undecoded byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Counts `n` bytes consumed by something other than a LOG frame (an EMITTER HELLO), so
    /// offsets in errors stay offsets in the connection's stream.
    pub fn skip(&mut self, n: u64) {
        self.offset += n;
    }

    /// Takes the next whole frame out of `buf`. `Ok(None)`: the frame is not complete yet
    /// (the length is still checked as soon as its 4 bytes are there).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<LogFrame>, LogError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let frame_len = crate::be_u32(buf, 0);
        if frame_len < HEADER_LEN as u32 {
            return Err(LogError::TooShort {
                frame_len,
                offset: self.offset,
            });
        }
        if frame_len > self.max_frame {
            return Err(LogError::TooLong {
                frame_len,
                max_frame: self.max_frame,
                offset: self.offset,
            });
        }
        let len = frame_len as usize;
        if buf.len() < len {
            // No reserve for the rest: the buffer grows with what arrives, so a peer that
            // declares a large frame and stalls pins only what it sent.
            return Ok(None);
        }
        let frame = buf.split_to(len).freeze();
        self.offset += len as u64;
        Ok(Some(LogFrame {
            priority: frame[4],
            payload: frame.slice(HEADER_LEN..),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_the_documented_layout() {
        let mut out = BytesMut::new();
        encode(7, b"abc", &mut out).unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 8, 7, b'a', b'b', b'c']);
    }

    #[test]
    fn decodes_literal_bytes_incrementally() {
        let mut d = LogDecoder::new(DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 6, 200][..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&[b'x', 0, 0, 0, 5, 0]);
        let f = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!((f.priority, &f.payload[..]), (200, &b"x"[..]));
        let f = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!((f.priority, f.payload.len()), (0, 0));
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert_eq!(d.offset(), 11);
    }

    #[test]
    fn rejects_short_frame_len_with_its_offset() {
        let mut d = LogDecoder::new(DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 5, 1, 0, 0, 0, 4, 1][..]);
        assert!(d.decode(&mut buf).unwrap().is_some());
        assert_eq!(
            d.decode(&mut buf),
            Err(LogError::TooShort {
                frame_len: 4,
                offset: 5
            })
        );
    }

    #[test]
    fn rejects_long_frame_len_before_the_body_arrives() {
        let mut d = LogDecoder::new(100);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 101][..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(LogError::TooLong {
                frame_len: 101,
                max_frame: 100,
                offset: 0
            })
        );
        let mut at_max = BytesMut::from(&[0u8, 0, 0, 100][..]);
        assert_eq!(LogDecoder::new(100).decode(&mut at_max), Ok(None));
    }

    proptest! {
        #[test]
        fn round_trips(frames in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..20),
                       split in 0usize..4000) {
            let mut wire = BytesMut::new();
            for (p, payload) in &frames {
                encode(*p, payload, &mut wire).unwrap();
            }
            let split = split.min(wire.len());
            let rest = wire.split_off(split);
            let mut d = LogDecoder::new(DEFAULT_MAX_FRAME);
            let mut got = Vec::new();
            while let Some(f) = d.decode(&mut wire).unwrap() { got.push(f); }
            wire.extend_from_slice(&rest);
            while let Some(f) = d.decode(&mut wire).unwrap() { got.push(f); }
            prop_assert!(wire.is_empty());
            let got: Vec<(u8, Vec<u8>)> = got.into_iter().map(|f| (f.priority, f.payload.to_vec())).collect();
            prop_assert_eq!(got, frames);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000), max in 0u32..5000) {
            let mut d = LogDecoder::new(max);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(f)) = d.decode(&mut buf) {
                prop_assert!(f.payload.len() + HEADER_LEN <= max.max(5) as usize);
            }
        }
    }
}
