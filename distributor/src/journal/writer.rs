//! The journal's writer thread: writes what was appended, flushes by the `--fsync` policy,
//! secures the tickets the flush covers, writes done marks and deletes finished segments.
//!
//! A thread of its own, not a task: it spends its life in blocking `write` and
//! `fdatasync` calls, which would hold up a runtime worker on a two-core machine.

use super::{Inner, State, loc, segment_path};
use crate::secured::Ticket;
use runfolder::Fsync;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Without `interval`, how often the writer looks for done marks and finished segments
/// when nothing is appended.
const IDLE_PERIOD: Duration = Duration::from_millis(10);

/// After a failed write or flush, the wait before the next try.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// What one cycle takes from the state.
struct Work {
    pending: Vec<(u32, Vec<u8>)>,
    tickets: Vec<Ticket>,
    closing: bool,
}

/// Runs until [`super::Journal::close`]: one cycle per wake-up.
pub(super) fn run(inner: &Inner) {
    let mut files = Files::default();
    let mut next_sync = Instant::now() + inner.cfg.fsync_interval;
    loop {
        let work = wait(inner, next_sync);
        if inner.cfg.fsync == Fsync::Interval && Instant::now() >= next_sync {
            next_sync = Instant::now() + inner.cfg.fsync_interval;
        }
        let wrote = !work.pending.is_empty();
        let synced = match files.write(inner, &work.pending) {
            Ok(()) => {
                if wrote && inner.cfg.fsync != Fsync::Never {
                    files.sync(inner)
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e),
        };
        match synced {
            // The flush covers every ticket taken with these records: secured, ACKs follow.
            Ok(()) => drop(work.tickets),
            Err(e) => {
                tracing::error!(dir = %inner.cfg.dir.display(), error = %e, "journal write or flush failed; the frames stay unsecured and are tried again");
                give_back(inner, work.pending, work.tickets);
                std::thread::sleep(RETRY_AFTER);
                continue;
            }
        }
        finish_segments(inner, &mut files);
        if work.closing {
            return;
        }
    }
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
fn give_back(inner: &Inner, mut pending: Vec<(u32, Vec<u8>)>, mut tickets: Vec<Ticket>) {
    let mut st = inner.state();
    st.pending_bytes += pending.iter().map(|(_, b)| b.len()).sum::<usize>();
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
    fn write(&mut self, inner: &Inner, pending: &[(u32, Vec<u8>)]) -> std::io::Result<()> {
        for (seg, bytes) in pending {
            let file = match self.open.entry(*seg) {
                std::collections::btree_map::Entry::Occupied(f) => f.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let path = inner.path(*seg, "log");
                    let f = OpenOptions::new().create(true).append(true).open(&path)?;
                    self.made = true;
                    v.insert(f)
                }
            };
            file.write_all(bytes)?;
            if !self.dirty.contains(seg) {
                self.dirty.push(*seg);
            }
            let end = file.metadata()?.len();
            inner.written.store(loc(*seg, end as u32), Ordering::Release);
        }
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
/// records are all done (never the active one, nor one with records still pending).
fn finish_segments(inner: &Inner, files: &mut Files) {
    let (marks, finished) = {
        let mut st = inner.state();
        let finished = finished(&mut st);
        let marks: Vec<(u32, Vec<u32>)> = st
            .segments
            .iter_mut()
            .filter(|(_, s)| !s.done.is_empty())
            .map(|(id, s)| (*id, std::mem::take(&mut s.done)))
            .collect();
        let active = st.active;
        files.open.retain(|id, _| *id == active || files.dirty.contains(id));
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

/// Takes the finished segments out of the state: every record done, not the active
/// segment, nothing pending.
fn finished(st: &mut State) -> Vec<u32> {
    let ids: Vec<u32> = st
        .segments
        .iter()
        .filter(|(id, s)| {
            s.live == 0 && **id != st.active && !st.pending.iter().any(|(p, _)| p == *id)
        })
        .map(|(id, _)| *id)
        .collect();
    for id in &ids {
        if let Some(s) = st.segments.remove(id) {
            st.bytes -= s.len;
        }
    }
    ids
}
