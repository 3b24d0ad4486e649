//! The command line of the `report` binary.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Report on a run folder: checks (weights, priority, integrity, accounting, latency),
/// charts/*.png, report.html (self-contained) and summary.csv, written into the folder.
/// Exit code: 0 no check failed, 1 a check failed, 2 unusable input.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// The run folder.
    pub dir: PathBuf,
    /// Relative tolerance of each analyzer's share (default: the profile's, else 0.05).
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// A queue wait at least this long (ms) marks a backlog (default: the profile's, else 1).
    #[arg(long)]
    pub backlog_ms: Option<f64>,
    /// FAIL the latency check when p99 exceeds this many ms.
    #[arg(long)]
    pub latency_p99_ms: Option<f64>,
    /// Routing the distributor used, for the weights check: random or smooth (default: the
    /// profile's, else random).
    #[arg(long, value_enum)]
    pub routing: Option<runfolder::Routing>,
}

/// Runs the report, prints the verdicts; the exit code of the `report` binary.
pub fn main(cli: Cli) -> ExitCode {
    let overrides = crate::model::Overrides {
        weight_tolerance: cli.tolerance,
        backlog_ms: cli.backlog_ms,
        latency_p99_ms: cli.latency_p99_ms,
        routing: cli.routing,
    };
    let started = std::time::Instant::now();
    let result = crate::run(&cli.dir, &overrides);
    match result {
        Ok(r) => {
            print!("{}", crate::render::verdicts(&r.outcomes));
            for n in &r.notes {
                println!("note: {n}");
            }
            println!(
                "report: {} in {:.1} s",
                cli.dir.join("report.html").display(),
                started.elapsed().as_secs_f64()
            );
            if r.failed() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            // 2: no verdict could be reached (unusable input, or outputs not writable).
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
