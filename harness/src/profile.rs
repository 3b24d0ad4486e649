//! Profiles: TOML files describing an experiment (the distributor's settings, the
//! analyzers, the emitters, the duration, the chaos schedule and the check thresholds).
//! Unknown fields are rejected and every value is checked at load time, so a bad profile
//! fails at once naming the field.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A profile that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Not found by name or path.
    #[error("no profile {name:?} (looked in: {looked})")]
    NotFound {
        /// What was asked for.
        name: String,
        /// Where it was looked for.
        looked: String,
    },
    /// Unreadable.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not valid TOML for a profile (the message names the field).
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The error.
        source: toml::de::Error,
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

/// An experiment.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// What the profile shows.
    pub description: String,
    /// Seconds of load.
    pub duration: f64,
    /// The distributor's settings.
    #[serde(default)]
    pub distributor: DistributorSettings,
    /// The analyzer sinks.
    pub analyzers: Vec<AnalyzerSettings>,
    /// The load.
    pub emitters: EmitterSettings,
    /// Failures to inject, in time order or not.
    #[serde(default)]
    pub chaos: Vec<ChaosEvent>,
    /// Check thresholds for the report.
    #[serde(default)]
    pub checks: CheckSettings,
}

/// Distributor flags; absent ones keep the distributor's defaults.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DistributorSettings {
    /// `random` or `smooth`.
    pub routing: Option<String>,
    /// Frames per priority level per analyzer.
    pub queue_capacity: Option<u64>,
    /// `backpressure` or `drop`.
    pub overflow: Option<String>,
    /// Unacknowledged frames per at-least-once analyzer.
    pub ack_window: Option<u64>,
    /// Seconds without progress before an analyzer counts as hung (scaled with the run).
    pub hang_timeout: Option<f64>,
    /// Seconds to drain at shutdown.
    pub drain_timeout: Option<f64>,
    /// Retries of a held frame.
    pub max_attempts: Option<u32>,
    /// Frames held while no analyzer can take them.
    pub holding_capacity: Option<u64>,
    /// Seed of the random router.
    pub seed: Option<u64>,
}

/// One analyzer sink.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnalyzerSettings {
    /// Id (A-Z a-z 0-9 _ . -; names its files).
    pub id: String,
    /// Weight sent in its HELLO.
    pub weight: f64,
    /// At-least-once with ACKs.
    #[serde(default)]
    pub acks: bool,
    /// Messages per second it can process (none: unlimited).
    pub capacity: Option<f64>,
    /// Messages per second during a `slow` phase.
    pub slow_capacity: Option<f64>,
    /// `full` (default) or `summary`.
    #[serde(default = "default_log")]
    pub log: String,
    /// SO_RCVBUF in bytes.
    pub recv_buffer: Option<u32>,
}

fn default_log() -> String {
    "full".into()
}

/// The load generator's settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmitterSettings {
    /// Emitters (connections).
    pub count: u32,
    /// Messages per second per emitter, or "max".
    pub rate: toml::Value,
    /// single, random, weighted or cyclic.
    pub priority_mode: String,
    /// Priority of `single`.
    #[serde(default)]
    pub priority: u8,
    /// Range of the other modes, `A-B`.
    #[serde(default = "default_range")]
    pub priority_range: String,
    /// Mean payload bytes.
    #[serde(default = "default_mean")]
    pub size_mean: f64,
    /// Log-normal sigma.
    #[serde(default = "default_sigma")]
    pub size_sigma: f64,
    /// Smallest payload.
    #[serde(default = "default_min")]
    pub size_min: u32,
    /// Largest payload.
    #[serde(default = "default_max")]
    pub size_max: u32,
    /// Seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_range() -> String {
    "0-255".into()
}
fn default_mean() -> f64 {
    512.0
}
fn default_sigma() -> f64 {
    0.5
}
fn default_min() -> u32 {
    64
}
fn default_max() -> u32 {
    8192
}
fn default_seed() -> u64 {
    1
}

/// What a chaos event does.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// SIGKILL an analyzer.
    Kill,
    /// Start an analyzer that is down (after `kill`).
    Start,
    /// SIGSTOP an analyzer: it hangs.
    Stop,
    /// SIGCONT a stopped analyzer.
    Cont,
    /// SIGUSR1: the analyzer runs at its `slow_capacity`.
    Slow,
    /// SIGUSR2: back to its normal capacity.
    Fast,
    /// SIGTERM the distributor, let it drain, start it again.
    RestartDistributor,
}

impl Action {
    /// As written in profiles and `events.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Cont => "cont",
            Action::Slow => "slow",
            Action::Fast => "fast",
            Action::RestartDistributor => "restart-distributor",
        }
    }
}

/// One chaos event.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChaosEvent {
    /// Seconds after the load starts (scaled with `--duration`).
    pub at: f64,
    /// What to do.
    pub action: Action,
    /// Analyzer ids (none for `restart-distributor`).
    #[serde(default)]
    pub targets: Vec<String>,
}

/// Thresholds for the report's checks.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckSettings {
    /// Relative tolerance of each analyzer's share.
    #[serde(default = "default_tolerance")]
    pub weight_tolerance: f64,
    /// A queue wait at least this long (ms) marks a backlog.
    #[serde(default = "default_backlog")]
    pub backlog_ms: f64,
    /// p99 latency limit in ms.
    pub latency_p99_ms: Option<f64>,
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            weight_tolerance: default_tolerance(),
            backlog_ms: default_backlog(),
            latency_p99_ms: None,
        }
    }
}

fn default_tolerance() -> f64 {
    0.05
}
fn default_backlog() -> f64 {
    1.0
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
    Err(ProfileError::NotFound {
        name: name.to_owned(),
        looked,
    })
}

impl Profile {
    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks profile text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ProfileError> {
        let p: Profile = toml::from_str(text).map_err(|source| ProfileError::Parse {
            path: path.to_owned(),
            source,
        })?;
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
        if self.analyzers.is_empty() {
            return bad("analyzers", "at least one analyzer is needed".into());
        }
        let mut ids = BTreeSet::new();
        for (i, a) in self.analyzers.iter().enumerate() {
            let f = |name: &str| format!("analyzers[{i}].{name}");
            let id_ok = !a.id.is_empty()
                && a.id.len() <= 64
                && a.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !id_ok {
                return bad(
                    &f("id"),
                    format!("{:?}: use 1 to 64 of A-Z a-z 0-9 _ . -", a.id),
                );
            }
            if !ids.insert(a.id.clone()) {
                return bad(&f("id"), format!("{:?} appears twice", a.id));
            }
            if !(a.weight.is_finite() && a.weight > 0.0) {
                return bad(&f("weight"), format!("{} must be finite and > 0", a.weight));
            }
            for (name, v) in [("capacity", a.capacity), ("slow_capacity", a.slow_capacity)] {
                if v.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
                    return bad(&f(name), "must be > 0 messages per second".into());
                }
            }
            if a.log != "full" && a.log != "summary" {
                return bad(
                    &f("log"),
                    format!("{:?} is neither \"full\" nor \"summary\"", a.log),
                );
            }
        }
        let e = &self.emitters;
        if e.count == 0 {
            return bad("emitters.count", "must be at least 1".into());
        }
        match &e.rate {
            toml::Value::String(s) if s == "max" => {}
            toml::Value::Integer(r) if *r > 0 => {}
            toml::Value::Float(r) if r.is_finite() && *r > 0.0 => {}
            other => {
                return bad(
                    "emitters.rate",
                    format!("{other} is neither a rate > 0 nor \"max\""),
                );
            }
        }
        if !["single", "random", "weighted", "cyclic"].contains(&e.priority_mode.as_str()) {
            return bad(
                "emitters.priority_mode",
                format!(
                    "{:?}: use single, random, weighted or cyclic",
                    e.priority_mode
                ),
            );
        }
        if let Err(reason) = e.priority_range.parse::<loadgen::generate::PriorityRange>() {
            return bad("emitters.priority_range", reason);
        }
        if let Err(err) = loadgen::generate::SizeGen::new(
            e.size_mean,
            e.size_sigma,
            e.size_min as usize,
            e.size_max as usize,
        ) {
            return bad("emitters.size_*", err.to_string());
        }
        let d = &self.distributor;
        if let Some(r) = &d.routing
            && r != "random"
            && r != "smooth"
        {
            return bad(
                "distributor.routing",
                format!("{r:?}: use random or smooth"),
            );
        }
        if let Some(o) = &d.overflow
            && o != "backpressure"
            && o != "drop"
        {
            return bad(
                "distributor.overflow",
                format!("{o:?}: use backpressure or drop"),
            );
        }
        for (name, v) in [
            ("hang_timeout", d.hang_timeout),
            ("drain_timeout", d.drain_timeout),
        ] {
            if v.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
                return bad(&format!("distributor.{name}"), "must be > 0 seconds".into());
            }
        }
        for (i, c) in self.chaos.iter().enumerate() {
            let f = |name: &str| format!("chaos[{i}].{name}");
            if !(c.at.is_finite() && c.at >= 0.0 && c.at <= self.duration) {
                return bad(
                    &f("at"),
                    format!("{} is not within the run (0 to {} s)", c.at, self.duration),
                );
            }
            let needs_targets = c.action != Action::RestartDistributor;
            if needs_targets == c.targets.is_empty() {
                let reason = if needs_targets {
                    "name at least one analyzer"
                } else {
                    "takes no targets"
                };
                return bad(&f("targets"), format!("{} {reason}", c.action.as_str()));
            }
            for t in &c.targets {
                if !ids.contains(t) {
                    return bad(
                        &f("targets"),
                        format!("{t:?} is not an analyzer of this profile"),
                    );
                }
                let a = self.analyzers.iter().find(|a| &a.id == t);
                if c.action == Action::Slow && a.is_some_and(|a| a.slow_capacity.is_none()) {
                    return bad(
                        &f("targets"),
                        format!("{t:?} has no slow_capacity for a slow phase"),
                    );
                }
            }
        }
        let t = &self.checks;
        if !(t.weight_tolerance.is_finite() && t.weight_tolerance > 0.0 && t.weight_tolerance < 1.0)
        {
            return bad(
                "checks.weight_tolerance",
                format!("{} must be in (0, 1)", t.weight_tolerance),
            );
        }
        Ok(())
    }
}

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
        assert_eq!(p.analyzers[0].log, "full");
        assert_eq!(p.checks.weight_tolerance, 0.05);
        assert_eq!(p.emitters.size_mean, 512.0);
    }

    #[test]
    fn bad_fields_are_named() {
        assert!(err(&format!("{MINIMAL}\nbogus = 1")).contains("bogus"));
        assert!(err(&MINIMAL.replace("weight = 1", "weight = 0")).contains("analyzers[0].weight"));
        assert!(err(&MINIMAL.replace("rate = 10", "rate = \"fast\"")).contains("emitters.rate"));
        assert!(err(&MINIMAL.replace("\"single\"", "\"loud\"")).contains("emitters.priority_mode"));
        assert!(err(&MINIMAL.replace("id = \"a\"", "id = \"a/b\"")).contains("analyzers[0].id"));
        let chaos =
            format!("{MINIMAL}\n[[chaos]]\nat = 5\naction = \"kill\"\ntargets = [\"zz\"]\n");
        assert!(err(&chaos).contains("chaos[0].targets"));
        let late = format!("{MINIMAL}\n[[chaos]]\nat = 50\naction = \"restart-distributor\"\n");
        assert!(err(&late).contains("chaos[0].at"));
        let slow = format!("{MINIMAL}\n[[chaos]]\nat = 5\naction = \"slow\"\ntargets = [\"a\"]\n");
        assert!(err(&slow).contains("slow_capacity"));
        let action = format!("{MINIMAL}\n[[chaos]]\nat = 5\naction = \"explode\"\n");
        assert!(err(&action).contains("explode"));
    }
}
