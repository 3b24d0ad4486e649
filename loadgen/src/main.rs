//! The `loadgen` binary.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let config = loadgen::Config::parse();
    runner::main(runner::Threads::Multi, || async move {
        loadgen::run(config, runner::stop_signal())
            .await
            .map(|_| ())
    })
}
