//! The `harness` binary: `harness <PROFILE> [--duration SECS] [--out DIR]`,
//! `harness check <PROFILE>...` and `harness bench`.

use clap::Parser;
use harness::profile::{Profile, locate};
use harness::run::{RunOptions, run};
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs a profile end to end (distributor, analyzer sinks and loadgen as child processes,
/// the chaos schedule, then the report) into results/<profile>-<UTC time>/; the exit code
/// is the report's (0 pass, 1 a check failed, 2 no report).
///
/// Also: `harness check PROFILE...` validates profiles; `harness bench` runs the
/// performance suite. Every component runs as its shipped binary (`distributor`,
/// `analyzer-sink`, `loadgen`, `report`), found beside this executable.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// A profile name in profiles/ (basic, throughput, chaos) or a path to a .toml file.
    profile: String,
    /// Seconds of load instead of the profile's; the chaos schedule scales along.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Folder for run folders.
    #[arg(long, value_name = "DIR", default_value = "results")]
    out: PathBuf,
}

/// End-to-end performance suite: saturation, latency at fixed loads, scaling, and a
/// plain TCP relay (socat) as reference; writes results/bench-<UTC time>/bench.json and
/// bench.md.
#[derive(Debug, Parser)]
struct BenchCli {
    /// Runs per scenario (figures are medians with their spread).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Only saturation, latency and the reference (no scaling scenarios).
    #[arg(long)]
    quick: bool,
    /// Folder for the bench folder.
    #[arg(long, value_name = "DIR", default_value = "results")]
    out: PathBuf,
}

fn check(names: &[String]) -> ExitCode {
    let mut ok = true;
    for name in names {
        match locate(name)
            .map_err(anyhow::Error::from)
            .and_then(|p| Profile::load(&p).map(|_| p).map_err(Into::into))
        {
            Ok(p) => println!("ok: {}", p.display()),
            Err(e) => {
                ok = false;
                eprintln!("error: {e:#}");
            }
        }
    }
    if ok && !names.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let rest = || args.iter().skip(1).cloned();
    match args.get(1).map(String::as_str) {
        Some("check") => check(&args[2..]),
        Some("bench") => {
            let b = BenchCli::parse_from(rest());
            let opts = harness::bench::BenchOptions {
                out: b.out,
                repeat: b.repeat,
                seconds: b.seconds,
            };
            runner::main(runner::Threads::Multi, || async move {
                harness::bench::bench(opts, b.quick).await.map(|_| ())
            })
        }
        _ => {
            let cli = Cli::parse();
            let mut code = ExitCode::from(2);
            let status = runner::main(runner::Threads::Multi, || async {
                let path = locate(&cli.profile)?;
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("run")
                    .to_owned();
                let opts = RunOptions {
                    name,
                    path,
                    duration: cli.duration,
                    out: cli.out.clone(),
                };
                let result = run(opts, runner::stop_signal()).await?;
                code = ExitCode::from(result.exit_code);
                Ok(())
            });
            if status == ExitCode::SUCCESS {
                code
            } else {
                ExitCode::from(2)
            }
        }
    }
}
