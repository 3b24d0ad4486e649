//! The run folder's schema, shared by every component that writes it and by the report
//! that reads it: one place for file names, row types and the enums that cross crates.
//!
//! # Layout
//!
//! - [`enums`]: the closed sets that appear in settings and files (routing, overflow, log
//!   mode, priority mode, chaos action, check status).
//! - [`names`]: the file names of a run folder.
//! - [`table`]: the [`Table`] trait, and typed CSV writing and reading with errors that
//!   name the file, the line and the column.
//! - [`rows`]: one serde type per CSV file.
//! - [`json`]: the run manifest and the bench results.
//! - [`profile`]: what the report reads of a run's `profile.toml`.
//!
//! A run folder (`results/<profile>-<UTC time>/`) holds:
//!
//! | file | written by | row type |
//! |---|---|---|
//! | `sent-<base>.csv` | loadgen | [`rows::Sent`] |
//! | `emitters-<base>.csv` | loadgen | [`rows::EmitterTotals`] |
//! | `arrivals-<id>.csv` | analyzer-sink (`full`) | [`rows::Arrival`] |
//! | `summary-<id>.csv` | analyzer-sink (`summary`) | [`rows::SummarySecond`] |
//! | `latency-<id>.csv` | analyzer-sink (`summary`) | [`rows::Latency`] |
//! | `seqs-<id>.csv` | analyzer-sink (`summary`) | [`rows::SeqRange`] |
//! | `totals-<id>.csv` | analyzer-sink | [`rows::SinkTotals`] |
//! | `stats-<n>.csv` | distributor | [`rows::Stats`] |
//! | `events.csv` | harness | [`rows::Event`] |
//! | `resources.csv` | harness | [`rows::Resource`] |
//! | `alerts.csv` | harness (`--prometheus`) | [`rows::Alert`] |
//! | `manifest.json` | harness | [`json::Manifest`] |
//! | `profile.toml` | harness (a copy) | [`profile::ProfileView`] (the report's part) |
//! | `summary.csv` | report | [`rows::CheckRow`] |
//! | `summary.json` | report | [`json::Check`] (an array) |
//!
//! `report compare` writes `compare.csv` ([`rows::CompareRow`]) and `compare.json`
//! ([`json::Compare`]) into its own folder.

pub mod enums;
pub mod json;
pub mod latency;
pub mod names;
pub mod profile;
pub mod rows;
pub mod table;

pub use enums::{
    Better, ChaosAction, Compression, Format, Fsync, LogMode, Method, Overflow, Payload,
    PriorityMode, ProbeOutcome, Routing, Status, SyslogFraming, Traffic, Unit, Verdict, WhenFull,
};
pub use table::{Error, Table, TableReader, TableWriter};

/// Checks an analyzer id that names files (`arrivals-<id>.csv`, ...): 1 to 64 of
/// `A-Z a-z 0-9 _ . -`. The wire protocol allows any UTF-8 id; the toolkit's sinks and
/// profiles use this narrower set so that every id is a safe file name.
pub fn check_file_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{id:?}: use 1 to 64 of A-Z a-z 0-9 _ . - (it names files)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids() {
        assert!(check_file_id("a1.b-c_d").is_ok());
        assert!(check_file_id("").is_err());
        assert!(check_file_id("a/b").is_err());
        assert!(check_file_id(&"x".repeat(65)).is_err());
        assert!(check_file_id(&"x".repeat(64)).is_ok());
    }
}
