//! What an SRE deploys beside the distributor, tested with the real tools: the alert rules
//! through `promtool`, every panel of the Grafana dashboard through a real Prometheus
//! scraping a distributor under load, and `harness --prometheus` runs whose alerts the
//! report checks.
//!
//! Prometheus is Debian's package (`apt-get install prometheus`); CI installs it. Where it
//! is missing these tests say so and pass, except under CI (`CI=true`), where they fail.
#![expect(clippy::unwrap_used, reason = "a failed setup fails the test")]
#![expect(clippy::panic, reason = "a missing tool under CI fails the test")]

use harness::procs::{Binary, Component, free_port};
use harness::prometheus::{ALERT_RULES, Prometheus, http_get};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The repository's root (this crate's parent).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Whether `tool` can run; under CI its absence fails the test.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("`{tool}` is not installed; CI must install it (apt-get install prometheus)");
        }
        eprintln!("skipped: `{tool}` is not installed (apt-get install prometheus)");
    }
    ok
}

fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("monitoring-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_alert_rules_pass_promtool() {
    if !have("promtool") {
        return;
    }
    let dir = repo().join("deploy/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The metric names an expression uses (`distributor_...`), without the suffixes a
/// counter's or histogram's samples add.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("distributor_") {
        let start = i + at;
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b':');
        let end = expr[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(expr.len(), |e| start + e);
        if !preceded {
            let name = &expr[start..end];
            let base = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            out.push(base.to_owned());
        }
        i = end;
    }
    out
}

/// Recording rules an expression uses (`distributor:...`).
fn recorded_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("distributor:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn names_are_found_in_expressions() {
    assert_eq!(
        metric_names(
            "sum(rate(distributor_received_frames_total{job=\"x\"}[1m])) / distributor:x:y + distributor_queue_wait_seconds_bucket"
        ),
        vec![
            "distributor_received_frames",
            "distributor_queue_wait_seconds"
        ]
    );
    assert_eq!(
        recorded_names("distributor:analyzer_share:ratio1m{job=\"$job\"}"),
        vec!["distributor:analyzer_share:ratio1m"]
    );
}

/// A distributor with a metrics endpoint, two sinks and a loadgen sending every priority
/// for `seconds`: the pieces a dashboard watches.
struct Loaded {
    procs: Vec<Component>,
    metrics: SocketAddr,
}

async fn under_load(dir: &Path, seconds: f64) -> Loaded {
    let local = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let (ep, ap, mp) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let config = distributor::Config {
        emitter_listen: local(ep),
        analyzer_listen: local(ap),
        metrics_listen: Some(local(mp)),
        seed: Some(1),
        // The journal's series exist only with a data directory.
        data_dir: Some(dir.join("journal")),
        ..distributor::Config::default()
    };
    let config_path = dir.join("distributor.toml");
    std::fs::write(&config_path, config.to_toml().unwrap()).unwrap();
    let mut procs = vec![Component::new(
        "distributor",
        Binary::Distributor,
        vec![format!("--config={}", config_path.display())],
        dir.join("distributor.log"),
    )];
    for (i, id) in ["m1", "m2"].iter().enumerate() {
        let sink = analyzer_sink::Config {
            distributor: local(ap),
            weight: (i + 1) as f64,
            log: runfolder::LogMode::Summary,
            out: dir.to_owned(),
            ..analyzer_sink::Config::with_id(id)
        };
        procs.push(Component::new(
            id,
            Binary::AnalyzerSink,
            sink.to_args(),
            dir.join(format!("{id}.log")),
        ));
    }
    let load = loadgen::Config {
        target: local(ep),
        emitters: 4,
        rate: "250".parse().unwrap(),
        duration: seconds,
        priority_mode: runfolder::PriorityMode::Random,
        priority_range: "0-255".parse().unwrap(),
        out: dir.to_owned(),
        ..loadgen::Config::default()
    };
    procs.push(Component::new(
        "loadgen",
        Binary::Loadgen,
        load.to_args(),
        dir.join("loadgen.log"),
    ));
    for p in &mut procs {
        p.start().unwrap();
    }
    Loaded {
        procs,
        metrics: local(mp),
    }
}

/// The names of the metric families `/metrics` exposes (its `# TYPE` lines).
async fn exported(metrics: SocketAddr) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, body)) = http_get(metrics, "/metrics").await {
            return body
                .lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_owned)
                .collect();
        }
        assert!(Instant::now() < deadline, "no /metrics at {metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_returns_data_from_a_real_prometheus() {
    if !have("prometheus") {
        return;
    }
    let dir = workdir("dashboard");
    let mut load = under_load(&dir, 60.0).await;
    let exported = exported(load.metrics).await;
    let mut prom = Prometheus::start(&dir.join("prometheus"), load.metrics, None)
        .await
        .unwrap();
    let text = std::fs::read_to_string(repo().join("deploy/grafana/distributor.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut queries: Vec<(String, String)> = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$job", "distributor");
            queries.push((panel["title"].as_str().unwrap().to_owned(), expr));
        }
    }
    assert!(queries.len() >= 10, "{} queries", queries.len());
    // No panel names a metric the distributor does not export, or a rule not defined.
    for (title, expr) in &queries {
        for name in metric_names(expr) {
            assert!(
                exported.contains(&name),
                "{title}: {name} is not exported; {expr}"
            );
        }
        for name in recorded_names(expr) {
            assert!(
                ALERT_RULES.contains(&format!("record: {name}\n")),
                "{title}: {name} is not a recording rule of alerts.yml"
            );
        }
    }
    // Every query returns data once rates have two scrapes and the rules have run.
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut empty: Vec<String>;
    loop {
        empty = Vec::new();
        for (title, expr) in &queries {
            match prom.query(expr).await {
                Ok(r) if !r.is_empty() => {}
                Ok(_) => empty.push(format!("{title}: no data for {expr}")),
                Err(e) => panic!("{title}: {expr}: {e:#}"),
            }
        }
        if empty.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let _ = prom.stop().await;
    for p in load.procs.iter_mut().rev() {
        let _ = p.stop(Duration::from_secs(15)).await;
    }
    assert!(empty.is_empty(), "{empty:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// At-least-once analyzers: a best-effort one killed loses what sat unread in its socket,
/// which the accounting check would rightly call a loss; this test is about the alerts.
const PROFILE: &str = r#"
description = "monitoring test"
duration = 30
[distributor]
seed = 1
routing = "smooth"
[[analyzers]]
id = "w1"
weight = 2
acks = true
[[analyzers]]
id = "w2"
weight = 1
acks = true
[emitters]
count = 2
rate = 200
"#;

/// Runs the harness with `--prometheus` on `profile`: its exit code and the run folder.
fn harness_run(dir: &Path, profile: &str, duration: &str) -> (Option<i32>, PathBuf, String) {
    std::fs::write(dir.join("p.toml"), profile).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg(dir.join("p.toml"))
        .args(["--duration", duration, "--prometheus", "--out"])
        .arg(dir.join("results"))
        .output()
        .unwrap();
    let stdout =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), dir.join("results/latest"), stdout)
}

#[test]
fn a_run_with_prometheus_checks_its_alerts() {
    if !have("prometheus") {
        return;
    }
    // A clean run fires nothing.
    let dir = workdir("clean");
    let (code, run, out) = harness_run(&dir, PROFILE, "12");
    assert_eq!(code, Some(0), "{out}");
    let alerts =
        runfolder::table::read_all::<runfolder::rows::Alert>(&run.join("alerts.csv")).unwrap();
    assert!(alerts.is_empty(), "{alerts:?}");
    assert!(out.contains("PASS          alerting"), "{out}");
    assert!(run.join("prometheus/prometheus.yml").is_file());
    let manifest: runfolder::json::Manifest =
        runfolder::table::read_json(&run.join("manifest.json")).unwrap();
    assert!(
        manifest.command_lines[0].contains("prometheus --config.file="),
        "{:?}",
        manifest.command_lines
    );
    // An analyzer killed for 16 s raises AnalyzerDown within 15 s.
    let dir = workdir("kill");
    let chaos = format!(
        "{PROFILE}[[chaos]]\nat = 4\naction = \"kill\"\ntargets = [\"w2\"]\n[[chaos]]\nat = 20\naction = \"start\"\ntargets = [\"w2\"]\n"
    );
    let (code, run, out) = harness_run(&dir, &chaos, "30");
    let alerts =
        runfolder::table::read_all::<runfolder::rows::Alert>(&run.join("alerts.csv")).unwrap();
    let down: Vec<_> = alerts
        .iter()
        .filter(|a| a.alert == "AnalyzerDown" && a.label("analyzer") == Some("w2"))
        .collect();
    assert_eq!(down.len(), 1, "{alerts:?}");
    let events =
        runfolder::table::read_all::<runfolder::rows::Event>(&run.join("events.csv")).unwrap();
    let kill = events
        .iter()
        .find(|e| e.action == runfolder::ChaosAction::Kill)
        .unwrap();
    let after_kill = (down[0].fired_ns as f64 - kill.ts_ns as f64) / 1e9;
    assert!(
        (9.0..=15.0).contains(&after_kill),
        "{after_kill} s: {alerts:?}"
    );
    assert!(down[0].resolved_ns.is_some(), "resolved once w2 came back");
    assert!(out.contains("PASS          alerting"), "{out}");
    assert_eq!(code, Some(0), "{out}");
    let _ = std::fs::remove_dir_all(
        dir.parent()
            .unwrap()
            .join(format!("monitoring-test-{}-clean", std::process::id())),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_prometheus_is_named_with_its_install_command() {
    let dir = workdir("missing");
    std::fs::write(dir.join("p.toml"), PROFILE).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg(dir.join("p.toml"))
        .args(["--duration", "2", "--prometheus", "--out"])
        .arg(dir.join("results"))
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("apt-get install prometheus"), "{err}");
    assert!(
        !dir.join("results").exists(),
        "no run folder for a run that never started"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
