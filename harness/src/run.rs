//! Running a profile end to end: distributor and sinks as child processes, the loadgen,
//! the chaos schedule, CPU/RSS sampling, a clean stop, then the report.

use crate::procs::{Binary, Component, free_port, git_commit, proc_usage};
use crate::profile::Profile;
use crate::progress::Progress;
use crate::prometheus::Prometheus;
use crate::tls::RunTls;
use anyhow::Context as _;
use nix::sys::signal::Signal;
use runfolder::json::Manifest;
use runfolder::names::utc_stamp;
use runfolder::rows::{Alert, Event, Probe, Resource, Scope, Stats};
use runfolder::{ChaosAction, TableReader, TableWriter, names};
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
    /// Run a real Prometheus beside the distributor with the alert rules, and write
    /// `alerts.csv`.
    pub prometheus: bool,
}

/// The run folder and the report's verdict.
#[derive(Debug)]
pub struct RunResult {
    /// `results/<profile>-<UTC time>`.
    pub dir: PathBuf,
    /// 0 no check failed, 1 a check failed, 2 no report.
    pub exit_code: u8,
}

/// The distributor's latest totals row in its stats CSV (written every second).
pub(crate) fn latest_totals(stats_csv: &Path) -> Option<Stats> {
    TableReader::<Stats>::open(stats_csv)
        .ok()?
        .filter_map(Result::ok)
        .filter(|r| r.analyzer == Scope::Total)
        .last()
}

/// Waits until the distributor's stats show `want` live analyzers.
pub(crate) async fn wait_ready(
    stats_csv: &Path,
    want: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if latest_totals(stats_csv).is_some_and(|t| t.live as usize >= want) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the distributor did not see {want} live analyzers within {:.0} s (its stats: {})",
            timeout.as_secs_f64(),
            stats_csv.display()
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
    /// The certificates of a `tls = true` run.
    tls: Option<RunTls>,
}

impl Setup {
    fn stats_csv(&self, incarnation: u32) -> PathBuf {
        names::STATS.path(&self.dir, incarnation)
    }
}

/// Writes the distributor's settings (the profile's, with the run's addresses) to
/// `distributor.toml` in the run folder.
fn write_distributor_config(p: &Profile, s: &Setup) -> anyhow::Result<PathBuf> {
    let local = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut c = p.distributor.clone();
    c.emitter_listen = local(s.emitter_port);
    c.analyzer_listen = local(s.analyzer_port);
    c.metrics_listen = Some(local(s.metrics_port));
    c.stats_csv = None;
    if p.journal {
        c.data_dir = Some(s.dir.join(names::JOURNAL_DIR));
    }
    if let Some(tls) = &s.tls {
        tls.configure(&mut c);
    }
    if p.hang_timeout_set {
        // A shortened run shortens hangs too, so a hang timeout the profile sets scales
        // along (not below 1 s).
        c.hang_timeout = c
            .hang_timeout
            .mul_f64(s.scale.min(1.0))
            .max(Duration::from_secs(1));
    }
    let path = s.dir.join(names::DISTRIBUTOR_CONFIG);
    let text = c
        .to_toml()
        .context("cannot encode the distributor's settings")?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn distributor_args(config: &Path, s: &Setup, incarnation: u32) -> Vec<String> {
    vec![
        format!("--config={}", config.display()),
        format!("--stats-csv={}", s.stats_csv(incarnation).display()),
    ]
}

fn sink_config(a: &analyzer_sink::Config, s: &Setup) -> analyzer_sink::Config {
    analyzer_sink::Config {
        distributor: std::net::SocketAddr::from(([127, 0, 0, 1], s.analyzer_port)),
        out: s.dir.clone(),
        tls: s.tls.as_ref().map(|t| t.client(&a.id)).unwrap_or_default(),
        ..a.clone()
    }
}

/// The loadgens: the profile's load, and the restricted emitters of `[security]`.
fn loadgens(p: &Profile, s: &Setup) -> Vec<Component> {
    let config = |e: &loadgen::Config, identity: &str| loadgen::Config {
        target: std::net::SocketAddr::from(([127, 0, 0, 1], s.emitter_port)),
        duration: s.duration,
        out: s.dir.clone(),
        tls: s
            .tls
            .as_ref()
            .map(|t| t.client(identity))
            .unwrap_or_default(),
        ..e.clone()
    };
    let mut all = vec![Component::new(
        "loadgen",
        Binary::Loadgen,
        config(&p.emitters, crate::profile::LOADGEN_IDENTITY).to_args(),
        names::LOG.path(&s.dir, "loadgen"),
    )];
    if let Some(r) = p.security.as_ref().and_then(|sec| sec.restricted.as_ref()) {
        let name = format!("loadgen-{}", r.identity);
        let c = loadgen::Config {
            emitter_id_base: names::RESTRICTED_ID_BASE,
            ..config(&r.emitters, &r.identity)
        };
        let log = names::LOG.path(&s.dir, &name);
        all.push(Component::new(&name, Binary::Loadgen, c.to_args(), log));
    }
    all
}

/// The files the harness itself writes while the run goes on.
struct Records {
    events: TableWriter<Event>,
    resources: TableWriter<Resource>,
    /// When the loadgen started (ns since the epoch): the origin of `at_s` columns.
    load_started_ns: Option<u64>,
}

/// The running processes.
struct Processes {
    distributor: Component,
    distributor_config: PathBuf,
    incarnation: u32,
    sinks: BTreeMap<String, Component>,
    /// Command lines of helpers the harness started before the components (Prometheus).
    helpers: Vec<String>,
}

/// Runs a profile; the report's verdict decides the exit code.
pub async fn run(
    opts: RunOptions,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<RunResult> {
    let profile = Profile::load(&opts.path)?;
    if opts.prometheus {
        // Before any folder or process: a missing Prometheus is named at once.
        crate::prometheus::binary()?;
    }
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
    std::fs::copy(&opts.path, dir.join(names::PROFILE)).context("cannot copy the profile")?;
    let tls = match profile.tls {
        true => Some(RunTls::mint(&dir, &profile).context("minting the run's certificates")?),
        false => None,
    };
    let setup = Setup {
        tls,
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
    let mut records = Records {
        events: TableWriter::create(&dir.join(names::EVENTS))?,
        resources: TableWriter::create(&dir.join(names::RESOURCES))?,
        load_started_ns: None,
    };
    let distributor_config = write_distributor_config(&profile, &setup)?;
    let mut prometheus = if opts.prometheus {
        let target = std::net::SocketAddr::from(([127, 0, 0, 1], setup.metrics_port));
        let ca = setup.tls.as_ref().map(RunTls::ca);
        let p = Prometheus::start(&dir.join("prometheus"), target, ca)
            .await
            .context("--prometheus")?;
        println!(
            "harness: Prometheus at http://{} scrapes the distributor every {} s",
            p.addr,
            crate::prometheus::INTERVAL.as_secs()
        );
        Some(p)
    } else {
        None
    };
    let started_ns = protocol::now_ns();
    let mut procs = Processes {
        distributor: Component::new(
            "distributor",
            Binary::Distributor,
            distributor_args(&distributor_config, &setup, 1),
            names::LOG.path(&dir, "distributor-1"),
        ),
        distributor_config,
        incarnation: 1,
        helpers: prometheus
            .as_ref()
            .map(|p| p.command_lines().to_vec())
            .unwrap_or_default(),
        sinks: profile
            .analyzers
            .iter()
            .map(|a| {
                let name = format!("sink-{}", a.id);
                let log = names::LOG.path(&dir, &name);
                let args = sink_config(a, &setup).to_args();
                (
                    a.id.clone(),
                    Component::new(&name, Binary::AnalyzerSink, args, log),
                )
            })
            .collect(),
    };
    let mut loadgens = loadgens(&profile, &setup);
    let outcome = drive(
        &profile,
        &setup,
        &mut procs,
        &mut loadgens,
        &mut records,
        stop,
    )
    .await;
    // Whatever happened, nothing stays behind.
    let grace = profile.distributor.drain_timeout + Duration::from_secs(10);
    for l in &mut loadgens {
        let _ = l.stop(Duration::from_secs(10)).await;
    }
    for s in procs.sinks.values() {
        let _ = s.signal(Signal::SIGCONT);
        let _ = s.signal(Signal::SIGUSR2);
    }
    let dist_exit = procs.distributor.stop(grace).await;
    for s in procs.sinks.values_mut() {
        let _ = s.stop(Duration::from_secs(10)).await;
    }
    let ended_unix = protocol::now_ns() / 1_000_000_000;
    let alerts = match prometheus.as_mut() {
        Some(p) => {
            let origin = records.load_started_ns.unwrap_or(started_ns);
            let alerts = p
                .alerts(started_ns, protocol::now_ns(), origin)
                .await
                .context("asking Prometheus for the alerts");
            let _ = p.stop().await;
            Some(alerts)
        }
        None => None,
    };
    write_manifest(
        &dir,
        &opts,
        &profile,
        &setup,
        &procs,
        &loadgens,
        started_unix,
        ended_unix,
    )?;
    let latest = opts.out.join("latest");
    let _ = std::fs::remove_file(&latest);
    if let Some(name) = dir.file_name() {
        let _ = std::os::unix::fs::symlink(name, &latest);
    }
    let probes = outcome?;
    if profile
        .security
        .as_ref()
        .is_some_and(|s| s.impostor.is_some())
    {
        let mut w = TableWriter::<Probe>::create(&dir.join(names::SECURITY))?;
        for p in probes {
            w.write(&p)?;
        }
        w.flush()?;
    }
    if let Some(alerts) = alerts {
        let mut w = TableWriter::<Alert>::create(&dir.join(names::ALERTS))?;
        for a in alerts? {
            w.write(&a)?;
        }
        w.flush()?;
    }
    if let Ok(Some(code)) = dist_exit
        && code != 0
    {
        anyhow::bail!(
            "the distributor exited with code {code}; see {}",
            names::LOG
                .path(&dir, format!("distributor-{}", procs.incarnation))
                .display()
        );
    }
    println!("harness: running the report");
    let exit_code = report(&dir).await?;
    Ok(RunResult { dir, exit_code })
}

/// Runs the shipped `report` binary on the run folder, its output on ours; its exit code
/// (0 pass, 1 a check failed, 2 no report).
async fn report(dir: &Path) -> anyhow::Result<u8> {
    crate::procs::run_report([dir.as_os_str()]).await
}

/// Starts everything, applies the schedule while the loadgens run, samples the
/// distributor; returns the impostor's probes.
async fn drive(
    profile: &Profile,
    setup: &Setup,
    procs: &mut Processes,
    loadgens: &mut [Component],
    records: &mut Records,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Vec<Probe>> {
    procs.distributor.start()?;
    // Its first stats row comes once it listens: the sinks then connect at the first try.
    let stats = setup.stats_csv(procs.incarnation);
    wait_ready(&stats, 0, Duration::from_secs(30)).await?;
    for s in procs.sinks.values_mut() {
        s.start()?;
    }
    wait_ready(
        &setup.stats_csv(procs.incarnation),
        procs.sinks.len(),
        Duration::from_secs(30),
    )
    .await?;
    let mut schedule: Vec<(f64, ChaosAction, Vec<String>)> = profile
        .chaos
        .iter()
        .map(|c| (c.at * setup.scale, c.action, c.targets.clone()))
        .collect();
    schedule.sort_by(|a, b| a.0.total_cmp(&b.0));
    let schedule = schedule.into_iter().peekable();
    let started = Instant::now();
    records.load_started_ns = Some(protocol::now_ns());
    for l in loadgens.iter_mut() {
        l.start()?;
    }
    let impostor = impostor(profile, setup);
    let mut progress = Progress::new(setup.duration);
    let outcome = run_schedule(
        setup,
        procs,
        loadgens,
        records,
        &mut progress,
        profile,
        schedule,
        started,
        stop,
    )
    .await;
    progress.finish();
    let Some(task) = impostor else {
        return outcome.map(|()| Vec::new());
    };
    if let Err(e) = outcome {
        task.abort();
        return Err(e);
    }
    task.await.context("the impostor task failed")
}

/// The impostor of `[security.impostor]`, started with the load.
fn impostor(profile: &Profile, setup: &Setup) -> Option<tokio::task::JoinHandle<Vec<Probe>>> {
    let imp = profile.security.as_ref()?.impostor.as_ref()?;
    let run_tls = setup.tls.as_ref()?;
    let tls = run_tls.client(runfolder::profile::IMPOSTOR);
    let emitter = run_tls.client(crate::profile::LOADGEN_IDENTITY);
    let at_s = imp.at * setup.scale;
    let analyzer = std::net::SocketAddr::from(([127, 0, 0, 1], setup.analyzer_port));
    Some(tokio::spawn(crate::tls::impostor(
        tls,
        emitter,
        analyzer,
        imp.claims.clone(),
        Duration::from_secs_f64(at_s),
        at_s,
    )))
}

/// The chaos schedule against the clock while the loadgens run; samples once a second.
#[expect(clippy::too_many_arguments, reason = "the run's moving parts, once")]
async fn run_schedule(
    setup: &Setup,
    procs: &mut Processes,
    loadgens: &mut [Component],
    records: &mut Records,
    progress: &mut Progress,
    profile: &Profile,
    mut schedule: std::iter::Peekable<std::vec::IntoIter<(f64, ChaosAction, Vec<String>)>>,
    started: Instant,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let mut sample = tokio::time::interval(Duration::from_secs(1));
    let mut last_cpu: Option<(Instant, f64, u32)> = None;
    loop {
        if loadgens.iter_mut().all(|l| !l.running()) {
            for l in loadgens.iter_mut() {
                let code = l.wait().await?;
                anyhow::ensure!(
                    code == Some(0),
                    "{} failed (exit {code:?}); see {}",
                    l.name,
                    l.log.display()
                );
            }
            break;
        }
        if !procs.distributor.running() && !schedule.peek().is_some_and(|e| e.1.on_distributor()) {
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
                    && let Some((cpu, rss)) = proc_usage(pid)
                {
                    let now = Instant::now();
                    let pct = match last_cpu {
                        Some((t, c, p)) if p == pid => (cpu - c) / now.duration_since(t).as_secs_f64() * 100.0,
                        _ => 0.0,
                    };
                    last_cpu = Some((now, cpu, pid));
                    records.resources.write(&Resource { ts_ns: protocol::now_ns(), cpu_pct: pct, rss_bytes: rss })?;
                    records.resources.flush()?;
                }
                let next = schedule.peek().map(|(at, action, targets)| (*at, action.as_str(), targets.as_slice()));
                progress.update(started.elapsed(), latest_totals(&setup.stats_csv(procs.incarnation)), next);
            }
            _ = tokio::time::sleep(until_event.unwrap_or(Duration::from_secs(3600))), if until_event.is_some() => {
                if let Some((at, action, targets)) = schedule.next() {
                    let who: String = targets.iter().map(|t| format!(" {t}")).collect();
                    progress.println(&format!("harness: t={at:.1} s: {action}{who}"));
                    apply(profile, setup, procs, records, action, &targets, at).await?;
                }
            }
        }
    }
    Ok(())
}

/// Applies one chaos event and records it in `events.csv`.
async fn apply(
    profile: &Profile,
    setup: &Setup,
    procs: &mut Processes,
    records: &mut Records,
    action: ChaosAction,
    targets: &[String],
    at: f64,
) -> anyhow::Result<()> {
    let mut record = |target: &str| -> anyhow::Result<()> {
        records.events.write(&Event {
            ts_ns: protocol::now_ns(),
            at_s: at,
            action,
            target: target.to_owned(),
        })?;
        records.events.flush()?;
        Ok(())
    };
    if action.on_distributor() {
        record("distributor")?;
        if action == ChaosAction::KillDistributor {
            procs.distributor.kill().await?;
        } else {
            let grace = profile.distributor.drain_timeout + Duration::from_secs(10);
            procs.distributor.stop(grace).await?;
        }
        procs.incarnation += 1;
        let n = procs.incarnation;
        procs.distributor.args = distributor_args(&procs.distributor_config, setup, n);
        procs.distributor.log = names::LOG.path(&setup.dir, format!("distributor-{n}"));
        procs.distributor.start()?;
        return Ok(());
    }
    for t in targets {
        let Some(sink) = procs.sinks.get_mut(t) else {
            continue;
        };
        record(t)?;
        let result = match action {
            ChaosAction::Kill => sink.kill().await,
            ChaosAction::Start => sink.start(),
            ChaosAction::Stop => sink.signal(Signal::SIGSTOP),
            ChaosAction::Cont => sink.signal(Signal::SIGCONT),
            ChaosAction::Slow => sink.signal(Signal::SIGUSR1),
            ChaosAction::Fast => sink.signal(Signal::SIGUSR2),
            ChaosAction::RestartDistributor | ChaosAction::KillDistributor => Ok(()),
        };
        result.with_context(|| format!("chaos {action} {t}"))?;
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
    loadgens: &[Component],
    start: u64,
    end: u64,
) -> anyhow::Result<()> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mut command_lines: Vec<String> = procs.helpers.clone();
    command_lines.extend(procs.distributor.command_lines.iter().cloned());
    for s in procs.sinks.values() {
        command_lines.extend(s.command_lines.iter().cloned());
    }
    for l in loadgens {
        command_lines.extend(l.command_lines.iter().cloned());
    }
    let manifest = Manifest {
        profile: opts.name.clone(),
        profile_file: opts.path.display().to_string(),
        description: profile.description.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit: git_commit(),
        host,
        cores: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        start_utc: utc_stamp(start),
        end_utc: utc_stamp(end),
        duration_s: setup.duration,
        scale: setup.scale,
        distributor_incarnations: procs.incarnation,
        command_lines,
    };
    runfolder::table::write_json(&dir.join(names::MANIFEST), &manifest)?;
    Ok(())
}
