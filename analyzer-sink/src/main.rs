//! The `analyzer-sink` binary.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let config = analyzer_sink::Config::parse();
    // One reader task per sink: a single-threaded runtime is all it needs, and leaves the
    // other core to the writer thread and the rest of the machine.
    runner::main(runner::Threads::Current, || async move {
        analyzer_sink::run(config, runner::stop_signal())
            .await
            .map(|_| ())
    })
}
