//! The disk journal (`--data-dir`): every frame taken is appended before it is secured, so
//! a distributor killed at any moment starts again with every frame it acknowledged.
//!
//! # Layout on disk
//!
//! `DIR/LOCK` holds the pid of the distributor using the directory (an advisory lock the
//! kernel releases when that process dies, however it dies). Frames go to segment files
//! `DIR/<id>.log` of about `--journal-segment-bytes` each, ids rising; beside each, a done
//! file `DIR/<id>.done` lists the records the distributor is done with. A segment whose
//! records are all done is deleted with its done file. [`record`] has the byte layout.
//!
//! # Flow
//!
//! Appending is a copy into a buffer under this module's lock, made by the core as it
//! takes a batch ([`Appender`]). One writer thread writes the buffer to the files, calls
//! fdatasync by the `--fsync` policy (group commit: one flush covers every frame appended
//! before it), and only then lets go of the emitters' [`Ticket`]s, which secures their
//! frames and sends the ACKs. Each frame inside the distributor carries a [`Mark`] whose
//! drop (the frame delivered, or dropped and counted) records it done; the writer appends
//! done marks to the done files (without flushing them: a lost done mark delivers a frame
//! twice, never zero times) and deletes finished segments.
//!
//! Each record's place is fixed when it is appended, and the writer writes every chunk at
//! its offset (pwrite), so a write that failed halfway is simply written again. The writer
//! falling [`MAX_PENDING_BYTES`] behind makes emitters wait. A failed fdatasync stops the
//! process: the kernel may have dropped the pages it could not write, so nothing since the
//! last good flush can be trusted, and no ACK was sent for it.
//!
//! A frame that finds no room in memory *spills*: the core keeps only its place in the
//! journal ([`Loc`]) and [`Journal::read`] brings it back when room frees. Recovery at
//! start ([`Journal::open`]) hands the core the place of every record not done, in journal
//! order, and the core treats them as spilled.
//!
//! Done marks are kept per segment so that any segment can be deleted as soon as it is
//! finished, whatever the order: no segment refers to another. Appends after a start always
//! open a new segment, so an offset is never used twice and a stale done mark can never
//! hide a new record.

pub mod record;
mod recovery;
mod writer;

pub use recovery::{JournalReadError, Recovered};

use crate::secured::Ticket;
use bytes::Bytes;
use runfolder::Fsync;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The place of a record: segment id in the high 32 bits, byte offset in the low 32.
/// Ordered as the journal is.
pub type Loc = u64;

/// The place of record `offset` in segment `seg`.
pub fn loc(seg: u32, offset: u32) -> Loc {
    (u64::from(seg) << 32) | u64::from(offset)
}

fn seg_of(l: Loc) -> u32 {
    (l >> 32) as u32
}

fn offset_of(l: Loc) -> u32 {
    l as u32
}

/// The journal's settings.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The data directory.
    pub dir: PathBuf,
    /// When to call fdatasync.
    pub fsync: Fsync,
    /// The group-commit period of [`Fsync::Interval`].
    pub fsync_interval: Duration,
    /// Bytes on disk (and about to be) at most; past it the overflow policy applies.
    pub max_bytes: u64,
    /// A segment is closed and a new one begun past this size.
    pub segment_bytes: u64,
}

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Another process holds the lock.
    #[error(
        "data directory {} is in use by another distributor (pid {pid}, lock file {})",
        dir.display(),
        dir.join(LOCK_FILE).display()
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// The pid the lock file names.
        pid: String,
    },
    /// An fdatasync failed: the kernel may have dropped the pages it could not write, so
    /// nothing written since the last good flush can be trusted (a second call may even
    /// succeed). The distributor stops as a crash would; no ACK was sent for those frames.
    #[error(
        "journal fdatasync failed in {}: {error}; nothing since the last good flush can be trusted (no ACK was sent for it): check the disk, then start the distributor again",
        dir.display()
    )]
    Fsync {
        /// The data directory.
        dir: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// A file operation failed.
    #[error("journal {}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
}

impl JournalError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |error| JournalError::Io {
            path: path.to_owned(),
            error,
        }
    }
}

/// Bytes appended and not yet written at most: past it emitters wait for the writer
/// (backpressure, whatever the overflow policy: the writer is behind, not the disk full).
/// Bounds the memory the journal takes when the disk is slower than the emitters.
pub const MAX_PENDING_BYTES: usize = 8 << 20;

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Counters of the journal, for the metrics and the stats CSV.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JournalStats {
    /// Bytes of every segment on disk, and of records about to be written.
    pub bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// `--journal-max-bytes`.
    pub max_bytes: u64,
    /// fdatasync calls.
    pub fsyncs: u64,
    /// Time spent in them, µs.
    pub fsync_us: u64,
    /// The longest of the last one to two seconds, µs.
    pub fsync_max_us: u64,
    /// Records found not done at start.
    pub recovered: u64,
    /// Torn tails cut off at start.
    pub torn: u64,
    /// Corrupt records met (at start or reading a frame back from disk).
    pub corrupt: u64,
    /// Writes to the journal's files that failed (each retried in place).
    pub write_errors: u64,
    /// Whether the last write failed for lack of space (ENOSPC, EDQUOT): nothing new is
    /// taken until a write succeeds again.
    pub disk_full: bool,
}

/// The disk journal, shared by the core (appends, marks), the writer thread and the spill
/// loader.
#[derive(Debug)]
pub struct Journal {
    inner: Arc<Inner>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Debug)]
struct Inner {
    cfg: JournalConfig,
    state: Mutex<State>,
    /// Wakes the writer: records appended (`always`, `never`) or closing.
    wake: Condvar,
    /// Every byte before this place is in the files (readable by [`Journal::read`]).
    written: AtomicU64,
    /// Wakes emitters waiting for room in a full journal.
    room: tokio::sync::Notify,
    /// Set once by the writer when an fdatasync fails; the journal takes nothing after.
    fatal: Mutex<Option<std::io::Error>>,
    /// Woken when `fatal` is set.
    failed: tokio::sync::Notify,
    /// Held for the process's life: the advisory lock on `DIR/LOCK`.
    _lock: File,
}

#[derive(Debug, Default)]
struct State {
    /// Records appended, not yet written, in order.
    pending: Vec<Chunk>,
    /// Bytes in `pending`.
    pending_bytes: usize,
    /// Tickets of the frames in `pending`: secured by the flush that covers them.
    tickets: Vec<Ticket>,
    /// The segment appends go to, and its size with what is pending.
    active: u32,
    active_len: u64,
    /// Every segment on disk or pending, by id.
    segments: BTreeMap<u32, Segment>,
    /// Bytes of every segment, pending included.
    bytes: u64,
    stats: JournalStats,
    fsync_max: FsyncMax,
    closing: bool,
    /// An fdatasync failed: nothing more is taken, no ticket is secured.
    failed: bool,
}

/// Whether an I/O error says the disk (or the quota) is full.
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || matches!(e.raw_os_error(), Some(n) if n == nix::libc::ENOSPC || n == nix::libc::EDQUOT)
}

/// The longest fdatasync over a window of one to two seconds: the current second's and the
/// previous one's.
#[derive(Debug, Default)]
struct FsyncMax {
    since: Option<std::time::Instant>,
    current: u64,
    previous: u64,
}

impl FsyncMax {
    const SECOND: Duration = Duration::from_secs(1);

    fn roll(&mut self, now: std::time::Instant) {
        let since = *self.since.get_or_insert(now);
        let age = now.saturating_duration_since(since);
        if age >= 2 * Self::SECOND {
            (self.previous, self.current) = (0, 0);
            self.since = Some(now);
        } else if age >= Self::SECOND {
            (self.previous, self.current) = (self.current, 0);
            self.since = Some(since + Self::SECOND);
        }
    }

    fn record(&mut self, us: u64, now: std::time::Instant) {
        self.roll(now);
        self.current = self.current.max(us);
    }

    fn read(&mut self, now: std::time::Instant) -> u64 {
        self.roll(now);
        self.current.max(self.previous)
    }
}

/// Bytes appended to one segment, not yet written, and where they go in its file.
#[derive(Debug)]
struct Chunk {
    seg: u32,
    /// Offset in the segment file: a write of the chunk lands there, so writing it again
    /// after a failure puts every record where its [`Loc`] says.
    start: u64,
    bytes: Vec<u8>,
}

impl Chunk {
    /// How many records it holds (a segment's header is none).
    fn records(&self) -> usize {
        let mut n = 0;
        let mut at = if self.start == 0 {
            record::SEGMENT_HEADER_LEN
        } else {
            0
        };
        while let Ok(Some(r)) = record::decode(&self.bytes, at) {
            n += 1;
            at += record::record_len(r.payload.len());
        }
        n
    }
}

#[derive(Debug, Default)]
struct Segment {
    /// Records not done.
    live: u64,
    /// Done marks not yet written to the done file.
    done: Vec<u32>,
    /// Bytes of the segment file, pending included.
    len: u64,
}

impl State {
    /// The record at `l` from the chunks not yet written, if it is there.
    fn pending_record(&self, l: Loc) -> Result<(u8, Bytes), JournalReadError> {
        let (seg, offset) = (seg_of(l), u64::from(offset_of(l)));
        let chunk = self
            .pending
            .iter()
            .find(|c| c.seg == seg && c.start <= offset && offset < c.start + c.bytes.len() as u64);
        let Some(c) = chunk else {
            // Being written right now: readable from the file in a moment.
            return Err(JournalReadError::NotYet);
        };
        match record::decode(&c.bytes, (offset - c.start) as usize) {
            Ok(Some(r)) => Ok((r.priority, Bytes::copy_from_slice(r.payload))),
            Ok(None) => Err(JournalReadError::PastEnd { seg, offset }),
            Err(bad) => Err(JournalReadError::Bad { seg, bad }),
        }
    }

    fn done(&mut self, l: Loc) {
        if let Some(s) = self.segments.get_mut(&seg_of(l)) {
            s.live = s.live.saturating_sub(1);
            s.done.push(offset_of(l));
        }
    }
}

impl Inner {
    /// The fatal error, if the writer stopped on one.
    fn fatal_error(&self) -> Option<JournalError> {
        let fatal = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        fatal.as_ref().map(|e| JournalError::Fsync {
            dir: self.cfg.dir.clone(),
            error: std::io::Error::new(e.kind(), e.to_string()),
        })
    }

    /// Records the writer's fatal error and wakes whoever waits for it.
    fn fail(&self, error: std::io::Error) {
        *self.fatal.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
        self.failed.notify_waiters();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Each update leaves the state whole; a panic elsewhere must not stop the journal.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, seg: u32, ext: &str) -> PathBuf {
        segment_path(&self.cfg.dir, seg, ext)
    }
}

fn segment_path(dir: &Path, seg: u32, ext: &str) -> PathBuf {
    dir.join(format!("{seg:010}.{ext}"))
}

impl Journal {
    /// Opens the journal in `cfg.dir` (made if missing): takes the lock, recovers what the
    /// last run left (torn tails cut, corrupt records counted and logged), and starts the
    /// writer thread. Returns the places of the records not done, in journal order.
    pub fn open(cfg: JournalConfig) -> Result<(Self, Recovered), JournalError> {
        std::fs::create_dir_all(&cfg.dir).map_err(JournalError::io(&cfg.dir))?;
        let lock = recovery::lock(&cfg.dir)?;
        let (state, recovered) = recovery::scan(&cfg.dir)?;
        let inner = Arc::new(Inner {
            cfg,
            state: Mutex::new(state),
            wake: Condvar::new(),
            written: AtomicU64::new(0),
            room: tokio::sync::Notify::new(),
            fatal: Mutex::new(None),
            failed: tokio::sync::Notify::new(),
            _lock: lock,
        });
        {
            let st = inner.state();
            inner.written.store(loc(st.active, 0), Ordering::Release);
        }
        let w = Arc::clone(&inner);
        let writer = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer::run(&w))
            .map_err(JournalError::io(&inner.cfg.dir))?;
        Ok((
            Self {
                inner,
                writer: Mutex::new(Some(writer)),
            },
            recovered,
        ))
    }

    /// Appends frames (the core calls this while it takes a batch).
    pub fn appender(&self) -> Appender<'_> {
        Appender {
            inner: &self.inner,
            state: self.inner.state(),
            appended: false,
        }
    }

    /// Every record before this place can be read back.
    pub fn written(&self) -> Loc {
        self.inner.written.load(Ordering::Acquire)
    }

    /// Resolves when the journal has failed for good (an fdatasync failed), with the error.
    pub async fn failed(&self) -> JournalError {
        loop {
            let woken = self.inner.failed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(e) = self.inner.fatal_error() {
                return e;
            }
            woken.await;
        }
    }

    /// Resolves when room may have freed in a full journal.
    pub async fn room(&self) {
        self.inner.room.notified().await;
    }

    /// A mark for a record recovered or read back: its drop records the record done.
    pub fn mark(&self, l: Loc) -> Mark {
        Mark {
            inner: Some(Arc::clone(&self.inner)),
            loc: l,
        }
    }

    /// The counters now.
    pub fn stats(&self) -> JournalStats {
        let mut st = self.inner.state();
        let mut s = st.stats;
        s.bytes = st.bytes;
        s.segments = st.segments.len() as u64;
        s.max_bytes = self.inner.cfg.max_bytes;
        s.fsync_max_us = st.fsync_max.read(std::time::Instant::now());
        s
    }

    /// Counts a corrupt record met reading a spilled frame back.
    pub fn corrupt(&self) {
        self.inner.state().stats.corrupt += 1;
    }

    /// Reads the records at `locs` (all written: below [`Journal::written`]): the priority
    /// and payload of each, or why it cannot be read. Blocking file I/O: call it off the
    /// async threads. Records of one segment that lie close together are read with one
    /// read.
    pub fn read(&self, locs: &[Loc]) -> Vec<Result<(u8, Bytes), JournalReadError>> {
        let written = self.written();
        let split = locs.partition_point(|l| *l < written);
        let mut out = recovery::read(&self.inner.cfg.dir, &locs[..split]);
        if split < locs.len() {
            // Not in the files yet (or not at all, while the disk is full): from the
            // records still in memory.
            let st = self.inner.state();
            out.extend(locs[split..].iter().map(|l| st.pending_record(*l)));
        }
        out
    }

    /// Writes and flushes what is pending, writes the done marks, and stops the writer
    /// (after a few tries when writes fail: what it could not write was never secured).
    /// Frames still in the distributor keep their records (see [`Mark::keep`]); those past
    /// [`Journal::written`] afterwards never reached the disk.
    pub fn close(&self) {
        self.inner.state().closing = true;
        self.inner.wake.notify_all();
        let handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle
            && h.join().is_err()
        {
            tracing::error!("the journal writer thread panicked");
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

/// Appends records while holding the journal's lock; the writer is woken when it goes.
///
/// A [`Mark`] dropped while an appender is held on the same thread would wait for the
/// lock forever: the core collects the frames it appends and handles them after.
pub struct Appender<'a> {
    inner: &'a Arc<Inner>,
    state: MutexGuard<'a, State>,
    appended: bool,
}

impl std::fmt::Debug for Appender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender")
            .field("active", &self.state.active)
            .finish_non_exhaustive()
    }
}

impl Appender<'_> {
    /// Whether a record of this payload fits under `--journal-max-bytes`, on a disk that
    /// takes writes (while it is full, nothing new is taken: it could not be secured).
    pub fn has_room(&self, payload_len: usize) -> bool {
        !self.state.stats.disk_full
            && self.state.bytes + record::record_len(payload_len) as u64 <= self.inner.cfg.max_bytes
    }

    /// Whether the writer is so far behind that appends must wait ([`MAX_PENDING_BYTES`]).
    pub fn behind(&self) -> bool {
        self.state.pending_bytes >= MAX_PENDING_BYTES || self.state.failed
    }

    /// Appends the record of a frame; its mark records it done when dropped.
    pub fn append(&mut self, priority: u8, payload: &[u8]) -> Mark {
        let need = record::record_len(payload.len()) as u64;
        let st = &mut *self.state;
        if st.active_len > record::SEGMENT_HEADER_LEN as u64
            && st.active_len + need > self.inner.cfg.segment_bytes
        {
            st.active += 1;
            st.active_len = 0;
        }
        if st.active_len == 0 {
            let header = record::segment_header();
            st.pending.push(Chunk {
                seg: st.active,
                start: 0,
                bytes: header.to_vec(),
            });
            st.pending_bytes += header.len();
            st.active_len = header.len() as u64;
            st.bytes += header.len() as u64;
            st.segments.entry(st.active).or_default().len = header.len() as u64;
        }
        let offset = st.active_len as u32;
        let buf = match st.pending.last_mut() {
            Some(c) if c.seg == st.active => &mut c.bytes,
            _ => {
                st.pending.push(Chunk {
                    seg: st.active,
                    start: st.active_len,
                    bytes: Vec::with_capacity(64 * 1024),
                });
                let last = st.pending.len() - 1;
                &mut st.pending[last].bytes
            }
        };
        record::encode(priority, payload, buf);
        st.pending_bytes += need as usize;
        st.active_len += need;
        st.bytes += need;
        let seg = st.segments.entry(st.active).or_default();
        seg.live += 1;
        seg.len += need;
        self.appended = true;
        Mark {
            inner: Some(Arc::clone(self.inner)),
            loc: loc(st.active, offset),
        }
    }

    /// Secures `ticket` when the records appended so far are flushed.
    pub fn secure_after_flush(&mut self, ticket: Ticket) {
        if self.state.failed {
            ticket.forfeit();
        } else {
            self.state.tickets.push(ticket);
        }
    }
}

impl Drop for Appender<'_> {
    fn drop(&mut self) {
        if self.appended && self.inner.cfg.fsync != Fsync::Interval {
            self.inner.wake.notify_one();
        }
    }
}

/// The claim of one frame on its journal record: dropped when the distributor is done
/// with the frame (delivered, or dropped and counted), which records the record done.
#[derive(Debug)]
pub struct Mark {
    inner: Option<Arc<Inner>>,
    loc: Loc,
}

impl Mark {
    /// Lets go of the frame without recording it done: its record stays for the spill
    /// loader or the next start.
    pub fn keep(mut self) -> Loc {
        self.inner = None;
        self.loc
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.state().done(self.loc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_longest_fsync_is_kept_for_one_to_two_seconds() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut m = FsyncMax::default();
        m.record(500, at(0));
        m.record(200, at(300));
        assert_eq!(m.read(at(900)), 500);
        // The next second keeps the previous one's longest beside its own.
        m.record(100, at(1_200));
        assert_eq!(m.read(at(1_500)), 500);
        // Past the second after it, only the newer second counts.
        assert_eq!(m.read(at(2_100)), 100);
        // Quiet for two seconds: nothing.
        assert_eq!(m.read(at(5_000)), 0);
    }

    #[test]
    fn places_order_as_the_journal_does() {
        assert!(loc(1, u32::MAX) < loc(2, 0));
        assert_eq!((seg_of(loc(7, 42)), offset_of(loc(7, 42))), (7, 42));
    }
}
