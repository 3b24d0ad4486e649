//! The two sides of a comparison, read into per-metric samples. A folder with a
//! `bench.json` is a bench folder; any other is a run folder (read as the report reads it).
//! Folders that do not compare are refused, naming the difference: a bench folder against a
//! run folder, runs of different profiles (or of different `profile.toml` copies), bench
//! scenarios of one name set up differently, benches of different run lengths.

use super::{Kind, Samples};
use crate::load::InputError;
use crate::model::{Overrides, Run};
use runfolder::json::{Bench, BenchRun};
use runfolder::{Better, Unit, names};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Folders that cannot be compared. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A run folder the report cannot read.
    #[error(transparent)]
    Run(#[from] InputError),
    /// A `bench.json` that cannot be read.
    #[error(transparent)]
    Bench(#[from] runfolder::Error),
    /// A bench folder on one side, a run folder on the other (or mixed on one side).
    #[error("{} is a bench folder (bench.json) but {} is a run folder: compare bench folders with bench folders, run folders with run folders", bench.display(), run.display())]
    Mixed {
        /// A bench folder.
        bench: PathBuf,
        /// A run folder.
        run: PathBuf,
    },
    /// Runs of different profiles.
    #[error("{} is a run of profile {a_profile:?} but {} of {b_profile:?}: compare runs of one profile", a.display(), b.display())]
    Profile {
        /// The first folder.
        a: PathBuf,
        /// Its profile.
        a_profile: String,
        /// The folder that differs.
        b: PathBuf,
        /// Its profile.
        b_profile: String,
    },
    /// Runs of one profile name whose profile copies differ.
    #[error("{}/profile.toml and {}/profile.toml differ at line {line}: {a_line:?} against {b_line:?}: compare runs of one profile", a.display(), b.display())]
    ProfileText {
        /// The first folder.
        a: PathBuf,
        /// The folder that differs.
        b: PathBuf,
        /// 1-based line.
        line: usize,
        /// The first folder's line.
        a_line: String,
        /// The other's.
        b_line: String,
    },
    /// A bench scenario set up differently in two folders.
    #[error("bench scenario {scenario:?} ran with {a_setup} in {} but with {b_setup} in {}", a.display(), b.display())]
    BenchSetup {
        /// `group/name`.
        scenario: String,
        /// The first folder.
        a: PathBuf,
        /// Its setup.
        a_setup: String,
        /// The folder that differs.
        b: PathBuf,
        /// Its setup.
        b_setup: String,
    },
    /// Benches of different run lengths.
    #[error("{} ran {a_s} s per run but {} ran {b_s} s: compare benches of one length (`harness bench --seconds`)", a.display(), b.display())]
    BenchSeconds {
        /// The first folder.
        a: PathBuf,
        /// Its seconds.
        a_s: f64,
        /// The folder that differs.
        b: PathBuf,
        /// Its seconds.
        b_s: f64,
    },
    /// Bench folders with no scenario in common.
    #[error("the base ran scenarios {base:?} and the candidate {candidate:?}: none in common")]
    NothingInCommon {
        /// The base's scenarios.
        base: Vec<String>,
        /// The candidate's.
        candidate: Vec<String>,
    },
    /// A run too short to leave a whole second after the warm-up.
    #[error("{}: {whole} whole seconds of load, none left after the {warmup} s warm-up (`--warmup`)", dir.display())]
    TooShort {
        /// The folder.
        dir: PathBuf,
        /// Whole seconds of load.
        whole: u64,
        /// The warm-up asked for.
        warmup: u64,
    },
}

/// Which kind of folders were compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderKind {
    /// Profile run folders.
    Run,
    /// `harness bench` folders.
    Bench,
}

impl FolderKind {
    /// `run` or `bench`.
    pub fn as_str(self) -> &'static str {
        match self {
            FolderKind::Run => "run",
            FolderKind::Bench => "bench",
        }
    }
}

/// Base or candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The reference.
    Base,
    /// The change under test.
    Candidate,
}

/// One run's per-second series, for the page's charts: x in seconds since the end of the
/// warm-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Which side.
    pub side: Side,
    /// The run folder's name.
    pub folder: String,
    /// Delivered msg/s.
    pub throughput: Vec<(f64, f64)>,
    /// p99 end to end, ms.
    pub p99_ms: Vec<(f64, f64)>,
}

/// Both sides, read.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Run or bench folders.
    pub kind: FolderKind,
    /// Every metric of every scenario with samples on both sides.
    pub samples: Vec<Samples>,
    /// The git commits recorded in the base folders.
    pub base_commits: Vec<String>,
    /// Those of the candidate folders.
    pub candidate_commits: Vec<String>,
    /// Per-second series of each run (run folders only).
    pub timelines: Vec<Timeline>,
    /// What was left out, for a person.
    pub notes: Vec<String>,
}

/// The metrics compared, in order: name, unit, which way is better, how it is judged.
const METRICS: [(&str, Unit, Better, Kind); 8] = [
    ("throughput", Unit::MsgPerS, Better::Higher, Kind::Mean),
    ("latency_p50", Unit::Ms, Better::Lower, Kind::Percentile),
    ("latency_p99", Unit::Ms, Better::Lower, Kind::Percentile),
    ("latency_p999", Unit::Ms, Better::Lower, Kind::Percentile),
    ("cpu_per_msg", Unit::UsPerMsg, Better::Lower, Kind::Mean),
    ("peak_rss", Unit::Mib, Better::Lower, Kind::Mean),
    ("lost", Unit::Messages, Better::Lower, Kind::Loss),
    ("dropped", Unit::Messages, Better::Lower, Kind::Drops),
];

/// One metric's samples, when both sides have some.
fn both_sides(
    scenario: &str,
    (metric, unit, better, kind): (&'static str, Unit, Better, Kind),
    base: Vec<f64>,
    candidate: Vec<f64>,
) -> Option<Samples> {
    (!base.is_empty() && !candidate.is_empty()).then(|| Samples {
        scenario: scenario.to_owned(),
        metric,
        unit,
        better,
        kind,
        base,
        candidate,
    })
}

/// A run's samples of `metric`: per second, or one per run.
fn run_values(r: &RunFigures, metric: &str) -> Vec<f64> {
    let values = |v: &[(f64, f64)]| v.iter().map(|p| p.1).collect();
    match metric {
        "throughput" => values(&r.throughput),
        "latency_p50" => values(&r.latency[0]),
        "latency_p99" => values(&r.latency[1]),
        "latency_p999" => values(&r.latency[2]),
        "cpu_per_msg" => r.cpu_us_per_msg.clone(),
        "peak_rss" => r.peak_rss_mib.into_iter().collect(),
        "lost" => vec![r.lost],
        "dropped" => vec![r.dropped],
        _ => Vec::new(),
    }
}

/// A bench run's figure for `metric` (a bench counts no drops).
fn bench_value(r: &BenchRun, metric: &str) -> Option<f64> {
    match metric {
        "throughput" => Some(r.delivered_per_s),
        "latency_p50" => Some(r.p50_ms),
        "latency_p99" => Some(r.p99_ms),
        "latency_p999" => Some(r.p999_ms),
        "cpu_per_msg" => Some(r.cpu_s_per_million),
        "peak_rss" => Some(r.peak_rss_mib),
        "lost" => Some(r.lost as f64),
        _ => None,
    }
}

fn is_bench(dir: &Path) -> bool {
    dir.join(names::BENCH).is_file()
}

/// Reads both sides.
pub fn load(base: &[PathBuf], candidate: &[PathBuf], warmup: u64) -> Result<Loaded, CompareError> {
    let all: Vec<&PathBuf> = base.iter().chain(candidate).collect();
    let bench = all.iter().find(|d| is_bench(d));
    let run = all.iter().find(|d| !is_bench(d));
    match (bench, run) {
        (Some(b), Some(r)) => Err(CompareError::Mixed {
            bench: (*b).clone(),
            run: (*r).clone(),
        }),
        (Some(_), None) => benches(base, candidate),
        _ => runs(base, candidate, warmup),
    }
}

/// What the comparison needs of one run folder.
#[derive(Debug, Clone)]
struct RunFigures {
    dir: PathBuf,
    profile: String,
    profile_text: Option<String>,
    commit: String,
    duration_s: Option<f64>,
    /// Delivered per whole second after the warm-up: (seconds since the warm-up's end, n).
    throughput: Vec<(f64, f64)>,
    /// p50, p99, p99.9 per second, ms.
    latency: [Vec<(f64, f64)>; 3],
    cpu_us_per_msg: Vec<f64>,
    peak_rss_mib: Option<f64>,
    lost: f64,
    dropped: f64,
}

fn run_figures(dir: &Path, warmup: u64) -> Result<RunFigures, CompareError> {
    let run = crate::load::run(dir, &Overrides::default())?;
    let first = run.sent_per_second.keys().next().copied().unwrap_or(0);
    let last = run.sent_per_second.keys().next_back().copied().unwrap_or(0);
    // The first and last second of the load are partial.
    let whole = last.saturating_sub(first).saturating_sub(1);
    let (lo, hi) = (first + 1 + warmup, last.saturating_sub(1));
    if lo > hi {
        return Err(CompareError::TooShort {
            dir: dir.to_owned(),
            whole,
            warmup,
        });
    }
    let arrivals = run.arrivals_per_second();
    let x = |s: u64| (s - lo) as f64;
    let throughput = (lo..=hi)
        .map(|s| (x(s), arrivals.get(&s).copied().unwrap_or(0) as f64))
        .collect();
    let per_second = run.latency_per_second();
    let ms = |v: u64| v as f64 / 1000.0;
    let lat = |f: fn(&crate::model::SecondLatency) -> Option<u64>| {
        per_second
            .range(lo..=hi)
            .filter_map(|(s, l)| Some((x(*s), ms(f(l)?))))
            .collect()
    };
    // A resources sample covers the second before its stamp.
    let cpu_us_per_msg = run
        .resources
        .iter()
        .filter_map(|r| {
            let s = r.ts_ns.saturating_sub(500_000_000) / 1_000_000_000;
            let n = *arrivals.get(&s)?;
            ((lo..=hi).contains(&s) && n > 0).then(|| r.cpu_pct / 100.0 * 1e6 / n as f64)
        })
        .collect();
    let peak_rss_mib = run
        .resources
        .iter()
        .map(|r| r.rss_bytes)
        .max()
        .map(|b| b as f64 / f64::from(1 << 20));
    let accounting = crate::checks::accounting::check(&run);
    let lost = accounting
        .rows
        .first()
        .and_then(|r| r.value_num)
        .unwrap_or(0.0);
    Ok(RunFigures {
        dir: dir.to_owned(),
        profile: profile_name(&run),
        profile_text: std::fs::read_to_string(dir.join(names::PROFILE)).ok(),
        commit: run
            .manifest
            .as_ref()
            .map(|m| m.git_commit.clone())
            .unwrap_or_default(),
        duration_s: run.manifest.as_ref().map(|m| m.duration_s),
        throughput,
        latency: [lat(|l| Some(l.p50)), lat(|l| Some(l.p99)), lat(|l| l.p999)],
        cpu_us_per_msg,
        peak_rss_mib,
        lost,
        dropped: run.distributor.dropped_total() as f64,
    })
}

fn profile_name(run: &Run) -> String {
    match (&run.manifest, &run.profile) {
        (Some(m), _) => m.profile.clone(),
        (None, Some(p)) => p.description.clone(),
        (None, None) => "(no profile)".to_owned(),
    }
}

/// Refuses runs of different profiles, naming the first difference.
fn same_profile(runs: &[RunFigures]) -> Result<(), CompareError> {
    let Some(first) = runs.first() else {
        return Ok(());
    };
    for r in &runs[1..] {
        if r.profile != first.profile {
            return Err(CompareError::Profile {
                a: first.dir.clone(),
                a_profile: first.profile.clone(),
                b: r.dir.clone(),
                b_profile: r.profile.clone(),
            });
        }
        if let (Some(a), Some(b)) = (&first.profile_text, &r.profile_text) {
            let (mut la, mut lb) = (a.lines(), b.lines());
            for line in 1.. {
                match (la.next(), lb.next()) {
                    (None, None) => break,
                    (x, y) if x == y => continue,
                    (x, y) => {
                        return Err(CompareError::ProfileText {
                            a: first.dir.clone(),
                            b: r.dir.clone(),
                            line,
                            a_line: x.unwrap_or("(end of file)").to_owned(),
                            b_line: y.unwrap_or("(end of file)").to_owned(),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

fn runs(base: &[PathBuf], candidate: &[PathBuf], warmup: u64) -> Result<Loaded, CompareError> {
    let read = |dirs: &[PathBuf]| -> Result<Vec<RunFigures>, CompareError> {
        dirs.iter().map(|d| run_figures(d, warmup)).collect()
    };
    let (b, c) = (read(base)?, read(candidate)?);
    let all: Vec<RunFigures> = b.iter().chain(&c).cloned().collect();
    same_profile(&all)?;
    let mut notes = Vec::new();
    let durations: Vec<String> = all
        .iter()
        .filter_map(|r| r.duration_s.map(|d| format!("{d:.0}")))
        .collect();
    if durations.windows(2).any(|w| w[0] != w[1]) {
        notes.push(format!(
            "the runs lasted {} s: per-second samples compare, counts per run (losses, drops) less so",
            durations.join(", ")
        ));
    }
    let scenario = b.first().map_or_else(String::new, |r| r.profile.clone());
    let mut samples = Vec::new();
    for def in METRICS {
        let pool = |runs: &[RunFigures]| -> Vec<f64> {
            runs.iter().flat_map(|r| run_values(r, def.0)).collect()
        };
        let (bs, cs) = (pool(&b), pool(&c));
        let side = if bs.is_empty() { "base" } else { "candidate" };
        match both_sides(&scenario, def, bs, cs) {
            Some(s) => samples.push(s),
            None => notes.push(format!("{}: no samples in the {side}; left out", def.0)),
        }
    }
    let name = |d: &Path| {
        d.file_name().map_or_else(
            || d.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    let timelines = b
        .iter()
        .map(|r| (Side::Base, r))
        .chain(c.iter().map(|r| (Side::Candidate, r)))
        .map(|(side, r)| Timeline {
            side,
            folder: name(&r.dir),
            throughput: r.throughput.clone(),
            p99_ms: r.latency[1].clone(),
        })
        .collect();
    Ok(Loaded {
        kind: FolderKind::Run,
        samples,
        base_commits: b.iter().map(|r| r.commit.clone()).collect(),
        candidate_commits: c.iter().map(|r| r.commit.clone()).collect(),
        timelines,
        notes,
    })
}

/// One side's bench scenarios: `group/name` -> (setup, runs), in the suite's order.
type Pooled = Vec<(String, String, Vec<BenchRun>)>;

fn benches(base: &[PathBuf], candidate: &[PathBuf]) -> Result<Loaded, CompareError> {
    let mut first_seconds: Option<(PathBuf, f64)> = None;
    let mut setups: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
    let mut slowed = Vec::new();
    let mut read = |dirs: &[PathBuf]| -> Result<(Pooled, Vec<String>), CompareError> {
        let mut pooled: Pooled = Vec::new();
        let mut commits = Vec::new();
        for dir in dirs {
            let bench: Bench = runfolder::table::read_json(&dir.join(names::BENCH))?;
            match &first_seconds {
                Some((a, s)) if *s != bench.seconds => {
                    return Err(CompareError::BenchSeconds {
                        a: a.clone(),
                        a_s: *s,
                        b: dir.clone(),
                        b_s: bench.seconds,
                    });
                }
                Some(_) => {}
                None => first_seconds = Some((dir.clone(), bench.seconds)),
            }
            commits.push(bench.git_commit.clone());
            if let Some(d) = bench.sink_delay_us {
                slowed.push(format!(
                    "{}: its sinks were slowed on purpose by {d} µs per message (`--sink-delay-us`)",
                    dir.display()
                ));
            }
            for s in bench.scenarios {
                let key = format!("{}/{}", s.group, s.name);
                let setup = format!(
                    "{} emitters at {} msg/s each, {} analyzers",
                    s.emitters, s.rate, s.analyzers
                );
                match setups.get(&key) {
                    Some((a, a_setup)) if *a_setup != setup => {
                        return Err(CompareError::BenchSetup {
                            scenario: key,
                            a: a.clone(),
                            a_setup: a_setup.clone(),
                            b: dir.clone(),
                            b_setup: setup,
                        });
                    }
                    Some(_) => {}
                    None => {
                        setups.insert(key.clone(), (dir.clone(), setup.clone()));
                    }
                }
                match pooled.iter_mut().find(|p| p.0 == key) {
                    Some(p) => p.2.extend(s.runs),
                    None => pooled.push((key, setup, s.runs)),
                }
            }
        }
        Ok((pooled, commits))
    };
    let (b, base_commits) = read(base)?;
    let (c, candidate_commits) = read(candidate)?;
    let mut notes = slowed;
    let mut samples = Vec::new();
    for (key, _, base_runs) in &b {
        let Some((_, _, cand_runs)) = c.iter().find(|p| &p.0 == key) else {
            notes.push(format!("{key}: only in the base; left out"));
            continue;
        };
        for def in METRICS {
            let values = |runs: &[BenchRun]| -> Vec<f64> {
                runs.iter().filter_map(|r| bench_value(r, def.0)).collect()
            };
            // A bench counts no drops: that metric is absent on both sides.
            samples.extend(both_sides(key, def, values(base_runs), values(cand_runs)));
        }
    }
    for (key, _, _) in &c {
        if !b.iter().any(|p| &p.0 == key) {
            notes.push(format!("{key}: only in the candidate; left out"));
        }
    }
    if samples.is_empty() {
        return Err(CompareError::NothingInCommon {
            base: b.into_iter().map(|p| p.0).collect(),
            candidate: c.into_iter().map(|p| p.0).collect(),
        });
    }
    Ok(Loaded {
        kind: FolderKind::Bench,
        samples,
        base_commits,
        candidate_commits,
        timelines: Vec::new(),
        notes,
    })
}
