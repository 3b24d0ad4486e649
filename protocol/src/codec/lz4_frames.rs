//! LZ4 frames back to back (lz4_Frame_format.md), walked one unit at a time: a frame
//! header, a block (size word, data, optional checksum), the end mark with its optional
//! content checksum, or a skippable frame (skipped as its bytes arrive).
//!
//! ```text
//! frame      | magic 04 22 4D 18 | FLG | BD | content size? (8) | dict id? (4) | HC |
//!            | block ... | end mark 00 00 00 00 | content checksum? (4) |
//! FLG        version 01 (bits 7-6), B.Indep (5), B.Checksum (4), C.Size (3),
//!            C.Checksum (2), reserved (1), DictID (0)
//! BD         reserved (7), block max size id 4..=7 (6-4: 64 KiB, 256 KiB, 1 MiB, 4 MiB)
//! block      | size u32 LE: bit 31 = stored uncompressed, bits 0-30 = length | data |
//!            | block checksum? (xxh32 of data, 4) |
//! ```

use super::{Codec, DecompressError, HeaderFault, Step, first4, is_skippable, le_u32, le_uint};
use bytes::{Buf, BytesMut};
use twox_hash::XxHash32;

/// The LZ4 frame magic.
const MAGIC: u32 = 0x184D_2204;
/// The largest block maximum of the format (id 7).
pub(super) const MAX_BLOCK: usize = 4 << 20;
/// How far back a linked block may refer.
const WINDOW: usize = 64 * 1024;

const LZ4: Codec = Codec::Lz4;

/// The frame under way.
#[derive(Debug, Clone)]
struct Frame {
    block_max: usize,
    linked: bool,
    block_checksum: bool,
    content_checksum: bool,
    content_size: Option<u64>,
    decoded: u64,
    hasher: XxHash32,
}

#[derive(Debug, Clone, Default)]
enum State {
    /// Between frames.
    #[default]
    Magic,
    /// Inside a skippable frame: bytes still to skip.
    Skipping(u64),
    /// Inside a frame, before a block or the end mark.
    Blocks(Box<Frame>),
}

/// The LZ4 side of [`super::StreamDecoder`].
#[derive(Debug, Default)]
pub(super) struct Lz4Frames {
    state: State,
    offset: u64,
    produced: u64,
    /// The last [`WINDOW`] bytes of output of a linked frame, then room for one block.
    scratch: Vec<u8>,
    /// Bytes of `scratch` that are history.
    history: usize,
}

impl Lz4Frames {
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    pub(super) fn produced(&self) -> u64 {
        self.produced
    }

    pub(super) fn at_boundary(&self) -> bool {
        matches!(self.state, State::Magic)
    }

    /// One unit; `room`: how many more bytes the caller accepts (none: no bound).
    pub(super) fn step(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        room: Option<u64>,
    ) -> Result<Step, DecompressError> {
        match std::mem::take(&mut self.state) {
            State::Magic => self.magic(input),
            State::Skipping(left) => {
                let n = left.min(input.len() as u64);
                input.advance(n as usize);
                self.offset += n;
                if n == left {
                    return Ok(Step::Progress);
                }
                self.state = State::Skipping(left - n);
                Ok(if n == 0 {
                    Step::NeedInput
                } else {
                    Step::Progress
                })
            }
            State::Blocks(frame) => self.block(frame, input, out, room),
        }
    }

    fn magic(&mut self, input: &mut BytesMut) -> Result<Step, DecompressError> {
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
                codec: LZ4,
                magic,
                offset: self.offset,
            });
        }
        let header = |fault| DecompressError::Header {
            codec: LZ4,
            fault,
            offset: self.offset,
        };
        // FLG and BD are checked as soon as they are there.
        if input.len() < 6 {
            return Ok(Step::NeedInput);
        }
        let (flg, bd) = (input[4], input[5]);
        if flg >> 6 != 0b01 {
            return Err(header(HeaderFault::Version(flg >> 6)));
        }
        if flg & 0x02 != 0 || bd & 0x8F != 0 {
            return Err(header(HeaderFault::Reserved));
        }
        let size_id = (bd >> 4) & 0x07;
        if !(4..=7).contains(&size_id) {
            return Err(header(HeaderFault::BlockSize(size_id)));
        }
        let has_size = flg & 0x08 != 0;
        let has_dict = flg & 0x01 != 0;
        let len = 7 + if has_size { 8 } else { 0 } + if has_dict { 4 } else { 0 };
        if input.len() < len {
            return Ok(Step::NeedInput);
        }
        let stored = input[len - 1];
        let computed = ((XxHash32::oneshot(0, &input[4..len - 1]) >> 8) & 0xFF) as u8;
        if stored != computed {
            return Err(header(HeaderFault::Checksum { stored, computed }));
        }
        if has_dict {
            let at = if has_size { 14 } else { 6 };
            return Err(header(HeaderFault::Dictionary(le_u32(input, at))));
        }
        let frame = Frame {
            block_max: 1 << (8 + 2 * usize::from(size_id)),
            linked: flg & 0x20 == 0,
            block_checksum: flg & 0x10 != 0,
            content_checksum: flg & 0x04 != 0,
            content_size: has_size.then(|| le_uint(input, 6, 8)),
            decoded: 0,
            hasher: XxHash32::with_seed(0),
        };
        input.advance(len);
        self.offset += len as u64;
        self.history = 0;
        self.state = State::Blocks(Box::new(frame));
        Ok(Step::Progress)
    }

    fn block(
        &mut self,
        mut frame: Box<Frame>,
        input: &mut BytesMut,
        out: &mut BytesMut,
        room: Option<u64>,
    ) -> Result<Step, DecompressError> {
        if input.len() < 4 {
            self.state = State::Blocks(frame);
            return Ok(Step::NeedInput);
        }
        let word = le_u32(input, 0);
        if word == 0 {
            return self.end_mark(&frame, input);
        }
        let size = (word & 0x7FFF_FFFF) as usize;
        if size > frame.block_max {
            return Err(DecompressError::BlockTooLarge {
                codec: LZ4,
                size: size as u64,
                max: frame.block_max as u64,
                offset: self.offset,
            });
        }
        let unit = 4 + size + if frame.block_checksum { 4 } else { 0 };
        if input.len() < unit {
            self.state = State::Blocks(frame);
            return Ok(Step::NeedInput);
        }
        let data = &input[4..4 + size];
        if frame.block_checksum && XxHash32::oneshot(0, data) != le_u32(input, 4 + size) {
            return Err(DecompressError::Checksum {
                codec: LZ4,
                what: "block",
                offset: self.offset,
            });
        }
        // A bound below the block maximum is where this block must end.
        let cap = room.map_or(frame.block_max, |r| r.min(frame.block_max as u64) as usize);
        let too_much = DecompressError::TooMuchOutput {
            codec: LZ4,
            limit: self.produced + cap as u64,
            offset: self.offset,
        };
        let start = out.len();
        if word & 0x8000_0000 != 0 {
            if size > cap {
                return Err(too_much);
            }
            out.extend_from_slice(data);
        } else {
            self.decompress(data, cap, out).map_err(|e| match e {
                Some(e) => e,
                None => too_much,
            })?;
        }
        let block = &out[start..];
        if frame.linked {
            self.remember(block);
        }
        if frame.content_checksum {
            use std::hash::Hasher as _;
            frame.hasher.write(block);
        }
        frame.decoded += block.len() as u64;
        self.produced += block.len() as u64;
        input.advance(unit);
        self.offset += unit as u64;
        self.state = State::Blocks(frame);
        Ok(Step::Progress)
    }

    /// Decodes one compressed block of at most `cap` bytes into `out`, with the history
    /// as dictionary. `Err(None)`: it decodes to more than `cap`.
    fn decompress(
        &mut self,
        data: &[u8],
        cap: usize,
        out: &mut BytesMut,
    ) -> Result<(), Option<DecompressError>> {
        let need = WINDOW + cap;
        if self.scratch.len() < need {
            self.scratch.resize(need, 0);
        }
        let (history, room) = self.scratch.split_at_mut(WINDOW);
        let dict = &history[WINDOW - self.history..];
        match lz4_flex::block::decompress_into_with_dict(data, &mut room[..cap], dict) {
            Ok(n) => {
                out.extend_from_slice(&room[..n]);
                Ok(())
            }
            Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) => Err(None),
            Err(e) => Err(Some(DecompressError::Block {
                codec: LZ4,
                reason: block_reason(&e),
                offset: self.offset,
            })),
        }
    }

    /// Keeps the last [`WINDOW`] bytes of output, right-aligned in the history area.
    fn remember(&mut self, block: &[u8]) {
        if self.scratch.len() < WINDOW {
            self.scratch.resize(WINDOW, 0);
        }
        let history = &mut self.scratch[..WINDOW];
        if block.len() >= WINDOW {
            history.copy_from_slice(&block[block.len() - WINDOW..]);
            self.history = WINDOW;
        } else {
            history.copy_within(block.len().., 0);
            history[WINDOW - block.len()..].copy_from_slice(block);
            self.history = (self.history + block.len()).min(WINDOW);
        }
    }

    fn end_mark(&mut self, frame: &Frame, input: &mut BytesMut) -> Result<Step, DecompressError> {
        let unit = if frame.content_checksum { 8 } else { 4 };
        if input.len() < unit {
            self.state = State::Blocks(Box::new(frame.clone()));
            return Ok(Step::NeedInput);
        }
        if let Some(declared) = frame.content_size
            && declared != frame.decoded
        {
            return Err(DecompressError::ContentSize {
                declared,
                decoded: frame.decoded,
                offset: self.offset,
            });
        }
        if frame.content_checksum && frame.hasher.finish_32() != le_u32(input, 4) {
            return Err(DecompressError::Checksum {
                codec: LZ4,
                what: "content",
                offset: self.offset + 4,
            });
        }
        input.advance(unit);
        self.offset += unit as u64;
        self.history = 0;
        Ok(Step::Progress)
    }
}

/// lz4_flex's error in our words (its type is neither comparable nor ours to expose).
fn block_reason(e: &lz4_flex::block::DecompressError) -> String {
    use lz4_flex::block::DecompressError as E;
    match e {
        E::LiteralOutOfBounds => "a literal runs past the block".into(),
        E::ExpectedAnotherByte => "the block ends inside a sequence".into(),
        E::OffsetZero => "a match offset of 0".into(),
        E::OffsetOutOfBounds => "a match refers before the data decoded so far".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Step, StreamDecoder};
    use super::*;
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
    use std::io::Write as _;

    fn encode(info: FrameInfo, data: &[u8], flush_every: usize) -> Vec<u8> {
        let mut enc = FrameEncoder::with_frame_info(info, Vec::new());
        for chunk in data.chunks(flush_every) {
            enc.write_all(chunk).unwrap();
            enc.flush().unwrap();
        }
        enc.finish().unwrap()
    }

    fn decode(wire: &[u8]) -> Result<Vec<u8>, DecompressError> {
        let mut d = StreamDecoder::new(Codec::Lz4);
        let mut input = BytesMut::from(wire);
        let mut out = BytesMut::new();
        while d.step(&mut input, &mut out)? == Step::Progress {}
        d.finish()?;
        Ok(out.to_vec())
    }

    fn sample() -> Vec<u8> {
        (0..30_000u32)
            .flat_map(|i| format!("{} GET /p/{} 200; ", i % 13, i % 31).into_bytes())
            .collect()
    }

    #[test]
    fn every_frame_option_lz4_flex_writes() {
        let data = sample();
        for mode in [BlockMode::Linked, BlockMode::Independent] {
            for size in [BlockSize::Max64KB, BlockSize::Max256KB, BlockSize::Max4MB] {
                for checksums in [false, true] {
                    let info = FrameInfo::new()
                        .block_mode(mode)
                        .block_size(size)
                        .block_checksums(checksums)
                        .content_checksum(checksums)
                        .content_size(checksums.then_some(data.len() as u64));
                    for flush in [100, 70_000, data.len()] {
                        let wire = encode(info.clone(), &data, flush);
                        assert!(
                            decode(&wire).unwrap() == data,
                            "{mode:?} {size:?} {checksums} {flush}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn literal_header_faults() {
        // An empty frame: magic, FLG 0x60 (version 01, independent), BD 0x40 (64 KiB),
        // HC, end mark.
        let hc = ((XxHash32::oneshot(0, &[0x60, 0x40]) >> 8) & 0xFF) as u8;
        let empty = [0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, hc, 0, 0, 0, 0];
        assert_eq!(decode(&empty), Ok(vec![]));
        let fault = |bytes: &[u8]| match decode(bytes) {
            Err(DecompressError::Header {
                fault, offset: 0, ..
            }) => fault,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            fault(&[0x04, 0x22, 0x4D, 0x18, 0xA0, 0x40]),
            HeaderFault::Version(2)
        );
        assert_eq!(
            fault(&[0x04, 0x22, 0x4D, 0x18, 0x62, 0x40]),
            HeaderFault::Reserved
        );
        assert_eq!(
            fault(&[0x04, 0x22, 0x4D, 0x18, 0x60, 0x30]),
            HeaderFault::BlockSize(3)
        );
        assert_eq!(
            fault(&[0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, hc ^ 1]),
            HeaderFault::Checksum {
                stored: hc ^ 1,
                computed: hc
            }
        );
        let with_dict = [0x61, 0x40, 9, 0, 0, 0];
        let hc = ((XxHash32::oneshot(0, &with_dict) >> 8) & 0xFF) as u8;
        let mut wire = vec![0x04, 0x22, 0x4D, 0x18];
        wire.extend_from_slice(&with_dict);
        wire.push(hc);
        assert_eq!(fault(&wire), HeaderFault::Dictionary(9));
        // The legacy format's magic is not a frame of this stream.
        assert!(matches!(
            decode(&[0x02, 0x21, 0x4C, 0x18]),
            Err(DecompressError::Magic {
                magic: 0x184C_2102,
                offset: 0,
                ..
            })
        ));
    }

    #[test]
    fn a_block_over_the_maximum_is_refused_before_its_bytes_arrive() {
        let hc = ((XxHash32::oneshot(0, &[0x60, 0x40]) >> 8) & 0xFF) as u8;
        let mut wire = vec![0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, hc];
        wire.extend_from_slice(&(64 * 1024 + 1u32).to_le_bytes());
        assert_eq!(
            decode(&wire),
            Err(DecompressError::BlockTooLarge {
                codec: Codec::Lz4,
                size: 64 * 1024 + 1,
                max: 64 * 1024,
                offset: 7
            })
        );
    }

    #[test]
    fn checksums_and_content_size_are_checked() {
        let data = sample();
        let info = FrameInfo::new()
            .block_checksums(true)
            .content_checksum(true)
            .content_size(Some(data.len() as u64));
        let wire = encode(info, &data, 50_000);
        let mut bad_block = wire.clone();
        bad_block[20] ^= 1;
        assert!(matches!(
            decode(&bad_block),
            Err(DecompressError::Checksum {
                what: "block",
                offset: 15,
                ..
            })
        ));
        let mut bad_content = wire.clone();
        let n = bad_content.len();
        bad_content[n - 1] ^= 1;
        assert!(matches!(
            decode(&bad_content),
            Err(DecompressError::Checksum {
                what: "content",
                ..
            })
        ));
        // A header that claims one byte more than the frame holds (HC made to match).
        let sized = FrameInfo::new().content_size(Some(data.len() as u64));
        let mut wrong = encode(sized, &data, data.len());
        wrong[6..14].copy_from_slice(&(data.len() as u64 + 1).to_le_bytes());
        wrong[14] = ((XxHash32::oneshot(0, &wrong[4..14]) >> 8) & 0xFF) as u8;
        assert!(matches!(
            decode(&wrong),
            Err(DecompressError::ContentSize { declared, decoded, .. })
                if declared == decoded + 1 && decoded == data.len() as u64
        ));
    }

    #[test]
    fn a_block_that_refers_before_its_frame_is_an_error() {
        // Independent frame, one compressed block: token 0x00 then a match offset of 5
        // into nothing.
        let hc = ((XxHash32::oneshot(0, &[0x60, 0x40]) >> 8) & 0xFF) as u8;
        let mut wire = vec![0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, hc];
        wire.extend_from_slice(&3u32.to_le_bytes());
        wire.extend_from_slice(&[0x00, 5, 0]);
        assert!(matches!(
            decode(&wire),
            Err(DecompressError::Block { offset: 7, .. })
        ));
    }
}
