//! Opening a data directory: the lock, and the scan of what the last run left. Also the
//! reads of spilled records, which walk the same files.

use super::record::{self, Bad};
use super::{JournalError, LOCK_FILE, Loc, Segment, State, loc, offset_of, seg_of, segment_path};
use bytes::Bytes;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

/// What the last run left: the records not done, in journal order.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Place, priority and payload length of each record not done.
    pub frames: Vec<(Loc, u8, u32)>,
}

/// Takes the data directory's lock and writes this process's pid into it. The lock is the
/// kernel's (flock), so it goes with the process however it ends, and a lock file left by
/// a killed distributor does not stop the next one.
pub(super) fn lock(dir: &Path) -> Result<File, JournalError> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(JournalError::io(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(JournalError::Locked {
                dir: dir.to_owned(),
                pid: match pid.trim() {
                    "" => "unknown".into(),
                    p => p.to_owned(),
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(JournalError::io(&path)(e)),
    }
    let write_pid = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        writeln!(f, "{}", std::process::id())?;
        f.sync_data()
    };
    write_pid(&mut file).map_err(JournalError::io(&path))?;
    Ok(file)
}

/// The segment ids in `dir`, ascending. Done files whose segment is gone (a deletion cut
/// short by a crash) are removed.
fn segment_ids(dir: &Path) -> Result<Vec<u32>, JournalError> {
    let mut ids = Vec::new();
    let mut done = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(JournalError::io(dir))? {
        let entry = entry.map_err(JournalError::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let (stem, list) = match (name.strip_suffix(".log"), name.strip_suffix(".done")) {
            (Some(stem), _) => (stem, &mut ids),
            (_, Some(stem)) => (stem, &mut done),
            _ => continue,
        };
        if let Ok(id) = stem.parse::<u32>() {
            list.push(id);
        }
    }
    ids.sort_unstable();
    for id in done.into_iter().filter(|id| ids.binary_search(id).is_err()) {
        let _ = std::fs::remove_file(segment_path(dir, id, "done"));
    }
    Ok(ids)
}

/// Reads every segment: the records not done become [`Recovered`], torn tails are cut off,
/// a corrupt record ends its segment's recovery (logged with file and offset, counted).
/// Segments with nothing left are deleted. Appends go to a new segment after the last.
pub(super) fn scan(dir: &Path) -> Result<(State, Recovered), JournalError> {
    let mut st = State::default();
    let mut recovered = Recovered::default();
    let ids = segment_ids(dir)?;
    for &id in &ids {
        let path = segment_path(dir, id, "log");
        let bytes = std::fs::read(&path).map_err(JournalError::io(&path))?;
        let done = done_marks(dir, id);
        let (live, end) = segment(&path, &bytes, &done, &mut recovered, &mut st);
        if live == 0 {
            for ext in ["log", "done"] {
                let _ = std::fs::remove_file(segment_path(dir, id, ext));
            }
            continue;
        }
        st.segments.insert(
            id,
            Segment {
                live,
                done: Vec::new(),
                len: bytes.len().min(end) as u64,
            },
        );
        st.bytes += bytes.len().min(end) as u64;
    }
    st.active = ids.last().map_or(1, |last| last + 1);
    st.stats.recovered = recovered.frames.len() as u64;
    if !ids.is_empty() {
        tracing::info!(
            dir = %dir.display(),
            segments = ids.len(),
            kept = st.segments.len(),
            recovered = recovered.frames.len(),
            torn = st.stats.torn,
            corrupt = st.stats.corrupt,
            "journal recovered"
        );
    }
    Ok((st, recovered))
}

/// The done marks of segment `id`, sorted; a bad batch ends them (its frames are then
/// delivered again: duplicates, never losses).
fn done_marks(dir: &Path, id: u32) -> Vec<u32> {
    let path = segment_path(dir, id, "done");
    let mut marks = Vec::new();
    if let Ok(bytes) = std::fs::read(&path)
        && let Some(bad) = record::decode_done(&bytes, &mut marks)
    {
        tracing::warn!(file = %path.display(), %bad, "done marks end early; the frames after them are delivered again");
    }
    marks.sort_unstable();
    marks
}

/// Recovers one segment: returns its records not done and where its good bytes end.
fn segment(
    path: &Path,
    bytes: &[u8],
    done: &[u32],
    recovered: &mut Recovered,
    st: &mut State,
) -> (u64, usize) {
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or_default();
    if let Err(bad) = record::check_header(bytes) {
        return match bad {
            Bad::Torn { .. } => (0, 0),
            Bad::Corrupt { .. } => {
                st.stats.corrupt += 1;
                tracing::error!(file = %path.display(), offset = 0, %bad, "journal segment unreadable; its frames are lost");
                (0, 0)
            }
        };
    }
    let mut at = record::SEGMENT_HEADER_LEN;
    let mut live = 0;
    loop {
        match record::decode(bytes, at) {
            Ok(None) => return (live, at),
            Ok(Some(r)) => {
                if done.binary_search(&r.offset).is_err() {
                    live += 1;
                    recovered
                        .frames
                        .push((loc(id, r.offset), r.priority, r.payload.len() as u32));
                }
                at += record::record_len(r.payload.len());
            }
            Err(bad @ Bad::Torn { .. }) => {
                st.stats.torn += 1;
                let cut = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(at as u64).and_then(|()| f.sync_data()));
                match cut {
                    Ok(()) => {
                        tracing::warn!(file = %path.display(), offset = at, %bad, "torn tail cut off (a write the crash interrupted; never acknowledged)")
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), offset = at, %bad, error = %e, "torn tail found; cannot cut it off (the segment is never appended to again)")
                    }
                }
                return (live, at);
            }
            Err(bad @ Bad::Corrupt { .. }) => {
                st.stats.corrupt += 1;
                tracing::error!(file = %path.display(), offset = at, %bad, "corrupt journal record: the rest of this segment is not recovered");
                return (live, bytes.len());
            }
        }
    }
}

/// Why a record waiting on disk could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum JournalReadError {
    /// Its segment file cannot be opened.
    #[error("{}: {error}", path.display())]
    Open {
        /// The segment file.
        path: std::path::PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// Reading it failed.
    #[error("segment {seg} offset {offset}: {error}")]
    Read {
        /// The segment.
        seg: u32,
        /// The record's offset.
        offset: u64,
        /// The error.
        error: std::io::Error,
    },
    /// The file ends before the record begins.
    #[error("segment {seg} offset {offset}: past the end of the file")]
    PastEnd {
        /// The segment.
        seg: u32,
        /// The record's offset.
        offset: u64,
    },
    /// Being written at this moment: neither in memory nor in the file (try again).
    #[error("being written")]
    NotYet,
    /// The task reading it failed before it was read (logged with its cause).
    #[error("the task reading it back failed")]
    Interrupted,
    /// The bytes there are not a whole, valid record.
    #[error("segment {seg}: {bad}")]
    Bad {
        /// The segment.
        seg: u32,
        /// What is wrong.
        bad: Bad,
    },
}

/// Reads records waiting on disk back: see [`super::Journal::read`].
pub(super) fn read(dir: &Path, locs: &[Loc]) -> Vec<Result<(u8, Bytes), JournalReadError>> {
    /// Records closer than this to the previous one are read in the same read.
    const SPAN: u64 = 256 * 1024;
    let mut out = Vec::with_capacity(locs.len());
    let mut file: Option<(u32, File)> = None;
    // A window of the current file: its start and bytes.
    let mut window: (u64, Vec<u8>) = (0, Vec::new());
    for &l in locs {
        let (seg, offset) = (seg_of(l), u64::from(offset_of(l)));
        if file.as_ref().is_none_or(|(s, _)| *s != seg) {
            let path = segment_path(dir, seg, "log");
            match File::open(&path) {
                Ok(f) => file = Some((seg, f)),
                Err(error) => {
                    file = None;
                    out.push(Err(JournalReadError::Open { path, error }));
                    continue;
                }
            }
            window = (0, Vec::new());
        }
        let Some((_, f)) = &file else { continue };
        let in_window = offset >= window.0 && offset + 8 <= window.0 + window.1.len() as u64;
        if !in_window {
            let mut buf = vec![0; SPAN as usize];
            match f.read_at(&mut buf, offset) {
                Ok(n) => buf.truncate(n),
                Err(error) => {
                    out.push(Err(JournalReadError::Read { seg, offset, error }));
                    continue;
                }
            }
            window = (offset, buf);
        }
        let at = (offset - window.0) as usize;
        let got = match record::decode(&window.1, at) {
            Ok(Some(r)) => Ok((r.priority, Bytes::copy_from_slice(r.payload))),
            Ok(None) => Err(JournalReadError::PastEnd { seg, offset }),
            Err(Bad::Torn { need, .. }) => {
                // Longer than the window: read it whole on its own.
                let mut buf = vec![0; need as usize];
                match f.read_exact_at(&mut buf, offset) {
                    Ok(()) => match record::decode(&buf, 0) {
                        Ok(Some(r)) => Ok((r.priority, Bytes::copy_from_slice(r.payload))),
                        Ok(None) => Err(JournalReadError::PastEnd { seg, offset }),
                        Err(bad) => Err(JournalReadError::Bad { seg, bad }),
                    },
                    Err(error) => Err(JournalReadError::Read { seg, offset, error }),
                }
            }
            Err(bad) => Err(JournalReadError::Bad { seg, bad }),
        };
        out.push(got);
    }
    out
}
