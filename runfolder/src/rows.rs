//! One row type per CSV file of a run folder. The field names are the columns; every
//! column is documented here and in the README.

use crate::enums::{
    Better, ChaosAction, Compression, Format, LogMode, Method, ProbeOutcome, Status, Traffic, Unit,
    Verdict,
};
use crate::table::table;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

table! {
    /// `sent-<base>.csv` (loadgen): messages sent per Unix second, emitter and priority;
    /// rows only where `sent` > 0.
    pub struct Sent {
        /// Unix second.
        pub second: u64,
        /// Emitter id.
        pub emitter: u32,
        /// Priority.
        pub priority: u8,
        /// Messages sent in that second at that priority.
        pub sent: u64,
    }
}

table! {
    /// `emitters-<base>.csv` (loadgen): one row per emitter at the end of the run.
    pub struct EmitterTotals {
        /// Emitter id.
        pub emitter: u32,
        /// Messages written, which is also the next seq: seqs `0..sent` were written.
        pub sent: u64,
        /// Payload bytes written.
        pub bytes: u64,
        /// Failed writes and connects.
        pub errors: u64,
        /// Connections made after the first.
        pub reconnects: u64,
        /// Messages in `in_doubt_ranges`.
        pub in_doubt: u64,
        /// Seq ranges of batches whose write failed: they may or may not have arrived.
        pub in_doubt_ranges: SeqRanges,
        /// Messages that came due while disconnected and were never sent.
        pub unsent: u64,
        /// First send, ns since the epoch.
        pub first_sent_ns: u64,
        /// Last send, ns since the epoch.
        pub last_sent_ns: u64,
        /// Largest lag behind the open-loop schedule, µs.
        pub max_lag_us: u64,
        /// With `--acks`: seqs `0..secured` were acknowledged by the distributor, so each
        /// must be delivered; empty without `--acks` (a later column).
        #[serde(default)]
        pub secured: Option<u64>,
    }
    added = ["secured"];
}

table! {
    /// `arrivals-<id>.csv` (analyzer sink, `full` mode): one row per arrival, in arrival
    /// order. `emitter` and `seq` are empty for a frame that is not a probe.
    #[derive(Copy, Eq)]
    pub struct Arrival {
        /// When the sink read it, ns since the epoch.
        pub arrival_ns: u64,
        /// The probe's emitter id.
        pub emitter: Option<u32>,
        /// The probe's seq.
        pub seq: Option<u64>,
        /// Priority from the DELIVER header.
        pub priority: u8,
        /// The probe's send stamp (0 for a frame that is not a probe).
        pub sent_ns: u64,
        /// The distributor's queue stamp.
        pub queued_ns: u64,
        /// The distributor's dispatch stamp.
        pub dispatch_ns: u64,
        /// Payload bytes.
        pub size: u32,
        /// 1 when magic and crc32 verified.
        #[serde(with = "crate::table::flag")]
        pub crc_ok: bool,
        /// 1 when this (emitter, seq) had arrived before.
        #[serde(with = "crate::table::flag")]
        pub duplicate: bool,
        /// The sink's session number (a new connection restarts the order check).
        pub session: u64,
    }
}

table! {
    /// `summary-<id>.csv` (analyzer sink, `summary` mode): aggregates per second and
    /// priority. The latency columns are empty for a second with no verified probe.
    pub struct SummarySecond {
        /// Unix second of arrival.
        pub second: u64,
        /// Priority.
        pub priority: u8,
        /// Arrivals.
        pub count: u64,
        /// Arrivals seen before.
        pub duplicates: u64,
        /// Probes whose crc failed.
        pub corrupt: u64,
        /// Frames that are not probes.
        pub non_probe: u64,
        /// Arrivals that broke the priority order.
        pub inversions: u64,
        /// Arrivals overtaken by a more urgent frame queued after them (allowed).
        pub overtaken: u64,
        /// End-to-end latency p50, µs.
        pub lat_p50_us: Option<u64>,
        /// End-to-end latency p99, µs.
        pub lat_p99_us: Option<u64>,
        /// End-to-end latency p99.9, µs (a later column: empty when read from a file written
        /// before it).
        #[serde(default)]
        pub lat_p999_us: Option<u64>,
        /// End-to-end latency max, µs.
        pub lat_max_us: Option<u64>,
        /// Largest queue wait (dispatch - queued), µs.
        pub queue_wait_max_us: u64,
    }
    added = ["lat_p999_us"];
}

table! {
    /// `latency-<id>.csv` (analyzer sink, `summary` mode): whole-run end-to-end latency
    /// per priority and over all (`all`), with the histogram itself.
    pub struct Latency {
        /// A priority, or `all`.
        pub priority: LatencyClass,
        /// Samples.
        pub count: u64,
        /// p50, µs.
        pub p50_us: u64,
        /// p90, µs.
        pub p90_us: u64,
        /// p99, µs.
        pub p99_us: u64,
        /// p99.9, µs.
        pub p999_us: u64,
        /// Largest, µs.
        pub max_us: u64,
        /// HdrHistogram V2 + deflate serialization, lower-case hex.
        pub histogram: String,
    }
}

table! {
    /// `seqs-<id>.csv` (analyzer sink, `summary` mode): the exact seq ranges seen.
    pub struct SeqRange {
        /// Emitter id.
        pub emitter: u32,
        /// First seq of the range.
        pub first: u64,
        /// Last seq of the range (inclusive).
        pub last: u64,
    }
}

table! {
    /// `totals-<id>.csv` (analyzer sink): one row at exit.
    pub struct SinkTotals {
        /// Analyzer id.
        pub id: String,
        /// Log mode.
        pub mode: LogMode,
        /// What the sink was told to expect (`--traffic`).
        pub traffic: Traffic,
        /// Frames received.
        pub received: u64,
        /// Distinct (emitter, seq) received.
        pub unique: u64,
        /// Arrivals seen before.
        pub duplicates: u64,
        /// Probes whose crc failed.
        pub corrupt: u64,
        /// Frames that are not probes.
        pub non_probe: u64,
        /// Priority-order violations.
        pub inversions: u64,
        /// Allowed overtakes.
        pub overtaken: u64,
        /// Sessions (connections that got past HELLO).
        pub sessions: u64,
        /// First arrival, ns since the epoch.
        pub first_arrival_ns: u64,
        /// Last arrival, ns since the epoch.
        pub last_arrival_ns: u64,
    }
}

table! {
    /// `link-<id>.csv` (analyzer sink): one row at exit, what its link to the distributor
    /// carried (PROTOCOL.md sections 7 and 4).
    pub struct SinkLink {
        /// Analyzer id.
        pub id: String,
        /// The codec its HELLO asked for (`--compress`); empty for none.
        pub compression: Option<Compression>,
        /// BATCH frames received.
        pub batches: u64,
        /// DELIVER frames that came inside BATCH frames.
        pub batched: u64,
        /// Bytes of frames received, as on the wire.
        pub wire_bytes: u64,
        /// The same with each BATCH counted as the DELIVER frames it carries: the bytes
        /// before compression.
        pub raw_bytes: u64,
        /// Sessions ended by bytes from the distributor that are not frames (a bad BATCH:
        /// a `count` or `raw_len` that does not match what decoded, a stream that does not
        /// decode); each is logged with the session and the stream offset.
        pub bad_frames: u64,
        /// Probes verified as text probes (PROTOCOL.md section 4).
        pub text_probes: u64,
        /// Text probes whose DELIVER priority is not the section 8 mapping of their PRI
        /// (also counted as corrupt in `totals-<id>.csv`).
        pub pri_mismatch: u64,
    }
}

table! {
    /// `wire-<base>.csv` (loadgen): one row per emitter, its bytes before and after
    /// compression.
    pub struct EmitterWire {
        /// Emitter id.
        pub emitter: u32,
        /// What it sent (`--format`).
        pub format: Format,
        /// The codec of its stream (`--compress`); empty for none.
        pub compression: Option<Compression>,
        /// Bytes of LOG frames (or syslog messages, framed) written: before compression.
        pub raw_bytes: u64,
        /// Bytes written on the socket (EMITTER HELLOs included): after compression.
        pub wire_bytes: u64,
    }
}

table! {
    /// `stats-<n>.csv` (distributor, `--stats-csv`): every second, one `*` row of totals,
    /// then one row per analyzer id. Counters are cumulative since the distributor
    /// started. In analyzer rows `received` and the distributor-wide columns are 0.
    pub struct Stats {
        /// When the row was taken, ns since the epoch.
        pub ts_ns: u64,
        /// `*` for the totals row, else the analyzer id.
        pub analyzer: Scope,
        /// Totals row: live analyzers; analyzer row: 1 while live.
        pub live: u64,
        /// Totals row: sum of live weights; analyzer row: its weight.
        pub weight: f64,
        /// LOG frames accepted.
        pub received: u64,
        /// Written (best effort) or acknowledged (at least once).
        pub delivered: u64,
        /// Frames queued for analyzers (re-routes included).
        pub routed: u64,
        /// Frames the router chose for this analyzer (by weight) that went to another with
        /// room, its queue for their priority being full (`--when-full spill`).
        pub spilled_out: u64,
        /// Frames this analyzer took for another whose queue was full.
        pub spilled_in: u64,
        /// DELIVER frames written.
        pub written: u64,
        /// Frames acknowledged.
        pub acked: u64,
        /// Frames taken off failed analyzers.
        pub rerouted: u64,
        /// Sessions ended by failure.
        pub failures: u64,
        /// Dropped: every queue full under `--overflow drop`.
        pub dropped_queue_full: u64,
        /// Dropped: holding queue full under `--overflow drop`.
        pub dropped_holding_full: u64,
        /// Dropped: retries exhausted in the holding queue.
        pub dropped_retries_exhausted: u64,
        /// Dropped: still inside at the drain deadline, or read during the shutdown grace
        /// without finding room.
        pub dropped_shutdown: u64,
        /// Dropped: `--max-queued-bytes` reached under `--overflow drop`.
        pub dropped_bytes_full: u64,
        /// Connections ended for bad input.
        pub protocol_errors: u64,
        /// Partial frames at the end of an emitter stream.
        pub truncated: u64,
        /// Emitter connections open.
        pub emitter_connections_open: u64,
        /// Frames in priority queues.
        pub queued: u64,
        /// Frames written or being written, not yet released.
        pub inflight: u64,
        /// Frames in the holding queue.
        pub holding: u64,
        /// Totals row: bytes queued, in flight or held (payload plus 64 per frame).
        pub queued_bytes: u64,
        /// Totals row: bytes of partial frames buffered over every emitter connection.
        pub buffered_bytes: u64,
        /// Dropped: a priority the access file does not allow the emitter (a later column:
        /// 0 when read from a file written before it).
        #[serde(default)]
        pub dropped_forbidden: u64,
        /// Dropped: the journal at `--journal-max-bytes` under `--overflow drop` (the
        /// columns from here on are later ones: 0 when read from an older file).
        #[serde(default)]
        pub dropped_journal_full: u64,
        /// Dropped: spilled to the journal and not readable back.
        #[serde(default)]
        pub dropped_journal_corrupt: u64,
        /// Frames the journal held at start, not done (delivered as if received again).
        #[serde(default)]
        pub recovered: u64,
        /// Frames that ever found no room in memory and waited in the journal.
        #[serde(default)]
        pub disk_spilled: u64,
        /// Frames waiting in the journal now (spilled or recovered).
        #[serde(default)]
        pub disk_waiting: u64,
        /// Bytes of the journal's segment files (0 without `--data-dir`).
        #[serde(default)]
        pub journal_bytes: u64,
        /// Segment files in the data directory.
        #[serde(default)]
        pub journal_segments: u64,
        /// fdatasync calls of the journal so far.
        #[serde(default)]
        pub fsyncs: u64,
        /// µs spent in them so far.
        #[serde(default)]
        pub fsync_us: u64,
        /// The longest fdatasync of the last one to two seconds, µs.
        #[serde(default)]
        pub fsync_max_us: u64,
        /// ACK frames sent to emitters so far.
        #[serde(default)]
        pub emitter_acks: u64,
        /// Writes to the journal's files that failed so far (each tried again in place).
        #[serde(default)]
        pub journal_write_errors: u64,
        /// 1 while the journal's disk is full (nothing new is taken), else 0.
        #[serde(default)]
        pub journal_disk_full: u64,
    }
    added = [
        "dropped_forbidden",
        "dropped_journal_full",
        "dropped_journal_corrupt",
        "recovered",
        "disk_spilled",
        "disk_waiting",
        "journal_bytes",
        "journal_segments",
        "fsyncs",
        "fsync_us",
        "fsync_max_us",
        "emitter_acks",
        "journal_write_errors",
        "journal_disk_full"
    ];
}

table! {
    /// `events.csv` (harness): the chaos events as applied.
    pub struct Event {
        /// When it was applied, ns since the epoch.
        pub ts_ns: u64,
        /// Seconds after the load started (the profile's time, scaled).
        pub at_s: f64,
        /// What was done.
        pub action: ChaosAction,
        /// The analyzer id, or `distributor`.
        pub target: String,
    }
}

table! {
    /// `security.csv` (harness, `tls = true` profiles with an impostor): each attempt of an
    /// analyzer with a valid certificate of its own to take over another analyzer's id.
    pub struct Probe {
        /// When the answer came, ns since the epoch.
        pub ts_ns: u64,
        /// Seconds after the load started (the profile's time, scaled).
        pub at_s: f64,
        /// The identity its certificate proves.
        pub identity: String,
        /// The live analyzer id its HELLO claimed.
        pub claimed: String,
        /// What the distributor did.
        pub outcome: ProbeOutcome,
        /// The REJECT's reason, or what went wrong.
        pub detail: String,
    }
}

table! {
    /// `resources.csv` (harness): the distributor's CPU and memory once a second.
    pub struct Resource {
        /// When it was sampled, ns since the epoch.
        pub ts_ns: u64,
        /// CPU over the last second, percent of one core.
        pub cpu_pct: f64,
        /// Resident set size, bytes.
        pub rss_bytes: u64,
    }
}

table! {
    /// `alerts.csv` (harness, with `--prometheus`): one row per alert and firing interval,
    /// as the run's Prometheus evaluated the rules of `deploy/prometheus/alerts.yml`.
    pub struct Alert {
        /// The alert's name (`AnalyzerDown`, ...).
        pub alert: String,
        /// Its labels, `name=value` separated by spaces, sorted (`analyzer=c2 job=...`).
        pub labels: String,
        /// When it started firing, ns since the epoch (at the evaluation interval).
        pub fired_ns: u64,
        /// The same in seconds since the load started (as `at_s` of `events.csv`).
        pub fired_at_s: f64,
        /// When it stopped firing; empty when it still fired at the end of the run.
        pub resolved_ns: Option<u64>,
        /// The same in seconds since the load started.
        pub resolved_at_s: Option<f64>,
    }
}

impl Alert {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .split(' ')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    }
}

table! {
    /// `summary.csv` (report): one row per check and per figure behind it.
    pub struct CheckRow {
        /// `weights`, `weights:a1`, `latency:p99_ms:all`, ...
        pub check: String,
        /// The verdict of the check the row belongs to.
        pub status: Status,
        /// What was measured.
        pub value: String,
        /// What was expected.
        pub expected: String,
        /// `value` as a number, when it is one (empty otherwise).
        pub value_num: Option<f64>,
        /// The limit `value_num` is judged against, when there is one.
        pub limit_num: Option<f64>,
        /// The unit of `value_num` and `limit_num`.
        pub unit: Unit,
        /// Why, for a person.
        pub detail: String,
    }
}

table! {
    /// `compare.csv` (`report compare`): one row per scenario and metric. Percentages are
    /// of the base's mean; the interval is the confidence interval of the difference of
    /// means (empty for `single` and `count`).
    pub struct CompareRow {
        /// The profile (run folders) or `group/scenario` (bench folders).
        pub scenario: String,
        /// `throughput`, `latency_p50`, `latency_p99`, `latency_p999`, `cpu_per_msg`,
        /// `peak_rss`, `lost`, `dropped`.
        pub metric: String,
        /// The unit of the means.
        pub unit: Unit,
        /// Which way is better.
        pub better: Better,
        /// How it was judged.
        pub method: Method,
        /// Base samples (seconds of every run, or runs).
        pub base_n: usize,
        /// Base mean.
        pub base_mean: f64,
        /// Base coefficient of variation (standard deviation over mean).
        pub base_cv: f64,
        /// Candidate samples.
        pub candidate_n: usize,
        /// Candidate mean.
        pub candidate_mean: f64,
        /// Candidate coefficient of variation.
        pub candidate_cv: f64,
        /// Candidate mean minus base mean, % of the base mean (empty when the base is 0).
        pub delta_pct: Option<f64>,
        /// Lower end of the interval of `delta_pct`.
        pub ci_low_pct: Option<f64>,
        /// Upper end.
        pub ci_high_pct: Option<f64>,
        /// `regression`, `improvement`, `no change` or `erratic`.
        pub verdict: Verdict,
        /// Why, for a person.
        pub detail: String,
    }
}

impl CheckRow {
    /// A row with text only (no numbers yet: see [`CheckRow::measured`]).
    pub fn new(
        check: impl Into<String>,
        status: Status,
        value: impl ToString,
        expected: impl ToString,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            check: check.into(),
            status,
            value: value.to_string(),
            expected: expected.to_string(),
            value_num: None,
            limit_num: None,
            unit: Unit::None,
            detail: detail.into(),
        }
    }

    /// The row's numbers: the measured `value`, the `limit` it is judged against (if any),
    /// their unit. Non-finite numbers are left empty.
    pub fn measured(mut self, value: f64, limit: Option<f64>, unit: Unit) -> Self {
        self.value_num = value.is_finite().then_some(value);
        self.limit_num = limit.filter(|l| l.is_finite());
        self.unit = unit;
        self
    }
}

impl Stats {
    /// A row of `analyzer` at `ts_ns` with every count 0.
    pub fn zeroed(ts_ns: u64, analyzer: Scope) -> Self {
        Self {
            ts_ns,
            analyzer,
            live: 0,
            weight: 0.0,
            received: 0,
            delivered: 0,
            routed: 0,
            spilled_out: 0,
            spilled_in: 0,
            written: 0,
            acked: 0,
            rerouted: 0,
            failures: 0,
            dropped_queue_full: 0,
            dropped_holding_full: 0,
            dropped_retries_exhausted: 0,
            dropped_shutdown: 0,
            dropped_bytes_full: 0,
            protocol_errors: 0,
            truncated: 0,
            emitter_connections_open: 0,
            queued: 0,
            inflight: 0,
            holding: 0,
            queued_bytes: 0,
            buffered_bytes: 0,
            dropped_forbidden: 0,
            dropped_journal_full: 0,
            dropped_journal_corrupt: 0,
            recovered: 0,
            disk_spilled: 0,
            disk_waiting: 0,
            journal_bytes: 0,
            journal_segments: 0,
            fsyncs: 0,
            fsync_us: 0,
            fsync_max_us: 0,
            emitter_acks: 0,
            journal_write_errors: 0,
            journal_disk_full: 0,
        }
    }
}

/// Seq ranges `[start, end)`, written `start-end` and separated by `;`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqRanges(pub Vec<(u64, u64)>);

impl SeqRanges {
    /// Seqs in every range.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|(a, b)| b.saturating_sub(*a)).sum()
    }
}

impl std::fmt::Display for SeqRanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (a, b)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{a}-{b}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for SeqRanges {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(';')
            .filter(|r| !r.is_empty())
            .map(|r| {
                let (a, b) = r
                    .split_once('-')
                    .ok_or_else(|| format!("{r:?} is not START-END"))?;
                let (a, b) = (
                    a.parse::<u64>()
                        .map_err(|_| format!("{r:?} is not START-END"))?,
                    b.parse::<u64>()
                        .map_err(|_| format!("{r:?} is not START-END"))?,
                );
                if a > b {
                    return Err(format!("{r:?}: START exceeds END"));
                }
                Ok((a, b))
            })
            .collect::<Result<_, _>>()
            .map(SeqRanges)
    }
}

/// The `analyzer` column of the stats: the totals row or one analyzer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// The distributor-wide row, written `*`.
    Total,
    /// One analyzer id.
    Analyzer(String),
}

/// The `priority` column of the latency file: one level, or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LatencyClass {
    /// One priority level.
    Priority(u8),
    /// Every level together.
    All,
}

/// Serde through `Display` and `FromStr`.
macro_rules! text_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
text_serde!(SeqRanges);
text_serde!(Scope);
text_serde!(LatencyClass);

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Total => f.write_str("*"),
            Scope::Analyzer(id) => f.write_str(id),
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" => Err("an empty analyzer id".into()),
            "*" => Ok(Scope::Total),
            id => Ok(Scope::Analyzer(id.to_owned())),
        }
    }
}

impl std::fmt::Display for LatencyClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LatencyClass::Priority(p) => write!(f, "{p}"),
            LatencyClass::All => f.write_str("all"),
        }
    }
}

impl std::str::FromStr for LatencyClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(LatencyClass::All),
            p => p
                .parse()
                .map(LatencyClass::Priority)
                .map_err(|_| format!("{p:?} is neither a priority 0..=255 nor \"all\"")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Error, Table, TableReader, TableWriter, header, read_all};

    /// serde's header for `row` equals `T::COLUMNS`, and the row reads back equal.
    fn round_trip<T: Table + std::fmt::Debug + PartialEq>(row: T) {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(&row).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), header::<T>());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut tw = TableWriter::<T>::create(&path).unwrap();
        tw.write(&row).unwrap();
        tw.flush().unwrap();
        drop(tw);
        assert_eq!(read_all::<T>(&path).unwrap(), vec![row]);
    }

    fn arrival() -> Arrival {
        Arrival {
            arrival_ns: 10,
            emitter: Some(3),
            seq: Some(4),
            priority: 7,
            sent_ns: 5,
            queued_ns: 6,
            dispatch_ns: 8,
            size: 64,
            crc_ok: true,
            duplicate: false,
            session: 1,
        }
    }

    #[test]
    fn every_table_round_trips_through_its_columns() {
        round_trip(Sent {
            second: 1,
            emitter: 2,
            priority: 3,
            sent: 4,
        });
        round_trip(EmitterTotals {
            emitter: 1,
            sent: 10,
            bytes: 640,
            errors: 1,
            reconnects: 1,
            in_doubt: 3,
            in_doubt_ranges: SeqRanges(vec![(2, 4), (7, 8)]),
            secured: Some(6),
            unsent: 0,
            first_sent_ns: 1,
            last_sent_ns: 2,
            max_lag_us: 3,
        });
        round_trip(arrival());
        round_trip(Arrival {
            emitter: None,
            seq: None,
            crc_ok: false,
            ..arrival()
        });
        round_trip(SummarySecond {
            second: 1,
            priority: 0,
            count: 5,
            duplicates: 0,
            corrupt: 0,
            non_probe: 5,
            inversions: 0,
            overtaken: 0,
            lat_p50_us: None,
            lat_p99_us: None,
            lat_p999_us: None,
            lat_max_us: None,
            queue_wait_max_us: 3,
        });
        round_trip(Latency {
            priority: LatencyClass::All,
            count: 1,
            p50_us: 1,
            p90_us: 1,
            p99_us: 1,
            p999_us: 1,
            max_us: 1,
            histogram: "1c84".into(),
        });
        round_trip(SeqRange {
            emitter: 1,
            first: 0,
            last: 9,
        });
        round_trip(SinkLink {
            id: "a1".into(),
            compression: Some(Compression::Zstd),
            batches: 2,
            batched: 30,
            wire_bytes: 900,
            raw_bytes: 3000,
            bad_frames: 0,
            text_probes: 30,
            pri_mismatch: 1,
        });
        round_trip(SinkLink {
            compression: None,
            ..SinkLink {
                id: "a2".into(),
                compression: None,
                batches: 0,
                batched: 0,
                wire_bytes: 1,
                raw_bytes: 1,
                bad_frames: 1,
                text_probes: 0,
                pri_mismatch: 0,
            }
        });
        round_trip(EmitterWire {
            emitter: 3,
            format: Format::Syslog,
            compression: Some(Compression::Lz4),
            raw_bytes: 10,
            wire_bytes: 4,
        });
        round_trip(SinkTotals {
            id: "a1".into(),
            mode: LogMode::Summary,
            traffic: Traffic::Foreign,
            received: 1,
            unique: 1,
            duplicates: 0,
            corrupt: 0,
            non_probe: 0,
            inversions: 0,
            overtaken: 0,
            sessions: 1,
            first_arrival_ns: 1,
            last_arrival_ns: 2,
        });
        let stats = Stats {
            live: 2,
            weight: 3.5,
            received: 1,
            delivered: 1,
            routed: 1,
            written: 1,
            emitter_connections_open: 1,
            ..Stats::zeroed(1, Scope::Total)
        };
        round_trip(stats.clone());
        round_trip(Stats {
            analyzer: Scope::Analyzer("a1".into()),
            ..stats
        });
        round_trip(Event {
            ts_ns: 1,
            at_s: 2.5,
            action: ChaosAction::RestartDistributor,
            target: "distributor".into(),
        });
        round_trip(CheckRow {
            check: "weights:a1".into(),
            status: Status::NotExercised,
            value: "0.5, \"quoted\"".into(),
            expected: "0.5".into(),
            value_num: Some(0.5),
            limit_num: None,
            unit: Unit::Share,
            detail: "line\nbreak".into(),
        });
        round_trip(Resource {
            ts_ns: 1,
            cpu_pct: 12.5,
            rss_bytes: 1 << 20,
        });
        let alert = Alert {
            alert: "AnalyzerDown".into(),
            labels: "analyzer=c2 job=distributor severity=critical".into(),
            fired_ns: 7,
            fired_at_s: 41.5,
            resolved_ns: None,
            resolved_at_s: None,
        };
        assert_eq!(alert.label("analyzer"), Some("c2"));
        assert_eq!(alert.label("job"), Some("distributor"));
        assert_eq!(alert.label("reason"), None);
        round_trip(alert);
        round_trip(CompareRow {
            scenario: "saturation/max, 8 emitters".into(),
            metric: "throughput".into(),
            unit: Unit::MsgPerS,
            better: Better::Higher,
            method: Method::Welch,
            base_n: 3,
            base_mean: 1.5e6,
            base_cv: 0.02,
            candidate_n: 3,
            candidate_mean: 1.2e6,
            candidate_cv: 0.03,
            delta_pct: Some(-20.0),
            ci_low_pct: Some(-25.5),
            ci_high_pct: Some(-14.5),
            verdict: Verdict::NoChange,
            detail: "a, \"b\"".into(),
        });
    }

    #[test]
    fn the_file_format_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arrivals-a.csv");
        let mut w = TableWriter::<Arrival>::create(&path).unwrap();
        w.write(&arrival()).unwrap();
        w.write(&Arrival {
            emitter: None,
            seq: None,
            sent_ns: 0,
            crc_ok: false,
            ..arrival()
        })
        .unwrap();
        w.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "arrival_ns,emitter,seq,priority,sent_ns,queued_ns,dispatch_ns,size,crc_ok,duplicate,session\n\
             10,3,4,7,5,6,8,64,1,0,1\n\
             10,,,7,0,6,8,64,0,0,1\n"
        );
    }

    #[test]
    fn a_file_from_before_a_column_was_added_reads_with_it_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary-a1.csv");
        std::fs::write(
            &path,
            "second,priority,count,duplicates,corrupt,non_probe,inversions,overtaken,lat_p50_us,lat_p99_us,lat_max_us,queue_wait_max_us\n\
             7,0,5,0,0,0,0,0,10,20,30,4\n",
        )
        .unwrap();
        let rows = read_all::<SummarySecond>(&path).unwrap();
        assert_eq!(rows[0].lat_p99_us, Some(20));
        assert_eq!(rows[0].lat_p999_us, None);
        assert_eq!(rows[0].lat_max_us, Some(30));
        // Columns that were always there stay required.
        std::fs::write(&path, "second,priority,count\n7,0,5\n").unwrap();
        let err = read_all::<SummarySecond>(&path).unwrap_err();
        assert!(
            matches!(
                err,
                Error::MissingColumn {
                    column: "duplicates",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sent-0.csv");
        std::fs::write(&path, "second,emitter,sent\n1,2,3\n").unwrap();
        let err = TableReader::<Sent>::open(&path).unwrap_err();
        assert!(matches!(
            err,
            Error::MissingColumn {
                column: "priority",
                ..
            }
        ));
        assert!(
            err.to_string()
                .contains("sent-0.csv: missing column \"priority\"")
        );

        std::fs::write(&path, "second,emitter,priority,sent\n1,2,3,4\n1,2,300,4\n").unwrap();
        let err = read_all::<Sent>(&path).unwrap_err().to_string();
        assert!(err.contains("sent-0.csv:3: priority:"), "{err}");

        let stats = dir.path().join("stats-1.csv");
        std::fs::write(&stats, "").unwrap();
        let err = read_all::<Stats>(&stats).unwrap_err();
        assert!(matches!(err, Error::NoHeader { .. }), "{err}");

        let events = dir.path().join("events.csv");
        std::fs::write(&events, "ts_ns,at_s,action,target\n1,2,explode,x\n").unwrap();
        let err = read_all::<Event>(&events).unwrap_err().to_string();
        assert!(
            err.contains("events.csv:2: ") && err.contains("explode"),
            "{err}"
        );

        let e = dir.path().join("emitters-0.csv");
        let mut text = header::<EmitterTotals>();
        text.push_str("\n1,2,3,0,0,1,5-x,0,0,0,0,\n");
        std::fs::write(&e, text).unwrap();
        let err = read_all::<EmitterTotals>(&e).unwrap_err().to_string();
        assert!(
            err.contains("emitters-0.csv:2: ") && err.contains("5-x"),
            "{err}"
        );
    }

    #[test]
    fn a_new_table_has_its_header_on_disk_before_any_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.csv");
        let _open = TableWriter::<Event>::create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "ts_ns,at_s,action,target\n"
        );
        assert!(read_all::<Event>(&path).unwrap().is_empty());
    }

    #[test]
    fn a_partial_last_line_is_left_out_and_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arrivals-a.csv");
        let mut w = TableWriter::<Arrival>::create(&path).unwrap();
        w.write(&arrival()).unwrap();
        w.flush().unwrap();
        drop(w);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"11,3,5,7").unwrap();
        let r = TableReader::<Arrival>::open(&path).unwrap();
        assert_eq!(r.partial_tail, 8);
        assert_eq!(r.read_all().unwrap(), vec![arrival()]);
        let (mut w, cut) = TableWriter::<Arrival>::append(&path).unwrap();
        assert_eq!(cut, 8);
        w.write(&arrival()).unwrap();
        w.flush().unwrap();
        assert_eq!(read_all::<Arrival>(&path).unwrap().len(), 2);

        let other = dir.path().join("other.csv");
        std::fs::write(&other, "a,b\n1,2\n").unwrap();
        let err = TableWriter::<Arrival>::append(&other).unwrap_err();
        assert!(matches!(err, Error::OtherColumns { .. }), "{err}");
    }
}
