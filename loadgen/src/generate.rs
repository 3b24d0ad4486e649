//! What each emitter sends, as pure seeded generators: same seed, same bytes.
//!
//! - [`PriorityGen`]: the four priority modes.
//! - [`SizeGen`]: log-normal payload sizes around a mean, clamped to `[min, max]`.
//! - [`EmitterGen`]: whole LOG frames carrying probes (PROTOCOL.md §4), with random or
//!   log-like ([`crate::text`]) filler; or syslog messages (§8) ending in text probes.
//!
//! # Syslog messages (`--format syslog`)
//!
//! Each message is an RFC 5424 line, `<PRI>1 TIMESTAMP loadgen loadgen <emitter> probe -
//! LDT1:<emitter>:<seq>:<sent_ns>:<crc> <filler>`, framed by octet counting
//! (`MSG-LEN SP MSG`) or a LF. The priority mode draws a priority `p`; the PRI is the one
//! that maps back to it (severity `p / 32`, facility `p % 32`, at most 23), and the
//! priority recorded is what the distributor will give it: `p` itself, except that levels
//! 24-31 of each band of 32 (which no PRI reaches) become level 23 of their band. The size
//! drawn is the whole SYSLOG-MSG's; a size below its fixed part (header and probe fields,
//! about 100 bytes) is raised to it plus one byte of filler.
//!
//! # The `weighted` priority distribution
//!
//! Over a range `A-B` of `n` levels, level `A + k` has weight
//! - `0.60 / 4` for `k` in `0..4` (60% of traffic on the four most urgent levels),
//! - `0.30 / 28` for `k` in `4..32` (30% on the next 28),
//! - `0.10 / (n - 32)` for `k` in `32..n` (a 10% tail over the rest);
//!
//! tiers that the range does not reach are left out and the weights renormalised (so
//! `0-255` gives exactly 60/30/10, and `0-3` is uniform).

use crate::text::TextGen;
use bytes::{BufMut, BytesMut};
use protocol::probe::{self, Probe};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use runfolder::{Payload, SyslogFraming};

/// How an emitter chooses each message's priority (shared with profiles and files).
pub use runfolder::PriorityMode;

/// An inclusive range of priority levels, written `A-B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityRange {
    /// Most urgent level of the range.
    pub lo: u8,
    /// Least urgent level of the range.
    pub hi: u8,
}

impl PriorityRange {
    /// Every level, `0-255`.
    pub const ALL: PriorityRange = PriorityRange { lo: 0, hi: 255 };
}

impl std::str::FromStr for PriorityRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not A-B (e.g. 0-255)"))?;
        let level = |x: &str| {
            x.trim()
                .parse::<u8>()
                .map_err(|_| format!("{x:?} in {s:?} is not a priority 0..=255"))
        };
        let (lo, hi) = (level(a)?, level(b)?);
        if lo > hi {
            return Err(format!("{s:?}: the first level must not exceed the second"));
        }
        Ok(Self { lo, hi })
    }
}

impl serde::Serialize for PriorityRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PriorityRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for PriorityRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

/// The per-level weights of the `weighted` mode over `n` levels (see the module docs).
pub fn weighted_levels(n: usize) -> Vec<f64> {
    let tier = |k: usize| -> (f64, usize) {
        match k {
            0..4 => (0.60, 4),
            4..32 => (0.30, 28),
            _ => (0.10, n.saturating_sub(32)),
        }
    };
    let raw: Vec<f64> = (0..n)
        .map(|k| {
            let (share, size) = tier(k);
            share / size as f64
        })
        .collect();
    let total: f64 = raw.iter().sum();
    raw.iter().map(|w| w / total).collect()
}

/// Draws priorities in one mode.
#[derive(Debug, Clone)]
pub enum PriorityGen {
    /// One fixed level.
    Single(u8),
    /// Uniform over the range.
    Random(PriorityRange),
    /// Cumulative weights of the range's levels.
    Weighted {
        /// The range.
        range: PriorityRange,
        /// Cumulative distribution, last entry 1.0.
        cdf: Vec<f64>,
    },
    /// Round robin; the next level to send.
    Cyclic {
        /// The range.
        range: PriorityRange,
        /// The next level.
        next: u8,
    },
}

impl PriorityGen {
    /// A generator for `mode`; `single` is used by `Single`, `range` by the others.
    pub fn new(mode: PriorityMode, single: u8, range: PriorityRange) -> Self {
        match mode {
            PriorityMode::Single => Self::Single(single),
            PriorityMode::Random => Self::Random(range),
            PriorityMode::Cyclic => Self::Cyclic {
                range,
                next: range.lo,
            },
            PriorityMode::Weighted => {
                let n = usize::from(range.hi - range.lo) + 1;
                let mut acc = 0.0;
                let cdf = weighted_levels(n)
                    .into_iter()
                    .map(|w| {
                        acc += w;
                        acc
                    })
                    .collect();
                Self::Weighted { range, cdf }
            }
        }
    }

    /// The next priority.
    pub fn next(&mut self, rng: &mut SmallRng) -> u8 {
        match self {
            Self::Single(p) => *p,
            Self::Random(r) => rng.random_range(r.lo..=r.hi),
            Self::Weighted { range, cdf } => {
                let u: f64 = rng.random();
                let k = cdf.partition_point(|c| *c <= u).min(cdf.len() - 1);
                range.lo + k as u8
            }
            Self::Cyclic { range, next } => {
                let p = *next;
                *next = if p >= range.hi { range.lo } else { p + 1 };
                p
            }
        }
    }
}

/// Log-normal payload sizes with a given mean, clamped.
#[derive(Debug, Clone)]
pub struct SizeGen {
    dist: LogNormal<f64>,
    min: usize,
    max: usize,
}

/// Sizes that cannot be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SizeError {
    /// Bounds out of order or below the probe minimum.
    #[error("size bounds {min}..={max}: need {min_probe} <= min <= max", min_probe = probe::MIN_LEN)]
    Bounds {
        /// Lower bound.
        min: usize,
        /// Upper bound.
        max: usize,
    },
    /// Mean or sigma unusable.
    #[error("size mean {mean} and sigma {sigma}: need mean > 0 and sigma >= 0, both finite")]
    Shape {
        /// Mean.
        mean: f64,
        /// Sigma.
        sigma: f64,
    },
}

impl SizeGen {
    /// Sizes (whole probe payload, bytes) log-normal with arithmetic mean `mean` and shape
    /// `sigma`, clamped to `[min, max]`.
    pub fn new(mean: f64, sigma: f64, min: usize, max: usize) -> Result<Self, SizeError> {
        if min < probe::MIN_LEN || min > max {
            return Err(SizeError::Bounds { min, max });
        }
        if !(mean.is_finite() && mean > 0.0 && sigma.is_finite() && sigma >= 0.0) {
            return Err(SizeError::Shape { mean, sigma });
        }
        // E[X] = exp(mu + sigma^2 / 2) for a log-normal X.
        let mu = mean.ln() - sigma * sigma / 2.0;
        let dist = LogNormal::new(mu, sigma).map_err(|_| SizeError::Shape { mean, sigma })?;
        Ok(Self { dist, min, max })
    }

    /// The next size.
    pub fn next(&self, rng: &mut SmallRng) -> usize {
        let x = self.dist.sample(rng).round();
        (x as usize).clamp(self.min, self.max)
    }

    /// The largest size.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// Builds one emitter's LOG frames (or syslog messages).
#[derive(Debug, Clone)]
pub struct EmitterGen {
    emitter: u32,
    priority: PriorityGen,
    size: SizeGen,
    filler: Vec<u8>,
    rng: SmallRng,
    content: Content,
    /// Scratch for text filler.
    text: Vec<u8>,
}

/// What an emitter's messages are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// LOG frames with binary probes; text filler or random.
    Log {
        /// Filler that reads like logs.
        text: bool,
    },
    /// Syslog messages ending in text probes.
    Syslog(SyslogFraming),
}

impl EmitterGen {
    /// The generator of emitter `emitter` in a run seeded with `seed`: LOG frames with
    /// random filler.
    pub fn new(seed: u64, emitter: u32, priority: PriorityGen, size: SizeGen) -> Self {
        let mut rng =
            SmallRng::seed_from_u64(seed ^ u64::from(emitter).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        // Random filler, sliced at a seq-dependent offset so payloads differ.
        let filler = (0..size.max() + 256).map(|_| rng.random::<u8>()).collect();
        Self {
            emitter,
            priority,
            size,
            filler,
            rng,
            content: Content::Log { text: false },
            text: Vec::new(),
        }
    }

    /// LOG frames whose filler is `payload`.
    pub fn with_payload(mut self, payload: Payload) -> Self {
        self.content = Content::Log {
            text: payload == Payload::Text,
        };
        self
    }

    /// Syslog messages framed by `framing` instead of LOG frames.
    pub fn syslog(mut self, framing: SyslogFraming) -> Self {
        self.content = Content::Syslog(framing);
        self
    }

    /// Appends the LOG frame (or framed syslog message) of message `seq`, stamped
    /// `sent_ns`, to `out`; returns the priority the distributor gives it and its length
    /// on the wire.
    pub fn frame(&mut self, seq: u64, sent_ns: u64, out: &mut BytesMut) -> (u8, usize) {
        let priority = self.priority.next(&mut self.rng);
        let size = self.size.next(&mut self.rng);
        let probe = Probe {
            emitter: self.emitter,
            seq,
            sent_ns,
        };
        match self.content {
            Content::Log { text } => self.log_frame(priority, size, probe, text, out),
            Content::Syslog(framing) => self.syslog_frame(priority, size, probe, framing, out),
        }
    }

    fn log_frame(
        &mut self,
        priority: u8,
        size: usize,
        probe: Probe,
        text: bool,
        out: &mut BytesMut,
    ) -> (u8, usize) {
        let filler_len = size - probe::MIN_LEN;
        let frame_len = protocol::log::HEADER_LEN + size;
        out.reserve(frame_len);
        out.put_u32(frame_len as u32);
        out.put_u8(priority);
        if text {
            self.text.clear();
            TextGen.fill(&mut self.rng, probe.sent_ns, filler_len, &mut self.text);
            probe::encode(priority, probe, &self.text, out);
        } else {
            let offset = (probe.seq % 256) as usize;
            probe::encode(
                priority,
                probe,
                &self.filler[offset..offset + filler_len],
                out,
            );
        }
        (priority, frame_len)
    }

    fn syslog_frame(
        &mut self,
        drawn: u8,
        size: usize,
        probe: Probe,
        framing: SyslogFraming,
        out: &mut BytesMut,
    ) -> (u8, usize) {
        let pri = protocol::syslog::pri_for_priority(drawn);
        let mut header = format!("<{pri}>1 ");
        let mut stamp = String::with_capacity(24);
        crate::text::timestamp(probe.sent_ns, false, &mut stamp);
        header.push_str(&stamp);
        header.push_str(&format!(" loadgen loadgen {} probe - ", probe.emitter));
        let fixed = header.len() + probe::text::overhead(probe);
        let filler_len = size.saturating_sub(fixed).max(1);
        self.text.clear();
        crate::text::TextGen.fill(&mut self.rng, probe.sent_ns, filler_len, &mut self.text);
        let msg_len = fixed + filler_len;
        let start = out.len();
        if framing == SyslogFraming::Octet {
            out.put_slice(format!("{msg_len} ").as_bytes());
        }
        out.put_slice(header.as_bytes());
        // The filler meets the rules by construction (printable, no trailing space, no
        // LDT1); a failure here would be a bug of the generator, caught by its tests.
        let _ = probe::text::encode(probe, &self.text, out);
        if framing == SyslogFraming::Lf {
            out.put_u8(b'\n');
        }
        (protocol::syslog::priority_of_pri(pri), out.len() - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::log::{DEFAULT_MAX_FRAME, LogDecoder};

    fn range(s: &str) -> PriorityRange {
        s.parse().unwrap()
    }

    fn gen_bytes(seed: u64, mode: PriorityMode) -> BytesMut {
        let size = SizeGen::new(512.0, 0.5, 64, 8192).unwrap();
        let mut g = EmitterGen::new(seed, 3, PriorityGen::new(mode, 0, range("0-255")), size);
        let mut out = BytesMut::new();
        for seq in 0..500 {
            g.frame(seq, 1_000 + seq, &mut out);
        }
        out
    }

    #[test]
    fn same_seed_same_bytes() {
        for mode in [
            PriorityMode::Single,
            PriorityMode::Random,
            PriorityMode::Weighted,
            PriorityMode::Cyclic,
        ] {
            assert_eq!(gen_bytes(11, mode), gen_bytes(11, mode), "{mode:?}");
            assert_ne!(gen_bytes(11, mode), gen_bytes(12, mode), "{mode:?}");
        }
    }

    #[test]
    fn frames_are_valid_probes() {
        let mut wire = gen_bytes(1, PriorityMode::Random);
        let mut d = LogDecoder::new(DEFAULT_MAX_FRAME);
        let mut seq = 0;
        while let Some(f) = d.decode(&mut wire).unwrap() {
            let p = probe::verify(f.priority, &f.payload).unwrap();
            assert_eq!((p.emitter, p.seq, p.sent_ns), (3, seq, 1_000 + seq));
            assert!((64..=8192).contains(&f.payload.len()));
            seq += 1;
        }
        assert_eq!(seq, 500);
    }

    #[test]
    fn sizes_have_the_requested_mean() {
        let g = SizeGen::new(512.0, 0.5, 28, 1 << 20).unwrap();
        let mut rng = SmallRng::seed_from_u64(5);
        let n = 200_000;
        let mean = (0..n).map(|_| g.next(&mut rng) as f64).sum::<f64>() / n as f64;
        assert!((mean - 512.0).abs() < 5.0, "{mean}");
        let clamped = SizeGen::new(512.0, 2.0, 100, 200).unwrap();
        assert!((0..1000).all(|_| (100..=200).contains(&clamped.next(&mut rng))));
        assert!(SizeGen::new(512.0, 0.5, 10, 100).is_err());
        assert!(SizeGen::new(0.0, 0.5, 64, 100).is_err());
    }

    #[test]
    fn priority_modes() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut single = PriorityGen::new(PriorityMode::Single, 7, range("0-255"));
        assert!((0..100).all(|_| single.next(&mut rng) == 7));
        let mut cyclic = PriorityGen::new(PriorityMode::Cyclic, 0, range("3-5"));
        let seq: Vec<u8> = (0..7).map(|_| cyclic.next(&mut rng)).collect();
        assert_eq!(seq, [3, 4, 5, 3, 4, 5, 3]);
        let mut random = PriorityGen::new(PriorityMode::Random, 0, range("10-12"));
        let mut seen = [0u32; 256];
        for _ in 0..30_000 {
            seen[random.next(&mut rng) as usize] += 1;
        }
        assert_eq!(seen.iter().filter(|c| **c > 0).count(), 3);
        assert!(seen[10..=12].iter().all(|c| (9_000..11_000).contains(c)));
    }

    #[test]
    fn weighted_is_60_30_10_over_the_full_range() {
        let w = weighted_levels(256);
        let sum = |r: std::ops::Range<usize>| w[r].iter().sum::<f64>();
        assert!((sum(0..4) - 0.6).abs() < 1e-9);
        assert!((sum(4..32) - 0.3).abs() < 1e-9);
        assert!((sum(32..256) - 0.1).abs() < 1e-9);
        let small = weighted_levels(4);
        assert!(small.iter().all(|x| (x - 0.25).abs() < 1e-9));
        let mut rng = SmallRng::seed_from_u64(3);
        let mut g = PriorityGen::new(PriorityMode::Weighted, 0, range("0-255"));
        let n = 100_000;
        let urgent = (0..n).filter(|_| g.next(&mut rng) < 4).count() as f64 / n as f64;
        assert!((urgent - 0.6).abs() < 0.01, "{urgent}");
    }

    #[test]
    fn text_payloads_are_probes_with_log_lines() {
        let size = SizeGen::new(512.0, 0.5, 64, 8192).unwrap();
        let make = || {
            EmitterGen::new(
                5,
                2,
                PriorityGen::new(PriorityMode::Random, 0, range("0-255")),
                size.clone(),
            )
            .with_payload(Payload::Text)
        };
        let (mut a, mut b) = (make(), make());
        let (mut wa, mut wb) = (BytesMut::new(), BytesMut::new());
        for seq in 0..300 {
            a.frame(seq, 1_764_655_380_000_000_000 + seq, &mut wa);
            b.frame(seq, 1_764_655_380_000_000_000 + seq, &mut wb);
        }
        assert_eq!(wa, wb, "same seed, same bytes");
        let mut d = LogDecoder::new(DEFAULT_MAX_FRAME);
        let mut n = 0;
        while let Some(f) = d.decode(&mut wa).unwrap() {
            let p = probe::verify(f.priority, &f.payload).unwrap();
            assert_eq!(p.seq, n);
            let filler = &f.payload[24..f.payload.len() - 4];
            probe::text::check_filler(filler).unwrap();
            n += 1;
        }
        assert_eq!(n, 300);
    }

    #[test]
    fn syslog_messages_carry_text_probes_and_their_pri() {
        use protocol::syslog::{SyslogDecoder, priority_of};
        for framing in [SyslogFraming::Octet, SyslogFraming::Lf] {
            let size = SizeGen::new(300.0, 0.5, 28, 8192).unwrap();
            let mut g = EmitterGen::new(
                1,
                4,
                PriorityGen::new(PriorityMode::Random, 0, range("0-255")),
                size,
            )
            .syslog(framing);
            let mut wire = BytesMut::new();
            let mut recorded = Vec::new();
            for seq in 0..400 {
                let before = wire.len();
                let (p, len) = g.frame(seq, 1_764_655_380_000_000_000, &mut wire);
                assert_eq!(len, wire.len() - before);
                recorded.push(p);
            }
            let mut d = SyslogDecoder::new(1 << 20);
            let mut seq = 0;
            while let Some(m) = d.decode(&mut wire).unwrap() {
                let p = probe::text::verify(&m.payload).unwrap();
                assert_eq!((p.emitter, p.seq), (4, seq));
                assert_eq!(m.priority, recorded[seq as usize]);
                assert_eq!(priority_of(&m.payload), m.priority);
                assert!(m.payload.starts_with(b"<"));
                assert!(
                    std::str::from_utf8(&m.payload)
                        .unwrap()
                        .contains(" 2025-12-02T06:03:00.000Z loadgen loadgen 4 probe - LDT1:4:")
                );
                seq += 1;
            }
            assert_eq!(seq, 400);
            assert!(wire.is_empty());
            // Levels 24-31 of a band are recorded as 23 of it.
            assert!(recorded.iter().all(|p| p % 32 <= 23));
        }
    }

    #[test]
    fn range_parsing() {
        assert_eq!(range("0-255"), PriorityRange { lo: 0, hi: 255 });
        assert!("5-4".parse::<PriorityRange>().is_err());
        assert!("0-256".parse::<PriorityRange>().is_err());
        assert!("7".parse::<PriorityRange>().is_err());
    }
}
