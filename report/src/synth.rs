//! Synthetic run folders: a clean run of known shape, and the tampered variants the tests
//! use to show that every check can fail. Also the generator behind the 10-million-arrival
//! performance benchmark (`cargo run --release -p report --example synth`).
//!
//! The clean run: three emitters, analyzers `a1`/`a2`/`a3` with weights 5/3/2 receiving
//! messages in an exact 5/3/2 pattern, priorities 7..0 queued in groups of eight and
//! delivered most urgent first one millisecond apart (a backlog that priority reorders,
//! without inversion), distributor stats with the live set, nothing dropped.

use std::fmt::Write as _;
use std::path::Path;

/// What to break in a synthetic run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Nothing.
    None,
    /// Remove five arrivals of `a2`: unexplained loss.
    RemoveArrivals,
    /// Log three arrivals twice: duplicates without any failure.
    DuplicateRows,
    /// Mark one arrival's crc as bad.
    FlipCrc,
    /// Route 6/2/2 instead of 5/3/2.
    SkewShares,
    /// Swap two deliveries of a group: a more urgent frame delivered second.
    Invert,
    /// Deliver FIFO, one priority, as soon as queued: no backlog.
    NoBacklog,
}

const BASE_NS: u64 = 1_800_000_000_000_000_000;
const MS: u64 = 1_000_000;

/// Writes a synthetic run of `messages` messages into `dir` (created if missing).
pub fn write_run(dir: &Path, messages: u64, tamper: Tamper) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let emitters = 3u64;
    let pattern: [usize; 10] = if tamper == Tamper::SkewShares {
        [0, 1, 0, 2, 0, 1, 0, 0, 0, 2]
    } else {
        [0, 1, 0, 2, 0, 1, 0, 0, 1, 2]
    };
    let ids = ["a1", "a2", "a3"];
    let mut per: [Vec<(u64, u64)>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for k in 0..messages {
        per[pattern[(k % 10) as usize]].push((k % emitters, k / emitters));
    }
    let mut last_second = BASE_NS / 1_000_000_000;
    for (i, list) in per.iter().enumerate() {
        let mut out = String::with_capacity(list.len() * 100 + 128);
        out.push_str("arrival_ns,emitter,seq,priority,sent_ns,queued_ns,dispatch_ns,size,crc_ok,duplicate,session\n");
        let mut rows: Vec<(u64, u64, u8, u64, u64)> = Vec::with_capacity(list.len());
        for (n, (e, seq)) in list.iter().enumerate() {
            let (group, pos) = ((n / 8) as u64, (n % 8) as u64);
            let t = BASE_NS + group * 16 * MS;
            let (priority, queued, dispatch) = if tamper == Tamper::NoBacklog {
                let q = t + pos * 2 * MS;
                (0u8, q, q + 1000)
            } else {
                // Queued 7, 6, ..., 0 (one per ms); delivered 0, 1, ..., 7 from t + 8 ms.
                (pos as u8, t + (7 - pos) * MS, t + (8 + pos) * MS)
            };
            rows.push((*e, *seq, priority, queued, dispatch));
        }
        if tamper == Tamper::Invert && i == 0 && rows.len() > 2 {
            rows.swap(0, 1);
            let (a, b) = (rows[0].4, rows[1].4);
            rows[0].4 = b;
            rows[1].4 = a;
        }
        let mut extra = Vec::new();
        for (n, (e, seq, p, q, d)) in rows.iter().enumerate() {
            if tamper == Tamper::RemoveArrivals && i == 1 && (100..105).contains(&n) {
                continue;
            }
            let crc = u8::from(!(tamper == Tamper::FlipCrc && i == 2 && n == 7));
            let arrival = d + 100_000;
            last_second = last_second.max(arrival / 1_000_000_000);
            let _ = writeln!(
                out,
                "{arrival},{e},{seq},{p},{},{q},{d},512,{crc},0,1",
                q - 100_000
            );
            if tamper == Tamper::DuplicateRows && i == 0 && n >= rows.len().saturating_sub(3) {
                extra.push(format!(
                    "{},{e},{seq},{p},{},{q},{d},512,1,0,1",
                    arrival + 1,
                    q - 100_000
                ));
            }
        }
        for x in extra {
            let _ = writeln!(out, "{x}");
        }
        std::fs::write(dir.join(format!("arrivals-{}.csv", ids[i])), out)?;
    }
    let mut manifest = String::from(
        "emitter,sent,bytes,errors,reconnects,in_doubt,in_doubt_ranges,unsent,first_sent_ns,last_sent_ns,max_lag_us\n",
    );
    let mut sent = String::from("second,emitter,priority,sent\n");
    for e in 0..emitters {
        let n = messages / emitters + u64::from(e < messages % emitters);
        let _ = writeln!(
            manifest,
            "{e},{n},{},0,0,0,,0,{BASE_NS},{BASE_NS},0",
            n * 517
        );
        let _ = writeln!(sent, "{},{e},0,{n}", BASE_NS / 1_000_000_000);
    }
    std::fs::write(dir.join("emitters-0.csv"), manifest)?;
    std::fs::write(dir.join("sent-0.csv"), sent)?;
    let mut stats = String::from(
        "ts_ns,analyzer,live,weight,received,delivered,routed,written,acked,rerouted,failures,dropped_queue_full,dropped_holding_full,dropped_retries_exhausted,dropped_shutdown,protocol_errors,truncated,emitter_connections_open,queued,inflight,holding\n",
    );
    for s in BASE_NS / 1_000_000_000..=last_second {
        let ts = s * 1_000_000_000 + 500 * MS;
        let _ = writeln!(
            stats,
            "{ts},*,3,10,{messages},{messages},0,0,0,0,0,0,0,0,0,0,0,3,5,0,0"
        );
        for (id, w) in ids.iter().zip([5, 3, 2]) {
            let _ = writeln!(stats, "{ts},{id},1,{w},0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0");
        }
    }
    std::fs::write(dir.join("stats-1.csv"), stats)?;
    std::fs::write(
        dir.join("profile.toml"),
        "description = \"synthetic\"\nduration = 1\n[distributor]\nrouting = \"smooth\"\n[checks]\nweight_tolerance = 0.05\nbacklog_ms = 1.0\n",
    )
}
