//! The loadgen's CSV files, in `--out`:
//!
//! - `sent-<base>.csv`: `second,emitter,priority,sent`: messages sent per Unix second,
//!   emitter and priority (rows only where `sent` > 0).
//! - `emitters-<base>.csv`: the manifest, one row per emitter:
//!   `emitter,sent,bytes,errors,reconnects,in_doubt,in_doubt_ranges,unsent,first_sent_ns,last_sent_ns,max_lag_us`.
//!   `sent` is the next seq: seqs `0..sent` were written. `in_doubt_ranges` lists the
//!   `start-end` (end exclusive) seq ranges, `;`-separated, of batches whose write failed.
//!
//! `<base>` is `--emitter-id-base`, so several loadgen processes can share a folder.

use crate::Config;
use crate::emitter::Report;
use anyhow::Context as _;
use std::path::Path;

/// Writes both files.
pub fn write(config: &Config, reports: &[Report]) -> anyhow::Result<()> {
    let base = config.emitter_id_base;
    write_seconds(&config.out.join(format!("sent-{base}.csv")), reports)?;
    write_manifest(&config.out.join(format!("emitters-{base}.csv")), reports)
}

fn create(path: &Path) -> anyhow::Result<csv::Writer<std::fs::File>> {
    csv::Writer::from_path(path).with_context(|| format!("cannot create {}", path.display()))
}

fn write_seconds(path: &Path, reports: &[Report]) -> anyhow::Result<()> {
    let mut w = create(path)?;
    w.write_record(["second", "emitter", "priority", "sent"])?;
    for r in reports {
        for s in &r.seconds {
            w.write_record([
                s.second.to_string(),
                r.emitter.to_string(),
                s.priority.to_string(),
                s.sent.to_string(),
            ])?;
        }
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_manifest(path: &Path, reports: &[Report]) -> anyhow::Result<()> {
    let mut w = create(path)?;
    w.write_record([
        "emitter",
        "sent",
        "bytes",
        "errors",
        "reconnects",
        "in_doubt",
        "in_doubt_ranges",
        "unsent",
        "first_sent_ns",
        "last_sent_ns",
        "max_lag_us",
    ])?;
    for r in reports {
        let in_doubt: u64 = r.in_doubt.iter().map(|(a, b)| b - a).sum();
        let ranges: Vec<String> = r.in_doubt.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        w.write_record([
            r.emitter.to_string(),
            r.sent.to_string(),
            r.bytes.to_string(),
            r.errors.to_string(),
            r.reconnects.to_string(),
            in_doubt.to_string(),
            ranges.join(";"),
            r.unsent.to_string(),
            r.first_sent_ns.to_string(),
            r.last_sent_ns.to_string(),
            r.max_lag.as_micros().to_string(),
        ])?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}
