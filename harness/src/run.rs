//! Running a profile end to end: distributor and sinks as child processes, the loadgen,
//! the chaos schedule, CPU/RSS sampling, a clean stop, then the report.

use crate::procs::{Component, append, free_port, proc_usage, ticks_per_second};
use crate::profile::{Action, Profile};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The profile's name (for the folder) and file.
    pub name: String,
    /// The profile file.
    pub path: PathBuf,
    /// Seconds of load instead of the profile's (the schedule scales along).
    pub duration: Option<f64>,
    /// Where run folders go.
    pub out: PathBuf,
}

/// The run folder and the report's verdict.
#[derive(Debug)]
pub struct RunResult {
    /// `results/<profile>-<UTC time>`.
    pub dir: PathBuf,
    /// 0 no check failed, 1 a check failed, 2 no report.
    pub exit_code: u8,
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time.
pub fn utc_stamp(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads `/metrics` once: metric name -> sum over label sets.
pub(crate) async fn metrics(port: u16) -> Option<BTreeMap<String, f64>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .ok()?
    .ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut text))
        .await
        .ok()?
        .ok()?;
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("distributor_")) {
        let (name, value) = line.rsplit_once(' ')?;
        let name = name.split('{').next()?.to_owned();
        *out.entry(name).or_insert(0.0) += value.parse::<f64>().ok()?;
    }
    Some(out)
}

/// Waits until `/metrics` answers and `want` analyzers are live.
async fn wait_ready(port: u16, want: usize, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(m) = metrics(port).await {
            let live = m.get("distributor_analyzer_live").copied().unwrap_or(0.0) as usize;
            if live >= want {
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the distributor did not see {want} live analyzers within {:.0} s",
            timeout.as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Setup {
    dir: PathBuf,
    emitter_port: u16,
    analyzer_port: u16,
    metrics_port: u16,
    scale: f64,
    duration: f64,
}

fn distributor_args(p: &Profile, s: &Setup, incarnation: u32) -> Vec<String> {
    let d = &p.distributor;
    let mut a = vec![
        format!("--emitter-listen=127.0.0.1:{}", s.emitter_port),
        format!("--analyzer-listen=127.0.0.1:{}", s.analyzer_port),
        format!("--metrics-listen=127.0.0.1:{}", s.metrics_port),
        format!(
            "--stats-csv={}",
            s.dir.join(format!("stats-{incarnation}.csv")).display()
        ),
    ];
    let mut opt = |flag: &str, v: Option<String>| {
        if let Some(v) = v {
            a.push(format!("--{flag}={v}"));
        }
    };
    opt("routing", d.routing.clone());
    opt("queue-capacity", d.queue_capacity.map(|v| v.to_string()));
    opt("overflow", d.overflow.clone());
    opt("ack-window", d.ack_window.map(|v| v.to_string()));
    // A shortened run shortens hangs too, so the hang timeout scales (not below 1 s).
    opt(
        "hang-timeout",
        d.hang_timeout
            .map(|v| (v * s.scale.min(1.0)).max(1.0).to_string()),
    );
    opt("drain-timeout", d.drain_timeout.map(|v| v.to_string()));
    opt("max-attempts", d.max_attempts.map(|v| v.to_string()));
    opt(
        "holding-capacity",
        d.holding_capacity.map(|v| v.to_string()),
    );
    opt("seed", d.seed.map(|v| v.to_string()));
    a
}

fn sink_args(a: &crate::profile::AnalyzerSettings, s: &Setup) -> Vec<String> {
    let mut v = vec![
        format!("--distributor=127.0.0.1:{}", s.analyzer_port),
        format!("--id={}", a.id),
        format!("--weight={}", a.weight),
        format!("--out={}", s.dir.display()),
        format!("--log={}", a.log),
    ];
    if a.acks {
        v.push("--acks".into());
    }
    if let Some(c) = a.capacity {
        v.push(format!("--capacity={c}"));
    }
    if let Some(c) = a.slow_capacity {
        v.push(format!("--slow-capacity={c}"));
    }
    if let Some(b) = a.recv_buffer {
        v.push(format!("--recv-buffer={b}"));
    }
    v
}

fn loadgen_args(p: &Profile, s: &Setup) -> Vec<String> {
    let e = &p.emitters;
    let rate = match &e.rate {
        toml::Value::String(r) => r.clone(),
        other => other.to_string(),
    };
    vec![
        format!("--target=127.0.0.1:{}", s.emitter_port),
        format!("--emitters={}", e.count),
        format!("--rate={rate}"),
        format!("--duration={}", s.duration),
        format!("--priority-mode={}", e.priority_mode),
        format!("--priority={}", e.priority),
        format!("--priority-range={}", e.priority_range),
        format!("--size-mean={}", e.size_mean),
        format!("--size-sigma={}", e.size_sigma),
        format!("--size-min={}", e.size_min),
        format!("--size-max={}", e.size_max),
        format!("--seed={}", e.seed),
        format!("--out={}", s.dir.display()),
    ]
}

/// The running processes.
struct Processes {
    distributor: Component,
    incarnation: u32,
    sinks: BTreeMap<String, Component>,
}

/// Runs a profile; the report's verdict decides the exit code.
pub async fn run(
    opts: RunOptions,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<RunResult> {
    let profile = Profile::load(&opts.path)?;
    let duration = opts.duration.unwrap_or(profile.duration);
    anyhow::ensure!(
        duration.is_finite() && duration > 0.0,
        "--duration must be > 0 seconds"
    );
    let scale = duration / profile.duration;
    let started_unix = protocol::now_ns() / 1_000_000_000;
    let dir = opts
        .out
        .join(format!("{}-{}", opts.name, utc_stamp(started_unix)));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::copy(&opts.path, dir.join("profile.toml")).context("cannot copy the profile")?;
    let setup = Setup {
        dir: dir.clone(),
        emitter_port: free_port()?,
        analyzer_port: free_port()?,
        metrics_port: free_port()?,
        scale,
        duration,
    };
    println!(
        "harness: {} for {duration} s (scale {scale:.2}) into {}",
        opts.name,
        dir.display()
    );
    let events = dir.join("events.csv");
    append(&events, "ts_ns,at_s,action,target")?;
    let mut procs = Processes {
        distributor: Component::new(
            "distributor",
            "distributor",
            distributor_args(&profile, &setup, 1),
            dir.join("distributor-1.log"),
        ),
        incarnation: 1,
        sinks: profile
            .analyzers
            .iter()
            .map(|a| {
                (
                    a.id.clone(),
                    Component::new(
                        &format!("sink-{}", a.id),
                        "analyzer-sink",
                        sink_args(a, &setup),
                        dir.join(format!("sink-{}.log", a.id)),
                    ),
                )
            })
            .collect(),
    };
    let mut loadgen = Component::new(
        "loadgen",
        "loadgen",
        loadgen_args(&profile, &setup),
        dir.join("loadgen.log"),
    );
    let outcome = drive(&profile, &setup, &mut procs, &mut loadgen, stop).await;
    // Whatever happened, nothing stays behind.
    let grace = Duration::from_secs_f64(profile.distributor.drain_timeout.unwrap_or(10.0) + 10.0);
    let _ = loadgen.stop(Duration::from_secs(10)).await;
    for s in procs.sinks.values() {
        let _ = s.signal("CONT").await;
        let _ = s.signal("USR2").await;
    }
    let dist_exit = procs.distributor.stop(grace).await;
    for s in procs.sinks.values_mut() {
        let _ = s.stop(Duration::from_secs(10)).await;
    }
    let ended_unix = protocol::now_ns() / 1_000_000_000;
    write_manifest(
        &dir,
        &opts,
        &profile,
        &setup,
        &procs,
        &loadgen,
        started_unix,
        ended_unix,
    )?;
    let latest = opts.out.join("latest");
    let _ = std::fs::remove_file(&latest);
    if let Some(name) = dir.file_name() {
        let _ = std::os::unix::fs::symlink(name, &latest);
    }
    outcome?;
    if let Ok(Some(code)) = dist_exit
        && code != 0
    {
        anyhow::bail!(
            "the distributor exited with code {code}; see {}",
            dir.join(format!("distributor-{}.log", procs.incarnation))
                .display()
        );
    }
    println!("harness: running the report");
    let exit_code = match report::run(&dir, &report::model::Overrides::default()) {
        Ok(r) => {
            print!("{}", report::render::verdicts(&r.outcomes));
            for n in &r.notes {
                println!("note: {n}");
            }
            println!("harness: report {}", dir.join("report.html").display());
            u8::from(r.failed())
        }
        Err(e) => {
            eprintln!("error: report: {e:#}");
            2
        }
    };
    Ok(RunResult { dir, exit_code })
}

/// Starts everything, applies the schedule while the loadgen runs, samples the distributor.
async fn drive(
    profile: &Profile,
    setup: &Setup,
    procs: &mut Processes,
    loadgen: &mut Component,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    procs.distributor.start()?;
    for s in procs.sinks.values_mut() {
        s.start()?;
    }
    wait_ready(
        setup.metrics_port,
        procs.sinks.len(),
        Duration::from_secs(30),
    )
    .await?;
    let mut schedule: Vec<(f64, Action, Vec<String>)> = profile
        .chaos
        .iter()
        .map(|c| (c.at * setup.scale, c.action, c.targets.clone()))
        .collect();
    schedule.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut schedule = schedule.into_iter().peekable();
    let resources = setup.dir.join("resources.csv");
    append(&resources, "ts_ns,cpu_pct,rss_bytes")?;
    let ticks = ticks_per_second();
    let started = Instant::now();
    loadgen.start()?;
    let mut sample = tokio::time::interval(Duration::from_secs(1));
    let mut last_cpu: Option<(Instant, f64, u32)> = None;
    let mut last_status = Instant::now();
    loop {
        if !loadgen.running() {
            let code = loadgen.wait().await?;
            anyhow::ensure!(
                code == Some(0),
                "the loadgen failed (exit {code:?}); see {}",
                loadgen.log.display()
            );
            break;
        }
        if !procs.distributor.running()
            && !schedule
                .peek()
                .is_some_and(|e| e.1 == Action::RestartDistributor)
        {
            anyhow::bail!(
                "the distributor exited unexpectedly; see {}",
                procs.distributor.log.display()
            );
        }
        let next_event = schedule.peek().map(|e| e.0);
        let until_event =
            next_event.map(|at| Duration::from_secs_f64(at).saturating_sub(started.elapsed()));
        tokio::select! {
            _ = &mut stop => anyhow::bail!("interrupted"),
            _ = sample.tick() => {
                if let Some(pid) = procs.distributor.pid()
                    && let Some((cpu, rss)) = proc_usage(pid, ticks)
                {
                    let now = Instant::now();
                    let pct = match last_cpu {
                        Some((t, c, p)) if p == pid => (cpu - c) / now.duration_since(t).as_secs_f64() * 100.0,
                        _ => 0.0,
                    };
                    last_cpu = Some((now, cpu, pid));
                    append(&resources, &format!("{},{pct:.1},{rss}", protocol::now_ns()))?;
                }
                if last_status.elapsed() >= Duration::from_secs(5) {
                    last_status = Instant::now();
                    status_line(setup, started.elapsed()).await;
                }
            }
            _ = tokio::time::sleep(until_event.unwrap_or(Duration::from_secs(3600))), if until_event.is_some() => {
                if let Some((at, action, targets)) = schedule.next() {
                    apply(profile, setup, procs, action, &targets, at).await?;
                }
            }
        }
    }
    Ok(())
}

async fn status_line(setup: &Setup, elapsed: Duration) {
    if let Some(m) = metrics(setup.metrics_port).await {
        let g = |k: &str| m.get(k).copied().unwrap_or(0.0);
        println!(
            "harness: {:>5.0}/{:.0} s received {:.0} delivered {:.0} queued {:.0} holding {:.0} live analyzers {:.0}",
            elapsed.as_secs_f64(),
            setup.duration,
            g("distributor_received_frames_total"),
            g("distributor_delivered_frames_total"),
            g("distributor_queued_frames"),
            g("distributor_holding_frames"),
            g("distributor_analyzer_live"),
        );
    }
}

/// Applies one chaos event and records it in `events.csv`.
async fn apply(
    profile: &Profile,
    setup: &Setup,
    procs: &mut Processes,
    action: Action,
    targets: &[String],
    at: f64,
) -> anyhow::Result<()> {
    let events = setup.dir.join("events.csv");
    let record = |target: &str| {
        append(
            &events,
            &format!(
                "{},{at:.3},{},{target}",
                protocol::now_ns(),
                action.as_str()
            ),
        )
    };
    println!(
        "harness: t={at:.1} s: {} {}",
        action.as_str(),
        targets.join(" ")
    );
    if action == Action::RestartDistributor {
        record("distributor")?;
        let grace =
            Duration::from_secs_f64(profile.distributor.drain_timeout.unwrap_or(10.0) + 10.0);
        procs.distributor.stop(grace).await?;
        procs.incarnation += 1;
        let n = procs.incarnation;
        procs.distributor.args = distributor_args(profile, setup, n);
        procs.distributor.log = setup.dir.join(format!("distributor-{n}.log"));
        procs.distributor.start()?;
        return Ok(());
    }
    for t in targets {
        let Some(sink) = procs.sinks.get_mut(t) else {
            continue;
        };
        record(t)?;
        let result = match action {
            Action::Kill => sink.kill().await,
            Action::Start => sink.start(),
            Action::Stop => sink.signal("STOP").await,
            Action::Cont => sink.signal("CONT").await,
            Action::Slow => sink.signal("USR1").await,
            Action::Fast => sink.signal("USR2").await,
            Action::RestartDistributor => Ok(()),
        };
        result.with_context(|| format!("chaos {} {t}", action.as_str()))?;
    }
    Ok(())
}

#[expect(clippy::too_many_arguments, reason = "one flat record of the run")]
fn write_manifest(
    dir: &Path,
    opts: &RunOptions,
    profile: &Profile,
    setup: &Setup,
    procs: &Processes,
    loadgen: &Component,
    start: u64,
    end: u64,
) -> anyhow::Result<()> {
    let git = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mut commands: Vec<String> = procs.distributor.command_lines.clone();
    for s in procs.sinks.values() {
        commands.extend(s.command_lines.iter().cloned());
    }
    commands.extend(loadgen.command_lines.iter().cloned());
    let commands: Vec<String> = commands
        .iter()
        .map(|c| format!("    {}", json_str(c)))
        .collect();
    let text = format!(
        "{{\n  \"profile\": {},\n  \"profile_file\": {},\n  \"description\": {},\n  \"version\": {},\n  \"git_commit\": {},\n  \"host\": {},\n  \"cores\": {cores},\n  \"start_utc\": {},\n  \"end_utc\": {},\n  \"duration_s\": {},\n  \"scale\": {},\n  \"distributor_incarnations\": {},\n  \"command_lines\": [\n{}\n  ]\n}}\n",
        json_str(&opts.name),
        json_str(&opts.path.display().to_string()),
        json_str(&profile.description),
        json_str(env!("CARGO_PKG_VERSION")),
        json_str(&git),
        json_str(&host),
        json_str(&utc_stamp(start)),
        json_str(&utc_stamp(end)),
        setup.duration,
        setup.scale,
        procs.incarnation,
        commands.join(",\n"),
    );
    std::fs::write(dir.join("manifest.json"), text).context("cannot write manifest.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_795_786_664), "20261127T133744Z");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
