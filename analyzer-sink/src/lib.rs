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

/// Analyzer sink for the log distributor: verifies every probe (magic, crc32), counts
/// corrupt, foreign and duplicate frames, logs every arrival as CSV into --out, and ACKs
/// what it has logged when --acks is given. Reconnects with backoff when the distributor
/// goes away. SIGTERM or SIGINT: flush and exit 0.
#[derive(Debug, Clone, Parser)]
#[command(version)]
pub struct Config {
    /// The distributor's analyzer address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub distributor: SocketAddr,
    /// Analyzer id (1-64 of A-Z a-z 0-9 _ . -; it names the output files).
    #[arg(long)]
    pub id: String,
    /// Weight sent in the HELLO.
    #[arg(long, default_value_t = 1.0)]
    pub weight: f64,
    /// Ask for at-least-once delivery and send cumulative ACKs.
    #[arg(long)]
    pub acks: bool,
    /// Process at most this many messages per second (a slow analyzer, so backlogs form).
    #[arg(long, value_name = "MSGS_PER_SEC", conflicts_with = "delay_us")]
    pub capacity: Option<f64>,
    /// Spend this long per message (same as --capacity 1e6/N).
    #[arg(long, value_name = "N")]
    pub delay_us: Option<u64>,
    /// Capacity in msg/s during a slow phase: SIGUSR1 starts it, SIGUSR2 ends it.
    #[arg(long, value_name = "MSGS_PER_SEC")]
    pub slow_capacity: Option<f64>,
    /// Folder for the CSV files (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// `full`: a row per arrival; `summary`: per-second aggregates and exact seq ranges.
    #[arg(long, value_enum, default_value = "full")]
    pub log: record::LogMode,
    /// SO_RCVBUF of the connection in bytes (small makes a slow sink's backlog form in the
    /// distributor's priority queues instead of the kernel). Default: the system's.
    #[arg(long, value_name = "BYTES")]
    pub recv_buffer: Option<u32>,
    /// Largest LOG frame expected (as the distributor's --max-frame).
    #[arg(long, value_name = "BYTES", default_value_t = protocol::log::DEFAULT_MAX_FRAME)]
    pub max_frame: u32,
}

impl Config {
    /// Checks what clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= protocol::analyzer::MAX_ID_LEN
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        anyhow::ensure!(
            id_ok,
            "--id {:?}: use 1 to 64 of A-Z a-z 0-9 _ . - (it names files)",
            self.id
        );
        anyhow::ensure!(
            self.weight.is_finite() && self.weight > 0.0,
            "--weight must be finite and > 0"
        );
        if let Some(c) = self.capacity {
            anyhow::ensure!(
                c.is_finite() && c > 0.0,
                "--capacity must be > 0 messages per second"
            );
        }
        Ok(())
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
