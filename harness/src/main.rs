//! The `harness` binary: `harness run PROFILE` (or `harness PROFILE`), `harness check
//! PROFILE...`, `harness bench`, `harness list`.

use clap::{Args, CommandFactory, Parser, Subcommand};
use harness::profile::{Profile, available, locate};
use harness::run::{RunOptions, run};
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs experiments (profiles) on the log distributor end to end: the shipped
/// `distributor`, `analyzer-sink`, `loadgen` and `report` binaries as child processes, the
/// chaos schedule, then the report. `harness PROFILE` is short for `harness run PROFILE`.
///
/// Exit code of a run: the report's (0 PASS, 1 FAIL, 2 no usable result, 3 INCONCLUSIVE).
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A profile to run (short for `harness run PROFILE`).
    #[arg(value_name = "PROFILE")]
    profile: Option<String>,
    #[command(flatten)]
    run: RunFlags,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a profile end to end into results/<profile>-<UTC time>/ and report on it.
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
    /// scaling, and a plain TCP relay (socat) as reference; writes
    /// results/bench-<UTC time>/bench.json and bench.md, and with --compare-to compares it
    /// against an earlier bench.
    Bench(BenchFlags),
    /// List the profiles with their descriptions.
    List,
}

#[derive(Debug, Args)]
struct RunFlags {
    /// Seconds of load instead of the profile's; the chaos schedule scales along.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Folder for run folders.
    #[arg(long, value_name = "DIR", default_value = "results")]
    out: PathBuf,
    /// Run a real Prometheus (from PATH: `apt-get install prometheus`) beside the
    /// distributor, scraping it every second with deploy/prometheus/alerts.yml loaded;
    /// writes alerts.csv, and the report checks the alerts.
    #[arg(long)]
    prometheus: bool,
}

#[derive(Debug, Args)]
struct BenchFlags {
    /// Runs per scenario (figures are medians with their spread).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Only saturation, latency and the reference (no fan-in and scaling scenarios).
    #[arg(long)]
    quick: bool,
    /// Only these groups (repeatable): saturation, latency, reference, fan-in, scaling, tls.
    #[arg(long = "group", value_name = "GROUP", value_parser = ["saturation", "latency", "reference", "fan-in", "scaling", "tls", "durable"])]
    groups: Vec<String>,
    /// Folder for the bench folder.
    #[arg(long, value_name = "DIR", default_value = "results")]
    out: PathBuf,
    /// Then compare the new bench against this earlier bench folder (`report compare`):
    /// exit 1 on a regression, 2 when the benches do not compare.
    #[arg(long, value_name = "DIR")]
    compare_to: Option<PathBuf>,
    /// Slow every sink by this many µs per message: a slower system on purpose, to see
    /// the regression gate fire (recorded in bench.json and bench.md).
    #[arg(long, value_name = "US")]
    sink_delay_us: Option<u64>,
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
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The profiles and their descriptions (an invalid one says why).
fn list() -> String {
    let profiles = available();
    let width = profiles.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, path) in profiles {
        let what = match Profile::load(&path) {
            Ok(p) => p.description,
            Err(e) => format!("(invalid: {e})"),
        };
        out.push_str(&format!("  {name:<width$}  {what}\n"));
    }
    out
}

fn run_profile(profile: &str, flags: &RunFlags) -> ExitCode {
    let mut code = ExitCode::from(2);
    let status = runner::main(runner::Threads::Multi, || async {
        let path = locate(profile)?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("run")
            .to_owned();
        let opts = RunOptions {
            name,
            path,
            duration: flags.duration,
            out: flags.out.clone(),
            prometheus: flags.prometheus,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match (cli.command, cli.profile) {
        (Some(Command::Run { profile, run }), _) => run_profile(&profile, &run),
        (None, Some(profile)) => run_profile(&profile, &cli.run),
        (Some(Command::Check { profiles }), _) => check(&profiles),
        (Some(Command::List), _) => {
            print!("{}", list());
            ExitCode::SUCCESS
        }
        (Some(Command::Bench(b)), _) => {
            let opts = harness::bench::BenchOptions {
                out: b.out,
                repeat: b.repeat,
                seconds: b.seconds,
                groups: if b.quick && b.groups.is_empty() {
                    ["saturation", "latency", "reference"]
                        .map(String::from)
                        .to_vec()
                } else {
                    b.groups
                },
                compare_to: b.compare_to,
                sink_delay_us: b.sink_delay_us,
            };
            let mut code = 0;
            let status = runner::main(runner::Threads::Multi, || async {
                code = harness::bench::bench(opts).await?;
                Ok(())
            });
            if status == ExitCode::SUCCESS {
                ExitCode::from(code)
            } else {
                ExitCode::from(2)
            }
        }
        (None, None) => {
            let _ = Cli::command().print_help();
            println!("\nProfiles:\n{}", list());
            ExitCode::from(2)
        }
    }
}
