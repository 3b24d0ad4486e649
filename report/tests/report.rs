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
fn outputs_are_written_and_self_contained() {
    let dir = folder("outputs", Tamper::None);
    report::run(&dir, &Overrides::default()).unwrap();
    let summary = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    assert!(summary.starts_with("check,status,value,expected,detail\n"));
    for check in ["weights", "priority", "integrity", "accounting", "latency"] {
        assert!(
            summary
                .lines()
                .any(|l| l.starts_with(&format!("{check},PASS,"))),
            "{check} row"
        );
    }
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("data:image/png;base64,"));
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
}

#[test]
fn a_partial_last_line_is_tolerated() {
    let dir = folder("partial", Tamper::None);
    let path = dir.join("arrivals-a2.csv");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("1800000001000000000,1,99");
    std::fs::write(&path, text).unwrap();
    let r = report::run(&dir, &Overrides::default()).unwrap();
    assert!(!r.failed(), "{:?}", r.outcomes);
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
