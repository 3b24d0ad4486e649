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
//! Both write `totals-<id>.csv` at exit. Columns are documented in the README.

use crate::verify::{Arrival, Counts, Tracker};
use anyhow::Context as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

/// How arrivals are logged.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogMode {
    /// A row per arrival.
    Full,
    /// Per-second aggregates plus exact seq ranges.
    Summary,
}

/// The header of `arrivals-<id>.csv`.
pub const ARRIVALS_HEADER: &str =
    "arrival_ns,emitter,seq,priority,sent_ns,queued_ns,dispatch_ns,size,crc_ok,duplicate,session";
/// The header of `summary-<id>.csv`.
pub const SUMMARY_HEADER: &str = "second,priority,count,duplicates,corrupt,non_probe,inversions,overtaken,\
lat_p50_us,lat_p99_us,lat_max_us,queue_wait_max_us";

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, f))
}

/// The logging side of a sink.
#[derive(Debug)]
pub enum Recorder {
    /// `full` mode.
    Full(FullLog),
    /// `summary` mode.
    Summary(SummaryLog),
}

impl Recorder {
    /// Opens the files of `mode` for analyzer `id` in `dir`.
    pub fn open(mode: LogMode, dir: &Path, id: &str) -> anyhow::Result<Self> {
        Ok(match mode {
            LogMode::Full => Recorder::Full(FullLog::open(dir, id)?),
            LogMode::Summary => Recorder::Summary(SummaryLog::open(dir, id)?),
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
    pub fn finish(self, tracker: &Tracker, totals: &TotalsRow) -> anyhow::Result<()> {
        let dir = match self {
            Recorder::Full(f) => f.finish()?,
            Recorder::Summary(s) => s.finish(tracker)?,
        };
        totals.write(
            &dir.join(format!("totals-{}.csv", totals.id)),
            tracker.counts(),
        )
    }
}

/// `full` mode: a writer thread and the batch being filled.
#[derive(Debug)]
pub struct FullLog {
    dir: PathBuf,
    batch: Vec<Arrival>,
    tx: Option<SyncSender<Vec<Arrival>>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    written: Arc<AtomicU64>,
}

impl FullLog {
    fn open(dir: &Path, id: &str) -> anyhow::Result<Self> {
        let path = dir.join(format!("arrivals-{id}.csv"));
        let out = open_arrivals(&path)?;
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
fn open_arrivals(path: &Path) -> anyhow::Result<BufWriter<File>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let len = f.metadata()?.len();
    if len == 0 {
        let mut out = BufWriter::with_capacity(1 << 20, f);
        writeln!(out, "{ARRIVALS_HEADER}")?;
        out.flush()?;
        return Ok(out);
    }
    let mut head = vec![0u8; ARRIVALS_HEADER.len()];
    f.seek(SeekFrom::Start(0))?;
    f.read_exact(&mut head).ok();
    anyhow::ensure!(
        head == ARRIVALS_HEADER.as_bytes(),
        "{} exists with other columns; move it away or use another --out",
        path.display()
    );
    // Find the end of the last whole line.
    let tail_len = len.min(1 << 16);
    let mut tail = vec![0u8; tail_len as usize];
    f.seek(SeekFrom::Start(len - tail_len))?;
    f.read_exact(&mut tail)?;
    if let Some(pos) = tail.iter().rposition(|b| *b == b'\n') {
        let keep = len - tail_len + pos as u64 + 1;
        if keep < len {
            tracing::warn!(file = %path.display(), cut = len - keep, "cutting a partial last line left by a crash");
            f.set_len(keep)?;
        }
    }
    tracing::info!(file = %path.display(), "appending to the arrivals of an earlier run of this sink");
    Ok(BufWriter::with_capacity(1 << 20, f))
}

/// The writer thread: formats rows, flushes whenever it has caught up.
fn write_rows(
    rx: Receiver<Vec<Arrival>>,
    mut out: BufWriter<File>,
    written: &AtomicU64,
) -> std::io::Result<()> {
    let mut count = 0u64;
    let mut next = rx.recv().ok();
    while let Some(batch) = next {
        for a in &batch {
            write_row(&mut out, a)?;
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

fn write_row(out: &mut impl Write, a: &Arrival) -> std::io::Result<()> {
    match a.emitter {
        Some(e) => write!(out, "{},{},{},", a.arrival_ns, e, a.seq)?,
        None => write!(out, "{},,,", a.arrival_ns)?,
    }
    writeln!(
        out,
        "{},{},{},{},{},{},{},{}",
        a.priority,
        a.sent_ns,
        a.queued_ns,
        a.dispatch_ns,
        a.size,
        u8::from(a.crc_ok),
        u8::from(a.duplicate),
        a.session
    )
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
    // 3 significant digits, auto-resizing: exact enough for percentiles, mergeable.
    let mut h = Histogram::new(3)
        .map_err(|e| anyhow::anyhow!("cannot create a latency histogram: {e:?}"))?;
    h.auto(true);
    Ok(h)
}

/// `summary` mode.
#[derive(Debug)]
pub struct SummaryLog {
    dir: PathBuf,
    id: String,
    out: BufWriter<File>,
    second: u64,
    buckets: BTreeMap<u8, Bucket>,
    whole_run: BTreeMap<u8, Histogram<u64>>,
    recorded: u64,
}

impl SummaryLog {
    fn open(dir: &Path, id: &str) -> anyhow::Result<Self> {
        let mut out = create(&dir.join(format!("summary-{id}.csv")))?;
        writeln!(out, "{SUMMARY_HEADER}")?;
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
        self.roll(a.arrival_ns / 1_000_000_000)?;
        let b = match self.buckets.entry(a.priority) {
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
        b.duplicates += u64::from(a.duplicate);
        b.corrupt += u64::from(!a.crc_ok && a.emitter.is_some());
        b.non_probe += u64::from(a.emitter.is_none());
        b.inversions += u64::from(a.inverted);
        b.overtaken += u64::from(a.overtaken);
        if let Some(ns) = a.latency_ns() {
            let _ = b.latency_us.record(ns / 1000);
        }
        b.queue_wait_max_us = b
            .queue_wait_max_us
            .max(a.dispatch_ns.saturating_sub(a.queued_ns) / 1000);
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
            writeln!(
                self.out,
                "{},{p},{},{},{},{},{},{},{},{},{},{}",
                self.second,
                b.count,
                b.duplicates,
                b.corrupt,
                b.non_probe,
                b.inversions,
                b.overtaken,
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max(),
                b.queue_wait_max_us
            )?;
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
        let mut lat = create(&self.dir.join(format!("latency-{}.csv", self.id)))?;
        writeln!(
            lat,
            "priority,count,p50_us,p90_us,p99_us,p999_us,max_us,histogram"
        )?;
        let mut all = histogram()?;
        let rows = self
            .whole_run
            .iter()
            .map(|(p, h)| (p.to_string(), h.clone()));
        for (label, h) in rows.collect::<Vec<_>>() {
            let _ = all.add(&h);
            write_hist_row(&mut lat, &label, &h)?;
        }
        write_hist_row(&mut lat, "all", &all)?;
        lat.flush()?;
        let mut seqs = create(&self.dir.join(format!("seqs-{}.csv", self.id)))?;
        writeln!(seqs, "emitter,first,last")?;
        for (e, a, b) in tracker.ranges() {
            writeln!(seqs, "{e},{a},{b}")?;
        }
        seqs.flush()?;
        Ok(self.dir)
    }
}

fn write_hist_row(out: &mut impl Write, label: &str, h: &Histogram<u64>) -> anyhow::Result<()> {
    let mut raw = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut raw)
        .map_err(|e| anyhow::anyhow!("cannot serialize a latency histogram: {e:?}"))?;
    writeln!(
        out,
        "{label},{},{},{},{},{},{},{}",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        hex(&raw)
    )?;
    Ok(())
}

/// Lower-case hex, the encoding of the `histogram` column.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The header of `totals-<id>.csv`.
pub const TOTALS_HEADER: &str = "id,mode,received,unique,duplicates,corrupt,non_probe,inversions,overtaken,sessions,first_arrival_ns,last_arrival_ns";

/// The one-row `totals-<id>.csv`.
#[derive(Debug, Clone)]
pub struct TotalsRow {
    /// Analyzer id.
    pub id: String,
    /// Log mode.
    pub mode: LogMode,
    /// Sessions (connections that got past HELLO).
    pub sessions: u64,
    /// First and last arrival, ns.
    pub first_arrival_ns: u64,
    /// See `first_arrival_ns`.
    pub last_arrival_ns: u64,
}

impl TotalsRow {
    fn write(&self, path: &Path, c: Counts) -> anyhow::Result<()> {
        let mut out = create(path)?;
        writeln!(out, "{TOTALS_HEADER}")?;
        let mode = match self.mode {
            LogMode::Full => "full",
            LogMode::Summary => "summary",
        };
        writeln!(
            out,
            "{},{mode},{},{},{},{},{},{},{},{},{},{}",
            self.id,
            c.received,
            c.unique,
            c.duplicates,
            c.corrupt,
            c.non_probe,
            c.inversions,
            c.overtaken,
            self.sessions,
            self.first_arrival_ns,
            self.last_arrival_ns
        )?;
        out.flush()?;
        Ok(())
    }
}
