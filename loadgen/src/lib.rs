//! The emitter load generator: many emitters in one process, each its own TCP connection
//! and emitter id, sending probe payloads (PROTOCOL.md §4) at an open-loop rate.
//!
//! # Layout
//!
//! - [`generate`]: seeded generators of priorities, sizes and whole LOG frames.
//! - [`pacing`]: the open-loop schedule (what is due by now).
//! - [`emitter`]: one emitter's connection: pacing, batching, reconnects, counters.
//! - [`output`]: the per-second CSV and the manifest.
//! - [`progress`]: the progress bar on a terminal, plain status lines otherwise.
//!
//! [`run`] connects every emitter, starts the clock, lets them send for the duration (or
//! until the shutdown future completes), and writes the CSVs.

pub mod emitter;
pub mod generate;
pub mod output;
pub mod pacing;
pub mod progress;

use anyhow::Context as _;
use clap::Parser;
use generate::{PriorityMode, PriorityRange};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Messages per second per emitter, or as fast as the distributor takes them.
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
#[derive(Debug, Clone, Parser)]
#[command(version)]
pub struct Config {
    /// The distributor's emitter address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub target: SocketAddr,
    /// Number of emitters (connections).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub emitters: u32,
    /// Messages per second per emitter, or `max`.
    #[arg(long, value_name = "R|max", default_value = "100")]
    pub rate: Rate,
    /// Seconds to send.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub duration: f64,
    /// How priorities are chosen.
    #[arg(long, value_enum, default_value = "single")]
    pub priority_mode: PriorityMode,
    /// The priority of `single`.
    #[arg(long, value_name = "P", default_value_t = 0)]
    pub priority: u8,
    /// The range of `random`, `weighted` and `cyclic`.
    #[arg(long, value_name = "A-B", default_value = "0-255")]
    pub priority_range: PriorityRange,
    /// Mean payload size in bytes (log-normal).
    #[arg(long, value_name = "BYTES", default_value_t = 512.0)]
    pub size_mean: f64,
    /// Shape of the log-normal size distribution.
    #[arg(long, value_name = "SIGMA", default_value_t = 0.5)]
    pub size_sigma: f64,
    /// Smallest payload (at least 28, a probe's header and crc).
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub size_min: usize,
    /// Largest payload.
    #[arg(long, value_name = "BYTES", default_value_t = 8192)]
    pub size_max: usize,
    /// Seed of every random choice (same seed, same bytes).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Emitter ids are BASE, BASE+1, ...; give each loadgen process of a run its own range.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub emitter_id_base: u32,
    /// Folder for the CSV files (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Seconds an emitter may take to make its first connection before the run fails.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,
}

impl Config {
    /// Checks the values clap cannot.
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
        anyhow::ensure!(
            self.emitter_id_base
                .checked_add(self.emitters - 1)
                .is_some(),
            "--emitter-id-base + --emitters exceeds the u32 emitter id space"
        );
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
    let started = std::time::Instant::now();
    let duration = Duration::from_secs_f64(config.duration);
    let mut tasks = Vec::new();
    for (i, stream) in connected.into_iter().enumerate() {
        let id = config.emitter_id_base + i as u32;
        tasks.push(tokio::spawn(emitter::run(
            Arc::clone(&config),
            id,
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
    reports.sort_by_key(|r| r.emitter);
    output::write(&config, &reports)?;
    Ok(Summary {
        emitters: reports,
        elapsed,
    })
}
