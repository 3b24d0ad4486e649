//! Synthetic run folders: a clean run of known shape, and the tampered variants the tests
//! use to show that every check can fail; per-second series of chosen means and noise for
//! the comparison's tests ([`write_series_run`]). Also the generator behind the 10-million-arrival
//! performance benchmark (`cargo run --release -p report --example synth`).
//!
//! The clean run: three emitters, analyzers `a1`/`a2`/`a3` with weights 5/3/2 receiving
//! messages in an exact 5/3/2 pattern, priorities 7..0 queued in groups of eight and
//! delivered most urgent first one millisecond apart (a backlog that priority reorders,
//! without inversion), distributor stats with the live set, nothing dropped.

use runfolder::rows::{Arrival, EmitterTotals, Scope, Sent, SeqRanges, SinkTotals, Stats};
use runfolder::{TableWriter, Traffic, names};
use std::path::Path;

/// What to break in a synthetic run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Nothing.
    None,
    /// Remove five arrivals of `a2`: unexplained loss.
    RemoveArrivals,
    /// Log three arrivals twice: duplicates without any failure.
    DuplicateRows,
    /// Mark one arrival's crc as bad.
    FlipCrc,
    /// Route 6/2/2 instead of 5/3/2.
    SkewShares,
    /// Route 6/2/2, the distributor's stats saying that `a2`'s extra tenth spilled to `a1`
    /// (its queue full under `--when-full spill`): the router's choices were 5/3/2.
    Spilled,
    /// Swap two deliveries of a group: a more urgent frame delivered second.
    Invert,
    /// Deliver FIFO, one priority, as soon as queued: no backlog.
    NoBacklog,
    /// Foreign traffic: payloads that are not probes, sinks told so, no loadgen files.
    Foreign,
    /// Foreign traffic of which the distributor delivered 5 frames fewer than it received
    /// and dropped none: a loss only its counters show.
    ForeignLost,
}

const BASE_NS: u64 = 1_800_000_000_000_000_000;
const MS: u64 = 1_000_000;

/// Writes a synthetic run of `messages` messages into `dir` (created if missing).
pub fn write_run(dir: &Path, messages: u64, tamper: Tamper) -> Result<(), runfolder::Error> {
    std::fs::create_dir_all(dir).map_err(|error| runfolder::Error::Io {
        path: dir.to_owned(),
        error,
    })?;
    let emitters = 3u64;
    let pattern: [usize; 10] = if matches!(tamper, Tamper::SkewShares | Tamper::Spilled) {
        [0, 1, 0, 2, 0, 1, 0, 0, 0, 2]
    } else {
        [0, 1, 0, 2, 0, 1, 0, 0, 1, 2]
    };
    let ids = ["a1", "a2", "a3"];
    let mut per: [Vec<(u32, u64)>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for k in 0..messages {
        per[pattern[(k % 10) as usize]].push(((k % emitters) as u32, k / emitters));
    }
    let mut last_second = BASE_NS / 1_000_000_000;
    for (i, list) in per.iter().enumerate() {
        let mut rows: Vec<Arrival> = Vec::with_capacity(list.len());
        for (n, (e, seq)) in list.iter().enumerate() {
            let (group, pos) = ((n / 8) as u64, (n % 8) as u64);
            let t = BASE_NS + group * 16 * MS;
            let (priority, queued_ns, dispatch_ns) = if tamper == Tamper::NoBacklog {
                let q = t + pos * 2 * MS;
                (0u8, q, q + 1000)
            } else {
                // Queued 7, 6, ..., 0 (one per ms); delivered 0, 1, ..., 7 from t + 8 ms.
                (pos as u8, t + (7 - pos) * MS, t + (8 + pos) * MS)
            };
            let foreign = matches!(tamper, Tamper::Foreign | Tamper::ForeignLost);
            rows.push(Arrival {
                arrival_ns: 0,
                emitter: (!foreign).then_some(*e),
                seq: (!foreign).then_some(*seq),
                priority,
                sent_ns: if foreign { 0 } else { queued_ns - 100_000 },
                queued_ns,
                dispatch_ns,
                size: 512,
                crc_ok: true,
                duplicate: false,
                session: 1,
            });
        }
        if tamper == Tamper::Invert && i == 0 && rows.len() > 2 {
            rows.swap(0, 1);
            let (a, b) = (rows[0].dispatch_ns, rows[1].dispatch_ns);
            rows[0].dispatch_ns = b;
            rows[1].dispatch_ns = a;
        }
        let mut out = TableWriter::<Arrival>::create(&names::ARRIVALS.path(dir, ids[i]))?;
        let mut extra = Vec::new();
        for (n, mut row) in rows.iter().cloned().enumerate() {
            if tamper == Tamper::RemoveArrivals && i == 1 && (100..105).contains(&n) {
                continue;
            }
            row.crc_ok = !(tamper == Tamper::FlipCrc && i == 2 && n == 7) && row.emitter.is_some();
            row.arrival_ns = row.dispatch_ns + 100_000;
            last_second = last_second.max(row.arrival_ns / 1_000_000_000);
            out.write(&row)?;
            if tamper == Tamper::DuplicateRows && i == 0 && n >= rows.len().saturating_sub(3) {
                extra.push(Arrival {
                    arrival_ns: row.arrival_ns + 1,
                    crc_ok: true,
                    ..row
                });
            }
        }
        for x in extra {
            out.write(&x)?;
        }
        out.flush()?;
    }
    let foreign = matches!(tamper, Tamper::Foreign | Tamper::ForeignLost);
    if foreign {
        for (i, id) in ids.iter().enumerate() {
            let mut totals = TableWriter::<SinkTotals>::create(&names::TOTALS.path(dir, id))?;
            totals.write(&SinkTotals {
                id: (*id).to_owned(),
                mode: runfolder::LogMode::Full,
                traffic: Traffic::Foreign,
                received: per[i].len() as u64,
                unique: 0,
                duplicates: 0,
                corrupt: 0,
                non_probe: per[i].len() as u64,
                inversions: 0,
                overtaken: 0,
                sessions: 1,
                first_arrival_ns: BASE_NS,
                last_arrival_ns: BASE_NS,
            })?;
            totals.flush()?;
        }
    }
    let delivered = if tamper == Tamper::ForeignLost {
        messages - 5
    } else {
        messages
    };
    let spilled = if tamper == Tamper::Spilled {
        messages / 10
    } else {
        0
    };
    write_stats(dir, messages, delivered, spilled, last_second)?;
    write_profile(dir)?;
    if foreign {
        return Ok(());
    }
    let mut manifest = TableWriter::<EmitterTotals>::create(&names::EMITTERS.path(dir, 0))?;
    let mut sent = TableWriter::<Sent>::create(&names::SENT.path(dir, 0))?;
    for e in 0..emitters {
        let n = messages / emitters + u64::from(e < messages % emitters);
        manifest.write(&emitter_totals(e as u32, n, BASE_NS))?;
        sent.write(&Sent {
            second: BASE_NS / 1_000_000_000,
            emitter: e as u32,
            priority: 0,
            sent: n,
        })?;
    }
    manifest.flush()?;
    sent.flush()?;
    Ok(())
}

/// An emitter of the loadgen's manifest that sent `sent` messages of 517 bytes from
/// `BASE_NS` to `last_sent_ns`, without trouble.
fn emitter_totals(emitter: u32, sent: u64, last_sent_ns: u64) -> EmitterTotals {
    EmitterTotals {
        emitter,
        sent,
        bytes: sent * 517,
        errors: 0,
        reconnects: 0,
        in_doubt: 0,
        in_doubt_ranges: SeqRanges::default(),
        unsent: 0,
        first_sent_ns: BASE_NS,
        last_sent_ns,
        max_lag_us: 0,
        secured: None,
    }
}

/// The distributor's stats: every second, the totals and three live analyzers (5/3/2);
/// `spilled` frames spilled from `a2` to `a1`, evenly over the run.
fn write_stats(
    dir: &Path,
    received: u64,
    delivered: u64,
    spilled: u64,
    last_second: u64,
) -> Result<(), runfolder::Error> {
    let ids = ["a1", "a2", "a3"];
    let mut stats = TableWriter::<Stats>::create(&names::STATS.path(dir, 1))?;
    let first = BASE_NS / 1_000_000_000;
    let rows = last_second - first + 1;
    for s in first..=last_second {
        let ts = s * 1_000_000_000 + 500 * MS;
        let spilled_so_far = spilled * (s - first + 1) / rows;
        stats.write(&Stats {
            received,
            delivered,
            emitter_connections_open: 3,
            queued: 5,
            live: 3,
            weight: 10.0,
            ..Stats::zeroed(ts, Scope::Total)
        })?;
        for (id, weight) in ids.iter().zip([5.0, 3.0, 2.0]) {
            stats.write(&Stats {
                live: 1,
                weight,
                spilled_in: if *id == "a1" { spilled_so_far } else { 0 },
                spilled_out: if *id == "a2" { spilled_so_far } else { 0 },
                ..Stats::zeroed(ts, Scope::Analyzer((*id).to_owned()))
            })?;
        }
    }
    stats.flush()
}

/// The profile copy: smooth routing, the default thresholds, a latency limit overall and
/// one on the urgent class.
fn write_profile(dir: &Path) -> Result<(), runfolder::Error> {
    let profile = dir.join(names::PROFILE);
    std::fs::write(
        &profile,
        "description = \"synthetic\"\nduration = 1\n[distributor]\nrouting = \"smooth\"\n[checks]\nweight_tolerance = 0.05\nbacklog_ms = 1.0\nlatency_p99_ms = 100.0\n[[checks.latency_class]]\npriorities = \"0-15\"\np99_ms = 50.0\n",
    )
    .map_err(|error| runfolder::Error::Io {
        path: profile,
        error,
    })
}

/// A synthetic run for comparisons: one emitter and one `summary` sink (`a1`) over
/// `seconds` whole seconds (plus a partial second at each end), every per-second figure
/// drawn around its mean with seeded normal noise.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRun {
    /// The profile name in `manifest.json`.
    pub profile: String,
    /// Whole seconds of load.
    pub seconds: u64,
    /// Mean delivered msg/s.
    pub rate: f64,
    /// Coefficient of variation of the per-second counts.
    pub rate_cv: f64,
    /// Mean per-second p50, p99 and p99.9, ms.
    pub latency_ms: [f64; 3],
    /// Coefficient of variation of the per-second latencies.
    pub latency_cv: f64,
    /// Mean distributor CPU µs per message (coefficient of variation 0.02).
    pub cpu_us_per_msg: f64,
    /// The distributor's RSS, MiB (constant).
    pub rss_mib: f64,
    /// Seqs never delivered (the last ones).
    pub lost: u64,
    /// Frames the distributor counted as dropped.
    pub dropped: u64,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for SeriesRun {
    fn default() -> Self {
        Self {
            profile: "synthetic".into(),
            seconds: 30,
            rate: 1000.0,
            rate_cv: 0.02,
            latency_ms: [0.5, 2.0, 4.0],
            latency_cv: 0.04,
            cpu_us_per_msg: 5.0,
            rss_mib: 20.0,
            lost: 0,
            dropped: 0,
            seed: 1,
        }
    }
}

/// Writes `spec` as a run folder into `dir` (created if missing).
pub fn write_series_run(dir: &Path, spec: &SeriesRun) -> Result<(), runfolder::Error> {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use runfolder::rows::{Resource, SeqRange, SummarySecond};
    std::fs::create_dir_all(dir).map_err(|error| runfolder::Error::Io {
        path: dir.to_owned(),
        error,
    })?;
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut normal = move || {
        let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    };
    let t0 = BASE_NS / 1_000_000_000;
    let last = t0 + spec.seconds + 1;
    let mut sent = TableWriter::<Sent>::create(&names::SENT.path(dir, 0))?;
    let mut summary = TableWriter::<SummarySecond>::create(&names::SUMMARY.path(dir, "a1"))?;
    let mut resources = TableWriter::<Resource>::create(&dir.join(names::RESOURCES))?;
    let mut stats = TableWriter::<Stats>::create(&names::STATS.path(dir, 1))?;
    let mut total = 0u64;
    for s in t0..=last {
        // The partial first and last seconds carry half a second's messages.
        let whole = s != t0 && s != last;
        let mean = if whole { spec.rate } else { spec.rate / 2.0 };
        let n = (mean * (1.0 + spec.rate_cv * normal())).round().max(1.0) as u64;
        total += n;
        sent.write(&Sent {
            second: s,
            emitter: 0,
            priority: 0,
            sent: n,
        })?;
        let f = (1.0 + spec.latency_cv * normal()).max(0.05);
        let us = |ms: f64| Some((ms * f * 1000.0).round() as u64);
        summary.write(&SummarySecond {
            second: s,
            priority: 0,
            count: n,
            duplicates: 0,
            corrupt: 0,
            non_probe: 0,
            inversions: 0,
            overtaken: 0,
            lat_p50_us: us(spec.latency_ms[0]),
            lat_p99_us: us(spec.latency_ms[1]),
            lat_p999_us: us(spec.latency_ms[2]),
            lat_max_us: us(spec.latency_ms[2] * 1.5),
            queue_wait_max_us: 0,
        })?;
        let cpu = spec.cpu_us_per_msg * (1.0 + 0.02 * normal());
        resources.write(&Resource {
            ts_ns: (s + 1) * 1_000_000_000,
            cpu_pct: cpu * n as f64 / 1e6 * 100.0,
            rss_bytes: (spec.rss_mib * f64::from(1 << 20)) as u64,
        })?;
        let ts = s * 1_000_000_000 + 500 * MS;
        stats.write(&Stats {
            received: total,
            delivered: total - spec.lost.min(total),
            dropped_queue_full: if s == last { spec.dropped } else { 0 },
            live: 1,
            weight: 1.0,
            ..Stats::zeroed(ts, Scope::Total)
        })?;
        stats.write(&Stats {
            live: 1,
            weight: 1.0,
            ..Stats::zeroed(ts, Scope::Analyzer("a1".into()))
        })?;
    }
    sent.flush()?;
    summary.flush()?;
    resources.flush()?;
    stats.flush()?;
    let mut seqs = TableWriter::<SeqRange>::create(&names::SEQS.path(dir, "a1"))?;
    if total > spec.lost {
        seqs.write(&SeqRange {
            emitter: 0,
            first: 0,
            last: total - spec.lost - 1,
        })?;
    }
    seqs.flush()?;
    let mut totals = TableWriter::<SinkTotals>::create(&names::TOTALS.path(dir, "a1"))?;
    totals.write(&SinkTotals {
        id: "a1".into(),
        mode: runfolder::LogMode::Summary,
        traffic: Traffic::Probes,
        received: total - spec.lost.min(total),
        unique: total - spec.lost.min(total),
        duplicates: 0,
        corrupt: 0,
        non_probe: 0,
        inversions: 0,
        overtaken: 0,
        sessions: 1,
        first_arrival_ns: BASE_NS,
        last_arrival_ns: last * 1_000_000_000,
    })?;
    totals.flush()?;
    let mut manifest = TableWriter::<EmitterTotals>::create(&names::EMITTERS.path(dir, 0))?;
    manifest.write(&emitter_totals(0, total, last * 1_000_000_000))?;
    manifest.flush()?;
    write_profile(dir)?;
    runfolder::table::write_json(
        &dir.join(names::MANIFEST),
        &runfolder::json::Manifest {
            profile: spec.profile.clone(),
            profile_file: format!("profiles/{}.toml", spec.profile),
            description: "synthetic series".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            git_commit: String::new(),
            host: "synth".into(),
            cores: 2,
            start_utc: runfolder::names::utc_stamp(t0),
            end_utc: runfolder::names::utc_stamp(last),
            duration_s: spec.seconds as f64 + 1.0,
            scale: 1.0,
            distributor_incarnations: 1,
            command_lines: Vec::new(),
        },
    )
}
