//! The analyzer sink: an analyzer that verifies and logs every arrival.
//!
//! # Layout
//!
//! - [`verify`]: magic, crc, duplicates, the exact seqs seen per emitter.
//! - [`pace`]: the simulated slow analyzer (`--capacity`, `--delay-us`, and a slow phase
//!   toggled by SIGUSR1/SIGUSR2 with `--slow-capacity`).
//! - [`record`]: `full` (a row per arrival) and `summary` (per-second aggregates) logging.
//! - [`session`]: connect, HELLO, read DELIVER frames, ACK, reconnect with backoff.
//!
//! [`run`] keeps one session at a time to the distributor, reconnecting after failures,
//! until the shutdown future completes; then it flushes everything and writes its totals.

pub mod pace;
pub mod record;
pub mod session;
pub mod verify;

use anyhow::Context as _;
use clap::Parser;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Analyzer sink for the log distributor: verifies every probe (magic, crc32; text probes
/// and their PRI too), counts corrupt, foreign and duplicate frames, logs every arrival as
/// CSV into --out, and ACKs what it has logged when --acks is given. Reconnects with backoff when the distributor
/// goes away. SIGTERM or SIGINT: flush and exit 0.
///
/// The same settings deserialize from a profile's `[[analyzers]]` table (field names with
/// `_`), and [`Config::to_args`] turns them back into these flags.
#[derive(Debug, Clone, PartialEq, Parser, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
#[command(version = runner::VERSION)]
pub struct Config {
    /// The distributor's analyzer address, HOST:PORT (a host name or an IP address).
    #[arg(long, value_name = "HOST:PORT", default_value_t = default_distributor(), value_parser = runner::addr::parse)]
    #[serde(default = "default_distributor", with = "runner::addr::serde_addr")]
    pub distributor: SocketAddr,
    /// Analyzer id (1-64 of A-Z a-z 0-9 _ . -; it names the output files).
    #[arg(long)]
    pub id: String,
    /// Weight sent in the HELLO.
    #[arg(long, default_value_t = default_weight())]
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Ask for at-least-once delivery and send cumulative ACKs.
    #[arg(long)]
    #[serde(default)]
    pub acks: bool,
    /// Process at most this many messages per second (a slow analyzer, so backlogs form).
    #[arg(long, value_name = "MSGS_PER_SEC", conflicts_with = "delay_us")]
    #[serde(default)]
    pub capacity: Option<f64>,
    /// Spend this long per message (same as --capacity 1e6/N).
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub delay_us: Option<u64>,
    /// Capacity in msg/s during a slow phase: SIGUSR1 starts it, SIGUSR2 ends it.
    #[arg(long, value_name = "MSGS_PER_SEC")]
    #[serde(default)]
    pub slow_capacity: Option<f64>,
    /// Folder for the CSV files (created if missing).
    #[arg(long, value_name = "DIR", default_value_os_t = default_out())]
    #[serde(default = "default_out")]
    pub out: PathBuf,
    /// `full`: a row per arrival; `summary`: per-second aggregates and exact seq ranges.
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub log: record::LogMode,
    /// SO_RCVBUF of the connection in bytes (small makes a slow sink's backlog form in the
    /// distributor's priority queues instead of the kernel). Default: the system's.
    #[arg(long, value_name = "BYTES")]
    #[serde(default)]
    pub recv_buffer: Option<u32>,
    /// What arrives: `probes` (the loadgen's, verified end to end) or `foreign` (another
    /// emitter's payloads: counted and logged, not verified; the report then judges
    /// weights, order and accounting only).
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub traffic: runfolder::Traffic,
    /// Accept BATCH frames compressed with this codec (HELLO flag bit 1 or 2): the sink
    /// decodes them, checks each one's `count` and `raw_len` against what decoded, and
    /// counts them with the bytes on the wire and before compression in `link-<ID>.csv`.
    #[arg(long, value_enum, value_name = "CODEC")]
    #[serde(default)]
    pub compress: Option<runfolder::Compression>,
    /// Largest LOG frame expected (as the distributor's --max-frame).
    #[arg(long, value_name = "BYTES", default_value_t = protocol::log::DEFAULT_MAX_FRAME)]
    #[serde(default = "default_max_frame")]
    pub max_frame: u32,
    /// TLS to the distributor (the harness passes the files it minted; not in profiles).
    #[command(flatten)]
    #[serde(skip)]
    pub tls: runner::tls::ClientFlags,
}

fn default_distributor() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}
fn default_weight() -> f64 {
    1.0
}
fn default_out() -> PathBuf {
    PathBuf::from(".")
}
fn default_max_frame() -> u32 {
    protocol::log::DEFAULT_MAX_FRAME
}

impl Config {
    /// A sink with this id and every other setting at its default.
    pub fn with_id(id: &str) -> Self {
        Self {
            distributor: default_distributor(),
            id: id.to_owned(),
            weight: default_weight(),
            acks: false,
            capacity: None,
            delay_us: None,
            slow_capacity: None,
            out: default_out(),
            log: record::LogMode::default(),
            traffic: runfolder::Traffic::default(),
            recv_buffer: None,
            compress: None,
            max_frame: default_max_frame(),
            tls: runner::tls::ClientFlags::default(),
        }
    }

    /// The command line that gives these settings (`analyzer-sink` parses it back the
    /// same).
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            format!("--distributor={}", self.distributor),
            format!("--id={}", self.id),
            format!("--weight={}", self.weight),
            format!("--out={}", self.out.display()),
            format!("--log={}", self.log),
            format!("--traffic={}", self.traffic),
            format!("--max-frame={}", self.max_frame),
        ];
        if self.acks {
            v.push("--acks".into());
        }
        let optional = [
            ("capacity", self.capacity.map(|c| c.to_string())),
            ("delay-us", self.delay_us.map(|d| d.to_string())),
            ("slow-capacity", self.slow_capacity.map(|c| c.to_string())),
            ("recv-buffer", self.recv_buffer.map(|b| b.to_string())),
            ("compress", self.compress.map(|c| c.to_string())),
        ];
        for (flag, value) in optional {
            if let Some(value) = value {
                v.push(format!("--{flag}={value}"));
            }
        }
        v.extend(self.tls.to_args());
        v
    }

    /// Checks what clap and serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        runfolder::check_file_id(&self.id).map_err(|e| anyhow::anyhow!("--id {e}"))?;
        anyhow::ensure!(
            self.weight.is_finite() && self.weight > 0.0,
            "--weight must be finite and > 0"
        );
        for (flag, value) in [
            ("--capacity", self.capacity),
            ("--slow-capacity", self.slow_capacity),
        ] {
            if let Some(c) = value {
                anyhow::ensure!(
                    c.is_finite() && c > 0.0,
                    "{flag} must be > 0 messages per second"
                );
            }
        }
        anyhow::ensure!(
            !(self.capacity.is_some() && self.delay_us.is_some()),
            "--capacity and --delay-us cannot be used together"
        );
        Ok(())
    }
}

/// The protocol's codec for a setting.
pub(crate) fn codec(c: runfolder::Compression) -> protocol::codec::Codec {
    match c {
        runfolder::Compression::Lz4 => protocol::codec::Codec::Lz4,
        runfolder::Compression::Zstd => protocol::codec::Codec::Zstd,
    }
}

/// Whole seconds since the epoch now.
pub(crate) fn now_second() -> u64 {
    protocol::now_ns() / 1_000_000_000
}

/// Runs the sink until `shutdown`; returns its final counts.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<verify::Counts> {
    config.validate()?;
    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("cannot create {}", config.out.display()))?;
    let sink = session::Sink::new(config)?;
    let slow = sink.slow_switch();
    // SIGUSR1 / SIGUSR2 toggle the slow phase; without signal support the phase never
    // starts, which the log says.
    let signals = tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut on), Ok(mut off)) = (
            signal(SignalKind::user_defined1()),
            signal(SignalKind::user_defined2()),
        ) else {
            tracing::warn!("cannot listen for SIGUSR1/SIGUSR2: no slow phase");
            return;
        };
        loop {
            tokio::select! {
                _ = on.recv() => {
                    tracing::info!("SIGUSR1: slow phase on");
                    slow.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                _ = off.recv() => {
                    tracing::info!("SIGUSR2: slow phase off");
                    slow.store(false, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    });
    let result = sink.run(shutdown).await;
    signals.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_args_parses_back_the_same() {
        let cfg = Config {
            distributor: "127.0.0.1:9".parse().unwrap(),
            weight: 2.5,
            acks: true,
            capacity: Some(350.5),
            slow_capacity: Some(10.0),
            out: PathBuf::from("/tmp/a b"),
            log: record::LogMode::Summary,
            traffic: runfolder::Traffic::Foreign,
            recv_buffer: Some(65536),
            compress: Some(runfolder::Compression::Zstd),
            max_frame: 4096,
            tls: runner::tls::ClientFlags::minted(
                std::path::Path::new("/tls/ca.pem"),
                std::path::Path::new("/tls"),
                "c1",
            ),
            ..Config::with_id("c1")
        };
        let args = std::iter::once("analyzer-sink".to_owned()).chain(cfg.to_args());
        assert_eq!(Config::try_parse_from(args).unwrap(), cfg);
        let delay = Config {
            delay_us: Some(20),
            ..Config::with_id("d")
        };
        let args = std::iter::once("analyzer-sink".to_owned()).chain(delay.to_args());
        assert_eq!(Config::try_parse_from(args).unwrap(), delay);
    }

    #[test]
    fn the_distributor_takes_a_host_name() {
        let c =
            Config::try_parse_from(["analyzer-sink", "--id=a", "--distributor", "localhost:8081"])
                .unwrap();
        assert_eq!(c.distributor, "127.0.0.1:8081".parse().unwrap());
    }

    #[test]
    fn clap_and_serde_share_the_defaults() {
        let from_flags = Config::try_parse_from(["analyzer-sink", "--id=a"]).unwrap();
        let from_toml: Config = toml::from_str("id = \"a\"\n").unwrap();
        assert_eq!(from_flags, Config::with_id("a"));
        assert_eq!(from_toml, Config::with_id("a"));
    }

    #[test]
    fn bad_settings_are_named() {
        let err = toml::from_str::<Config>("id = \"a\"\nlog = \"verbose\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("verbose") && err.contains("log"), "{err}");
        let err = toml::from_str::<Config>("weight = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("id"), "{err}");
        let bad_id = Config::with_id("a/b").validate().unwrap_err().to_string();
        assert!(
            bad_id.contains("--id") && bad_id.contains("a/b"),
            "{bad_id}"
        );
    }
}
