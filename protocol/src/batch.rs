//! BATCH frames (PROTOCOL.md §7): a run of whole DELIVER frames, compressed as one frame of
//! the codec the analyzer's HELLO asked for.
//!
//! ```text
//! BATCH   distributor -> analyzer, only to an analyzer whose HELLO set bit 1 or 2
//!  0         4      5       6          10          14
//! +---------+------+-------+----------+-----------+------------------------------+
//! |frame_len| 0x42 | codec | count u32| raw_len   | one compressed frame: raw_len|
//! |         |      | 1 lz4 |   >= 1   | u32 <= 16 |  bytes once decompressed =   |
//! |         |      | 2 zstd|          | MiB       |  count DELIVER frames        |
//! +---------+------+-------+----------+-----------+------------------------------+
//! ```
//!
//! [`BatchEncoder`] is the distributor's side (it keeps one compression context per
//! analyzer link, reused for every batch); [`decode`] is the analyzer's, which the
//! [`crate::analyzer::DownstreamDecoder`] calls for every BATCH once it is told the codec.
//! `raw_len` is checked against its 16 MiB limit, and `count` against what `raw_len` can
//! hold, from the header alone, before anything is decompressed; decompression stops at
//! `raw_len` bytes (libzstd is given a buffer of exactly that size, lz4 blocks decode into
//! what is left of it), so a compression bomb costs at most `raw_len` bytes of memory.

use crate::analyzer::{DELIVER_HEADER_LEN, Deliver, KIND_DELIVER};
use crate::codec::{Codec, CompressError, DecompressError};
use bytes::{BufMut, Bytes, BytesMut};

/// `kind` of a BATCH frame (`B`).
pub const KIND_BATCH: u8 = 0x42;
/// Bytes of a BATCH before the compressed frame.
pub const HEADER_LEN: usize = 14;
/// The largest `raw_len`: 16 MiB.
pub const MAX_RAW_LEN: u32 = 16 << 20;
/// The largest BATCH `frame_len` a decoder accepts: the header, a `raw_len` of 16 MiB
/// and what either codec adds to incompressible data (under 1/128 and a frame header).
pub const MAX_FRAME_LEN: u32 = HEADER_LEN as u32 + MAX_RAW_LEN + MAX_RAW_LEN / 128 + 65_536;

/// Why a batch cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// No DELIVER frame in it.
    #[error("a BATCH carries at least one DELIVER frame")]
    Empty,
    /// More than [`MAX_RAW_LEN`] bytes.
    #[error("{0} bytes of DELIVER frames exceed a BATCH's raw_len limit of 16 MiB")]
    TooLong(usize),
    /// The bytes are not whole DELIVER frames.
    #[error("the bytes to batch are not whole DELIVER frames (at byte {0})")]
    NotDelivers(usize),
    /// The codec failed.
    #[error(transparent)]
    Compress(#[from] CompressError),
}

/// What [`BatchEncoder::encode`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// DELIVER frames inside.
    pub count: u32,
    /// Their bytes (`raw_len`).
    pub raw_len: u32,
    /// The BATCH frame's length (`frame_len`), header included.
    pub frame_len: u32,
}

/// Compresses runs of DELIVER frames into BATCH frames, reusing its codec context.
#[derive(Debug)]
pub struct BatchEncoder {
    codec: Codec,
    zstd: Option<ZstdContext>,
    scratch: Vec<u8>,
}

/// A zstd compression context (libzstd's, reused across batches: making one costs more
/// than compressing a small batch).
struct ZstdContext(zstd::bulk::Compressor<'static>);

impl std::fmt::Debug for ZstdContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ZstdContext")
    }
}

impl BatchEncoder {
    /// An encoder for `codec`; `level` is zstd's (1 to 19; ignored for lz4).
    pub fn new(codec: Codec, level: i32) -> Result<Self, CompressError> {
        let zstd = match codec {
            Codec::Lz4 => None,
            Codec::Zstd => {
                if !crate::codec::ZSTD_LEVELS.contains(&level) {
                    return Err(CompressError::Level(level));
                }
                let c = zstd::bulk::Compressor::new(level).map_err(|e| CompressError::Codec {
                    codec,
                    reason: e.to_string(),
                })?;
                Some(ZstdContext(c))
            }
        };
        Ok(Self {
            codec,
            zstd,
            scratch: Vec::new(),
        })
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Appends to `dst` one BATCH frame carrying `delivers` (whole DELIVER frames, back to
    /// back, as they would go on the wire).
    pub fn encode(&mut self, delivers: &[u8], dst: &mut BytesMut) -> Result<Encoded, EncodeError> {
        let count = count_delivers(delivers)?;
        self.compress(delivers)?;
        let frame_len = HEADER_LEN + self.scratch.len();
        dst.reserve(frame_len);
        dst.put_u32(frame_len as u32);
        dst.put_u8(KIND_BATCH);
        dst.put_u8(self.codec.id());
        dst.put_u32(count);
        dst.put_u32(delivers.len() as u32);
        dst.put_slice(&self.scratch);
        Ok(Encoded {
            count,
            raw_len: delivers.len() as u32,
            frame_len: frame_len as u32,
        })
    }

    /// Like [`BatchEncoder::encode`], but only when the BATCH is smaller than `delivers`
    /// (a batch that does not shrink goes plain); `Ok(None)`: nothing was written.
    pub fn encode_if_smaller(
        &mut self,
        delivers: &[u8],
        dst: &mut BytesMut,
    ) -> Result<Option<Encoded>, EncodeError> {
        let before = dst.len();
        let e = self.encode(delivers, dst)?;
        if e.frame_len as usize >= delivers.len() {
            dst.truncate(before);
            return Ok(None);
        }
        Ok(Some(e))
    }

    /// Compresses `raw` into `self.scratch` (one frame).
    fn compress(&mut self, raw: &[u8]) -> Result<(), EncodeError> {
        self.scratch.clear();
        let fail = |reason: String| CompressError::Codec {
            codec: self.codec,
            reason,
        };
        match &mut self.zstd {
            None => {
                use std::io::Write as _;
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Linked)
                    .content_size(Some(raw.len() as u64));
                let buf = std::mem::take(&mut self.scratch);
                let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, buf);
                enc.write_all(raw).map_err(|e| fail(e.to_string()))?;
                self.scratch = enc.finish().map_err(|e| fail(e.to_string()))?;
            }
            Some(ZstdContext(c)) => {
                self.scratch
                    .reserve(zstd::zstd_safe::compress_bound(raw.len()));
                c.compress_to_buffer(raw, &mut self.scratch)
                    .map_err(|e| fail(e.to_string()))?;
            }
        }
        Ok(())
    }
}

/// Counts the DELIVER frames of `raw`, which must be whole DELIVER frames.
fn count_delivers(raw: &[u8]) -> Result<u32, EncodeError> {
    if raw.is_empty() {
        return Err(EncodeError::Empty);
    }
    if raw.len() > MAX_RAW_LEN as usize {
        return Err(EncodeError::TooLong(raw.len()));
    }
    let (mut at, mut count) = (0usize, 0u32);
    while at < raw.len() {
        if raw.len() - at < DELIVER_HEADER_LEN || raw[at + 4] != KIND_DELIVER {
            return Err(EncodeError::NotDelivers(at));
        }
        let len = crate::be_u32(raw, at) as usize;
        if len < DELIVER_HEADER_LEN || len > raw.len() - at {
            return Err(EncodeError::NotDelivers(at));
        }
        at += len;
        count += 1;
    }
    Ok(count)
}

/// The fields of a BATCH header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The codec.
    pub codec: Codec,
    /// DELIVER frames inside.
    pub count: u32,
    /// Their bytes once decompressed.
    pub raw_len: u32,
}

/// Why a BATCH frame is refused. Each is a protocol error of the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// A codec byte other than the one the HELLO asked for.
    #[error("BATCH codec {got} is not the {want} the HELLO asked for")]
    Codec {
        /// The byte.
        got: u8,
        /// What the HELLO asked for.
        want: Codec,
    },
    /// `count` 0.
    #[error("BATCH count is 0")]
    Empty,
    /// `raw_len` above 16 MiB.
    #[error("BATCH raw_len {0} exceeds the limit of 16 MiB")]
    RawTooLong(u32),
    /// More DELIVER frames than `raw_len` bytes can hold (22 bytes each at least).
    #[error(
        "BATCH count {count} cannot fit in raw_len {raw_len} (22 bytes per DELIVER frame at least)"
    )]
    CountTooLarge {
        /// The header's count.
        count: u32,
        /// The header's raw_len.
        raw_len: u32,
    },
    /// The compressed frame does not decode.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    /// It decoded to another number of bytes than `raw_len`.
    #[error("BATCH raw_len {raw_len} but its frame decodes to {decoded} bytes")]
    RawLen {
        /// The header's raw_len.
        raw_len: u32,
        /// Bytes decoded.
        decoded: u64,
    },
    /// Its bytes hold another number of whole DELIVER frames than `count`.
    #[error("BATCH count {count} but its bytes hold {found} DELIVER frames")]
    Count {
        /// The header's count.
        count: u32,
        /// Whole DELIVER frames found before the bytes ran out or stopped being frames.
        found: u32,
    },
    /// A frame inside that is not a DELIVER frame, or is too short or too long.
    #[error(
        "BATCH byte {at}: frame_len {frame_len}, kind 0x{kind:02x} is not a DELIVER frame of at most {max} bytes"
    )]
    Inner {
        /// Offset in the decompressed bytes.
        at: usize,
        /// Its frame_len.
        frame_len: u32,
        /// Its kind.
        kind: u8,
        /// The largest DELIVER frame accepted.
        max: u32,
    },
}

/// Checks a BATCH header (at least [`HEADER_LEN`] bytes, frame_len and kind first) against
/// the codec asked for; nothing is decompressed.
pub fn check_header(frame: &[u8], want: Codec) -> Result<Header, BatchError> {
    let codec = Codec::from_id(frame[5])
        .filter(|c| *c == want)
        .ok_or(BatchError::Codec {
            got: frame[5],
            want,
        })?;
    let count = crate::be_u32(frame, 6);
    let raw_len = crate::be_u32(frame, 10);
    if count == 0 {
        return Err(BatchError::Empty);
    }
    if raw_len > MAX_RAW_LEN {
        return Err(BatchError::RawTooLong(raw_len));
    }
    if u64::from(count) * DELIVER_HEADER_LEN as u64 > u64::from(raw_len) {
        return Err(BatchError::CountTooLarge { count, raw_len });
    }
    Ok(Header {
        codec,
        count,
        raw_len,
    })
}

/// Decodes a whole BATCH frame into its DELIVER frames, checking `count` and `raw_len`
/// against what decoded; `max_deliver` is the largest DELIVER `frame_len` accepted.
pub fn decode(frame: &[u8], want: Codec, max_deliver: u32) -> Result<Vec<Deliver>, BatchError> {
    let header = check_header(frame, want)?;
    let raw = decompress(header, &frame[HEADER_LEN..])?;
    split(&raw, header.count, max_deliver)
}

/// Decompresses the frame of a checked header into exactly `raw_len` bytes.
fn decompress(header: Header, compressed: &[u8]) -> Result<Bytes, BatchError> {
    let mut out = BytesMut::new();
    crate::codec::decompress_one_frame(
        header.codec,
        compressed,
        header.raw_len as usize,
        &mut out,
    )?;
    done(out.freeze(), header.raw_len)
}

fn done(raw: Bytes, raw_len: u32) -> Result<Bytes, BatchError> {
    if raw.len() != raw_len as usize {
        return Err(BatchError::RawLen {
            raw_len,
            decoded: raw.len() as u64,
        });
    }
    Ok(raw)
}

/// Splits decompressed bytes into exactly `count` DELIVER frames (payloads share `raw`).
fn split(raw: &Bytes, count: u32, max_deliver: u32) -> Result<Vec<Deliver>, BatchError> {
    let mut out = Vec::with_capacity(count as usize);
    let mut at = 0usize;
    while at < raw.len() {
        if raw.len() - at < 5 {
            return Err(BatchError::Count {
                count,
                found: out.len() as u32,
            });
        }
        let frame_len = crate::be_u32(raw, at);
        let kind = raw[at + 4];
        let len = frame_len as usize;
        if kind != KIND_DELIVER || len < DELIVER_HEADER_LEN || frame_len > max_deliver {
            return Err(BatchError::Inner {
                at,
                frame_len,
                kind,
                max: max_deliver,
            });
        }
        if len > raw.len() - at || out.len() as u32 == count {
            return Err(BatchError::Count {
                count,
                found: out.len() as u32,
            });
        }
        out.push(Deliver {
            priority: raw[at + 5],
            queued_ns: crate::be_u64(raw, at + 6),
            dispatch_ns: crate::be_u64(raw, at + 14),
            payload: raw.slice(at + DELIVER_HEADER_LEN..at + len),
        });
        at += len;
    }
    if out.len() as u32 != count {
        return Err(BatchError::Count {
            count,
            found: out.len() as u32,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::deliver_header;

    fn delivers(n: u64) -> (Vec<u8>, Vec<Deliver>) {
        let mut raw = Vec::new();
        let mut want = Vec::new();
        for i in 0..n {
            let payload = format!("message {i} GET /api/v1/items/{} 200 OK", i % 17);
            raw.extend_from_slice(&deliver_header((i % 3) as u8, i, i + 1, payload.len()));
            raw.extend_from_slice(payload.as_bytes());
            want.push(Deliver {
                priority: (i % 3) as u8,
                queued_ns: i,
                dispatch_ns: i + 1,
                payload: Bytes::from(payload),
            });
        }
        (raw, want)
    }

    #[test]
    fn literal_header_and_round_trip() {
        let (raw, want) = delivers(100);
        for codec in Codec::ALL {
            let mut enc = BatchEncoder::new(codec, 3).unwrap();
            let mut wire = BytesMut::new();
            let e = enc.encode(&raw, &mut wire).unwrap();
            assert_eq!(
                (e.count, e.raw_len, e.frame_len as usize),
                (100, raw.len() as u32, wire.len())
            );
            assert_eq!(&wire[0..4], &(wire.len() as u32).to_be_bytes());
            assert_eq!(wire[4], 0x42);
            assert_eq!(wire[5], codec.id());
            assert_eq!(&wire[6..10], &100u32.to_be_bytes());
            assert_eq!(&wire[10..14], &(raw.len() as u32).to_be_bytes());
            assert!(
                wire.len() < raw.len() / 2,
                "{codec}: {} of {}",
                wire.len(),
                raw.len()
            );
            assert_eq!(decode(&wire, codec, 1 << 20).unwrap(), want);
            // The context is reused: a second batch is the same.
            let mut again = BytesMut::new();
            enc.encode(&raw, &mut again).unwrap();
            assert_eq!(decode(&again, codec, 1 << 20).unwrap(), want);
        }
    }

    #[test]
    fn the_wrong_codec_is_refused() {
        let (raw, _) = delivers(3);
        let mut wire = BytesMut::new();
        BatchEncoder::new(Codec::Lz4, 3)
            .unwrap()
            .encode(&raw, &mut wire)
            .unwrap();
        assert_eq!(
            decode(&wire, Codec::Zstd, 1 << 20),
            Err(BatchError::Codec {
                got: 1,
                want: Codec::Zstd
            })
        );
    }

    #[test]
    fn encode_refuses_what_is_not_whole_delivers() {
        let mut enc = BatchEncoder::new(Codec::Lz4, 3).unwrap();
        let mut dst = BytesMut::new();
        assert_eq!(enc.encode(&[], &mut dst), Err(EncodeError::Empty));
        let (raw, _) = delivers(2);
        let first = DELIVER_HEADER_LEN + "message 0 GET /api/v1/items/0 200 OK".len();
        assert_eq!(
            enc.encode(&raw[..raw.len() - 1], &mut dst),
            Err(EncodeError::NotDelivers(first))
        );
        assert!(dst.is_empty());
        // Incompressible bytes do not shrink: encode_if_smaller writes nothing.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..2000)
            .map(|_| {
                // xorshift64: bytes no codec can shrink.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let mut raw = deliver_header(0, 0, 0, noise.len()).to_vec();
        raw.extend_from_slice(&noise);
        assert_eq!(enc.encode_if_smaller(&raw, &mut dst), Ok(None));
        assert!(dst.is_empty());
        let (text, _) = delivers(50);
        assert!(enc.encode_if_smaller(&text, &mut dst).unwrap().is_some());
    }

    /// A BATCH with a hand-made header over a real compressed frame.
    fn forged(codec: Codec, count: u32, raw_len: u32, body: &[u8]) -> Vec<u8> {
        let mut c = Vec::new();
        match codec {
            Codec::Lz4 => {
                use std::io::Write as _;
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(body).unwrap();
                c = e.finish().unwrap();
            }
            Codec::Zstd => c.extend(zstd::bulk::compress(body, 3).unwrap()),
        }
        let mut f = ((HEADER_LEN + c.len()) as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&[KIND_BATCH, codec.id()]);
        f.extend_from_slice(&count.to_be_bytes());
        f.extend_from_slice(&raw_len.to_be_bytes());
        f.extend_from_slice(&c);
        f
    }

    #[test]
    fn count_and_raw_len_must_match_what_decoded() {
        let (raw, _) = delivers(4);
        let n = raw.len() as u32;
        for codec in Codec::ALL {
            assert_eq!(
                decode(&forged(codec, 4, n, &raw), codec, 4096).map(|v| v.len()),
                Ok(4)
            );
            assert_eq!(
                decode(&forged(codec, 5, n, &raw), codec, 4096),
                Err(BatchError::Count { count: 5, found: 4 })
            );
            assert_eq!(
                decode(&forged(codec, 3, n, &raw), codec, 4096),
                Err(BatchError::Count { count: 3, found: 3 })
            );
            assert!(matches!(
                decode(&forged(codec, 4, n + 1, &raw), codec, 4096),
                Err(BatchError::RawLen { raw_len, .. }) if raw_len == n + 1
            ));
            assert!(matches!(
                decode(&forged(codec, 4, n - 1, &raw), codec, 4096),
                Err(BatchError::RawLen { .. }
                    | BatchError::Decompress(DecompressError::TooMuchOutput { .. }))
            ));
            // A REJECT inside a batch is not a DELIVER frame.
            let mut inner = raw.clone();
            inner[4] = 0x45;
            assert!(matches!(
                decode(&forged(codec, 4, n, &inner), codec, 4096),
                Err(BatchError::Inner {
                    at: 0,
                    kind: 0x45,
                    ..
                })
            ));
            // Trailing bytes after the one frame.
            let mut extra = forged(codec, 4, n, &raw);
            extra.extend_from_slice(b"junk");
            assert!(matches!(
                decode(&extra, codec, 4096),
                Err(BatchError::Decompress(DecompressError::Magic { .. }))
            ));
        }
    }

    #[test]
    fn a_bomb_is_refused_from_its_header_or_at_raw_len() {
        // 16 MiB + 1 declared: refused before decompressing.
        let f = forged(Codec::Lz4, 1, MAX_RAW_LEN + 1, b"x");
        assert_eq!(
            decode(&f, Codec::Lz4, 4096),
            Err(BatchError::RawTooLong(MAX_RAW_LEN + 1))
        );
        assert_eq!(
            decode(&forged(Codec::Zstd, 0, 22, b"x"), Codec::Zstd, 4096),
            Err(BatchError::Empty)
        );
        assert_eq!(
            decode(&forged(Codec::Zstd, 2, 43, b"x"), Codec::Zstd, 4096),
            Err(BatchError::CountTooLarge {
                count: 2,
                raw_len: 43
            })
        );
        // 8 MiB of zeros that claim to be 100 bytes: decoding stops at the bound.
        let zeros = vec![0u8; 8 << 20];
        for codec in Codec::ALL {
            let f = forged(codec, 1, 100, &zeros);
            assert!(f.len() < 100_000, "{codec}: a bomb is small: {}", f.len());
            assert!(
                matches!(
                    decode(&f, codec, 4096),
                    Err(BatchError::RawLen { raw_len: 100, .. }
                        | BatchError::Decompress(
                            DecompressError::TooMuchOutput { .. } | DecompressError::Block { .. }
                        ))
                ),
                "{codec}"
            );
        }
    }
}
