//! The components as child processes: the shipped `distributor`, `analyzer-sink`,
//! `loadgen` and `report` binaries, found beside the harness's own executable, so that what a run
//! measures is what users deploy.
//!
//! No child outlives the harness: each gets a pipe as stdin and `HARNESS_WATCH_STDIN=1`,
//! and stops as on SIGTERM when the pipe closes (the harness exited, however it died);
//! every child is also killed when its handle is dropped.

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A shipped binary of the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// The distributor.
    Distributor,
    /// The analyzer sink.
    AnalyzerSink,
    /// The load generator.
    Loadgen,
    /// The report tool.
    Report,
    /// Prometheus (`harness --prometheus`): not ours, found on PATH.
    Prometheus,
}

impl Binary {
    /// The executable's file name.
    pub fn name(self) -> &'static str {
        match self {
            Binary::Distributor => "distributor",
            Binary::AnalyzerSink => "analyzer-sink",
            Binary::Loadgen => "loadgen",
            Binary::Report => "report",
            Binary::Prometheus => "prometheus",
        }
    }

    /// Its path: beside the harness executable (for a test binary in `deps/`, one folder
    /// up). A missing binary is an error naming it and the command that builds it.
    pub fn path(self) -> anyhow::Result<PathBuf> {
        if self == Binary::Prometheus {
            return on_path(self.name()).with_context(|| {
                format!(
                    "`{}` is not on PATH: install Debian's package (`apt-get install prometheus`)",
                    self.name()
                )
            });
        }
        let exe = std::env::current_exe().context("cannot find the harness executable")?;
        let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir.pop();
        }
        let path = dir.join(self.name());
        anyhow::ensure!(
            path.is_file(),
            "the `{}` binary is not beside the harness (looked for {}); build every binary \
             with `cargo build --release --workspace`",
            self.name(),
            path.display()
        );
        Ok(path)
    }
}

/// The first executable file `name` in the PATH's folders.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// One component process (started, possibly several times).
#[derive(Debug)]
pub struct Component {
    /// Name in logs and events.
    pub name: String,
    /// Which binary it runs.
    pub binary: Binary,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where stdout and stderr go (appended across restarts).
    pub log: PathBuf,
    child: Option<Child>,
    /// The write end of the child's stdin pipe, held until the child has exited: the child
    /// stops when it closes, which must mean "the harness went away", not "the harness is
    /// waiting for me" (tokio's `Child::wait` would close a pipe it still held).
    stdin: Option<tokio::process::ChildStdin>,
    /// Every command line started, for the manifest.
    pub command_lines: Vec<String>,
}

impl Component {
    /// A component not started yet.
    pub fn new(name: &str, binary: Binary, args: Vec<String>, log: PathBuf) -> Self {
        Self {
            name: name.to_owned(),
            binary,
            args,
            log,
            child: None,
            stdin: None,
            command_lines: Vec::new(),
        }
    }

    /// Starts (or starts again) the process.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let program = self.binary.path()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let err = log
            .try_clone()
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let mut child = Command::new(&program)
            .args(&self.args)
            .env(runner::WATCH_STDIN, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} ({})", self.name, program.display()))?;
        self.command_lines
            .push(format!("{} {}", program.display(), self.args.join(" ")));
        self.stdin = child.stdin.take();
        self.child = Some(child);
        Ok(())
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether a process is running (not exited; a stopped one counts as running).
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Sends a signal.
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            anyhow::bail!("{} is not running", self.name);
        };
        let pid = i32::try_from(pid).context("a pid beyond i32")?;
        kill(Pid::from_raw(pid), signal)
            .with_context(|| format!("cannot send {signal} to {} (pid {pid})", self.name))
    }

    /// SIGKILL, and reap.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()
                .await
                .with_context(|| format!("cannot kill {}", self.name))?;
        }
        self.stdin = None;
        Ok(())
    }

    /// Waits for the process to exit by itself; its exit code.
    pub async fn wait(&mut self) -> anyhow::Result<Option<i32>> {
        match self.child.as_mut() {
            Some(c) => {
                let status = c
                    .wait()
                    .await
                    .with_context(|| format!("waiting for {}", self.name))?;
                self.child = None;
                self.stdin = None;
                Ok(status.code())
            }
            None => Ok(None),
        }
    }

    /// SIGTERM (after SIGCONT, in case it is stopped), then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) -> anyhow::Result<Option<i32>> {
        if !self.running() {
            return self.wait().await;
        }
        let _ = self.signal(Signal::SIGCONT);
        self.signal(Signal::SIGTERM)?;
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(component = %self.name, "did not stop within {:.0} s of SIGTERM; killing", grace.as_secs_f64());
                self.kill().await?;
                Ok(None)
            }
        }
    }
}

/// CPU time (user + system, seconds) and resident set size (bytes) of a process.
pub fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = procfs::process::Process::new(i32::try_from(pid).ok()?)
        .ok()?
        .stat()
        .ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    let cpu = (stat.utime + stat.stime) as f64 / ticks;
    Some((cpu, stat.rss * procfs::page_size()))
}

/// A free loopback port (bound and released; the kernel does not hand it out again at once).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// Runs the shipped `report` binary with `args`, its output on ours; its exit code (2 when
/// it died without one).
pub async fn run_report<I, S>(args: I) -> anyhow::Result<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let program = Binary::Report.path()?;
    let status = tokio::process::Command::new(&program)
        .args(args)
        .kill_on_drop(true)
        .status()
        .await
        .with_context(|| format!("cannot run {}", program.display()))?;
    Ok(status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(2))
}

/// `git rev-parse HEAD` in the working directory, or empty outside a checkout.
pub fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_usage() {
        let (cpu, rss) = proc_usage(std::process::id()).unwrap();
        assert!(cpu >= 0.0);
        assert!(rss > 1 << 20);
        assert!(proc_usage(u32::MAX).is_none());
    }
}
