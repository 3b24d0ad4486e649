//! The harness as users run it: a real process with real children, stopped every way a
//! run can end, leaving no process behind.
#![expect(clippy::unwrap_used, reason = "a failed setup fails the test")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROFILE: &str = r#"
description = "test"
duration = 30
[distributor]
seed = 1
routing = "smooth"
[[analyzers]]
id = "x1"
weight = 2
[[analyzers]]
id = "x2"
weight = 1
acks = true
[emitters]
count = 2
rate = 200
priority_mode = "random"
priority_range = "0-7"
[[chaos]]
at = 2
action = "kill"
targets = ["x2"]
[[chaos]]
at = 3
action = "start"
targets = ["x2"]
"#;

/// A scratch folder removed when the test ends (a copy of the binaries is 380 MB).
struct Scratch(tempfile::TempDir);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

fn workdir(name: &str) -> Scratch {
    let d = tempfile::Builder::new()
        .prefix(&format!("harness-test-{name}-"))
        .tempdir()
        .unwrap();
    std::fs::write(d.path().join("p.toml"), PROFILE).unwrap();
    Scratch(d)
}

fn start(dir: &Path, duration: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg(dir.join("p.toml"))
        .args(["--duration", duration, "--out"])
        .arg(dir.join("results"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Pids of processes whose command line mentions `dir` (the harness's children do).
fn processes_using(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        // Zombies have an empty cmdline; only live processes count.
        if cmd.contains(&needle) && pid != std::process::id() {
            out.push(pid);
        }
    }
    out
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_dir(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir.join("results"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap()
}

#[test]
fn a_short_run_passes_and_writes_everything() {
    let dir = workdir("ok");
    let status = start(&dir, "6").wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let run = run_dir(&dir);
    for f in [
        "profile.toml",
        "manifest.json",
        "events.csv",
        "resources.csv",
        "report.html",
        "summary.csv",
        "emitters-0.csv",
        "arrivals-x1.csv",
        "arrivals-x2.csv",
        "stats-1.csv",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
    let events = std::fs::read_to_string(run.join("events.csv")).unwrap();
    assert!(
        events.contains(",kill,x2") && events.contains(",start,x2"),
        "{events}"
    );
    assert!(std::fs::read_link(dir.join("results/latest")).is_ok());
    assert!(processes_using(&dir).is_empty());
    // Every component ran as its shipped binary, the one beside the harness.
    let manifest: runfolder::json::Manifest =
        runfolder::table::read_json(&run.join("manifest.json")).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_harness")).parent().unwrap();
    for binary in ["distributor", "analyzer-sink", "loadgen"] {
        let exe = bin_dir.join(binary).display().to_string();
        assert!(
            manifest
                .command_lines
                .iter()
                .any(|c| c.starts_with(&format!("{exe} "))),
            "{binary}: {:?}",
            manifest.command_lines
        );
    }
    let config = std::fs::read_to_string(run.join("distributor.toml")).unwrap();
    assert!(config.contains("seed = 1"), "{config}");
}

#[test]
fn a_missing_binary_is_named_with_the_build_command() {
    let dir = workdir("missing");
    let lonely = dir.join("bin");
    std::fs::create_dir_all(&lonely).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_harness"), lonely.join("harness")).unwrap();
    let out = Command::new(lonely.join("harness"))
        .arg(dir.join("p.toml"))
        .args(["--duration", "2", "--out"])
        .arg(dir.join("results"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`distributor`") && err.contains("cargo build --release --workspace"),
        "{err}"
    );
}

#[test]
fn killing_the_harness_leaves_no_process_behind() {
    let dir = workdir("sigkill");
    let mut h = start(&dir, "30");
    wait_for("the components", Duration::from_secs(20), || {
        processes_using(&dir).len() >= 4
    });
    h.kill().unwrap();
    h.wait().unwrap();
    wait_for("every child to exit", Duration::from_secs(15), || {
        processes_using(&dir).is_empty()
    });
}

#[test]
fn a_failed_component_stops_the_run_cleanly() {
    let dir = workdir("failed");
    let mut h = start(&dir, "30");
    wait_for("the components", Duration::from_secs(20), || {
        processes_using(&dir).len() >= 4
    });
    // Kill the distributor behind the harness's back.
    let victim = processes_using(&dir)
        .into_iter()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .split('\0')
                .next()
                .is_some_and(|exe| exe.ends_with("/distributor"))
        })
        .unwrap();
    Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap();
    let status = h.wait().unwrap();
    assert_eq!(status.code(), Some(2), "no report: the run failed");
    wait_for("every child to exit", Duration::from_secs(15), || {
        processes_using(&dir).is_empty()
    });
}

#[test]
fn sigint_stops_the_run_cleanly() {
    let dir = workdir("sigint");
    let h = start(&dir, "30");
    wait_for("the components", Duration::from_secs(20), || {
        processes_using(&dir).len() >= 4
    });
    Command::new("kill")
        .args(["-INT", &h.id().to_string()])
        .status()
        .unwrap();
    let mut h = h;
    let status = h.wait().unwrap();
    assert_ne!(status.code(), Some(0));
    wait_for("every child to exit", Duration::from_secs(15), || {
        processes_using(&dir).is_empty()
    });
}

#[test]
fn check_names_the_bad_field() {
    let dir = workdir("check");
    std::fs::write(
        dir.join("bad.toml"),
        PROFILE.replace("weight = 2", "weight = -2"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("check")
        .arg(dir.join("bad.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("analyzers[0]") && err.contains("weight"),
        "{err}"
    );
    let ok = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("check")
        .arg(dir.join("p.toml"))
        .output()
        .unwrap();
    assert!(ok.status.success());
}

/// Runs the harness with `args`: (exit code, stdout, stderr).
fn harness(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
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
fn every_subcommand_has_help_and_misuse_is_refused() {
    for sub in ["run", "check", "bench", "list"] {
        let (code, out, _) = harness(&[sub, "--help"]);
        assert_eq!(code, Some(0), "{sub} --help");
        assert!(out.contains("Usage: harness"), "{sub}: {out}");
    }
    let (code, out, _) = harness(&["help"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("check") && out.contains("bench") && out.contains("list"),
        "{out}"
    );
    let (code, _, err) = harness(&["check"]);
    assert_eq!(code, Some(2), "check needs a profile: {err}");
    assert!(err.contains("PROFILE"), "{err}");
    // No argument: the help and the profiles, not a run.
    let (code, out, _) = harness(&[]);
    assert_eq!(code, Some(2));
    assert!(
        out.contains("Usage: harness") && out.contains("basic"),
        "{out}"
    );
    let (code, out, _) = harness(&["list"]);
    assert_eq!(code, Some(0));
    for name in ["basic", "throughput", "chaos"] {
        assert!(out.contains(name), "{out}");
    }
    let (code, _, err) = harness(&["basci", "--duration", "1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("did you mean \"basic\"?"), "{err}");
}

#[test]
fn a_clean_run_logs_no_warning() {
    let dir = workdir("quiet");
    // The test profile without its chaos schedule.
    let quiet = PROFILE.split("[[chaos]]").next().unwrap();
    std::fs::write(dir.join("quiet.toml"), quiet).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg(dir.join("quiet.toml"))
        .args(["--duration", "3", "--out"])
        .arg(dir.join("results"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let run = run_dir(&dir);
    for e in std::fs::read_dir(&run).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "log") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains(" WARN ") && !text.contains(" ERROR "),
                "{}:\n{text}",
                path.display()
            );
        }
    }
}

/// The one bench folder `harness bench` wrote under `out`.
fn bench_folder(out: &Path) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("bench.json").is_file())
        .unwrap()
}

#[test]
fn a_bench_is_compared_with_an_earlier_one() {
    let dir = workdir("bench-compare");
    let arg = |p: &Path| p.display().to_string();
    // A folder that is no bench is refused before any load runs.
    let (code, _, err) = harness(&["bench", "--compare-to", &arg(&dir)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("bench.json") && err.contains(&arg(&dir)),
        "{err}"
    );
    let quick = [
        "bench",
        "--group",
        "saturation",
        "--repeat",
        "2",
        "--seconds",
        "1",
    ];
    let first = dir.join("first");
    let mut args = quick.to_vec();
    let first_out = arg(&first);
    args.extend(["--out", &first_out]);
    let (code, _, err) = harness(&args);
    assert_eq!(code, Some(0), "{err}");
    let base = bench_folder(&first);
    let second = dir.join("second");
    let mut args = quick.to_vec();
    let (second_out, base_arg) = (arg(&second), arg(&base));
    args.extend(["--out", &second_out, "--compare-to", &base_arg]);
    let (code, out, err) = harness(&args);
    // Same build: no regression, or (rarely, by chance) one; never unusable input.
    assert!(matches!(code, Some(0 | 1)), "{code:?}: {err}");
    assert!(out.contains("saturation/max"), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("RESULT: "), "{out}");
    assert_eq!(code == Some(1), last.starts_with("RESULT: REGRESSION"));
    let compare = bench_folder(&second).join("compare");
    for f in ["compare.csv", "compare.json", "compare.html"] {
        assert!(compare.join(f).is_file(), "{f}");
    }
}
