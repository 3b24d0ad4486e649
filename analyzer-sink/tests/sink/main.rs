//! The analyzer sink against a test server playing the distributor, over real sockets.
#![expect(clippy::unwrap_used, reason = "a failed setup fails the test")]

use analyzer_sink::Config;
use analyzer_sink::verify::Counts;
use bytes::BytesMut;
use clap::Parser;
use protocol::analyzer::{self as wire, Hello};
use protocol::probe::{self, Probe};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A DELIVER frame carrying probe (emitter, seq) at `priority`.
fn deliver(priority: u8, emitter: u32, seq: u64) -> BytesMut {
    let mut payload = BytesMut::new();
    probe::encode(
        priority,
        Probe {
            emitter,
            seq,
            sent_ns: protocol::now_ns(),
        },
        &[1u8; 40],
        &mut payload,
    );
    raw_deliver(priority, &payload)
}

fn raw_deliver(priority: u8, payload: &[u8]) -> BytesMut {
    // Stamps in delivery order, each queued after the previous one was dispatched: an
    // orderly stream with no inversion.
    static CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000_000);
    let t = CLOCK.fetch_add(10, std::sync::atomic::Ordering::Relaxed);
    let mut b = BytesMut::from(&wire::deliver_header(priority, t, t + 1, payload.len())[..]);
    b.extend_from_slice(payload);
    b
}

/// A sink on `listener`'s address; returns a stop handle and its result.
fn start_sink(
    addr: std::net::SocketAddr,
    out: &Path,
    extra: &[&str],
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<Counts>>,
) {
    let mut args = vec![
        "analyzer-sink",
        "--distributor",
        &addr.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(extra.iter().map(|s| s.to_string()));
    let config = Config::parse_from(args);
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(analyzer_sink::run(config, async move {
        let _ = rx.await;
    }));
    (tx, handle)
}

/// Accepts the sink and reads its HELLO.
async fn accept(listener: &TcpListener) -> (TcpStream, Hello) {
    let (mut s, _) = listener.accept().await.unwrap();
    let mut buf = BytesMut::new();
    loop {
        if let Some(h) = wire::decode_hello(&mut buf).unwrap() {
            return (s, h);
        }
        assert!(s.read_buf(&mut buf).await.unwrap() > 0);
    }
}

/// Reads ACK counts until `want` is acknowledged; returns them with their arrival times.
async fn acks_until(s: &mut TcpStream, want: u64) -> Vec<(u64, Instant)> {
    let mut buf = BytesMut::new();
    let mut acks = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(c) = wire::decode_ack(&mut buf).unwrap() {
            acks.push((c, Instant::now()));
            if c == want {
                return acks;
            }
        }
        let n = tokio::time::timeout_at(deadline, s.read_buf(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "sink closed; acks so far {acks:?}");
    }
}

fn csv_rows(path: &Path) -> Vec<csv::StringRecord> {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect()
}

/// Sends good, duplicate, corrupt and foreign frames; returns the sink's counts.
async fn mixed_session(mode: &str, out: &Path) -> Counts {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, sink) = start_sink(
        listener.local_addr().unwrap(),
        out,
        &["--id", "s1", "--weight", "2.5", "--log", mode],
    );
    let (mut s, hello) = accept(&listener).await;
    assert_eq!(
        (hello.id.as_str(), hello.weight, hello.acks),
        ("s1", 2.5, false)
    );
    let mut wire = BytesMut::new();
    for seq in 0..300 {
        wire.extend_from_slice(&deliver((seq % 3) as u8, 7, seq));
    }
    wire.extend_from_slice(&deliver(1, 7, 5)); // duplicate
    let mut corrupt = deliver(2, 8, 0);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff; // crc byte
    wire.extend_from_slice(&corrupt);
    wire.extend_from_slice(&raw_deliver(0, b"not a probe at all, just text")); // foreign
    s.write_all(&wire).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    sink.await.unwrap().unwrap()
}

#[tokio::test]
async fn detects_corrupt_duplicate_and_foreign_frames() {
    let dir = tempdir("detects");
    let counts = mixed_session("full", &dir).await;
    assert_eq!(
        counts,
        Counts {
            received: 303,
            unique: 300,
            duplicates: 1,
            corrupt: 1,
            non_probe: 1,
            inversions: 0,
            overtaken: 0,
            text_probes: 0,
            pri_mismatch: 0,
        }
    );
    let rows = csv_rows(&dir.join("arrivals-s1.csv"));
    assert_eq!(rows.len(), 303);
    let dup = &rows[300];
    assert_eq!(
        (&dup[1], &dup[2], &dup[8], &dup[9], &dup[10]),
        ("7", "5", "1", "1", "1")
    );
    let bad = &rows[301];
    assert_eq!((&bad[1], &bad[8], &bad[9]), ("8", "0", "0"));
    let foreign = &rows[302];
    assert_eq!((&foreign[1], &foreign[2], &foreign[8]), ("", "", "0"));
    let totals = csv_rows(&dir.join("totals-s1.csv"));
    assert_eq!(&totals[0][2], "probes");
    let fields: Vec<&str> = totals[0].iter().skip(3).take(5).collect();
    assert_eq!(fields, ["303", "300", "1", "1", "1"]);
}

#[tokio::test]
async fn full_and_summary_agree() {
    let (full, summary) = (tempdir("agree-full"), tempdir("agree-summary"));
    let a = mixed_session("full", &full).await;
    let b = mixed_session("summary", &summary).await;
    assert_eq!(a, b);
    // Per-priority counts: arrivals rows vs summary rows.
    let mut by_priority_full = [0u64; 3];
    for r in csv_rows(&full.join("arrivals-s1.csv")) {
        by_priority_full[r[3].parse::<usize>().unwrap()] += 1;
    }
    let mut by_priority_summary = [0u64; 3];
    for r in csv_rows(&summary.join("summary-s1.csv")) {
        by_priority_summary[r[1].parse::<usize>().unwrap()] += r[2].parse::<u64>().unwrap();
    }
    assert_eq!(by_priority_full, by_priority_summary);
    // Seq ranges: exactly emitter 7's 0..300 (the corrupt one is not counted as seen).
    let seqs = csv_rows(&summary.join("seqs-s1.csv"));
    assert_eq!(seqs.len(), 1);
    assert_eq!((&seqs[0][0], &seqs[0][1], &seqs[0][2]), ("7", "0", "299"));
    let latency = csv_rows(&summary.join("latency-s1.csv"));
    let all = latency.iter().find(|r| &r[0] == "all").unwrap();
    assert_eq!(&all[1], "301", "every good probe has a latency");
}

#[tokio::test]
async fn acks_are_cumulative_and_paced() {
    let dir = tempdir("acks");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, sink) = start_sink(
        listener.local_addr().unwrap(),
        &dir,
        &["--id", "acker", "--acks"],
    );
    let (mut s, hello) = accept(&listener).await;
    assert!(hello.acks);
    let mut wire = BytesMut::new();
    for seq in 0..5000 {
        wire.extend_from_slice(&deliver(0, 1, seq));
    }
    s.write_all(&wire).await.unwrap();
    let acks = acks_until(&mut s, 5000).await;
    assert!(
        acks.windows(2).all(|w| w[0].0 < w[1].0),
        "cumulative, increasing: {acks:?}"
    );
    // At least every 1024 frames or 100 ms, not one per frame.
    assert!(acks.len() <= 40, "{} ACKs for 5000 frames", acks.len());
    // What was acknowledged is in the log file.
    stop.send(()).unwrap();
    sink.await.unwrap().unwrap();
    assert_eq!(csv_rows(&dir.join("arrivals-acker.csv")).len(), 5000);
}

#[tokio::test]
async fn a_slow_sink_acks_every_100_ms() {
    let dir = tempdir("slow");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, sink) = start_sink(
        listener.local_addr().unwrap(),
        &dir,
        &["--id", "slow", "--acks", "--capacity", "500"],
    );
    let (mut s, _) = accept(&listener).await;
    let mut wire = BytesMut::new();
    for seq in 0..300 {
        wire.extend_from_slice(&deliver(0, 1, seq));
    }
    let started = Instant::now();
    s.write_all(&wire).await.unwrap();
    let acks = acks_until(&mut s, 300).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(550),
        "500 msg/s: 300 frames take ~0.6 s, took {took:?}"
    );
    assert!(
        acks.len() >= 4,
        "intermediate ACKs while processing: {acks:?}"
    );
    stop.send(()).unwrap();
    sink.await.unwrap().unwrap();
}

#[tokio::test]
async fn reconnects_after_the_distributor_goes_away() {
    let dir = tempdir("reconnect");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, sink) = start_sink(listener.local_addr().unwrap(), &dir, &["--id", "r"]);
    for round in 0..2u64 {
        let (mut s, hello) = accept(&listener).await;
        assert_eq!(hello.id, "r");
        let mut wire = BytesMut::new();
        for seq in 0..10 {
            wire.extend_from_slice(&deliver(0, 1, round * 10 + seq));
        }
        s.write_all(&wire).await.unwrap();
        s.shutdown().await.unwrap();
        drop(s);
    }
    let _third = accept(&listener).await; // it keeps coming back
    stop.send(()).unwrap();
    let counts = sink.await.unwrap().unwrap();
    assert_eq!((counts.received, counts.unique), (20, 20));
    let totals = csv_rows(&dir.join("totals-r.csv"));
    assert_eq!(&totals[0][10], "3", "three sessions");
}

#[tokio::test]
async fn a_restarted_sink_appends_and_cuts_a_partial_line() {
    let dir = tempdir("append");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    for (round, garbage) in [
        (0u64, &b"1795786664638290850,2,0,0,17957866646"[..]),
        (1, b""),
    ] {
        let (stop, sink) = start_sink(addr, &dir, &["--id", "again"]);
        let (mut s, _) = accept(&listener).await;
        let mut wire = BytesMut::new();
        for seq in 0..5 {
            wire.extend_from_slice(&deliver(0, 1, round * 5 + seq));
        }
        s.write_all(&wire).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.send(()).unwrap();
        sink.await.unwrap().unwrap();
        // As if the process had been killed in the middle of a row.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("arrivals-again.csv"))
            .unwrap();
        std::io::Write::write_all(&mut f, garbage).unwrap();
    }
    let rows = csv_rows(&dir.join("arrivals-again.csv"));
    let seqs: Vec<&str> = rows.iter().map(|r| r.get(2).unwrap()).collect();
    assert_eq!(seqs, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
}

#[tokio::test]
async fn on_stop_it_reads_what_was_already_sent() {
    let dir = tempdir("drain");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, sink) = start_sink(
        listener.local_addr().unwrap(),
        &dir,
        &["--id", "d", "--capacity", "20000"],
    );
    let (mut s, _) = accept(&listener).await;
    let mut wire = BytesMut::new();
    for seq in 0..2000 {
        wire.extend_from_slice(&deliver(0, 1, seq));
    }
    s.write_all(&wire).await.unwrap();
    // Stop while most of it still waits in the socket (20k msg/s: 0.1 s of work).
    stop.send(()).unwrap();
    let counts = sink.await.unwrap().unwrap();
    assert_eq!(counts.received, 2000, "nothing already sent is left unread");
    drop(s);
}

#[tokio::test]
async fn a_reject_stops_the_sink_with_the_reason() {
    let dir = tempdir("reject");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_stop, sink) = start_sink(listener.local_addr().unwrap(), &dir, &["--id", "x"]);
    let (mut s, _) = accept(&listener).await;
    let mut b = BytesMut::new();
    wire::encode_reject("invalid weight", &mut b);
    s.write_all(&b).await.unwrap();
    let err = sink.await.unwrap().unwrap_err().to_string();
    assert!(
        err.contains("rejected") && err.contains("invalid weight"),
        "{err}"
    );
}

#[test]
fn bad_ids_are_refused() {
    let c = Config::parse_from(["analyzer-sink", "--id", "a/b"]);
    assert!(c.validate().unwrap_err().to_string().contains("--id"));
}

/// A scratch folder removed when the test ends.
struct Scratch(tempfile::TempDir);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

fn tempdir(name: &str) -> Scratch {
    Scratch(
        tempfile::Builder::new()
            .prefix(&format!("sink-test-{name}-"))
            .tempdir()
            .unwrap(),
    )
}

#[test]
fn the_binary_warns_once_when_the_distributor_cannot_be_reached() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempdir("unreachable");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_analyzer-sink"))
        .args(["--id", "u", "--distributor", &closed.to_string(), "--out"])
        .arg(&*dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Retries every 100 ms doubling to 2 s: several in 2.5 s, one warning (the next is
    // due after 10 s).
    std::thread::sleep(Duration::from_millis(2500));
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("cannot reach the distributor").count(),
        1,
        "{err}"
    );
    assert!(err.contains(&closed.to_string()), "{err}");
}

/// The link row the sink wrote.
fn link_row(dir: &Path, id: &str) -> runfolder::rows::SinkLink {
    let mut r = runfolder::TableReader::<runfolder::rows::SinkLink>::open(
        &runfolder::names::LINK.path(dir, id),
    )
    .unwrap();
    r.next().unwrap().unwrap()
}

#[tokio::test]
async fn compressed_sessions_decode_batches_and_count_them() {
    use protocol::batch::BatchEncoder;
    use protocol::codec::Codec;
    for (flag, codec) in [("lz4", Codec::Lz4), ("zstd", Codec::Zstd)] {
        let dir = tempdir(&format!("batches-{flag}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, sink) = start_sink(
            listener.local_addr().unwrap(),
            &dir,
            &["--id", "c1", "--compress", flag],
        );
        let (mut s, hello) = accept(&listener).await;
        assert_eq!(hello.compression, Some(codec));
        // 10 plain DELIVER frames, then 3 BATCH frames of 100, then 10 plain again.
        let mut enc = BatchEncoder::new(codec, 3).unwrap();
        let mut wire = BytesMut::new();
        let mut seq = 0;
        let mut raw_total = 0;
        for _ in 0..10 {
            wire.extend_from_slice(&deliver(1, 4, seq));
            seq += 1;
        }
        raw_total += wire.len();
        for _ in 0..3 {
            let mut raw = BytesMut::new();
            for _ in 0..100 {
                raw.extend_from_slice(&deliver(1, 4, seq));
                seq += 1;
            }
            raw_total += raw.len();
            enc.encode(&raw, &mut wire).unwrap();
        }
        let before_tail = wire.len();
        for _ in 0..10 {
            wire.extend_from_slice(&deliver(1, 4, seq));
            seq += 1;
        }
        raw_total += wire.len() - before_tail;
        s.write_all(&wire).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.send(()).unwrap();
        let counts = sink.await.unwrap().unwrap();
        assert_eq!(
            (counts.received, counts.unique, counts.corrupt),
            (320, 320, 0)
        );
        let link = link_row(&dir, "c1");
        assert_eq!(link.compression, Some(codec_setting(flag)));
        assert_eq!((link.batches, link.batched, link.bad_frames), (3, 300, 0));
        assert_eq!(link.wire_bytes, wire.len() as u64);
        assert_eq!(link.raw_bytes, raw_total as u64);
        assert!(link.wire_bytes < link.raw_bytes);
    }
}

fn codec_setting(flag: &str) -> runfolder::Compression {
    match flag {
        "lz4" => runfolder::Compression::Lz4,
        _ => runfolder::Compression::Zstd,
    }
}

#[tokio::test]
async fn a_batch_whose_count_is_wrong_ends_the_session_and_is_counted() {
    let dir = tempdir("bad-batch");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, sink) = start_sink(
        listener.local_addr().unwrap(),
        &dir,
        &["--id", "b1", "--compress", "lz4"],
    );
    let (mut s, _) = accept(&listener).await;
    let mut raw = BytesMut::new();
    for seq in 0..5 {
        raw.extend_from_slice(&deliver(0, 1, seq));
    }
    let mut wire = BytesMut::new();
    protocol::batch::BatchEncoder::new(protocol::codec::Codec::Lz4, 3)
        .unwrap()
        .encode(&raw, &mut wire)
        .unwrap();
    // count 5 -> 6: the frames inside no longer match it.
    wire[9] = 6;
    s.write_all(&wire).await.unwrap();
    // The sink drops the session and comes back with a new HELLO.
    let (s2, again) = accept(&listener).await;
    assert_eq!(again.id, "b1");
    drop((s, s2));
    stop.send(()).unwrap();
    let counts = sink.await.unwrap().unwrap();
    assert_eq!(counts.received, 0, "nothing of a refused batch is taken");
    let link = link_row(&dir, "b1");
    assert_eq!((link.bad_frames, link.batches), (1, 0));
}

#[tokio::test]
async fn text_probes_are_verified_with_their_pri() {
    use protocol::probe::text;
    let dir = tempdir("text");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, sink) = start_sink(listener.local_addr().unwrap(), &dir, &["--id", "t1"]);
    let (mut s, _) = accept(&listener).await;
    let mut wire = BytesMut::new();
    for seq in 0..20u64 {
        // <PRI> 8 * 3 + 4 (daemon.warning): priority 4 * 32 + 3 = 131; seq 7 arrives at
        // the wrong priority.
        let mut payload = BytesMut::from(&b"<28>1 2026-12-02T06:03:00Z host app 1 probe - "[..]);
        let probe = Probe {
            emitter: 9,
            seq,
            sent_ns: protocol::now_ns(),
        };
        text::encode(probe, b"GET /api/v1/users/7 200 1532", &mut payload).unwrap();
        payload.extend_from_slice(b"\n");
        wire.extend_from_slice(&raw_deliver(if seq == 7 { 130 } else { 131 }, &payload));
    }
    s.write_all(&wire).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    let counts = sink.await.unwrap().unwrap();
    assert_eq!(
        (
            counts.unique,
            counts.corrupt,
            counts.text_probes,
            counts.pri_mismatch
        ),
        (19, 1, 20, 1)
    );
    let link = link_row(&dir, "t1");
    assert_eq!(
        (link.text_probes, link.pri_mismatch, link.compression),
        (20, 1, None)
    );
    let rows = csv_rows(&dir.join("arrivals-t1.csv"));
    assert_eq!((&rows[7][2], &rows[7][8]), ("7", "0"), "seq 7: crc_ok 0");
}
