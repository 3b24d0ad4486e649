//! The journal's writer thread: writes what was appended, flushes by the `--fsync` policy,
//! secures the tickets the flush covers, writes done marks and deletes finished segments.
//!
//! A thread of its own, not a task: it spends its life in blocking `write` and
//! `fdatasync` calls, which would hold up a runtime worker on a two-core machine.

use super::{Chunk, Inner, State, loc, record, segment_path};
use crate::secured::Ticket;
use runfolder::Fsync;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Without `interval`, how often the writer looks for done marks and finished segments
/// when nothing is appended.
const IDLE_PERIOD: Duration = Duration::from_millis(10);

/// After a failed write or flush, the wait before the next try.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// While writes keep failing, how often that is logged again.
const ERROR_EVERY: Duration = Duration::from_secs(10);

/// What one cycle takes from the state.
struct Work {
    pending: Vec<Chunk>,
    tickets: Vec<Ticket>,
    closing: bool,
}

/// Runs until [`super::Journal::close`]: one cycle per wake-up.
pub(super) fn run(inner: &Inner) {
    let mut files = Files::default();
    let mut next_sync = Instant::now() + inner.cfg.fsync_interval;
    let mut last_error: Option<Instant> = None;
    let mut failed_at_close = 0;
    loop {
        let work = wait(inner, next_sync);
        if inner.cfg.fsync == Fsync::Interval && Instant::now() >= next_sync {
            next_sync = Instant::now() + inner.cfg.fsync_interval;
        }
        let wrote = !work.pending.is_empty();
        if let Err((first_unwritten, e)) = files.write(inner, &work.pending) {
            let full = super::is_disk_full(&e);
            {
                let mut st = inner.state();
                st.stats.write_errors += 1;
                st.stats.disk_full = full;
            }
            // A full or failing disk: said at once, then every 10 s while it lasts.
            if last_error.is_none_or(|t: Instant| t.elapsed() >= ERROR_EVERY) {
                last_error = Some(Instant::now());
                tracing::error!(dir = %inner.cfg.dir.display(), error = %e, disk_full = full, "journal write failed; new frames are not taken (their emitters wait, or they are dropped as journal_full), the frames inside are still delivered, and the write is tried again every 100 ms");
            }
            let mut pending = work.pending;
            give_back(inner, pending.split_off(first_unwritten), work.tickets);
            // Delivery goes on meanwhile: done marks and finished segments free space.
            finish_segments(inner, &mut files, false);
            if work.closing {
                failed_at_close += 1;
                if failed_at_close >= CLOSE_TRIES {
                    give_up(inner);
                    return;
                }
            }
            std::thread::sleep(RETRY_AFTER);
            continue;
        }
        if wrote
            && inner.cfg.fsync != Fsync::Never
            && let Err(e) = files.sync(inner)
        {
            // After a failed fdatasync the kernel may have dropped the dirty pages and a
            // second call may still succeed: nothing written since the last good flush can
            // be trusted to be on disk. Stop as a crash would (the server ends the process
            // with the error, exit 74): no ACK is sent for those frames, the emitters send
            // them again, and a restart recovers what is on disk.
            // The tickets of what it did not flush are never secured: no ACK goes out.
            for t in work.tickets {
                t.forfeit();
            }
            let late = {
                let mut st = inner.state();
                st.failed = true;
                std::mem::take(&mut st.tickets)
            };
            for t in late {
                t.forfeit();
            }
            inner.fail(e);
            return;
        }
        // The flush covers every ticket taken with these records: secured, ACKs follow.
        drop(work.tickets);
        if last_error.take().is_some() {
            inner.state().stats.disk_full = false;
            inner.room.notify_waiters();
            tracing::info!(dir = %inner.cfg.dir.display(), "journal writes succeed again; new frames are taken again");
        }
        finish_segments(inner, &mut files, work.closing);
        if work.closing {
            return;
        }
    }
}

/// At shutdown, how many failed write cycles (100 ms apart) before the writer gives up.
const CLOSE_TRIES: u32 = 10;

/// The disk took nothing at shutdown: the records still in memory are given up. Their
/// frames were never secured (no ACK went out); the server counts those still inside as
/// dropped. Their tickets are forfeited.
fn give_up(inner: &Inner) {
    let (records, tickets) = {
        let mut st = inner.state();
        st.pending_bytes = 0;
        let records: usize = st.pending.iter().map(|c| c.records()).sum();
        st.pending.clear();
        (records, std::mem::take(&mut st.tickets))
    };
    for t in tickets {
        t.forfeit();
    }
    tracing::error!(dir = %inner.cfg.dir.display(), records, "journal writes still fail at shutdown: records never written are given up (their frames were never acknowledged)");
}

/// Waits for the next cycle (the interval's tick, or records appended, or closing) and
/// takes what is pending.
fn wait(inner: &Inner, next_sync: Instant) -> Work {
    let mut st = inner.state();
    while !st.closing {
        let now = Instant::now();
        let until = match inner.cfg.fsync {
            Fsync::Interval => next_sync,
            Fsync::Always | Fsync::Never if !st.pending.is_empty() => break,
            Fsync::Always | Fsync::Never => now + IDLE_PERIOD,
        };
        if now >= until {
            break;
        }
        let (guard, timeout) = inner
            .wake
            .wait_timeout(st, until - now)
            .unwrap_or_else(|e| e.into_inner());
        st = guard;
        if timeout.timed_out() && inner.cfg.fsync != Fsync::Interval {
            break;
        }
    }
    let was_behind = st.pending_bytes >= super::MAX_PENDING_BYTES;
    st.pending_bytes = 0;
    let work = Work {
        pending: std::mem::take(&mut st.pending),
        tickets: std::mem::take(&mut st.tickets),
        closing: st.closing,
    };
    drop(st);
    if was_behind {
        inner.room.notify_waiters();
    }
    work
}

/// Puts records that could not be written back in front of the ones appended since.
fn give_back(inner: &Inner, mut pending: Vec<Chunk>, mut tickets: Vec<Ticket>) {
    let mut st = inner.state();
    st.pending_bytes += pending.iter().map(|c| c.bytes.len()).sum::<usize>();
    pending.append(&mut st.pending);
    st.pending = pending;
    tickets.append(&mut st.tickets);
    st.tickets = tickets;
}

/// The segment files written since the last flush, and the active one.
#[derive(Default)]
struct Files {
    open: BTreeMap<u32, File>,
    /// Written since the last flush.
    dirty: Vec<u32>,
    /// A segment file was made since the last flush: its directory entry needs one too.
    made: bool,
}

impl Files {
    /// Writes each chunk at its offset, in order. On an error returns the index of the
    /// first chunk not (wholly) written: writing it again later puts the same bytes in the
    /// same place, so a partial write cannot shift a record.
    fn write(&mut self, inner: &Inner, pending: &[Chunk]) -> Result<(), (usize, std::io::Error)> {
        for (i, c) in pending.iter().enumerate() {
            self.write_one(inner, c).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    fn write_one(&mut self, inner: &Inner, c: &Chunk) -> std::io::Result<()> {
        let file = match self.open.entry(c.seg) {
            std::collections::btree_map::Entry::Occupied(f) => f.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let path = inner.path(c.seg, "log");
                let f = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)?;
                self.made = true;
                v.insert(f)
            }
        };
        file.write_all_at(&c.bytes, c.start)?;
        if !self.dirty.contains(&c.seg) {
            self.dirty.push(c.seg);
        }
        let end = c.start + c.bytes.len() as u64;
        inner
            .written
            .store(loc(c.seg, end as u32), Ordering::Release);
        Ok(())
    }

    /// fdatasync of every file written since the last one (and of the directory after a
    /// new segment), timed.
    fn sync(&mut self, inner: &Inner) -> std::io::Result<()> {
        let start = Instant::now();
        for seg in &self.dirty {
            if let Some(f) = self.open.get(seg) {
                f.sync_data()?;
            }
        }
        if self.made {
            File::open(&inner.cfg.dir)?.sync_all()?;
            self.made = false;
        }
        self.dirty.clear();
        let us = start.elapsed().as_micros() as u64;
        let mut st = inner.state();
        st.stats.fsyncs += 1;
        st.stats.fsync_us += us;
        st.fsync_max.record(us, Instant::now());
        Ok(())
    }
}

/// Writes the done marks gathered since the last cycle and deletes the segments whose
/// records are all done (not one with records still pending, nor the active one until the
/// journal closes).
fn finish_segments(inner: &Inner, files: &mut Files, closing: bool) {
    let (marks, finished) = {
        let mut st = inner.state();
        let finished = finished(&mut st, closing, inner.cfg.segment_bytes);
        let marks: Vec<(u32, Vec<u32>)> = st
            .segments
            .iter_mut()
            .filter(|(_, s)| !s.done.is_empty())
            .map(|(id, s)| (*id, std::mem::take(&mut s.done)))
            .collect();
        let active = st.active;
        files
            .open
            .retain(|id, _| *id == active || files.dirty.contains(id));
        (marks, finished)
    };
    let mut buf = Vec::new();
    for (seg, offsets) in marks {
        buf.clear();
        super::record::encode_done(&offsets, &mut buf);
        let path = inner.path(seg, "done");
        let appended = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&buf));
        if let Err(e) = appended {
            // Only costs duplicates after a restart: these frames would be delivered again.
            tracing::warn!(file = %path.display(), error = %e, "cannot write done marks");
        }
    }
    for seg in &finished {
        files.open.remove(seg);
        for ext in ["log", "done"] {
            let path = segment_path(&inner.cfg.dir, *seg, ext);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot delete a finished journal file")
                }
            }
        }
    }
    if !finished.is_empty() {
        inner.room.notify_waiters();
    }
}

/// Takes the finished segments out of the state: every record done and nothing pending
/// (chunks of a segment whose records are all done are not worth writing: dropped). The
/// active segment is finished too once all its records are done (appends go on in a new
/// one), so that a journal whose frames were all delivered frees its disk even while the
/// disk is full.
fn finished(st: &mut State, closing: bool, segment_bytes: u64) -> Vec<u32> {
    let done: Vec<u32> = st
        .segments
        .iter()
        .filter(|(_, s)| s.live == 0)
        .map(|(id, _)| *id)
        .collect();
    let before = st.pending.len();
    st.pending.retain(|c| !done.contains(&c.seg));
    if st.pending.len() != before {
        st.pending_bytes = st.pending.iter().map(|c| c.bytes.len()).sum();
    }
    let active = st.active;
    // The active segment only once it holds a good part of a segment (or the disk is
    // full): rotating after every group commit would make a file per commit.
    let rotate = st.active_len > record::SEGMENT_HEADER_LEN as u64
        && (st.stats.disk_full || st.active_len >= segment_bytes / 4);
    let ids: Vec<u32> = done
        .into_iter()
        .filter(|id| closing || *id != active || rotate)
        .collect();
    for id in &ids {
        if let Some(s) = st.segments.remove(id) {
            st.bytes -= s.len;
        }
    }
    if ids.contains(&active) {
        st.active += 1;
        st.active_len = 0;
    }
    ids
}
