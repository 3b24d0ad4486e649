//! Verification of every arrival: magic and crc of binary probes, or the text probe that
//! ends the payload (PROTOCOL.md §4) with its priority checked against its PRI (§8),
//! duplicate detection by (emitter, seq), and the exact set of seqs seen per emitter.
//!
//! A payload is read as a binary probe first; one that is not a good binary probe but
//! holds `LDT1:` is read as a text probe from its last `LDT1:`. A text probe's crc does
//! not cover the priority (a shipper may rewrite the header it came in), so its DELIVER
//! priority must equal the mapping of its PRI (`severity * 32 + min(facility, 23)`, 161
//! without one): a text probe that fails that is counted as corrupt, like a binary probe
//! whose priority changed, and in `pri_mismatch` too.

use protocol::analyzer::Deliver;
use protocol::order::OrderCheck;
use protocol::probe::text::{self, TextProbeError};
use protocol::probe::{self, Probe, ProbeError};
use std::collections::{BTreeMap, HashMap};

/// One DELIVER frame as the sink saw it: its row of `arrivals-<id>.csv` (emitter and seq
/// empty for a frame that is not a probe) and what the order check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// The logged row.
    pub row: runfolder::rows::Arrival,
    /// A less urgent frame delivered earlier on this connection was dispatched after this
    /// one was queued: a priority inversion (PROTOCOL.md §3).
    pub inverted: bool,
    /// A frame delivered earlier on this connection was queued after this one: this one
    /// was overtaken (evidence that priority reordered a backlog).
    pub overtaken: bool,
}

impl Arrival {
    /// End-to-end latency (arrival - sent), for good probes.
    pub fn latency_ns(&self) -> Option<u64> {
        let r = &self.row;
        (r.crc_ok && r.emitter.is_some()).then(|| r.arrival_ns.saturating_sub(r.sent_ns))
    }
}

/// Totals over the sink's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// DELIVER frames.
    pub received: u64,
    /// Good probes seen for the first time.
    pub unique: u64,
    /// Good probes seen before.
    pub duplicates: u64,
    /// Probes whose crc does not match.
    pub corrupt: u64,
    /// Frames without the probe magic, or too short.
    pub non_probe: u64,
    /// Priority inversions seen (see [`Arrival::inverted`]).
    pub inversions: u64,
    /// Frames overtaken (see [`Arrival::overtaken`]).
    pub overtaken: u64,
    /// Probes read as text probes (good or not).
    pub text_probes: u64,
    /// Text probes whose priority is not the mapping of their PRI (also in `corrupt`).
    pub pri_mismatch: u64,
}

/// What a payload is, verified.
enum Verdict {
    /// A good probe.
    Good(Probe),
    /// A probe that changed on the way; its fields as read, if they could be.
    Corrupt(Option<Probe>),
    /// Not a probe.
    Foreign,
}

/// Seqs per chunk of the seen-set: 64 Ki seqs in 8 KiB.
const CHUNK_SEQS: u64 = 1 << 16;

/// The seqs seen from one emitter: a sparse bitmap, so memory follows what arrived.
#[derive(Debug, Default, Clone)]
struct SeenSet {
    chunks: BTreeMap<u64, Box<[u64; (CHUNK_SEQS / 64) as usize]>>,
}

impl SeenSet {
    /// Marks `seq`; false if it was already marked.
    fn insert(&mut self, seq: u64) -> bool {
        let chunk = self
            .chunks
            .entry(seq / CHUNK_SEQS)
            .or_insert_with(|| Box::new([0; (CHUNK_SEQS / 64) as usize]));
        let bit = seq % CHUNK_SEQS;
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        let fresh = chunk[word] & mask == 0;
        chunk[word] |= mask;
        fresh
    }

    /// Inclusive ranges of seqs seen, in order.
    fn ranges(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (c, words) in &self.chunks {
            for (w, word) in words.iter().enumerate() {
                let mut bits = *word;
                while bits != 0 {
                    let b = u64::from(bits.trailing_zeros());
                    bits &= bits - 1;
                    let seq = c * CHUNK_SEQS + w as u64 * 64 + b;
                    match out.last_mut() {
                        Some((_, last)) if *last + 1 == seq => *last = seq,
                        _ => out.push((seq, seq)),
                    }
                }
            }
        }
        out
    }
}

/// Verifies arrivals and remembers what was seen.
#[derive(Debug, Default)]
pub struct Tracker {
    seen: HashMap<u32, SeenSet>,
    counts: Counts,
    order: OrderCheck,
    session: u32,
}

impl Tracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new connection starts: delivery order is checked per connection.
    pub fn new_session(&mut self) {
        self.session += 1;
        self.order = OrderCheck::default();
    }

    /// Checks one DELIVER frame read at `arrival_ns`.
    pub fn observe(&mut self, d: &Deliver, arrival_ns: u64) -> Arrival {
        self.counts.received += 1;
        let (inverted, overtaken) = self.order.observe(d.priority, d.queued_ns, d.dispatch_ns);
        self.counts.inversions += u64::from(inverted);
        self.counts.overtaken += u64::from(overtaken);
        let mut a = runfolder::rows::Arrival {
            arrival_ns,
            emitter: None,
            seq: None,
            priority: d.priority,
            sent_ns: 0,
            queued_ns: d.queued_ns,
            dispatch_ns: d.dispatch_ns,
            size: d.payload.len() as u32,
            crc_ok: false,
            duplicate: false,
            session: u64::from(self.session),
        };
        match self.verdict(d) {
            Verdict::Good(p) => {
                a.emitter = Some(p.emitter);
                a.seq = Some(p.seq);
                a.sent_ns = p.sent_ns;
                a.crc_ok = true;
                a.duplicate = !self.seen.entry(p.emitter).or_default().insert(p.seq);
                if a.duplicate {
                    self.counts.duplicates += 1;
                } else {
                    self.counts.unique += 1;
                }
            }
            Verdict::Corrupt(fields) => {
                // The fields may be the corrupted part: reported, never marked as seen.
                if let Some(p) = fields {
                    a.emitter = Some(p.emitter);
                    a.seq = Some(p.seq);
                    a.sent_ns = p.sent_ns;
                }
                self.counts.corrupt += 1;
            }
            Verdict::Foreign => self.counts.non_probe += 1,
        }
        Arrival {
            row: a,
            inverted,
            overtaken,
        }
    }

    /// Binary probe first, then a text probe if the payload holds `LDT1:`.
    fn verdict(&mut self, d: &Deliver) -> Verdict {
        let binary = match probe::verify(d.priority, &d.payload) {
            Ok(p) => return Verdict::Good(p),
            Err(e) => e,
        };
        if text::find(&d.payload).is_none() {
            return match binary {
                ProbeError::Crc { probe, .. } => Verdict::Corrupt(Some(probe)),
                ProbeError::NotProbe { .. } => Verdict::Foreign,
            };
        }
        self.counts.text_probes += 1;
        match text::verify(&d.payload) {
            Ok(p) if d.priority == protocol::syslog::priority_of(&d.payload) => Verdict::Good(p),
            Ok(p) => {
                self.counts.pri_mismatch += 1;
                Verdict::Corrupt(Some(p))
            }
            Err(TextProbeError::Crc { probe, .. }) => Verdict::Corrupt(Some(probe)),
            Err(TextProbeError::Malformed { .. }) => Verdict::Corrupt(None),
            Err(TextProbeError::NotProbe { .. }) => Verdict::Foreign,
        }
    }

    /// The totals so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Every emitter's seen seqs as inclusive `(emitter, first, last)` ranges.
    pub fn ranges(&self) -> Vec<(u32, u64, u64)> {
        let mut emitters: Vec<&u32> = self.seen.keys().collect();
        emitters.sort();
        emitters
            .into_iter()
            .flat_map(|e| {
                self.seen[e]
                    .ranges()
                    .into_iter()
                    .map(move |(a, b)| (*e, a, b))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use protocol::probe::Probe;

    fn deliver(priority: u8, emitter: u32, seq: u64) -> Deliver {
        let mut b = BytesMut::new();
        probe::encode(
            priority,
            Probe {
                emitter,
                seq,
                sent_ns: 100,
            },
            b"filler",
            &mut b,
        );
        Deliver {
            priority,
            queued_ns: 1,
            dispatch_ns: 2,
            payload: b.freeze(),
        }
    }

    #[test]
    fn classifies_good_duplicate_corrupt_and_foreign_frames() {
        let mut t = Tracker::new();
        let a = t.observe(&deliver(3, 1, 5), 150);
        assert!(a.row.crc_ok && !a.row.duplicate);
        assert_eq!(a.latency_ns(), Some(50));
        assert!(t.observe(&deliver(3, 1, 5), 160).row.duplicate);
        let mut bad = deliver(3, 1, 6);
        let mut raw = bad.payload.to_vec();
        raw[30] ^= 0x40;
        bad.payload = Bytes::from(raw);
        let c = t.observe(&bad, 170);
        assert!(!c.row.crc_ok && !c.row.duplicate && c.latency_ns().is_none());
        // Same bytes but a different priority than the one the crc covers.
        let mut moved = deliver(3, 1, 7);
        moved.priority = 4;
        assert!(!t.observe(&moved, 180).row.crc_ok);
        let foreign = Deliver {
            priority: 0,
            queued_ns: 0,
            dispatch_ns: 0,
            payload: Bytes::from_static(b"hello"),
        };
        assert_eq!(t.observe(&foreign, 190).row.emitter, None);
        assert_eq!(
            t.counts(),
            Counts {
                received: 5,
                unique: 1,
                duplicates: 1,
                corrupt: 2,
                non_probe: 1,
                // The foreign frame (priority 0, queued at 0) came after priority-3
                // frames dispatched at 2: an inversion, and it was overtaken.
                inversions: 1,
                overtaken: 1,
                text_probes: 0,
                pri_mismatch: 0,
            }
        );
        // The corrupt seq 6 is not counted as seen.
        assert_eq!(t.ranges(), vec![(1, 5, 5)]);
    }

    fn syslog(pri: u8, priority: u8, emitter: u32, seq: u64) -> Deliver {
        let mut b =
            BytesMut::from(format!("<{pri}>1 2026-12-02T06:03:00Z h app 1 probe - ").as_bytes());
        text::encode(
            Probe {
                emitter,
                seq,
                sent_ns: 100,
            },
            b"GET /x 200",
            &mut b,
        )
        .unwrap();
        Deliver {
            priority,
            queued_ns: 1,
            dispatch_ns: 2,
            payload: b.freeze(),
        }
    }

    #[test]
    fn text_probes_and_their_priority() {
        let mut t = Tracker::new();
        // <34>: facility 4, severity 2: priority 68.
        assert!(t.observe(&syslog(34, 68, 1, 0), 150).row.crc_ok);
        let wrong = t.observe(&syslog(34, 67, 1, 1), 150);
        assert!(!wrong.row.crc_ok && wrong.row.seq == Some(1));
        let mut bad = syslog(34, 68, 1, 2);
        let mut raw = bad.payload.to_vec();
        let n = raw.len();
        raw[n - 1] = b'Y';
        bad.payload = Bytes::from(raw);
        assert!(!t.observe(&bad, 150).row.crc_ok);
        let mut garbled = syslog(34, 68, 1, 3);
        garbled.payload = Bytes::from_static(b"<34>1 - - - - - LDT1:x:1");
        assert_eq!(t.observe(&garbled, 150).row.emitter, None);
        // A shipper's LF at the end is not covered.
        let mut lf = syslog(13, 161, 2, 0);
        let mut raw = lf.payload.to_vec();
        raw.push(b'\n');
        lf.payload = Bytes::from(raw);
        assert!(t.observe(&lf, 150).row.crc_ok);
        let c = t.counts();
        assert_eq!(
            (c.unique, c.corrupt, c.text_probes, c.pri_mismatch),
            (2, 3, 5, 1)
        );
        assert_eq!(t.ranges(), vec![(1, 0, 0), (2, 0, 0)]);
    }

    #[test]
    fn ranges_are_exact_and_merged() {
        let mut t = Tracker::new();
        for seq in (0..10).chain(12..13).chain(65_530..65_540).chain([1 << 40]) {
            t.observe(&deliver(0, 9, seq), 0);
        }
        t.observe(&deliver(0, 2, 0), 0);
        assert_eq!(
            t.ranges(),
            vec![
                (2, 0, 0),
                (9, 0, 9),
                (9, 12, 12),
                (9, 65_530, 65_539),
                (9, 1 << 40, 1 << 40)
            ]
        );
    }
}
