//! Distributor, two sinks and the loadgen in one test on loopback, as libraries: every
//! message sent is received exactly once, counted the same by every component and by the
//! files they write (read back through the run folder's row types).

use runfolder::names;
use runfolder::rows::{Arrival, EmitterTotals, Sent, SummarySecond};
use runfolder::table::read_all;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

fn stop_pair() -> (oneshot::Sender<()>, impl Future<Output = ()>) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_distributor_and_sinks_agree_exactly() {
    // Removed when the test ends.
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().to_path_buf();
    let listeners = distributor::Listeners {
        emitter: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        analyzer: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        metrics: None,
    };
    let (emitter, analyzer) = (
        listeners.emitter.local_addr().unwrap(),
        listeners.analyzer.local_addr().unwrap(),
    );
    let config = distributor::Config {
        seed: Some(3),
        ..distributor::Config::default()
    };
    let (stop_d, d_stopped) = stop_pair();
    let dist = tokio::spawn(distributor::run(config, listeners, d_stopped));

    let mut sinks = Vec::new();
    for sink in [
        analyzer_sink::Config {
            weight: 3.0,
            acks: true,
            ..analyzer_sink::Config::with_id("heavy")
        },
        analyzer_sink::Config {
            weight: 1.0,
            log: runfolder::LogMode::Summary,
            ..analyzer_sink::Config::with_id("light")
        },
    ] {
        let config = analyzer_sink::Config {
            distributor: analyzer,
            out: dir.clone(),
            ..sink
        };
        let (stop, stopped) = stop_pair();
        sinks.push((stop, tokio::spawn(analyzer_sink::run(config, stopped))));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let lg = loadgen::Config {
        target: emitter,
        emitters: 4,
        rate: loadgen::Rate::PerSecond(2000.0),
        duration: 2.0,
        priority_mode: runfolder::PriorityMode::Cyclic,
        out: dir.clone(),
        ..loadgen::Config::default()
    };
    let summary = loadgen::run(lg, std::future::pending()).await.unwrap();
    let sent = summary.sent();
    assert!(sent > 15_000, "{sent}");
    assert!(
        summary
            .emitters
            .iter()
            .all(|e| e.in_doubt.is_empty() && e.unsent == 0 && e.errors == 0)
    );

    stop_d.send(()).unwrap();
    let snap = dist.await.unwrap().unwrap();
    assert_eq!(snap.totals.received, sent);
    assert_eq!(snap.totals.delivered, sent);
    assert_eq!(snap.totals.dropped_total(), 0);
    let mut unique = 0;
    for (stop, handle) in sinks {
        stop.send(()).unwrap();
        let c = handle.await.unwrap().unwrap();
        assert_eq!((c.duplicates, c.corrupt, c.non_probe), (0, 0, 0));
        unique += c.unique;
    }
    assert_eq!(unique, sent, "every message sent reached exactly one sink");
    // The files say the same: manifest sent = per-second sums = arrivals + summary counts.
    let manifest: u64 = read_all::<EmitterTotals>(&names::EMITTERS.path(&dir, 0))
        .unwrap()
        .iter()
        .map(|r| r.sent)
        .sum();
    let per_second: u64 = read_all::<Sent>(&names::SENT.path(&dir, 0))
        .unwrap()
        .iter()
        .map(|r| r.sent)
        .sum();
    let arrivals = read_all::<Arrival>(&names::ARRIVALS.path(&dir, "heavy"))
        .unwrap()
        .len() as u64;
    let summarized: u64 = read_all::<SummarySecond>(&names::SUMMARY.path(&dir, "light"))
        .unwrap()
        .iter()
        .map(|r| r.count)
        .sum();
    assert_eq!(
        (manifest, per_second, arrivals + summarized),
        (sent, sent, sent)
    );
    let share = arrivals as f64 / sent as f64;
    assert!((share - 0.75).abs() < 0.03, "weight 3 of 4: {share}");
}
