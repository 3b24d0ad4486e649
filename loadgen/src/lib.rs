//! The emitter load generator: many emitters in one process, each its own TCP connection
//! and emitter id, sending probe payloads (PROTOCOL.md §4) at an open-loop rate.
//!
//! # Layout
//!
//! - [`generate`]: seeded generators of priorities, sizes and whole LOG frames (or
//!   syslog messages).
//! - [`text`]: filler that reads like people's logs (`--payload text`).
//! - [`pacing`]: the open-loop schedule (what is due by now).
//! - [`emitter`]: one emitter's connection: pacing, batching, reconnects, counters.
//! - [`output`]: the per-second CSV and the manifest.
//! - [`progress`]: the progress bar on a terminal, plain status lines otherwise.
//!
//! [`run`] connects every emitter, starts the clock, lets them send for the duration (or
//! until the shutdown future completes), and writes the CSVs.

pub mod acks;
pub mod emitter;
pub mod generate;
pub mod output;
pub mod pacing;
pub mod progress;
pub mod text;

use anyhow::Context as _;
use clap::Parser;
use generate::{PriorityMode, PriorityRange};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Messages per second per emitter, or as fast as the distributor takes them. Written
/// as a number or `max`, on the command line and in profiles alike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Open loop at this many messages per second.
    PerSecond(f64),
    /// Saturate: send whenever the socket takes more.
    Max,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(Rate::Max);
        }
        match s.parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 => Ok(Rate::PerSecond(r)),
            _ => Err(format!("{s:?} is neither a rate > 0 nor \"max\"")),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::PerSecond(r) => write!(f, "{r}"),
            Rate::Max => f.write_str("max"),
        }
    }
}

impl serde::Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Rate::PerSecond(r) => s.serialize_f64(*r),
            Rate::Max => s.serialize_str("max"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Rate;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of messages per second > 0, or \"max\"")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Rate, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Rate, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Rate, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Rate, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Emitter load generator for the log distributor.
///
/// Sends probe messages (PROTOCOL.md section 4) from N emitters, each its own TCP
/// connection, at an open-loop rate; writes per-second counts and a per-emitter manifest
/// as CSV into --out.
///
/// Priority modes: single (always --priority); random (uniform over --priority-range);
/// cyclic (round robin over the range); weighted: over a range of n levels, level A+k gets
/// 60%/4 for k<4, 30%/28 for 4<=k<32, 10%/(n-32) for k>=32 (unreached tiers left out and
/// the rest renormalised), i.e. 60% on the 4 most urgent levels, 30% on the next 28 and a
/// 10% tail.
///
/// The same settings deserialize from a profile's `[emitters]` table (field names with
/// `_`; `count` is accepted for `emitters`), and [`Config::to_args`] turns them back into
/// these flags.
#[derive(Debug, Clone, PartialEq, Parser, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
#[command(version = runner::VERSION)]
pub struct Config {
    /// The distributor's emitter address, HOST:PORT (a host name or an IP address).
    #[arg(long, value_name = "HOST:PORT", default_value_t = default_target(), value_parser = runner::addr::parse)]
    #[serde(default = "default_target", with = "runner::addr::serde_addr")]
    pub target: SocketAddr,
    /// Number of emitters (connections).
    #[arg(long, value_name = "N", default_value_t = 1)]
    #[serde(default = "one", alias = "count")]
    pub emitters: u32,
    /// Messages per second per emitter, or `max`.
    #[arg(long, value_name = "R|max", default_value_t = default_rate())]
    #[serde(default = "default_rate")]
    pub rate: Rate,
    /// Seconds to send.
    #[arg(long, value_name = "SECS", default_value_t = default_duration())]
    #[serde(default = "default_duration")]
    pub duration: f64,
    /// How priorities are chosen.
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub priority_mode: PriorityMode,
    /// The priority of `single`.
    #[arg(long, value_name = "P", default_value_t = 0)]
    #[serde(default)]
    pub priority: u8,
    /// The range of `random`, `weighted` and `cyclic`.
    #[arg(long, value_name = "A-B", default_value_t = PriorityRange::ALL)]
    #[serde(default = "all_priorities")]
    pub priority_range: PriorityRange,
    /// Mean payload size in bytes (log-normal).
    #[arg(long, value_name = "BYTES", default_value_t = default_size_mean())]
    #[serde(default = "default_size_mean")]
    pub size_mean: f64,
    /// Shape of the log-normal size distribution.
    #[arg(long, value_name = "SIGMA", default_value_t = default_size_sigma())]
    #[serde(default = "default_size_sigma")]
    pub size_sigma: f64,
    /// Smallest payload (at least 28, a probe's header and crc).
    #[arg(long, value_name = "BYTES", default_value_t = default_size_min())]
    #[serde(default = "default_size_min")]
    pub size_min: usize,
    /// Largest payload.
    #[arg(long, value_name = "BYTES", default_value_t = default_size_max())]
    #[serde(default = "default_size_max")]
    pub size_max: usize,
    /// Seed of every random choice (same seed, same bytes).
    #[arg(long, value_name = "N", default_value_t = 1)]
    #[serde(default = "one_u64")]
    pub seed: u64,
    /// Emitter ids are BASE, BASE+1, ...; give each loadgen process of a run its own range.
    #[arg(long, value_name = "N", default_value_t = 0)]
    #[serde(default)]
    pub emitter_id_base: u32,
    /// Folder for the CSV files (created if missing).
    #[arg(long, value_name = "DIR", default_value_os_t = default_out())]
    #[serde(default = "default_out")]
    pub out: PathBuf,
    /// Seconds an emitter may take to make its first connection before the run fails.
    #[arg(long, value_name = "SECS", default_value_t = default_connect_timeout())]
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: f64,
    /// Open each connection with an EMITTER HELLO asking for ACKs; keep every message until
    /// the distributor secures it, and after a broken connection send the unsecured ones
    /// again (PROTOCOL.md §5).
    #[arg(long)]
    #[serde(default)]
    pub acks: bool,
    /// With --acks: messages per emitter written and not yet secured at most; a full window
    /// waits for ACKs (the schedule lags), it never drops.
    #[arg(long, value_name = "N", default_value_t = default_ack_window())]
    #[serde(default = "default_ack_window")]
    pub ack_window: usize,
    /// What the target is sent: `log` (LOG frames with binary probes, to the emitter port)
    /// or `syslog` (RFC 5424 lines ending in text probes, to a syslog port).
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub format: runfolder::Format,
    /// The probes' filler: `random` bytes, or `text` that reads like people's logs (the
    /// default, and the only choice, for `--format syslog`).
    #[arg(long, value_enum)]
    #[serde(default)]
    pub payload: Option<runfolder::Payload>,
    /// With `--format syslog`: octet counting (`MSG-LEN SP MSG`) or a LF after each message.
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub framing: runfolder::SyslogFraming,
    /// Compress each connection's stream with this codec (it opens with an EMITTER HELLO
    /// naming it; with or without --acks). The compressor is flushed at every write.
    #[arg(long, value_enum, value_name = "CODEC")]
    #[serde(default)]
    pub compress: Option<runfolder::Compression>,
    /// zstd's level with `--compress zstd` (1-19).
    #[arg(long, value_name = "N", default_value_t = default_zstd_level())]
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// TLS to the distributor (the harness passes the files it minted; not in profiles).
    #[command(flatten)]
    #[serde(skip)]
    pub tls: runner::tls::ClientFlags,
}

fn default_zstd_level() -> i32 {
    protocol::codec::DEFAULT_ZSTD_LEVEL
}

fn default_target() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn one() -> u32 {
    1
}
fn one_u64() -> u64 {
    1
}
fn default_rate() -> Rate {
    Rate::PerSecond(100.0)
}
fn default_duration() -> f64 {
    10.0
}
fn all_priorities() -> PriorityRange {
    PriorityRange::ALL
}
fn default_size_mean() -> f64 {
    512.0
}
fn default_size_sigma() -> f64 {
    0.5
}
fn default_size_min() -> usize {
    64
}
fn default_size_max() -> usize {
    8192
}
fn default_out() -> PathBuf {
    PathBuf::from(".")
}
fn default_connect_timeout() -> f64 {
    10.0
}
fn default_ack_window() -> usize {
    65536
}

impl Default for Config {
    fn default() -> Self {
        Self {
            target: default_target(),
            emitters: one(),
            rate: default_rate(),
            duration: default_duration(),
            priority_mode: PriorityMode::default(),
            priority: 0,
            priority_range: PriorityRange::ALL,
            size_mean: default_size_mean(),
            size_sigma: default_size_sigma(),
            size_min: default_size_min(),
            size_max: default_size_max(),
            seed: one_u64(),
            emitter_id_base: 0,
            out: default_out(),
            connect_timeout: default_connect_timeout(),
            acks: false,
            ack_window: default_ack_window(),
            format: runfolder::Format::default(),
            payload: None,
            framing: runfolder::SyslogFraming::default(),
            compress: None,
            zstd_level: default_zstd_level(),
            tls: runner::tls::ClientFlags::default(),
        }
    }
}

impl Config {
    /// What the probes' filler is.
    pub fn payload(&self) -> runfolder::Payload {
        match (self.payload, self.format) {
            (Some(p), _) => p,
            (None, runfolder::Format::Syslog) => runfolder::Payload::Text,
            (None, runfolder::Format::Log) => runfolder::Payload::Random,
        }
    }

    /// The codec of `--compress`.
    pub fn codec(&self) -> Option<protocol::codec::Codec> {
        self.compress.map(|c| match c {
            runfolder::Compression::Lz4 => protocol::codec::Codec::Lz4,
            runfolder::Compression::Zstd => protocol::codec::Codec::Zstd,
        })
    }

    /// The command line that gives these settings (`loadgen` parses it back the same).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--target={}", self.target),
            format!("--emitters={}", self.emitters),
            format!("--rate={}", self.rate),
            format!("--duration={}", self.duration),
            format!("--priority-mode={}", self.priority_mode),
            format!("--priority={}", self.priority),
            format!("--priority-range={}", self.priority_range),
            format!("--size-mean={}", self.size_mean),
            format!("--size-sigma={}", self.size_sigma),
            format!("--size-min={}", self.size_min),
            format!("--size-max={}", self.size_max),
            format!("--seed={}", self.seed),
            format!("--emitter-id-base={}", self.emitter_id_base),
            format!("--out={}", self.out.display()),
            format!("--connect-timeout={}", self.connect_timeout),
            format!("--ack-window={}", self.ack_window),
            format!("--format={}", self.format),
            format!("--framing={}", self.framing),
            format!("--zstd-level={}", self.zstd_level),
        ];
        if self.acks {
            args.push("--acks".to_owned());
        }
        if let Some(p) = self.payload {
            args.push(format!("--payload={p}"));
        }
        if let Some(c) = self.compress {
            args.push(format!("--compress={c}"));
        }
        args.extend(self.tls.to_args());
        args
    }

    /// Checks the values clap and serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.emitters > 0, "--emitters must be at least 1");
        anyhow::ensure!(
            self.duration.is_finite() && self.duration > 0.0,
            "--duration must be > 0 seconds"
        );
        anyhow::ensure!(
            self.connect_timeout.is_finite() && self.connect_timeout > 0.0,
            "--connect-timeout must be > 0 seconds"
        );
        anyhow::ensure!(self.ack_window > 0, "--ack-window must be at least 1");
        anyhow::ensure!(
            self.emitter_id_base
                .checked_add(self.emitters - 1)
                .is_some(),
            "--emitter-id-base + --emitters exceeds the u32 emitter id space"
        );
        if self.format == runfolder::Format::Syslog {
            anyhow::ensure!(
                !self.acks && self.compress.is_none(),
                "--format syslog has no EMITTER HELLO: --acks and --compress are for --format log"
            );
            anyhow::ensure!(
                self.payload != Some(runfolder::Payload::Random),
                "--format syslog sends text: --payload random cannot end a text probe"
            );
        }
        if self.compress == Some(runfolder::Compression::Zstd) {
            anyhow::ensure!(
                protocol::codec::ZSTD_LEVELS.contains(&self.zstd_level),
                "--zstd-level {} is outside 1-19",
                self.zstd_level
            );
        }
        generate::SizeGen::new(
            self.size_mean,
            self.size_sigma,
            self.size_min,
            self.size_max,
        )
        .context("invalid --size-*")?;
        Ok(())
    }
}

/// What a run did, per emitter and in total.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Per emitter, in id order.
    pub emitters: Vec<emitter::Report>,
    /// Seconds the clock ran.
    pub elapsed: Duration,
}

impl Summary {
    /// Messages sent over all emitters.
    pub fn sent(&self) -> u64 {
        self.emitters.iter().map(|e| e.sent).sum()
    }
}

/// Runs the load: connects every emitter, sends for `--duration` or until `shutdown`,
/// writes the CSVs into `--out`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<Summary> {
    config.validate()?;
    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("cannot create {}", config.out.display()))?;
    let counters = Arc::new(progress::Counters::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let config = Arc::new(config);
    let connected = emitter::connect_all(&config, &counters).await?;
    // Over mutual TLS an EMITTER HELLO must carry the certificate's identity.
    let identity: Option<Arc<str>> = config.tls.identity()?.map(Arc::from);
    let started = std::time::Instant::now();
    let duration = Duration::from_secs_f64(config.duration);
    let mut tasks = Vec::new();
    for (i, stream) in connected.into_iter().enumerate() {
        let id = config.emitter_id_base + i as u32;
        tasks.push(tokio::spawn(emitter::run(
            Arc::clone(&config),
            id,
            identity.clone(),
            stream,
            started,
            Arc::clone(&counters),
            stop.clone(),
        )));
    }
    let bar = progress::Progress::start(Arc::clone(&counters), &config, started);
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = shutdown => tracing::info!("stopping early on request"),
    }
    stop.cancel();
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.context("an emitter task failed")?);
    }
    let elapsed = started.elapsed();
    bar.finish(elapsed);
    if let Some(h) = output::secured_latency(&reports) {
        println!(
            "loadgen: secured: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms from first write to ACK ({} messages)",
            h.value_at_quantile(0.5) as f64 / 1e3,
            h.value_at_quantile(0.99) as f64 / 1e3,
            h.max() as f64 / 1e3,
            h.len()
        );
    }
    if let Some(codec) = config.compress {
        let raw: u64 = reports.iter().map(|r| r.bytes).sum();
        let wire: u64 = reports.iter().map(|r| r.wire_bytes).sum();
        println!(
            "loadgen: {codec}: {:.1} MB of LOG frames in {:.1} MB on the wire ({:.2}x)",
            raw as f64 / 1e6,
            wire as f64 / 1e6,
            raw as f64 / wire.max(1) as f64
        );
    }
    reports.sort_by_key(|r| r.emitter);
    output::write(&config, &reports)?;
    Ok(Summary {
        emitters: reports,
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_args_parses_back_the_same() {
        let cfg = Config {
            target: "127.0.0.1:9".parse().unwrap(),
            emitters: 20,
            rate: Rate::PerSecond(12.5),
            duration: 3.25,
            priority_mode: PriorityMode::Weighted,
            priority: 7,
            priority_range: "3-200".parse().unwrap(),
            size_mean: 100.5,
            size_sigma: 0.25,
            size_min: 30,
            size_max: 9000,
            seed: 42,
            emitter_id_base: 1000,
            out: PathBuf::from("/tmp/some dir"),
            connect_timeout: 2.0,
            acks: true,
            ack_window: 100,
            format: runfolder::Format::Log,
            payload: Some(runfolder::Payload::Text),
            framing: runfolder::SyslogFraming::Lf,
            compress: Some(runfolder::Compression::Zstd),
            zstd_level: 7,
            tls: runner::tls::ClientFlags {
                tls_server_name: Some("distributor.example".into()),
                ..runner::tls::ClientFlags::minted(
                    std::path::Path::new("/tls/ca.pem"),
                    std::path::Path::new("/tls"),
                    "e 1",
                )
            },
        };
        let args = std::iter::once("loadgen".to_owned()).chain(cfg.to_args());
        assert_eq!(Config::try_parse_from(args).unwrap(), cfg);
        let max = Config {
            rate: Rate::Max,
            ..Config::default()
        };
        let args = std::iter::once("loadgen".to_owned()).chain(max.to_args());
        assert_eq!(Config::try_parse_from(args).unwrap(), max);
    }

    #[test]
    fn the_target_takes_a_host_name() {
        let c = Config::try_parse_from(["loadgen", "--target", "localhost:8080"]).unwrap();
        assert_eq!(c.target, "127.0.0.1:8080".parse().unwrap());
        let err = Config::try_parse_from(["loadgen", "--target", "localhost"]).unwrap_err();
        assert!(err.to_string().contains("HOST:PORT"), "{err}");
        let c: Config = toml::from_str("target = \"localhost:9\"\n").unwrap();
        assert_eq!(c.target.port(), 9);
    }

    #[test]
    fn clap_and_serde_share_the_defaults() {
        let from_flags = Config::try_parse_from(["loadgen"]).unwrap();
        let from_toml: Config = toml::from_str("").unwrap();
        assert_eq!(from_flags, Config::default());
        assert_eq!(from_toml, Config::default());
    }

    #[test]
    fn profile_tables_deserialize_with_clear_errors() {
        let c: Config = toml::from_str(
            "count = 3\nrate = 300\npriority_mode = \"cyclic\"\npriority_range = \"0-9\"\n",
        )
        .unwrap();
        assert_eq!((c.emitters, c.rate), (3, Rate::PerSecond(300.0)));
        assert_eq!(c.priority_mode, PriorityMode::Cyclic);
        let c: Config = toml::from_str("rate = \"max\"\n").unwrap();
        assert_eq!(c.rate, Rate::Max);
        for (text, field) in [
            ("rate = \"fast\"\n", "rate"),
            ("rate = -1\n", "rate"),
            ("priority_mode = \"loud\"\n", "priority_mode"),
            ("priority_range = \"9-3\"\n", "priority_range"),
            ("bogus = 1\n", "bogus"),
        ] {
            let err = toml::from_str::<Config>(text).unwrap_err().to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
    }
}
