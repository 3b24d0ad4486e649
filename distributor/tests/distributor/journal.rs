//! The disk journal through the shipped binary: frames acknowledged to an emitter survive
//! SIGKILL, come back by priority, a torn tail and a corrupt record are handled and counted,
//! the lock keeps a second distributor out, frames without room wait on disk, and a full
//! journal meets the overflow policy.

use crate::support::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Bytes of one probe payload in these tests, and of its journal record.
const SIZE: usize = 64;
const RECORD: u64 = 8 + 1 + SIZE as u64;

fn data_dir(dir: &Path) -> String {
    dir.join("data").display().to_string()
}

/// Sends `priorities` (seqs from 0) from an acknowledged emitter and waits until all are
/// secured, which with a journal means flushed to disk.
async fn send_secured(p: &Process, emitter: u32, priorities: &[u8]) {
    let mut wire = emitter_hello(&format!("e{emitter}"), true);
    wire.extend_from_slice(&log_stream(emitter, priorities.iter().copied(), SIZE));
    let mut e = connect(p.emitter, None, &wire).await;
    let n = priorities.len() as u64;
    assert!(
        Replies::new().until(&mut e, n, SECS(10)).await,
        "all {n} frames secured"
    );
}

/// The segment files in `dir`, in order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secured_frames_survive_sigkill_and_come_back_by_priority() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let args = ["--data-dir", data.as_str()];
    let p = Process::start(&args, None);
    // No analyzer: every frame waits on disk. Four priorities, interleaved.
    let priorities: Vec<u8> = (0..400).map(|i| [3, 0, 2, 1][i % 4]).collect();
    send_secured(&p, 1, &priorities).await;
    p.kill();

    let p = Process::start(&args, None);
    assert_eq!(
        p.metric("distributor_recovered_frames_total", "").await,
        400.0
    );
    assert_eq!(p.metric("distributor_disk_waiting_frames", "").await, 400.0);
    let mut a = Analyzer::connect(p.analyzer, "a", 1.0, true).await;
    assert!(a.recv_until(400, SECS(10)).await, "got {}", a.got.len());
    a.ack(400).await;
    // Most urgent first; within a priority, in the order they were sent.
    let order: Vec<(u8, u64)> = a.got.iter().map(|g| (g.priority, g.seq)).collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(
        order, sorted,
        "recovered frames delivered by priority, then seq"
    );
    assert_eq!(sorted.len(), 400);
    assert!(sorted.windows(2).all(|w| w[0].1 != w[1].1), "no seq twice");
    p.wait_metric("distributor_disk_waiting_frames", "", |v| v == 0.0)
        .await;
    // Every record done: the writer deletes the segments.
    p.wait_metric("distributor_journal_segments", "", |v| v == 0.0)
        .await;
    p.stop();
    assert!(segments(&tmp.path().join("data")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_and_a_corrupt_record_ends_its_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    // Small segments: the 300 frames span several.
    let args = [
        "--data-dir",
        data.as_str(),
        "--journal-segment-bytes",
        "4096",
    ];
    let p = Process::start(&args, None);
    send_secured(&p, 1, &[7; 300]).await;
    p.kill();

    let dir = tmp.path().join("data");
    let files = segments(&dir);
    assert!(files.len() >= 3, "{files:?}");
    let per_segment = (std::fs::metadata(&files[0]).unwrap().len() - 8) / RECORD;
    // Record 10 of the first segment: one payload byte changed.
    let bad_at = 8 + 10 * RECORD;
    let mut first = std::fs::read(&files[0]).unwrap();
    first[(bad_at + 8 + 1 + 20) as usize] ^= 0xff;
    std::fs::write(&files[0], &first).unwrap();
    // The last record of the last segment cut short, as by a crash mid-write.
    let last = files.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(last).unwrap();
    f.set_len(len - 30).unwrap();
    drop(f);
    let lost_corrupt = per_segment - 10;
    let expected = 300 - lost_corrupt - 1;

    let p = Process::start(&args, None);
    assert_eq!(
        p.metric("distributor_recovered_frames_total", "").await,
        expected as f64
    );
    assert_eq!(
        p.metric("distributor_journal_corrupt_records_total", "")
            .await,
        1.0
    );
    assert_eq!(
        p.metric("distributor_journal_torn_tails_total", "").await,
        1.0
    );
    assert_eq!(
        std::fs::metadata(last).unwrap().len(),
        len - RECORD,
        "the torn record is cut off at its start"
    );
    let log = p.log();
    let first_name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        log.iter().any(|l| l.contains("corrupt journal record")
            && l.contains(&first_name)
            && l.contains(&format!("offset={bad_at}"))),
        "the corrupt record is logged with its file and offset: {log:#?}"
    );
    let mut a = Analyzer::connect(p.analyzer, "a", 1.0, false).await;
    assert!(a.recv_until(expected as usize, SECS(10)).await);
    a.recv_quiet(Duration::from_millis(300)).await;
    let seqs: Vec<u64> = a.got.iter().map(|g| g.seq).collect();
    let want: Vec<u64> = (0..10).chain(per_segment..299).collect();
    assert_eq!(
        seqs, want,
        "the records before the corrupt one and after its segment"
    );
    p.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_distributor_on_the_same_data_dir_refuses_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let p = Process::start(&["--data-dir", data.as_str()], None);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_distributor"))
        .args([
            "--emitter-listen",
            "127.0.0.1:0",
            "--analyzer-listen",
            "127.0.0.1:0",
        ])
        .args(["--data-dir", data.as_str()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("in use by another distributor (pid {}", p.pid()))
            && err.contains("LOCK"),
        "{err}"
    );
    // A lock left by a killed distributor does not stop the next one.
    p.kill();
    let p = Process::start(&["--data-dir", data.as_str()], None);
    p.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_without_room_wait_on_disk_and_memory_stays_small() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    // Room in memory for a few hundred frames; the analyzer takes 100 and stops reading.
    let p = Process::start(
        &[
            "--data-dir",
            data.as_str(),
            "--queue-capacity",
            "100",
            "--ack-window",
            "100",
            "--hang-timeout",
            "60",
        ],
        None,
    );
    let mut a = Analyzer::connect(p.analyzer, "a", 1.0, true).await;
    p.wait_metric("distributor_analyzer_live", "", |v| v == 1.0)
        .await;
    // 100,000 frames of 1 KB: 100 MB of backlog, all secured without backpressure.
    let n = 100_000;
    let mut wire = emitter_hello("big", true);
    let priorities: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    wire.extend_from_slice(&log_stream(1, priorities, 1024));
    let mut e = connect(p.emitter, None, &wire).await;
    assert!(Replies::new().until(&mut e, n as u64, SECS(30)).await);
    let waiting = p.metric("distributor_disk_waiting_frames", "").await;
    assert!(waiting >= (n - 400) as f64, "{waiting} frames on disk");
    let rss = p.memory("VmHWM");
    assert!(
        rss < 64 << 20,
        "peak RSS {} MiB with a 100 MB backlog on disk",
        rss >> 20
    );
    // The analyzer reads and acknowledges everything: each frame once, the disk empties.
    let mut acked = 0;
    while a.got.len() < n {
        assert!(
            a.recv_until((acked + 100).min(n), SECS(10)).await,
            "stalled at {}",
            a.got.len()
        );
        acked = a.got.len();
        a.ack(acked as u64).await;
    }
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for g in &a.got {
        *seen.entry(g.seq).or_default() += 1;
    }
    assert_eq!(seen.len(), n, "every frame");
    assert!(seen.values().all(|c| *c == 1), "once");
    p.wait_metric("distributor_disk_waiting_frames", "", |v| v == 0.0)
        .await;
    let spilled = p.metric("distributor_disk_spilled_frames_total", "").await;
    assert!(spilled >= (n - 400) as f64, "{spilled} frames spilled");
    drop(e);
    p.stop();
    // Everything delivered: a clean stop leaves no segment behind, the active one included.
    assert_eq!(segments(&tmp.path().join("data")), Vec::<PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_drops_and_counts_under_overflow_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    // Room for 16 KiB of journal: about 220 records of 73 bytes.
    let p = Process::start(
        &[
            "--data-dir",
            data.as_str(),
            "--journal-segment-bytes",
            "4096",
            "--journal-max-bytes",
            "16384",
            "--overflow",
            "drop",
        ],
        None,
    );
    // Dropped and counted is secured: every frame gets its ACK.
    send_secured(&p, 1, &[4; 1000]).await;
    let dropped = p
        .metric(
            "distributor_dropped_frames_total",
            "reason=\"journal_full\"",
        )
        .await;
    let waiting = p.metric("distributor_disk_waiting_frames", "").await;
    assert!(dropped > 700.0, "{dropped}");
    assert_eq!(dropped + waiting, 1000.0, "each frame journaled or dropped");
    let bytes = p.metric("distributor_journal_bytes", "").await;
    assert!(bytes <= 16384.0, "{bytes}");
    let mut a = Analyzer::connect(p.analyzer, "a", 1.0, false).await;
    assert!(a.recv_until(waiting as usize, SECS(10)).await);
    p.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fsync_policy_secures_what_it_writes() {
    for (policy, flushes) in [("always", true), ("interval", true), ("never", false)] {
        let tmp = tempfile::tempdir().unwrap();
        let data = data_dir(tmp.path());
        let p = Process::start(&["--data-dir", data.as_str(), "--fsync", policy], None);
        send_secured(&p, 1, &[2; 500]).await;
        let fsyncs = p.metric("distributor_journal_fsyncs_total", "").await;
        assert_eq!(fsyncs > 0.0, flushes, "{policy}: {fsyncs} fsyncs");
        p.kill();
        // Whatever the policy, a crash of the process keeps what was ACKed.
        let p = Process::start(&["--data-dir", data.as_str()], None);
        assert_eq!(
            p.metric("distributor_recovered_frames_total", "").await,
            500.0,
            "{policy}"
        );
        p.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spilled_record_that_went_bad_is_dropped_and_counted_the_rest_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let p = Process::start(&["--data-dir", data.as_str()], None);
    // No analyzer: the 100 frames wait on disk.
    send_secured(&p, 1, &[1; 100]).await;
    let files = segments(&tmp.path().join("data"));
    assert_eq!(files.len(), 1);
    // Record 42's payload changes under the running distributor.
    let at = 8 + 42 * RECORD + 8 + 1 + 30;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .unwrap();
    std::os::unix::fs::FileExt::write_at(&f, &[0xAA], at).unwrap();
    drop(f);
    let mut a = Analyzer::connect(p.analyzer, "a", 1.0, false).await;
    assert!(a.recv_until(99, SECS(10)).await);
    a.recv_quiet(Duration::from_millis(300)).await;
    let seqs: Vec<u64> = a.got.iter().map(|g| g.seq).collect();
    let want: Vec<u64> = (0..100).filter(|s| *s != 42).collect();
    assert_eq!(seqs, want);
    assert_eq!(
        p.metric(
            "distributor_dropped_frames_total",
            "reason=\"journal_corrupt\""
        )
        .await,
        1.0
    );
    assert_eq!(
        p.metric("distributor_journal_corrupt_records_total", "")
            .await,
        1.0
    );
    assert!(
        p.log()
            .iter()
            .any(|l| l.contains("cannot be read back") && l.contains("CRC")),
        "{:#?}",
        p.log()
    );
    p.stop();
}

/// A tmpfs of `size` mounted on a folder of its own, unmounted when dropped: a disk that
/// fills up, made by the test (it needs root, as CI runs; elsewhere the test says so and
/// passes, and under `CI=true` it fails).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "under CI the full-disk tests need to mount a tmpfs (root)"
            );
            eprintln!("skipped: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(Self { dir })
    }

    fn path(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// An acknowledged emitter that writes `n` frames of `size` bytes (as fast as the
/// distributor reads them) on one task and reads its ACKs on another: the highest count.
async fn acked_emitter(
    addr: std::net::SocketAddr,
    emitter: u32,
    n: usize,
    size: usize,
) -> (
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut wire = emitter_hello(&format!("e{emitter}"), true);
    wire.extend_from_slice(&log_stream(emitter, std::iter::repeat_n(3, n), size));
    let s = runner::net::Stream::connect(addr, None).await.unwrap();
    let (mut rd, mut wr) = s.split();
    let acked = std::sync::Arc::new(AtomicU64::new(0));
    let seen = std::sync::Arc::clone(&acked);
    let writer = tokio::spawn(async move {
        wr.write_all(&wire).await.unwrap();
        // Keep the write side open: closing it would end the connection before the ACKs.
        std::future::pending::<()>().await;
        drop(wr);
    });
    tokio::spawn(async move {
        let mut buf = bytes::BytesMut::new();
        loop {
            while buf.len() >= 13 {
                let f = buf.split_to(13);
                assert_eq!(f[4], 0x41, "an ACK");
                seen.store(
                    u64::from_be_bytes(f[5..13].try_into().unwrap()),
                    Ordering::Relaxed,
                );
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    (writer, acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_taking_frames_not_delivering_them_and_recovers_by_itself() {
    use std::sync::atomic::Ordering;
    let Some(disk) = SmallDisk::mount("4m") else {
        return;
    };
    let data = disk.path();
    let args = [
        "--data-dir",
        data.as_str(),
        "--journal-segment-bytes",
        "262144",
    ];
    let p = Process::start(&args, None);
    // 12 MiB of frames for a 4 MiB disk, no analyzer yet: every frame waits on disk.
    let n = 12_000;
    let (writer, acked) = acked_emitter(p.emitter, 1, n, 1024).await;
    p.wait_metric("distributor_journal_disk_full", "", |v| v == 1.0)
        .await;
    // Some frames may have been secured before the disk filled (or none, when the first
    // group commit was already too large for it); never all of them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let secured_when_full = acked.load(Ordering::Relaxed);
    assert!(secured_when_full < n as u64, "{secured_when_full}");
    let received = p.metric("distributor_received_frames_total", "").await;
    tokio::time::sleep(SECS(1)).await;
    assert_eq!(
        p.metric("distributor_received_frames_total", "").await,
        received,
        "while the disk is full, nothing new is taken"
    );
    assert!(
        p.log()
            .iter()
            .any(|l| l.contains("journal write failed") && l.contains("disk_full=true")),
        "the full disk is logged"
    );
    // An analyzer comes: what is inside is delivered, finished segments free the disk, the
    // journal takes frames again, and every frame arrives and is secured in the end.
    let mut a = Analyzer::connect(p.analyzer, "a", 1.0, true).await;
    let mut acked_by_a = 0;
    let deadline = tokio::time::Instant::now() + SECS(60);
    while a.got.len() < n && tokio::time::Instant::now() < deadline {
        let _ = a.next(SECS(1)).await;
        if a.delivered as u64 > acked_by_a + 100 || a.got.len() == n {
            acked_by_a = a.delivered as u64;
            a.ack(acked_by_a).await;
        }
    }
    assert_eq!(a.got.len(), n, "every frame delivered");
    let mut seqs: Vec<u64> = a.got.iter().map(|g| g.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "each once");
    p.wait_metric("distributor_journal_disk_full", "", |v| v == 0.0)
        .await;
    for _ in 0..100 {
        if acked.load(Ordering::Relaxed) == n as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        acked.load(Ordering::Relaxed),
        n as u64,
        "every frame secured"
    );
    assert!(p.metric("distributor_journal_write_errors_total", "").await >= 1.0);
    assert!(
        p.log()
            .iter()
            .any(|l| l.contains("journal writes succeed again"))
    );
    writer.abort();
    let log = p.stop();
    assert!(log.iter().any(|l| l.contains("final accounting")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_in_bounded_time_on_a_full_disk_and_counts_what_never_reached_it() {
    let Some(disk) = SmallDisk::mount("2m") else {
        return;
    };
    let data = disk.path();
    let args = [
        "--data-dir",
        data.as_str(),
        "--journal-segment-bytes",
        "262144",
        "--drain-timeout",
        "2",
    ];
    let p = Process::start(&args, None);
    let (writer, _acked) = acked_emitter(p.emitter, 1, 6_000, 1024).await;
    p.wait_metric("distributor_journal_disk_full", "", |v| v == 1.0)
        .await;
    let started = std::time::Instant::now();
    let log = p.stop();
    let took = started.elapsed();
    writer.abort();
    // The drain timeout, the emitters' grace and the journal's 1 s of tries at most.
    assert!(took < SECS(8), "stopped in {took:?}");
    let last = log
        .iter()
        .rev()
        .find(|l| l.contains("final accounting"))
        .expect("the final accounting line");
    let field = |name| log_field(last, name).unwrap_or(0);
    assert!(field("received") > 0);
    assert_eq!(
        field("received"),
        field("delivered") + field("dropped") + field("in_system"),
        "{last}"
    );
}
