//! `report compare` on synthetic run folders with known shifts, and on bench folders: what
//! must be flagged is, noise is not, and folders that do not compare are refused.
#![expect(clippy::unwrap_used, reason = "a failed setup fails the test")]
#![expect(clippy::panic, reason = "a missing row fails the test")]

use report::compare::{Request, Settings};
use report::synth::{SeriesRun, write_series_run};
use runfolder::json::{Bench, BenchRun, BenchScenario, Compare};
use runfolder::rows::CompareRow;
use runfolder::{Verdict, names};
use std::path::{Path, PathBuf};

/// A fresh folder under the system's temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("compare-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes one replicate per spec under `root/name-i`.
fn runs(root: &Path, name: &str, specs: &[SeriesRun]) -> Vec<PathBuf> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let dir = root.join(format!("{name}-{i}"));
            write_series_run(&dir, s).unwrap();
            dir
        })
        .collect()
}

/// Three replicates of `spec` with seeds `seed..seed+3`.
fn replicates(spec: &SeriesRun, seed: u64) -> Vec<SeriesRun> {
    (0..3)
        .map(|i| SeriesRun {
            seed: seed + i,
            ..spec.clone()
        })
        .collect()
}

fn report_bin(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_report"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `report compare` on the folders; returns the exit code, stdout and compare.json.
fn compare(root: &Path, base: &[PathBuf], cand: &[PathBuf]) -> (Option<i32>, String, Compare) {
    let out = root.join("cmp");
    let mut args = vec!["compare".to_owned(), "--base".to_owned()];
    args.extend(base.iter().map(|p| p.display().to_string()));
    args.push("--candidate".into());
    args.extend(cand.iter().map(|p| p.display().to_string()));
    args.extend(["--out".to_owned(), out.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = report_bin(&args);
    assert!(code != Some(2), "unusable input: {stderr}");
    let json = runfolder::table::read_json(&out.join(names::COMPARE_JSON)).unwrap();
    (code, stdout, json)
}

fn row<'a>(c: &'a Compare, metric: &str) -> &'a CompareRow {
    c.rows
        .iter()
        .find(|r| r.metric == metric)
        .unwrap_or_else(|| panic!("no {metric} row in {:?}", c.rows))
}

#[test]
fn a_ten_percent_throughput_drop_is_a_regression() {
    let dir = Scratch::new("a_ten_percent_throughput_drop_is_a_regression");
    let base = runs(dir.path(), "base", &replicates(&SeriesRun::default(), 1));
    let slower = SeriesRun {
        rate: 900.0,
        ..SeriesRun::default()
    };
    let cand = runs(dir.path(), "cand", &replicates(&slower, 11));
    let (code, stdout, c) = compare(dir.path(), &base, &cand);
    assert_eq!(code, Some(1), "{stdout}");
    let r = row(&c, "throughput");
    assert_eq!(r.verdict, Verdict::Regression, "{}", r.detail);
    let d = r.delta_pct.unwrap();
    assert!((-11.0..-9.0).contains(&d), "{d}");
    assert!(r.ci_low_pct.unwrap() < d && d < r.ci_high_pct.unwrap());
    assert_eq!(
        (r.base_n, r.candidate_n),
        (3 * 28, 3 * 28),
        "30 s less a 2 s warm-up, 3 runs"
    );
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("RESULT: REGRESSION")
    );
    // The other metrics did not move.
    for m in ["latency_p50", "latency_p99", "peak_rss", "lost", "dropped"] {
        assert_eq!(row(&c, m).verdict, Verdict::NoChange, "{m}");
    }
    // The outputs: CSV rows as in the JSON, a page with the intervals and timelines drawn.
    let csv =
        runfolder::table::read_all::<CompareRow>(&dir.path().join("cmp/compare.csv")).unwrap();
    // (JSON numbers read back within a rounding step: serde_json parses floats fast, not
    // exactly.)
    assert_eq!(csv.len(), c.rows.len());
    for (a, b) in csv.iter().zip(&c.rows) {
        assert_eq!(
            (&a.metric, a.verdict, a.base_n),
            (&b.metric, b.verdict, b.base_n)
        );
        assert!((a.base_mean - b.base_mean).abs() <= 1e-9 * a.base_mean.abs());
    }
    let html = std::fs::read_to_string(dir.path().join("cmp/compare.html")).unwrap();
    assert!(html.contains("REGRESSION"));
    assert!(html.matches("<svg class=\"ci\"").count() == c.rows.len());
    assert!(html.contains("Delivered per second, every run"));
    assert!(!html.contains("src=\"http"), "self-contained");
}

#[test]
fn a_twenty_percent_p99_rise_is_a_regression() {
    let dir = Scratch::new("a_twenty_percent_p99_rise_is_a_regression");
    let base = runs(dir.path(), "base", &replicates(&SeriesRun::default(), 1));
    let slow_tail = SeriesRun {
        latency_ms: [0.5, 2.4, 4.0],
        ..SeriesRun::default()
    };
    let cand = runs(dir.path(), "cand", &replicates(&slow_tail, 21));
    let (code, _, c) = compare(dir.path(), &base, &cand);
    assert_eq!(code, Some(1));
    let r = row(&c, "latency_p99");
    assert_eq!(r.verdict, Verdict::Regression, "{}", r.detail);
    assert_eq!(r.method, runfolder::Method::Bootstrap);
    assert_eq!(row(&c, "latency_p50").verdict, Verdict::NoChange);
    assert_eq!(row(&c, "throughput").verdict, Verdict::NoChange);
}

#[test]
fn a_one_percent_change_is_not_flagged() {
    let dir = Scratch::new("a_one_percent_change_is_not_flagged");
    let base = runs(dir.path(), "base", &replicates(&SeriesRun::default(), 1));
    let a_bit = SeriesRun {
        rate: 990.0,
        latency_ms: [0.505, 2.02, 4.04],
        ..SeriesRun::default()
    };
    let cand = runs(dir.path(), "cand", &replicates(&a_bit, 31));
    let (code, stdout, c) = compare(dir.path(), &base, &cand);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        c.rows.iter().all(|r| r.verdict == Verdict::NoChange),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("RESULT: NO REGRESSION")
    );
}

#[test]
fn pure_noise_is_rarely_flagged() {
    // One replicate a side, same means, different seeds, many times: at 90% confidence and
    // a 5% tolerance, a pair with any regression must stay rare. Through the library (the
    // binary is exercised above) to afford many pairs.
    let dir = Scratch::new("pure_noise_is_rarely_flagged");
    let pairs = 60;
    let mut flagged = 0;
    for k in 0..pairs {
        let noisy = SeriesRun {
            rate_cv: 0.04,
            latency_cv: 0.06,
            ..SeriesRun::default()
        };
        let base = runs(
            dir.path(),
            &format!("b{k}"),
            &[SeriesRun {
                seed: 1000 + k,
                ..noisy.clone()
            }],
        );
        let cand = runs(
            dir.path(),
            &format!("c{k}"),
            &[SeriesRun {
                seed: 5000 + k,
                ..noisy
            }],
        );
        let c = report::compare::run(&Request {
            base,
            candidate: cand,
            settings: Settings::default(),
            out: dir.path().join(format!("out{k}")),
        })
        .unwrap();
        flagged += usize::from(c.result.regressions > 0);
    }
    assert!(
        flagged * 10 <= pairs as usize,
        "{flagged} of {pairs} noise pairs flagged"
    );
}

#[test]
fn a_new_loss_is_a_regression_whatever_else() {
    let dir = Scratch::new("a_new_loss_is_a_regression_whatever_else");
    let base = runs(dir.path(), "base", &replicates(&SeriesRun::default(), 1));
    let mut lossy = replicates(&SeriesRun::default(), 1);
    lossy[2].lost = 1;
    let cand = runs(dir.path(), "cand", &lossy);
    let (code, _, c) = compare(dir.path(), &base, &cand);
    assert_eq!(code, Some(1));
    let r = row(&c, "lost");
    assert_eq!(
        (r.verdict, r.method),
        (Verdict::Regression, runfolder::Method::Count)
    );
    assert!(r.detail.starts_with("new loss"), "{}", r.detail);
    assert_eq!(c.regressions, 1, "{:?}", c.rows);
}

#[test]
fn an_erratic_series_is_called_erratic_and_does_not_fail() {
    let dir = Scratch::new("an_erratic_series_is_called_erratic_and_does_not_fail");
    let erratic = SeriesRun {
        rate_cv: 0.3,
        ..SeriesRun::default()
    };
    let base = runs(dir.path(), "base", &replicates(&erratic, 1));
    let a_bit_slower = SeriesRun {
        rate: 950.0,
        ..erratic
    };
    let cand = runs(dir.path(), "cand", &replicates(&a_bit_slower, 41));
    let (code, _, c) = compare(dir.path(), &base, &cand);
    let r = row(&c, "throughput");
    assert_eq!(r.verdict, Verdict::Erratic, "{}", r.detail);
    assert!(r.base_cv > 0.1);
    assert_eq!(code, Some(0));
}

#[test]
fn folders_that_do_not_compare_are_refused_naming_the_difference() {
    let dir = Scratch::new("folders_that_do_not_compare_are_refused_naming_the_difference");
    let base = runs(dir.path(), "base", &[SeriesRun::default()]);
    let other = runs(
        dir.path(),
        "other",
        &[SeriesRun {
            profile: "chaos".into(),
            ..SeriesRun::default()
        }],
    );
    let arg = |p: &PathBuf| p.display().to_string();
    let (code, _, stderr) = report_bin(&[
        "compare",
        "--base",
        &arg(&base[0]),
        "--candidate",
        &arg(&other[0]),
    ]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("\"synthetic\"") && stderr.contains("\"chaos\""),
        "{stderr}"
    );
    // Same name, different profile copy.
    let edited = runs(dir.path(), "edited", &[SeriesRun::default()]);
    let profile = edited[0].join(names::PROFILE);
    let text = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(
        &profile,
        text.replace("weight_tolerance = 0.05", "weight_tolerance = 0.1"),
    )
    .unwrap();
    let (code, _, stderr) = report_bin(&[
        "compare",
        "--base",
        &arg(&base[0]),
        "--candidate",
        &arg(&edited[0]),
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("differ at line 6"), "{stderr}");
    // A bench folder against a run folder.
    let bench = dir.path().join("bench");
    write_bench(
        &bench,
        &[("saturation", "max", 8, &[1.0e6, 1.01e6, 0.99e6])],
    );
    let (code, _, stderr) = report_bin(&[
        "compare",
        "--base",
        &arg(&base[0]),
        "--candidate",
        &arg(&bench),
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("is a bench folder"), "{stderr}");
    // Not a folder at all.
    let (code, _, stderr) = report_bin(&[
        "compare",
        "--base",
        "/nonexistent/x",
        "--candidate",
        &arg(&base[0]),
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("/nonexistent/x"), "{stderr}");
    // Bad settings.
    let (code, _, stderr) = report_bin(&[
        "compare",
        "--base",
        &arg(&base[0]),
        "--candidate",
        &arg(&base[0]),
        "--confidence",
        "100%",
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--confidence"), "{stderr}");
}

/// A bench folder with `(group, name, emitters, delivered msg/s per run)` scenarios; the
/// other figures fixed.
fn write_bench(dir: &Path, scenarios: &[(&str, &str, u32, &[f64])]) {
    std::fs::create_dir_all(dir).unwrap();
    let bench = Bench {
        repeat: 3,
        seconds: 10.0,
        cores: 2,
        git_commit: "abc".into(),
        scenarios: scenarios
            .iter()
            .map(|(group, name, emitters, rates)| BenchScenario {
                group: (*group).into(),
                name: (*name).into(),
                emitters: *emitters,
                rate: "max".into(),
                analyzers: 3,
                runs: rates
                    .iter()
                    .map(|r| BenchRun {
                        sent: (*r * 10.0) as u64,
                        delivered_per_s: *r,
                        cpu_s_per_million: 0.6 * 1.0e6 / *r,
                        peak_rss_mib: 12.0,
                        p50_ms: 1.0,
                        p99_ms: 4.0,
                        p999_ms: 8.0,
                        ..BenchRun::default()
                    })
                    .collect(),
            })
            .collect(),
        relay_cpu_us_per_mib: Vec::new(),
        distributor_vs_relay_cpu_ratio: None,
        sink_delay_us: None,
        tls_vs_plain_cpu_ratio: None,
    };
    runfolder::table::write_json(&dir.join(names::BENCH), &bench).unwrap();
}

#[test]
fn bench_folders_compare_scenario_by_scenario() {
    let dir = Scratch::new("bench_folders_compare_scenario_by_scenario");
    let base = dir.path().join("base");
    write_bench(
        &base,
        &[
            ("saturation", "max", 8, &[1.60e6, 1.65e6, 1.62e6]),
            ("scaling", "100 analyzers", 20, &[5.0e4, 5.0e4, 5.0e4]),
        ],
    );
    let cand = dir.path().join("cand");
    write_bench(
        &cand,
        &[
            ("saturation", "max", 8, &[1.40e6, 1.44e6, 1.41e6]),
            ("fan-in", "1000 emitters", 1000, &[5.0e4, 5.0e4, 5.0e4]),
        ],
    );
    let (code, stdout, c) = compare(
        dir.path(),
        std::slice::from_ref(&base),
        std::slice::from_ref(&cand),
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(c.kind, "bench");
    let sat = |m: &str| {
        c.rows
            .iter()
            .find(|r| r.scenario == "saturation/max" && r.metric == m)
            .unwrap()
            .clone()
    };
    assert_eq!(sat("throughput").verdict, Verdict::Regression);
    assert_eq!(
        sat("cpu_per_msg").verdict,
        Verdict::Regression,
        "CPU per message follows"
    );
    assert_eq!(sat("latency_p99").verdict, Verdict::NoChange);
    assert_eq!(sat("throughput").base_n, 3);
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("scaling/100 analyzers: only in the base"))
    );
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("fan-in/1000 emitters: only in the candidate"))
    );
    // One scenario set up differently is refused.
    let odd = dir.path().join("odd");
    write_bench(&odd, &[("saturation", "max", 4, &[1.6e6, 1.6e6, 1.6e6])]);
    let (code, _, stderr) = report_bin(&[
        "compare",
        "--base",
        &base.display().to_string(),
        "--candidate",
        &odd.display().to_string(),
    ]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("saturation/max") && stderr.contains("4 emitters"),
        "{stderr}"
    );
}
