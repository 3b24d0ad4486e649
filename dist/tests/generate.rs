//! The `dist` binary writes every man page and completion, each usable by its tool: man
//! renders the pages without a warning, bash, zsh and fish load the completions and
//! complete real flags. Also: every binary's `--version` names the commit.

#![expect(clippy::unwrap_used, reason = "a failed setup fails the test")]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dist(out: &Path, only: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dist"));
    cmd.arg("--out").arg(out);
    for name in only {
        cmd.args(["--only", name]);
    }
    cmd.output().unwrap()
}

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn generated() -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let run = dist(out.path(), &[]);
    assert!(run.status.success(), "{run:?}");
    out
}

/// Under CI every shell must be there (.ci/run installs them); elsewhere a missing one is
/// said and its test passes.
fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{tool} is missing: apt-get install {tool}"
        );
        eprintln!("skipped: {tool} is not installed (apt-get install {tool})");
    }
    found
}

/// A long flag of each binary (not --help or --version) and a prefix to complete it from.
fn flags() -> Vec<(&'static str, String)> {
    dist::BINARIES
        .iter()
        .map(|b| {
            let cmd = (b.command)();
            let flag = cmd
                .get_arguments()
                .filter_map(|a| a.get_long())
                .find(|l| !["help", "version"].contains(l))
                .unwrap()
                .to_owned();
            (b.name, format!("--{flag}"))
        })
        .collect()
}

#[test]
fn every_binary_gets_its_pages_and_completions() {
    let out = generated();
    let mut expected = BTreeSet::new();
    for b in dist::BINARIES {
        expected.insert(format!("man/man1/{}.1", b.name));
        expected.insert(format!("completions/bash/{}", b.name));
        expected.insert(format!("completions/zsh/_{}", b.name));
        expected.insert(format!("completions/fish/{}.fish", b.name));
    }
    for page in [
        "harness-run",
        "harness-check",
        "harness-bench",
        "harness-list",
        "report-compare",
    ] {
        expected.insert(format!("man/man1/{page}.1"));
    }
    assert_eq!(files(out.path()), expected);
    assert_eq!(
        dist::BINARIES.map(|b| b.name),
        [
            "distributor",
            "loadgen",
            "analyzer-sink",
            "report",
            "harness"
        ]
    );
}

#[test]
fn only_writes_the_binaries_named_and_refuses_an_unknown_one() {
    let out = tempfile::tempdir().unwrap();
    assert!(dist(out.path(), &["distributor"]).status.success());
    assert_eq!(
        files(out.path()),
        BTreeSet::from(
            [
                "man/man1/distributor.1",
                "completions/bash/distributor",
                "completions/zsh/_distributor",
                "completions/fish/distributor.fish",
            ]
            .map(String::from)
        )
    );
    let bad = dist(out.path(), &["distributer"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("no binary named \"distributer\"") && err.contains("distributor, loadgen"),
        "{err}"
    );
}

#[test]
fn a_folder_it_cannot_write_is_named() {
    let run = dist(Path::new("/dev/null/man-pages"), &["loadgen"]);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("cannot write /dev/null/man-pages/man/man1")
            && err.contains("Not a directory"),
        "{err}"
    );
}

#[test]
fn man_renders_every_page_without_a_warning_and_with_every_flag() {
    let out = generated();
    let dir = out.path().join("man/man1");
    for page in files(&dir) {
        let run = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(dir.join(&page))
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            run.status.success() && stderr.is_empty(),
            "{page}: {stderr}"
        );
        let text = String::from_utf8_lossy(&run.stdout);
        let name = page.trim_end_matches(".1");
        let Some(b) = dist::BINARIES.iter().find(|b| b.name == name) else {
            continue;
        };
        // man hyphenates long words at line ends; the flags are read unwrapped.
        let text = text.replace("\u{2010}\n", "").replace("-\n", "");
        for arg in (b.command)().get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(text.contains(&format!("--{long}")), "{page}: --{long}");
            }
        }
        assert!(text.contains("SEE ALSO"), "{page}");
    }
    let distributor = std::fs::read_to_string(dir.join("distributor.1")).unwrap();
    assert!(
        distributor.contains("FILES")
            && distributor.contains("/etc/log\\-distributor/distributor.toml"),
        "{distributor}"
    );
}

/// The function `complete -p NAME` registered, called as bash calls it for `LINE`.
fn bash_complete(file: &Path, name: &str, words: &[&str]) -> Vec<String> {
    let script = format!(
        r#"source "$1"
spec=$(complete -p {name}) || exit 3
fn=$(sed -n 's/.*-F \([^ ]*\).*/\1/p' <<<"$spec")
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
"$fn" {name} "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        words = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let run = Command::new("bash")
        .args(["-c", &script, "bash"])
        .arg(file)
        .output()
        .unwrap();
    assert!(run.status.success(), "{name}: {run:?}");
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn bash_completes_each_binarys_flags_and_subcommands() {
    let out = generated();
    let dir = out.path().join("completions/bash");
    for (name, flag) in flags() {
        let prefix = &flag[..flag.len().min(6)];
        let got = bash_complete(&dir.join(name), name, &[name, prefix]);
        assert!(got.contains(&flag), "{name} {prefix}: {got:?}");
    }
    let got = bash_complete(&dir.join("harness"), "harness", &["harness", "ru"]);
    assert_eq!(got, ["run"]);
    let got = bash_complete(
        &dir.join("distributor"),
        "distributor",
        &["distributor", "--routing", ""],
    );
    assert_eq!(got, ["random", "smooth"], "the values of --routing");
}

#[test]
fn fish_completes_each_binarys_flags_and_subcommands() {
    if !have("fish") {
        return;
    }
    let out = generated();
    let dir = out.path().join("completions/fish");
    let complete = |name: &str, line: &str| -> Vec<String> {
        let run = Command::new("fish")
            .args([
                "--no-config",
                "-c",
                &format!("source $argv[1]; complete -C '{line}'"),
            ])
            .arg(dir.join(format!("{name}.fish")))
            .output()
            .unwrap();
        assert!(run.status.success(), "{name}: {run:?}");
        String::from_utf8(run.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_owned())
            .collect()
    };
    for (name, flag) in flags() {
        let prefix = &flag[..flag.len().min(6)];
        let got = complete(name, &format!("{name} {prefix}"));
        assert!(got.contains(&flag), "{name} {prefix}: {got:?}");
    }
    assert_eq!(complete("harness", "harness ru"), ["run"]);
}

#[test]
fn zsh_loads_each_completion_and_binds_it_to_its_binary() {
    if !have("zsh") {
        return;
    }
    let out = generated();
    let dir = out.path().join("completions/zsh");
    for b in dist::BINARIES {
        let file = dir.join(format!("_{}", b.name));
        let first = std::fs::read_to_string(&file).unwrap();
        assert!(
            first.starts_with(&format!("#compdef {}\n", b.name)),
            "{first}"
        );
        let run = Command::new("zsh")
            .args([
                "-fc",
                r#"autoload -U compinit && compinit -u -D && source "$1" && print -r -- "${_comps[$2]}""#,
                "zsh",
            ])
            .arg(&file)
            .arg(b.name)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(run.status.success(), "{}: {run:?}", b.name);
        assert_eq!(stdout.trim(), format!("_{}", b.name), "{}", b.name);
    }
}

/// The workspace's binaries sit beside this test's `dist` (`cargo test --workspace`
/// builds them all into one folder).
fn sibling(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_dist")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --release --workspace)",
        path.display()
    );
    path
}

#[test]
fn every_binary_names_the_commit_in_its_version() {
    assert_ne!(runner::COMMIT, "unknown", "built outside a git checkout?");
    for name in [
        "distributor",
        "loadgen",
        "analyzer-sink",
        "report",
        "harness",
        "dist",
    ] {
        let run = Command::new(sibling(name))
            .arg("--version")
            .output()
            .unwrap();
        assert!(run.status.success(), "{name}: {run:?}");
        assert_eq!(
            String::from_utf8(run.stdout).unwrap(),
            format!("{name} {}\n", runner::VERSION)
        );
    }
}
