//! `harness bench`: end-to-end performance of the distributor on this machine, loadgen and
//! sinks included, written to `results/bench-<UTC time>/bench.json` and `bench.md`.
//!
//! 1. saturation: the loadgen at `max`, sinks in summary mode: delivered msg/s and MiB/s,
//!    distributor CPU seconds per million messages (from /proc), peak RSS, loss;
//! 2. latency: p50/p99/p999 end to end at fixed offered loads;
//! 3. fan-in: 50k msg/s in total from 10, 100, 1,000, 4,000 and 10,000 emitters (many small
//!    senders, as real log shipping looks), with the distributor's RSS per connection;
//! 4. scaling: 10 and 100 analyzers;
//! 5. a reference: the same byte stream (one connection at `max`) through the distributor
//!    and through a plain TCP relay (socat), CPU per MiB of each;
//! 6. tls: saturation over plain TCP and over mutual TLS (every connection, certificates
//!    minted per run), CPU per MiB of each, in the same suite.
//!
//! Every figure is the median of `--repeat` runs with its spread (min-max).

use crate::procs::{Binary, Component, free_port, git_commit, proc_usage};
use crate::run::{latest_totals, wait_ready};
use anyhow::Context as _;
use nix::sys::signal::Signal;
use runfolder::Fsync;
use runfolder::json::{Bench, BenchRun, BenchScenario};
use runfolder::names;
use runfolder::names::utc_stamp;
use runfolder::rows::EmitterTotals;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Where the bench folder goes.
    pub out: PathBuf,
    /// Runs per scenario.
    pub repeat: usize,
    /// Seconds of load per run.
    pub seconds: f64,
    /// Only these groups (`saturation`, `latency`, `reference`, `fan-in`, `scaling`, `tls`,
    /// `durable`);
    /// every group when empty.
    pub groups: Vec<String>,
    /// An earlier bench folder to compare the new one against (`report compare`).
    pub compare_to: Option<PathBuf>,
    /// Slow every sink by this many µs per message (`analyzer-sink --delay-us`): a slower
    /// system on purpose, to see the regression gate fire.
    pub sink_delay_us: Option<u64>,
}

/// One scenario's setup.
#[derive(Debug, Clone)]
struct Scenario {
    group: &'static str,
    name: String,
    emitters: u32,
    /// Per emitter, msg/s, or `max`.
    rate: String,
    sinks: usize,
    /// Every connection over mutual TLS.
    tls: bool,
    /// Acknowledged emitters (`loadgen --acks`).
    acks: bool,
    /// A data directory with this fsync policy.
    journal: Option<Fsync>,
    /// The sinks are stopped (SIGSTOP) while the load runs and resumed after: the backlog
    /// waits in the distributor.
    pause_sinks: bool,
    /// Payload bytes per message (mean), when not the loadgen's default.
    size_mean: Option<f64>,
    /// Seconds of load at least, whatever `--seconds` says.
    min_seconds: f64,
}

/// One run's figures.
type Figures = BenchRun;

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn median_spread(xs: &[f64]) -> (f64, f64, f64) {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = if v.is_empty() { 0.0 } else { v[v.len() / 2] };
    (
        mid,
        v.first().copied().unwrap_or(0.0),
        v.last().copied().unwrap_or(0.0),
    )
}

/// Runs distributor + sinks + loadgen once in `dir`.
async fn run_once(
    s: &Scenario,
    seconds: f64,
    sink_delay_us: Option<u64>,
    dir: &Path,
) -> anyhow::Result<Figures> {
    std::fs::create_dir_all(dir)?;
    let (ep, ap) = (free_port()?, free_port()?);
    let stats_csv = names::STATS.path(dir, 1);
    let sink_ids: Vec<String> = (0..s.sinks).map(|i| format!("b{i:03}")).collect();
    let tls = match s.tls {
        true => {
            let mut names: Vec<&str> = sink_ids.iter().map(String::as_str).collect();
            names.push(crate::profile::LOADGEN_IDENTITY);
            Some(crate::tls::RunTls::mint_for(dir, &names, None)?)
        }
        false => None,
    };
    let client = |name: &str| tls.as_ref().map(|t| t.client(name)).unwrap_or_default();
    let seconds = seconds.max(s.min_seconds);
    let mut config = distributor::Config {
        emitter_listen: local(ep),
        analyzer_listen: local(ap),
        stats_csv: Some(stats_csv.clone()),
        seed: Some(1),
        data_dir: s.journal.map(|_| dir.join(names::JOURNAL_DIR)),
        fsync: s.journal.unwrap_or_default(),
        ..distributor::Config::default()
    };
    if let Some(t) = &tls {
        t.configure(&mut config);
    }
    let config_path = dir.join(names::DISTRIBUTOR_CONFIG);
    std::fs::write(&config_path, config.to_toml()?)?;
    let mut dist = Component::new(
        "distributor",
        Binary::Distributor,
        vec![format!("--config={}", config_path.display())],
        names::LOG.path(dir, "distributor"),
    );
    dist.start()?;
    let mut sinks: Vec<Component> = sink_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let sink = analyzer_sink::Config {
                distributor: local(ap),
                weight: (1 + i % 3) as f64,
                log: runfolder::LogMode::Summary,
                out: dir.to_owned(),
                delay_us: sink_delay_us,
                tls: client(id),
                ..analyzer_sink::Config::with_id(id)
            };
            let name = format!("sink-{i}");
            let log = names::LOG.path(dir, &name);
            Component::new(&name, Binary::AnalyzerSink, sink.to_args(), log)
        })
        .collect();
    for k in &mut sinks {
        k.start()?;
    }
    wait_ready(&stats_csv, s.sinks, Duration::from_secs(30))
        .await
        .with_context(|| format!("{}: analyzers did not connect", s.name))?;
    let defaults = loadgen::Config::default();
    let load = loadgen::Config {
        target: local(ep),
        emitters: s.emitters,
        rate: s.rate.parse().map_err(anyhow::Error::msg)?,
        duration: seconds,
        out: dir.to_owned(),
        tls: client(crate::profile::LOADGEN_IDENTITY),
        acks: s.acks,
        size_mean: s.size_mean.unwrap_or(defaults.size_mean),
        ..defaults
    };
    if s.pause_sinks {
        for k in &sinks {
            k.signal(Signal::SIGSTOP)?;
        }
    }
    let pid = dist.pid().context("distributor not running")?;
    let (cpu0, rss0) = proc_usage(pid).context("cannot read the distributor's /proc")?;
    let d0 = latest_totals(&stats_csv).map_or(0, |t| t.delivered);
    let t0 = Instant::now();
    let watched = drive_loadgen(load, dir, pid)
        .await
        .with_context(|| s.name.clone())?;
    let mut peak_rss = watched.peak_rss;
    if s.pause_sinks {
        for k in &sinks {
            k.signal(Signal::SIGCONT)?;
        }
    }
    // Let the distributor finish what it holds (a stats row taken after the load ended
    // shows it empty; rows come once a second), then read the figures. A backlog on disk
    // takes longer.
    let ended_ns = protocol::now_ns();
    let drain = if s.pause_sinks { 300 } else { 20 };
    let drain_deadline = Instant::now() + Duration::from_secs(drain);
    while Instant::now() < drain_deadline {
        let empty = latest_totals(&stats_csv).is_some_and(|t| {
            t.ts_ns >= ended_ns && t.queued + t.inflight + t.holding + t.disk_waiting == 0
        });
        if empty {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, rss) = proc_usage(pid).unwrap_or((cpu0, 0));
    peak_rss = peak_rss.max(rss);
    dist.stop(Duration::from_secs(20)).await?;
    for k in &mut sinks {
        k.stop(Duration::from_secs(10)).await?;
    }
    let delivered = latest_totals(&stats_csv).map_or(d0, |t| t.delivered);
    let run = report::load::run(dir, &report::model::Overrides::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sent: u64 = run.emitters.iter().map(|e| e.sent).sum();
    let unique: u64 = run.emitters.iter().map(|e| run.seen.unique(e.id)).sum();
    let bytes: u64 = loadgen_bytes(dir)?;
    let lat = report::checks::latency::overall(&report::checks::latency::merge(
        run.analyzers.iter().map(|a| &a.latency),
    ));
    let q = |p: f64| {
        lat.as_ref()
            .map_or(0.0, |h| h.value_at_quantile(p) as f64 / 1000.0)
    };
    let secured = match s.acks {
        true => {
            runfolder::table::read_all::<runfolder::rows::Latency>(&names::SECURED.path(dir, 0))?
                .into_iter()
                .next()
        }
        false => None,
    };
    let peak_journal = s.journal.map(|_| {
        runfolder::table::read_all::<runfolder::rows::Stats>(&stats_csv)
            .unwrap_or_default()
            .iter()
            .map(|r| r.journal_bytes)
            .max()
            .unwrap_or(0) as f64
            / (1 << 20) as f64
    });
    // With the sinks paused, delivery happens after the load: throughput is not the point.
    let n = delivered.saturating_sub(d0) as f64;
    let cpu = cpu1 - cpu0;
    let mib = bytes as f64 / (1 << 20) as f64;
    Ok(Figures {
        sent,
        delivered_per_s: n / seconds.min(elapsed),
        mib_per_s: mib / seconds.min(elapsed),
        cpu_s_per_million: if n > 0.0 { cpu / (n / 1e6) } else { 0.0 },
        cpu_us_per_mib: if mib > 0.0 { cpu * 1e6 / mib } else { 0.0 },
        peak_rss_mib: peak_rss as f64 / (1 << 20) as f64,
        rss_per_connection_kib: Some(
            peak_rss.saturating_sub(rss0) as f64 / 1024.0 / f64::from(s.emitters.max(1)),
        ),
        lost: sent.saturating_sub(unique),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        secured_p50_ms: secured.as_ref().map(|l| l.p50_us as f64 / 1000.0),
        secured_p99_ms: secured.as_ref().map(|l| l.p99_us as f64 / 1000.0),
        peak_journal_mib: peak_journal,
    })
}

/// What was seen of a watched process while the loadgen ran.
struct Watched {
    /// Its CPU seconds at the last sample.
    last_cpu: Option<f64>,
    /// Its largest RSS, bytes.
    peak_rss: u64,
}

/// Runs the loadgen with `load` to its end (exit 0 or an error naming its log), sampling
/// process `pid` every 100 ms.
async fn drive_loadgen(load: loadgen::Config, dir: &Path, pid: u32) -> anyhow::Result<Watched> {
    let mut loadgen = Component::new(
        "loadgen",
        Binary::Loadgen,
        load.to_args(),
        names::LOG.path(dir, "loadgen"),
    );
    let mut watched = Watched {
        last_cpu: None,
        peak_rss: 0,
    };
    loadgen.start()?;
    while loadgen.running() {
        if let Some((cpu, rss)) = proc_usage(pid) {
            watched.last_cpu = Some(cpu);
            watched.peak_rss = watched.peak_rss.max(rss);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let code = loadgen.wait().await?;
    anyhow::ensure!(
        code == Some(0),
        "the loadgen failed (exit {code:?}); see {}",
        loadgen.log.display()
    );
    Ok(watched)
}

/// Payload bytes the loadgen wrote, from its manifest.
fn loadgen_bytes(dir: &Path) -> anyhow::Result<u64> {
    let rows = runfolder::table::read_all::<EmitterTotals>(&names::EMITTERS.path(dir, 0))?;
    Ok(rows.iter().map(|r| r.bytes).sum())
}

/// The same byte stream (one emitter at `max`) through socat; socat's CPU per MiB.
async fn relay_once(seconds: f64, dir: &Path) -> anyhow::Result<Option<f64>> {
    std::fs::create_dir_all(dir)?;
    if std::process::Command::new("socat")
        .arg("-V")
        .output()
        .is_err()
    {
        return Ok(None);
    }
    let (front, back) = (free_port()?, free_port()?);
    let mut discard = tokio::process::Command::new("socat")
        .args([
            "-u",
            &format!("TCP-LISTEN:{back},reuseaddr,fork"),
            "OPEN:/dev/null",
        ])
        .kill_on_drop(true)
        .spawn()
        .context("cannot start socat")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut relay = tokio::process::Command::new("socat")
        .args([
            &format!("TCP-LISTEN:{front},reuseaddr"),
            &format!("TCP:127.0.0.1:{back}"),
        ])
        .kill_on_drop(true)
        .spawn()
        .context("cannot start socat")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = relay.id().context("socat exited")?;
    let load = loadgen::Config {
        target: local(front),
        rate: loadgen::Rate::Max,
        duration: seconds,
        out: dir.to_owned(),
        ..loadgen::Config::default()
    };
    let (cpu0, _) = proc_usage(pid).context("cannot read socat's /proc")?;
    let watched = drive_loadgen(load, dir, pid).await?;
    let last_cpu = watched.last_cpu.unwrap_or(cpu0);
    let _ = relay.kill().await;
    let _ = discard.kill().await;
    let mib = loadgen_bytes(dir)? as f64 / (1 << 20) as f64;
    Ok(Some((last_cpu - cpu0) * 1e6 / mib.max(1e-9)))
}

/// The scenarios of `groups` (all when empty), in the suite's order.
fn scenarios(groups: &[String]) -> Vec<Scenario> {
    let sc = |group, name: &str, emitters, rate: &str, sinks| Scenario {
        group,
        name: name.to_owned(),
        emitters,
        rate: rate.to_owned(),
        sinks,
        tls: false,
        acks: false,
        journal: None,
        pause_sinks: false,
        size_mean: None,
        min_seconds: 0.0,
    };
    let durable = |name: &str, emitters, rate: &str, journal| Scenario {
        acks: true,
        journal,
        ..sc("durable", name, emitters, rate, 3)
    };
    let all = vec![
        sc("saturation", "max, 8 emitters, 3 analyzers", 8, "max", 3),
        sc("latency", "10k msg/s", 20, "500", 3),
        sc("latency", "80k msg/s", 20, "4000", 3),
        sc("latency", "200k msg/s", 20, "10000", 3),
        sc("reference", "1 emitter at max, distributor", 1, "max", 3),
        sc("fan-in", "10 emitters x 5000 msg/s", 10, "5000", 3),
        sc("fan-in", "100 emitters x 500 msg/s", 100, "500", 3),
        sc("fan-in", "1000 emitters x 50 msg/s", 1000, "50", 3),
        sc("fan-in", "4000 emitters x 12.5 msg/s", 4000, "12.5", 3),
        sc("fan-in", "10000 emitters x 5 msg/s", 10_000, "5", 3),
        sc("scaling", "10 analyzers, 50k msg/s", 20, "2500", 10),
        sc("scaling", "100 analyzers, 50k msg/s", 20, "2500", 100),
        sc(
            "tls",
            "max, 8 emitters, 3 analyzers, plain TCP",
            8,
            "max",
            3,
        ),
        Scenario {
            tls: true,
            ..sc(
                "tls",
                "max, 8 emitters, 3 analyzers, mutual TLS",
                8,
                "max",
                3,
            )
        },
        durable("max, 8 acked emitters, in memory", 8, "max", None),
        durable(
            "max, 8 acked emitters, journal (fsync interval)",
            8,
            "max",
            Some(Fsync::Interval),
        ),
        durable("80k msg/s acked, in memory", 20, "4000", None),
        durable(
            "80k msg/s acked, journal (fsync interval)",
            20,
            "4000",
            Some(Fsync::Interval),
        ),
        durable(
            "80k msg/s acked, journal (fsync always)",
            20,
            "4000",
            Some(Fsync::Always),
        ),
        // 50k msg/s of 1 KiB for 22 s: more than 1 GB waits on disk while the sinks are
        // stopped; memory must stay bounded.
        Scenario {
            pause_sinks: true,
            size_mean: Some(1024.0),
            min_seconds: 22.0,
            ..durable(
                "50k msg/s of 1 KiB, sinks paused, journal",
                10,
                "5000",
                Some(Fsync::Interval),
            )
        },
    ];
    all.into_iter()
        .filter(|s| groups.is_empty() || groups.iter().any(|g| g == s.group))
        .collect()
}

/// Runs the suite and, with `compare_to`, compares it against that earlier bench
/// (`report compare`, its output into `<bench folder>/compare/`). Returns the exit code: 0,
/// or the comparison's (0 no regression, 1 a regression, 2 the benches do not compare).
pub async fn bench(opts: BenchOptions) -> anyhow::Result<u8> {
    if let Some(base) = &opts.compare_to {
        // Fail before minutes of load, not after.
        anyhow::ensure!(
            base.join(names::BENCH).is_file(),
            "--compare-to {}: no {} there (give a folder `harness bench` wrote)",
            base.display(),
            names::BENCH
        );
    }
    let dir = suite(&opts).await?;
    let Some(base) = &opts.compare_to else {
        return Ok(0);
    };
    println!("\nbench: comparing with {}", base.display());
    crate::procs::run_report([
        std::ffi::OsStr::new("compare"),
        "--base".as_ref(),
        base.as_os_str(),
        "--candidate".as_ref(),
        dir.as_os_str(),
        "--out".as_ref(),
        dir.join("compare").as_os_str(),
    ])
    .await
}

/// Runs the suite; returns the bench folder.
async fn suite(opts: &BenchOptions) -> anyhow::Result<PathBuf> {
    let dir = opts.out.join(format!(
        "bench-{}",
        utc_stamp(protocol::now_ns() / 1_000_000_000)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut rows: Vec<(Scenario, Vec<Figures>)> = Vec::new();
    for s in scenarios(&opts.groups) {
        let mut runs = Vec::new();
        for r in 0..opts.repeat {
            let d = dir.join(format!("{}-{}-{r}", s.group, rows.len()));
            let f = run_once(&s, opts.seconds, opts.sink_delay_us, &d)
                .await
                .with_context(|| format!("scenario {}", s.name))?;
            println!(
                "bench: {:<11} {:<34} run {r}: {:>9.0} msg/s {:>7.1} MiB/s cpu {:.2} s/M msgs rss {:.1} MiB ({:.1} KiB/conn) p99 {:.2} ms lost {}",
                s.group,
                s.name,
                f.delivered_per_s,
                f.mib_per_s,
                f.cpu_s_per_million,
                f.peak_rss_mib,
                f.rss_per_connection_kib.unwrap_or(0.0),
                f.p99_ms,
                f.lost
            );
            // Runs keep only their figures (the folders are large), unless something was
            // lost: then the folder stays for the report to explain.
            if f.lost == 0 {
                let _ = std::fs::remove_dir_all(&d);
            } else {
                println!(
                    "bench: {} messages lost; the run is kept in {}",
                    f.lost,
                    d.display()
                );
            }
            runs.push(f);
        }
        rows.push((s, runs));
    }
    let mut relay = Vec::new();
    let with_reference = opts.groups.is_empty() || opts.groups.iter().any(|g| g == "reference");
    for r in (0..opts.repeat).filter(|_| with_reference) {
        if let Some(us) = relay_once(opts.seconds, &dir.join(format!("relay-{r}"))).await? {
            println!("bench: reference   socat relay run {r}: cpu {us:.0} µs/MiB");
            relay.push(us);
        }
        let _ = std::fs::remove_dir_all(dir.join(format!("relay-{r}")));
    }
    let (json, md) = render(&rows, &relay, opts);
    runfolder::table::write_json(&dir.join(names::BENCH), &json)?;
    std::fs::write(dir.join("bench.md"), &md)?;
    println!("\n{md}");
    println!("bench: {}", dir.join("bench.md").display());
    Ok(dir)
}

/// The `tls` group's CPU per MiB over plain TCP and over TLS, and their ratio.
fn tls_ratio(rows: &[(Scenario, Vec<Figures>)]) -> Option<(f64, f64, f64)> {
    let cpu = |tls: bool| {
        rows.iter()
            .find(|(s, _)| s.group == "tls" && s.tls == tls)
            .map(|(_, runs)| stat(runs, |f| f.cpu_us_per_mib).0)
    };
    let (plain, tls) = (cpu(false)?, cpu(true)?);
    (plain > 0.0).then(|| (plain, tls, tls / plain))
}

fn stat(runs: &[Figures], f: impl Fn(&Figures) -> f64) -> (f64, f64, f64) {
    median_spread(&runs.iter().map(f).collect::<Vec<_>>())
}

fn render(
    rows: &[(Scenario, Vec<Figures>)],
    relay: &[f64],
    opts: &BenchOptions,
) -> (Bench, String) {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let slowed = opts.sink_delay_us.map_or_else(String::new, |d| {
        format!(" **Sinks slowed on purpose: {d} µs per message (`--sink-delay-us`).**")
    });
    let mut md = format!(
        "Median of {} runs of {} s each (min-max in brackets); loadgen, sinks and distributor on the same {cores}-core machine.{slowed}\n\n\
| group | scenario | delivered msg/s | MiB/s | distributor CPU s per M msgs | CPU µs per MiB | peak RSS MiB | RSS KiB per connection | p50 ms | p99 ms | p999 ms | lost |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        opts.repeat, opts.seconds,
    );
    for (s, runs) in rows {
        let cell = |f: &dyn Fn(&Figures) -> f64, prec: usize| {
            let (m, lo, hi) = stat(runs, f);
            format!("{m:.prec$} [{lo:.prec$}-{hi:.prec$}]")
        };
        let lost: u64 = runs.iter().map(|r| r.lost).sum();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {lost} |",
            s.group,
            s.name,
            cell(&|f| f.delivered_per_s, 0),
            cell(&|f| f.mib_per_s, 1),
            cell(&|f| f.cpu_s_per_million, 2),
            cell(&|f| f.cpu_us_per_mib, 0),
            cell(&|f| f.peak_rss_mib, 1),
            cell(&|f| f.rss_per_connection_kib.unwrap_or(0.0), 1),
            cell(&|f| f.p50_ms, 2),
            cell(&|f| f.p99_ms, 2),
            cell(&|f| f.p999_ms, 2),
        );
    }
    let (relay_m, relay_lo, relay_hi) = median_spread(relay);
    let dist_us = rows
        .iter()
        .find(|r| r.0.group == "reference")
        .map(|r| stat(&r.1, |f| f.cpu_us_per_mib).0);
    let ratio = match (relay.is_empty(), dist_us) {
        (false, Some(d)) => {
            let _ = writeln!(
                md,
                "\nReference: the same single-connection byte stream relayed by socat costs {relay_m:.0} µs of CPU per MiB [{relay_lo:.0}-{relay_hi:.0}]; the distributor {d:.0} µs per MiB: **{:.2}x** the plain relay.",
                d / relay_m
            );
            Some(d / relay_m)
        }
        (true, Some(_)) => {
            md.push_str("\nReference: socat is not installed (`apt-get install socat`); no relay comparison.\n");
            None
        }
        // The reference group was not run.
        (_, None) => None,
    };
    for (s, runs) in rows.iter().filter(|(s, _)| s.group == "durable") {
        let ms = |f: fn(&Figures) -> Option<f64>| stat(runs, |r| f(r).unwrap_or(0.0)).0;
        let _ = writeln!(
            md,
            "\nDurable, {}: {:.0} msg/s, {:.2} µs CPU per message, secured p50 {:.2} ms, p99 {:.2} ms (first write to ACK){}, peak RSS {:.1} MiB.",
            s.name,
            stat(runs, |f| f.delivered_per_s).0,
            stat(runs, |f| f.cpu_s_per_million).0,
            ms(|r| r.secured_p50_ms),
            ms(|r| r.secured_p99_ms),
            match s.journal {
                Some(_) => format!(", journal peak {:.0} MiB", ms(|r| r.peak_journal_mib)),
                None => String::new(),
            },
            stat(runs, |f| f.peak_rss_mib).0,
        );
    }
    let tls_ratio = tls_ratio(rows);
    if let Some((plain, tls, ratio)) = tls_ratio {
        let _ = writeln!(
            md,
            "\nTLS: saturation over mutual TLS costs {tls:.0} µs of distributor CPU per MiB against {plain:.0} µs over plain TCP in the same suite: **{ratio:.2}x**."
        );
    }
    let bench = Bench {
        repeat: opts.repeat,
        seconds: opts.seconds,
        cores,
        git_commit: git_commit(),
        scenarios: rows
            .iter()
            .map(|(s, runs)| BenchScenario {
                group: s.group.to_owned(),
                name: s.name.clone(),
                emitters: s.emitters,
                rate: s.rate.clone(),
                analyzers: s.sinks,
                runs: runs.clone(),
            })
            .collect(),
        relay_cpu_us_per_mib: relay.to_vec(),
        distributor_vs_relay_cpu_ratio: ratio,
        tls_vs_plain_cpu_ratio: tls_ratio.map(|r| r.2),
        sink_delay_us: opts.sink_delay_us,
    };
    (bench, md)
}
