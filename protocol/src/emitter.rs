//! The acknowledged emitter session (PROTOCOL.md §5): an optional EMITTER HELLO in front of
//! the LOG stream of [`crate::log`], and cumulative ACKs back on the same connection.
//!
//! ```text
//! EMITTER HELLO  emitter -> distributor, the first bytes of the connection
//!  0            4         5       6        7
//! +------------+---------+-------+--------+-----------------------+
//! | "LDE1"     | version | flags | id_len | id (1..=64, UTF-8)    |
//! | 4C 44 45 31|  u8 = 1 | bit 0 |   u8   |                       |
//! +------------+---------+-------+--------+-----------------------+
//!   read as a frame_len the magic is 1,279,542,577: above any max_frame
//!   the distributor accepts (256 MiB), so it is never a LOG frame
//!
//! ACK  distributor -> emitter: the analyzer ACK's layout (frame_len 13, 0x41, count u64):
//!      LOG frames 1..=count after the HELLO are secured
//! ```
//!
//! A connection whose first four bytes are anything else is a plain LOG stream (§1): the
//! first four bytes decide. [`EmitterDecoder`] makes that decision and then decodes LOG
//! frames; a bad EMITTER HELLO is an error the distributor answers with a REJECT.

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
        dst.put_u8(if self.acks { FLAG_ACKS } else { 0 });
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
    /// Flag bits other than bit 0.
    #[error("unknown EMITTER HELLO flag bits 0x{0:02x} (only bit 0, acks, is defined)")]
    Flags(u8),
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
    if buf.len() > 5 && buf[5] & !FLAG_ACKS != 0 {
        return Err(HelloError::Flags(buf[5]));
    }
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
    Ok(Some(EmitterHello { acks, id }))
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
}

/// Decodes one emitter connection: the first four bytes decide between an EMITTER HELLO
/// and a plain LOG stream, then LOG frames follow.
#[derive(Debug, Clone)]
pub struct EmitterDecoder {
    /// Still before the first four bytes.
    opening: bool,
    log: LogDecoder,
}

impl EmitterDecoder {
    /// A decoder whose LOG frames are at most `max_frame` bytes.
    pub fn new(max_frame: u32) -> Self {
        Self {
            opening: true,
            log: LogDecoder::new(max_frame),
        }
    }

    /// Stream offset of the next undecoded byte.
    pub fn offset(&self) -> u64 {
        self.log.offset()
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
                self.log.skip((before - buf.len()) as u64);
                return Ok(Some(Item::Hello(hello)));
            }
        }
        Ok(self.log.decode(buf)?.map(Item::Log))
    }
}

impl crate::Decode for EmitterDecoder {
    type Frame = Item;
    type Error = StreamError;
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, StreamError> {
        EmitterDecoder::decode(self, buf)
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
        let cases: [(&[u8], HelloError); 5] = [
            (b"LDE1\x02", HelloError::Version(2)),
            (b"LDE1\x01\x03", HelloError::Flags(3)),
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
    fn encode_refuses_ids_the_protocol_does_not_allow() {
        let long = "x".repeat(65);
        let mut out = BytesMut::new();
        let e = EmitterHello {
            acks: false,
            id: long,
        };
        assert_eq!(
            e.encode(&mut out),
            Err(HelloError::Id(IdError::TooLong(65), 65))
        );
        assert!(out.is_empty());
    }
}
