//! The command line of the `report` binary.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Report on a run folder: checks (weights, priority, integrity, accounting, latency),
/// charts/*.png, report.html (self-contained), summary.csv and summary.json, written into
/// the folder. The last line printed is `RESULT: PASS|FAIL|INCONCLUSIVE (...)`.
///
/// Exit code: 0 PASS, 1 a check FAILed, 2 unusable input (the message names what is
/// missing or wrong), 3 INCONCLUSIVE (too little data to decide; the check line says how
/// much would do).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// The run folder.
    pub dir: PathBuf,
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

/// A tolerance: a fraction in (0, 0.5], or a percentage written `N%`.
pub fn parse_tolerance(s: &str) -> Result<f64, String> {
    let bad =
        || format!("{s:?}: give a fraction in (0, 0.5] such as 0.05, or a percentage such as 5%");
    let t = match s.trim().strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => s.trim().parse::<f64>().map_err(|_| bad())?,
    };
    if t.is_finite() && t > 0.0 && t <= 0.5 {
        Ok(t)
    } else {
        Err(bad())
    }
}

fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number > 0")),
    }
}

/// Runs the report, prints the verdicts and the RESULT line; the exit code of the `report`
/// binary.
pub fn main(cli: Cli) -> ExitCode {
    let overrides = crate::model::Overrides {
        weight_tolerance: cli.tolerance,
        backlog_ms: cli.backlog_ms,
        latency_p99_ms: cli.latency_p99_ms,
        routing: cli.routing,
        traffic: cli.traffic,
    };
    let started = std::time::Instant::now();
    match crate::run(&cli.dir, &overrides) {
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
    }
}
