//! The JSON files: the run manifest and the bench suite's results.

use crate::enums::{Status, Unit};
use crate::rows::CompareRow;
use serde::{Deserialize, Serialize};

/// One element of `summary.json` (an array): a check or one of its figures, with numbers a
/// script can compare without parsing text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `weights`, `weights:a1`, `latency:p99_ms:all`, ...
    pub check: String,
    /// The verdict of the check the row belongs to.
    pub status: Status,
    /// The measured number (null where the row has none).
    pub value: Option<f64>,
    /// The limit it is judged against (null where none).
    pub limit: Option<f64>,
    /// The unit of `value` and `limit`.
    pub unit: Unit,
    /// Why, for a person.
    pub detail: String,
}

/// `manifest.json`: what ran, where, when and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The profile's name.
    pub profile: String,
    /// The profile file the run used (a copy is `profile.toml`).
    pub profile_file: String,
    /// The profile's description.
    pub description: String,
    /// The toolkit's version.
    pub version: String,
    /// `git rev-parse HEAD` where the harness ran (empty outside a checkout).
    pub git_commit: String,
    /// Host name.
    pub host: String,
    /// Cores available.
    pub cores: usize,
    /// Start, UTC, `YYYYMMDDTHHMMSSZ`.
    pub start_utc: String,
    /// End, UTC.
    pub end_utc: String,
    /// Seconds of load.
    pub duration_s: f64,
    /// `duration_s` over the profile's duration (the chaos schedule scaled by it).
    pub scale: f64,
    /// Distributor processes started (1 + restarts).
    pub distributor_incarnations: u32,
    /// Every command line started, in order: the shipped binaries with their arguments.
    pub command_lines: Vec<String>,
}

/// `bench.json`: the bench suite's figures, every run of every scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bench {
    /// Runs per scenario.
    pub repeat: usize,
    /// Seconds of load per run.
    pub seconds: f64,
    /// Cores available.
    pub cores: usize,
    /// `git rev-parse HEAD` where the suite ran.
    pub git_commit: String,
    /// Each scenario with its runs.
    pub scenarios: Vec<BenchScenario>,
    /// CPU µs per MiB of a plain TCP relay (socat) on one stream, per run (empty without
    /// socat).
    pub relay_cpu_us_per_mib: Vec<f64>,
    /// The distributor's median CPU per MiB on the same stream over the relay's.
    pub distributor_vs_relay_cpu_ratio: Option<f64>,
    /// The sinks were slowed by this many µs per message (`harness bench --sink-delay-us`;
    /// absent in a normal bench).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_delay_us: Option<u64>,
    /// The `tls` group's distributor CPU per MiB over mutual TLS over plain TCP (absent
    /// when the group was not run, or in benches from before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_vs_plain_cpu_ratio: Option<f64>,
}

/// One scenario of the bench suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchScenario {
    /// `saturation`, `latency`, `reference`, `scaling`.
    pub group: String,
    /// What it runs, for a person.
    pub name: String,
    /// Emitter connections.
    pub emitters: u32,
    /// Per emitter: msg/s, or `max`.
    pub rate: String,
    /// Analyzer sinks.
    pub analyzers: usize,
    /// One entry per run.
    pub runs: Vec<BenchRun>,
}

/// The figures of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchRun {
    /// Messages the loadgen sent.
    pub sent: u64,
    /// Delivered msg/s.
    pub delivered_per_s: f64,
    /// Delivered payload MiB/s.
    pub mib_per_s: f64,
    /// Distributor CPU seconds per million messages (= µs per message).
    pub cpu_s_per_million: f64,
    /// Distributor CPU µs per MiB of payload.
    pub cpu_us_per_mib: f64,
    /// The distributor's peak RSS, MiB.
    pub peak_rss_mib: f64,
    /// The distributor's peak RSS above its RSS before the load, KiB per emitter
    /// connection (absent in benches written before it was measured).
    #[serde(default)]
    pub rss_per_connection_kib: Option<f64>,
    /// End-to-end latency p50, ms.
    pub p50_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// p99.9, ms.
    pub p999_ms: f64,
    /// Messages sent but never delivered.
    pub lost: u64,
    /// With acknowledged emitters: from a message's first write to its ACK, p50, ms
    /// (absent otherwise, and in benches from before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secured_p50_ms: Option<f64>,
    /// p99 of the same, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secured_p99_ms: Option<f64>,
    /// With a journal: the most bytes it held on disk during the run, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_journal_mib: Option<f64>,
}

/// `compare.json` (`report compare`): what was compared, how, and every metric's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compare {
    /// `run` (profile run folders) or `bench` (`harness bench` folders).
    pub kind: String,
    /// The base folders.
    pub base: Vec<String>,
    /// The candidate folders.
    pub candidate: Vec<String>,
    /// The git commits of the base folders, as recorded (empty where unknown).
    pub base_commits: Vec<String>,
    /// The git commits of the candidate folders.
    pub candidate_commits: Vec<String>,
    /// Relative effect size below which a change does not count (0.05 = 5%).
    pub tolerance: f64,
    /// Confidence of the whole comparison (0.9 = 90%).
    pub confidence: f64,
    /// Confidence of each metric's interval: `1 - (1 - confidence) / m` for the `m`
    /// metrics judged by an interval (Bonferroni).
    pub per_metric_confidence: f64,
    /// Coefficient of variation above which a series is erratic.
    pub erratic_cv: f64,
    /// Metrics with the verdict `regression`.
    pub regressions: usize,
    /// Every metric, as in `compare.csv`.
    pub rows: Vec<CompareRow>,
    /// What the comparison left out or assumed, for a person.
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{read_json, write_json};

    #[test]
    fn manifest_round_trips_with_any_text() {
        let m = Manifest {
            profile: "basic".into(),
            profile_file: "profiles/basic.toml".into(),
            description: "quotes \" and \\ and\nnewlines".into(),
            version: "0.1.0".into(),
            git_commit: String::new(),
            host: "h".into(),
            cores: 2,
            start_utc: "20260101T000000Z".into(),
            end_utc: "20260101T000100Z".into(),
            duration_s: 60.0,
            scale: 1.0,
            distributor_incarnations: 1,
            command_lines: vec!["/x/distributor --config=/r/distributor.toml".into()],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        write_json(&path, &m).unwrap();
        assert_eq!(read_json::<Manifest>(&path).unwrap(), m);
    }
}
