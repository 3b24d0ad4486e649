//! A crash loop, Jepsen style: a steady acknowledged stream while the distributor is killed
//! with SIGKILL at seeded random moments and started again, 20 times (5 under `CI=true`).
//! It runs on a data directory (`journal = true`), restarted on it after each kill. After
//! the last restart every message the distributor secured must have been delivered, none
//! corrupted: the harness's report must PASS with no secured message missing.

use runfolder::json::Check;
use runfolder::rows::Event;
use runfolder::table::read_all;
use runfolder::{ChaosAction, names};
use std::process::Command;

/// splitmix64: the kill times from a fixed seed, the same on every run.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A profile of `kills` distributor crashes, one in each 2 s slot at a random moment of
/// its middle second, after 2 s of load.
fn profile(kills: usize, seed: u64) -> String {
    let mut state = seed;
    let duration = 4 + 2 * kills;
    let mut text = format!(
        r#"description = "crash loop: {kills} kill -9 of the distributor"
duration = {duration}
journal = true
[distributor]
seed = 1
hang_timeout = 2
[[analyzers]]
id = "k1"
weight = 2
acks = true
[[analyzers]]
id = "k2"
weight = 1
acks = true
[emitters]
count = 4
rate = 500
priority_mode = "cyclic"
priority_range = "0-15"
acks = true
# Each restart lets whichever analyzer reconnects first take the resent backlog alone for a
# moment: shares are not what a crash loop judges (accounting and integrity are).
[checks]
weight_tolerance = 0.25
"#
    );
    for k in 0..kills {
        let at = 2.5 + 2.0 * k as f64 + (next(&mut state) % 1000) as f64 / 1000.0;
        text.push_str(&format!(
            "[[chaos]]\nat = {at:.3}\naction = \"kill-distributor\"\n"
        ));
    }
    text
}

#[test]
fn every_secured_message_survives_a_crash_loop() {
    let kills = if std::env::var("CI").is_ok_and(|v| v == "true") {
        5
    } else {
        20
    };
    // Removed when the test ends.
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let file = dir.join("crashloop.toml");
    std::fs::write(&file, profile(kills, 42)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", file.to_str().unwrap(), "--out"])
        .arg(dir.join("results"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the report must PASS: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = std::fs::read_link(dir.join("results/latest")).unwrap();
    let run = dir.join("results").join(run);
    let events: Vec<Event> = read_all(&run.join(names::EVENTS)).unwrap();
    let crashes = events
        .iter()
        .filter(|e| e.action == ChaosAction::KillDistributor)
        .count();
    assert_eq!(crashes, kills, "{events:?}");
    let summary: Vec<Check> = runfolder::table::read_json(&run.join(names::SUMMARY_JSON)).unwrap();
    let figure = |name: &str| {
        summary
            .iter()
            .find(|r| r.check == name)
            .and_then(|r| r.value)
            .unwrap_or_else(|| panic!("no {name} in summary.json"))
    };
    for check in ["accounting", "integrity"] {
        let row = summary.iter().find(|r| r.check == check).unwrap();
        assert_eq!(row.status, runfolder::Status::Pass, "{check}: {stdout}");
    }
    assert_eq!(figure("accounting:secured_missing"), 0.0, "{stdout}");
    assert_eq!(figure("accounting"), 0.0, "no unexplained loss: {stdout}");
    assert!(figure("accounting:sent") > 0.0);
    println!("{kills} crashes survived:\n{stdout}");
}
