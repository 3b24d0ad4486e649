//! Zstandard frames back to back (RFC 8878), cut into units here and handed to libzstd's
//! streaming decoder one whole unit at a time: a frame header (checked first: no
//! dictionary, a window of at most 8 MiB), a block (3-byte header and its content), the
//! content checksum; skippable frames are skipped here as their bytes arrive.
//!
//! ```text
//! frame   | magic 28 B5 2F FD | FHD | window? (1) | dict id (0/1/2/4) | content size (0/1/2/4/8) |
//!         | block ... (the last one has bit 0 set) | checksum? (4) |
//! FHD     content size flag (bits 7-6), single segment (5), unused (4), reserved (3),
//!         checksum (2), dict id flag (1-0)
//! window  exponent (bits 7-3), mantissa (2-0): (1 << (10 + e)) * (1 + m / 8)
//! block   3 bytes LE: last (bit 0), type (bits 1-2: raw, RLE, compressed, reserved),
//!         size (bits 3-23); content: size bytes (raw, compressed) or 1 byte (RLE)
//! ```

use super::{
    Codec, DecompressError, HeaderFault, MAX_ZSTD_WINDOW, Step, first4, is_skippable, le_u32,
    le_uint,
};
use bytes::{Buf, BytesMut};
use zstd::zstd_safe::{DCtx, DParameter, InBuffer, OutBuffer};

/// The zstd frame magic.
const MAGIC: u32 = 0xFD2F_B528;
/// The largest block of the format, compressed or not.
pub(super) const MAX_BLOCK: usize = 128 * 1024;

const ZSTD: Codec = Codec::Zstd;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Between frames.
    #[default]
    Magic,
    /// Inside a skippable frame: bytes still to skip.
    Skipping(u64),
    /// Inside a frame, before a block.
    Blocks {
        /// The frame ends with a content checksum.
        checksum: bool,
    },
    /// After the last block, before the content checksum.
    Checksum,
}

/// The zstd side of [`super::StreamDecoder`].
pub(super) struct ZstdFrames {
    state: State,
    offset: u64,
    produced: u64,
    /// Made at the first frame, kept for the stream's life.
    dctx: Option<DCtx<'static>>,
    scratch: Vec<u8>,
}

impl Default for ZstdFrames {
    fn default() -> Self {
        Self {
            state: State::Magic,
            offset: 0,
            produced: 0,
            dctx: None,
            scratch: Vec::new(),
        }
    }
}

impl std::fmt::Debug for ZstdFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdFrames")
            .field("state", &self.state)
            .field("offset", &self.offset)
            .field("produced", &self.produced)
            .finish_non_exhaustive()
    }
}

impl ZstdFrames {
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    pub(super) fn produced(&self) -> u64 {
        self.produced
    }

    pub(super) fn at_boundary(&self) -> bool {
        self.state == State::Magic
    }

    pub(super) fn step(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<Step, DecompressError> {
        match self.state {
            State::Magic => self.header(input),
            State::Skipping(left) => {
                let n = left.min(input.len() as u64);
                input.advance(n as usize);
                self.offset += n;
                self.state = if n == left {
                    State::Magic
                } else {
                    State::Skipping(left - n)
                };
                Ok(if n == 0 && left > 0 {
                    Step::NeedInput
                } else {
                    Step::Progress
                })
            }
            State::Blocks { checksum } => self.block(checksum, input, out),
            State::Checksum => {
                if input.len() < 4 {
                    return Ok(Step::NeedInput);
                }
                self.feed(input, 4, out)?;
                self.state = State::Magic;
                Ok(Step::Progress)
            }
        }
    }

    fn header(&mut self, input: &mut BytesMut) -> Result<Step, DecompressError> {
        if input.len() < 4 {
            return Ok(Step::NeedInput);
        }
        let magic = u32::from_le_bytes(first4(input));
        if is_skippable(magic) {
            if input.len() < 8 {
                return Ok(Step::NeedInput);
            }
            let size = u64::from(le_u32(input, 4));
            input.advance(8);
            self.offset += 8;
            self.state = State::Skipping(size);
            return Ok(Step::Progress);
        }
        if magic != MAGIC {
            return Err(DecompressError::Magic {
                codec: ZSTD,
                magic,
                offset: self.offset,
            });
        }
        let fault = |fault| DecompressError::Header {
            codec: ZSTD,
            fault,
            offset: self.offset,
        };
        if input.len() < 5 {
            return Ok(Step::NeedInput);
        }
        let fhd = input[4];
        if fhd & 0x08 != 0 {
            return Err(fault(HeaderFault::Reserved));
        }
        let single = fhd & 0x20 != 0;
        let dict_len = [0, 1, 2, 4][usize::from(fhd & 0x03)];
        let size_len = match fhd >> 6 {
            0 => usize::from(single),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let window_len = usize::from(!single);
        let len = 5 + window_len + dict_len + size_len;
        if input.len() < len {
            return Ok(Step::NeedInput);
        }
        let dict = le_uint(input, 5 + window_len, dict_len) as u32;
        if dict != 0 {
            return Err(fault(HeaderFault::Dictionary(dict)));
        }
        let window = if single {
            let size = le_uint(input, 5 + dict_len, size_len);
            if size_len == 2 { size + 256 } else { size }
        } else {
            let wd = input[5];
            let base = 1u64 << (10 + u32::from(wd >> 3));
            base + (base / 8) * u64::from(wd & 0x07)
        };
        if window > MAX_ZSTD_WINDOW {
            return Err(fault(HeaderFault::Window {
                window,
                max: MAX_ZSTD_WINDOW,
            }));
        }
        let mut sink = BytesMut::new();
        self.feed(input, len, &mut sink)?;
        self.state = State::Blocks {
            checksum: fhd & 0x04 != 0,
        };
        Ok(Step::Progress)
    }

    fn block(
        &mut self,
        checksum: bool,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<Step, DecompressError> {
        if input.len() < 3 {
            return Ok(Step::NeedInput);
        }
        let header = le_uint(input, 0, 3) as u32;
        let last = header & 1 != 0;
        let kind = (header >> 1) & 0x03;
        let size = (header >> 3) as usize;
        if kind == 3 {
            return Err(DecompressError::Header {
                codec: ZSTD,
                fault: HeaderFault::BlockType,
                offset: self.offset,
            });
        }
        if size > MAX_BLOCK {
            return Err(DecompressError::BlockTooLarge {
                codec: ZSTD,
                size: size as u64,
                max: MAX_BLOCK as u64,
                offset: self.offset,
            });
        }
        let unit = 3 + if kind == 1 { 1 } else { size };
        if input.len() < unit {
            return Ok(Step::NeedInput);
        }
        self.feed(input, unit, out)?;
        self.state = match (last, checksum) {
            (false, _) => State::Blocks { checksum },
            (true, true) => State::Checksum,
            (true, false) => State::Magic,
        };
        Ok(Step::Progress)
    }

    /// Hands the first `len` bytes of `input` (one whole unit) to libzstd and appends all
    /// the output they release to `out`.
    fn feed(
        &mut self,
        input: &mut BytesMut,
        len: usize,
        out: &mut BytesMut,
    ) -> Result<(), DecompressError> {
        let offset = self.offset;
        let fail = |code| DecompressError::Block {
            codec: ZSTD,
            reason: zstd::zstd_safe::get_error_name(code).to_owned(),
            offset,
        };
        if self.dctx.is_none() {
            let mut dctx = DCtx::create();
            // The window limit is checked above; this is libzstd's own guard behind it.
            dctx.set_parameter(DParameter::WindowLogMax(23))
                .map_err(fail)?;
            self.dctx = Some(dctx);
        }
        if self.scratch.len() < MAX_BLOCK {
            self.scratch.resize(MAX_BLOCK, 0);
        }
        let Some(dctx) = self.dctx.as_mut() else {
            return Ok(());
        };
        let mut src = InBuffer::around(&input[..len]);
        loop {
            let mut dst = OutBuffer::around(&mut self.scratch[..]);
            dctx.decompress_stream(&mut dst, &mut src).map_err(fail)?;
            let n = dst.pos();
            out.extend_from_slice(&self.scratch[..n]);
            self.produced += n as u64;
            if n == self.scratch.len() {
                // The output buffer is full: libzstd may hold more.
                continue;
            }
            if src.pos() == len {
                break;
            }
            // libzstd stops short of a whole unit only when its output is full.
            return Err(DecompressError::Block {
                codec: ZSTD,
                reason: "libzstd stopped inside a whole unit".into(),
                offset,
            });
        }
        input.advance(len);
        self.offset += len as u64;
        Ok(())
    }
}

/// Decodes `compressed`, exactly one zstd frame, in one call into a buffer of `limit`
/// bytes (libzstd refuses to write past it), appended to `out`.
pub(super) fn one_frame(
    compressed: &[u8],
    limit: usize,
    out: &mut BytesMut,
) -> Result<(), DecompressError> {
    let fail = |code| DecompressError::Block {
        codec: ZSTD,
        reason: zstd::zstd_safe::get_error_name(code).to_owned(),
        offset: 0,
    };
    if compressed.is_empty() {
        return Err(DecompressError::Truncated {
            codec: ZSTD,
            offset: 0,
        });
    }
    let size = zstd::zstd_safe::find_frame_compressed_size(compressed).map_err(fail)?;
    if size < compressed.len() {
        return Err(DecompressError::Magic {
            codec: ZSTD,
            magic: u32::from_le_bytes(first4(&compressed[size..])),
            offset: size as u64,
        });
    }
    if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(compressed)
        && declared > limit as u64
    {
        return Err(DecompressError::TooMuchOutput {
            codec: ZSTD,
            limit: limit as u64,
            offset: 0,
        });
    }
    let mut buf: Vec<u8> = Vec::with_capacity(limit);
    let mut dctx = DCtx::create();
    match dctx.decompress(&mut buf, compressed) {
        Ok(_) => {
            out.extend_from_slice(&buf);
            Ok(())
        }
        // The frame does not say its size and decodes past the bound: libzstd stops at
        // the end of the buffer.
        Err(code) if zstd::zstd_safe::get_error_name(code).contains("too small") => {
            Err(DecompressError::TooMuchOutput {
                codec: ZSTD,
                limit: limit as u64,
                offset: 0,
            })
        }
        Err(code) => Err(fail(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Step, StreamDecoder};
    use super::*;

    fn decode(wire: &[u8]) -> Result<Vec<u8>, DecompressError> {
        let mut d = StreamDecoder::new(Codec::Zstd);
        let mut input = BytesMut::from(wire);
        let mut out = BytesMut::new();
        while d.step(&mut input, &mut out)? == Step::Progress {}
        d.finish()?;
        Ok(out.to_vec())
    }

    #[test]
    fn literal_frames() {
        // Single segment, content size 3 in one byte, one raw last block "abc".
        let raw = [
            0x28, 0xB5, 0x2F, 0xFD, 0x20, 3, 0x19, 0, 0, b'a', b'b', b'c',
        ];
        assert_eq!(decode(&raw), Ok(b"abc".to_vec()));
        // An RLE last block of 5 x 'z' in a frame with a 1 KiB window (WD 0x00).
        let rle = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x00, 0x2B, 0, 0, b'z'];
        assert_eq!(decode(&rle), Ok(b"zzzzz".to_vec()));
    }

    #[test]
    fn header_faults_are_named() {
        let fault = |bytes: &[u8]| match decode(bytes) {
            Err(DecompressError::Header {
                fault, offset: 0, ..
            }) => fault,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            fault(&[0x28, 0xB5, 0x2F, 0xFD, 0x08]),
            HeaderFault::Reserved
        );
        // WD 0x68: exponent 13, window 8 MiB: accepted; 0x69: 9 MiB: refused.
        assert!(decode(&[0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x68, 0x01, 0, 0]).is_ok());
        assert_eq!(
            fault(&[0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x69]),
            HeaderFault::Window {
                window: 9 << 20,
                max: 8 << 20
            }
        );
        // Single segment whose content size (4 bytes) is 16 MiB: the window.
        assert_eq!(
            fault(&[0x28, 0xB5, 0x2F, 0xFD, 0xA0, 0, 0, 0, 1]),
            HeaderFault::Window {
                window: 16 << 20,
                max: 8 << 20
            }
        );
        assert_eq!(
            fault(&[0x28, 0xB5, 0x2F, 0xFD, 0x01, 0x00, 7]),
            HeaderFault::Dictionary(7)
        );
        // Block type 3 is reserved.
        assert!(matches!(
            decode(&[0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x00, 0x07, 0, 0]),
            Err(DecompressError::Header {
                fault: HeaderFault::BlockType,
                offset: 6,
                ..
            })
        ));
    }

    #[test]
    fn a_block_over_128_kib_is_refused_before_its_bytes_arrive() {
        let size = (128 * 1024 + 1) << 3;
        let mut wire = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x50];
        wire.extend_from_slice(&(size as u32).to_le_bytes()[..3]);
        assert!(matches!(
            decode(&wire),
            Err(DecompressError::BlockTooLarge {
                size: 131_073,
                offset: 6,
                ..
            })
        ));
    }

    #[test]
    fn a_corrupt_block_names_its_offset_and_a_bad_checksum_too() {
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("{} ", i % 1000).into_bytes())
            .collect();
        // A compressed last block of 4 bytes of nonsense after a 6-byte header.
        let bad = [
            0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x00, 37, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        assert!(matches!(
            decode(&bad),
            Err(DecompressError::Block { offset: 6, .. })
        ));
        let mut ctx = zstd::bulk::Compressor::new(3).unwrap();
        ctx.include_checksum(true).unwrap();
        let mut with_sum = ctx.compress(&data).unwrap();
        let n = with_sum.len();
        with_sum[n - 1] ^= 1;
        assert!(matches!(
            decode(&with_sum),
            Err(DecompressError::Block { offset, .. }) if offset == n as u64 - 4
        ));
    }
}
