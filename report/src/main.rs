//! The `report` binary.

use clap::Parser;

fn main() -> std::process::ExitCode {
    report::cli::main(report::cli::Cli::parse())
}
