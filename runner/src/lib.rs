//! Process plumbing shared by every binary: logging to stderr, the async runtime, the stop
//! signal (SIGTERM, SIGINT, or the parent going away), and the I/O edges every component
//! has: [`addr`] for `HOST:PORT` flags and settings, [`backoff`] for reconnects and
//! retries, [`framed`] for reading length-prefixed frames off a socket, [`net`] for a
//! connection that is plain TCP or TLS, [`tls`] for TLS settings, identities and minted
//! certificates.
//!
//! A process started by the harness gets `HARNESS_WATCH_STDIN=1` and a pipe as stdin; when
//! the harness dies, even by SIGKILL, the pipe closes and the process stops as on SIGTERM,
//! so no component outlives its run.

pub mod addr;
pub mod backoff;
pub mod framed;
pub mod net;
pub mod suggest;
pub mod tls;

use std::future::Future;
use std::io::Read as _;
use std::process::ExitCode;

/// The git commit the workspace was built from (12 hex digits), `LOG_DISTRIBUTOR_COMMIT`
/// when the build set it (a source archive has no `.git`), or `unknown` (runner's
/// build script).
pub const COMMIT: &str = env!("LOG_DISTRIBUTOR_BUILD_COMMIT");

/// What every binary's `--version` prints after its name: `0.1.0 (commit 5894f1b2c3d4)`.
/// Use it as `#[command(version = runner::VERSION)]`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LOG_DISTRIBUTOR_BUILD_COMMIT"),
    ")"
);

/// The environment variable that makes [`stop_signal`] also watch stdin for EOF.
pub const WATCH_STDIN: &str = "HARNESS_WATCH_STDIN";

/// How many worker threads a component wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// A multi-threaded runtime, one worker per core.
    Multi,
    /// One thread: enough for a single connection's work.
    Current,
}

/// Logging to stderr: `RUST_LOG` (default `info`), colours only on a terminal.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Completes on SIGTERM or SIGINT, or (under the harness) when stdin reaches EOF.
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// process that says it is ready and then sets up more (the distributor logs that it
/// listens before it waits) must not die of a SIGTERM that arrives in between. Call it
/// within the runtime, before announcing readiness.
pub fn stop_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let term = received(term, "SIGTERM");
        let int = received(int, "SIGINT");
        let parent = async {
            if std::env::var_os(WATCH_STDIN).is_none() {
                return std::future::pending::<()>().await;
            }
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            // A blocking read on its own thread: it ends when the parent's end of the pipe
            // closes.
            std::thread::spawn(move || {
                let mut sink = [0u8; 64];
                while let Ok(n) = std::io::stdin().read(&mut sink) {
                    if n == 0 {
                        break;
                    }
                }
                let _ = tx.send(());
            });
            let _ = rx.await;
        };
        tokio::select! {
            _ = term => tracing::info!("SIGTERM received"),
            _ = parent => tracing::warn!("the harness went away; stopping"),
            _ = int => tracing::info!("SIGINT received"),
        }
    }
}

/// Resolves when `signal` arrives; never, when its handler could not be installed (said
/// once, naming it).
async fn received(signal: std::io::Result<tokio::signal::unix::Signal>, name: &str) {
    match signal {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for {name}");
            std::future::pending::<()>().await;
        }
    }
}

/// An error that says which exit code it ends the process with.
pub trait Failure: std::fmt::Display {
    /// The exit code (not 0).
    fn exit_code(&self) -> u8;
}

impl Failure for anyhow::Error {
    fn exit_code(&self) -> u8 {
        1
    }
}

/// Runs `body` on a runtime with logging set up; `Err` prints `error: {:#}` and exits 1.
pub fn main<F, Fut>(threads: Threads, body: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    main_coded(threads, body)
}

/// Runs `body` on a runtime with logging set up; `Err` prints `error: {:#}` and exits with
/// the error's own code.
pub fn main_coded<F, Fut, E>(threads: Threads, body: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Failure,
{
    init_tracing();
    let runtime = match threads {
        Threads::Multi => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        Threads::Current => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(body()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commit is the checkout's HEAD (or the override the build was given).
    #[test]
    fn the_commit_is_the_head_this_was_built_from() {
        let expected = match option_env!("LOG_DISTRIBUTOR_COMMIT") {
            Some(c) if !c.trim().is_empty() => c.trim().to_owned(),
            _ => {
                let out = std::process::Command::new("git")
                    .args(["rev-parse", "--short=12", "HEAD"])
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "git rev-parse failed: not a checkout?"
                );
                let head = String::from_utf8(out.stdout).unwrap().trim().to_owned();
                assert_eq!(head.len(), 12, "{head}");
                head
            }
        };
        assert_eq!(COMMIT, expected);
        assert_eq!(
            VERSION,
            format!("{} (commit {expected})", env!("CARGO_PKG_VERSION"))
        );
    }
}
