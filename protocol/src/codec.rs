//! Compression on the links (PROTOCOL.md §7): the two codecs, the emitter side's streaming
//! compressor and the distributor side's incremental decompressor.
//!
//! ```text
//! codec   BATCH codec byte   HELLO / EMITTER HELLO flag   format
//! lz4     1                  bit 1 (0x02)                 LZ4 frames (lz4_Frame_format.md)
//! zstd    2                  bit 2 (0x04)                 Zstandard frames (RFC 8878)
//! ```
//!
//! [`StreamCompressor`] turns LOG bytes into one compressed stream and is flushed at every
//! write boundary, so nothing waits inside it. [`StreamDecoder`] is its inverse, without
//! I/O: it is handed compressed bytes as they arrive and appends the LOG bytes they carry.
//! It never hands a partial unit to a codec: it parses the frame structure itself (an LZ4
//! frame header, block sizes, skippable frames; a zstd frame header with its window
//! descriptor, block headers) and decodes one whole unit at a time. So
//! - an error names the offset, in the compressed stream, of the unit (or field) at fault,
//!   the same however TCP cut the bytes;
//! - memory is bounded before anything grows: a block is refused by its declared size
//!   (LZ4: the frame's block maximum, at most 4 MiB; zstd: 128 KiB), a zstd frame by its
//!   window (over 8 MiB), before its bytes are buffered or a window allocated, and one unit
//!   decodes into at most one block's worth of output.
//!
//! lz4_flex's `frame::FrameDecoder` is a pull reader that cannot resume after a short read,
//! which is why the LZ4 side walks the frame format here and uses lz4_flex's block decoder
//! (and `twox-hash` for the checksums) for the data; its `frame::FrameEncoder` writes the
//! emitter side.

mod lz4_frames;
mod zstd_frames;

use bytes::BytesMut;

/// The largest zstd window a decoder accepts: 8 MiB (PROTOCOL.md §7).
pub const MAX_ZSTD_WINDOW: u64 = 8 << 20;
/// zstd levels a [`StreamCompressor`] or a batch encoder accepts: 1 to 19 (20 to 22 use
/// windows over [`MAX_ZSTD_WINDOW`]).
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=19;
/// The zstd level used when none is given (zstd's own default).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// A codec of PROTOCOL.md §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// The LZ4 frame format.
    Lz4,
    /// The Zstandard frame format.
    Zstd,
}

/// Flag bits 1 and 2 of a HELLO or EMITTER HELLO both set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("flag bits 1 (lz4) and 2 (zstd) are both set; at most one codec may be asked for")]
pub struct BothCodecs;

impl Codec {
    /// Both codecs.
    pub const ALL: [Codec; 2] = [Codec::Lz4, Codec::Zstd];
    /// The HELLO / EMITTER HELLO flag bits that name a codec.
    pub const FLAGS: u8 = 0x06;

    /// The `codec` byte of a BATCH frame.
    pub const fn id(self) -> u8 {
        match self {
            Codec::Lz4 => 1,
            Codec::Zstd => 2,
        }
    }

    /// The codec of a BATCH `codec` byte.
    pub const fn from_id(id: u8) -> Option<Codec> {
        match id {
            1 => Some(Codec::Lz4),
            2 => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// Its flag bit in a HELLO or EMITTER HELLO.
    pub const fn flag(self) -> u8 {
        match self {
            Codec::Lz4 => 0x02,
            Codec::Zstd => 0x04,
        }
    }

    /// The codec that `flags` ask for (bits 1 and 2; other bits are not looked at).
    pub fn from_flags(flags: u8) -> Result<Option<Codec>, BothCodecs> {
        match flags & Self::FLAGS {
            0 => Ok(None),
            0x02 => Ok(Some(Codec::Lz4)),
            0x04 => Ok(Some(Codec::Zstd)),
            _ => Err(BothCodecs),
        }
    }

    /// `lz4` or `zstd`.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lz4" => Ok(Codec::Lz4),
            "zstd" => Ok(Codec::Zstd),
            _ => Err(format!("{s:?} is not a codec (lz4 or zstd)")),
        }
    }
}

/// Why a compressor cannot be made or cannot compress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressError {
    /// A zstd level outside [`ZSTD_LEVELS`].
    #[error("zstd level {0} is outside 1..=19 (levels 20-22 need windows over the 8 MiB limit)")]
    Level(i32),
    /// The codec library failed.
    #[error("{codec} compression failed: {reason}")]
    Codec {
        /// The codec.
        codec: Codec,
        /// What the library said.
        reason: String,
    },
}

/// The emitter side of a compressed stream: LOG bytes in, compressed bytes out, flushed at
/// every call so that the receiver can decode everything written so far.
///
/// lz4: one LZ4 frame for the connection's life, blocks linked (a block may refer to the
/// 64 KiB before it, which is what makes small flushed blocks compress), one block per
/// flush; [`StreamCompressor::finish`] writes the end mark. zstd: one frame, one flushed
/// block run per call, window at most that of the level (at most 8 MiB).
#[derive(Debug)]
pub struct StreamCompressor(Compressing);

enum Compressing {
    Lz4(Box<lz4_flex::frame::FrameEncoder<Vec<u8>>>),
    Zstd(Box<zstd::stream::raw::Encoder<'static>>),
}

impl std::fmt::Debug for Compressing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compressing::Lz4(_) => "Lz4",
            Compressing::Zstd(_) => "Zstd",
        })
    }
}

/// Largest input handed to zstd per call, so the output buffer bound stays small.
const ZSTD_FEED: usize = 128 * 1024;

impl StreamCompressor {
    /// A compressor for `codec`; `level` is zstd's (ignored for lz4).
    pub fn new(codec: Codec, level: i32) -> Result<Self, CompressError> {
        Ok(Self(match codec {
            Codec::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Linked);
                Compressing::Lz4(Box::new(lz4_flex::frame::FrameEncoder::with_frame_info(
                    info,
                    Vec::new(),
                )))
            }
            Codec::Zstd => {
                if !ZSTD_LEVELS.contains(&level) {
                    return Err(CompressError::Level(level));
                }
                let encoder = zstd::stream::raw::Encoder::new(level).map_err(|e| zstd_fail(&e))?;
                Compressing::Zstd(Box::new(encoder))
            }
        }))
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        match self.0 {
            Compressing::Lz4(_) => Codec::Lz4,
            Compressing::Zstd(_) => Codec::Zstd,
        }
    }

    /// Compresses `raw` and flushes, appending the compressed bytes to `dst`.
    pub fn compress(&mut self, raw: &[u8], dst: &mut BytesMut) -> Result<(), CompressError> {
        match &mut self.0 {
            Compressing::Lz4(enc) => {
                use std::io::Write as _;
                enc.write_all(raw)
                    .and_then(|()| enc.flush())
                    .map_err(|e| lz4_fail(&e))?;
                let out = enc.get_mut();
                dst.extend_from_slice(out);
                out.clear();
                Ok(())
            }
            Compressing::Zstd(enc) => zstd_run(enc, raw, dst, ZstdStep::Flush),
        }
    }

    /// Ends the stream (the LZ4 end mark, the zstd frame's last block and checksum),
    /// appending the bytes to `dst`. The compressor starts a new frame if used again.
    pub fn finish(&mut self, dst: &mut BytesMut) -> Result<(), CompressError> {
        match &mut self.0 {
            Compressing::Lz4(enc) => {
                let info = enc.frame_info().clone();
                let old = std::mem::replace(
                    enc.as_mut(),
                    lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new()),
                );
                let out = old.finish().map_err(|e| lz4_fail(&e))?;
                dst.extend_from_slice(&out);
                Ok(())
            }
            Compressing::Zstd(enc) => zstd_run(enc, &[], dst, ZstdStep::End),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ZstdStep {
    Flush,
    End,
}

fn zstd_run(
    enc: &mut zstd::stream::raw::Encoder<'static>,
    raw: &[u8],
    dst: &mut BytesMut,
    step: ZstdStep,
) -> Result<(), CompressError> {
    use zstd::stream::raw::{InBuffer, Operation as _, OutBuffer};
    let mut scratch = vec![0u8; zstd::zstd_safe::CCtx::out_size()];
    for chunk in raw.chunks(ZSTD_FEED) {
        let mut input = InBuffer::around(chunk);
        while input.pos() < chunk.len() {
            let mut out = OutBuffer::around(&mut scratch[..]);
            enc.run(&mut input, &mut out).map_err(|e| zstd_fail(&e))?;
            let n = out.pos();
            dst.extend_from_slice(&scratch[..n]);
        }
    }
    loop {
        let mut out = OutBuffer::around(&mut scratch[..]);
        let left = match step {
            ZstdStep::Flush => enc.flush(&mut out),
            ZstdStep::End => enc.finish(&mut out, true),
        }
        .map_err(|e| zstd_fail(&e))?;
        let n = out.pos();
        dst.extend_from_slice(&scratch[..n]);
        if left == 0 {
            break;
        }
    }
    if step == ZstdStep::End {
        enc.reinit().map_err(|e| zstd_fail(&e))?;
    }
    Ok(())
}

fn zstd_fail(e: &std::io::Error) -> CompressError {
    CompressError::Codec {
        codec: Codec::Zstd,
        reason: e.to_string(),
    }
}

fn lz4_fail(e: &dyn std::fmt::Display) -> CompressError {
    CompressError::Codec {
        codec: Codec::Lz4,
        reason: e.to_string(),
    }
}

/// Why a compressed stream cannot be decoded further. `offset` is the byte offset, in the
/// compressed stream (0 = its first byte), of the unit or field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    /// A frame that starts with neither the codec's magic nor a skippable frame's.
    #[error("{codec} stream: bad frame magic {magic:#010x} at compressed offset {offset}")]
    Magic {
        /// The codec.
        codec: Codec,
        /// The four bytes read as a little-endian u32.
        magic: u32,
        /// Where the frame starts.
        offset: u64,
    },
    /// A frame header the decoder refuses.
    #[error("{codec} stream: frame header at compressed offset {offset}: {fault}")]
    Header {
        /// The codec.
        codec: Codec,
        /// What is wrong with it.
        fault: HeaderFault,
        /// Where the frame starts.
        offset: u64,
    },
    /// A block larger than the frame allows, refused before its bytes are buffered.
    #[error(
        "{codec} stream: block of {size} bytes at compressed offset {offset} exceeds the frame's maximum of {max}"
    )]
    BlockTooLarge {
        /// The codec.
        codec: Codec,
        /// The declared size.
        size: u64,
        /// The largest the frame allows.
        max: u64,
        /// Where the block starts.
        offset: u64,
    },
    /// A block whose data does not decode (or a zstd frame the library refuses).
    #[error("{codec} stream: block at compressed offset {offset} does not decode: {reason}")]
    Block {
        /// The codec.
        codec: Codec,
        /// What the codec library said.
        reason: String,
        /// Where the block starts.
        offset: u64,
    },
    /// A block or content checksum that does not match.
    #[error("{codec} stream: {what} checksum mismatch at compressed offset {offset}")]
    Checksum {
        /// The codec.
        codec: Codec,
        /// `block` or `content`.
        what: &'static str,
        /// Where the checksum (or its block) starts.
        offset: u64,
    },
    /// An LZ4 frame whose decoded length is not its declared content size.
    #[error(
        "lz4 stream: frame ending at compressed offset {offset} decoded to {decoded} bytes, its header says {declared}"
    )]
    ContentSize {
        /// The header's content size.
        declared: u64,
        /// Bytes decoded.
        decoded: u64,
        /// Where the end mark starts.
        offset: u64,
    },
    /// The stream decodes to more bytes than the caller allows (a BATCH's `raw_len`).
    #[error("{codec} data decodes to more than {limit} bytes (compressed offset {offset})")]
    TooMuchOutput {
        /// The codec.
        codec: Codec,
        /// The caller's bound.
        limit: u64,
        /// Where the unit that overflowed starts.
        offset: u64,
    },
    /// The stream ended inside a frame.
    #[error("{codec} stream ends inside a frame at compressed offset {offset}")]
    Truncated {
        /// The codec.
        codec: Codec,
        /// Where the unit that was cut starts.
        offset: u64,
    },
}

/// What is wrong with a frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderFault {
    /// An LZ4 frame version other than 01.
    #[error("unsupported LZ4 frame version {0}")]
    Version(u8),
    /// Reserved bits set.
    #[error("reserved bits set")]
    Reserved,
    /// An LZ4 block maximum size id other than 4 to 7.
    #[error("unsupported LZ4 block maximum size id {0}")]
    BlockSize(u8),
    /// The LZ4 header checksum does not match.
    #[error("header checksum {stored:#04x}, computed {computed:#04x}")]
    Checksum {
        /// The HC byte.
        stored: u8,
        /// What the descriptor hashes to.
        computed: u8,
    },
    /// A frame that needs a dictionary (none is ever agreed on).
    #[error("the frame needs a dictionary (id {0}); none is agreed on")]
    Dictionary(u32),
    /// A zstd window over [`MAX_ZSTD_WINDOW`].
    #[error("zstd window of {window} bytes exceeds the limit of {max} bytes")]
    Window {
        /// The frame's window size.
        window: u64,
        /// The limit.
        max: u64,
    },
    /// A zstd block type 3 (reserved).
    #[error("reserved zstd block type")]
    BlockType,
}

/// The result of one step of a [`StreamDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A unit was decoded (or skipped): call again.
    Progress,
    /// The input holds no whole unit: wait for more bytes.
    NeedInput,
}

/// The incremental decompressor of one compressed stream. No I/O: see the module docs.
#[derive(Debug)]
pub struct StreamDecoder {
    inner: Decoding,
    /// The most bytes the stream may decode to (a BATCH's `raw_len`).
    limit: Option<u64>,
    /// The error that stopped the stream: every later step returns it again.
    failed: Option<DecompressError>,
}

#[derive(Debug)]
enum Decoding {
    Lz4(lz4_frames::Lz4Frames),
    Zstd(Box<zstd_frames::ZstdFrames>),
}

impl StreamDecoder {
    /// A decoder for a stream of `codec`.
    pub fn new(codec: Codec) -> Self {
        let inner = match codec {
            Codec::Lz4 => Decoding::Lz4(lz4_frames::Lz4Frames::default()),
            Codec::Zstd => Decoding::Zstd(Box::default()),
        };
        Self {
            inner,
            limit: None,
            failed: None,
        }
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        match self.inner {
            Decoding::Lz4(_) => Codec::Lz4,
            Decoding::Zstd(_) => Codec::Zstd,
        }
    }

    /// Compressed bytes consumed so far (the offset of the first byte still in the input).
    pub fn offset(&self) -> u64 {
        match &self.inner {
            Decoding::Lz4(d) => d.offset(),
            Decoding::Zstd(d) => d.offset(),
        }
    }

    /// Decoded bytes produced so far.
    pub fn produced(&self) -> u64 {
        match &self.inner {
            Decoding::Lz4(d) => d.produced(),
            Decoding::Zstd(d) => d.produced(),
        }
    }

    /// Decodes at most one unit from the front of `input` (taking its bytes out) and
    /// appends what it decodes to `out` (at most [`StreamDecoder::max_unit_output`] bytes).
    pub fn step(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<Step, DecompressError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let room = self.limit.map(|l| l.saturating_sub(self.produced()));
        let step = match &mut self.inner {
            Decoding::Lz4(d) => d.step(input, out, room),
            Decoding::Zstd(d) => d.step(input, out),
        };
        if let Err(e) = &step {
            self.failed = Some(e.clone());
        }
        step
    }

    /// The most one [`StreamDecoder::step`] may append: 4 MiB for lz4 (its largest
    /// block), 128 KiB for zstd.
    pub fn max_unit_output(&self) -> usize {
        match self.inner {
            Decoding::Lz4(_) => lz4_frames::MAX_BLOCK,
            Decoding::Zstd(_) => zstd_frames::MAX_BLOCK,
        }
    }

    /// Whether the stream so far ends at a frame boundary (nothing of a frame pending).
    /// At the end of a connection, `false` means the last frame was cut (its whole blocks
    /// were decoded all the same).
    pub fn at_boundary(&self) -> bool {
        if self.failed.is_some() {
            return false;
        }
        match &self.inner {
            Decoding::Lz4(d) => d.at_boundary(),
            Decoding::Zstd(d) => d.at_boundary(),
        }
    }

    /// At the end of the input: an error if it ends inside a frame.
    pub fn finish(&self) -> Result<(), DecompressError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.at_boundary() {
            Ok(())
        } else {
            Err(DecompressError::Truncated {
                codec: self.codec(),
                offset: self.unit_offset(),
            })
        }
    }

    /// Where the unit being waited for starts.
    fn unit_offset(&self) -> u64 {
        match &self.inner {
            Decoding::Lz4(d) => d.offset(),
            Decoding::Zstd(d) => d.offset(),
        }
    }
}

/// Decompresses all of `compressed`, which must be exactly one frame of `codec` (a BATCH
/// frame's body), appending to `out` and refusing to produce more than `limit` bytes: lz4
/// blocks decode into what is left of the limit, zstd into a buffer of exactly `limit`
/// bytes (one call, no window kept).
pub fn decompress_one_frame(
    codec: Codec,
    compressed: &[u8],
    limit: usize,
    out: &mut BytesMut,
) -> Result<(), DecompressError> {
    if codec == Codec::Zstd {
        return zstd_frames::one_frame(compressed, limit, out);
    }
    let mut d = StreamDecoder::new(codec);
    d.limit = Some(limit as u64);
    let mut input = BytesMut::from(compressed);
    loop {
        let step = d.step(&mut input, out)?;
        if step == Step::NeedInput || (d.at_boundary() && d.offset() > 0) {
            break;
        }
    }
    if !d.at_boundary() || d.offset() == 0 {
        return Err(DecompressError::Truncated {
            codec,
            offset: d.offset(),
        });
    }
    if !input.is_empty() {
        return Err(DecompressError::Magic {
            codec,
            magic: u32::from_le_bytes(first4(&input)),
            offset: d.offset(),
        });
    }
    Ok(())
}

/// The first four bytes of `b`, zero-padded.
fn first4(b: &[u8]) -> [u8; 4] {
    let mut m = [0u8; 4];
    let n = b.len().min(4);
    m[..n].copy_from_slice(&b[..n]);
    m
}

/// Little-endian u32 at `at`; the caller has checked the length.
fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(raw)
}

/// Little-endian integer of `n` <= 8 bytes at `at`; the caller has checked the length.
fn le_uint(b: &[u8], at: usize, n: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw[..n].copy_from_slice(&b[at..at + n]);
    u64::from_le_bytes(raw)
}

/// The magic of a skippable frame (both formats share them): 0x184D2A50 to 0x184D2A5F.
fn is_skippable(magic: u32) -> bool {
    magic & 0xFFFF_FFF0 == 0x184D_2A50
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(codec: Codec, chunks: &[&[u8]], finish: bool) -> BytesMut {
        let mut c = StreamCompressor::new(codec, DEFAULT_ZSTD_LEVEL).unwrap();
        let mut wire = BytesMut::new();
        for chunk in chunks {
            c.compress(chunk, &mut wire).unwrap();
        }
        if finish {
            c.finish(&mut wire).unwrap();
        }
        wire
    }

    /// Decodes `wire` fed in pieces of `piece` bytes; returns the output and the error.
    fn decode_in_pieces(
        codec: Codec,
        wire: &[u8],
        piece: usize,
    ) -> (Vec<u8>, Option<DecompressError>, bool) {
        let mut d = StreamDecoder::new(codec);
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        for part in wire.chunks(piece.max(1)) {
            input.extend_from_slice(part);
            loop {
                match d.step(&mut input, &mut out) {
                    Ok(Step::Progress) => {}
                    Ok(Step::NeedInput) => break,
                    Err(e) => return (out.to_vec(), Some(e), false),
                }
            }
        }
        (out.to_vec(), None, d.at_boundary())
    }

    #[test]
    fn codec_ids_and_flags() {
        assert_eq!(Codec::from_flags(0x01), Ok(None));
        assert_eq!(Codec::from_flags(0x03), Ok(Some(Codec::Lz4)));
        assert_eq!(Codec::from_flags(0x04), Ok(Some(Codec::Zstd)));
        assert_eq!(Codec::from_flags(0x06), Err(BothCodecs));
        for c in Codec::ALL {
            assert_eq!(Codec::from_id(c.id()), Some(c));
            assert_eq!(c.name().parse::<Codec>(), Ok(c));
        }
        assert_eq!(Codec::from_id(0), None);
        assert!("gzip".parse::<Codec>().is_err());
    }

    #[test]
    fn flushed_chunks_decode_as_soon_as_they_arrive() {
        for codec in Codec::ALL {
            let mut c = StreamCompressor::new(codec, 3).unwrap();
            let mut d = StreamDecoder::new(codec);
            let mut out = BytesMut::new();
            for i in 0..50u32 {
                let chunk = format!("line {i}: GET /api/v1/users/{} 200\n", i * 7).repeat(3);
                let mut wire = BytesMut::new();
                c.compress(chunk.as_bytes(), &mut wire).unwrap();
                while d.step(&mut wire, &mut out).unwrap() == Step::Progress {}
                assert!(
                    wire.is_empty(),
                    "{codec}: a flushed chunk leaves nothing behind"
                );
                assert_eq!(&out[..], chunk.as_bytes(), "{codec} chunk {i}");
                out.clear();
            }
            assert!(!d.at_boundary(), "{codec}: the frame is still open");
            let mut wire = BytesMut::new();
            c.finish(&mut wire).unwrap();
            while d.step(&mut wire, &mut out).unwrap() == Step::Progress {}
            assert!(out.is_empty() && d.at_boundary() && d.finish().is_ok());
        }
    }

    #[test]
    fn the_same_output_however_the_bytes_are_cut() {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("{i} status=200 path=/x/{} ", i % 97).into_bytes())
            .collect();
        for codec in Codec::ALL {
            let wire = compress(codec, &[&text[..100_000], &text[100_000..]], true);
            for piece in [1, 3, 7, 4096, wire.len()] {
                let (out, err, boundary) = decode_in_pieces(codec, &wire, piece);
                assert_eq!(err, None, "{codec} piece {piece}");
                assert!(boundary);
                assert!(out == text, "{codec} piece {piece}");
            }
        }
    }

    #[test]
    fn frames_back_to_back_and_skippable_frames() {
        for codec in Codec::ALL {
            let mut wire = compress(codec, &[b"first frame "], true);
            // A skippable frame: magic 0x184D2A53, 5 bytes of user data.
            wire.extend_from_slice(&[0x53, 0x2A, 0x4D, 0x18, 5, 0, 0, 0, 1, 2, 3, 4, 5]);
            wire.extend_from_slice(&compress(codec, &[b"second frame"], true));
            for piece in [1, 2, wire.len()] {
                let (out, err, boundary) = decode_in_pieces(codec, &wire, piece);
                assert_eq!((err, boundary), (None, true), "{codec}");
                assert_eq!(&out[..], b"first frame second frame");
            }
        }
    }

    #[test]
    fn a_bad_magic_is_named_with_its_offset() {
        for codec in Codec::ALL {
            let mut wire = compress(codec, &[b"abc"], true);
            let at = wire.len() as u64;
            wire.extend_from_slice(b"LDE1 not a frame");
            let (out, err, _) = decode_in_pieces(codec, &wire, 5);
            assert_eq!(&out[..], b"abc");
            assert_eq!(
                err,
                Some(DecompressError::Magic {
                    codec,
                    magic: u32::from_le_bytes(*b"LDE1"),
                    offset: at
                })
            );
        }
    }

    #[test]
    fn a_cut_stream_is_truncated() {
        for codec in Codec::ALL {
            let wire = compress(codec, &[b"hello there"], true);
            let mut d = StreamDecoder::new(codec);
            let mut input = BytesMut::from(&wire[..wire.len() - 2]);
            let mut out = BytesMut::new();
            while d.step(&mut input, &mut out).unwrap() == Step::Progress {}
            assert!(matches!(d.finish(), Err(DecompressError::Truncated { .. })));
        }
    }

    #[test]
    fn one_frame_with_a_limit() {
        for codec in Codec::ALL {
            let wire = compress(codec, &[&[7u8; 10_000]], true);
            let mut out = BytesMut::new();
            decompress_one_frame(codec, &wire, 10_000, &mut out).unwrap();
            assert_eq!(&out[..], &[7u8; 10_000][..]);
            let mut out = BytesMut::new();
            assert!(matches!(
                decompress_one_frame(codec, &wire, 9_999, &mut out),
                Err(DecompressError::TooMuchOutput { limit: 9_999, .. })
            ));
            let mut two = wire.clone();
            two.extend_from_slice(&wire);
            assert!(matches!(
                decompress_one_frame(codec, &two, 1 << 20, &mut BytesMut::new()),
                Err(DecompressError::Magic { offset, .. }) if offset == wire.len() as u64
            ));
            assert!(matches!(
                decompress_one_frame(
                    codec,
                    &wire[..wire.len() - 1],
                    1 << 20,
                    &mut BytesMut::new()
                ),
                Err(DecompressError::Truncated { .. } | DecompressError::Block { offset: 0, .. })
            ));
            assert!(matches!(
                decompress_one_frame(codec, &[], 1 << 20, &mut BytesMut::new()),
                Err(DecompressError::Truncated { offset: 0, .. })
            ));
        }
    }

    #[test]
    fn zstd_levels_are_checked() {
        assert_eq!(
            StreamCompressor::new(Codec::Zstd, 20).unwrap_err(),
            CompressError::Level(20)
        );
        assert!(StreamCompressor::new(Codec::Zstd, 19).is_ok());
        assert!(
            StreamCompressor::new(Codec::Lz4, 99).is_ok(),
            "lz4 has no level"
        );
    }
}
