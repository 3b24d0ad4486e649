//! Text probes (PROTOCOL.md §4): the end of a message that must stay text (syslog, §8) or
//! passes through a program that may rewrite its header (a real log shipper).
//!
//! ```text
//! ... LDT1:<emitter>:<seq>:<sent_ns>:<crc> <filler>
//!     emitter, seq, sent_ns: decimal, no leading zeros; crc: 8 lowercase hex digits;
//!     filler: printable ASCII, at least one byte, no trailing white space
//!     crc = crc32 (IEEE) of the ASCII bytes "<emitter>:<seq>:<sent_ns> <filler>"
//! ```
//!
//! Whatever precedes the last `LDT1:` (a syslog header, a timestamp a shipper rewrote) is not
//! covered, nor is white space at the end of the payload (a shipper may end a message with
//! LF). The priority is not covered either: over syslog it comes from the PRI, which the
//! analyzer sink checks on its own ([`crate::syslog::priority_of`]).

use super::Probe;
use bytes::{BufMut, BytesMut};

/// What starts the probe.
pub const MARK: &[u8; 5] = b"LDT1:";

/// Why a filler cannot end a text probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FillerError {
    /// No bytes.
    #[error("a text probe's filler is at least one byte")]
    Empty,
    /// A byte outside printable ASCII (0x20 to 0x7e).
    #[error("filler byte {at} (0x{byte:02x}) is not printable ASCII")]
    NotPrintable {
        /// Its offset in the filler.
        at: usize,
        /// The byte.
        byte: u8,
    },
    /// A space at the end (a shipper may trim it).
    #[error("the filler ends with white space")]
    TrailingSpace,
    /// `LDT1:` inside it (a verifier reads from the last one).
    #[error("the filler contains LDT1: at byte {0}")]
    Mark(usize),
}

/// Why a payload is not a good text probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextProbeError {
    /// No `LDT1:` in it.
    #[error("not a text probe (no LDT1: in {len} bytes)")]
    NotProbe {
        /// The payload length.
        len: usize,
    },
    /// `LDT1:` followed by something other than the fields.
    #[error("text probe at byte {mark}: bad {field}")]
    Malformed {
        /// Where the last `LDT1:` is.
        mark: usize,
        /// The field that is wrong: `emitter`, `seq`, `sent_ns`, `crc` or `filler`.
        field: &'static str,
    },
    /// The crc does not match: the bytes changed on the way.
    #[error("text probe crc mismatch for emitter {} seq {}: stored {stored:08x}, computed {computed:08x}", probe.emitter, probe.seq)]
    Crc {
        /// The fields as read (they may be the corrupted part).
        probe: Probe,
        /// The crc in the payload.
        stored: u32,
        /// The crc of what arrived.
        computed: u32,
    },
}

/// Checks a filler against the rules of a text probe.
pub fn check_filler(filler: &[u8]) -> Result<(), FillerError> {
    if filler.is_empty() {
        return Err(FillerError::Empty);
    }
    if let Some(at) = filler.iter().position(|b| !(0x20..=0x7e).contains(b)) {
        return Err(FillerError::NotPrintable {
            at,
            byte: filler[at],
        });
    }
    if filler.last() == Some(&b' ') {
        return Err(FillerError::TrailingSpace);
    }
    if let Some(at) = filler.windows(MARK.len()).position(|w| w == MARK) {
        return Err(FillerError::Mark(at));
    }
    Ok(())
}

/// Appends `LDT1:<emitter>:<seq>:<sent_ns>:<crc> <filler>` to `dst` (what precedes it, a
/// syslog header, is the caller's).
pub fn encode(probe: Probe, filler: &[u8], dst: &mut BytesMut) -> Result<(), FillerError> {
    check_filler(filler)?;
    let fields = format!("{}:{}:{}", probe.emitter, probe.seq, probe.sent_ns);
    let mut h = crc32fast::Hasher::new();
    h.update(fields.as_bytes());
    h.update(b" ");
    h.update(filler);
    let crc = h.finalize();
    dst.reserve(MARK.len() + fields.len() + 10 + filler.len());
    dst.put_slice(MARK);
    dst.put_slice(fields.as_bytes());
    dst.put_slice(format!(":{crc:08x} ").as_bytes());
    dst.put_slice(filler);
    Ok(())
}

/// The bytes a text probe of these fields takes before its filler (`LDT1:`, the fields,
/// the crc and the space).
pub fn overhead(probe: Probe) -> usize {
    let digits = |v: u64| v.checked_ilog10().map_or(1, |d| d as usize + 1);
    MARK.len()
        + digits(u64::from(probe.emitter))
        + digits(probe.seq)
        + digits(probe.sent_ns)
        + 2
        + 1
        + 8
        + 1
}

/// Where the last `LDT1:` of `payload` is.
pub fn find(payload: &[u8]) -> Option<usize> {
    payload.windows(MARK.len()).rposition(|w| w == MARK)
}

/// Verifies the text probe that starts at the last `LDT1:` of `payload`.
pub fn verify(payload: &[u8]) -> Result<Probe, TextProbeError> {
    let mark = find(payload).ok_or(TextProbeError::NotProbe { len: payload.len() })?;
    let end = payload
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    let text = payload.get(mark + MARK.len()..end).unwrap_or_default();
    let bad = |field| TextProbeError::Malformed { mark, field };
    let (emitter, rest) = decimal(text, b':').ok_or(bad("emitter"))?;
    let emitter = u32::try_from(emitter).map_err(|_| bad("emitter"))?;
    let (seq, rest) = decimal(rest, b':').ok_or(bad("seq"))?;
    let (sent_ns, rest) = decimal(rest, b':').ok_or(bad("sent_ns"))?;
    let fields_len = text.len() - rest.len() - 1;
    let stored = rest.get(..8).and_then(hex8).ok_or(bad("crc"))?;
    let filler = match rest.get(8..) {
        Some([b' ', filler @ ..]) if !filler.is_empty() => filler,
        _ => return Err(bad("filler")),
    };
    let mut h = crc32fast::Hasher::new();
    h.update(&text[..fields_len]);
    h.update(b" ");
    h.update(filler);
    let computed = h.finalize();
    let probe = Probe {
        emitter,
        seq,
        sent_ns,
    };
    if computed != stored {
        return Err(TextProbeError::Crc {
            probe,
            stored,
            computed,
        });
    }
    Ok(probe)
}

/// A decimal u64 without leading zeros, then `sep`; the rest after `sep`.
fn decimal(s: &[u8], sep: u8) -> Option<(u64, &[u8])> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && s[0] == b'0') || s.get(digits) != Some(&sep) {
        return None;
    }
    let mut v: u64 = 0;
    for d in &s[..digits] {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some((v, &s[digits + 1..]))
}

/// Eight lowercase hex digits.
fn hex8(s: &[u8]) -> Option<u32> {
    s.iter().try_fold(0u32, |v, d| {
        let n = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(v << 4 | u32::from(n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: Probe = Probe {
        emitter: 7,
        seq: 42,
        sent_ns: 1_764_655_380_123_456_789,
    };

    #[test]
    fn literal_layout_and_crc() {
        let mut b = BytesMut::from(&b"<165>1 2026-12-02T06:03:00Z host app - - - "[..]);
        let header = b.len();
        encode(P, b"GET /index.html 200", &mut b).unwrap();
        let crc = crc32fast::hash(b"7:42:1764655380123456789 GET /index.html 200");
        let want = format!("LDT1:7:42:1764655380123456789:{crc:08x} GET /index.html 200");
        assert_eq!(&b[header..], want.as_bytes());
        assert_eq!(overhead(P), want.len() - "GET /index.html 200".len());
        assert_eq!(verify(&b), Ok(P));
        // A shipper that rewrote the header and ended the message with LF changes nothing.
        let mut moved = b"<165>1 2026-12-02T07:00:00+01:00 other-host app - - - ".to_vec();
        moved.extend_from_slice(&b[header..]);
        moved.extend_from_slice(b"\r\n");
        assert_eq!(verify(&moved), Ok(P));
    }

    #[test]
    fn faults_are_named() {
        let mut good = BytesMut::new();
        encode(P, b"abc", &mut good).unwrap();
        let mut flipped = good.to_vec();
        let n = flipped.len();
        flipped[n - 1] = b'x';
        assert!(matches!(
            verify(&flipped),
            Err(TextProbeError::Crc { probe: P, .. })
        ));
        assert_eq!(
            verify(b"no probe here"),
            Err(TextProbeError::NotProbe { len: 13 })
        );
        let bad = |s: &str| match verify(s.as_bytes()) {
            Err(TextProbeError::Malformed { field, .. }) => field,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(bad("LDT1:07:1:1:00000000 x"), "emitter");
        assert_eq!(bad("LDT1:4294967296:1:1:00000000 x"), "emitter");
        assert_eq!(bad("LDT1:1::1:00000000 x"), "seq");
        assert_eq!(bad("LDT1:1:1:18446744073709551616:00000000 x"), "sent_ns");
        assert_eq!(bad("LDT1:1:1:1:0000000G x"), "crc");
        assert_eq!(bad("LDT1:1:1:1:0000000A x"), "crc");
        assert_eq!(bad("LDT1:1:1:1:00000000"), "filler");
        assert_eq!(bad("LDT1:1:1:1:00000000x"), "filler");
        assert_eq!(check_filler(b""), Err(FillerError::Empty));
        assert_eq!(
            check_filler(b"a\nb"),
            Err(FillerError::NotPrintable { at: 1, byte: b'\n' })
        );
        assert_eq!(check_filler(b"ab "), Err(FillerError::TrailingSpace));
        assert_eq!(check_filler(b"x LDT1: y"), Err(FillerError::Mark(2)));
    }

    proptest! {
        #[test]
        fn round_trips(e in any::<u32>(), s in any::<u64>(), t in any::<u64>(), header in "[ -~]{0,40}", filler in "[ -~]{0,60}[!-~]") {
            prop_assume!(check_filler(filler.as_bytes()).is_ok());
            let probe = Probe { emitter: e, seq: s, sent_ns: t };
            let mut b = BytesMut::from(header.as_bytes());
            encode(probe, filler.as_bytes(), &mut b).unwrap();
            prop_assert_eq!(b.len(), header.len() + overhead(probe) + filler.len());
            prop_assert_eq!(verify(&b), Ok(probe));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut v = b"LDT1:".to_vec();
            v.extend_from_slice(&bytes);
            let _ = verify(&v);
            let _ = verify(&bytes);
        }
    }
}
