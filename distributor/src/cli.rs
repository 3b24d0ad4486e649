//! The command line: every setting as a flag, over an optional `--config` file.

use crate::config::{Config, parse_secs, parse_weight};
use crate::core::Overflow;
use crate::router::Routing;
use clap::Parser;
use runfolder::Fsync;
use std::net::SocketAddr;
use std::path::PathBuf;

/// High-throughput log distributor: routes LOG frames from emitters to weighted analyzers
/// with 256 strict priority levels (wire protocol: PROTOCOL.md).
///
/// Settings come from the flags, then `--config FILE.toml` (same names), then defaults.
/// Logging: RUST_LOG (default info), to stderr.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// TOML file with any of these settings (flags win).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address for emitters (LOG frames), HOST:PORT. [default: 127.0.0.1:8080]
    #[arg(long, value_name = "HOST:PORT", value_parser = runner::addr::parse)]
    emitter_listen: Option<SocketAddr>,
    /// Address for analyzers (HELLO/DELIVER/ACK), HOST:PORT. [default: 127.0.0.1:8081]
    #[arg(long, value_name = "HOST:PORT", value_parser = runner::addr::parse)]
    analyzer_listen: Option<SocketAddr>,
    /// Pin analyzer ID's weight to W, whatever its HELLO says (repeatable).
    #[arg(long = "weight", value_name = "ID=W", value_parser = parse_weight)]
    weights: Vec<(String, f64)>,
    /// How to choose an analyzer: random in proportion to weight, or smooth (deterministic,
    /// exact proportions). [default: random]
    #[arg(long, value_enum)]
    routing: Option<Routing>,
    /// Seed of the random router, for reproducible runs. [default: from the clock]
    #[arg(long)]
    seed: Option<u64>,
    /// Frames per priority level per analyzer. [default: 1000]
    #[arg(long, value_name = "N")]
    queue_capacity: Option<usize>,
    /// When every live analyzer's queue for a frame's priority is full: stop reading that
    /// emitter until room frees (backpressure), or drop and count. [default: backpressure]
    #[arg(long, value_enum)]
    overflow: Option<Overflow>,
    /// When the analyzer chosen by weight has no room at a frame's priority: route the frame
    /// to another analyzer with room (spill: nothing waits while an analyzer could take
    /// it, shares drift while one falls behind; counted per analyzer), or never route away
    /// from the weighted choice (strict: shares hold, the overflow policy applies).
    /// [default: spill]
    #[arg(long, value_enum)]
    when_full: Option<crate::core::WhenFull>,
    /// Bytes of frames queued, in flight or held at most, counting each frame's payload
    /// plus 64 bytes; new frames past it meet the overflow policy (drops counted as
    /// bytes_full). [default: 1073741824, 1 GiB]
    #[arg(long, value_name = "BYTES")]
    max_queued_bytes: Option<u64>,
    /// Bytes of partial frames buffered over every emitter connection at most; past it the
    /// connections holding the largest stalled partial frames are closed (counted as
    /// buffer_budget). [default: 268435456, 256 MiB]
    #[arg(long, value_name = "BYTES")]
    max_buffered_bytes: Option<u64>,
    /// Unacknowledged frames per at-least-once analyzer before it is sent nothing more.
    /// [default: 16384]
    #[arg(long, value_name = "N")]
    ack_window: Option<usize>,
    /// Seconds without write progress (or, with ACKs, ACK progress while frames are
    /// outstanding) after which an analyzer is treated as failed. [default: 5]
    #[arg(long, value_name = "SECS", value_parser = parse_secs_arg)]
    hang_timeout: Option<std::time::Duration>,
    /// Largest LOG frame_len accepted (at most 256 MiB); a larger one is a protocol error.
    /// [default: 1048576]
    #[arg(long, value_name = "BYTES")]
    max_frame: Option<u32>,
    /// How long a frame may wait in the holding queue (no analyzer can take it): as long as
    /// N retries on a 10 ms doubling to 2 s backoff take, then it is dropped and counted
    /// (retries_exhausted). Held frames are offered again whenever room may have freed, and
    /// at least every 100 ms. [default: 20, about 26.5 s]
    #[arg(long, value_name = "N")]
    max_attempts: Option<u32>,
    /// Frames the holding queue keeps while no analyzer is live, before the overflow
    /// policy applies. [default: 100000]
    #[arg(long, value_name = "N")]
    holding_capacity: Option<usize>,
    /// Seconds to drain queues to live analyzers at shutdown. [default: 10]
    #[arg(long, value_name = "SECS", value_parser = parse_secs_arg)]
    drain_timeout: Option<std::time::Duration>,
    /// Emitter connections open at once (at most the file-descriptor limit less a reserve
    /// for analyzers and /metrics); at the cap, the connection idle longest (at least 1 s)
    /// is closed to admit a new one (counted as max_connections). [default: 10000]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Live analyzer sessions at most; a HELLO with another id gets a REJECT naming the
    /// limit. [default: 1024]
    #[arg(long, value_name = "N")]
    max_analyzers: Option<usize>,
    /// The largest weight a HELLO may claim; above it, a REJECT naming the limit (weights
    /// pinned with --weight are not limited). [default: 1000000]
    #[arg(long, value_name = "W")]
    max_weight: Option<f64>,
    /// Seconds an emitter's frame may take to arrive whole once it began (our own
    /// backpressure waits not counted); past it the connection ends, counted as
    /// slow_frame. [default: 30]
    #[arg(long, value_name = "SECS", value_parser = parse_secs_arg)]
    frame_timeout: Option<std::time::Duration>,
    /// Seconds an analyzer id may be without a session before its per-id statistics are
    /// folded into one total and leave /metrics and the stats CSV. [default: 600]
    #[arg(long, value_name = "SECS", value_parser = parse_secs_arg)]
    forget_after: Option<std::time::Duration>,
    /// Seconds a client has to finish its TLS handshake; past it the connection is closed,
    /// counted as `timeout`. [default: 10]
    #[arg(long, value_name = "SECS", value_parser = parse_secs_arg)]
    handshake_timeout: Option<std::time::Duration>,
    /// Serve OpenMetrics text (what Prometheus scrapes) at http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT", value_parser = runner::addr::parse)]
    metrics_listen: Option<SocketAddr>,
    /// Write per-second stats to this CSV file.
    #[arg(long, value_name = "PATH")]
    stats_csv: Option<PathBuf>,
    /// Serve every listener (emitters, analyzers, /metrics) over TLS with this certificate
    /// chain (PEM); needs --tls-key. Re-read on SIGHUP.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Require emitters and analyzers to present a client certificate signed by this CA
    /// (mutual TLS); its first DNS name (else its CN) is the peer's identity.
    #[arg(long, value_name = "PEM")]
    tls_client_ca: Option<PathBuf>,
    /// Access rules by identity (TOML: [emitters."pattern"] priorities = "A-B";
    /// [analyzers] allow = [..]). Re-read on SIGHUP; a bad file keeps the rules in force.
    #[arg(long, value_name = "FILE.toml")]
    access: Option<PathBuf>,
    /// Journal every frame in this directory before securing it (ACKs to emitters wait for
    /// it); frames without room wait on disk; a restart delivers what the last run left.
    /// One distributor per directory (a lock file names the holder's pid).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// When the journal calls fdatasync: interval (group commit every
    /// --fsync-interval-ms), always (as soon as anything was written), never (secured
    /// once written: survives the process dying, not the machine). [default: interval]
    #[arg(long, value_enum)]
    fsync: Option<Fsync>,
    /// The group-commit period of --fsync interval, in ms. [default: 10]
    #[arg(long, value_name = "MS")]
    fsync_interval_ms: Option<u64>,
    /// Bytes of journal on disk at most; past it the overflow policy applies (drops
    /// counted as journal_full). [default: 4294967296]
    #[arg(long, value_name = "BYTES")]
    journal_max_bytes: Option<u64>,
    /// Size of a journal segment file; a segment is deleted once every frame in it is
    /// delivered. [default: 67108864]
    #[arg(long, value_name = "BYTES")]
    journal_segment_bytes: Option<u64>,
}

fn parse_secs_arg(s: &str) -> Result<std::time::Duration, String> {
    parse_secs(
        s.parse::<f64>()
            .map_err(|_| format!("{s:?} is not a number of seconds"))?,
    )
}

impl Cli {
    /// The file's settings (or the defaults) with every given flag on top.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! flag {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { c.$field = v; } )* };
        }
        flag!(
            emitter_listen,
            analyzer_listen,
            routing,
            queue_capacity,
            overflow,
            when_full,
            max_queued_bytes,
            max_buffered_bytes,
            ack_window,
            hang_timeout,
            max_frame,
            max_attempts,
            holding_capacity,
            drain_timeout,
            max_connections,
            max_analyzers,
            max_weight,
            frame_timeout,
            forget_after,
            handshake_timeout,
            fsync,
            fsync_interval_ms,
            journal_max_bytes,
            journal_segment_bytes
        );
        if self.seed.is_some() {
            c.seed = self.seed;
        }
        if self.metrics_listen.is_some() {
            c.metrics_listen = self.metrics_listen;
        }
        for (flag, setting) in [
            (self.stats_csv, &mut c.stats_csv),
            (self.tls_cert, &mut c.tls_cert),
            (self.tls_key, &mut c.tls_key),
            (self.tls_client_ca, &mut c.tls_client_ca),
            (self.access, &mut c.access),
            (self.data_dir, &mut c.data_dir),
        ] {
            if flag.is_some() {
                *setting = flag;
            }
        }
        c.weights.extend(self.weights);
        c.validate()?;
        Ok(c)
    }
}

/// Binds, runs until SIGTERM or SIGINT (or the harness going away), drains.
pub async fn main(cli: Cli) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let config = cli.into_config().context("invalid settings")?;
    // Before anything says the distributor is ready.
    let stop = runner::stop_signal();
    let listeners = crate::Listeners::bind(&config).await?;
    crate::run(config, listeners, stop).await?;
    Ok(())
}
