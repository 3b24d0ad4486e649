//! File names of a run folder. Files written once per run have a constant name; files
//! written once per component instance form a [`Family`]: a prefix, a key (an analyzer id,
//! an emitter id base, a distributor incarnation) and a suffix.

use std::path::{Path, PathBuf};

/// The copy of the profile the run used.
pub const PROFILE: &str = "profile.toml";
/// The run's manifest ([`crate::json::Manifest`]).
pub const MANIFEST: &str = "manifest.json";
/// Chaos events as applied ([`crate::rows::Event`]).
pub const EVENTS: &str = "events.csv";
/// The alerts the run's Prometheus fired (`harness --prometheus`; [`crate::rows::Alert`]).
pub const ALERTS: &str = "alerts.csv";
/// Impostor attempts and their outcome ([`crate::rows::Probe`]).
pub const SECURITY: &str = "security.csv";
/// Certificates the harness minted for a `tls = true` run.
pub const TLS_DIR: &str = "tls";
/// The first emitter id of a profile's restricted emitters (`[security.restricted]`):
/// their own id range, so the report can tell their messages apart.
pub const RESTRICTED_ID_BASE: u32 = 1_000_000;
/// The distributor's data directory in a `journal = true` run, kept across its restarts.
pub const JOURNAL_DIR: &str = "journal";
/// The distributor's CPU and RSS over time ([`crate::rows::Resource`]).
pub const RESOURCES: &str = "resources.csv";
/// The distributor's settings as the harness handed them over (`--config`).
pub const DISTRIBUTOR_CONFIG: &str = "distributor.toml";
/// The report's verdicts ([`crate::rows::CheckRow`]).
pub const SUMMARY_CSV: &str = "summary.csv";
/// The report's verdicts as JSON (an array of [`crate::json::Check`]).
pub const SUMMARY_JSON: &str = "summary.json";
/// The bench suite's results ([`crate::json::Bench`]).
pub const BENCH: &str = "bench.json";
/// `report compare`'s rows ([`crate::rows::CompareRow`]).
pub const COMPARE_CSV: &str = "compare.csv";
/// `report compare`'s result ([`crate::json::Compare`]).
pub const COMPARE_JSON: &str = "compare.json";
/// `report compare`'s page.
pub const COMPARE_HTML: &str = "compare.html";

/// `YYYYMMDDTHHMMSSZ` for a Unix time in seconds: the stamp in the names of run, bench
/// and comparison folders.
pub fn utc_stamp(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|| format!("{secs}s"))
}

/// Files of one kind, one per component instance: `<prefix><key><suffix>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// Before the key.
    pub prefix: &'static str,
    /// After the key.
    pub suffix: &'static str,
}

/// Messages sent per second, emitter and priority, per loadgen process (key: emitter id
/// base).
pub const SENT: Family = Family::csv("sent-");
/// With `--acks`: the loadgen's time from first write to secured ([`crate::rows::Latency`],
/// key: emitter id base).
pub const SECURED: Family = Family::csv("secured-");
/// The loadgen's per-emitter manifest (key: emitter id base).
pub const EMITTERS: Family = Family::csv("emitters-");
/// A `full` sink's row per arrival (key: analyzer id).
pub const ARRIVALS: Family = Family::csv("arrivals-");
/// A `summary` sink's per-second aggregates (key: analyzer id).
pub const SUMMARY: Family = Family::csv("summary-");
/// A `summary` sink's whole-run latency histograms (key: analyzer id).
pub const LATENCY: Family = Family::csv("latency-");
/// A `summary` sink's exact seq ranges (key: analyzer id).
pub const SEQS: Family = Family::csv("seqs-");
/// A sink's totals at exit (key: analyzer id).
pub const TOTALS: Family = Family::csv("totals-");
/// A sink's link at exit: BATCH frames, bytes on the wire and before compression, text
/// probes (key: analyzer id).
pub const LINK: Family = Family::csv("link-");
/// A loadgen's bytes per emitter before and after compression (key: emitter id base).
pub const WIRE: Family = Family::csv("wire-");
/// The distributor's per-second stats (key: the incarnation, 1, 2, ... across restarts).
pub const STATS: Family = Family::csv("stats-");
/// A component's log (key: `distributor-<n>`, `sink-<id>`, `loadgen`).
pub const LOG: Family = Family {
    prefix: "",
    suffix: ".log",
};

impl Family {
    const fn csv(prefix: &'static str) -> Self {
        Self {
            prefix,
            suffix: ".csv",
        }
    }

    /// The file name for `key`.
    pub fn name(&self, key: impl std::fmt::Display) -> String {
        format!("{}{key}{}", self.prefix, self.suffix)
    }

    /// The path of `key`'s file in `dir`.
    pub fn path(&self, dir: &Path, key: impl std::fmt::Display) -> PathBuf {
        dir.join(self.name(key))
    }

    /// The key of a file name of this family.
    pub fn key_of<'a>(&self, file_name: &'a str) -> Option<&'a str> {
        file_name
            .strip_prefix(self.prefix)?
            .strip_suffix(self.suffix)
            .filter(|k| !k.is_empty())
    }

    /// Every file of this family in `dir`, as (key, path), sorted by file name.
    pub fn list(&self, dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let key = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| self.key_of(n))
                .map(str::to_owned);
            if let Some(key) = key
                && path.is_file()
            {
                out.push((key, path));
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_795_786_664), "20261127T133744Z");
    }

    #[test]
    fn names_and_keys() {
        assert_eq!(ARRIVALS.name("a1"), "arrivals-a1.csv");
        assert_eq!(ARRIVALS.key_of("arrivals-a1.csv"), Some("a1"));
        assert_eq!(ARRIVALS.key_of("arrivals-.csv"), None);
        assert_eq!(ARRIVALS.key_of("summary-a1.csv"), None);
        assert_eq!(STATS.name(2), "stats-2.csv");
    }

    #[test]
    fn lists_a_family() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["sent-0.csv", "sent-100.csv", "emitters-0.csv", "sent-x.txt"] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let keys: Vec<String> = SENT
            .list(dir.path())
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["0", "100"]);
    }
}
