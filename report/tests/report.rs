//! The report on synthetic run folders: the clean run passes every check, and each
//! tampered run fails (or is not exercised) in the check that should catch it.
#![expect(clippy::unwrap_used, reason = "a failed setup fails the test")]

use report::checks::Status;
use report::model::Overrides;
use report::synth::{Tamper, write_run};
use std::path::PathBuf;

fn folder(name: &str, tamper: Tamper) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("report-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_run(&dir, 30_000, tamper).unwrap();
    dir
}

fn statuses(name: &str, tamper: Tamper) -> Vec<(String, Status)> {
    let dir = folder(name, tamper);
    let r = report::run(&dir, &Overrides::default()).unwrap();
    r.outcomes
        .iter()
        .map(|o| (o.name().to_owned(), o.status))
        .collect()
}

fn status_of(all: &[(String, Status)], check: &str) -> Status {
    all.iter().find(|(n, _)| n == check).map(|x| x.1).unwrap()
}

#[test]
fn the_clean_run_passes_every_check() {
    let s = statuses("clean", Tamper::None);
    for check in ["weights", "priority", "integrity", "accounting", "latency"] {
        assert_eq!(status_of(&s, check), Status::Pass, "{check}: {s:?}");
    }
}

#[test]
fn each_tampering_is_caught() {
    let cases = [
        (Tamper::RemoveArrivals, "accounting", Status::Fail),
        (Tamper::DuplicateRows, "accounting", Status::Fail),
        (Tamper::FlipCrc, "integrity", Status::Fail),
        (Tamper::SkewShares, "weights", Status::Fail),
        (Tamper::Invert, "priority", Status::Fail),
        (Tamper::NoBacklog, "priority", Status::NotExercised),
    ];
    for (tamper, check, want) in cases {
        let s = statuses(&format!("{tamper:?}"), tamper);
        assert_eq!(status_of(&s, check), want, "{tamper:?}: {s:?}");
    }
}

#[test]
fn spills_are_stated_and_the_shares_judged_on_the_routers_choices() {
    let dir = folder("spilled", Tamper::Spilled);
    let r = report::run(&dir, &Overrides::default()).unwrap();
    let w = r.outcomes.iter().find(|o| o.name() == "weights").unwrap();
    assert_eq!(w.status, Status::Pass, "{}", w.headline);
    assert!(
        w.headline
            .contains("3000 frames (10.00%) went to another analyzer"),
        "{}",
        w.headline
    );
    let a2 = w.rows.iter().find(|r| r.check == "weights:a2").unwrap();
    assert!(
        a2.detail.contains("delivered 6000 (0.2000) after spills"),
        "{}",
        a2.detail
    );
}

#[test]
fn outputs_are_written_and_self_contained() {
    let dir = folder("outputs", Tamper::None);
    report::run(&dir, &Overrides::default()).unwrap();
    let summary = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    assert!(summary.starts_with("check,status,value,expected,value_num,limit_num,unit,detail\n"));
    for check in ["weights", "priority", "integrity", "accounting", "latency"] {
        assert!(
            summary
                .lines()
                .any(|l| l.starts_with(&format!("{check},PASS,"))),
            "{check} row"
        );
    }
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<svg"), "charts inline as SVG");
    assert!(!html.contains("src=\"http"), "no external assets");
    for chart in ["throughput", "shares", "accounting", "latency_by_priority"] {
        let png = std::fs::read(dir.join("charts").join(format!("{chart}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(
            png.len() > 5_000,
            "{chart}: a real picture, {} bytes",
            png.len()
        );
    }
}

/// The text of the first element `<tag ...>` after `after`, tags inside stripped.
fn element_text(html: &str, open: &str) -> Option<String> {
    let start = html.find(open)? + open.len();
    let rest = &html[start..];
    let body = &rest[rest.find('>')? + 1..];
    let end = body.find("</")?;
    Some(body[..end].to_owned())
}

/// The value cell of the header row named `key`.
fn header_value(html: &str, key: &str) -> Option<String> {
    element_text(html, &format!("<tr><th>{key}</th><td"))
}

#[test]
fn the_html_page_has_the_header_the_banner_and_inline_svg() {
    let dir = folder("html", Tamper::None);
    let manifest = runfolder::json::Manifest {
        profile: "synthetic".into(),
        profile_file: "profiles/synthetic.toml".into(),
        description: "synthetic".into(),
        version: "9.9.9".into(),
        git_commit: "abc123".into(),
        host: "testhost".into(),
        cores: 2,
        start_utc: "20260101T000000Z".into(),
        end_utc: "20260101T000100Z".into(),
        duration_s: 60.0,
        scale: 1.0,
        distributor_incarnations: 1,
        command_lines: vec!["/bin/distributor --config=x".into()],
    };
    runfolder::table::write_json(&dir.join("manifest.json"), &manifest).unwrap();
    let r = report::run(&dir, &Overrides::default()).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<meta name=\"viewport\""));
    let banner = element_text(&html, "<div class=\"banner pass\"").unwrap();
    assert_eq!(banner, "PASS (5 passed)");
    assert_eq!(header_value(&html, "profile").as_deref(), Some("synthetic"));
    assert_eq!(
        header_value(&html, "host").as_deref(),
        Some("testhost, 2 cores")
    );
    assert!(header_value(&html, "version").unwrap().contains("abc123"));
    assert!(
        header_value(&html, "start, end (UTC)")
            .unwrap()
            .contains("20260101T000000Z")
    );
    assert!(header_value(&html, "chaos").is_some());
    assert!(
        html.contains("/bin/distributor --config=x"),
        "command lines"
    );
    // One inline SVG per chart, each title once (in the chart, not again as a heading).
    let charts = std::fs::read_dir(dir.join("charts")).unwrap().count();
    assert_eq!(html.matches("<svg").count(), charts);
    assert!(!html.contains("<h3>Throughput"), "no second title");
    // Links to the run's files, and the checks table with numbers.
    assert!(html.contains("<a href=\"arrivals-a1.csv\">"));
    assert!(html.contains("<a href=\"summary.csv\">"));
    assert_eq!(r.outcomes.len(), 5);
    assert!(html.contains("<th>limit</th><th>unit</th>"));
}

#[test]
fn foreign_traffic_is_judged_by_weights_order_and_the_distributors_counters() {
    let s = statuses("foreign", Tamper::Foreign);
    assert_eq!(status_of(&s, "weights"), Status::Pass, "{s:?}");
    assert_eq!(status_of(&s, "priority"), Status::Pass, "{s:?}");
    assert_eq!(status_of(&s, "accounting"), Status::Pass, "{s:?}");
    assert_eq!(status_of(&s, "integrity"), Status::NotExercised, "{s:?}");
    assert_eq!(status_of(&s, "latency"), Status::NotExercised, "{s:?}");
    let dir = folder("foreign-verdict", Tamper::Foreign);
    let (code, stdout, _) = report_bin(&dir, &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("foreign traffic"), "{stdout}");
    assert!(
        stdout
            .trim_end()
            .ends_with("RESULT: PASS (3 passed, 2 not exercised)"),
        "{stdout}"
    );
    // A loss only the distributor's counters show.
    let s = statuses("foreign-lost", Tamper::ForeignLost);
    assert_eq!(status_of(&s, "accounting"), Status::Fail, "{s:?}");
    // The same probes judged as foreign on request, without the loadgen's files' help.
    let probes = folder("as-foreign", Tamper::None);
    let (code, stdout, _) = report_bin(&probes, &["--traffic", "foreign"]);
    assert_eq!(code, Some(0), "{stdout}");
}

#[test]
fn random_routing_is_judged_by_a_confidence_interval() {
    let dir = folder("random", Tamper::None);
    let small = Overrides {
        routing: Some(runfolder::Routing::Random),
        weight_tolerance: Some(0.001),
        ..Overrides::default()
    };
    let r = report::run(&dir, &small).unwrap();
    let w = r.outcomes.iter().find(|o| o.name() == "weights").unwrap();
    // Exact shares, but 30,000 messages cannot show a 0.1% band: INCONCLUSIVE, with how
    // many would do.
    assert_eq!(w.status, Status::Inconclusive);
    assert!(
        w.rows
            .iter()
            .any(|r| r.detail.contains("messages would decide"))
    );
}

#[test]
fn exit_codes_of_the_binary() {
    let bin = env!("CARGO_BIN_EXE_report");
    let run = |dir: &PathBuf| std::process::Command::new(bin).arg(dir).output().unwrap();
    assert_eq!(run(&folder("exit0", Tamper::None)).status.code(), Some(0));
    assert_eq!(
        run(&folder("exit1", Tamper::FlipCrc)).status.code(),
        Some(1)
    );
    let broken = folder("exit2", Tamper::None);
    let path = broken.join("arrivals-a1.csv");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text = text.replacen("\n1800000000", "\nnot-a-number", 1);
    std::fs::write(&path, text).unwrap();
    let out = run(&broken);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("arrivals-a1.csv"), "{err}");
    // The cause is said once, not once by the error and again by its source.
    assert_eq!(err.matches("invalid digit").count(), 1, "{err}");
}

/// Runs the `report` binary on `dir`: (exit code, stdout, stderr).
fn report_bin(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_report"))
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_empty_or_wrong_folder_is_unusable_input_not_a_pass() {
    let empty = std::env::temp_dir().join(format!("report-test-{}-empty", std::process::id()));
    let _ = std::fs::remove_dir_all(&empty);
    std::fs::create_dir_all(&empty).unwrap();
    let (code, stdout, stderr) = report_bin(&empty, &[]);
    assert_eq!(code, Some(2), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("not a run folder") && stderr.contains("emitters-*.csv"),
        "{stderr}"
    );
    assert!(!empty.join("report.html").exists(), "nothing written");
    // A run in which nothing was sent.
    let idle = folder("idle", Tamper::None);
    let manifest = idle.join("emitters-0.csv");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let zeroed: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                return l.to_owned();
            }
            let mut f: Vec<&str> = l.split(',').collect();
            f[1] = "0";
            f.join(",")
        })
        .collect();
    std::fs::write(&manifest, zeroed.join("\n") + "\n").unwrap();
    let (code, _, stderr) = report_bin(&idle, &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    let (code, _, stderr) = report_bin(&idle.join("no-such-folder"), &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("not a run folder"), "{stderr}");
}

#[test]
fn closed_sets_and_tolerances_are_refused_with_exit_2() {
    let dir = folder("flags", Tamper::None);
    for args in [
        &["--routing", "rr"][..],
        &["--tolerance", "5"],
        &["--tolerance", "0"],
        &["--backlog-ms", "-1"],
    ] {
        let (code, _, stderr) = report_bin(&dir, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(args[1]), "{args:?}: {stderr}");
    }
    let (code, _, _) = report_bin(&dir, &["--tolerance", "5%"]);
    assert_eq!(code, Some(0));
}

#[test]
fn verdicts_end_with_the_result_line_and_summary_json_has_numbers() {
    let dir = folder("verdicts", Tamper::None);
    let (code, stdout, _) = report_bin(&dir, &[]);
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(*lines.last().unwrap(), "RESULT: PASS (5 passed)");
    let weights = lines
        .iter()
        .find(|l| l.starts_with("PASS          weights"))
        .unwrap();
    assert!(
        weights.contains("max relative error") && weights.contains("<= 5%"),
        "{weights}"
    );
    let json: Vec<runfolder::json::Check> =
        runfolder::table::read_json(&dir.join("summary.json")).unwrap();
    let w = json.iter().find(|c| c.check == "weights").unwrap();
    assert_eq!((w.limit, w.unit), (Some(5.0), runfolder::Unit::Percent));
    assert!(w.value.is_some_and(|v| v < 5.0));
    let lat = json.iter().find(|c| c.check == "latency").unwrap();
    assert_eq!((lat.limit, lat.unit), (Some(100.0), runfolder::Unit::Ms));
    let csv =
        runfolder::table::read_all::<runfolder::rows::CheckRow>(&dir.join("summary.csv")).unwrap();
    let a = csv.iter().find(|r| r.check == "accounting").unwrap();
    assert_eq!((a.value_num, a.limit_num), (Some(0.0), Some(0.0)));

    let (code, stdout, _) = report_bin(&folder("verdicts-fail", Tamper::FlipCrc), &[]);
    assert_eq!(code, Some(1));
    assert!(
        stdout
            .trim_end()
            .ends_with("RESULT: FAIL (2 failed, 3 passed)"),
        "{stdout}"
    );
    let (code, stdout, _) = report_bin(&dir, &["--routing", "random", "--tolerance", "0.001"]);
    assert_eq!(code, Some(3), "INCONCLUSIVE exits 3");
    let weights = stdout
        .lines()
        .find(|l| l.starts_with("INCONCLUSIVE"))
        .unwrap();
    assert!(weights.contains("messages would decide"), "{weights}");
}

#[test]
fn a_partial_last_line_is_tolerated() {
    let dir = folder("partial", Tamper::None);
    let path = dir.join("arrivals-a2.csv");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("1800000001000000000,1,99");
    std::fs::write(&path, text).unwrap();
    let r = report::run(&dir, &Overrides::default()).unwrap();
    assert_eq!(r.result(), Status::Pass, "{:?}", r.outcomes);
    assert!(r.notes.iter().any(|n| n.contains("partial last line")));
}

#[test]
fn a_second_in_which_analyzers_joined_is_not_held_against_them() {
    let dir = folder("joining", Tamper::None);
    // The distributor's first sample saw only a1 live: the others joined later in that
    // second. Arrivals of that second are not expected to go all to a1.
    let path = dir.join("stats-1.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for l in lines.iter_mut().skip(1).take(4) {
        if l.contains(",a2,1,") || l.contains(",a3,1,") {
            *l = l.replacen(",1,", ",0,", 1);
        }
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let r = report::run(&dir, &Overrides::default()).unwrap();
    let w = r.outcomes.iter().find(|o| o.name() == "weights").unwrap();
    assert_eq!(w.status, Status::Pass, "{:?}", w.rows);
}

#[test]
fn alerts_are_checked_only_in_runs_with_prometheus() {
    use runfolder::rows::{Alert, Event};
    use runfolder::{ChaosAction, TableWriter};
    let dir = folder("alerting", Tamper::None);
    let outcome = |dir: &std::path::Path| {
        report::run(dir, &Overrides::default())
            .unwrap()
            .outcomes
            .into_iter()
            .find(|o| o.name() == "alerting")
    };
    // No alerts.csv: no Prometheus, no check.
    assert!(outcome(&dir).is_none());
    let write_alerts = |alerts: &[Alert]| {
        let mut w = TableWriter::<Alert>::create(&dir.join("alerts.csv")).unwrap();
        for a in alerts {
            w.write(a).unwrap();
        }
        w.flush().unwrap();
    };
    let down = |analyzer: &str, fired_ns: u64| Alert {
        alert: "AnalyzerDown".into(),
        labels: format!("analyzer={analyzer} job=distributor severity=critical"),
        fired_ns,
        fired_at_s: 0.0,
        resolved_ns: None,
        resolved_at_s: None,
    };
    // A run without chaos: no alert passes, any alert fails.
    write_alerts(&[]);
    assert_eq!(outcome(&dir).unwrap().status, Status::Pass);
    write_alerts(&[down("a2", 1)]);
    let o = outcome(&dir).unwrap();
    assert_eq!(o.status, Status::Fail);
    assert!(o.headline.contains("AnalyzerDown"), "{}", o.headline);
    // The page's header says Prometheus watched the run and what fired.
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        page.contains("<th>monitoring</th>") && page.contains("1 fired: AnalyzerDown a2"),
        "no monitoring row in the header"
    );
    // A kill of a2: its AnalyzerDown within 15 s passes, later (or for another) fails.
    let kill_ns = 1_800_000_000_000_000_000;
    let mut events = TableWriter::<Event>::create(&dir.join("events.csv")).unwrap();
    events
        .write(&Event {
            ts_ns: kill_ns,
            at_s: 1.0,
            action: ChaosAction::Kill,
            target: "a2".into(),
        })
        .unwrap();
    events.flush().unwrap();
    write_alerts(&[down("a2", kill_ns + 12_000_000_000)]);
    let o = outcome(&dir).unwrap();
    assert_eq!(o.status, Status::Pass, "{}", o.headline);
    assert_eq!(o.rows[1].value_num, Some(12.0));
    for late in [
        down("a2", kill_ns + 16_000_000_000),
        down("a1", kill_ns + 5_000_000_000),
    ] {
        write_alerts(&[late]);
        let o = outcome(&dir).unwrap();
        assert_eq!(o.status, Status::Fail, "{}", o.headline);
        assert!(
            o.headline.contains("1 of 1 analyzer kills"),
            "{}",
            o.headline
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_secured_seq_is_never_in_doubt() {
    use runfolder::rows::{EmitterTotals, SeqRanges};
    use runfolder::{TableWriter, table::read_all};
    let dir = folder("secured", Tamper::RemoveArrivals);
    let path = dir.join("emitters-0.csv");
    let rows: Vec<EmitterTotals> = read_all(&path).unwrap();
    let rewrite = |secured: bool| {
        let mut w = TableWriter::<EmitterTotals>::create(&path).unwrap();
        for r in &rows {
            w.write(&EmitterTotals {
                in_doubt: r.sent,
                in_doubt_ranges: SeqRanges(vec![(0, r.sent)]),
                secured: secured.then_some(r.sent),
                ..r.clone()
            })
            .unwrap();
        }
        w.flush().unwrap();
    };
    let accounting = || {
        report::run(&dir, &Overrides::default())
            .unwrap()
            .outcomes
            .into_iter()
            .find(|o| o.name() == "accounting")
            .unwrap()
    };
    // Every write in doubt: the 5 missing are explained.
    rewrite(false);
    assert_eq!(accounting().status, Status::Pass);
    // The distributor secured them all: the same 5 are lost.
    rewrite(true);
    let o = accounting();
    assert_eq!(o.status, Status::Fail, "{}", o.headline);
    let row = o
        .rows
        .iter()
        .find(|r| r.check == "accounting:secured_missing")
        .unwrap();
    assert_eq!(row.value_num, Some(5.0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The profile copy of `dir` with its `[checks]` latency limits replaced by `limits`.
fn set_latency_limits(dir: &std::path::Path, limits: &str) {
    let path = dir.join("profile.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept = text.split("latency_p99_ms").next().unwrap();
    std::fs::write(&path, format!("{kept}{limits}")).unwrap();
}

#[test]
fn latency_without_a_limit_is_info_never_a_pass() {
    let dir = folder("latency-info", Tamper::None);
    set_latency_limits(&dir, "");
    let (code, stdout, _) = report_bin(&dir, &[]);
    assert_eq!(code, Some(0), "{stdout}");
    let line = stdout.lines().find(|l| l.contains(" latency ")).unwrap();
    assert!(line.starts_with("INFO "), "{line}");
    assert!(line.contains("no limit set"), "{line}");
    assert!(
        stdout.contains("RESULT: PASS (4 passed, 1 info)"),
        "{stdout}"
    );
}

#[test]
fn latency_over_a_limit_fails_overall_and_per_class() {
    let dir = folder("latency-fail", Tamper::None);
    let (code, stdout, _) = report_bin(&dir, &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("PASS          latency    all priorities p99"),
        "{stdout}"
    );
    assert!(stdout.contains("priorities 0-15 p99"), "{stdout}");
    // Overall, from the command line.
    let (code, stdout, _) = report_bin(&dir, &["--latency-p99-ms", "0.001"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL          latency    all priorities p99"),
        "{stdout}"
    );
    // Per class, from the profile: the class fails while the overall limit holds.
    set_latency_limits(
        &dir,
        "latency_p99_ms = 100.0\n[[checks.latency_class]]\npriorities = \"0-255\"\np99_ms = 0.001\n",
    );
    let (code, stdout, _) = report_bin(&dir, &[]);
    assert_eq!(code, Some(1), "{stdout}");
    let line = stdout.lines().find(|l| l.contains(" latency ")).unwrap();
    assert!(line.starts_with("FAIL "), "{line}");
    assert!(
        line.contains("priorities 0-255 p99") && line.contains("> 0.001 ms"),
        "{line}"
    );
}
