//! The analyzer session (PROTOCOL.md §2). Every frame starts with `frame_len` (u32 BE, the
//! whole frame, these 4 bytes included) and a one-byte `kind`.
//!
//! ```text
//! HELLO   analyzer -> distributor, first frame, at most 4096 bytes
//!  0         4      5         7       8             16
//! +---------+------+---------+-------+-------------+------------------+
//! |frame_len| 0x48 | version | flags | weight f64  | id (1..=64 UTF-8)|
//! +---------+------+---------+-------+-------------+------------------+
//!                    u16 = 1   bit 0 = acks, bit 1 = lz4 BATCH frames welcome,
//!                              bit 2 = zstd (at most one of bits 1 and 2)
//!
//! DELIVER distributor -> analyzer
//!  0         4      5          6            14             22
//! +---------+------+----------+------------+--------------+------------+
//! |frame_len| 0x44 | priority | queued_ns  | dispatch_ns  | payload    |
//! +---------+------+----------+------------+--------------+------------+
//!
//! ACK     analyzer -> distributor, frame_len = 13
//! +---------+------+-----------------------------+
//! |   13    | 0x41 | count u64 (cumulative)      |
//! +---------+------+-----------------------------+
//!
//! BATCH   distributor -> analyzer (bit 1 or 2 set): whole DELIVER frames, compressed;
//!         see [`crate::batch`]
//!
//! REJECT  distributor -> analyzer, then the connection closes
//! +---------+------+-----------------------------+
//! |frame_len| 0x45 | reason (UTF-8)              |
//! +---------+------+-----------------------------+
//! ```

use crate::batch::{self, BatchError, KIND_BATCH};
use crate::codec::Codec;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::VecDeque;

/// `kind` of a HELLO frame (`H`).
pub const KIND_HELLO: u8 = 0x48;
/// `kind` of a DELIVER frame (`D`).
pub const KIND_DELIVER: u8 = 0x44;
/// `kind` of an ACK frame (`A`).
pub const KIND_ACK: u8 = 0x41;
/// `kind` of a REJECT frame (`E`).
pub const KIND_REJECT: u8 = 0x45;
/// The protocol version this crate speaks.
pub const VERSION: u16 = 1;
/// HELLO flag bit 0: the analyzer will send ACK frames.
pub const FLAG_ACKS: u8 = 0x01;
/// The longest HELLO accepted.
pub const MAX_HELLO_LEN: u32 = 4096;
/// The longest analyzer id, in bytes.
pub const MAX_ID_LEN: usize = crate::MAX_ID_LEN;
/// Bytes of a HELLO before the id.
pub const HELLO_HEADER_LEN: usize = 16;
/// Bytes of a DELIVER before the payload.
pub const DELIVER_HEADER_LEN: usize = 22;
/// The exact length of an ACK frame.
pub const ACK_LEN: u32 = 13;

/// A HELLO frame, checked for everything the protocol can check without the distributor's
/// configuration (the weight is checked by [`Hello::weight_is_valid`], because a pinned
/// weight wins over an invalid one).
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    /// Protocol version; always [`VERSION`] once decoded.
    pub version: u16,
    /// Whether the analyzer will send ACK frames (flag bit 0).
    pub acks: bool,
    /// The codec of the BATCH frames the analyzer accepts (flag bit 1 or 2), if any.
    pub compression: Option<Codec>,
    /// The analyzer's weight as sent.
    pub weight: f64,
    /// 1 to 64 bytes of UTF-8.
    pub id: String,
}

impl Hello {
    /// Whether the weight is usable: finite and > 0.
    pub fn weight_is_valid(&self) -> bool {
        self.weight.is_finite() && self.weight > 0.0
    }

    /// Appends this HELLO to `dst`. Fails on an id that the protocol does not allow.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), HelloError> {
        check_id(self.id.as_bytes())?;
        let frame_len = HELLO_HEADER_LEN + self.id.len();
        dst.reserve(frame_len);
        dst.put_u32(frame_len as u32);
        dst.put_u8(KIND_HELLO);
        dst.put_u16(self.version);
        let acks = if self.acks { FLAG_ACKS } else { 0 };
        dst.put_u8(acks | self.compression.map_or(0, Codec::flag));
        dst.put_f64(self.weight);
        dst.put_slice(self.id.as_bytes());
        Ok(())
    }
}

/// Why a first frame is not an acceptable HELLO. Each is answered with a REJECT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// `frame_len` above 4096, refused before the body arrives.
    #[error("HELLO frame_len {0} exceeds the maximum of 4096")]
    TooLong(u32),
    /// `frame_len` too small to hold the fixed fields.
    #[error("HELLO frame_len {0} is below the minimum of 17 (16 bytes of fields and an id)")]
    TooShort(u32),
    /// The first frame is something other than a HELLO.
    #[error("first frame has kind 0x{0:02x}, expected HELLO (0x48)")]
    NotHello(u8),
    /// A version other than 1.
    #[error("unsupported protocol version {0} (this distributor speaks version 1)")]
    Version(u16),
    /// Flag bits other than bits 0 to 2.
    #[error("unknown flag bits 0x{0:02x} (bit 0 acks, bit 1 lz4 and bit 2 zstd are defined)")]
    Flags(u8),
    /// Flag bits 1 and 2 both set.
    #[error(
        "HELLO flags 0x{0:02x} set bits 1 (lz4) and 2 (zstd); at most one codec may be asked for"
    )]
    BothCodecs(u8),
    /// An id that is empty, longer than 64 bytes or not UTF-8.
    #[error("analyzer {0}")]
    Id(#[from] crate::IdError),
}

fn check_id(id: &[u8]) -> Result<&str, HelloError> {
    Ok(crate::check_id(id)?)
}

/// Takes the HELLO out of `buf`; `Ok(None)` while it is incomplete. The length and the kind
/// are checked as soon as their bytes are there.
pub fn decode_hello(buf: &mut BytesMut) -> Result<Option<Hello>, HelloError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let frame_len = crate::be_u32(buf, 0);
    if frame_len > MAX_HELLO_LEN {
        return Err(HelloError::TooLong(frame_len));
    }
    // The kind is checked before the length, and only once it is there, so that the same
    // bytes give the same error however they are cut into reads.
    if buf.len() < 5 {
        return Ok(None);
    }
    if buf[4] != KIND_HELLO {
        return Err(HelloError::NotHello(buf[4]));
    }
    if (frame_len as usize) < HELLO_HEADER_LEN {
        return Err(HelloError::TooShort(frame_len));
    }
    if buf.len() < frame_len as usize {
        return Ok(None);
    }
    let frame = buf.split_to(frame_len as usize);
    let version = u16::from_be_bytes([frame[5], frame[6]]);
    if version != VERSION {
        return Err(HelloError::Version(version));
    }
    let flags = frame[7];
    if flags & !(FLAG_ACKS | Codec::FLAGS) != 0 {
        return Err(HelloError::Flags(flags));
    }
    let compression = Codec::from_flags(flags).map_err(|_| HelloError::BothCodecs(flags))?;
    let weight = f64::from_bits(crate::be_u64(&frame, 8));
    let id = check_id(&frame[HELLO_HEADER_LEN..])?.to_owned();
    Ok(Some(Hello {
        version,
        acks: flags & FLAG_ACKS != 0,
        compression,
        weight,
        id,
    }))
}

/// Why bytes from an analyzer after its HELLO are not a well-formed ACK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// A `frame_len` other than 13.
    #[error("frame_len {0} after HELLO, expected an ACK of 13 bytes")]
    Length(u32),
    /// A kind other than ACK.
    #[error("frame kind 0x{0:02x} after HELLO, expected ACK (0x41)")]
    Kind(u8),
}

/// Appends an ACK carrying the cumulative `count` to `dst`.
pub fn encode_ack(count: u64, dst: &mut BytesMut) {
    dst.reserve(ACK_LEN as usize);
    dst.put_u32(ACK_LEN);
    dst.put_u8(KIND_ACK);
    dst.put_u64(count);
}

/// Takes the next ACK out of `buf` and returns its count; `Ok(None)` while incomplete.
pub fn decode_ack(buf: &mut BytesMut) -> Result<Option<u64>, AckError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let frame_len = crate::be_u32(buf, 0);
    if frame_len != ACK_LEN {
        return Err(AckError::Length(frame_len));
    }
    if buf.len() >= 5 && buf[4] != KIND_ACK {
        return Err(AckError::Kind(buf[4]));
    }
    if buf.len() < ACK_LEN as usize {
        return Ok(None);
    }
    let count = crate::be_u64(buf, 5);
    buf.advance(ACK_LEN as usize);
    Ok(Some(count))
}

/// The fixed part of a DELIVER frame, for a payload of `payload_len` bytes, to be written in
/// front of the payload (the distributor copies both into one batch buffer per write).
pub fn deliver_header(
    priority: u8,
    queued_ns: u64,
    dispatch_ns: u64,
    payload_len: usize,
) -> [u8; DELIVER_HEADER_LEN] {
    let frame_len = (DELIVER_HEADER_LEN + payload_len) as u32;
    let mut h = [0u8; DELIVER_HEADER_LEN];
    h[0..4].copy_from_slice(&frame_len.to_be_bytes());
    h[4] = KIND_DELIVER;
    h[5] = priority;
    h[6..14].copy_from_slice(&queued_ns.to_be_bytes());
    h[14..22].copy_from_slice(&dispatch_ns.to_be_bytes());
    h
}

/// Appends a REJECT with `reason` to `dst`.
pub fn encode_reject(reason: &str, dst: &mut BytesMut) {
    let frame_len = 5 + reason.len();
    dst.reserve(frame_len);
    dst.put_u32(frame_len as u32);
    dst.put_u8(KIND_REJECT);
    dst.put_slice(reason.as_bytes());
}

/// A DELIVER frame as an analyzer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// Priority, as the emitter sent it.
    pub priority: u8,
    /// When the frame entered this analyzer's queue.
    pub queued_ns: u64,
    /// When the distributor took it off the queue to write it.
    pub dispatch_ns: u64,
    /// The LOG payload, byte for byte.
    pub payload: Bytes,
}

/// What the distributor sends an analyzer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Downstream {
    /// A routed log message.
    Deliver(Deliver),
    /// The HELLO was refused; the connection closes next.
    Reject(String),
}

/// Why bytes from the distributor are not a well-formed frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownstreamError {
    /// `frame_len` too small for the frame's fixed fields.
    #[error("frame_len {frame_len} at stream offset {offset} is too short for kind 0x{kind:02x}")]
    TooShort {
        /// The declared length.
        frame_len: u32,
        /// The frame's kind.
        kind: u8,
        /// Byte offset of the frame in the stream.
        offset: u64,
    },
    /// `frame_len` above the decoder's maximum.
    #[error("frame_len {frame_len} at stream offset {offset} exceeds the maximum {max}")]
    TooLong {
        /// The declared length.
        frame_len: u32,
        /// The decoder's maximum.
        max: u32,
        /// Byte offset of the frame in the stream.
        offset: u64,
    },
    /// A kind other than DELIVER or REJECT (or BATCH, when a codec was asked for).
    #[error("unknown frame kind 0x{kind:02x} at stream offset {offset}")]
    Kind {
        /// The kind byte.
        kind: u8,
        /// Byte offset of the frame in the stream.
        offset: u64,
    },
    /// A BATCH frame that is refused.
    #[error("BATCH frame at stream offset {offset}: {source}")]
    Batch {
        /// Why.
        source: BatchError,
        /// Byte offset of the BATCH frame in the stream.
        offset: u64,
    },
}

/// What a [`DownstreamDecoder`] has read, for the accounting of compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownstreamStats {
    /// Bytes of whole frames decoded, as on the wire.
    pub wire_bytes: u64,
    /// The same frames with every BATCH counted as the DELIVER frames it carries (its
    /// `raw_len`): the bytes before compression.
    pub raw_bytes: u64,
    /// BATCH frames.
    pub batches: u64,
    /// DELIVER frames that came inside BATCH frames.
    pub batched: u64,
}

/// Incremental decoder of the distributor -> analyzer stream. Told the codec the HELLO
/// asked for ([`DownstreamDecoder::with_codec`]), it also takes BATCH frames and hands out
/// the DELIVER frames inside them one by one, in order, as if they had come plain.
#[derive(Debug, Clone)]
pub struct DownstreamDecoder {
    max_frame: u32,
    offset: u64,
    codec: Option<Codec>,
    /// DELIVER frames of the last BATCH not handed out yet.
    unpacked: VecDeque<Deliver>,
    stats: DownstreamStats,
}

impl DownstreamDecoder {
    /// A decoder for DELIVER frames carrying LOG payloads of frames up to `max_log_frame`.
    pub fn new(max_log_frame: u32) -> Self {
        Self {
            max_frame: max_log_frame.saturating_add((DELIVER_HEADER_LEN - 5) as u32),
            offset: 0,
            codec: None,
            unpacked: VecDeque::new(),
            stats: DownstreamStats::default(),
        }
    }

    /// The same, accepting BATCH frames of `codec` (what the HELLO asked for).
    pub fn with_codec(mut self, codec: Option<Codec>) -> Self {
        self.codec = codec;
        self
    }

    /// What was read so far.
    pub fn stats(&self) -> DownstreamStats {
        self.stats
    }

    /// Takes the next frame out of `buf`; `Ok(None)` while incomplete.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Downstream>, DownstreamError> {
        loop {
            if let Some(d) = self.unpacked.pop_front() {
                return Ok(Some(Downstream::Deliver(d)));
            }
            match self.next_frame(buf)? {
                Some(Frame::One(f)) => return Ok(Some(f)),
                Some(Frame::Batch) => {}
                None => return Ok(None),
            }
        }
    }

    fn next_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DownstreamError> {
        if buf.len() < 5 {
            return Ok(None);
        }
        let frame_len = crate::be_u32(buf, 0);
        let kind = buf[4];
        let offset = self.offset;
        let (min, max) = match (kind, self.codec) {
            (KIND_DELIVER, _) => (DELIVER_HEADER_LEN as u32, self.max_frame),
            (KIND_REJECT, _) => (5, self.max_frame),
            (KIND_BATCH, Some(_)) => (batch::HEADER_LEN as u32, batch::MAX_FRAME_LEN),
            _ => return Err(DownstreamError::Kind { kind, offset }),
        };
        if frame_len < min {
            return Err(DownstreamError::TooShort {
                frame_len,
                kind,
                offset,
            });
        }
        if frame_len > max {
            return Err(DownstreamError::TooLong {
                frame_len,
                max,
                offset,
            });
        }
        if let (KIND_BATCH, Some(codec)) = (kind, self.codec)
            && buf.len() >= batch::HEADER_LEN
        {
            // Refused from its header alone, before the body is buffered.
            batch::check_header(buf, codec)
                .map_err(|source| DownstreamError::Batch { source, offset })?;
        }
        let len = frame_len as usize;
        if buf.len() < len {
            buf.reserve(len - buf.len());
            return Ok(None);
        }
        let frame = buf.split_to(len).freeze();
        self.offset += len as u64;
        self.stats.wire_bytes += len as u64;
        Ok(Some(match kind {
            KIND_DELIVER => {
                self.stats.raw_bytes += len as u64;
                Frame::One(Downstream::Deliver(Deliver {
                    priority: frame[5],
                    queued_ns: crate::be_u64(&frame, 6),
                    dispatch_ns: crate::be_u64(&frame, 14),
                    payload: frame.slice(DELIVER_HEADER_LEN..),
                }))
            }
            KIND_REJECT => {
                self.stats.raw_bytes += len as u64;
                Frame::One(Downstream::Reject(
                    String::from_utf8_lossy(&frame[5..]).into_owned(),
                ))
            }
            _ => {
                let codec = self.codec.unwrap_or(Codec::Lz4);
                let delivers = batch::decode(&frame, codec, self.max_frame)
                    .map_err(|source| DownstreamError::Batch { source, offset })?;
                self.stats.batches += 1;
                self.stats.batched += delivers.len() as u64;
                self.stats.raw_bytes += u64::from(crate::be_u32(&frame, 10));
                self.unpacked.extend(delivers);
                Frame::Batch
            }
        }))
    }
}

/// One frame off the stream.
enum Frame {
    /// A DELIVER or a REJECT.
    One(Downstream),
    /// A BATCH, unpacked into [`DownstreamDecoder::unpacked`].
    Batch,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hello(id: &str, weight: f64, acks: bool) -> Hello {
        Hello {
            version: VERSION,
            acks,
            compression: None,
            weight,
            id: id.to_owned(),
        }
    }

    #[test]
    fn hello_literal_bytes() {
        let mut out = BytesMut::new();
        hello("a1", 2.5, true).encode(&mut out).unwrap();
        let mut want = vec![0, 0, 0, 18, 0x48, 0, 1, 1];
        want.extend_from_slice(&2.5f64.to_be_bytes());
        want.extend_from_slice(b"a1");
        assert_eq!(&out[..], &want[..]);
        assert_eq!(
            decode_hello(&mut out).unwrap(),
            Some(hello("a1", 2.5, true))
        );
        assert!(out.is_empty());
    }

    fn raw_hello(version: u16, flags: u8, id: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u32((16 + id.len()) as u32);
        b.put_u8(KIND_HELLO);
        b.put_u16(version);
        b.put_u8(flags);
        b.put_f64(1.0);
        b.put_slice(id);
        b
    }

    #[test]
    fn hello_rejections() {
        let case = |mut b: BytesMut| decode_hello(&mut b);
        assert_eq!(case(raw_hello(2, 0, b"x")), Err(HelloError::Version(2)));
        assert_eq!(case(raw_hello(1, 8, b"x")), Err(HelloError::Flags(8)));
        assert_eq!(case(raw_hello(1, 7, b"x")), Err(HelloError::BothCodecs(7)));
        for (flags, codec) in [(2, Codec::Lz4), (5, Codec::Zstd)] {
            let h = case(raw_hello(1, flags, b"x")).unwrap().unwrap();
            assert_eq!((h.compression, h.acks), (Some(codec), flags & 1 != 0));
        }
        assert_eq!(
            case(raw_hello(1, 0, b"")),
            Err(HelloError::Id(crate::IdError::Empty))
        );
        assert_eq!(
            case(raw_hello(1, 0, &[b'a'; 65])),
            Err(HelloError::Id(crate::IdError::TooLong(65)))
        );
        assert_eq!(
            case(raw_hello(1, 0, &[b'a', 0xff])),
            Err(HelloError::Id(crate::IdError::NotUtf8(1)))
        );
        assert!(case(raw_hello(1, 0, &[b'a'; 64])).unwrap().is_some());
        // Refused on the length alone, before any body.
        assert_eq!(
            case(BytesMut::from(&[0u8, 0, 16, 1][..])),
            Err(HelloError::TooLong(4097))
        );
        // Refused on the kind as soon as it arrives.
        assert_eq!(
            case(BytesMut::from(&[0u8, 0, 0, 13, 0x41][..])),
            Err(HelloError::NotHello(0x41))
        );
        assert_eq!(
            case(BytesMut::from(&[0u8, 0, 0, 9, 0x48][..])),
            Err(HelloError::TooShort(9))
        );
        assert_eq!(
            case(BytesMut::from(&[0u8, 0, 0, 20, 0x48, 0][..])),
            Ok(None)
        );
    }

    #[test]
    fn weight_validity() {
        assert!(hello("a", 0.1, false).weight_is_valid());
        for w in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(!hello("a", w, false).weight_is_valid());
        }
    }

    #[test]
    fn ack_literal_bytes_and_errors() {
        let mut b = BytesMut::new();
        encode_ack(258, &mut b);
        assert_eq!(&b[..], &[0, 0, 0, 13, 0x41, 0, 0, 0, 0, 0, 0, 1, 2]);
        let mut partial = b.split_to(7);
        assert_eq!(decode_ack(&mut partial), Ok(None));
        partial.unsplit(b);
        assert_eq!(decode_ack(&mut partial), Ok(Some(258)));
        assert_eq!(
            decode_ack(&mut BytesMut::from(&[0u8, 0, 0, 14][..])),
            Err(AckError::Length(14))
        );
        assert_eq!(
            decode_ack(&mut BytesMut::from(&[0u8, 0, 0, 13, 0x48][..])),
            Err(AckError::Kind(0x48))
        );
    }

    #[test]
    fn deliver_and_reject_literal_bytes() {
        let h = deliver_header(3, 0x0102, 0x0304, 2);
        assert_eq!(
            h,
            [
                0, 0, 0, 24, 0x44, 3, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 3, 4
            ]
        );
        let mut wire = BytesMut::from(&h[..]);
        wire.extend_from_slice(b"hi");
        encode_reject("no", &mut wire);
        assert_eq!(&wire[24..], &[0, 0, 0, 7, 0x45, b'n', b'o']);
        let mut d = DownstreamDecoder::new(1 << 20);
        assert_eq!(
            d.decode(&mut wire).unwrap(),
            Some(Downstream::Deliver(Deliver {
                priority: 3,
                queued_ns: 0x0102,
                dispatch_ns: 0x0304,
                payload: Bytes::from_static(b"hi"),
            }))
        );
        assert_eq!(
            d.decode(&mut wire).unwrap(),
            Some(Downstream::Reject("no".into()))
        );
        assert_eq!(
            d.decode(&mut BytesMut::from(&[0u8, 0, 0, 21, 0x44][..])),
            Err(DownstreamError::TooShort {
                frame_len: 21,
                kind: 0x44,
                offset: 31
            })
        );
    }

    #[test]
    fn batches_unpack_between_plain_frames_and_are_counted() {
        let mut raw = BytesMut::new();
        for i in 0..5u64 {
            raw.extend_from_slice(&deliver_header(1, i, i, 10));
            raw.extend_from_slice(b"0123456789");
        }
        for codec in Codec::ALL {
            let mut wire = BytesMut::from(&deliver_header(0, 100, 100, 1)[..]);
            wire.extend_from_slice(b"p");
            let e = batch::BatchEncoder::new(codec, 3)
                .unwrap()
                .encode(&raw, &mut wire)
                .unwrap();
            encode_reject("bye", &mut wire);
            let total = wire.len() as u64;
            let mut d = DownstreamDecoder::new(1 << 20).with_codec(Some(codec));
            let mut got = Vec::new();
            while let Some(f) = d.decode(&mut wire).unwrap() {
                got.push(f);
            }
            assert_eq!(got.len(), 7);
            assert!(matches!(&got[0], Downstream::Deliver(x) if x.queued_ns == 100));
            for (i, f) in got[1..6].iter().enumerate() {
                assert!(
                    matches!(f, Downstream::Deliver(x) if x.queued_ns == i as u64 && &x.payload[..] == b"0123456789")
                );
            }
            assert_eq!(got[6], Downstream::Reject("bye".into()));
            let s = d.stats();
            assert_eq!((s.batches, s.batched, s.wire_bytes), (1, 5, total));
            assert_eq!(
                s.raw_bytes,
                total - u64::from(e.frame_len) + raw.len() as u64
            );
        }
    }

    #[test]
    fn a_batch_is_refused_without_a_codec_and_by_its_header_alone() {
        let mut header = BytesMut::new();
        header.put_u32(1000);
        header.put_u8(KIND_BATCH);
        header.put_u8(1);
        header.put_u32(1);
        header.put_u32(batch::MAX_RAW_LEN + 1);
        assert_eq!(
            DownstreamDecoder::new(4096).decode(&mut header.clone()),
            Err(DownstreamError::Kind {
                kind: 0x42,
                offset: 0
            })
        );
        let mut d = DownstreamDecoder::new(4096).with_codec(Some(Codec::Lz4));
        assert_eq!(
            d.decode(&mut header.clone()),
            Err(DownstreamError::Batch {
                source: BatchError::RawTooLong(batch::MAX_RAW_LEN + 1),
                offset: 0
            })
        );
        // 13 bytes: not yet decided.
        assert_eq!(d.decode(&mut BytesMut::from(&header[..13])), Ok(None));
    }

    proptest! {
        #[test]
        fn hello_round_trips(id in "[a-zA-Z0-9_.-]{1,64}", weight in 0.001f64..1e9, acks in any::<bool>(), codec in 0usize..3) {
            let mut h = hello(&id, weight, acks);
            h.compression = [None, Some(Codec::Lz4), Some(Codec::Zstd)][codec];
            let mut b = BytesMut::new();
            h.encode(&mut b).unwrap();
            prop_assert_eq!(decode_hello(&mut b).unwrap(), Some(h));
        }

        #[test]
        fn deliver_round_trips(p in any::<u8>(), q in any::<u64>(), d in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..500)) {
            let mut b = BytesMut::from(&deliver_header(p, q, d, payload.len())[..]);
            b.extend_from_slice(&payload);
            let got = DownstreamDecoder::new(1 << 20).decode(&mut b).unwrap();
            prop_assert_eq!(got, Some(Downstream::Deliver(Deliver { priority: p, queued_ns: q, dispatch_ns: d, payload: payload.into() })));
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_hello(&mut BytesMut::from(&bytes[..]));
            let mut b = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode_ack(&mut b) {}
            let mut d = DownstreamDecoder::new(4096);
            let mut b = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = d.decode(&mut b) {}
        }
    }
}
