//! Exports the git commit the workspace is built from, for `runner::VERSION` (every
//! binary's `--version`) and `runner::COMMIT`.
//!
//! The commit is `LOG_DISTRIBUTOR_COMMIT` when that is set (a build from a source archive,
//! which has no `.git`), else `git rev-parse --short=12 HEAD`, else `unknown`. The script
//! runs again when HEAD moves (a commit, a checkout), not on every build: it watches the
//! files git changes then, and only those (watching a path that does not exist would
//! rebuild every time). A tree with uncommitted changes still says its last commit.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Set to use this commit instead of asking git.
const OVERRIDE: &str = "LOG_DISTRIBUTOR_COMMIT";

fn main() {
    println!("cargo::rerun-if-env-changed={OVERRIDE}");
    let commit = match std::env::var(OVERRIDE) {
        Ok(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => {
            watch_head();
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo::rustc-env=LOG_DISTRIBUTOR_BUILD_COMMIT={commit}");
}

/// `git ARGS` in this crate's folder: its trimmed output, or None when git is missing or
/// fails (not a checkout).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    Some(s.trim().to_owned())
}

/// Reruns this script when HEAD points elsewhere (`<git dir>/HEAD`, per worktree) or the
/// branch it names moves (its loose ref, or `packed-refs` while the ref is only packed).
fn watch_head() {
    let Some(git_dir) = git(&["rev-parse", "--path-format=absolute", "--git-dir"]) else {
        return;
    };
    let Some(common) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) else {
        return;
    };
    let mut watched = vec![Path::new(&git_dir).join("HEAD")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let loose: PathBuf = Path::new(&common).join(branch);
        if loose.is_file() {
            watched.push(loose);
        } else {
            watched.push(Path::new(&common).join("packed-refs"));
        }
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo::rerun-if-changed={}", path.display());
    }
}
