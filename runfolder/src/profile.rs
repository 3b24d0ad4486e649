//! What the report reads of a run's `profile.toml`: the routing, the analyzers' weights
//! and the check thresholds. The harness deserializes the whole profile into each
//! component's settings; this view takes only its part (other keys are the components'
//! business), but what it takes is typed: `routing = "rr"` is an error naming the field.

use crate::enums::Routing;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The report's part of a profile.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ProfileView {
    /// The profile's description.
    #[serde(default)]
    pub description: String,
    /// Seconds of load (before a `--duration` override; the manifest has the run's).
    #[serde(default)]
    pub duration: f64,
    /// The load, for the report's header.
    #[serde(default)]
    pub emitters: EmittersView,
    /// The chaos schedule, for the report's header.
    #[serde(default)]
    pub chaos: Vec<ChaosView>,
    /// The distributor's routing and pinned weights.
    #[serde(default)]
    pub distributor: DistributorView,
    /// The analyzers' ids and weights.
    #[serde(default)]
    pub analyzers: Vec<AnalyzerView>,
    /// Check thresholds.
    #[serde(default)]
    pub checks: Checks,
    /// Everything over mutual TLS (certificates minted by the harness).
    #[serde(default)]
    pub tls: bool,
    /// The identity probes of a `tls` run.
    #[serde(default)]
    pub security: Option<Security<EmittersView>>,
}

/// The report's part of `[distributor]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct DistributorView {
    /// How the distributor routed.
    #[serde(default)]
    pub routing: Routing,
    /// Weights pinned by analyzer id (they win over the analyzers' own).
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
}

/// The report's part of an `[[analyzers]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AnalyzerView {
    /// Analyzer id.
    pub id: String,
    /// Weight sent in its HELLO.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// At-least-once with ACKs.
    #[serde(default)]
    pub acks: bool,
    /// How it logs arrivals.
    #[serde(default)]
    pub log: crate::enums::LogMode,
}

/// The report's part of `[emitters]` (the loadgen's settings), for the header.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EmittersView {
    /// Emitter connections.
    #[serde(default, alias = "emitters")]
    pub count: u32,
    /// Per emitter: msg/s, or `max`.
    #[serde(default)]
    pub rate: Option<toml::Value>,
    /// How priorities are chosen.
    #[serde(default)]
    pub priority_mode: crate::enums::PriorityMode,
    /// The priority of `single`.
    #[serde(default)]
    pub priority: u8,
    /// The range of the other modes.
    #[serde(default)]
    pub priority_range: Option<String>,
    /// Mean payload bytes.
    #[serde(default)]
    pub size_mean: Option<f64>,
    /// Smallest payload.
    #[serde(default)]
    pub size_min: Option<u64>,
    /// Largest payload.
    #[serde(default)]
    pub size_max: Option<u64>,
}

impl EmittersView {
    /// The load in one line: `20 emitters x 500 msg/s, cyclic priorities 0-255, payloads
    /// 512 B mean (64-8192)`.
    pub fn describe(&self) -> String {
        let rate = match &self.rate {
            Some(toml::Value::String(s)) => s.clone(),
            Some(v) => format!("{v} msg/s"),
            None => "100 msg/s".into(),
        };
        let priorities = match self.priority_mode {
            crate::enums::PriorityMode::Single => format!("single priority {}", self.priority),
            mode => format!(
                "{mode} priorities {}",
                self.priority_range.as_deref().unwrap_or("0-255")
            ),
        };
        format!(
            "{} emitters x {rate}, {priorities}, payloads {} B mean ({}-{} B)",
            self.count,
            self.size_mean.unwrap_or(512.0),
            self.size_min.unwrap_or(64),
            self.size_max.unwrap_or(8192)
        )
    }
}

/// One chaos event of the profile.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChaosView {
    /// Seconds after the load starts (before scaling).
    pub at: f64,
    /// What is done.
    pub action: crate::enums::ChaosAction,
    /// Analyzer ids.
    #[serde(default)]
    pub targets: Vec<String>,
}

fn default_weight() -> f64 {
    1.0
}

/// `[security]` of a `tls = true` profile: what the run tries that must be refused. `E` is
/// the load's settings (the harness's `loadgen::Config`, the report's [`EmittersView`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security<E> {
    /// An analyzer with a valid certificate of its own (identity `impostor`) says HELLO
    /// with a live analyzer's id: it must get a REJECT.
    #[serde(default)]
    pub impostor: Option<Impostor>,
    /// A second load generator under its own identity, limited by the access file to some
    /// priorities; what it sends outside them must be dropped and counted `forbidden`.
    #[serde(default)]
    pub restricted: Option<Restricted<E>>,
}

/// `[security.impostor]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Impostor {
    /// Seconds after the load starts (scaled with `--duration`).
    pub at: f64,
    /// The live analyzer id it claims.
    pub claims: String,
}

/// The certificate identity of the impostor.
pub const IMPOSTOR: &str = "impostor";

/// `[security.restricted]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restricted<E> {
    /// Its certificate's identity (the access file's rule names it).
    pub identity: String,
    /// The priorities the access file allows it, `"A-B"` or `"N"`.
    pub priorities: String,
    /// Its load (emitter ids from [`crate::names::RESTRICTED_ID_BASE`]).
    pub emitters: E,
}

/// Parses a priority range, `"A-B"` (inclusive) or `"N"`.
pub fn parse_priorities(s: &str) -> Result<std::ops::RangeInclusive<u8>, String> {
    let num = |t: &str| {
        t.trim()
            .parse::<u8>()
            .map_err(|_| format!("{t:?} is not a priority 0-255"))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(s)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!("priorities {s:?}: {lo} is above {hi}"));
    }
    Ok(lo..=hi)
}

/// Thresholds of the report's checks (`[checks]` of a profile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// Relative tolerance of each analyzer's share (0.05: within 5% of its weight).
    #[serde(default = "default_tolerance")]
    pub weight_tolerance: f64,
    /// A queue wait at least this long (ms) marks a backlog.
    #[serde(default = "default_backlog")]
    pub backlog_ms: f64,
    /// p99 end-to-end latency limit in ms over every priority (none: not judged on its
    /// own; with no `latency_class` either, latency is an INFO figure).
    #[serde(default)]
    pub latency_p99_ms: Option<f64>,
    /// p99 limits for classes of priorities (`[[checks.latency_class]]`), each judged on
    /// the class's own arrivals over the whole run.
    #[serde(default)]
    pub latency_class: Vec<LatencyClass>,
}

/// A p99 latency limit on a class of priorities (`[[checks.latency_class]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyClass {
    /// The priorities of the class, `"A-B"` (inclusive) or `"N"`.
    pub priorities: String,
    /// The class's p99 end-to-end latency limit, ms.
    pub p99_ms: f64,
}

impl LatencyClass {
    /// The class's priorities (validated by [`Checks::validate`]).
    pub fn range(&self) -> Result<std::ops::RangeInclusive<u8>, String> {
        parse_priorities(&self.priorities)
    }
}

impl Default for Checks {
    fn default() -> Self {
        Self {
            weight_tolerance: default_tolerance(),
            backlog_ms: default_backlog(),
            latency_p99_ms: None,
            latency_class: Vec::new(),
        }
    }
}

fn default_tolerance() -> f64 {
    0.05
}
fn default_backlog() -> f64 {
    1.0
}

impl Checks {
    /// Checks the ranges: the field that is wrong and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let t = self.weight_tolerance;
        if !(t.is_finite() && t > 0.0 && t < 1.0) {
            return Err(("checks.weight_tolerance", format!("{t} must be in (0, 1)")));
        }
        if !(self.backlog_ms.is_finite() && self.backlog_ms > 0.0) {
            return Err((
                "checks.backlog_ms",
                format!("{} must be > 0 ms", self.backlog_ms),
            ));
        }
        if let Some(l) = self.latency_p99_ms
            && !(l.is_finite() && l > 0.0)
        {
            return Err(("checks.latency_p99_ms", format!("{l} must be > 0 ms")));
        }
        for c in &self.latency_class {
            if let Err(e) = c.range() {
                return Err(("checks.latency_class.priorities", e));
            }
            if !(c.p99_ms.is_finite() && c.p99_ms > 0.0) {
                return Err((
                    "checks.latency_class.p99_ms",
                    format!("{} must be > 0 ms", c.p99_ms),
                ));
            }
        }
        Ok(())
    }
}

/// A profile copy that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileViewError {
    /// Unreadable.
    #[error("{}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// Not a valid profile (the message names the field).
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl ProfileView {
    /// Parses profile text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ProfileViewError> {
        let view: ProfileView = parse_toml(text).map_err(|message| ProfileViewError::Parse {
            path: path.to_owned(),
            message,
        })?;
        view.checks
            .validate()
            .map_err(|(field, reason)| ProfileViewError::Parse {
                path: path.to_owned(),
                message: format!("invalid {field}: {reason}"),
            })?;
        Ok(view)
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self, ProfileViewError> {
        let text = std::fs::read_to_string(path).map_err(|error| ProfileViewError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text, path)
    }

    /// The weight each analyzer id is expected to have: pinned weights win.
    pub fn weights(&self) -> BTreeMap<String, f64> {
        let mut w: BTreeMap<String, f64> = self
            .analyzers
            .iter()
            .map(|a| (a.id.clone(), a.weight))
            .collect();
        w.extend(self.distributor.weights.clone());
        w
    }
}

fn parse_toml(text: &str) -> Result<ProfileView, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_part_and_ignores_the_rest() {
        let v = ProfileView::parse(
            "description = \"d\"\nduration = 5\n[distributor]\nrouting = \"smooth\"\nqueue_capacity = 3\n[[analyzers]]\nid = \"a\"\nweight = 2\nacks = true\n[checks]\nweight_tolerance = 0.1\n",
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(v.distributor.routing, Routing::Smooth);
        assert_eq!(v.weights()["a"], 2.0);
        assert_eq!(v.checks.weight_tolerance, 0.1);
    }

    #[test]
    fn a_typo_in_routing_is_an_error_naming_the_field() {
        let err = ProfileView::parse("[distributor]\nrouting = \"rr\"\n", Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.toml") && err.contains("rr") && err.contains("routing"),
            "{err}"
        );
        let err = ProfileView::parse("[checks]\nweight_tolerance = 5\n", Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("checks.weight_tolerance"), "{err}");
    }
}
