//! The `dist` binary: writes the man pages and shell completions of the workspace's
//! binaries into a folder (see the library's docs for the layout).

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Writes the man pages (roff) and the bash, zsh and fish completions of distributor,
/// loadgen, analyzer-sink, report and harness into --out, from their clap definitions.
///
/// Exit code: 0 written, 1 a file could not be written, 2 bad usage.
#[derive(Debug, Parser)]
#[command(version = runner::VERSION)]
struct Cli {
    /// Folder to write into (created): man/man1/ and completions/{bash,zsh,fish}/.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Only this binary (repeatable); all of them by default.
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let binaries = match dist::select(&cli.only) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("dist: {e}");
            return ExitCode::from(2);
        }
    };
    match dist::write(&cli.out, &binaries) {
        Ok(files) => {
            println!("dist: {} files in {}", files.len(), cli.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dist: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
