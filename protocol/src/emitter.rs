//! The acknowledged emitter session (PROTOCOL.md §5): an optional EMITTER HELLO in front of
//! the LOG stream of [`crate::log`], and cumulative ACKs back on the same connection.
//!
//! ```text
//! EMITTER HELLO  emitter -> distributor, the first bytes of the connection
//!  0            4         5       6        7
//! +------------+---------+-------+--------+-----------------------+
//! | "LDE1"     | version | flags | id_len | id (1..=64, UTF-8)    |
//! | 4C 44 45 31|  u8 = 1 |       |   u8   |                       |
//! +------------+---------+-------+--------+-----------------------+
//!   flags: bit 0 = send ACKs; bit 1 = the rest is one lz4 stream, bit 2 = zstd
//!   (at most one of bits 1 and 2; see crate::codec)
//!   read as a frame_len the magic is 1,279,542,577: above any max_frame
//!   the distributor accepts (256 MiB), so it is never a LOG frame
//!
//! ACK  distributor -> emitter: the analyzer ACK's layout (frame_len 13, 0x41, count u64):
//!      LOG frames 1..=count after the HELLO are secured
//! ```
//!
//! A connection whose first four bytes are anything else is a plain LOG stream (§1): the
//! first four bytes decide. [`EmitterDecoder`] makes that decision and then decodes LOG
//! frames, decompressing them first when the HELLO named a codec (LOG frames are then cut
//! from the decompressed stream as they complete; offsets in a [`LogError`] count the
//! HELLO and the decompressed bytes, offsets in a [`DecompressError`] the compressed
//! bytes after the HELLO). A bad EMITTER HELLO is an error the distributor answers with a
//! REJECT.

use crate::codec::{Codec, DecompressError, Step, StreamDecoder};
use crate::log::{LogDecoder, LogError, LogFrame};
use bytes::{Buf, BufMut, BytesMut};

/// The first four bytes of an EMITTER HELLO: `LDE1`.
pub const MAGIC: [u8; 4] = *b"LDE1";
/// The version this crate speaks.
pub const VERSION: u8 = 1;
/// Flag bit 0: the distributor sends ACKs.
pub const FLAG_ACKS: u8 = 0x01;
/// Bytes of an EMITTER HELLO before the id.
pub const HELLO_HEADER_LEN: usize = 7;
/// The longest emitter id, in bytes.
pub const MAX_ID_LEN: usize = crate::MAX_ID_LEN;

/// An EMITTER HELLO, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmitterHello {
    /// Whether the emitter wants ACKs.
    pub acks: bool,
    /// The codec of the rest of the stream (flag bit 1 or 2), if it is compressed.
    pub compression: Option<Codec>,
    /// The emitter's name, for logs and metrics (and, over mutual TLS, its identity).
    pub id: String,
}

impl EmitterHello {
    /// Appends the HELLO to `dst`; fails on an id the protocol does not allow.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), HelloError> {
        check_id(self.id.as_bytes())?;
        dst.reserve(HELLO_HEADER_LEN + self.id.len());
        dst.put_slice(&MAGIC);
        dst.put_u8(VERSION);
        let acks = if self.acks { FLAG_ACKS } else { 0 };
        dst.put_u8(acks | self.compression.map_or(0, Codec::flag));
        dst.put_u8(self.id.len() as u8);
        dst.put_slice(self.id.as_bytes());
        Ok(())
    }
}

/// Why an EMITTER HELLO is refused. Each is answered with a REJECT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// A version other than 1.
    #[error("unsupported EMITTER HELLO version {0} (this distributor speaks version 1)")]
    Version(u8),
    /// Flag bits other than bits 0 to 2.
    #[error(
        "unknown EMITTER HELLO flag bits 0x{0:02x} (bit 0 acks, bit 1 lz4 and bit 2 zstd are defined)"
    )]
    Flags(u8),
    /// Flag bits 1 and 2 both set.
    #[error(
        "EMITTER HELLO flags 0x{0:02x} set bits 1 (lz4) and 2 (zstd); at most one codec may be named"
    )]
    BothCodecs(u8),
    /// `id_len` 0 or over 64, or an id that is not UTF-8.
    #[error("emitter {0} (id_len {1})")]
    Id(crate::IdError, usize),
}

fn check_id(id: &[u8]) -> Result<&str, HelloError> {
    crate::check_id(id).map_err(|e| HelloError::Id(e, id.len()))
}

/// Takes an EMITTER HELLO (magic included) out of `buf`; `Ok(None)` while it is
/// incomplete. The caller has seen the magic. Each field is checked as soon as it is there.
pub fn decode_hello(buf: &mut BytesMut) -> Result<Option<EmitterHello>, HelloError> {
    if buf.len() > 4 && buf[4] != VERSION {
        return Err(HelloError::Version(buf[4]));
    }
    if buf.len() > 5 && buf[5] & !(FLAG_ACKS | Codec::FLAGS) != 0 {
        return Err(HelloError::Flags(buf[5]));
    }
    let compression = match buf.get(5) {
        Some(flags) => Codec::from_flags(*flags).map_err(|_| HelloError::BothCodecs(*flags))?,
        None => None,
    };
    if buf.len() < HELLO_HEADER_LEN {
        return Ok(None);
    }
    let id_len = usize::from(buf[6]);
    if id_len == 0 {
        return Err(HelloError::Id(crate::IdError::Empty, 0));
    }
    if id_len > MAX_ID_LEN {
        return Err(HelloError::Id(crate::IdError::TooLong(id_len), id_len));
    }
    if buf.len() < HELLO_HEADER_LEN + id_len {
        return Ok(None);
    }
    let id = check_id(&buf[HELLO_HEADER_LEN..HELLO_HEADER_LEN + id_len])?.to_owned();
    let acks = buf[5] & FLAG_ACKS != 0;
    buf.advance(HELLO_HEADER_LEN + id_len);
    Ok(Some(EmitterHello {
        acks,
        compression,
        id,
    }))
}

/// What an emitter connection carries, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The EMITTER HELLO that opened the connection (at most one, first).
    Hello(EmitterHello),
    /// A LOG frame.
    Log(LogFrame),
}

/// A fault in an emitter connection's stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// A bad EMITTER HELLO (answered with a REJECT).
    #[error(transparent)]
    Hello(#[from] HelloError),
    /// A bad LOG frame.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A compressed stream that does not decode (its offset counts the compressed bytes
    /// after the EMITTER HELLO).
    #[error(transparent)]
    Decompress(#[from] DecompressError),
}

/// Decodes one emitter connection: the first four bytes decide between an EMITTER HELLO
/// and a plain LOG stream, then LOG frames follow (decompressed first when the HELLO named
/// a codec).
#[derive(Debug)]
pub struct EmitterDecoder {
    /// Still before the first four bytes.
    opening: bool,
    log: LogDecoder,
    /// Bytes of the EMITTER HELLO, if there was one.
    hello_len: u64,
    /// After an EMITTER HELLO that named a codec.
    inflate: Option<Inflate>,
}

/// The decompressing side of a compressed emitter stream.
#[derive(Debug)]
struct Inflate {
    stream: StreamDecoder,
    /// Decompressed bytes not yet cut into LOG frames: at most one partial LOG frame
    /// (refused beyond max_frame by the LOG decoder) and one decoded unit.
    raw: BytesMut,
}

impl EmitterDecoder {
    /// A decoder whose LOG frames are at most `max_frame` bytes.
    pub fn new(max_frame: u32) -> Self {
        Self {
            opening: true,
            log: LogDecoder::new(max_frame),
            hello_len: 0,
            inflate: None,
        }
    }

    /// Stream offset of the next undecoded byte of the LOG stream (the HELLO included;
    /// with compression, counted in decompressed bytes).
    pub fn offset(&self) -> u64 {
        self.log.offset()
    }

    /// The codec the EMITTER HELLO named, once it has been decoded.
    pub fn compression(&self) -> Option<Codec> {
        self.inflate.as_ref().map(|i| i.stream.codec())
    }

    /// Bytes of the connection taken so far, as on the wire (HELLO and compressed bytes).
    pub fn wire_bytes(&self) -> u64 {
        match &self.inflate {
            Some(i) => self.hello_len + i.stream.offset(),
            None => self.log.offset(),
        }
    }

    /// Decompressed bytes held inside the decoder: the start of a LOG frame whose rest
    /// has not arrived. At the end of a connection, nonzero means a truncated frame (as
    /// undecoded bytes left in the caller's buffer do).
    pub fn held(&self) -> usize {
        self.inflate.as_ref().map_or(0, |i| i.raw.len())
    }

    /// Whether the compressed stream so far ends at a frame of its codec's boundary (always
    /// true without compression). At the end of a connection, false means the last
    /// compressed frame was cut; every LOG frame decoded before it stands.
    pub fn at_boundary(&self) -> bool {
        self.inflate.as_ref().is_none_or(|i| i.stream.at_boundary())
    }

    /// Takes the next item out of `buf`; `Ok(None)` while it is incomplete.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, StreamError> {
        if self.opening {
            if buf.len() < MAGIC.len() {
                return Ok(None);
            }
            if buf[..MAGIC.len()] != MAGIC {
                self.opening = false;
            } else {
                let before = buf.len();
                let Some(hello) = decode_hello(buf)? else {
                    return Ok(None);
                };
                self.opening = false;
                self.hello_len = (before - buf.len()) as u64;
                self.log.skip(self.hello_len);
                self.inflate = hello.compression.map(|codec| Inflate {
                    stream: StreamDecoder::new(codec),
                    raw: BytesMut::new(),
                });
                return Ok(Some(Item::Hello(hello)));
            }
        }
        let Some(inflate) = self.inflate.as_mut() else {
            return Ok(self.log.decode(buf)?.map(Item::Log));
        };
        // A LOG frame as soon as its bytes are decoded; another unit only when none is.
        loop {
            if let Some(frame) = self.log.decode(&mut inflate.raw)? {
                return Ok(Some(Item::Log(frame)));
            }
            if inflate.stream.step(buf, &mut inflate.raw)? == Step::NeedInput {
                return Ok(None);
            }
        }
    }
}

impl crate::Decode for EmitterDecoder {
    type Frame = Item;
    type Error = StreamError;
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, StreamError> {
        EmitterDecoder::decode(self, buf)
    }

    fn held(&self) -> usize {
        EmitterDecoder::held(self)
    }
}

/// What the distributor sends an emitter that opened with an EMITTER HELLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Frames 1..=count of the connection are secured.
    Ack(u64),
    /// The EMITTER HELLO was refused; the connection closes next.
    Reject(String),
}

/// Why bytes from the distributor on an emitter connection are not a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A kind other than ACK or REJECT.
    #[error("frame kind 0x{0:02x} from the distributor, expected ACK (0x41) or REJECT (0x45)")]
    Kind(u8),
    /// An ACK whose `frame_len` is not 13, or a REJECT longer than 4096 bytes.
    #[error("frame_len {0} from the distributor is not an ACK (13) or a REJECT (at most 4096)")]
    Length(u32),
}

/// Decodes the distributor's ACKs and REJECT on an emitter connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplyDecoder;

impl crate::Decode for ReplyDecoder {
    type Frame = Reply;
    type Error = ReplyError;
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, ReplyError> {
        if buf.len() < 5 {
            return Ok(None);
        }
        let frame_len = crate::be_u32(buf, 0);
        let kind = buf[4];
        match kind {
            crate::analyzer::KIND_ACK if frame_len != crate::analyzer::ACK_LEN => {
                Err(ReplyError::Length(frame_len))
            }
            crate::analyzer::KIND_REJECT
                if !(5..=crate::analyzer::MAX_HELLO_LEN).contains(&frame_len) =>
            {
                Err(ReplyError::Length(frame_len))
            }
            crate::analyzer::KIND_ACK | crate::analyzer::KIND_REJECT => {
                if buf.len() < frame_len as usize {
                    return Ok(None);
                }
                let frame = buf.split_to(frame_len as usize);
                Ok(Some(if kind == crate::analyzer::KIND_ACK {
                    Reply::Ack(crate::be_u64(&frame, 5))
                } else {
                    Reply::Reject(String::from_utf8_lossy(&frame[5..]).into_owned())
                }))
            }
            other => Err(ReplyError::Kind(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decode as _;
    use crate::IdError;

    #[test]
    fn replies_are_acks_and_rejects() {
        let mut buf = BytesMut::new();
        crate::analyzer::encode_ack(7, &mut buf);
        crate::analyzer::encode_reject("no", &mut buf);
        let mut d = ReplyDecoder;
        assert_eq!(d.decode(&mut buf), Ok(Some(Reply::Ack(7))));
        assert_eq!(d.decode(&mut buf), Ok(Some(Reply::Reject("no".into()))));
        assert_eq!(d.decode(&mut buf), Ok(None));
        let mut bad = BytesMut::from(&[0u8, 0, 0, 14, 0x41][..]);
        assert_eq!(d.decode(&mut bad), Err(ReplyError::Length(14)));
        let mut bad = BytesMut::from(&[0u8, 0, 0, 13, 0x44][..]);
        assert_eq!(d.decode(&mut bad), Err(ReplyError::Kind(0x44)));
    }

    fn hello(acks: bool, id: &str) -> Vec<u8> {
        let mut out = BytesMut::new();
        EmitterHello {
            acks,
            compression: None,
            id: id.to_owned(),
        }
        .encode(&mut out)
        .unwrap();
        out.to_vec()
    }

    #[test]
    fn encodes_the_documented_layout() {
        assert_eq!(
            hello(true, "e1"),
            [0x4C, 0x44, 0x45, 0x31, 1, 1, 2, b'e', b'1']
        );
        assert_eq!(u32::from_be_bytes(MAGIC), 1_279_542_577);
    }

    #[test]
    fn a_hello_then_log_frames_cut_anywhere() {
        let mut wire = hello(true, "em");
        wire.extend_from_slice(&[0, 0, 0, 6, 9, b'x']);
        for cut in 0..wire.len() {
            let mut d = EmitterDecoder::new(100);
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut items = Vec::new();
            while let Some(i) = d.decode(&mut buf).unwrap() {
                items.push(i);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(i) = d.decode(&mut buf).unwrap() {
                items.push(i);
            }
            assert_eq!(items.len(), 2, "cut at {cut}");
            assert_eq!(
                items[0],
                Item::Hello(EmitterHello {
                    acks: true,
                    compression: None,
                    id: "em".into()
                })
            );
            assert!(matches!(&items[1], Item::Log(f) if f.priority == 9 && &f.payload[..] == b"x"));
            assert_eq!(d.offset(), wire.len() as u64);
        }
    }

    #[test]
    fn a_plain_stream_is_decided_by_its_first_four_bytes() {
        let mut d = EmitterDecoder::new(100);
        let mut buf = BytesMut::from(&[0u8, 0, 0][..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&[5, 3]);
        assert!(matches!(d.decode(&mut buf), Ok(Some(Item::Log(f))) if f.priority == 3));
        // A later "LDE1" is a frame_len like any other.
        buf.extend_from_slice(&MAGIC);
        assert!(matches!(
            d.decode(&mut buf),
            Err(StreamError::Log(LogError::TooLong { offset: 5, .. }))
        ));
    }

    #[test]
    fn refuses_each_bad_field() {
        let cases: [(&[u8], HelloError); 6] = [
            (b"LDE1\x02", HelloError::Version(2)),
            (b"LDE1\x01\x09", HelloError::Flags(9)),
            (b"LDE1\x01\x06", HelloError::BothCodecs(6)),
            (b"LDE1\x01\x00\x00", HelloError::Id(IdError::Empty, 0)),
            (
                b"LDE1\x01\x00\x41",
                HelloError::Id(IdError::TooLong(65), 65),
            ),
            (
                b"LDE1\x01\x00\x02a\xff",
                HelloError::Id(IdError::NotUtf8(1), 2),
            ),
        ];
        for (bytes, want) in cases {
            let mut d = EmitterDecoder::new(100);
            let mut buf = BytesMut::from(bytes);
            assert_eq!(d.decode(&mut buf), Err(StreamError::Hello(want)));
        }
    }

    #[test]
    fn a_compressed_stream_after_the_hello() {
        for codec in Codec::ALL {
            let mut wire = BytesMut::new();
            EmitterHello {
                acks: false,
                compression: Some(codec),
                id: "z".into(),
            }
            .encode(&mut wire)
            .unwrap();
            assert_eq!(
                &wire[..],
                &[0x4C, 0x44, 0x45, 0x31, 1, codec.flag(), 1, b'z']
            );
            let mut c = crate::codec::StreamCompressor::new(codec, 3).unwrap();
            let mut log = BytesMut::new();
            for i in 0..200u8 {
                crate::log::encode(i, &[i; 300], &mut log).unwrap();
            }
            // A frame cut across two flushes still comes out whole.
            c.compress(&log[..1000], &mut wire).unwrap();
            c.compress(&log[1000..], &mut wire).unwrap();
            let raw_end = 8 + log.len() as u64;
            // A bad compressed byte after it: named at its compressed offset.
            let compressed = wire.len() as u64 - 8;
            wire.extend_from_slice(b"\xff\xff\xff\xff");
            for cut in [0, 9, 500, wire.len()] {
                let mut d = EmitterDecoder::new(1 << 20);
                let mut buf = BytesMut::from(&wire[..cut]);
                let mut got = Vec::new();
                let mut fault = None;
                for part in [&wire[cut..], &[][..]] {
                    loop {
                        match d.decode(&mut buf) {
                            Ok(Some(i)) => got.push(i),
                            Ok(None) => break,
                            Err(e) => {
                                fault = Some(e);
                                break;
                            }
                        }
                    }
                    buf.extend_from_slice(part);
                }
                assert_eq!(got.len(), 201, "{codec} cut {cut}");
                assert!(
                    matches!(&got[200], Item::Log(f) if f.priority == 199 && f.payload.len() == 300)
                );
                assert_eq!(
                    (d.offset(), d.compression(), d.held()),
                    (raw_end, Some(codec), 0)
                );
                assert_eq!(d.wire_bytes(), 8 + compressed);
                assert!(!d.at_boundary(), "{codec}: the frame is open");
                assert!(
                    matches!(fault, Some(StreamError::Decompress(e)) if e.to_string().contains(&format!("compressed offset {compressed}"))),
                    "{codec} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn encode_refuses_ids_the_protocol_does_not_allow() {
        let long = "x".repeat(65);
        let mut out = BytesMut::new();
        let e = EmitterHello {
            acks: false,
            compression: None,
            id: long,
        };
        assert_eq!(
            e.encode(&mut out),
            Err(HelloError::Id(IdError::TooLong(65), 65))
        );
        assert!(out.is_empty());
    }
}
