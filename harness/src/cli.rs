//! The command line of the `harness` binary, here so that the workspace's `dist` tool can
//! write its man pages and shell completions from the same definitions.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Runs experiments (profiles) on the log distributor end to end: the shipped
/// `distributor`, `analyzer-sink`, `loadgen` and `report` binaries as child processes, the
/// chaos schedule, then the report. `harness PROFILE` is short for `harness run PROFILE`.
///
/// Exit code of a run: the report's (0 PASS, 1 FAIL, 2 no usable result, 3 INCONCLUSIVE).
#[derive(Debug, Parser)]
#[command(version = runner::VERSION, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// A profile to run (short for `harness run PROFILE`).
    #[arg(value_name = "PROFILE")]
    pub profile: Option<String>,
    #[command(flatten)]
    pub run: RunFlags,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a profile end to end into results/PROFILE-TIME/ (TIME in UTC) and report on it.
    Run {
        /// A profile name in profiles/ (see `harness list`) or a path to a .toml file.
        profile: String,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Validate profiles: every field, naming the one that is wrong.
    Check {
        /// Profile names or paths.
        #[arg(required = true, value_name = "PROFILE")]
        profiles: Vec<String>,
    },
    /// The end-to-end performance suite: saturation, latency at fixed loads, fan-in,
    /// scaling, and a plain TCP relay (socat) as reference; writes bench.json and bench.md
    /// into results/bench-TIME/ (TIME in UTC), and with --compare-to compares it against an
    /// earlier bench.
    Bench(BenchFlags),
    /// List the profiles with their descriptions.
    List,
}

#[derive(Debug, Args)]
pub struct RunFlags {
    /// Seconds of load instead of the profile's; the chaos schedule scales along.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Folder for run folders.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,
    /// Run a real Prometheus (from PATH: `apt-get install prometheus`) beside the
    /// distributor, scraping it every second with deploy/prometheus/alerts.yml loaded;
    /// writes alerts.csv, and the report checks the alerts.
    #[arg(long)]
    pub prometheus: bool,
}

#[derive(Debug, Args)]
pub struct BenchFlags {
    /// Runs per scenario (figures are medians with their spread).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Only saturation, latency and the reference (no fan-in and scaling scenarios).
    #[arg(long)]
    pub quick: bool,
    /// Only these groups (repeatable): saturation, latency, reference, fan-in, scaling, tls.
    #[arg(long = "group", value_name = "GROUP", value_parser = ["saturation", "latency", "reference", "fan-in", "scaling", "tls", "durable"])]
    pub groups: Vec<String>,
    /// Folder for the bench folder.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,
    /// Then compare the new bench against this earlier bench folder (`report compare`):
    /// exit 1 on a regression, 2 when the benches do not compare.
    #[arg(long, value_name = "DIR")]
    pub compare_to: Option<PathBuf>,
    /// Slow every sink by this many µs per message: a slower system on purpose, to see
    /// the regression gate fire (recorded in bench.json and bench.md).
    #[arg(long, value_name = "US")]
    pub sink_delay_us: Option<u64>,
}
