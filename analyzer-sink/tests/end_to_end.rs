//! Distributor, two sinks and the loadgen in one test on loopback: every message sent is
//! received exactly once, counted the same by every component.

use clap::Parser;
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
    let dir = std::env::temp_dir().join(format!("e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
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

    let out = dir.to_str().unwrap().to_owned();
    let analyzer = analyzer.to_string();
    let mut sinks = Vec::new();
    for args in [
        vec!["--id", "heavy", "--weight", "3", "--acks"],
        vec!["--id", "light", "--weight", "1", "--log", "summary"],
    ] {
        let mut argv = vec!["analyzer-sink", "--distributor", &analyzer, "--out", &out];
        argv.extend(args.iter().copied());
        let argv: Vec<String> = argv.into_iter().map(String::from).collect();
        let (stop, stopped) = stop_pair();
        sinks.push((
            stop,
            tokio::spawn(analyzer_sink::run(
                analyzer_sink::Config::parse_from(argv),
                stopped,
            )),
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let target = emitter.to_string();
    let lg = loadgen::Config::parse_from([
        "loadgen",
        "--target",
        &target,
        "--emitters",
        "4",
        "--rate",
        "2000",
        "--duration",
        "2",
        "--priority-mode",
        "cyclic",
        "--out",
        &out,
    ]);
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
    let manifest: u64 = csv::Reader::from_path(dir.join("emitters-0.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap()[1].parse::<u64>().unwrap())
        .sum();
    let per_second: u64 = csv::Reader::from_path(dir.join("sent-0.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap()[3].parse::<u64>().unwrap())
        .sum();
    let arrivals = csv::Reader::from_path(dir.join("arrivals-heavy.csv"))
        .unwrap()
        .records()
        .count() as u64;
    let summarized: u64 = csv::Reader::from_path(dir.join("summary-light.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap()[2].parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        (manifest, per_second, arrivals + summarized),
        (sent, sent, sent)
    );
    let share = arrivals as f64 / sent as f64;
    assert!((share - 0.75).abs() < 0.03, "weight 3 of 4: {share}");
}
