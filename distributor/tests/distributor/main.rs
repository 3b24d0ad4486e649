//! The distributor over real loopback sockets: routing, priority, failure handling,
//! overflow, bad input and shutdown, each with exact counts.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test on any setup error"
)]

mod journal;
mod limits;
mod secure;
mod support;

use distributor::DropReason;
use distributor::Overflow;
use distributor::Routing;
use protocol::analyzer::Downstream;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Runs analyzers `ids` with `weights` (no ACKs), sends `n` frames, returns the counts.
async fn route(routing: Routing, n: usize) -> Vec<usize> {
    let cfg = distributor::Config {
        routing,
        queue_capacity: n,
        ..config()
    };
    let d = Running::start(cfg).await;
    let weights = [("a", 5.0), ("b", 3.0), ("c", 2.0)];
    let mut handles = Vec::new();
    for (id, w) in weights {
        let mut a = Analyzer::connect(d.analyzer, id, w, false).await;
        handles.push(tokio::spawn(async move {
            a.recv_quiet(Duration::from_millis(1500)).await;
            a.got.len()
        }));
    }
    d.wait_live(3).await;
    emit(d.emitter, &log_stream(1, std::iter::repeat_n(0, n), 64)).await;
    let mut counts = Vec::new();
    for h in handles {
        counts.push(h.await.unwrap());
    }
    let snap = d.stop().await;
    assert_eq!(counts.iter().sum::<usize>(), n);
    assert_eq!(snap.totals.received, n as u64);
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_routing_holds_weights_within_3_percent() {
    let n = 100_000;
    let counts = route(Routing::Random, n).await;
    for (count, share) in counts.iter().zip([0.5, 0.3, 0.2]) {
        let expected = share * n as f64;
        let rel = (*count as f64 - expected).abs() / expected;
        assert!(rel < 0.03, "{counts:?}: {count} vs {expected}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smooth_routing_is_exact() {
    assert_eq!(
        route(Routing::Smooth, 100_000).await,
        vec![50_000, 30_000, 20_000]
    );
}

/// No frame A delivered before a more urgent B with queued_ns(B) < dispatch_ns(A).
fn inversions(got: &[Got]) -> usize {
    let mut n = 0;
    for (i, a) in got.iter().enumerate() {
        n += got[i + 1..]
            .iter()
            .filter(|b| b.priority < a.priority && b.queued_ns < a.dispatch_ns)
            .count();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_priority_under_a_backlog() {
    // ACK window of 8 and a slow analyzer: frames back up in its queues.
    let cfg = distributor::Config {
        ack_window: 8,
        ..config()
    };
    let d = Running::start(cfg).await;
    let mut a = Analyzer::connect(d.analyzer, "slow", 1.0, true).await;
    d.wait_live(1).await;
    let n = 2000;
    let priorities: Vec<u8> = (0..n).map(|i| ((i * 7919) % 256) as u8).collect();
    let sender = tokio::spawn(emit(d.emitter, log_stream(1, priorities, 100)));
    let mut acked = 0;
    while a.got.len() < n {
        assert!(
            a.next(SECS(10)).await.is_some(),
            "stalled at {}",
            a.got.len()
        );
        if a.got.len() as u64 >= acked + 4 {
            tokio::time::sleep(Duration::from_micros(300)).await;
            acked = a.got.len() as u64;
            a.ack(acked).await;
        }
    }
    a.ack(n as u64).await;
    sender.await.unwrap();
    let snap = d.stop().await;
    assert_eq!(snap.totals.delivered, n as u64);
    assert_eq!(inversions(&a.got), 0);
    // The backlog really reordered frames: some less urgent frame queued earlier was
    // delivered after a more urgent one queued later.
    let reordered = a
        .got
        .windows(2)
        .filter(|w| w[0].queued_ns > w[1].queued_ns)
        .count();
    assert!(
        reordered > 100,
        "only {reordered} reorderings: no backlog formed"
    );
    let fifo_ok = a.got.iter().enumerate().all(|(i, x)| {
        a.got[i + 1..]
            .iter()
            .all(|y| y.priority != x.priority || y.seq > x.seq)
    });
    assert!(fifo_ok, "FIFO within a priority");
}

#[test]
fn inversion_check_can_fail() {
    let g = |priority, queued_ns, dispatch_ns| Got {
        emitter: 0,
        seq: 0,
        priority,
        queued_ns,
        dispatch_ns,
    };
    assert_eq!(inversions(&[g(5, 1, 10), g(1, 5, 11)]), 1);
    assert_eq!(inversions(&[g(5, 1, 10), g(1, 10, 11)]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_survives_a_hard_close() {
    let d = Running::start(config()).await;
    let mut quitter = Analyzer::connect(d.analyzer, "quitter", 3.0, true).await;
    let mut keeper = Analyzer::connect(d.analyzer, "keeper", 1.0, true).await;
    d.wait_live(2).await;
    let n = 5000;
    emit(d.emitter, &log_stream(9, std::iter::repeat_n(4, n), 200)).await;
    assert!(quitter.recv_until(100, SECS(5)).await);
    drop(quitter); // mid-stream, nothing acknowledged
    let keeper_task = tokio::spawn(async move {
        let mut acked = 0;
        while keeper.got.len() < n {
            if keeper.next(SECS(10)).await.is_none() {
                break;
            }
            if keeper.got.len() - acked >= 100 || keeper.got.len() == n {
                acked = keeper.got.len();
                keeper.ack(acked as u64).await;
            }
        }
        keeper
    });
    let keeper = keeper_task.await.unwrap();
    let seqs: HashSet<u64> = keeper.got.iter().map(|g| g.seq).collect();
    assert_eq!(seqs.len(), n, "every frame reached the live analyzer");
    let snap = d.stop().await;
    assert_eq!(snap.totals.delivered, n as u64);
    assert!(snap.analyzers["quitter"].rerouted >= 100);
    assert_eq!(snap.analyzers["quitter"].failures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_analyzer_is_detected_and_its_frames_rerouted() {
    let cfg = distributor::Config {
        hang_timeout: Duration::from_millis(500),
        ..config()
    };
    let d = Running::start(cfg).await;
    // Stops reading: its socket buffers fill, then writes make no progress.
    let _hung = Analyzer::connect(d.analyzer, "hung", 1.0, false).await;
    let mut live = Analyzer::connect(d.analyzer, "live", 1.0, false).await;
    d.wait_live(2).await;
    let n = 60_000;
    let sender = tokio::spawn(emit(
        d.emitter,
        log_stream(2, std::iter::repeat_n(0, n), 1000),
    ));
    let reader = tokio::spawn(async move {
        live.recv_quiet(SECS(3)).await;
        live
    });
    sender.await.unwrap();
    let live = reader.await.unwrap();
    let snap = d.stop().await;
    let hung = &snap.analyzers["hung"];
    assert_eq!(hung.failures, 1, "hang detected");
    assert!(!hung.live);
    assert!(hung.rerouted > 0, "its queued frames were re-routed");
    assert_eq!(
        live.got.len() as u64 + hung.written,
        n as u64,
        "the rest reached the live one"
    );
    assert_eq!(snap.totals.delivered, n as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_the_same_id() {
    let d = Running::start(config()).await;
    let mut a = Analyzer::connect(d.analyzer, "a", 1.0, false).await;
    d.wait_live(1).await;
    emit(d.emitter, &log_stream(1, std::iter::repeat_n(0, 10), 64)).await;
    assert!(a.recv_until(10, SECS(5)).await);
    drop(a);
    d.wait_live(0).await;
    let mut a = Analyzer::connect(d.analyzer, "a", 1.0, false).await;
    d.wait_live(1).await;
    emit(d.emitter, &log_stream(2, std::iter::repeat_n(0, 10), 64)).await;
    assert!(a.recv_until(10, SECS(5)).await);
    assert!(a.got.iter().all(|g| g.emitter == 2));
    let snap = d.stop().await;
    assert_eq!(snap.totals.analyzer_sessions, 2);
    assert_eq!(snap.analyzers["a"].delivered, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hello_replaces_the_live_session() {
    let d = Running::start(config()).await;
    let mut old = Analyzer::connect(d.analyzer, "dup", 1.0, true).await;
    d.wait_live(1).await;
    emit(d.emitter, &log_stream(1, std::iter::repeat_n(0, 50), 64)).await;
    assert!(old.recv_until(50, SECS(5)).await);
    let mut new = Analyzer::connect(d.analyzer, "dup", 1.0, true).await;
    assert!(
        old.closed_within(SECS(5)).await,
        "the older connection is closed"
    );
    assert!(
        new.recv_until(50, SECS(5)).await,
        "its unacknowledged frames move to the new one"
    );
    new.ack(50).await;
    d.wait_metric("distributor_delivered_frames_total", 50.0)
        .await;
    let snap = d.stop().await;
    assert_eq!(snap.analyzers["dup"].rerouted, 50);
    assert_eq!(snap.totals.analyzer_sessions, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_wait_for_the_first_analyzer() {
    let d = Running::start(config()).await;
    emit(
        d.emitter,
        &log_stream(1, (0..500).map(|i| (i % 3) as u8), 64),
    )
    .await;
    d.wait_metric("distributor_holding_frames", 500.0).await;
    let mut a = Analyzer::connect(d.analyzer, "late", 1.0, false).await;
    assert!(a.recv_until(500, SECS(5)).await);
    // Held frames keep their order within a priority.
    for p in 0..3 {
        let seqs: Vec<u64> = a
            .got
            .iter()
            .filter(|g| g.priority == p)
            .map(|g| g.seq)
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    }
    let snap = d.stop().await;
    assert_eq!(snap.totals.delivered, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_frames_are_dropped_after_the_last_retry() {
    let cfg = distributor::Config {
        max_attempts: 3,
        ..config()
    }; // 10+20+40 ms
    let d = Running::start(cfg).await;
    emit(d.emitter, &log_stream(1, std::iter::repeat_n(6, 40), 64)).await;
    d.wait_metric("distributor_dropped_frames_total", 40.0)
        .await;
    let snap = d.stop().await;
    assert_eq!(
        snap.totals.dropped[DropReason::RetriesExhausted as usize][6],
        40
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_drop_counts_by_priority() {
    let cfg = distributor::Config {
        overflow: Overflow::Drop,
        queue_capacity: 10,
        drain_timeout: Duration::from_millis(300),
        ..config()
    };
    let d = Running::start(cfg).await;
    let _stuck = Analyzer::connect(d.analyzer, "stuck", 1.0, false).await;
    d.wait_live(1).await;
    let n = 20_000;
    // 20 MB: far more than the socket buffers and 10 queued frames hold.
    emit(d.emitter, &log_stream(1, std::iter::repeat_n(9, n), 1000)).await;
    d.wait_metric("distributor_received_frames_total", n as f64)
        .await;
    let snap = d.stop().await;
    let full = snap.totals.dropped[DropReason::QueueFull as usize][9];
    assert!(full > 0);
    assert_eq!(snap.totals.received, n as u64);
    assert_eq!(
        snap.totals.delivered + snap.totals.dropped_total(),
        n as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_backpressure_drops_nothing() {
    let cfg = distributor::Config {
        queue_capacity: 10,
        ..config()
    };
    let d = Running::start(cfg).await;
    let mut slow = Analyzer::connect(d.analyzer, "slow", 1.0, false).await;
    d.wait_live(1).await;
    let n = 20_000;
    let sender = tokio::spawn(emit(
        d.emitter,
        log_stream(1, std::iter::repeat_n(9, n), 1000),
    ));
    tokio::time::sleep(SECS(1)).await;
    assert!(
        !sender.is_finished(),
        "the emitter is held back while the analyzer does not read"
    );
    assert!(d.metric("distributor_received_frames_total").await < n as f64);
    assert!(slow.recv_until(n, SECS(20)).await);
    sender.await.unwrap();
    let snap = d.stop().await;
    assert_eq!(snap.totals.dropped_total(), 0);
    assert_eq!(snap.totals.delivered, n as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_emitter_frames_close_only_that_connection() {
    let cfg = distributor::Config {
        max_frame: 2000,
        ..config()
    };
    let d = Running::start(cfg).await;
    let mut a = Analyzer::connect(d.analyzer, "a", 1.0, false).await;
    d.wait_live(1).await;
    for bad in [&[0u8, 0, 0, 4, 0][..], &[0, 0, 7, 209][..]] {
        // 3 good frames, then a frame_len below 5 or above max_frame (2001).
        let mut wire = log_stream(1, [0, 0, 0], 64);
        wire.extend_from_slice(bad);
        wire.extend_from_slice(&log_stream(1, [0], 64)); // never read
        let mut s = tokio::net::TcpStream::connect(d.emitter).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, &wire)
            .await
            .unwrap();
        let mut rest = Vec::new();
        let eof = tokio::time::timeout(
            SECS(5),
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut rest),
        )
        .await;
        assert!(eof.is_ok(), "the distributor closed the connection");
        assert!(rest.is_empty(), "nothing is ever sent to an emitter");
    }
    // A truncated frame: the frame before it still counts.
    let mut wire = log_stream(2, [1], 64);
    wire.extend_from_slice(&[0, 0, 0, 50, 1, 2]);
    emit(d.emitter, &wire).await;
    // Another connection is untouched.
    emit(d.emitter, &log_stream(3, [2, 2], 64)).await;
    assert!(a.recv_until(9, SECS(5)).await);
    d.wait_metric("distributor_truncated_frames_total", 1.0)
        .await;
    let snap = d.stop().await;
    assert_eq!(snap.totals.received, 9);
    assert_eq!(snap.totals.protocol_errors, 2);
    assert_eq!(snap.totals.truncated, 1);
}

async fn expect_reject(d: &Running, hello: &[u8], reason_has: &str) {
    let mut a = Analyzer::connect_raw(d.analyzer, hello).await;
    match a.next(SECS(5)).await {
        Some(Downstream::Reject(reason)) => assert!(reason.contains(reason_has), "{reason}"),
        other => panic!("expected REJECT containing {reason_has:?}, got {other:?}"),
    }
    assert!(a.closed_within(SECS(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hellos_are_rejected_with_a_reason() {
    let cfg = distributor::Config {
        weights: [("pinned".to_owned(), 2.0)].into(),
        ..config()
    };
    let d = Running::start(cfg).await;
    expect_reject(&d, &raw_hello(2, 0, 1.0, b"a"), "version 2").await;
    expect_reject(&d, &raw_hello(1, 0x81, 1.0, b"a"), "flag").await;
    expect_reject(&d, &raw_hello(1, 0, 1.0, b""), "empty").await;
    expect_reject(&d, &raw_hello(1, 0, 1.0, &[b'x'; 65]), "65 bytes").await;
    expect_reject(&d, &raw_hello(1, 0, 1.0, &[b'x', 0xc3]), "UTF-8").await;
    expect_reject(&d, &raw_hello(1, 0, 0.0, b"a"), "weight").await;
    expect_reject(&d, &raw_hello(1, 0, f64::NAN, b"a"), "weight").await;
    expect_reject(&d, &raw_hello(1, 0, 1e300, b"a"), "--max-weight").await;
    expect_reject(&d, &[0, 0, 0x10, 0x01], "4096").await;
    expect_reject(
        &d,
        &[0, 0, 0, 13, 0x41, 0, 0, 0, 0, 0, 0, 0, 0],
        "kind 0x41",
    )
    .await;
    // A pinned weight wins over an invalid one.
    let mut ok = Analyzer::connect_raw(d.analyzer, &raw_hello(1, 0, -3.0, b"pinned")).await;
    d.wait_live(1).await;
    emit(d.emitter, &log_stream(1, [0], 64)).await;
    assert!(ok.recv_until(1, SECS(5)).await);
    let snap = d.stop().await;
    assert_eq!(snap.analyzers["pinned"].weight, 2.0);
    // By reason: 7 malformed, 2 invalid weights, 1 too large.
    assert_eq!(snap.totals.rejected_hellos, [7, 2, 1, 0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_after_hello_end_the_session_and_reroute() {
    let d = Running::start(config()).await;
    let mut keeper = Analyzer::connect(d.analyzer, "keeper", 1.0, false).await;
    let cases: [(&str, bool, Vec<u8>); 5] = [
        (
            "len",
            true,
            vec![0, 0, 0, 14, 0x41, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            "kind",
            true,
            vec![0, 0, 0, 13, 0x42, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            "exceeds",
            true,
            vec![0, 0, 0, 13, 0x41, 0, 0, 0, 0, 0, 0, 0, 99],
        ),
        ("decreases", true, vec![]),
        (
            "unasked",
            false,
            vec![0, 0, 0, 13, 0x41, 0, 0, 0, 0, 0, 0, 0, 1],
        ),
    ];
    let mut sent = 0;
    for (i, (id, acks, bad)) in cases.into_iter().enumerate() {
        let mut a = Analyzer::connect(d.analyzer, id, 1000.0, acks).await;
        d.wait_live(2).await;
        emit(
            d.emitter,
            &log_stream(i as u32, std::iter::repeat_n(0, 20), 64),
        )
        .await;
        sent += 20;
        assert!(a.recv_until(1, SECS(5)).await);
        if bad.is_empty() {
            a.ack(1).await;
            a.ack(0).await;
        } else {
            a.send(&bad).await;
        }
        assert!(a.closed_within(SECS(5)).await, "{id}: session ended");
        d.wait_live(1).await;
    }
    keeper.recv_quiet(Duration::from_millis(500)).await;
    let snap = d.stop().await;
    assert_eq!(snap.totals.protocol_errors, 5);
    for id in ["len", "kind", "exceeds", "decreases", "unasked"] {
        assert_eq!(snap.analyzers[id].failures, 1, "{id}");
    }
    // ACK sessions lose nothing: what they did not acknowledge reached the keeper.
    let acked: u64 = snap.analyzers.values().map(|a| a.acked).sum();
    assert_eq!(
        acked, 1,
        "only the 'decreases' session acknowledged one frame"
    );
    assert_eq!(snap.totals.delivered, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_within_its_deadline() {
    let cfg = distributor::Config {
        drain_timeout: SECS(3),
        ..config()
    };
    // With a live analyzer: everything queued is delivered before exit.
    let d = Running::start(cfg.clone()).await;
    let mut a = Analyzer::connect(d.analyzer, "a", 1.0, true).await;
    d.wait_live(1).await;
    emit(d.emitter, &log_stream(1, std::iter::repeat_n(0, 1000), 64)).await;
    d.wait_metric("distributor_received_frames_total", 1000.0)
        .await;
    let acker = tokio::spawn(async move {
        while a.next(SECS(5)).await.is_some() {
            a.ack(a.got.len() as u64).await;
        }
        a.got.len()
    });
    let snap = d.stop().await;
    assert_eq!(snap.totals.delivered, 1000);
    assert_eq!(acker.await.unwrap(), 1000);
    // With none: the deadline ends the drain and the held frames are counted.
    let d = Running::start(cfg).await;
    emit(d.emitter, &log_stream(1, std::iter::repeat_n(3, 100), 64)).await;
    d.wait_metric("distributor_holding_frames", 100.0).await;
    let started = Instant::now();
    let snap = d.stop().await;
    let took = started.elapsed();
    assert!(took >= SECS(3) && took < SECS(6), "{took:?}");
    assert_eq!(snap.totals.dropped[DropReason::Shutdown as usize][3], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_speaks_http() {
    let d = Running::start(config()).await;
    let text = d.metrics().await;
    assert!(text.contains("Content-Type: application/openmetrics-text; version=1.0.0"));
    assert!(text.contains("\ndistributor_received_frames_total 0\n"));
    assert_eq!(
        http_get(d.metrics, "/nope").await,
        "HTTP/1.1 404 Not Found served: /metrics, /ready, /healthz\n"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answers_head_and_bare_lf_requests() {
    let d = Running::start(config()).await;
    for (request, body) in [
        (&b"GET /metrics HTTP/1.0\n\n"[..], true),
        (&b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"[..], false),
    ] {
        let mut s = tokio::net::TcpStream::connect(d.metrics).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, request)
            .await
            .unwrap();
        let mut out = String::new();
        tokio::time::timeout(
            SECS(5),
            tokio::io::AsyncReadExt::read_to_string(&mut s, &mut out),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.contains("Content-Length: "), "{out}");
        assert_eq!(
            out.contains("distributor_received_frames_total"),
            body,
            "{out}"
        );
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_frame_is_cut_at_the_frame_timeout_and_a_steady_stream_is_not() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let d = Running::start(distributor::Config {
        frame_timeout: std::time::Duration::from_millis(500),
        ..config()
    })
    .await;
    let _a = Analyzer::connect(d.analyzer, "a", 1.0, false).await;
    d.wait_live(1).await;
    // A steady stream, cut at arbitrary byte boundaries, for three frame timeouts.
    let steady = tokio::spawn({
        let addr = d.emitter;
        async move {
            let mut e = tokio::net::TcpStream::connect(addr).await.unwrap();
            let bytes = log_stream(1, std::iter::repeat_n(0, 300), 64);
            for piece in bytes.chunks(101) {
                e.write_all(piece).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            e.shutdown().await.unwrap();
        }
    });
    // A frame that announces 100 bytes and arrives a byte every 100 ms.
    let mut slow = tokio::net::TcpStream::connect(d.emitter).await.unwrap();
    slow.write_all(&100u32.to_be_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut closed = false;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if slow.write_all(&[0]).await.is_err() {
            closed = true;
            break;
        }
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(std::time::Duration::from_millis(1), slow.read(&mut b)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "the trickling connection is closed");
    assert!(started.elapsed() < SECS(2), "{:?}", started.elapsed());
    steady.await.unwrap();
    d.wait_metric("distributor_received_frames_total", 300.0)
        .await;
    let text = d.metrics().await;
    assert!(
        text.contains("distributor_closed_connections_total{reason=\"slow_frame\"} 1"),
        "{text}"
    );
    let snap = d.stop().await;
    assert_eq!((snap.totals.received, snap.totals.truncated), (300, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_frame_left_at_the_end_of_the_shutdown_grace_is_counted() {
    use tokio::io::AsyncWriteExt;
    let d = Running::start(distributor::Config {
        drain_timeout: SECS(1),
        ..config()
    })
    .await;
    let mut e = tokio::net::TcpStream::connect(d.emitter).await.unwrap();
    // A frame that announces 100 bytes and sends 20, from an emitter that never closes.
    let mut partial = 100u32.to_be_bytes().to_vec();
    partial.extend_from_slice(&[0u8; 16]);
    e.write_all(&partial).await.unwrap();
    d.wait_metric("distributor_emitter_connections_open", 1.0)
        .await;
    let snap = d.stop().await;
    assert_eq!(snap.totals.truncated, 1);
    assert_eq!(snap.totals.received, 0);
    drop(e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_half_closes_emitters_and_reads_what_they_still_send() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let d = Running::start(config()).await;
    let mut a = Analyzer::connect(d.analyzer, "a", 1.0, false).await;
    d.wait_live(1).await;
    let mut e = tokio::net::TcpStream::connect(d.emitter).await.unwrap();
    e.write_all(&log_stream(1, std::iter::repeat_n(0, 10), 64))
        .await
        .unwrap();
    d.wait_metric("distributor_received_frames_total", 10.0)
        .await;
    let reader = tokio::spawn(async move {
        a.recv_quiet(SECS(1)).await;
        a.got.len()
    });
    let stopping = tokio::spawn(d.stop());
    // The distributor's FIN arrives; frames written after it are still taken.
    let mut byte = [0u8; 1];
    let eof = tokio::time::timeout(SECS(5), e.read(&mut byte))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(eof, 0);
    let mut more = log_stream(1, std::iter::repeat_n(0, 15), 64);
    let tail = more.split_off(10 * 69);
    e.write_all(&tail).await.unwrap();
    e.shutdown().await.unwrap();
    let snap = stopping.await.unwrap();
    assert_eq!(snap.totals.received, 15);
    assert_eq!(reader.await.unwrap(), 15);
}

/// The status line and body of `GET path` on the metrics listener.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut s, request.as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut s, &mut out)
        .await
        .unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    format!("{} {body}", head.lines().next().unwrap())
}

/// SIGTERM with `--drain-delay 1`: /ready turns 503 at once while the listeners stay open
/// and frames still flow, /healthz stays 200, and the process then drains and exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_503_for_the_drain_delay_before_the_listeners_close() {
    let d = Process::start(&["--drain-delay", "1"], None);
    assert_eq!(
        http_get(d.metrics, "/ready").await,
        "HTTP/1.1 200 OK ready\n"
    );
    assert_eq!(
        http_get(d.metrics, "/healthz").await,
        "HTTP/1.1 200 OK ok\n"
    );
    let mut a = Analyzer::connect(d.analyzer, "a", 1.0, false).await;
    d.wait_metric("distributor_analyzer_live", "", |v| v == 1.0)
        .await;
    let pid = nix::unistd::Pid::from_raw(d.pid() as i32);
    let termed = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut ready = String::new();
    for _ in 0..50 {
        ready = http_get(d.metrics, "/ready").await;
        if ready.contains("503") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ready, "HTTP/1.1 503 Service Unavailable draining\n");
    assert_eq!(
        http_get(d.metrics, "/healthz").await,
        "HTTP/1.1 200 OK ok\n"
    );
    // Still serving: a new emitter's frames are taken and delivered.
    emit(d.emitter, log_stream(4, [7; 50], 64)).await;
    assert!(a.recv_until(50, SECS(5)).await);
    assert!(termed.elapsed() < SECS(1), "{:?}", termed.elapsed());
    let log = d.stop();
    assert!(termed.elapsed() >= SECS(1), "exited before the delay ended");
    assert!(
        log.iter()
            .any(|l| l.contains("serving on for the drain delay"))
    );
    assert!(log.iter().any(|l| l.contains("final accounting")));
}
