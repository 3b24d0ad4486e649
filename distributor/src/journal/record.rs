//! The bytes of the journal: segment files of frame records, and done files of marks.
//!
//! ```text
//! segment file  <id>.log                      done file  <id>.done
//! +------+---------+                          +-------+-------+----------------------+
//! | LDJ1 | 0 0 0 0 |  file header, 8 bytes    | count | crc32 | count x offset (u32) |
//! +------+---------+                          +-------+-------+----------------------+
//! | len  | crc32   | priority | payload |     one batch of done marks, repeated
//! +------+---------+----------+---------+
//!   u32     u32        u8      len - 1 bytes   one record per frame, repeated
//! ```
//!
//! Every integer is little-endian (the journal never leaves the machine). `len` counts the
//! body (priority and payload) and is at least 1; the CRC-32 (IEEE) covers the body. A done
//! mark is the offset of a record in its segment; a batch of marks carries its own CRC.
//!
//! Reading tells apart the two ways a file goes bad. A record or batch that runs past the
//! end of the file is a *torn tail*: the process died while writing it, and what follows
//! it does not exist. A record whose bytes are all there but whose CRC (or length) is wrong
//! is *corrupt*: the disk or something else changed it, and nothing after it can be
//! trusted.

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"LDJ1";
/// Bytes before the first record of a segment.
pub const SEGMENT_HEADER_LEN: usize = 8;
/// Bytes before a record's body: `len` and `crc32`.
pub const RECORD_HEADER_LEN: usize = 8;

/// The file header of a new segment.
pub fn segment_header() -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0; SEGMENT_HEADER_LEN];
    h[..4].copy_from_slice(&SEGMENT_MAGIC);
    h
}

/// Appends the record of one frame to `out`.
pub fn encode(priority: u8, payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len() + 1;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[priority]);
    crc.update(payload);
    // The distributor's max_frame (at most 256 MiB) bounds a payload well under u32::MAX.
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(priority);
    out.extend_from_slice(payload);
}

/// Bytes of the record of a frame with this payload.
pub fn record_len(payload_len: usize) -> usize {
    RECORD_HEADER_LEN + 1 + payload_len
}

/// One record read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Where it starts in its segment.
    pub offset: u32,
    /// The frame's priority.
    pub priority: u8,
    /// The frame's payload.
    pub payload: &'a [u8],
}

/// Why reading a file stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Bad {
    /// A record runs past the end of the file: cut by a crash.
    #[error("torn record at byte {offset}: {have} of {need} bytes present")]
    Torn {
        /// Where the record starts.
        offset: u64,
        /// Bytes it needs.
        need: u64,
        /// Bytes the file still has from `offset`.
        have: u64,
    },
    /// Whole but wrong: the CRC does not match or the length is impossible.
    #[error("corrupt record at byte {offset}: {what}")]
    Corrupt {
        /// Where the record starts.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

/// Checks the file header of a segment.
pub fn check_header(bytes: &[u8]) -> Result<(), Bad> {
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Err(Bad::Torn {
            offset: 0,
            need: SEGMENT_HEADER_LEN as u64,
            have: bytes.len() as u64,
        });
    }
    if bytes[..4] != SEGMENT_MAGIC {
        return Err(Bad::Corrupt {
            offset: 0,
            what: format!("not a journal segment (magic {:02x?})", &bytes[..4]),
        });
    }
    Ok(())
}

/// Decodes the record at `offset` of a segment's bytes. `Ok(None)` at the end of the file.
pub fn decode(bytes: &[u8], offset: usize) -> Result<Option<Record<'_>>, Bad> {
    let rest = bytes.get(offset..).unwrap_or_default();
    if rest.is_empty() {
        return Ok(None);
    }
    let at = offset as u64;
    if rest.len() < RECORD_HEADER_LEN {
        return Err(Bad::Torn {
            offset: at,
            need: RECORD_HEADER_LEN as u64,
            have: rest.len() as u64,
        });
    }
    let len = u32_at(rest, 0) as usize;
    let crc = u32_at(rest, 4);
    if len == 0 {
        return Err(Bad::Corrupt {
            offset: at,
            what: "record length 0".into(),
        });
    }
    let Some(body) = rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
        return Err(Bad::Torn {
            offset: at,
            need: (RECORD_HEADER_LEN + len) as u64,
            have: rest.len() as u64,
        });
    };
    let actual = crc32fast::hash(body);
    if actual != crc {
        return Err(Bad::Corrupt {
            offset: at,
            what: format!("CRC {actual:08x}, record says {crc:08x} (length {len})"),
        });
    }
    Ok(Some(Record {
        offset: offset as u32,
        priority: body[0],
        payload: &body[1..],
    }))
}

/// Appends one batch of done marks (record offsets) to `out`.
pub fn encode_done(offsets: &[u32], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for o in offsets {
        out.extend_from_slice(&o.to_le_bytes());
    }
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads the done marks of a done file into `marks`, up to the first bad batch (returned:
/// the marks after it are unknown, so their frames are delivered again, never lost).
pub fn decode_done(bytes: &[u8], marks: &mut Vec<u32>) -> Option<Bad> {
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let need = match rest.len() {
            n if n < 8 => 8,
            _ => 8 + 4 * u32_at(rest, 0) as usize,
        };
        if rest.len() < need {
            return Some(Bad::Torn {
                offset: at as u64,
                need: need as u64,
                have: rest.len() as u64,
            });
        }
        if crc32fast::hash(&rest[8..need]) != u32_at(rest, 4) {
            return Some(Bad::Corrupt {
                offset: at as u64,
                what: "CRC of a batch of done marks".into(),
            });
        }
        marks.extend(rest[8..need].chunks_exact(4).map(|c| u32_at(c, 0)));
        at += need;
    }
    None
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_on_literal_bytes() {
        let mut out = Vec::new();
        encode(7, b"hi", &mut out);
        let crc = crc32fast::hash(&[7, b'h', b'i']).to_le_bytes();
        assert_eq!(
            out,
            [&[3, 0, 0, 0][..], &crc, &[7, b'h', b'i']].concat(),
            "len 3, crc, priority, payload"
        );
        assert_eq!(out.len(), record_len(2));
        let r = decode(&out, 0).unwrap().unwrap();
        assert_eq!((r.offset, r.priority, r.payload), (0, 7, &b"hi"[..]));
        assert_eq!(decode(&out, out.len()).unwrap(), None);
    }

    #[test]
    fn a_cut_record_is_torn_and_a_changed_one_corrupt() {
        let mut out = Vec::new();
        encode(1, b"first", &mut out);
        let second = out.len();
        encode(2, b"second", &mut out);
        for cut in second + 1..out.len() {
            let e = decode(&out[..cut], second).unwrap_err();
            assert!(
                matches!(e, Bad::Torn { offset, .. } if offset == second as u64),
                "{e}"
            );
        }
        let mut flipped = out.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let e = decode(&flipped, second).unwrap_err();
        assert!(
            matches!(e, Bad::Corrupt { offset, .. } if offset == second as u64),
            "{e}"
        );
        assert!(e.to_string().contains("CRC"), "{e}");
        let zero = [0u8; 16];
        assert!(matches!(decode(&zero, 0), Err(Bad::Corrupt { .. })));
    }

    #[test]
    fn segment_header_is_checked() {
        assert_eq!(check_header(&segment_header()), Ok(()));
        assert!(matches!(check_header(b"LDJ"), Err(Bad::Torn { .. })));
        assert!(matches!(
            check_header(b"XXXX0000"),
            Err(Bad::Corrupt { .. })
        ));
    }

    #[test]
    fn done_marks_read_up_to_the_first_bad_batch() {
        let mut out = Vec::new();
        encode_done(&[8, 20], &mut out);
        encode_done(&[40], &mut out);
        let mut marks = Vec::new();
        assert_eq!(decode_done(&out, &mut marks), None);
        assert_eq!(marks, [8, 20, 40]);
        marks.clear();
        let torn = decode_done(&out[..out.len() - 1], &mut marks);
        assert!(
            matches!(torn, Some(Bad::Torn { offset: 16, .. })),
            "{torn:?}"
        );
        assert_eq!(marks, [8, 20]);
        let mut bad = out.clone();
        bad[9] ^= 1;
        marks.clear();
        assert!(matches!(
            decode_done(&bad, &mut marks),
            Some(Bad::Corrupt { offset: 0, .. })
        ));
        assert!(marks.is_empty());
    }
}
