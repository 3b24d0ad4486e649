//! Every decoder against arbitrary bytes: it never panics, and it decodes the same frames
//! and the same error whether the bytes arrive at once or cut at any point (as TCP may cut
//! them). CI runs the default number of cases; `just fuzz` runs ten million
//! (`PROPTEST_CASES=10000000`).

use bytes::BytesMut;
use proptest::prelude::*;
use protocol::analyzer::DownstreamDecoder;
use protocol::emitter::EmitterDecoder;
use protocol::log::LogDecoder;
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

proptest! {
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
        if let Some((p, payload)) = bytes.split_first() {
            let _ = protocol::probe::verify(*p, payload);
        }
    }
}
