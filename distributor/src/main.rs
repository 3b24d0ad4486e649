//! The `distributor` binary: parses the command line, runs [`distributor::cli::main`],
//! and ends with the exit code its outcome calls for (see `distributor --help`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let (cli, matches) = match distributor::cli::Cli::parse_from_args(std::env::args_os()) {
        Ok(parsed) => parsed,
        // Usage errors exit 2, --help and --version 0, as clap prints them.
        Err(e) => e.exit(),
    };
    let config = match cli.into_config(&matches) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid settings: {e}");
            return ExitCode::from(2);
        }
    };
    runner::main_coded(runner::Threads::Multi, || distributor::cli::main(config))
}
