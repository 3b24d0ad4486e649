//! The command line of the `report` binary.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Report on a run folder: checks (weights, priority, integrity, accounting, latency),
/// charts/*.png, report.html (self-contained), summary.csv and summary.json, written into
/// the folder. The last line printed is `RESULT: PASS|FAIL|INCONCLUSIVE (...)`.
/// `report compare` compares runs or benches (the regression gate).
///
/// Exit code: 0 PASS, 1 a check FAILed, 2 unusable input (the message names what is
/// missing or wrong), 3 INCONCLUSIVE (too little data to decide; the check line says how
/// much would do).
#[derive(Debug, Parser)]
#[command(version = runner::VERSION, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The run folder.
    #[arg(required = true)]
    pub dir: Option<PathBuf>,
    /// Relative tolerance of each analyzer's share: a fraction in (0, 0.5] such as 0.05,
    /// or a percentage such as 5% (default: the profile's, else 5%).
    #[arg(long, value_name = "FRACTION|N%", value_parser = parse_tolerance)]
    pub tolerance: Option<f64>,
    /// A queue wait at least this long (ms) marks a backlog (default: the profile's, else 1).
    #[arg(long, value_name = "MS", value_parser = parse_positive)]
    pub backlog_ms: Option<f64>,
    /// FAIL the latency check when p99 exceeds this many ms.
    #[arg(long, value_name = "MS", value_parser = parse_positive)]
    pub latency_p99_ms: Option<f64>,
    /// Routing the distributor used, for the weights check (default: the profile's, else
    /// random).
    #[arg(long, value_enum)]
    pub routing: Option<runfolder::Routing>,
    /// What the analyzers received: `probes` (the loadgen's), or `foreign` (another
    /// emitter's payloads: integrity and latency are then NOT_EXERCISED, accounting uses
    /// the distributor's counters). Default: what the sinks were told (`--traffic`).
    #[arg(long, value_enum)]
    pub traffic: Option<runfolder::Traffic>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare a candidate with a base: run folders of one profile, or `harness bench`
    /// folders, one or more replicates a side. Per metric (throughput, latency p50/p99/p999,
    /// CPU per message, peak RSS, losses, drops): Δ mean % with its confidence interval
    /// (Welch; bootstrap for the percentiles) and a verdict: regression, improvement, no
    /// change or erratic. Writes compare.csv, compare.json and compare.html.
    ///
    /// Exit code: 0 no regression, 1 a regression, 2 unusable input (folders that do not
    /// compare: the message names the difference).
    Compare(CompareArgs),
}

/// `report compare`'s flags.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Base folders (the reference): run folders or bench folders.
    #[arg(long, required = true, num_args = 1.., value_name = "DIR")]
    pub base: Vec<PathBuf>,
    /// Candidate folders (the change under test), of the same profile or scenarios.
    #[arg(long, required = true, num_args = 1.., value_name = "DIR")]
    pub candidate: Vec<PathBuf>,
    /// Smallest relative change that counts: a fraction in (0, 0.5] or `N%`.
    #[arg(long, default_value = "5%", value_name = "FRACTION|N%", value_parser = parse_tolerance)]
    pub tolerance: f64,
    /// Confidence of the whole comparison: a fraction in [0.5, 1) or `N%`; each metric's
    /// interval is drawn at 1 - (1 - confidence) / (metrics judged by an interval).
    #[arg(long, default_value = "90%", value_name = "FRACTION|N%", value_parser = parse_confidence)]
    pub confidence: f64,
    /// Seconds left out at the start of each run's load (run folders).
    #[arg(long, default_value_t = 2, value_name = "SECS")]
    pub warmup: u64,
    /// Output folder (default: `results/compare-<UTC time>/`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// A confidence: a fraction in [0.5, 1), or a percentage written `N%`.
pub fn parse_confidence(s: &str) -> Result<f64, String> {
    parse_fraction(
        s,
        |c| (0.5..1.0).contains(&c),
        "in [0.5, 1) such as 0.9",
        "90%",
    )
}

/// A fraction `ok` accepts, written as one or as a percentage `N%`; the error shows
/// `range` and the percentage `example`.
fn parse_fraction(
    s: &str,
    ok: impl Fn(f64) -> bool,
    range: &str,
    example: &str,
) -> Result<f64, String> {
    let bad = || format!("{s:?}: give a fraction {range}, or a percentage such as {example}");
    let v = match s.trim().strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => s.trim().parse::<f64>().map_err(|_| bad())?,
    };
    if v.is_finite() && ok(v) {
        Ok(v)
    } else {
        Err(bad())
    }
}

/// A tolerance: a fraction in (0, 0.5], or a percentage written `N%`.
pub fn parse_tolerance(s: &str) -> Result<f64, String> {
    parse_fraction(s, |t| t > 0.0 && t <= 0.5, "in (0, 0.5] such as 0.05", "5%")
}

fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number > 0")),
    }
}

/// The `report` binary: a report on a run folder, or a comparison.
pub fn main(mut cli: Cli) -> ExitCode {
    match cli.command.take() {
        Some(Command::Compare(args)) => compare(args),
        None => report(&cli),
    }
}

/// The default output folder of a comparison: `results/compare-<UTC time>`.
fn default_out() -> PathBuf {
    let stamp = runfolder::names::utc_stamp(protocol::now_ns() / 1_000_000_000);
    PathBuf::from("results").join(format!("compare-{stamp}"))
}

/// Runs a comparison, prints the table and the RESULT line.
fn compare(args: CompareArgs) -> ExitCode {
    let req = crate::compare::Request {
        base: args.base,
        candidate: args.candidate,
        settings: crate::compare::Settings {
            tolerance: args.tolerance,
            confidence: args.confidence,
            warmup_s: args.warmup,
            ..crate::compare::Settings::default()
        },
        out: args.out.unwrap_or_else(default_out),
    };
    match crate::compare::run(&req) {
        Ok(c) => {
            print!("{}", crate::compare::page::table(&c.result));
            for n in &c.result.notes {
                println!("note: {n}");
            }
            println!(
                "compare: {}",
                c.out.join(runfolder::names::COMPARE_HTML).display()
            );
            println!("{}", crate::compare::page::result_line(&c.result));
            ExitCode::from(c.exit_code())
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the report, prints the verdicts and the RESULT line; the exit code of the `report`
/// binary.
fn report(cli: &Cli) -> ExitCode {
    // clap requires the folder when no subcommand is given.
    let Some(dir) = &cli.dir else {
        return ExitCode::from(2);
    };
    let overrides = crate::model::Overrides {
        weight_tolerance: cli.tolerance,
        backlog_ms: cli.backlog_ms,
        latency_p99_ms: cli.latency_p99_ms,
        routing: cli.routing,
        traffic: cli.traffic,
    };
    let started = std::time::Instant::now();
    match crate::run(dir, &overrides) {
        Ok(r) => {
            print!("{}", crate::render::verdicts(&r.outcomes));
            for n in &r.notes {
                println!("note: {n}");
            }
            println!(
                "report: {} in {:.1} s",
                dir.join("report.html").display(),
                started.elapsed().as_secs_f64()
            );
            println!("{}", crate::checks::result_line(&r.outcomes));
            ExitCode::from(r.exit_code())
        }
        Err(e) => {
            // 2: no verdict could be reached (unusable input, or outputs not writable).
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances() {
        assert_eq!(parse_tolerance("0.05"), Ok(0.05));
        assert_eq!(parse_tolerance("5%"), Ok(0.05));
        assert_eq!(parse_tolerance("50%"), Ok(0.5));
        for bad in ["5", "0", "-0.1", "51%", "x", "%", "nan"] {
            assert!(parse_tolerance(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_confidence("90%"), Ok(0.9));
        assert_eq!(parse_confidence("0.95"), Ok(0.95));
        for bad in ["90", "1", "100%", "0.4", "x"] {
            assert!(parse_confidence(bad).is_err(), "{bad}");
        }
    }
}
