//! Syslog over TCP (PROTOCOL.md §8, RFC 6587): the framing of the syslog listener and the
//! mapping of a message's PRI to a priority.
//!
//! ```text
//! each message, framed as its first byte says:
//!   '1'..'9'  octet counting:           MSG-LEN SP SYSLOG-MSG     MSG-LEN 1..=max_frame,
//!                                                                 decimal, no leading zero
//!   '<'       non-transparent framing:  SYSLOG-MSG [CR] LF        at most max_frame bytes
//!                                                                 before the (CR) LF
//!   other     a protocol error of the connection
//!
//! priority = severity * 32 + min(facility, 23)   from PRI = "<" facility * 8 + severity ">"
//!            no valid PRI: 161 (user.notice)
//! ```
//!
//! [`SyslogDecoder`] takes messages out of a growing buffer like every decoder of this
//! crate: the framing is decided per message, a MSG-LEN is refused as soon as its digits
//! exceed max_frame, a line as soon as max_frame bytes pass without its LF, each with the
//! stream offset of the message. The payload is SYSLOG-MSG byte for byte; what a listener
//! may want to count about it (no valid PRI, a NUL byte, invalid UTF-8) is asked of the
//! [`SyslogMessage`], not checked on the hot path.

use bytes::{Bytes, BytesMut};

/// The priority of a message without a valid PRI: user.notice (facility 1, severity 5).
pub const NO_PRI_PRIORITY: u8 = 161;
/// The largest PRI value (facility 23, severity 7).
pub const MAX_PRI: u8 = 191;

/// The priority of a message whose PRI is `pri`: `severity * 32 + min(facility, 23)`.
pub fn priority_of_pri(pri: u8) -> u8 {
    let facility = pri / 8;
    let severity = pri % 8;
    severity * 32 + facility.min(23)
}

/// The priority of a payload: from its PRI, or [`NO_PRI_PRIORITY`] without a valid one.
pub fn priority_of(payload: &[u8]) -> u8 {
    parse_pri(payload).map_or(NO_PRI_PRIORITY, |(pri, _)| priority_of_pri(pri))
}

/// The PRI that maps to `priority`, for a sender that wants a message to arrive at it:
/// severity `priority / 32`, facility `priority % 32` (at most 23: levels 24 to 31 of each
/// band of 32 have no PRI and are sent as 23). `priority_of_pri` of the result is
/// `priority` for every level that has a PRI.
pub fn pri_for_priority(priority: u8) -> u8 {
    let severity = priority / 32;
    let facility = (priority % 32).min(23);
    facility * 8 + severity
}

/// The PRI at the start of `msg` (`<` 1 to 3 digits `>`, at most 191, RFC 5424's
/// `PRIVAL`) and the bytes it takes; `None` if there is no valid one.
pub fn parse_pri(msg: &[u8]) -> Option<(u8, usize)> {
    if msg.first() != Some(&b'<') {
        return None;
    }
    let digits = msg[1..]
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if !(1..=3).contains(&digits) || msg.get(1 + digits) != Some(&b'>') {
        return None;
    }
    let value = msg[1..1 + digits]
        .iter()
        .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
    u8::try_from(value)
        .ok()
        .filter(|v| *v <= MAX_PRI)
        .map(|v| (v, digits + 2))
}

/// How a message was framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `MSG-LEN SP SYSLOG-MSG`.
    OctetCounting,
    /// `SYSLOG-MSG LF` (a CR before the LF dropped).
    NonTransparent,
}

/// One syslog message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage {
    /// The LOG frame's priority: from the PRI, or 161.
    pub priority: u8,
    /// The PRI value, if the message starts with a valid one.
    pub pri: Option<u8>,
    /// How it was framed.
    pub framing: Framing,
    /// SYSLOG-MSG byte for byte, without the framing.
    pub payload: Bytes,
}

impl SyslogMessage {
    /// Whether the payload holds a NUL byte.
    pub fn has_nul(&self) -> bool {
        self.payload.contains(&0)
    }

    /// The payload offset of the first byte that is not UTF-8, if any.
    pub fn utf8_error(&self) -> Option<usize> {
        std::str::from_utf8(&self.payload)
            .err()
            .map(|e| e.valid_up_to())
    }
}

/// Why a syslog stream cannot be decoded further. `offset` is where the message starts in
/// the connection's stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyslogError {
    /// A byte that starts neither framing (a digit 1-9 or `<`).
    #[error(
        "syslog message at stream offset {offset} starts with byte 0x{byte:02x}, neither a MSG-LEN digit 1-9 nor '<'"
    )]
    Start {
        /// The byte.
        byte: u8,
        /// Where the message starts.
        offset: u64,
    },
    /// A MSG-LEN above max_frame (refused as soon as its digits say so).
    #[error("syslog MSG-LEN at stream offset {offset} exceeds max_frame {max_frame}")]
    TooLong {
        /// The configured maximum.
        max_frame: u32,
        /// Where the message starts.
        offset: u64,
    },
    /// A MSG-LEN not followed by a space (another byte after its digits).
    #[error(
        "syslog MSG-LEN at stream offset {offset} is followed by byte 0x{byte:02x}, not a space"
    )]
    BadLength {
        /// The byte after the digits.
        byte: u8,
        /// Where the message starts.
        offset: u64,
    },
    /// A line longer than max_frame without its LF.
    #[error("syslog line at stream offset {offset} runs past max_frame {max_frame} without a LF")]
    LineTooLong {
        /// The configured maximum.
        max_frame: u32,
        /// Where the message starts.
        offset: u64,
    },
}

/// Incremental decoder of one syslog connection.
#[derive(Debug, Clone)]
pub struct SyslogDecoder {
    max_frame: u32,
    offset: u64,
    /// How far a line was searched for its LF already (so a long line is scanned once).
    scanned: usize,
}

impl SyslogDecoder {
    /// A decoder whose messages are at most `max_frame` bytes (at least 1).
    pub fn new(max_frame: u32) -> Self {
        Self {
            max_frame: max_frame.max(1),
            offset: 0,
            scanned: 0,
        }
    }

    /// Stream offset of the next undecoded byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Takes the next message out of `buf`; `Ok(None)` while it is incomplete.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<SyslogMessage>, SyslogError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        match first {
            b'1'..=b'9' => self.octet_counted(buf),
            b'<' => self.line(buf),
            byte => Err(SyslogError::Start {
                byte,
                offset: self.offset,
            }),
        }
    }

    fn octet_counted(&mut self, buf: &mut BytesMut) -> Result<Option<SyslogMessage>, SyslogError> {
        let offset = self.offset;
        let mut len: u64 = 0;
        let mut at = 0;
        while at < buf.len() && buf[at].is_ascii_digit() {
            len = len * 10 + u64::from(buf[at] - b'0');
            if len > u64::from(self.max_frame) {
                return Err(SyslogError::TooLong {
                    max_frame: self.max_frame,
                    offset,
                });
            }
            at += 1;
        }
        let Some(&after) = buf.get(at) else {
            return Ok(None);
        };
        if after != b' ' {
            return Err(SyslogError::BadLength {
                byte: after,
                offset,
            });
        }
        let start = at + 1;
        let end = start + len as usize;
        if buf.len() < end {
            return Ok(None);
        }
        let frame = buf.split_to(end).freeze();
        self.offset += end as u64;
        Ok(Some(message(frame.slice(start..), Framing::OctetCounting)))
    }

    fn line(&mut self, buf: &mut BytesMut) -> Result<Option<SyslogMessage>, SyslogError> {
        // A message of max_frame bytes may be followed by a CR, then the LF: the LF is at
        // most max_frame + 1 bytes in.
        let limit = self.max_frame as usize + 2;
        let window = &buf[..buf.len().min(limit)];
        let Some(lf) = window[self.scanned.min(window.len())..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| p + self.scanned)
        else {
            // Past max_frame bytes only a CR and then the LF may come.
            let max = self.max_frame as usize;
            if window.len() >= limit || (window.len() > max && window[max] != b'\r') {
                return Err(SyslogError::LineTooLong {
                    max_frame: self.max_frame,
                    offset: self.offset,
                });
            }
            self.scanned = window.len();
            return Ok(None);
        };
        self.scanned = 0;
        let end = if lf > 0 && buf[lf - 1] == b'\r' {
            lf - 1
        } else {
            lf
        };
        if end > self.max_frame as usize {
            return Err(SyslogError::LineTooLong {
                max_frame: self.max_frame,
                offset: self.offset,
            });
        }
        let mut frame = buf.split_to(lf + 1);
        self.offset += (lf + 1) as u64;
        frame.truncate(end);
        Ok(Some(message(frame.freeze(), Framing::NonTransparent)))
    }
}

fn message(payload: Bytes, framing: Framing) -> SyslogMessage {
    let pri = parse_pri(&payload).map(|(p, _)| p);
    SyslogMessage {
        priority: pri.map_or(NO_PRI_PRIORITY, priority_of_pri),
        pri,
        framing,
        payload,
    }
}

impl crate::Decode for SyslogDecoder {
    type Frame = SyslogMessage;
    type Error = SyslogError;
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<SyslogMessage>, SyslogError> {
        SyslogDecoder::decode(self, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(max: u32, wire: &[u8]) -> (Vec<SyslogMessage>, Option<SyslogError>) {
        let mut d = SyslogDecoder::new(max);
        let mut buf = BytesMut::from(wire);
        let mut got = Vec::new();
        loop {
            match d.decode(&mut buf) {
                Ok(Some(m)) => got.push(m),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e)),
            }
        }
    }

    #[test]
    fn the_mapping_of_section_8() {
        assert_eq!(priority_of_pri(0), 0, "kern.emerg");
        assert_eq!(priority_of_pri(13), 161, "user.notice");
        assert_eq!(priority_of_pri(191), 7 * 32 + 23, "local7.debug");
        assert_eq!(priority_of_pri(8 * 16 + 3), 3 * 32 + 16, "local0.err");
        for pri in 0..=MAX_PRI {
            assert_eq!(pri_for_priority(priority_of_pri(pri)), pri);
        }
        for p in 0..=255u8 {
            let back = priority_of_pri(pri_for_priority(p));
            assert_eq!(back, if p % 32 <= 23 { p } else { p - p % 32 + 23 }, "{p}");
        }
        assert_eq!(
            priority_of(b"<34>1 2003-10-11T22:14:15.003Z host su - ID47 - hi"),
            2 * 32 + 4
        );
        for bad in [
            &b"34>"[..],
            b"<>",
            b"<1234>",
            b"<192>",
            b"<3a>",
            b"<12",
            b"",
            b"<-1>",
        ] {
            assert_eq!(
                priority_of(bad),
                NO_PRI_PRIORITY,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_pri(b"<007>x"), Some((7, 5)));
    }

    #[test]
    fn both_framings_decided_per_message() {
        let wire = b"11 <13>1 - - a<165>1 line two\r\n5 <0>xy<14>three\n";
        let (got, err) = all(100, wire);
        assert_eq!(err, None);
        let summary: Vec<(&[u8], Framing, u8)> = got
            .iter()
            .map(|m| (&m.payload[..], m.framing, m.priority))
            .collect();
        assert_eq!(
            summary,
            vec![
                (&b"<13>1 - - a"[..], Framing::OctetCounting, 161),
                (
                    &b"<165>1 line two"[..],
                    Framing::NonTransparent,
                    5 * 32 + 20
                ),
                (&b"<0>xy"[..], Framing::OctetCounting, 0),
                (&b"<14>three"[..], Framing::NonTransparent, 6 * 32 + 1),
            ]
        );
        // Octet counting carries any byte, a LF included; no PRI is 161.
        let (got, _) = all(100, b"4 a\nb\0");
        assert_eq!(
            (&got[0].payload[..], got[0].pri, got[0].priority),
            (&b"a\nb\0"[..], None, 161)
        );
        assert!(got[0].has_nul());
        let (got, _) = all(100, b"<1>\xff\xfe\n");
        assert_eq!(got[0].utf8_error(), Some(3));
    }

    #[test]
    fn errors_name_the_message_offset() {
        let (got, err) = all(100, b"3 <1>\n");
        assert_eq!(got.len(), 1, "the message before the fault stands");
        assert_eq!(
            err,
            Some(SyslogError::Start {
                byte: b'\n',
                offset: 5
            })
        );
        assert_eq!(
            all(100, b"0 x").1,
            Some(SyslogError::Start {
                byte: b'0',
                offset: 0
            })
        );
        assert_eq!(
            all(100, b"x").1,
            Some(SyslogError::Start {
                byte: b'x',
                offset: 0
            })
        );
        assert_eq!(
            all(100, b"101").1,
            Some(SyslogError::TooLong {
                max_frame: 100,
                offset: 0
            })
        );
        assert_eq!(
            all(100, b"100"),
            (vec![], None),
            "at the limit: waits for more"
        );
        assert_eq!(
            all(100, b"12x").1,
            Some(SyslogError::BadLength {
                byte: b'x',
                offset: 0
            })
        );
        let long = [b"<1>".as_slice(), &[b'a'; 98]].concat();
        assert_eq!(
            all(100, &long).1,
            Some(SyslogError::LineTooLong {
                max_frame: 100,
                offset: 0
            })
        );
        let fits = [b"<1>".as_slice(), &[b'a'; 97], b"\r\n"].concat();
        assert_eq!(all(100, &fits).0.len(), 1);
        let over = [b"<1>".as_slice(), &[b'a'; 98], b"\n"].concat();
        assert_eq!(
            all(100, &over).1,
            Some(SyslogError::LineTooLong {
                max_frame: 100,
                offset: 0
            })
        );
    }
}
