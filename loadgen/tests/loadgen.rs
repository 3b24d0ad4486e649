//! The load generator against test servers on loopback.
#![expect(clippy::unwrap_used, reason = "a failed setup fails the test")]

use bytes::BytesMut;
use clap::Parser;
use protocol::log::{DEFAULT_MAX_FRAME, LogDecoder};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Seen = Arc<Mutex<BTreeMap<u32, Vec<u64>>>>;

/// Reads one connection to EOF, recording every probe's (emitter, seq); when `close_after`
/// is set, half-closes after that many frames (as the distributor does at shutdown) and
/// keeps reading until the emitter closes.
async fn drain(mut s: TcpStream, seen: Seen, close_after: Option<usize>) {
    let mut buf = BytesMut::with_capacity(1 << 16);
    let mut dec = LogDecoder::new(DEFAULT_MAX_FRAME);
    let mut frames = 0;
    let mut closed = false;
    loop {
        buf.reserve(1 << 16);
        if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            assert!(buf.is_empty(), "the emitter stopped mid-frame");
            return;
        }
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            let p = protocol::probe::verify(f.priority, &f.payload).unwrap();
            seen.lock()
                .unwrap()
                .entry(p.emitter)
                .or_default()
                .push(p.seq);
            frames += 1;
        }
        if !closed && close_after.is_some_and(|n| frames >= n) {
            s.shutdown().await.unwrap();
            closed = true;
        }
    }
}

/// A discard sink: every connection drained; the first one half-closed after
/// `close_first_after` frames.
async fn sink(close_first_after: Option<usize>) -> (std::net::SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let s2 = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut first = close_first_after;
        loop {
            let (s, _) = listener.accept().await.unwrap();
            tokio::spawn(drain(s, Arc::clone(&s2), first.take()));
        }
    });
    (addr, seen)
}

fn config(target: std::net::SocketAddr, out: &std::path::Path, extra: &[&str]) -> loadgen::Config {
    let target = target.to_string();
    let mut args = vec![
        "loadgen",
        "--target",
        &target,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    loadgen::Config::parse_from(args)
}

/// One acknowledged emitter at 1000 msg/s for `duration` s with an ACK window of `window`.
fn acked(
    target: std::net::SocketAddr,
    out: &std::path::Path,
    duration: &str,
    window: &str,
) -> loadgen::Config {
    config(
        target,
        out,
        &[
            "--acks",
            "--rate",
            "1000",
            "--duration",
            duration,
            "--ack-window",
            window,
        ],
    )
}

/// A scratch folder, removed when the returned value is dropped.
fn tempdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("loadgen-test-{name}-"))
        .tempdir()
        .unwrap()
}

fn assert_gap_free(seen: &Seen, summary: &loadgen::Summary) {
    let seen = seen.lock().unwrap();
    for e in &summary.emitters {
        let seqs = &seen[&e.emitter];
        assert_eq!(seqs.len() as u64, e.sent, "emitter {}", e.emitter);
        assert!(
            seqs.iter().enumerate().all(|(i, s)| *s == i as u64),
            "emitter {} seqs in order, no gaps",
            e.emitter
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meets_the_rate_and_writes_its_csvs() {
    let (addr, seen) = sink(None).await;
    let scratch = tempdir("rate");
    let out = scratch.path();
    let c = config(
        addr,
        out,
        &[
            "--emitters",
            "3",
            "--rate",
            "500",
            "--duration",
            "2",
            "--emitter-id-base",
            "10",
            "--priority-mode",
            "random",
            "--priority-range",
            "5-9",
        ],
    );
    let summary = loadgen::run(c, std::future::pending()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for e in &summary.emitters {
        // Message i is due at i/500 s: 1001 by t = 2 s; the last wake-up may come up to
        // 5 ms early.
        assert!(
            (995..=1001).contains(&e.sent),
            "emitter {}: {}",
            e.emitter,
            e.sent
        );
    }
    assert_eq!(
        summary
            .emitters
            .iter()
            .map(|e| e.emitter)
            .collect::<Vec<_>>(),
        [10, 11, 12]
    );
    assert_gap_free(&seen, &summary);
    let manifest: Vec<csv::StringRecord> = csv::Reader::from_path(out.join("emitters-10.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(manifest.len(), 3);
    let mut per_second = BTreeMap::<u32, u64>::new();
    for r in csv::Reader::from_path(out.join("sent-10.csv"))
        .unwrap()
        .records()
    {
        let r = r.unwrap();
        let p: u8 = r[2].parse().unwrap();
        assert!((5..=9).contains(&p));
        *per_second.entry(r[1].parse().unwrap()).or_default() += r[3].parse::<u64>().unwrap();
    }
    for (row, e) in manifest.iter().zip(&summary.emitters) {
        assert_eq!(row[1].parse::<u64>().unwrap(), e.sent);
        assert_eq!(per_second[&e.emitter], e.sent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rate_saturates() {
    let (addr, seen) = sink(None).await;
    let summary = loadgen::run(
        config(
            addr,
            tempdir("max").path(),
            &["--rate", "max", "--duration", "0.5"],
        ),
        std::future::pending(),
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(summary.sent() > 20_000, "{}", summary.sent());
    assert_gap_free(&seen, &summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_when_the_distributor_closes_and_loses_nothing() {
    let (addr, seen) = sink(Some(200)).await;
    let scratch = tempdir("reconnect");
    let c = config(
        addr,
        scratch.path(),
        &["--emitters", "1", "--rate", "1000", "--duration", "1.5"],
    );
    let summary = loadgen::run(c, std::future::pending()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let e = &summary.emitters[0];
    assert_eq!(e.reconnects, 1);
    assert!(e.in_doubt.is_empty());
    assert!(e.sent > 1000);
    assert_gap_free(&seen, &summary);
}

#[tokio::test]
async fn fails_clearly_when_nothing_listens() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let scratch = tempdir("closed");
    let c = config(closed, scratch.path(), &["--connect-timeout", "0.3"]);
    let err = format!(
        "{:#}",
        loadgen::run(c, std::future::pending()).await.unwrap_err()
    );
    assert!(
        err.contains("cannot connect") && err.contains(&closed.to_string()),
        "{err}"
    );
}

#[test]
fn bad_flags_are_named() {
    let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let scratch = tempdir("flags");
    let c = config(addr, scratch.path(), &["--size-min", "10"]);
    assert!(format!("{:#}", c.validate().unwrap_err()).contains("--size"));
    assert!(loadgen::Config::try_parse_from(["loadgen", "--rate", "fast"]).is_err());
    assert!(loadgen::Config::try_parse_from(["loadgen", "--priority-range", "9-3"]).is_err());
}

#[test]
fn the_binary_says_it_waits_for_the_distributor() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--target",
            &closed.to_string(),
            "--connect-timeout",
            "0.5",
            "--out",
        ])
        .arg(tempdir("waits").path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("waiting for the distributor").count(),
        1,
        "{err}"
    );
    assert!(err.contains("cannot connect"), "{err}");
}

/// A distributor that speaks PROTOCOL.md §5: reads the EMITTER HELLO and the frames,
/// acknowledges them. Its first connection acknowledges only `ack_first` frames and then
/// breaks off (a crash); later ones acknowledge everything as it arrives.
type Hellos = Arc<Mutex<Vec<(String, Option<protocol::codec::Codec>)>>>;

async fn acking_distributor(ack_first: u64) -> (std::net::SocketAddr, Seen, Hellos) {
    use protocol::emitter::{EmitterDecoder, Item};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let hellos: Hellos = Arc::default();
    let (s2, h2) = (Arc::clone(&seen), Arc::clone(&hellos));
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let crash_after = first.then_some(ack_first);
            first = false;
            let (seen, hellos) = (Arc::clone(&s2), Arc::clone(&h2));
            tokio::spawn(async move {
                let mut buf = BytesMut::new();
                let mut dec = EmitterDecoder::new(DEFAULT_MAX_FRAME);
                let mut count = 0u64;
                loop {
                    buf.reserve(1 << 16);
                    if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                    while let Some(item) = dec.decode(&mut buf).unwrap() {
                        match item {
                            Item::Hello(h) => {
                                assert!(h.acks);
                                hellos.lock().unwrap().push((h.id, h.compression));
                            }
                            Item::Log(f) => {
                                let p = protocol::probe::verify(f.priority, &f.payload).unwrap();
                                seen.lock()
                                    .unwrap()
                                    .entry(p.emitter)
                                    .or_default()
                                    .push(p.seq);
                                count += 1;
                            }
                        }
                    }
                    let mut ack = BytesMut::new();
                    match crash_after {
                        Some(n) if count >= n => {
                            protocol::analyzer::encode_ack(n, &mut ack);
                            let _ = s.write_all(&ack).await;
                            // Let the ACK arrive, then vanish with the rest unacknowledged
                            // (closing with unread bytes resets the connection).
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            return;
                        }
                        Some(_) => {}
                        None => {
                            protocol::analyzer::encode_ack(count, &mut ack);
                            if s.write_all(&ack).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, seen, hellos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_acks_what_a_crash_left_unsecured_is_sent_again() {
    let (addr, seen, hellos) = acking_distributor(300).await;
    let scratch = tempdir("acks");
    let out = scratch.path();
    let c = acked(addr, out, "2", "500");
    let summary = loadgen::run(c, std::future::pending()).await.unwrap();
    let e = &summary.emitters[0];
    assert_eq!(
        e.secured,
        Some(e.sent),
        "everything was acknowledged in the end"
    );
    assert!(e.in_doubt.is_empty(), "{:?}", e.in_doubt);
    let hellos: Vec<String> = hellos.lock().unwrap().iter().map(|h| h.0.clone()).collect();
    assert_eq!(hellos, ["emitter-0", "emitter-0"]);
    let seen = seen.lock().unwrap();
    let seqs = &seen[&0];
    // Every seq arrived; the ones after the 300 acknowledged before the crash came again,
    // first of all and in order, on the second connection (some also on the first, when
    // it read them before it broke off).
    let mut unique: Vec<u64> = seqs.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique, (0..e.sent).collect::<Vec<_>>());
    let second: Vec<u64> = seqs[(seqs.len() - (e.sent as usize - 300))..].to_vec();
    assert_eq!(
        second,
        (300..e.sent).collect::<Vec<_>>(),
        "resent first, in order, then new ones"
    );
    let manifest = std::fs::read_to_string(out.join("emitters-0.csv")).unwrap();
    assert!(
        manifest.lines().next().unwrap().ends_with(",secured"),
        "{manifest}"
    );
    assert!(
        manifest
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(&format!(",{}", e.sent)),
        "{manifest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_window_waits_for_acks_and_drops_nothing() {
    // A distributor that acknowledges nothing on its first connection: the window of 50
    // fills, the emitter waits (lagging), and nothing beyond 50 is written.
    let (addr, seen, _) = acking_distributor(u64::MAX).await;
    let scratch = tempdir("window");
    let out = scratch.path();
    let c = acked(addr, out, "1", "50");
    let summary = loadgen::run(c, std::future::pending()).await.unwrap();
    let e = &summary.emitters[0];
    assert_eq!((e.sent, e.secured, e.unsent), (50, Some(0), 0));
    assert_eq!(e.in_doubt, [(0, 50)], "unsecured at the end: in doubt");
    assert!(
        e.max_lag > std::time::Duration::from_millis(500),
        "{:?}",
        e.max_lag
    );
    assert_eq!(seen.lock().unwrap()[&0].len(), 50);
}

/// What a compressed emitter connection carried, as a receiver saw it.
#[derive(Debug, Default, Clone)]
struct Received {
    hello: Option<protocol::emitter::EmitterHello>,
    compressed: u64,
    ended_at_boundary: bool,
}

/// A receiver of compressed emitter streams (no ACKs): decodes each connection with the
/// protocol's EmitterDecoder, records every probe, what each connection's HELLO said and
/// how many bytes it carried.
async fn decompressing_sink() -> (std::net::SocketAddr, Seen, Arc<Mutex<Vec<Received>>>) {
    use protocol::emitter::{EmitterDecoder, Item};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let conns: Arc<Mutex<Vec<Received>>> = Arc::default();
    let (s2, c2) = (Arc::clone(&seen), Arc::clone(&conns));
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let (seen, conns) = (Arc::clone(&s2), Arc::clone(&c2));
            tokio::spawn(async move {
                let mut buf = BytesMut::new();
                let mut dec = EmitterDecoder::new(DEFAULT_MAX_FRAME);
                let mut got = Received::default();
                loop {
                    buf.reserve(1 << 16);
                    if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        assert!(
                            buf.is_empty() && dec.held() == 0,
                            "the emitter stopped mid-frame"
                        );
                        got.compressed = dec.wire_bytes();
                        got.ended_at_boundary = dec.at_boundary();
                        conns.lock().unwrap().push(got);
                        return;
                    }
                    while let Some(item) = dec.decode(&mut buf).unwrap() {
                        match item {
                            Item::Hello(h) => got.hello = Some(h),
                            Item::Log(f) => {
                                let p = protocol::probe::verify(f.priority, &f.payload).unwrap();
                                seen.lock()
                                    .unwrap()
                                    .entry(p.emitter)
                                    .or_default()
                                    .push(p.seq);
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, seen, conns)
}

fn wire_rows(out: &std::path::Path) -> Vec<runfolder::rows::EmitterWire> {
    let r = runfolder::TableReader::<runfolder::rows::EmitterWire>::open(
        &runfolder::names::WIRE.path(out, 0),
    )
    .unwrap();
    let mut rows = Vec::new();
    for row in r {
        rows.push(row.unwrap());
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_streams_without_acks_arrive_whole() {
    use protocol::codec::Codec;
    for (flag, codec) in [("lz4", Codec::Lz4), ("zstd", Codec::Zstd)] {
        let (addr, seen, conns) = decompressing_sink().await;
        let scratch = tempdir(&format!("compress-{flag}"));
        let out = scratch.path();
        let c = config(
            addr,
            out,
            &[
                "--emitters",
                "2",
                "--rate",
                "2000",
                "--duration",
                "1",
                "--compress",
                flag,
                "--payload",
                "text",
            ],
        );
        let summary = loadgen::run(c, std::future::pending()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_gap_free(&seen, &summary);
        let conns = conns.lock().unwrap().clone();
        assert_eq!(conns.len(), 2);
        for r in &conns {
            let h = r.hello.as_ref().unwrap();
            assert_eq!((h.acks, h.compression), (false, Some(codec)));
            assert!(h.id.starts_with("emitter-"));
            assert!(
                r.ended_at_boundary,
                "{flag}: the stream was finished at close"
            );
        }
        let rows = wire_rows(out);
        let wire: u64 = rows.iter().map(|r| r.wire_bytes).sum();
        let raw: u64 = rows.iter().map(|r| r.raw_bytes).sum();
        assert_eq!(
            wire,
            conns.iter().map(|r| r.compressed).sum::<u64>(),
            "{flag}"
        );
        // Small flushed writes (10 messages at this rate) compress less than big batches.
        assert!(
            wire * 3 < raw * 2,
            "{flag}: log text compresses: {wire} of {raw}"
        );
        assert!(rows.iter().all(|r| r.compression.is_some()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_acks_and_compression_a_crash_resends_on_a_new_stream() {
    let (addr, seen, hellos) = acking_distributor(300).await;
    let scratch = tempdir("acks-zstd");
    let mut c = acked(addr, scratch.path(), "2", "500");
    c.compress = Some(runfolder::Compression::Zstd);
    let summary = loadgen::run(c, std::future::pending()).await.unwrap();
    let e = &summary.emitters[0];
    assert_eq!(e.secured, Some(e.sent));
    let hellos = hellos.lock().unwrap().clone();
    assert_eq!(hellos.len(), 2);
    assert!(
        hellos
            .iter()
            .all(|h| h.1 == Some(protocol::codec::Codec::Zstd))
    );
    let mut unique = seen.lock().unwrap()[&0].clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique, (0..e.sent).collect::<Vec<_>>());
}

/// A syslog listener: every message's text probe verified; counts per priority (the
/// section 8 mapping of its PRI) and the framings seen.
async fn syslog_sink() -> (std::net::SocketAddr, Seen, Arc<Mutex<BTreeMap<u8, u64>>>) {
    use protocol::syslog::SyslogDecoder;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let by_priority: Arc<Mutex<BTreeMap<u8, u64>>> = Arc::default();
    let (s2, p2) = (Arc::clone(&seen), Arc::clone(&by_priority));
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let (seen, by_priority) = (Arc::clone(&s2), Arc::clone(&p2));
            tokio::spawn(async move {
                let mut buf = BytesMut::new();
                let mut dec = SyslogDecoder::new(DEFAULT_MAX_FRAME);
                loop {
                    buf.reserve(1 << 16);
                    if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        assert!(buf.is_empty(), "the emitter stopped mid-message");
                        return;
                    }
                    while let Some(m) = dec.decode(&mut buf).unwrap() {
                        let p = protocol::probe::text::verify(&m.payload).unwrap();
                        assert!(m.pri.is_some());
                        seen.lock()
                            .unwrap()
                            .entry(p.emitter)
                            .or_default()
                            .push(p.seq);
                        *by_priority.lock().unwrap().entry(m.priority).or_default() += 1;
                    }
                }
            });
        }
    });
    (addr, seen, by_priority)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_lines_in_both_framings_carry_text_probes() {
    for framing in ["octet", "lf"] {
        let (addr, seen, by_priority) = syslog_sink().await;
        let scratch = tempdir(&format!("syslog-{framing}"));
        let out = scratch.path();
        let c = config(
            addr,
            out,
            &[
                "--format",
                "syslog",
                "--framing",
                framing,
                "--emitters",
                "2",
                "--rate",
                "1000",
                "--duration",
                "1",
                "--priority-mode",
                "weighted",
            ],
        );
        let summary = loadgen::run(c, std::future::pending()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_gap_free(&seen, &summary);
        // What the loadgen recorded per priority is what the PRI of each line maps to.
        let mut recorded: BTreeMap<u8, u64> = BTreeMap::new();
        let r = runfolder::TableReader::<runfolder::rows::Sent>::open(
            &runfolder::names::SENT.path(out, 0),
        )
        .unwrap();
        for row in r {
            let row = row.unwrap();
            *recorded.entry(row.priority).or_default() += row.sent;
        }
        assert_eq!(recorded, *by_priority.lock().unwrap(), "{framing}");
        assert!(recorded.len() > 10, "weighted draws many levels");
        let rows = wire_rows(out);
        assert!(
            rows.iter()
                .all(|r| r.format == runfolder::Format::Syslog && r.raw_bytes == r.wire_bytes)
        );
    }
}

#[test]
fn syslog_and_compression_settings_are_checked() {
    for (args, needle) in [
        (&["--format", "syslog", "--acks"][..], "--format syslog"),
        (
            &["--format", "syslog", "--compress", "lz4"][..],
            "--format syslog",
        ),
        (
            &["--format", "syslog", "--payload", "random"][..],
            "--payload random",
        ),
        (
            &["--compress", "zstd", "--zstd-level", "20"][..],
            "--zstd-level 20",
        ),
    ] {
        let c = config(
            "127.0.0.1:9".parse().unwrap(),
            std::path::Path::new("/tmp"),
            args,
        );
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let ok = config(
        "127.0.0.1:9".parse().unwrap(),
        std::path::Path::new("/tmp"),
        &["--format", "syslog"],
    );
    assert_eq!(ok.payload(), runfolder::Payload::Text);
}
