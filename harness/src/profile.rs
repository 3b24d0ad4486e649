//! Profiles: TOML files describing an experiment (the distributor's settings, the
//! analyzers, the emitters, the duration, the chaos schedule and the check thresholds).
//! Unknown fields are rejected and every value is checked at load time, so a bad profile
//! fails at once naming the field.

use runfolder::ChaosAction;
use runfolder::profile::{Checks, Security};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A profile that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Not found by name or path.
    #[error(
        "no profile {name:?}{}; the profiles are: {} (looked in: {looked})",
        suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default(),
        available.join(", ")
    )]
    NotFound {
        /// What was asked for.
        name: String,
        /// The nearest profile name, when one is close.
        suggestion: Option<String>,
        /// Every profile name found.
        available: Vec<String>,
        /// Where it was looked for.
        looked: String,
    },
    /// Unreadable.
    #[error("{path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// Not valid TOML for a profile (the message names the field).
    #[error("{path}: {error}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The error.
        error: toml::de::Error,
    },
    /// A value out of range.
    #[error("{path}: invalid {field}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field, dotted.
        field: String,
        /// Why.
        reason: String,
    },
}

/// An experiment. Each component's section deserializes straight into that component's
/// own settings: `[distributor]` is `distributor::Config` (the keys of its config file),
/// each `[[analyzers]]` table an `analyzer_sink::Config`, `[emitters]` a `loadgen::Config`.
/// The harness sets what belongs to the run (addresses, output folders, the duration).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// What the profile shows.
    pub description: String,
    /// Seconds of load.
    pub duration: f64,
    /// The distributor's settings.
    #[serde(default)]
    pub distributor: distributor::Config,
    /// The analyzer sinks.
    pub analyzers: Vec<analyzer_sink::Config>,
    /// The load.
    pub emitters: loadgen::Config,
    /// Failures to inject, in time order or not.
    #[serde(default)]
    pub chaos: Vec<ChaosEvent>,
    /// Check thresholds for the report.
    #[serde(default)]
    pub checks: Checks,
    /// Run everything over mutual TLS: the harness mints a CA and one certificate per
    /// component into `<run>/tls/`.
    #[serde(default)]
    pub tls: bool,
    /// Run the distributor with a disk journal in `<run>/journal/`, kept across its
    /// restarts and crashes (`--data-dir`; `[distributor]` may set `fsync` and the rest).
    #[serde(default)]
    pub journal: bool,
    /// What a `tls` run tries that must be refused (an impostor, a restricted emitter).
    #[serde(default)]
    pub security: Option<Security<loadgen::Config>>,
    /// Whether `[distributor]` sets a hang timeout (a shortened run then shortens it too).
    #[serde(skip)]
    pub hang_timeout_set: bool,
}

/// One chaos event.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChaosEvent {
    /// Seconds after the load starts (scaled with `--duration`).
    pub at: f64,
    /// What to do.
    pub action: ChaosAction,
    /// Analyzer ids (none for `restart-distributor` and `kill-distributor`).
    #[serde(default)]
    pub targets: Vec<String>,
}

/// Where profiles are looked for by name.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("profiles")];
    if let Ok(exe) = std::env::current_exe() {
        // target/release/harness -> the workspace's profiles/.
        if let Some(root) = exe.ancestors().nth(3) {
            dirs.push(root.join("profiles"));
        }
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles"));
    // The same folder reached two ways is looked in once.
    let mut seen = std::collections::BTreeSet::new();
    dirs.retain(|d| seen.insert(d.canonicalize().unwrap_or_else(|_| d.clone())));
    dirs
}

/// Finds a profile by path or by name (`basic` -> `profiles/basic.toml`).
pub fn locate(name: &str) -> Result<PathBuf, ProfileError> {
    let direct = PathBuf::from(name);
    if direct.is_file() {
        return Ok(direct);
    }
    let dirs = search_dirs();
    for d in &dirs {
        let p = d.join(format!("{name}.toml"));
        if p.is_file() {
            return Ok(p);
        }
    }
    let looked = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let available: Vec<String> = available().into_iter().map(|(n, _)| n).collect();
    let suggestion = available
        .iter()
        .map(|n| (strsim::levenshtein(name, n), n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 3))
        .min()
        .map(|(_, n)| n.clone());
    Err(ProfileError::NotFound {
        name: name.to_owned(),
        suggestion,
        available,
        looked,
    })
}

/// Every profile found by name in the search folders (the first folder holding a name
/// wins), sorted by name.
pub fn available() -> Vec<(String, PathBuf)> {
    let mut found: std::collections::BTreeMap<String, PathBuf> = Default::default();
    for dir in search_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            let name = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned);
            if let Some(name) = name
                && path.extension().is_some_and(|x| x == "toml")
            {
                found.entry(name).or_insert(path);
            }
        }
    }
    found.into_iter().collect()
}

impl Profile {
    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|error| ProfileError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks profile text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ProfileError> {
        let parse_error = |error| ProfileError::Parse {
            path: path.to_owned(),
            error,
        };
        let mut p: Profile = toml::from_str(text).map_err(parse_error)?;
        let raw: toml::Table = toml::from_str(text).map_err(parse_error)?;
        p.hang_timeout_set = raw
            .get("distributor")
            .and_then(toml::Value::as_table)
            .is_some_and(|d| d.contains_key("hang_timeout") || d.contains_key("hang-timeout"));
        p.validate(path)?;
        Ok(p)
    }

    fn validate(&self, path: &Path) -> Result<(), ProfileError> {
        let bad = |field: &str, reason: String| {
            Err(ProfileError::Invalid {
                path: path.to_owned(),
                field: field.to_owned(),
                reason,
            })
        };
        if !(self.duration.is_finite() && self.duration > 0.0) {
            return bad(
                "duration",
                format!("{} is not a number of seconds > 0", self.duration),
            );
        }
        if let Err(e) = self.distributor.validate() {
            return bad("distributor", e.to_string());
        }
        if self.analyzers.is_empty() {
            return bad("analyzers", "at least one analyzer is needed".into());
        }
        let mut ids = BTreeSet::new();
        for (i, a) in self.analyzers.iter().enumerate() {
            if let Err(e) = a.validate() {
                return bad(&format!("analyzers[{i}]"), format!("{e:#}"));
            }
            if !ids.insert(a.id.clone()) {
                return bad(
                    &format!("analyzers[{i}].id"),
                    format!("{:?} appears twice", a.id),
                );
            }
        }
        if let Err(e) = self.emitters.validate() {
            return bad("emitters", format!("{e:#}"));
        }
        for (i, c) in self.chaos.iter().enumerate() {
            let f = |name: &str| format!("chaos[{i}].{name}");
            if !(c.at.is_finite() && c.at >= 0.0 && c.at <= self.duration) {
                return bad(
                    &f("at"),
                    format!("{} is not within the run (0 to {} s)", c.at, self.duration),
                );
            }
            let needs_targets = !c.action.on_distributor();
            if needs_targets == c.targets.is_empty() {
                let reason = if needs_targets {
                    "name at least one analyzer"
                } else {
                    "takes no targets"
                };
                return bad(&f("targets"), format!("{} {reason}", c.action));
            }
            for t in &c.targets {
                let Some(a) = self.analyzers.iter().find(|a| &a.id == t) else {
                    return bad(
                        &f("targets"),
                        format!("{t:?} is not an analyzer of this profile"),
                    );
                };
                if c.action == ChaosAction::Slow && a.slow_capacity.is_none() {
                    return bad(
                        &f("targets"),
                        format!("{t:?} has no slow_capacity for a slow phase"),
                    );
                }
            }
        }
        if let Err((field, reason)) = self.checks.validate() {
            return bad(field, reason);
        }
        self.validate_tls(path)
    }

    /// TLS and `[security]`: set by the harness, so the profile must leave them alone.
    fn validate_tls(&self, path: &Path) -> Result<(), ProfileError> {
        let bad = |field: &str, reason: String| {
            Err(ProfileError::Invalid {
                path: path.to_owned(),
                field: field.to_owned(),
                reason,
            })
        };
        let d = &self.distributor;
        if d.data_dir.is_some() {
            return bad(
                "distributor",
                "data-dir is the harness's to set (a folder of the run): say `journal = true`"
                    .into(),
            );
        }
        if d.tls_cert.is_some() || d.tls_client_ca.is_some() || d.access.is_some() {
            return bad(
                "distributor",
                "tls-cert, tls-key, tls-client-ca and access are the harness's to set: say `tls = true` and use [security]".into(),
            );
        }
        let Some(sec) = &self.security else {
            return Ok(());
        };
        if !self.tls {
            return bad(
                "security",
                "needs `tls = true` (identities come from certificates)".into(),
            );
        }
        if let Some(imp) = &sec.impostor {
            if !(imp.at.is_finite() && imp.at >= 0.0 && imp.at <= self.duration) {
                return bad(
                    "security.impostor.at",
                    format!(
                        "{} is not within the run (0 to {} s)",
                        imp.at, self.duration
                    ),
                );
            }
            if !self.analyzers.iter().any(|a| a.id == imp.claims) {
                return bad(
                    "security.impostor.claims",
                    format!("{:?} is not an analyzer of this profile", imp.claims),
                );
            }
        }
        if let Some(r) = &sec.restricted {
            if let Err(e) = runfolder::profile::parse_priorities(&r.priorities) {
                return bad("security.restricted.priorities", e);
            }
            let taken = self.analyzers.iter().any(|a| a.id == r.identity)
                || r.identity == runfolder::profile::IMPOSTOR
                || r.identity == LOADGEN_IDENTITY;
            if taken || r.identity.is_empty() || r.identity.contains('*') {
                return bad(
                    "security.restricted.identity",
                    format!(
                        "{:?} must be a name of its own (not an analyzer id, `impostor` or `loadgen`, no `*`)",
                        r.identity
                    ),
                );
            }
            if let Err(e) = r.emitters.validate() {
                return bad("security.restricted.emitters", format!("{e:#}"));
            }
            let main_end =
                u64::from(self.emitters.emitter_id_base) + u64::from(self.emitters.emitters);
            if main_end > u64::from(runfolder::names::RESTRICTED_ID_BASE) {
                return bad(
                    "emitters.emitter_id_base",
                    format!(
                        "the emitters' ids must stay below {} (the restricted emitters' range)",
                        runfolder::names::RESTRICTED_ID_BASE
                    ),
                );
            }
        }
        Ok(())
    }
}

/// The certificate identity of the profile's main load generator in a `tls` run.
pub const LOADGEN_IDENTITY: &str = "loadgen";

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
description = "x"
duration = 10
[[analyzers]]
id = "a"
weight = 1
[emitters]
count = 1
rate = 10
priority_mode = "single"
"#;

    fn err(text: &str) -> String {
        Profile::parse(text, Path::new("p.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_profile_and_defaults() {
        let p = Profile::parse(MINIMAL, Path::new("p.toml")).unwrap();
        assert_eq!(p.analyzers[0].log, runfolder::LogMode::Full);
        assert_eq!(p.checks.weight_tolerance, 0.05);
        assert_eq!(p.emitters.size_mean, 512.0);
        assert_eq!(p.distributor, distributor::Config::default());
        assert!(!p.hang_timeout_set);
        let set = MINIMAL.replace(
            "duration = 10",
            "duration = 10\n[distributor]\nhang_timeout = 2",
        );
        assert!(
            Profile::parse(&set, Path::new("p.toml"))
                .unwrap()
                .hang_timeout_set
        );
    }

    #[test]
    fn an_unknown_profile_lists_the_profiles_and_the_nearest() {
        let err = locate("basci").unwrap_err().to_string();
        assert!(err.contains("did you mean \"basic\"?"), "{err}");
        assert!(err.contains("basic, chaos, secure, throughput"), "{err}");
        let far = locate("zzzzzzzzzz").unwrap_err().to_string();
        assert!(!far.contains("did you mean"), "{far}");
    }

    #[test]
    fn every_shipped_profile_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "toml") {
                Profile::load(&path).unwrap();
                n += 1;
            }
        }
        assert!(n >= 3);
    }

    #[test]
    fn bad_fields_are_named() {
        assert!(err(&format!("{MINIMAL}\nbogus = 1")).contains("bogus"));
        let both = |text: &str, a: &str, b: &str| {
            let e = err(text);
            assert!(e.contains(a) && e.contains(b), "{e}");
        };
        both(
            &MINIMAL.replace("weight = 1", "weight = 0"),
            "analyzers[0]",
            "weight",
        );
        both(
            &MINIMAL.replace("rate = 10", "rate = \"fast\""),
            "rate",
            "fast",
        );
        both(
            &MINIMAL.replace("\"single\"", "\"loud\""),
            "priority_mode",
            "loud",
        );
        both(
            &MINIMAL.replace("id = \"a\"", "id = \"a/b\""),
            "analyzers[0]",
            "a/b",
        );
        let chaos =
            format!("{MINIMAL}\n[[chaos]]\nat = 5\naction = \"kill\"\ntargets = [\"zz\"]\n");
        assert!(err(&chaos).contains("chaos[0].targets"));
        let late = format!("{MINIMAL}\n[[chaos]]\nat = 50\naction = \"restart-distributor\"\n");
        assert!(err(&late).contains("chaos[0].at"));
        let slow = format!("{MINIMAL}\n[[chaos]]\nat = 5\naction = \"slow\"\ntargets = [\"a\"]\n");
        assert!(err(&slow).contains("slow_capacity"));
        let action = format!("{MINIMAL}\n[[chaos]]\nat = 5\naction = \"explode\"\n");
        assert!(err(&action).contains("explode"));
        let routing = MINIMAL.replace(
            "duration = 10",
            "duration = 10\n[distributor]\nrouting = \"rr\"",
        );
        assert!(err(&routing).contains("rr"));
        let queue = MINIMAL.replace(
            "duration = 10",
            "duration = 10\n[distributor]\nqueue_capacity = 0",
        );
        assert!(err(&queue).contains("queue-capacity"));
        assert!(err(&MINIMAL.replace("count = 1", "count = 0")).contains("emitters"));
    }

    #[test]
    fn security_needs_tls_and_names_its_bad_fields() {
        let imp = |claims: &str, tls: bool| {
            format!("tls = {tls}\n{MINIMAL}\n[security.impostor]\nat = 5\nclaims = {claims:?}\n")
        };
        assert!(Profile::parse(&imp("a", true), Path::new("p.toml")).is_ok());
        assert!(err(&imp("a", false)).contains("needs `tls = true`"));
        assert!(err(&imp("zz", true)).contains("security.impostor.claims"));
        let restricted = |identity: &str, priorities: &str| {
            format!(
                "tls = true\n{MINIMAL}\n[security.restricted]\nidentity = {identity:?}\npriorities = {priorities:?}\n[security.restricted.emitters]\ncount = 1\n"
            )
        };
        assert!(Profile::parse(&restricted("low", "128-255"), Path::new("p.toml")).is_ok());
        assert!(err(&restricted("low", "200-100")).contains("security.restricted.priorities"));
        for taken in ["a", "impostor", "loadgen", "lo*"] {
            assert!(
                err(&restricted(taken, "1")).contains("security.restricted.identity"),
                "{taken}"
            );
        }
        let by_hand = MINIMAL.replace(
            "duration = 10",
            "duration = 10\n[distributor]\ntls-cert = \"x.pem\"\ntls-key = \"x.key\"",
        );
        assert!(err(&by_hand).contains("the harness's to set"));
    }
}
