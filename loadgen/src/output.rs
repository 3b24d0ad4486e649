//! The loadgen's CSV files in `--out`, typed by the run folder's schema:
//!
//! - `sent-<base>.csv` ([`runfolder::rows::Sent`]): messages sent per Unix second, emitter
//!   and priority (rows only where `sent` > 0).
//! - `emitters-<base>.csv` ([`runfolder::rows::EmitterTotals`]): one row per emitter.
//!   `sent` is the next seq: seqs `0..sent` were written. `in_doubt_ranges` lists the
//!   `start-end` (end exclusive) seq ranges, `;`-separated, of batches whose write failed.
//!
//! - `secured-<base>.csv` ([`runfolder::rows::Latency`], with `--acks`): one `all` row,
//!   the time from a message's first write to its ACK over every emitter (µs percentiles
//!   and the histogram).
//!
//! - `wire-<base>.csv` ([`runfolder::rows::EmitterWire`]): one row per emitter, its bytes
//!   before compression (`raw_bytes`) and on the wire (`wire_bytes`).
//!
//! `<base>` is `--emitter-id-base`, so several loadgen processes can share a folder.

use crate::Config;
use crate::emitter::Report;
use runfolder::TableWriter;
use runfolder::names;
use runfolder::rows::{EmitterTotals, EmitterWire, LatencyClass, Sent, SeqRanges};

/// Writes the files.
pub fn write(config: &Config, reports: &[Report]) -> Result<(), runfolder::Error> {
    let base = config.emitter_id_base;
    let mut sent = TableWriter::<Sent>::create(&names::SENT.path(&config.out, base))?;
    for r in reports {
        for s in &r.seconds {
            sent.write(&Sent {
                second: s.second,
                emitter: r.emitter,
                priority: s.priority,
                sent: s.sent,
            })?;
        }
    }
    sent.flush()?;
    let mut totals =
        TableWriter::<EmitterTotals>::create(&names::EMITTERS.path(&config.out, base))?;
    for r in reports {
        let ranges = SeqRanges(r.in_doubt.clone());
        totals.write(&EmitterTotals {
            emitter: r.emitter,
            sent: r.sent,
            bytes: r.bytes,
            errors: r.errors,
            reconnects: r.reconnects,
            in_doubt: ranges.count(),
            in_doubt_ranges: ranges,
            unsent: r.unsent,
            first_sent_ns: r.first_sent_ns,
            last_sent_ns: r.last_sent_ns,
            max_lag_us: u64::try_from(r.max_lag.as_micros()).unwrap_or(u64::MAX),
            secured: r.secured,
        })?;
    }
    totals.flush()?;
    let mut wire = TableWriter::<EmitterWire>::create(&names::WIRE.path(&config.out, base))?;
    for r in reports {
        wire.write(&EmitterWire {
            emitter: r.emitter,
            format: config.format,
            compression: config.compress,
            raw_bytes: r.bytes,
            wire_bytes: r.wire_bytes,
        })?;
    }
    wire.flush()?;
    if let Some(h) = secured_latency(reports) {
        let row =
            runfolder::latency::row(LatencyClass::All, &h).map_err(|e| runfolder::Error::Io {
                path: names::SECURED.path(&config.out, base),
                error: std::io::Error::other(e),
            })?;
        let mut out = TableWriter::create(&names::SECURED.path(&config.out, base))?;
        out.write(&row)?;
        out.flush()?;
    }
    Ok(())
}

/// The emitters' write-to-secured latencies merged (with `--acks`).
pub fn secured_latency(reports: &[Report]) -> Option<hdrhistogram::Histogram<u64>> {
    let mut all: Option<hdrhistogram::Histogram<u64>> = None;
    for h in reports.iter().filter_map(|r| r.secured_latency.as_ref()) {
        match &mut all {
            Some(a) => {
                let _ = a.add(h);
            }
            None => all = Some(h.clone()),
        }
    }
    all
}
