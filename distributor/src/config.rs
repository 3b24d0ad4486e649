//! Settings: a TOML file (`--config`) and command-line flags with the same names; a flag
//! wins over the file, the file over the defaults. Everything is checked at load time, so a
//! bad value fails at once naming the setting.

use crate::core::{CoreConfig, Overflow, WhenFull};
use crate::health::RetrySchedule;
use crate::journal::JournalConfig;
use crate::router::Routing;
use runfolder::Fsync;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("config file {path}: {error}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the field.
        error: toml::de::Error,
    },
    /// A value out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The setting's name as in the file and the flags.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
}

/// Every setting of the distributor. In a file the keys are these names with `_`, or with
/// `-` as in the flags.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Address for emitters (LOG frames).
    #[serde(
        default = "default_emitter_listen",
        alias = "emitter_listen",
        with = "runner::addr::serde_addr"
    )]
    pub emitter_listen: SocketAddr,
    /// Address for analyzers (HELLO, DELIVER, ACK).
    #[serde(
        default = "default_analyzer_listen",
        alias = "analyzer_listen",
        with = "runner::addr::serde_addr"
    )]
    pub analyzer_listen: SocketAddr,
    /// Address of the Prometheus `/metrics` endpoint; none when absent.
    #[serde(
        default,
        alias = "metrics_listen",
        with = "runner::addr::serde_opt_addr",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// Per-second stats CSV; none when absent.
    #[serde(default, alias = "stats_csv")]
    pub stats_csv: Option<PathBuf>,
    /// TLS certificate chain (PEM): with `tls-key`, every listener serves TLS.
    #[serde(default, alias = "tls_cert")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls-cert` (PEM).
    #[serde(default, alias = "tls_key")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that must have signed every emitter's and analyzer's client certificate:
    /// mutual TLS, and identities.
    #[serde(default, alias = "tls_client_ca")]
    pub tls_client_ca: Option<PathBuf>,
    /// The access file: priorities per emitter identity, identities allowed as analyzers.
    #[serde(default)]
    pub access: Option<PathBuf>,
    /// Weights pinned by analyzer id; they win over the weight in the HELLO.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
    /// `random` (default) or `smooth`.
    #[serde(default = "default_routing")]
    pub routing: Routing,
    /// Seed of the random router (default: from the clock).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Frames per priority level per analyzer.
    #[serde(default = "default_queue_capacity", alias = "queue_capacity")]
    pub queue_capacity: usize,
    /// `backpressure` (default) or `drop`.
    #[serde(default = "default_overflow")]
    pub overflow: Overflow,
    /// `spill` (default) or `strict`: whether a frame whose weighted choice is full may go
    /// to another analyzer.
    #[serde(default, alias = "when_full")]
    pub when_full: WhenFull,
    /// Bytes of frames queued, in flight or held at most (payload plus 64 per frame); new
    /// frames past it meet the overflow policy.
    #[serde(default = "default_max_queued_bytes", alias = "max_queued_bytes")]
    pub max_queued_bytes: u64,
    /// Bytes of partial frames buffered over every emitter connection at most; past it the
    /// connections with the largest stalled partial frames are closed.
    #[serde(default = "default_max_buffered_bytes", alias = "max_buffered_bytes")]
    pub max_buffered_bytes: u64,
    /// Unacknowledged frames per at-least-once analyzer.
    #[serde(default = "default_ack_window", alias = "ack_window")]
    pub ack_window: usize,
    /// Seconds without progress after which an analyzer is hung.
    #[serde(
        default = "default_hang_timeout",
        alias = "hang_timeout",
        with = "secs"
    )]
    pub hang_timeout: Duration,
    /// Largest LOG `frame_len` accepted, in bytes.
    #[serde(default = "default_max_frame", alias = "max_frame")]
    pub max_frame: u32,
    /// A held frame is dropped after waiting as long as this many retries on the holding
    /// queue's backoff (10 ms doubling to 2 s) take.
    #[serde(default = "default_max_attempts", alias = "max_attempts")]
    pub max_attempts: u32,
    /// Frames held while no analyzer can take them, before the overflow policy applies.
    #[serde(default = "default_holding_capacity", alias = "holding_capacity")]
    pub holding_capacity: usize,
    /// Seconds allowed for draining at shutdown.
    #[serde(
        default = "default_drain_timeout",
        alias = "drain_timeout",
        with = "secs"
    )]
    pub drain_timeout: Duration,
    /// Emitter connections open at once; more wait in the accept backlog.
    #[serde(default = "default_max_connections", alias = "max_connections")]
    pub max_connections: usize,
    /// Live analyzer sessions at most; a HELLO with another id gets a REJECT.
    #[serde(default = "default_max_analyzers", alias = "max_analyzers")]
    pub max_analyzers: usize,
    /// The largest weight a HELLO may claim (weights pinned here are not limited).
    #[serde(default = "default_max_weight", alias = "max_weight")]
    pub max_weight: f64,
    /// Seconds an emitter's frame may take to arrive whole once it began; past it the
    /// connection ends (counted as `slow_frame`).
    #[serde(
        default = "default_frame_timeout",
        alias = "frame_timeout",
        with = "secs"
    )]
    pub frame_timeout: Duration,
    /// Seconds an analyzer id may be without a session before its per-id statistics are
    /// folded into one total and leave /metrics and the stats CSV.
    #[serde(
        default = "default_forget_after",
        alias = "forget_after",
        with = "secs"
    )]
    pub forget_after: Duration,
    /// Seconds a client has to finish its TLS handshake; past it the connection is closed
    /// (counted as `timeout`).
    #[serde(
        default = "default_handshake_timeout",
        alias = "handshake_timeout",
        with = "secs"
    )]
    pub handshake_timeout: Duration,
    /// The data directory: with it every frame is journaled before it is secured, frames
    /// without room wait on disk, and a restart delivers what the last run left.
    #[serde(default, alias = "data_dir")]
    pub data_dir: Option<PathBuf>,
    /// `interval` (default), `always` or `never`: when the journal calls fdatasync.
    #[serde(default)]
    pub fsync: Fsync,
    /// The group-commit period of `fsync = "interval"`, in milliseconds.
    #[serde(default = "default_fsync_interval_ms", alias = "fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// Bytes of journal on disk at most; past it the overflow policy applies
    /// (`journal_full`).
    #[serde(default = "default_journal_max_bytes", alias = "journal_max_bytes")]
    pub journal_max_bytes: u64,
    /// A journal segment file is closed and the next begun past this size.
    #[serde(
        default = "default_journal_segment_bytes",
        alias = "journal_segment_bytes"
    )]
    pub journal_segment_bytes: u64,
}

fn default_emitter_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_analyzer_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}
fn default_routing() -> Routing {
    Routing::Random
}
fn default_queue_capacity() -> usize {
    1000
}
fn default_overflow() -> Overflow {
    Overflow::Backpressure
}
fn default_max_queued_bytes() -> u64 {
    1 << 30
}
fn default_max_buffered_bytes() -> u64 {
    256 << 20
}
fn default_ack_window() -> usize {
    16384
}
fn default_hang_timeout() -> Duration {
    Duration::from_secs(5)
}
/// The largest `--max-frame` accepted: 256 MiB.
pub const MAX_FRAME_LIMIT: u32 = 256 << 20;

fn default_max_frame() -> u32 {
    protocol::log::DEFAULT_MAX_FRAME
}
fn default_max_attempts() -> u32 {
    20
}
fn default_holding_capacity() -> usize {
    100_000
}
fn default_drain_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_analyzers() -> usize {
    1024
}
fn default_max_weight() -> f64 {
    1e6
}
fn default_frame_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_forget_after() -> Duration {
    Duration::from_secs(600)
}
fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_fsync_interval_ms() -> u64 {
    10
}
fn default_journal_max_bytes() -> u64 {
    4 << 30
}
fn default_journal_segment_bytes() -> u64 {
    64 << 20
}
/// The largest journal segment: offsets inside one are 32 bits (a segment may pass it by
/// one frame of at most 256 MiB).
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;
/// The smallest journal segment.
pub const MIN_SEGMENT_BYTES: u64 = 4096;

/// Serde for a `Duration` setting written in seconds (`0.5`, `10`).
mod secs {
    use serde::Deserialize as _;
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        super::parse_secs(v).map_err(serde::de::Error::custom)
    }
}

/// Seconds as a `Duration`: finite and >= 0.
pub fn parse_secs(v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|_| format!("{v} is not a number of seconds >= 0"))
}

impl Default for Config {
    fn default() -> Self {
        Self {
            emitter_listen: default_emitter_listen(),
            analyzer_listen: default_analyzer_listen(),
            metrics_listen: None,
            stats_csv: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            access: None,
            weights: BTreeMap::new(),
            routing: default_routing(),
            seed: None,
            queue_capacity: default_queue_capacity(),
            overflow: default_overflow(),
            when_full: WhenFull::default(),
            max_queued_bytes: default_max_queued_bytes(),
            max_buffered_bytes: default_max_buffered_bytes(),
            ack_window: default_ack_window(),
            hang_timeout: default_hang_timeout(),
            max_frame: default_max_frame(),
            max_attempts: default_max_attempts(),
            holding_capacity: default_holding_capacity(),
            drain_timeout: default_drain_timeout(),
            max_connections: default_max_connections(),
            max_analyzers: default_max_analyzers(),
            max_weight: default_max_weight(),
            frame_timeout: default_frame_timeout(),
            forget_after: default_forget_after(),
            handshake_timeout: default_handshake_timeout(),
            data_dir: None,
            fsync: Fsync::default(),
            fsync_interval_ms: default_fsync_interval_ms(),
            journal_max_bytes: default_journal_max_bytes(),
            journal_segment_bytes: default_journal_segment_bytes(),
        }
    }
}

impl Config {
    /// Reads and checks a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let cfg: Config = toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            error,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The settings as a TOML file that [`Config::from_file`] reads back the same.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Checks every range the types do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        for (id, w) in &self.weights {
            if id.is_empty() || id.len() > protocol::analyzer::MAX_ID_LEN {
                return invalid(
                    "weights",
                    &format!("analyzer id {id:?} must be 1 to 64 bytes"),
                );
            }
            if !(w.is_finite() && *w > 0.0) {
                return invalid(
                    "weights",
                    &format!("weight {w} for {id:?} must be finite and > 0"),
                );
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return invalid("tls-key", "tls-cert is set: give its key too"),
            (None, Some(_)) => {
                return invalid("tls-cert", "tls-key is set: give its certificate too");
            }
            _ => {}
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return invalid(
                "tls-client-ca",
                "client certificates need TLS: give tls-cert and tls-key too",
            );
        }
        if self.queue_capacity == 0 {
            return invalid("queue-capacity", "must be at least 1");
        }
        if self.ack_window == 0 {
            return invalid("ack-window", "must be at least 1");
        }
        if self.hang_timeout.is_zero() {
            return invalid("hang-timeout", "must be > 0 seconds");
        }
        if self.max_frame < protocol::log::HEADER_LEN as u32 {
            return invalid("max-frame", "must be at least 5 bytes");
        }
        if self.max_frame > MAX_FRAME_LIMIT {
            // A DELIVER frame adds 17 bytes to the LOG frame's payload; past u32::MAX - 17
            // its length would wrap. 256 MiB also keeps the EMITTER HELLO magic (read as a
            // frame_len, 1,279,542,577) above every accepted LOG frame.
            return invalid("max-frame", "must be at most 268435456 bytes (256 MiB)");
        }
        let frame_cost = u64::from(self.max_frame) + crate::frame::FRAME_OVERHEAD as u64;
        if self.max_queued_bytes < frame_cost {
            return invalid(
                "max-queued-bytes",
                &format!(
                    "{} is below one frame of --max-frame {} plus its 64 bytes of bookkeeping",
                    self.max_queued_bytes, self.max_frame
                ),
            );
        }
        if self.max_buffered_bytes < u64::from(self.max_frame) {
            return invalid(
                "max-buffered-bytes",
                &format!(
                    "{} is below one frame of --max-frame {}",
                    self.max_buffered_bytes, self.max_frame
                ),
            );
        }
        if self.max_connections == 0 {
            return invalid("max-connections", "must be at least 1");
        }
        if self.frame_timeout.is_zero() {
            return invalid("frame-timeout", "must be > 0 seconds");
        }
        if self.handshake_timeout.is_zero() {
            return invalid("handshake-timeout", "must be > 0 seconds");
        }
        if self.max_analyzers == 0 {
            return invalid("max-analyzers", "must be at least 1");
        }
        if !(self.max_weight.is_finite() && self.max_weight > 0.0) {
            return invalid("max-weight", "must be finite and > 0");
        }
        if self.fsync_interval_ms == 0 || self.fsync_interval_ms > 10_000 {
            return invalid("fsync-interval-ms", "must be 1 to 10000 ms");
        }
        // A frame larger than a segment gets a segment of its own.
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.journal_segment_bytes) {
            return invalid(
                "journal-segment-bytes",
                &format!("{} must be 4 KiB to 1 GiB", self.journal_segment_bytes),
            );
        }
        if self.journal_max_bytes < self.journal_segment_bytes {
            return invalid(
                "journal-max-bytes",
                &format!(
                    "{} is below one segment (--journal-segment-bytes {})",
                    self.journal_max_bytes, self.journal_segment_bytes
                ),
            );
        }
        Ok(())
    }

    /// The TLS files, when TLS is on.
    pub fn tls(&self) -> Option<runner::tls::ServerFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(runner::tls::ServerFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            }),
            _ => None,
        }
    }

    /// The journal's settings, with a data directory.
    pub fn journal(&self) -> Option<JournalConfig> {
        self.data_dir.as_ref().map(|dir| JournalConfig {
            dir: dir.clone(),
            fsync: self.fsync,
            fsync_interval: Duration::from_millis(self.fsync_interval_ms),
            max_bytes: self.journal_max_bytes,
            segment_bytes: self.journal_segment_bytes,
        })
    }

    /// The part of the settings the core uses.
    pub fn core(&self) -> CoreConfig {
        CoreConfig {
            routing: self.routing,
            seed: self.seed.unwrap_or_else(protocol::now_ns),
            queue_capacity: self.queue_capacity,
            overflow: self.overflow,
            when_full: self.when_full,
            max_queued_bytes: usize::try_from(self.max_queued_bytes).unwrap_or(usize::MAX),
            ack_window: self.ack_window,
            hang_timeout: self.hang_timeout,
            holding_capacity: self.holding_capacity,
            retry: RetrySchedule::new(self.max_attempts),
            pinned: self.weights.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            max_analyzers: self.max_analyzers,
            max_weight: self.max_weight,
            forget_after: self.forget_after,
        }
    }
}

/// Parses `ID=W` of `--weight`.
pub fn parse_weight(s: &str) -> Result<(String, f64), String> {
    let (id, w) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?} is not ID=WEIGHT"))?;
    let w: f64 = w
        .parse()
        .map_err(|_| format!("weight {w:?} in {s:?} is not a number"))?;
    Ok((id.to_owned(), w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_settings_and_defaults() {
        let cfg: Config = toml::from_str(
            "emitter-listen = \"localhost:9000\"\nhang_timeout = 0.5\nrouting = \"smooth\"\n[weights]\na = 5.0\n",
        )
        .unwrap();
        assert_eq!(cfg.emitter_listen.port(), 9000);
        assert_eq!(cfg.hang_timeout, Duration::from_millis(500));
        assert_eq!(cfg.routing, Routing::Smooth);
        assert_eq!(cfg.weights["a"], 5.0);
        assert_eq!(cfg.queue_capacity, 1000);
        cfg.validate().unwrap();
    }

    #[test]
    fn the_example_config_in_deploy_loads_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/distributor.toml");
        let cfg = Config::from_file(&path).unwrap();
        assert_eq!(cfg.emitter_listen.port(), 8080);
        assert_eq!(cfg.metrics_listen.map(|a| a.port()), Some(9100));
        assert_eq!(
            cfg.data_dir.as_deref(),
            Some(Path::new("/var/lib/log-distributor/journal"))
        );
        // Every other setting it writes out is the default, as its comment says.
        let defaults = Config {
            emitter_listen: cfg.emitter_listen,
            analyzer_listen: cfg.analyzer_listen,
            metrics_listen: cfg.metrics_listen,
            data_dir: cfg.data_dir.clone(),
            ..Config::default()
        };
        assert_eq!(cfg.to_toml().unwrap(), defaults.to_toml().unwrap());
    }

    #[test]
    fn unknown_and_bad_fields_are_named() {
        let err = toml::from_str::<Config>("queue_capacty = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("queue_capacty"), "{err}");
        let err = toml::from_str::<Config>("hang-timeout = -1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hang-timeout") || err.contains("seconds"),
            "{err}"
        );
        let cfg = Config {
            weights: [("x".to_owned(), 0.0)].into(),
            ..Config::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("weights"));
        let cfg = Config {
            max_frame: MAX_FRAME_LIMIT + 1,
            ..Config::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("max-frame") && err.contains("256 MiB"),
            "{err}"
        );
        let cfg = Config {
            max_frame: MAX_FRAME_LIMIT,
            ..Config::default()
        };
        cfg.validate().unwrap();
        let cfg = Config {
            queue_capacity: 0,
            ..Config::default()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("queue-capacity")
        );
        for (cfg, field) in [
            (
                Config {
                    max_queued_bytes: 1 << 20,
                    ..Config::default()
                },
                "max-queued-bytes",
            ),
            (
                Config {
                    max_buffered_bytes: (1 << 20) - 1,
                    ..Config::default()
                },
                "max-buffered-bytes",
            ),
        ] {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(field) && err.contains("--max-frame"), "{err}");
        }
        let cfg: Config =
            toml::from_str("when-full = \"strict\"\nmax_queued_bytes = 5000000\n").unwrap();
        assert_eq!(
            (cfg.when_full, cfg.max_queued_bytes),
            (WhenFull::Strict, 5_000_000)
        );
        let err = toml::from_str::<Config>("when-full = \"spil\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("spil"), "{err}");
    }

    #[test]
    fn a_written_config_reads_back_the_same() {
        let cfg = Config {
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9))),
            stats_csv: Some("/tmp/stats-1.csv".into()),
            weights: [("a".to_owned(), 2.5)].into(),
            routing: Routing::Smooth,
            seed: Some(3),
            hang_timeout: Duration::from_millis(1500),
            ..Config::default()
        };
        let text = cfg.to_toml().unwrap();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), cfg);
        let defaults = Config::default().to_toml().unwrap();
        assert_eq!(
            toml::from_str::<Config>(&defaults).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn weight_flag() {
        assert_eq!(parse_weight("a=b=2.5"), Ok(("a=b".to_owned(), 2.5)));
        assert!(parse_weight("a").is_err());
        assert!(parse_weight("a=x").is_err());
    }
}
