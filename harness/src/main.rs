//! The `harness` binary: `harness run PROFILE` (or `harness PROFILE`), `harness check
//! PROFILE...`, `harness bench`, `harness list`.

use clap::{CommandFactory, Parser};
use harness::cli::{Cli, Command, RunFlags};
use harness::profile::{Profile, available, locate};
use harness::run::{RunOptions, run};
use std::process::ExitCode;

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
