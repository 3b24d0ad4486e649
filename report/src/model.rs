//! What the report knows about a run, independent of how each component logged it: the
//! loaders in [`crate::load`] fill it from `full` or `summary` sink files alike, and the
//! checks read only this.

use hdrhistogram::Histogram;
use std::collections::{BTreeMap, BTreeSet};

/// What the restricted emitters sent, by whether the access file allows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restricted {
    /// At allowed priorities.
    pub allowed: u64,
    /// At other priorities: each must be dropped and counted `forbidden`.
    pub forbidden: u64,
}

/// One emitter of the loadgen manifest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Emitter {
    /// Emitter id.
    pub id: u32,
    /// Messages written: seqs `0..sent`.
    pub sent: u64,
    /// Seq ranges `[a, b)` whose write failed: they may or may not have arrived.
    pub in_doubt: Vec<(u64, u64)>,
    /// With acknowledged emitters: seqs `0..secured` were secured by the distributor, so
    /// none of them can be in doubt.
    pub secured: Option<u64>,
    /// Messages that came due while disconnected and were never sent.
    pub unsent: u64,
}

/// The (emitter, seq) pairs seen over all analyzers, one bit each, sized by the manifest.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    bits: BTreeMap<u32, Vec<u64>>,
    /// Arrivals of a pair already seen (on any analyzer).
    pub duplicates: u64,
    /// Good probes naming an emitter or a seq the manifest does not have.
    pub foreign: u64,
}

impl Seen {
    /// Room for every seq of every emitter in the manifest.
    pub fn new(emitters: &[Emitter]) -> Self {
        let bits = emitters
            .iter()
            .map(|e| (e.id, vec![0u64; e.sent.div_ceil(64) as usize]))
            .collect();
        Self {
            bits,
            duplicates: 0,
            foreign: 0,
        }
    }

    /// Marks `count` arrivals of (emitter, seq).
    pub fn mark(&mut self, emitter: u32, seq: u64, count: u64) {
        let Some(words) = self.bits.get_mut(&emitter) else {
            self.foreign += count;
            return;
        };
        let (w, mask) = ((seq / 64) as usize, 1u64 << (seq % 64));
        let Some(word) = words.get_mut(w) else {
            self.foreign += count;
            return;
        };
        if *word & mask != 0 {
            self.duplicates += count;
        } else {
            *word |= mask;
            self.duplicates += count - 1;
        }
    }

    /// Marks every seq of the inclusive range once.
    pub fn mark_range(&mut self, emitter: u32, first: u64, last: u64) {
        for seq in first..=last {
            self.mark(emitter, seq, 1);
        }
    }

    /// Whether (emitter, seq) was seen.
    pub fn has(&self, emitter: u32, seq: u64) -> bool {
        self.bits
            .get(&emitter)
            .and_then(|w| w.get((seq / 64) as usize))
            .is_some_and(|word| word & (1 << (seq % 64)) != 0)
    }

    /// Distinct pairs seen for `emitter`.
    pub fn unique(&self, emitter: u32) -> u64 {
        self.bits
            .get(&emitter)
            .map_or(0, |w| w.iter().map(|x| u64::from(x.count_ones())).sum())
    }
}

/// What one analyzer received.
#[derive(Debug, Clone)]
pub struct Analyzer {
    /// Analyzer id.
    pub id: String,
    /// `full` or `summary`.
    pub mode: runfolder::LogMode,
    /// Every DELIVER frame.
    pub received: u64,
    /// Probes whose crc did not match.
    pub corrupt: u64,
    /// Frames that were not probes.
    pub non_probe: u64,
    /// Arrivals per Unix second.
    pub per_second: BTreeMap<u64, u64>,
    /// Priority inversions on its connections.
    pub inversions: u64,
    /// Frames overtaken by more urgent ones (evidence that priority reordered a backlog).
    pub overtaken: u64,
    /// The first inversions, described.
    pub inversion_examples: Vec<String>,
    /// Seconds in which some frame waited in the queue at least the backlog threshold.
    pub backlog_seconds: BTreeSet<u64>,
    /// Largest queue wait seen, µs.
    pub queue_wait_max_us: u64,
    /// End-to-end latency (µs) per priority.
    pub latency: BTreeMap<u8, Histogram<u64>>,
    /// The same, only arrivals in backlog seconds.
    pub latency_backlog: BTreeMap<u8, Histogram<u64>>,
    /// Latency percentiles per second.
    pub latency_per_second: BTreeMap<u64, SecondLatency>,
}

/// End-to-end latency percentiles of one second, µs. A `summary` sink writes them per
/// priority; over priorities the report keeps the largest of each (an upper bound).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondLatency {
    /// p50.
    pub p50: u64,
    /// p99.
    pub p99: u64,
    /// p99.9 (absent in files written before sinks recorded it).
    pub p999: Option<u64>,
    /// Largest.
    pub max: u64,
}

impl SecondLatency {
    /// The largest of each percentile of two.
    pub fn max_with(self, o: SecondLatency) -> SecondLatency {
        SecondLatency {
            p50: self.p50.max(o.p50),
            p99: self.p99.max(o.p99),
            p999: self.p999.max(o.p999),
            max: self.max.max(o.max),
        }
    }
}

impl Analyzer {
    /// An analyzer with nothing received yet.
    pub fn new(id: &str, mode: runfolder::LogMode) -> Self {
        Self {
            id: id.to_owned(),
            mode,
            received: 0,
            corrupt: 0,
            non_probe: 0,
            per_second: BTreeMap::new(),
            inversions: 0,
            overtaken: 0,
            inversion_examples: Vec::new(),
            backlog_seconds: BTreeSet::new(),
            queue_wait_max_us: 0,
            latency: BTreeMap::new(),
            latency_backlog: BTreeMap::new(),
            latency_per_second: BTreeMap::new(),
        }
    }
}

/// One second of one analyzer in the distributor's stats.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSample {
    /// Analyzer id.
    pub analyzer: String,
    /// Whether a session was live.
    pub live: bool,
    /// Its weight.
    pub weight: f64,
}

/// The distributor's per-second stats and final accounting (over all its incarnations).
#[derive(Debug, Clone, Default)]
pub struct Distributor {
    /// Per Unix second: the analyzers' live state and weight.
    pub live: BTreeMap<u64, Vec<LiveSample>>,
    /// Per Unix second: frames queued over all analyzers.
    pub queued: BTreeMap<u64, u64>,
    /// Per Unix second: frames delivered (cumulative counter differences).
    pub delivered_per_second: BTreeMap<u64, u64>,
    /// Frames dropped, by reason, summed over incarnations (the last row of each file).
    pub dropped: BTreeMap<String, u64>,
    /// Per Unix second and analyzer: frames the router chose for it that went to another
    /// (its queue full, `--when-full spill`) less those it took for another.
    pub spilled_net: BTreeMap<u64, BTreeMap<String, i64>>,
    /// Frames spilled over the run (routed away from the analyzer chosen by weight).
    pub spilled: u64,
    /// Analyzer sessions that ended by failure.
    pub failures: u64,
    /// Frames received.
    pub received: u64,
    /// Frames delivered (written, or acknowledged with ACKs), at each incarnation's end.
    pub delivered: u64,
    /// Frames each incarnation took back from the journal at start, summed.
    pub recovered: u64,
    /// Stats files read.
    pub files: usize,
}

impl Distributor {
    /// Frames dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// A chaos action, from `events.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When, ns since the epoch.
    pub ts_ns: u64,
    /// What (kill, hang, resume, restart, ...).
    pub action: runfolder::ChaosAction,
    /// Whom.
    pub target: String,
}

/// A sample of the distributor process, from `resources.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resource {
    /// When, ns since the epoch.
    pub ts_ns: u64,
    /// CPU use over the last interval, % of one core.
    pub cpu_pct: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
}

/// Check settings: from the profile copy in the run folder, then the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Relative tolerance of each analyzer's share.
    pub weight_tolerance: f64,
    /// How the distributor routed.
    pub routing: runfolder::Routing,
    /// A queue wait at least this long marks a backlog, ms.
    pub backlog_ms: f64,
    /// p99 end-to-end latency limit, ms, when set.
    pub latency_p99_ms: Option<f64>,
    /// p99 limits per class of priorities.
    pub latency_class: Vec<runfolder::profile::LatencyClass>,
    /// Weights by analyzer id from the profile (used when the stats do not say).
    pub weights: BTreeMap<String, f64>,
    /// Probes, or another emitter's payloads (from the sinks' totals, or `--traffic`).
    pub traffic: runfolder::Traffic,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            weight_tolerance: 0.05,
            routing: runfolder::Routing::Random,
            backlog_ms: 1.0,
            latency_p99_ms: None,
            latency_class: Vec::new(),
            weights: BTreeMap::new(),
            traffic: runfolder::Traffic::Probes,
        }
    }
}

/// Settings given on the command line; each wins over the profile copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--tolerance`.
    pub weight_tolerance: Option<f64>,
    /// `--backlog-ms`.
    pub backlog_ms: Option<f64>,
    /// `--latency-p99-ms`.
    pub latency_p99_ms: Option<f64>,
    /// `--routing`.
    pub routing: Option<runfolder::Routing>,
    /// `--traffic`.
    pub traffic: Option<runfolder::Traffic>,
}

impl Overrides {
    /// Applies the given values to `s`.
    pub fn apply(&self, s: &mut Settings) {
        if let Some(t) = self.weight_tolerance {
            s.weight_tolerance = t;
        }
        if let Some(b) = self.backlog_ms {
            s.backlog_ms = b;
        }
        if self.latency_p99_ms.is_some() {
            s.latency_p99_ms = self.latency_p99_ms;
        }
        if let Some(r) = self.routing {
            s.routing = r;
        }
        if let Some(t) = self.traffic {
            s.traffic = t;
        }
    }
}

/// Everything read from a run folder.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// The loadgen manifest (all loadgen processes).
    pub emitters: Vec<Emitter>,
    /// Messages sent per Unix second.
    pub sent_per_second: BTreeMap<u64, u64>,
    /// Messages sent per priority.
    pub sent_per_priority: BTreeMap<u8, u64>,
    /// Per analyzer id, sorted.
    pub analyzers: Vec<Analyzer>,
    /// Pairs seen over all analyzers.
    pub seen: Seen,
    /// The distributor's side.
    pub distributor: Distributor,
    /// Chaos actions.
    pub events: Vec<Event>,
    /// Distributor CPU and memory samples.
    pub resources: Vec<Resource>,
    /// The alerts the run's Prometheus fired (`None`: the run had no Prometheus).
    pub alerts: Option<Vec<runfolder::rows::Alert>>,
    /// The impostor's attempts (`security.csv`), when the run had one.
    pub probes: Option<Vec<runfolder::rows::Probe>>,
    /// Messages the profile's restricted emitters sent inside and outside the priorities
    /// the access file allows them (`tls` runs with `[security.restricted]`).
    pub restricted_sent: Option<Restricted>,
    /// Check settings.
    pub settings: Settings,
    /// Notes about the input (skipped partial lines and the like).
    pub notes: Vec<String>,
    /// The harness's manifest, when the run has one.
    pub manifest: Option<runfolder::json::Manifest>,
    /// The profile copy, when the run has one.
    pub profile: Option<runfolder::profile::ProfileView>,
    /// The run folder's CSV and log files, sorted (for the report's links).
    pub files: Vec<String>,
}

impl Run {
    /// Latency percentiles per second, the largest of each over analyzers (an upper bound
    /// of the second's percentile over all traffic).
    pub fn latency_per_second(&self) -> BTreeMap<u64, SecondLatency> {
        let mut per: BTreeMap<u64, SecondLatency> = BTreeMap::new();
        for a in &self.analyzers {
            for (s, l) in &a.latency_per_second {
                let e = per.entry(*s).or_default();
                *e = e.max_with(*l);
            }
        }
        per
    }

    /// Arrivals per second over every analyzer.
    pub fn arrivals_per_second(&self) -> BTreeMap<u64, u64> {
        let mut per: BTreeMap<u64, u64> = BTreeMap::new();
        for a in &self.analyzers {
            for (s, n) in &a.per_second {
                *per.entry(*s).or_default() += n;
            }
        }
        per
    }
}
