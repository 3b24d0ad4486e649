//! The components as child processes of the harness's own executable, one role each
//! (`harness distributor ...`, `harness analyzer-sink ...`, `harness loadgen ...`).
//!
//! No child outlives the harness: each gets a pipe as stdin and `HARNESS_WATCH_STDIN=1`,
//! and stops as on SIGTERM when the pipe closes (the harness exited, however it died);
//! every child is also killed when its handle is dropped.

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// One component process (started, possibly several times).
#[derive(Debug)]
pub struct Component {
    /// Name in logs and events.
    pub name: String,
    /// Role: the first argument of the harness executable.
    pub role: &'static str,
    /// The role's arguments.
    pub args: Vec<String>,
    /// Where stdout and stderr go (appended across restarts).
    pub log: PathBuf,
    child: Option<Child>,
    /// Every command line started, for the manifest.
    pub command_lines: Vec<String>,
}

impl Component {
    /// A component not started yet.
    pub fn new(name: &str, role: &'static str, args: Vec<String>, log: PathBuf) -> Self {
        Self {
            name: name.to_owned(),
            role,
            args,
            log,
            child: None,
            command_lines: Vec::new(),
        }
    }

    /// Starts (or starts again) the process.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("cannot find the harness executable")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let err = log
            .try_clone()
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let child = Command::new(&exe)
            .arg(self.role)
            .args(&self.args)
            .env(runner::WATCH_STDIN, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.name))?;
        self.command_lines.push(format!(
            "{} {} {}",
            exe.display(),
            self.role,
            self.args.join(" ")
        ));
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

    /// Sends a signal by name (TERM, STOP, CONT, USR1, USR2).
    pub async fn signal(&self, name: &str) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            anyhow::bail!("{} is not running", self.name);
        };
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .await
            .context("cannot run kill")?;
        anyhow::ensure!(
            status.success(),
            "kill -{name} {pid} ({}) failed",
            self.name
        );
        Ok(())
    }

    /// SIGKILL, and reap.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()
                .await
                .with_context(|| format!("cannot kill {}", self.name))?;
        }
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
        let _ = self.signal("CONT").await;
        self.signal("TERM").await?;
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

/// CPU time (utime + stime, seconds) and RSS (bytes) of a process, from /proc.
pub fn proc_usage(pid: u32, ticks_per_second: f64) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(((utime + stime) / ticks_per_second, rss_kb * 1024))
}

/// Clock ticks per second for /proc times (`getconf CLK_TCK`, else Linux's usual 100).
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A free loopback port (bound and released; the kernel does not hand it out again at once).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// Appends `line` to a file.
pub fn append(path: &Path, line: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(f, "{line}").with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_usage() {
        let (cpu, rss) = proc_usage(std::process::id(), ticks_per_second()).unwrap();
        assert!(cpu >= 0.0);
        assert!(rss > 1 << 20);
        assert!(proc_usage(u32::MAX, 100.0).is_none());
    }
}
