//! The `distributor` binary: parses flags, then [`distributor::cli::main`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = distributor::cli::Cli::parse();
    runner::main(runner::Threads::Multi, || distributor::cli::main(cli))
}
