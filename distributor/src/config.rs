//! Every setting of the distributor, declared once: each field of [`Config`] carries its
//! flag (clap), its key in a config file (serde, `-` or `_` spellings), its default (one
//! named function serving both) and the doc comment that is both its `--help` text and its
//! row in the README's table (a test holds the README to `--help`). A flag wins over the
//! file, the file over the defaults ([`crate::cli`]). Ranges the types cannot express are
//! checked at load time by [`Config::validate`], so a bad value fails at once naming the
//! setting.

use crate::engine::EngineConfig;
use crate::engine::health::RetrySchedule;
use crate::journal::JournalConfig;
use runfolder::{Fsync, Overflow, Routing, WhenFull};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("{}{error}", file_prefix(path))]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the field.
        error: toml::de::Error,
    },
    /// A key the distributor does not know.
    #[error(
        "{}unknown setting `{key}`{}",
        file_prefix(path),
        did_you_mean(suggestion)
    )]
    Unknown {
        /// The file.
        path: PathBuf,
        /// The key as written.
        key: String,
        /// The nearest known key, when one is near.
        suggestion: Option<String>,
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

fn file_prefix(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        String::new()
    } else {
        format!("config file {}: ", path.display())
    }
}

fn did_you_mean(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

/// A duration's default as the flags show it: seconds.
fn secs(d: Duration) -> String {
    d.as_secs_f64().to_string()
}

/// Parses a duration flag given in seconds.
fn parse_secs_arg(s: &str) -> Result<Duration, String> {
    parse_secs(
        s.parse::<f64>()
            .map_err(|_| format!("{s:?} is not a number of seconds"))?,
    )
}

/// Serde for a `Duration` setting written in seconds (`0.5`, `10`).
mod secs_serde {
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

/// An IP network: an address and a prefix length (`10.0.0.0/8`; one address alone is
/// `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is inside (an IPv4 address mapped into IPv6 counts as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (net, ip, bits) = match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n) as u128, u32::from(i) as u128, 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= 128 || (net >> shift) == (ip >> shift)
    }
}

impl std::str::FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not a network: {addr:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(format!(
                        "{s:?} is not a network: the prefix length must be 0 to {max}"
                    ));
                }
            },
        };
        Ok(Self { addr, prefix })
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Network {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Every setting of the distributor. In a file the keys are these names with `-` (as in
/// the flags) or `_`.
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Address for emitters (LOG frames).
    #[arg(long, value_name = "HOST:PORT", default_value_t = default_emitter_listen(), value_parser = runner::addr::parse)]
    #[serde(
        default = "default_emitter_listen",
        alias = "emitter_listen",
        with = "runner::addr::serde_addr"
    )]
    pub emitter_listen: SocketAddr,
    /// Address for analyzers (HELLO, DELIVER, ACK, REJECT).
    #[arg(long, value_name = "HOST:PORT", default_value_t = default_analyzer_listen(), value_parser = runner::addr::parse)]
    #[serde(
        default = "default_analyzer_listen",
        alias = "analyzer_listen",
        with = "runner::addr::serde_addr"
    )]
    pub analyzer_listen: SocketAddr,
    /// Weights pinned by analyzer id, which win over the weight in the HELLO (the flag is
    /// `--weight ID=W`, declared with `--config` in [`crate::cli::Cli`]; in a file, a
    /// `[weights]` table).
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, f64>,
    /// How to choose an analyzer: `random` in proportion to weight (alias table, O(1) per
    /// pick), or `smooth`: deterministic earliest-deadline-first, within one message of
    /// the exact share at all times.
    #[arg(long, value_enum, default_value_t = Routing::Random)]
    #[serde(default)]
    pub routing: Routing,
    /// Seed of the random router, for reproducible runs (default: from the clock).
    #[arg(long, value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Frames per priority level per analyzer.
    #[arg(long, value_name = "N", default_value_t = default_queue_capacity())]
    #[serde(default = "default_queue_capacity", alias = "queue_capacity")]
    pub queue_capacity: usize,
    /// When a frame finds no room (its analyzer's queue, the holding queue or
    /// `--max-queued-bytes`): stop reading that emitter until room frees
    /// (`backpressure`), or drop and count (`drop`).
    #[arg(long, value_enum, default_value_t = Overflow::Backpressure)]
    #[serde(default)]
    pub overflow: Overflow,
    /// When the analyzer chosen by weight has no room at the frame's priority: route it to
    /// another analyzer with room (`spill`: nothing waits while an analyzer could take it,
    /// shares drift while one falls behind; counted per analyzer), or never route away from
    /// the weighted choice (`strict`: shares hold, the overflow policy applies).
    #[arg(long, value_enum, default_value_t = WhenFull::Spill)]
    #[serde(default, alias = "when_full")]
    pub when_full: WhenFull,
    /// Bytes of frames queued, in flight or held, each counting its payload plus 64; a new
    /// frame past it meets the overflow policy (drops counted as `bytes_full`).
    #[arg(long, value_name = "BYTES", default_value_t = default_max_queued_bytes())]
    #[serde(default = "default_max_queued_bytes", alias = "max_queued_bytes")]
    pub max_queued_bytes: u64,
    /// Bytes of partial frames buffered over every emitter connection; past it the
    /// connections with the largest stalled partial frames are closed (`buffer_budget`).
    #[arg(long, value_name = "BYTES", default_value_t = default_max_buffered_bytes())]
    #[serde(default = "default_max_buffered_bytes", alias = "max_buffered_bytes")]
    pub max_buffered_bytes: u64,
    /// Unacknowledged frames per at-least-once analyzer; past it the analyzer gets nothing
    /// more until it ACKs.
    #[arg(long, value_name = "N", default_value_t = default_ack_window())]
    #[serde(default = "default_ack_window", alias = "ack_window")]
    pub ack_window: usize,
    /// Seconds without write progress (or, with ACKs, ACK progress while frames are
    /// outstanding) after which an analyzer counts as failed.
    #[arg(long, value_name = "SECS", default_value = secs(default_hang_timeout()), value_parser = parse_secs_arg)]
    #[serde(
        default = "default_hang_timeout",
        alias = "hang_timeout",
        with = "secs_serde"
    )]
    pub hang_timeout: Duration,
    /// Largest LOG `frame_len` in bytes (at most 256 MiB, so a DELIVER length cannot
    /// wrap); a larger one is a protocol error.
    #[arg(long, value_name = "BYTES", default_value_t = default_max_frame())]
    #[serde(default = "default_max_frame", alias = "max_frame")]
    pub max_frame: u32,
    /// How long a frame may wait in the holding queue: as long as N retries on a 10 ms
    /// doubling to 2 s backoff take (26.5 s for 20), then it is dropped and counted
    /// (`retries_exhausted`); held frames are offered again whenever room may have freed
    /// and at least every 100 ms.
    #[arg(long, value_name = "N", default_value_t = default_max_attempts())]
    #[serde(default = "default_max_attempts", alias = "max_attempts")]
    pub max_attempts: u32,
    /// Frames held while no analyzer is live, before the overflow policy applies.
    #[arg(long, value_name = "N", default_value_t = default_holding_capacity())]
    #[serde(default = "default_holding_capacity", alias = "holding_capacity")]
    pub holding_capacity: usize,
    /// Seconds between SIGTERM and closing the listeners, while `/ready` answers 503 and
    /// everything else goes on, so that a load balancer moves new connections away first
    /// (0: none; the drain timeout follows it).
    #[arg(long, value_name = "SECS", default_value = secs(Duration::ZERO), value_parser = parse_secs_arg)]
    #[serde(default, alias = "drain_delay", with = "secs_serde")]
    pub drain_delay: Duration,
    /// Seconds to drain queues to live analyzers at shutdown.
    #[arg(long, value_name = "SECS", default_value = secs(default_drain_timeout()), value_parser = parse_secs_arg)]
    #[serde(
        default = "default_drain_timeout",
        alias = "drain_timeout",
        with = "secs_serde"
    )]
    pub drain_timeout: Duration,
    /// Emitter connections open at once (at most the open-files limit less a reserve for
    /// analyzers, /metrics and files); at the cap the connection idle longest (1 s at
    /// least) is closed for each new one (`max_connections`); with none idle, new ones
    /// wait in the accept backlog.
    #[arg(long, value_name = "N", default_value_t = default_max_connections())]
    #[serde(default = "default_max_connections", alias = "max_connections")]
    pub max_connections: usize,
    /// A network of known emitters (repeatable; `10.0.0.0/8`, `2001:db8::/32` or one
    /// address): at the connection cap, a connection from one of them closes the newest
    /// connection from elsewhere to take its place, so that busy unknown clients cannot
    /// lock known emitters out (`known-emitters = [...]` in a file).
    #[arg(long = "known-emitter", value_name = "CIDR")]
    #[serde(
        default,
        alias = "known_emitters",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub known_emitters: Vec<Network>,
    /// Live analyzer sessions at most; a HELLO with another id gets a REJECT naming the
    /// limit (a live id may still reconnect).
    #[arg(long, value_name = "N", default_value_t = default_max_analyzers())]
    #[serde(default = "default_max_analyzers", alias = "max_analyzers")]
    pub max_analyzers: usize,
    /// The largest weight a HELLO may claim; above it, a REJECT naming the limit (weights
    /// pinned with `--weight` are not limited).
    #[arg(long, value_name = "W", default_value_t = default_max_weight())]
    #[serde(default = "default_max_weight", alias = "max_weight")]
    pub max_weight: f64,
    /// Seconds an emitter's frame may take to arrive whole once it began (the
    /// distributor's own backpressure waits not counted); past it the connection ends, the
    /// partial frame counted as truncated and the close as `slow_frame`.
    #[arg(long, value_name = "SECS", default_value = secs(default_frame_timeout()), value_parser = parse_secs_arg)]
    #[serde(
        default = "default_frame_timeout",
        alias = "frame_timeout",
        with = "secs_serde"
    )]
    pub frame_timeout: Duration,
    /// Seconds an analyzer id may be without a session before its per-id series leave
    /// /metrics and the stats CSV, folded into the totals
    /// (`distributor_forgotten_analyzers_total` counts the ids).
    #[arg(long, value_name = "SECS", default_value = secs(default_forget_after()), value_parser = parse_secs_arg)]
    #[serde(
        default = "default_forget_after",
        alias = "forget_after",
        with = "secs_serde"
    )]
    pub forget_after: Duration,
    /// Analyzer ids without a session remembered at most (each keeps its series in
    /// /metrics and its stats CSV row, about 1.3 KB of /metrics); past it the least
    /// recently seen are folded into the totals at once, whatever `--forget-after` says.
    #[arg(long, value_name = "N", default_value_t = default_max_remembered_ids())]
    #[serde(default = "default_max_remembered_ids", alias = "max_remembered_ids")]
    pub max_remembered_ids: usize,
    /// Serve OpenMetrics text (what Prometheus scrapes) at `http://HOST:PORT/metrics`
    /// (`https://` with `--tls-cert`); off unless set.
    #[arg(long, value_name = "HOST:PORT", value_parser = runner::addr::parse)]
    #[serde(
        default,
        alias = "metrics_listen",
        with = "runner::addr::serde_opt_addr",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve every listener (emitters, analyzers, /metrics) over TLS 1.3 or 1.2 (AEAD
    /// suites only) with this certificate chain (PEM); needs `--tls-key`; re-read on
    /// SIGHUP.
    #[arg(long, value_name = "PEM")]
    #[serde(default, alias = "tls_cert", skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, value_name = "PEM")]
    #[serde(default, alias = "tls_key", skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Require a client certificate signed by this CA (PEM) on the emitter and analyzer
    /// ports (mutual TLS); its first DNS name, else its CN, is the peer's identity, and an
    /// analyzer's HELLO id must equal it.
    #[arg(long, value_name = "PEM")]
    #[serde(
        default,
        alias = "tls_client_ca",
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// Access rules by identity (TOML): priorities per emitter, identities allowed as
    /// analyzers; re-read on SIGHUP (a bad file keeps the rules in force).
    #[arg(long, value_name = "FILE.toml")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<PathBuf>,
    /// Seconds a client has to finish its TLS handshake; past it the connection is closed
    /// (counted as `timeout`).
    #[arg(long, value_name = "SECS", default_value = secs(default_handshake_timeout()), value_parser = parse_secs_arg)]
    #[serde(
        default = "default_handshake_timeout",
        alias = "handshake_timeout",
        with = "secs_serde"
    )]
    pub handshake_timeout: Duration,
    /// Journal every frame in this directory before it is secured (ACKs to emitters wait
    /// for it), keep frames without room on disk, deliver what the last run left at start;
    /// one distributor per directory (a lock file names the holder's pid).
    #[arg(long, value_name = "DIR")]
    #[serde(default, alias = "data_dir", skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// When the journal calls fdatasync: every `--fsync-interval-ms` (`interval`: group
    /// commit), as soon as anything was written (`always`), or `never` (secured once
    /// written to the file: survives the process dying, not the machine).
    #[arg(long, value_enum, default_value_t = Fsync::Interval)]
    #[serde(default)]
    pub fsync: Fsync,
    /// The group-commit period of `--fsync interval`, in ms (1 to 10000).
    #[arg(long, value_name = "MS", default_value_t = default_fsync_interval_ms())]
    #[serde(default = "default_fsync_interval_ms", alias = "fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// Bytes of journal on disk at most; a frame past it meets the overflow policy (drops
    /// counted as `journal_full`).
    #[arg(long, value_name = "BYTES", default_value_t = default_journal_max_bytes())]
    #[serde(default = "default_journal_max_bytes", alias = "journal_max_bytes")]
    pub journal_max_bytes: u64,
    /// Size of a journal segment file (4 KiB to 1 GiB); a segment is deleted once every
    /// frame in it is done.
    #[arg(long, value_name = "BYTES", default_value_t = default_journal_segment_bytes())]
    #[serde(
        default = "default_journal_segment_bytes",
        alias = "journal_segment_bytes"
    )]
    pub journal_segment_bytes: u64,
    /// Write a row of stats per second to this CSV file; off unless set.
    #[arg(long, value_name = "PATH")]
    #[serde(default, alias = "stats_csv", skip_serializing_if = "Option::is_none")]
    pub stats_csv: Option<PathBuf>,
}

fn default_emitter_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_analyzer_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}
fn default_queue_capacity() -> usize {
    1000
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
fn default_max_remembered_ids() -> usize {
    1024
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

impl Default for Config {
    #[expect(
        clippy::expect_used,
        reason = "every field has a serde default, so an empty table always deserializes (the test `an_empty_file_is_the_defaults`)"
    )]
    fn default() -> Self {
        // Every field's declared default, through the same functions the flags use.
        toml::from_str("").expect("an empty config file is the defaults")
    }
}

impl Config {
    /// Reads and checks a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let cfg = Self::from_toml(&text).map_err(|e| e.in_file(path))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads settings from TOML text; an unknown key is named with the nearest known one.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: PathBuf::new(),
            error,
        })?;
        let known = Self::keys();
        for key in table.keys() {
            if !known
                .iter()
                .any(|k| k == key || k.replace('-', "_") == *key)
            {
                return Err(ConfigError::Unknown {
                    path: PathBuf::new(),
                    key: key.clone(),
                    suggestion: runner::suggest::closest(key, known.iter().map(String::as_str))
                        .map(str::to_owned),
                });
            }
        }
        toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: PathBuf::new(),
            error,
        })
    }

    /// Every key of a config file, spelled as the flags are.
    pub fn keys() -> Vec<String> {
        use clap::Args as _;
        // The flags are the keys, and `--weight`'s table `weights`.
        let flags = Self::augment_args(clap::Command::new("distributor"));
        flags
            .get_arguments()
            .filter_map(|a| a.get_long())
            .map(str::to_owned)
            .chain(["weights".to_owned()])
            .collect()
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
        let frame_cost = u64::from(self.max_frame) + crate::engine::frame::FRAME_OVERHEAD as u64;
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
    pub(crate) fn journal(&self) -> Option<JournalConfig> {
        self.data_dir.as_ref().map(|dir| JournalConfig {
            dir: dir.clone(),
            fsync: self.fsync,
            fsync_interval: Duration::from_millis(self.fsync_interval_ms),
            max_bytes: self.journal_max_bytes,
            segment_bytes: self.journal_segment_bytes,
        })
    }

    /// The part of the settings the engine uses.
    pub(crate) fn engine(&self) -> EngineConfig {
        EngineConfig {
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
            max_remembered_ids: self.max_remembered_ids,
        }
    }
}

impl ConfigError {
    /// The same error, naming the file it came from.
    fn in_file(self, file: &Path) -> Self {
        match self {
            ConfigError::Parse { error, .. } => ConfigError::Parse {
                path: file.to_owned(),
                error,
            },
            ConfigError::Unknown {
                key, suggestion, ..
            } => ConfigError::Unknown {
                path: file.to_owned(),
                key,
                suggestion,
            },
            other => other,
        }
    }
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
        assert_eq!(cfg.metrics_listen.map(|a| a.port()), Some(8082));
        assert_eq!(
            cfg.data_dir.as_deref(),
            Some(Path::new("/var/lib/log-distributor/journal"))
        );
        // A load balancer in front: not ready for 5 s before the listeners close.
        assert_eq!(cfg.drain_delay, Duration::from_secs(5));
        // Every other setting it writes out is the default, as its comment says.
        let defaults = Config {
            drain_delay: cfg.drain_delay,
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
            known_emitters: vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
            ..Config::default()
        };
        let text = cfg.to_toml().unwrap();
        assert!(
            text.contains("known-emitters = [\"10.0.0.0/8\", \"::1/128\"]"),
            "{text}"
        );
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), cfg);
        let defaults = Config::default().to_toml().unwrap();
        assert_eq!(
            toml::from_str::<Config>(&defaults).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn networks_parse_match_and_name_what_is_wrong() {
        let n: Network = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(
            n.contains("::ffff:10.1.0.9".parse().unwrap()),
            "mapped IPv4"
        );
        assert!(!n.contains("::1".parse().unwrap()));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let v6: Network = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        let one: Network = "127.0.0.2".parse().unwrap();
        assert!(one.contains("127.0.0.2".parse().unwrap()));
        assert!(!one.contains("127.0.0.3".parse().unwrap()));
        for (bad, want) in [
            ("10.0.0.0/33", "the prefix length must be 0 to 32"),
            ("::/129", "the prefix length must be 0 to 128"),
            ("10.0.0/8", "\"10.0.0\" is not an IP address"),
            ("example.org", "is not an IP address"),
        ] {
            let e = bad.parse::<Network>().unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn weight_flag() {
        assert_eq!(parse_weight("a=b=2.5"), Ok(("a=b".to_owned(), 2.5)));
        assert!(parse_weight("a").is_err());
        assert!(parse_weight("a=x").is_err());
    }

    #[test]
    fn an_empty_file_is_the_defaults_and_underscores_read_too() {
        let defaults: Config = toml::from_str("").unwrap();
        assert_eq!(defaults, Config::default());
        assert_eq!(defaults.queue_capacity, 1000);
        assert_eq!(defaults.drain_timeout, Duration::from_secs(10));
        // Every key also reads spelled with `_`.
        let text = defaults.to_toml().unwrap();
        let underscored: String = text
            .lines()
            .map(|l| match l.split_once(" = ") {
                Some((k, v)) => format!("{} = {v}\n", k.replace('-', "_")),
                None => format!("{l}\n"),
            })
            .collect();
        assert_eq!(Config::from_toml(&underscored).unwrap(), defaults);
        // The keys are the flags' names.
        let keys = Config::keys();
        assert!(keys.contains(&"hang-timeout".to_owned()) && keys.contains(&"weights".to_owned()));
        assert!(!keys.contains(&"config".to_owned()));
    }
}
