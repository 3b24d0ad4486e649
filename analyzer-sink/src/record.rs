//! Logging arrivals, in one of two modes.
//!
//! - `full`: one row per arrival in `arrivals-<id>.csv`. Rows are formatted and written by
//!   a dedicated thread through a 1 MiB buffer, off the read path; batches reach it over a
//!   bounded channel (64 batches: when it is full the reader waits, so nothing is dropped
//!   and TCP backpressure slows the distributor instead). The thread flushes to the OS
//!   whenever it has caught up and publishes how many rows are written: that count bounds
//!   the ACKs, so a SIGKILL never loses an acknowledged arrival.
//! - `summary`: per-second aggregates in `summary-<id>.csv`, whole-run latency histograms
//!   per priority in `latency-<id>.csv` and the exact seq ranges seen per emitter in
//!   `seqs-<id>.csv` (written at exit: this mode is for rates where a row per message is
//!   too much, not for runs that kill the sink).
//!
//! Both write `totals-<id>.csv` and `link-<id>.csv` (BATCH frames, bytes on the wire and
//! before compression, text probes) at exit. Every file is a table of the run folder's schema
//! (`runfolder::rows`); columns are documented there and in the README.

use crate::verify::{Arrival, Counts, Tracker};
use anyhow::Context as _;
use hdrhistogram::Histogram;
use runfolder::rows::{self, LatencyClass, SeqRange, SinkTotals, SummarySecond};
use runfolder::{TableWriter, names};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

/// How arrivals are logged (shared with profiles and the totals file).
pub use runfolder::LogMode;

/// The logging side of a sink.
#[derive(Debug)]
pub enum Recorder {
    /// `full` mode.
    Full(FullLog),
    /// `summary` mode (boxed: its writer's buffer makes it the larger one).
    Summary(Box<SummaryLog>),
}

impl Recorder {
    /// Opens the files of `mode` for analyzer `id` in `dir`.
    pub fn open(mode: LogMode, dir: &Path, id: &str) -> anyhow::Result<Self> {
        Ok(match mode {
            LogMode::Full => Recorder::Full(FullLog::open(dir, id)?),
            LogMode::Summary => Recorder::Summary(Box::new(SummaryLog::open(dir, id)?)),
        })
    }

    /// Logs one arrival.
    pub fn record(&mut self, a: Arrival) -> anyhow::Result<()> {
        match self {
            Recorder::Full(f) => f.record(a),
            Recorder::Summary(s) => s.record(a),
        }
    }

    /// Hands what is pending to the writer (call after each read's frames).
    pub fn flush_pending(&mut self) -> anyhow::Result<()> {
        match self {
            Recorder::Full(f) => f.flush_pending(),
            Recorder::Summary(s) => s.roll(crate::now_second()),
        }
    }

    /// Arrivals recorded durably enough to acknowledge, since the sink started.
    pub fn recorded(&self) -> u64 {
        match self {
            Recorder::Full(f) => f.written.load(Ordering::Acquire),
            Recorder::Summary(s) => s.recorded,
        }
    }

    /// Flushes and closes everything, writing the end-of-run files.
    pub fn finish(
        self,
        tracker: &Tracker,
        totals: &TotalsRow,
        link: &LinkRow,
    ) -> anyhow::Result<()> {
        let dir = match self {
            Recorder::Full(f) => f.finish()?,
            Recorder::Summary(s) => s.finish(tracker)?,
        };
        totals.write(&dir, tracker.counts())?;
        link.write(&dir, tracker.counts())
    }
}

/// `full` mode: a writer thread and the batch being filled.
#[derive(Debug)]
pub struct FullLog {
    dir: PathBuf,
    batch: Vec<Arrival>,
    tx: Option<SyncSender<Vec<Arrival>>>,
    thread: Option<JoinHandle<Result<(), runfolder::Error>>>,
    written: Arc<AtomicU64>,
}

impl FullLog {
    fn open(dir: &Path, id: &str) -> anyhow::Result<Self> {
        let out = open_arrivals(&names::ARRIVALS.path(dir, id))?;
        // Bounded: a writer that cannot keep up slows the reader, it never drops rows.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Arrival>>(64);
        let written = Arc::new(AtomicU64::new(0));
        let w = Arc::clone(&written);
        let thread = std::thread::Builder::new()
            .name(format!("arrivals-{id}"))
            .spawn(move || write_rows(rx, out, &w))
            .context("cannot start the arrivals writer thread")?;
        Ok(Self {
            dir: dir.to_owned(),
            batch: Vec::with_capacity(4096),
            tx: Some(tx),
            thread: Some(thread),
            written,
        })
    }

    fn record(&mut self, a: Arrival) -> anyhow::Result<()> {
        self.batch.push(a);
        if self.batch.len() >= 4096 {
            self.flush_pending()?;
        }
        Ok(())
    }

    fn flush_pending(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(4096));
        match &self.tx {
            // A send fails only if the writer thread ended, i.e. on a write error; finish()
            // reports it.
            Some(tx) => tx.send(batch).map_err(|_| {
                anyhow::anyhow!("the arrivals writer stopped (see the error at exit)")
            }),
            None => Ok(()),
        }
    }

    fn finish(mut self) -> anyhow::Result<PathBuf> {
        let pending = self.flush_pending();
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(r) => r.context("writing arrivals failed")?,
                Err(_) => anyhow::bail!("the arrivals writer thread panicked"),
            }
        }
        pending?;
        Ok(self.dir)
    }
}

/// Opens `arrivals-<id>.csv` for appending: a sink restarted after a crash continues the
/// same file. A partial last line (the crash came mid-write; never acknowledged) is cut off.
fn open_arrivals(path: &Path) -> anyhow::Result<TableWriter<rows::Arrival>> {
    let (out, cut) = TableWriter::append(path)?;
    if cut > 0 {
        tracing::warn!(file = %path.display(), cut, "cutting a partial last line left by a crash");
    }
    if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        > runfolder::table::header::<rows::Arrival>().len() as u64 + 1
    {
        tracing::info!(file = %path.display(), "appending to the arrivals of an earlier run of this sink");
    }
    Ok(out)
}

/// The writer thread: writes rows, flushes whenever it has caught up.
fn write_rows(
    rx: Receiver<Vec<Arrival>>,
    mut out: TableWriter<rows::Arrival>,
    written: &AtomicU64,
) -> Result<(), runfolder::Error> {
    let mut count = 0u64;
    let mut next = rx.recv().ok();
    while let Some(batch) = next {
        for a in &batch {
            out.write(&a.row)?;
        }
        count += batch.len() as u64;
        next = match rx.try_recv() {
            Ok(b) => Some(b),
            Err(TryRecvError::Empty) => {
                out.flush()?;
                written.store(count, Ordering::Release);
                rx.recv().ok()
            }
            Err(TryRecvError::Disconnected) => None,
        };
    }
    out.flush()?;
    written.store(count, Ordering::Release);
    Ok(())
}

/// Aggregates of one priority in one second.
#[derive(Debug)]
struct Bucket {
    count: u64,
    duplicates: u64,
    corrupt: u64,
    non_probe: u64,
    inversions: u64,
    overtaken: u64,
    latency_us: Histogram<u64>,
    queue_wait_max_us: u64,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(runfolder::latency::histogram()?)
}

/// `summary` mode.
#[derive(Debug)]
pub struct SummaryLog {
    dir: PathBuf,
    id: String,
    out: TableWriter<SummarySecond>,
    second: u64,
    buckets: BTreeMap<u8, Bucket>,
    whole_run: BTreeMap<u8, Histogram<u64>>,
    recorded: u64,
}

impl SummaryLog {
    fn open(dir: &Path, id: &str) -> anyhow::Result<Self> {
        let out = TableWriter::create(&names::SUMMARY.path(dir, id))?;
        Ok(Self {
            dir: dir.to_owned(),
            id: id.to_owned(),
            out,
            second: 0,
            buckets: BTreeMap::new(),
            whole_run: BTreeMap::new(),
            recorded: 0,
        })
    }

    fn record(&mut self, a: Arrival) -> anyhow::Result<()> {
        self.roll(a.row.arrival_ns / 1_000_000_000)?;
        let b = match self.buckets.entry(a.row.priority) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert(Bucket {
                count: 0,
                duplicates: 0,
                corrupt: 0,
                non_probe: 0,
                inversions: 0,
                overtaken: 0,
                latency_us: histogram()?,
                queue_wait_max_us: 0,
            }),
        };
        b.count += 1;
        b.duplicates += u64::from(a.row.duplicate);
        b.corrupt += u64::from(!a.row.crc_ok && a.row.emitter.is_some());
        b.non_probe += u64::from(a.row.emitter.is_none());
        b.inversions += u64::from(a.inverted);
        b.overtaken += u64::from(a.overtaken);
        if let Some(ns) = a.latency_ns() {
            let _ = b.latency_us.record(ns / 1000);
        }
        b.queue_wait_max_us = b
            .queue_wait_max_us
            .max(a.row.dispatch_ns.saturating_sub(a.row.queued_ns) / 1000);
        self.recorded += 1;
        Ok(())
    }

    /// Writes the rows of the second under way once `second` is past it.
    fn roll(&mut self, second: u64) -> anyhow::Result<()> {
        if second <= self.second && !self.buckets.is_empty() {
            return Ok(());
        }
        if self.buckets.is_empty() {
            self.second = second.max(self.second);
            return Ok(());
        }
        for (p, b) in std::mem::take(&mut self.buckets) {
            let h = b.latency_us;
            // A second with no verified probe has no latency: empty, not 0.
            let lat = |v: u64| (!h.is_empty()).then_some(v);
            self.out.write(&SummarySecond {
                second: self.second,
                priority: p,
                count: b.count,
                duplicates: b.duplicates,
                corrupt: b.corrupt,
                non_probe: b.non_probe,
                inversions: b.inversions,
                overtaken: b.overtaken,
                lat_p50_us: lat(h.value_at_quantile(0.5)),
                lat_p99_us: lat(h.value_at_quantile(0.99)),
                lat_p999_us: lat(h.value_at_quantile(0.999)),
                lat_max_us: lat(h.max()),
                queue_wait_max_us: b.queue_wait_max_us,
            })?;
            match self.whole_run.entry(p) {
                Entry::Occupied(mut o) => {
                    let _ = o.get_mut().add(&h);
                }
                Entry::Vacant(v) => {
                    v.insert(h);
                }
            }
        }
        self.out.flush()?;
        self.second = second;
        Ok(())
    }

    fn finish(mut self, tracker: &Tracker) -> anyhow::Result<PathBuf> {
        self.roll(u64::MAX)?;
        let mut lat = TableWriter::create(&names::LATENCY.path(&self.dir, &self.id))?;
        let mut all = histogram()?;
        for (p, h) in &self.whole_run {
            let _ = all.add(h);
            lat.write(&latency_row(LatencyClass::Priority(*p), h)?)?;
        }
        lat.write(&latency_row(LatencyClass::All, &all)?)?;
        lat.flush()?;
        let mut seqs = TableWriter::create(&names::SEQS.path(&self.dir, &self.id))?;
        for (emitter, first, last) in tracker.ranges() {
            seqs.write(&SeqRange {
                emitter,
                first,
                last,
            })?;
        }
        seqs.flush()?;
        Ok(self.dir)
    }
}

fn latency_row(class: LatencyClass, h: &Histogram<u64>) -> anyhow::Result<rows::Latency> {
    Ok(runfolder::latency::row(class, h)?)
}

/// The one-row `totals-<id>.csv`.
#[derive(Debug, Clone)]
pub struct TotalsRow {
    /// Analyzer id.
    pub id: String,
    /// Log mode.
    pub mode: LogMode,
    /// What the sink was told to expect.
    pub traffic: runfolder::Traffic,
    /// Sessions (connections that got past HELLO).
    pub sessions: u64,
    /// First and last arrival, ns.
    pub first_arrival_ns: u64,
    /// See `first_arrival_ns`.
    pub last_arrival_ns: u64,
}

/// The sink's `link-<id>.csv` row, less what the tracker counted.
#[derive(Debug, Clone)]
pub struct LinkRow {
    /// Analyzer id.
    pub id: String,
    /// What the HELLO asked for.
    pub compression: Option<runfolder::Compression>,
    /// What the links carried, over every session.
    pub stats: protocol::analyzer::DownstreamStats,
    /// Sessions ended by a bad frame from the distributor.
    pub bad_frames: u64,
}

impl LinkRow {
    fn write(&self, dir: &Path, c: Counts) -> anyhow::Result<()> {
        let mut out = TableWriter::create(&names::LINK.path(dir, &self.id))?;
        out.write(&rows::SinkLink {
            id: self.id.clone(),
            compression: self.compression,
            batches: self.stats.batches,
            batched: self.stats.batched,
            wire_bytes: self.stats.wire_bytes,
            raw_bytes: self.stats.raw_bytes,
            bad_frames: self.bad_frames,
            text_probes: c.text_probes,
            pri_mismatch: c.pri_mismatch,
        })?;
        out.flush()?;
        Ok(())
    }
}

impl TotalsRow {
    fn write(&self, dir: &Path, c: Counts) -> anyhow::Result<()> {
        let mut out = TableWriter::create(&names::TOTALS.path(dir, &self.id))?;
        out.write(&SinkTotals {
            id: self.id.clone(),
            mode: self.mode,
            traffic: self.traffic,
            received: c.received,
            unique: c.unique,
            duplicates: c.duplicates,
            corrupt: c.corrupt,
            non_probe: c.non_probe,
            inversions: c.inversions,
            overtaken: c.overtaken,
            sessions: self.sessions,
            first_arrival_ns: self.first_arrival_ns,
            last_arrival_ns: self.last_arrival_ns,
        })?;
        out.flush()?;
        Ok(())
    }
}
