//! Every decoder against arbitrary bytes: it never panics, and it decodes the same frames
//! and the same error whether the bytes arrive at once or cut at any point (as TCP may cut
//! them). The compressed decoders (BATCH frames, compressed emitter streams, both codecs)
//! also get valid streams with damage done to them, which reach far deeper than random
//! bytes, and are held to a memory bound while they decode. CI runs the default number of cases; `just fuzz` runs ten million
//! (`PROPTEST_CASES=10000000`).

#![expect(
    clippy::unwrap_used,
    reason = "a strategy that cannot build its input fails the test"
)]

use bytes::BytesMut;
use proptest::prelude::*;
use protocol::analyzer::DownstreamDecoder;
use protocol::codec::{Codec, DecompressError, Step, StreamCompressor, StreamDecoder};
use protocol::emitter::{EmitterDecoder, EmitterHello};
use protocol::log::LogDecoder;
use protocol::syslog::SyslogDecoder;
use protocol::{AckDecoder, Decode, HelloDecoder};

/// What a decoder made of a stream: its frames, then the error that stopped it (if any)
/// and the bytes left undecoded.
type Outcome<D> = (
    Vec<<D as Decode>::Frame>,
    Option<<D as Decode>::Error>,
    usize,
);

/// Decodes `parts` fed one after the other into one buffer, as reads would.
fn decode_parts<D: Decode>(mut decoder: D, parts: &[&[u8]]) -> Outcome<D> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e), buf.len()),
            }
        }
    }
    (frames, None, buf.len())
}

/// The property for one decoder: whole and cut give the same outcome.
fn same_whole_or_cut<D>(make: impl Fn() -> D, bytes: &[u8], cut: usize) -> Result<(), TestCaseError>
where
    D: Decode,
    D::Frame: PartialEq + std::fmt::Debug,
    D::Error: PartialEq,
{
    let cut = cut % (bytes.len() + 1);
    let whole = decode_parts(make(), &[bytes]);
    let parts = decode_parts(make(), &[&bytes[..cut], &bytes[cut..]]);
    // An error found in the first part leaves the second unread; compare what both saw.
    prop_assert_eq!(&whole.0, &parts.0);
    prop_assert_eq!(whole.1.is_some(), parts.1.is_some());
    prop_assert!(
        whole.1 == parts.1,
        "{:?} vs {:?}",
        whole.1.map(|e| e.to_string()),
        parts.1.map(|e| e.to_string())
    );
    if whole.1.is_none() {
        prop_assert_eq!(whole.2, parts.2);
    }
    Ok(())
}

/// Arbitrary bytes, biased toward plausible frames: a small length prefix is far more
/// likely to reach the code behind it than four random bytes.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (
            0u32..64,
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..120)
        )
            .prop_map(|(len, kind, rest)| {
                let mut v = len.to_be_bytes().to_vec();
                v.push(kind);
                v.extend(rest);
                v
            }),
    ]
}

/// The incremental decompressor as a [`Decode`]: each step's output is a "frame".
struct Inflating(StreamDecoder);

impl Decode for Inflating {
    type Frame = Vec<u8>;
    type Error = DecompressError;
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<u8>>, DecompressError> {
        let mut out = BytesMut::new();
        loop {
            match self.0.step(buf, &mut out)? {
                // One whole unit's output per frame; skipped units yield nothing.
                Step::Progress if out.is_empty() => continue,
                Step::Progress => return Ok(Some(out.to_vec())),
                Step::NeedInput => return Ok(None),
            }
        }
    }
}

/// A valid compressed stream of LOG frames (flushed in three writes), then damaged: a byte
/// changed, a run cut out, or the end cut off (or left whole).
fn damaged_stream() -> impl Strategy<Value = (Codec, Vec<u8>, Vec<u8>, bool)> {
    (
        prop_oneof![Just(Codec::Lz4), Just(Codec::Zstd)],
        proptest::collection::vec((any::<u8>(), 0usize..400), 1..40),
        any::<usize>(),
        any::<u8>(),
        0u8..4,
    )
        .prop_map(|(codec, frames, at, byte, how)| {
            let mut log = BytesMut::new();
            for (i, (p, len)) in frames.iter().enumerate() {
                let payload: Vec<u8> = (0..*len).map(|j| (i * 7 + j % 13) as u8).collect();
                protocol::log::encode(*p, &payload, &mut log).unwrap();
            }
            let mut c = StreamCompressor::new(codec, 3).unwrap();
            let mut wire = BytesMut::new();
            let third = log.len() / 3;
            c.compress(&log[..third], &mut wire).unwrap();
            c.compress(&log[third..2 * third], &mut wire).unwrap();
            c.compress(&log[2 * third..], &mut wire).unwrap();
            c.finish(&mut wire).unwrap();
            let mut wire = wire.to_vec();
            let at = at % wire.len();
            match how {
                0 => wire[at] ^= byte.max(1),
                1 => {
                    wire.drain(at..(at + usize::from(byte)).min(wire.len()));
                }
                2 => wire.truncate(at),
                _ => {}
            }
            (codec, log.to_vec(), wire, how == 3)
        })
}

/// An EMITTER HELLO naming `codec`.
fn compressed_hello(codec: Codec) -> Vec<u8> {
    let mut b = BytesMut::new();
    EmitterHello {
        acks: true,
        compression: Some(codec),
        id: "fuzz".into(),
    }
    .encode(&mut b)
    .unwrap();
    b.to_vec()
}

proptest! {
    #[test]
    fn compressed_streams_are_the_same_whole_or_cut((codec, log, wire, intact) in damaged_stream(), cut in any::<usize>()) {
        same_whole_or_cut(|| Inflating(StreamDecoder::new(codec)), &wire, cut)?;
        let mut opened = compressed_hello(codec);
        opened.extend_from_slice(&wire);
        same_whole_or_cut(|| EmitterDecoder::new(1 << 20), &opened, cut)?;
        // Bounded memory: the decoder holds at most one partial LOG frame (max_frame)
        // and what is left of one decoded unit.
        let bound = (1 << 20) + StreamDecoder::new(codec).max_unit_output();
        let mut d = EmitterDecoder::new(1 << 20);
        let mut buf = BytesMut::from(&opened[..]);
        let mut decoded = BytesMut::new();
        while let Ok(Some(item)) = d.decode(&mut buf) {
            prop_assert!(d.held() <= bound);
            if let protocol::emitter::Item::Log(f) = item {
                protocol::log::encode(f.priority, &f.payload, &mut decoded).unwrap();
            }
        }
        // Undamaged, it is exactly what was sent.
        if intact {
            prop_assert!(decoded == log);
            prop_assert!(d.at_boundary() && d.held() == 0 && buf.is_empty());
        }
    }

    #[test]
    fn batches_are_the_same_whole_or_cut((codec, _log, wire, _) in damaged_stream(), cut in any::<usize>(), count in 1u32..50, raw_len in 0u32..20_000) {
        // A BATCH header over a (damaged) compressed frame, between plain DELIVER frames.
        let mut bytes = protocol::analyzer::deliver_header(1, 2, 3, 1).to_vec();
        bytes.push(b'x');
        bytes.extend_from_slice(&((14 + wire.len()) as u32).to_be_bytes());
        bytes.extend_from_slice(&[0x42, codec.id()]);
        bytes.extend_from_slice(&count.to_be_bytes());
        bytes.extend_from_slice(&raw_len.to_be_bytes());
        bytes.extend_from_slice(&wire);
        same_whole_or_cut(|| DownstreamDecoder::new(1 << 20).with_codec(Some(codec)), &bytes, cut)?;
    }

    #[test]
    fn every_decoder_is_the_same_whole_or_cut(bytes in stream(), cut in any::<usize>(), max in 0u32..200) {
        same_whole_or_cut(|| LogDecoder::new(max), &bytes, cut)?;
        same_whole_or_cut(|| DownstreamDecoder::new(max), &bytes, cut)?;
        same_whole_or_cut(|| HelloDecoder, &bytes, cut)?;
        same_whole_or_cut(|| AckDecoder, &bytes, cut)?;
        same_whole_or_cut(|| EmitterDecoder::new(max), &bytes, cut)?;
        let mut opened = protocol::emitter::MAGIC.to_vec();
        opened.extend_from_slice(&bytes);
        same_whole_or_cut(|| EmitterDecoder::new(max), &opened, cut)?;
        same_whole_or_cut(|| protocol::emitter::ReplyDecoder, &bytes, cut)?;
        same_whole_or_cut(|| SyslogDecoder::new(max), &bytes, cut)?;
        for codec in Codec::ALL {
            same_whole_or_cut(|| DownstreamDecoder::new(max).with_codec(Some(codec)), &bytes, cut)?;
            same_whole_or_cut(|| Inflating(StreamDecoder::new(codec)), &bytes, cut)?;
            let mut opened = compressed_hello(codec);
            opened.extend_from_slice(&bytes);
            same_whole_or_cut(|| EmitterDecoder::new(max), &opened, cut)?;
        }
        let _ = protocol::probe::text::verify(&bytes);
        if let Some((p, payload)) = bytes.split_first() {
            let _ = protocol::probe::verify(*p, payload);
        }
    }
}
