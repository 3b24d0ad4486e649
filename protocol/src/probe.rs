//! Test messages inside LOG payloads (PROTOCOL.md §4): built by the load generator,
//! verified end to end by the analyzer sink; the distributor never looks inside.
//!
//! ```text
//!  0      4            8        16          24         24+n
//! +------+------------+--------+-----------+----------+---------+
//! | LDT1 | emitter u32| seq u64| sent_ns   | filler   | crc32   |
//! +------+------------+--------+-----------+----------+---------+
//!  crc32 (IEEE) over the priority byte, then payload bytes [0, 24 + n)
//! ```
//!
//! [`text`] is the same probe as text, for messages that must stay text (syslog).

pub mod text;

use bytes::{BufMut, BytesMut};

/// The probe magic.
pub const MAGIC: [u8; 4] = *b"LDT1";
/// Bytes before the filler.
pub const HEADER_LEN: usize = 24;
/// The smallest probe: header and crc, no filler.
pub const MIN_LEN: usize = HEADER_LEN + 4;

/// The identifying fields of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Probe {
    /// Emitter id, unique within a run.
    pub emitter: u32,
    /// 0, 1, 2, ... per emitter.
    pub seq: u64,
    /// When the emitter sent it.
    pub sent_ns: u64,
}

/// Why a payload is not a good probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Shorter than 28 bytes or without the magic: some other sender's message.
    #[error("not a probe (length {len}, or no LDT1 magic)")]
    NotProbe {
        /// The payload length.
        len: usize,
    },
    /// The crc does not match: the bytes changed on the way.
    #[error("crc mismatch for emitter {} seq {}: stored {stored:08x}, computed {computed:08x}", probe.emitter, probe.seq)]
    Crc {
        /// The fields as read (they may be the corrupted part).
        probe: Probe,
        /// The crc in the payload.
        stored: u32,
        /// The crc of what arrived.
        computed: u32,
    },
}

/// Appends a probe payload with `filler` to `dst` (the LOG header is the caller's).
pub fn encode(priority: u8, probe: Probe, filler: &[u8], dst: &mut BytesMut) {
    dst.reserve(MIN_LEN + filler.len());
    let start = dst.len();
    dst.put_slice(&MAGIC);
    dst.put_u32(probe.emitter);
    dst.put_u64(probe.seq);
    dst.put_u64(probe.sent_ns);
    dst.put_slice(filler);
    let crc = checksum(priority, &dst[start..]);
    dst.put_u32(crc);
}

/// The crc32 of the priority byte followed by `body`.
pub fn checksum(priority: u8, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[priority]);
    h.update(body);
    h.finalize()
}

/// Reads the probe fields without checking the crc.
pub fn parse(payload: &[u8]) -> Result<Probe, ProbeError> {
    if payload.len() < MIN_LEN || payload[0..4] != MAGIC {
        return Err(ProbeError::NotProbe { len: payload.len() });
    }
    Ok(Probe {
        emitter: crate::be_u32(payload, 4),
        seq: crate::be_u64(payload, 8),
        sent_ns: crate::be_u64(payload, 16),
    })
}

/// Checks magic and crc; returns the probe's fields.
pub fn verify(priority: u8, payload: &[u8]) -> Result<Probe, ProbeError> {
    let probe = parse(payload)?;
    let body = payload.len() - 4;
    let stored = crate::be_u32(payload, body);
    let computed = checksum(priority, &payload[..body]);
    if stored != computed {
        return Err(ProbeError::Crc {
            probe,
            stored,
            computed,
        });
    }
    Ok(probe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: Probe = Probe {
        emitter: 7,
        seq: 9,
        sent_ns: 11,
    };

    #[test]
    fn literal_layout_and_crc() {
        let mut b = BytesMut::new();
        encode(3, P, b"zz", &mut b);
        assert_eq!(b.len(), 30);
        assert_eq!(&b[0..4], b"LDT1");
        assert_eq!(&b[4..8], &[0, 0, 0, 7]);
        assert_eq!(&b[8..16], &9u64.to_be_bytes());
        assert_eq!(&b[16..24], &11u64.to_be_bytes());
        let mut whole = vec![3u8];
        whole.extend_from_slice(&b[..26]);
        assert_eq!(&b[26..], &crc32fast::hash(&whole).to_be_bytes());
        assert_eq!(verify(3, &b), Ok(P));
    }

    #[test]
    fn detects_priority_change_and_flipped_bits() {
        let mut b = BytesMut::new();
        encode(3, P, b"zz", &mut b);
        assert!(matches!(verify(4, &b), Err(ProbeError::Crc { .. })));
        b[25] ^= 1;
        assert!(matches!(verify(3, &b), Err(ProbeError::Crc { .. })));
        assert_eq!(verify(3, b"short"), Err(ProbeError::NotProbe { len: 5 }));
    }

    proptest! {
        #[test]
        fn round_trips(p in any::<u8>(), e in any::<u32>(), s in any::<u64>(), t in any::<u64>(), filler in proptest::collection::vec(any::<u8>(), 0..200)) {
            let probe = Probe { emitter: e, seq: s, sent_ns: t };
            let mut b = BytesMut::new();
            encode(p, probe, &filler, &mut b);
            prop_assert_eq!(verify(p, &b), Ok(probe));
        }

        #[test]
        fn never_panics(p in any::<u8>(), bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = verify(p, &bytes);
        }
    }
}
