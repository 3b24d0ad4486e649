//! Property: whatever a run folder holds (0 to 3 seconds of load, any file cut at any byte,
//! rows out of order, a column missing, a file gone), the `report` binary ends with one of
//! its exit codes (0 PASS, 1 FAIL, 2 unusable input, 3 INCONCLUSIVE), never a panic, and
//! unusable input is named on stderr.
#![expect(clippy::unwrap_used, reason = "a failed setup fails the test")]

use proptest::prelude::*;
use report::synth::{SeriesRun, Tamper, write_run, write_series_run};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What is done to one file of the folder.
#[derive(Debug, Clone)]
enum Mangle {
    /// Cut at this fraction of its length (any byte).
    Cut(f64),
    /// Its data rows in a shuffled order (seeded).
    Shuffle(u64),
    /// Its `n`-th column (modulo the count) removed from every line, header included.
    DropColumn(usize),
    /// The file removed.
    Delete,
}

fn mangle() -> impl Strategy<Value = Mangle> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Mangle::Cut),
        any::<u64>().prop_map(Mangle::Shuffle),
        (0usize..16).prop_map(Mangle::DropColumn),
        Just(Mangle::Delete),
    ]
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn apply(path: &Path, m: &Mangle) {
    let bytes = std::fs::read(path).unwrap();
    let out: Vec<u8> = match m {
        Mangle::Cut(f) => bytes[..((bytes.len() as f64) * f) as usize].to_vec(),
        Mangle::Shuffle(seed) => {
            let text = String::from_utf8_lossy(&bytes);
            let mut lines: Vec<&str> = text.lines().collect();
            if lines.len() > 2 {
                // A seeded Fisher-Yates over the data rows (the header stays first).
                let mut s = *seed | 1;
                for i in (2..lines.len()).rev() {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let j = 1 + (s as usize) % i;
                    lines.swap(i, j);
                }
            }
            (lines.join("\n") + "\n").into_bytes()
        }
        Mangle::DropColumn(n) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<String> = text
                .lines()
                .map(|l| {
                    let mut f: Vec<&str> = l.split(',').collect();
                    let k = n % f.len();
                    f.remove(k);
                    f.join(",")
                })
                .collect();
            (lines.join("\n") + "\n").into_bytes()
        }
        Mangle::Delete => {
            std::fs::remove_file(path).unwrap();
            return;
        }
    };
    std::fs::write(path, out).unwrap();
}

static CASE: AtomicU64 = AtomicU64::new(0);

fn check(dir: &Path) -> Result<(), TestCaseError> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_report"))
        .arg(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    prop_assert!(
        matches!(code, Some(0..=3)),
        "exit {code:?} on {}: {stderr}",
        dir.display()
    );
    if code == Some(2) {
        prop_assert!(!stderr.trim().is_empty(), "exit 2 without a reason");
        prop_assert!(!stderr.contains("panicked"), "{stderr}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_mangled_folder_gets_an_exit_code_and_a_reason(
        seconds in 0u64..=3,
        series in any::<bool>(),
        messages in 0u64..400,
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), mangle()), 0..4),
    ) {
        let n = CASE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("report-mangled-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if series {
            write_series_run(&dir, &SeriesRun { seconds, seed: n, ..SeriesRun::default() }).unwrap();
        } else {
            write_run(&dir, messages, Tamper::None).unwrap();
        }
        for (index, m) in &edits {
            let all = files(&dir);
            if all.is_empty() {
                break;
            }
            apply(&all[index.index(all.len())], m);
        }
        check(&dir)?;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
