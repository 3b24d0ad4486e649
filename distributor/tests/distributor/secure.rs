//! Acknowledged emitters (EMITTER HELLO and ACKs), TLS and mutual TLS with certificates
//! minted here (rcgen), identities, the access file and its reload, over real sockets.

use crate::support::*;
use certs::{Authority, Leaf, Usage};
use distributor::DropReason;
use protocol::analyzer::Downstream;
use runner::net::Stream;
use runner::tls::{Client, ClientFiles};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A CA, the distributor's certificate, and client certificates on demand, in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
    ca: Authority,
}

impl Pki {
    fn new() -> Self {
        Self::named_ca("test CA")
    }

    fn named_ca(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::new(name).unwrap();
        ca.write(dir.path()).unwrap();
        ca.write_leaf(dir.path(), &Leaf::new("distributor", Usage::Server))
            .unwrap();
        Self { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The test config with TLS, and mutual TLS when `mutual`.
    fn config(&self, mutual: bool) -> distributor::Config {
        distributor::Config {
            tls_cert: Some(self.path("distributor.pem")),
            tls_key: Some(self.path("distributor.key")),
            tls_client_ca: mutual.then(|| self.path("ca.pem")),
            handshake_timeout: Duration::from_millis(500),
            ..config()
        }
    }

    /// A client trusting this CA, presenting `leaf` when given.
    fn client(&self, leaf: Option<Leaf<'_>>) -> Client {
        let cert_key = leaf.map(|l| self.ca.write_leaf(self.dir.path(), &l).unwrap());
        ClientFiles {
            ca: self.path("ca.pem"),
            cert_key,
            server_name: None,
        }
        .client()
        .unwrap()
    }

    fn named(&self, name: &str) -> Client {
        self.client(Some(Leaf::new(name, Usage::Client)))
    }

    /// A distributor with `config`, its /metrics scraped over TLS.
    async fn start(&self, config: distributor::Config) -> Running {
        let mut d = Running::start(config).await;
        d.scrape_tls = Some(self.client(None));
        d
    }

    /// An analyzer with a certificate for `identity` saying HELLO with `id`.
    async fn analyzer(&self, addr: SocketAddr, identity: &str, id: &str) -> Analyzer {
        let s = Stream::connect(addr, Some(&self.named(identity)))
            .await
            .unwrap();
        Analyzer::over(s, &hello(id, 1.0, false)).await
    }
}

/// An EMITTER HELLO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acked_emitter_learns_what_was_delivered_and_dropped() {
    let d = Running::start(config()).await;
    // At least once, and holding back its ACKs: nothing is secured until it acknowledges.
    let mut a = Analyzer::connect(d.analyzer, "a", 1.0, true).await;
    d.wait_live(1).await;
    let mut wire = emitter_hello("e1", true);
    // One priority: delivered (and acknowledged) in the order sent, so the analyzer's
    // count is also the emitter's secured prefix.
    wire.extend_from_slice(&log_stream(1, [9; 500], 64));
    let mut e = connect(d.emitter, None, &wire).await;
    assert!(a.recv_until(500, SECS(10)).await);
    let mut replies = Replies::new();
    assert_eq!(
        replies.next(&mut e, Duration::from_millis(300)).await,
        None,
        "no ACK while the analyzer holds every frame"
    );
    a.ack(200).await;
    assert!(replies.until(&mut e, 200, SECS(5)).await);
    a.ack(500).await;
    assert!(replies.until(&mut e, 500, SECS(5)).await);
    assert_eq!(
        d.metric("distributor_acked_emitter_connections_total")
            .await,
        1.0
    );
    assert!(d.metric("distributor_emitter_acks_total").await >= 2.0);
    drop(e);
    d.stop().await;

    // Dropped (and counted) is secured too: no analyzer, a holding queue of 10.
    let d = Running::start(distributor::Config {
        holding_capacity: 10,
        overflow: distributor::Overflow::Drop,
        ..config()
    })
    .await;
    let mut wire = emitter_hello("e2", true);
    wire.extend_from_slice(&log_stream(2, [5; 30], 64));
    let mut e = connect(d.emitter, None, &wire).await;
    let mut replies = Replies::new();
    // 20 dropped at once (holding full): frames 11-30 secured, 1-10 held, so the count
    // stays 0 until the held ones go.
    d.wait_metric("distributor_dropped_frames_total", 20.0)
        .await;
    assert_eq!(replies.next(&mut e, Duration::from_millis(300)).await, None);
    let mut a = Analyzer::connect(d.analyzer, "a", 1.0, false).await;
    assert!(a.recv_until(10, SECS(5)).await);
    assert!(replies.until(&mut e, 30, SECS(5)).await);
    drop(e);
    let snap = d.stop().await;
    assert_eq!(snap.totals.dropped_by(DropReason::HoldingFull), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_emitter_hello_is_rejected_and_only_that_connection_ends() {
    let d = Running::start(config()).await;
    let mut a = Analyzer::connect(d.analyzer, "a", 1.0, false).await;
    d.wait_live(1).await;
    let mut good = connect(d.emitter, None, &log_stream(1, [1; 5], 64)).await;
    for (bytes, reason) in [
        (&b"LDE1\x02\x01\x01e"[..], "version 2"),
        (b"LDE1\x01\x08\x01e", "flag bits 0x08"),
        (b"LDE1\x01\x01\x00", "empty"),
        (b"LDE1\x01\x01\x41", "id_len 65"),
        (b"LDE1\x01\x01\x02\xc3\x28", "not valid UTF-8"),
    ] {
        let mut s = connect(d.emitter, None, bytes).await;
        let mut r = Replies::new();
        match r.next(&mut s, SECS(5)).await {
            Some(Reply::Reject(why)) => assert!(why.contains(reason), "{why}"),
            other => panic!("{bytes:?}: expected a REJECT, got {other:?}"),
        }
        assert_eq!(r.next(&mut s, SECS(5)).await, Some(Reply::Closed));
    }
    good.write_all(&log_stream(1, [2; 5], 64)).await.unwrap();
    good.shutdown().await.unwrap();
    assert!(
        a.recv_until(10, SECS(5)).await,
        "the good emitter is untouched"
    );
    // A plain emitter that never sends a HELLO gets no reply at all.
    let mut r = Replies::new();
    assert_eq!(r.next(&mut good, SECS(1)).await, Some(Reply::Closed));
    let snap = d.stop().await;
    assert_eq!(snap.totals.rejected_emitter_hellos, [5, 0, 0]);
    assert_eq!(snap.totals.received, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_binds_analyzer_ids_to_certificates() {
    let pki = Pki::new();
    let d = pki.start(pki.config(true)).await;
    let tls = |name: &str| pki.named(name);
    let mut a1 = pki.analyzer(d.analyzer, "a1", "a1").await;
    d.wait_live(1).await;
    // An impostor with a valid certificate of its own claims a1's id: REJECT, and a1's
    // session is untouched.
    let mut imp = pki.analyzer(d.analyzer, "impostor", "a1").await;
    match imp.next(SECS(5)).await {
        Some(Downstream::Reject(why)) => {
            assert!(
                why.contains("\"a1\"") && why.contains("\"impostor\""),
                "{why}"
            )
        }
        other => panic!("expected a REJECT, got {other:?}"),
    }
    // An emitter over mutual TLS, with an EMITTER HELLO naming itself, then one lying.
    let mut wire = emitter_hello("e1", false);
    wire.extend_from_slice(&log_stream(1, [3; 20], 64));
    let mut e = connect(d.emitter, Some(&tls("e1")), &wire).await;
    e.shutdown().await.unwrap();
    assert!(a1.recv_until(20, SECS(5)).await);
    let mut liar = connect(d.emitter, Some(&tls("e2")), &emitter_hello("e1", false)).await;
    match Replies::new().next(&mut liar, SECS(5)).await {
        Some(Reply::Reject(why)) => assert!(why.contains("identity \"e2\""), "{why}"),
        other => panic!("expected a REJECT, got {other:?}"),
    }
    // Identity from the common name when the certificate has no DNS name.
    let cn = pki.client(Some(Leaf {
        san: false,
        ..Leaf::new("cn-only", Usage::Client)
    }));
    let s = Stream::connect(d.analyzer, Some(&cn)).await.unwrap();
    let _cn = Analyzer::over(s, &hello("cn-only", 1.0, false)).await;
    d.wait_live(2).await;
    assert_eq!(
        metric_sum(
            &d.metrics().await,
            "distributor_rejected_hellos_total",
            "reason=\"identity\""
        ),
        1.0
    );
    let snap = d.stop().await;
    assert_eq!(snap.totals.rejected_emitter_hellos, [0, 1, 0]);
    assert_eq!(snap.analyzers["a1"].failures, 0, "a1 was never taken over");
}

/// Waits until the distributor counted a handshake failure of `reason` on `listener`.
async fn wait_refused(d: &Running, listener: &str, reason: &str, n: f64) {
    let labels = format!("listener=\"{listener}\",reason=\"{reason}\"");
    for _ in 0..500 {
        let text = d.metrics().await;
        if metric_sum(&text, "distributor_tls_handshake_failures_total", &labels) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {reason} failure on {listener}: {}", d.metrics().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handshakes_are_counted_by_reason_and_touch_nothing_else() {
    let pki = Pki::new();
    let d = pki.start(pki.config(true)).await;
    let mut a = pki.analyzer(d.analyzer, "a", "a").await;
    d.wait_live(1).await;
    let mut good = connect(d.emitter, Some(&pki.named("e")), &log_stream(1, [1; 5], 64)).await;

    // No client certificate. (TLS 1.3 clients finish before the server judges them; the
    // server then closes.)
    let _ = Stream::connect(d.emitter, Some(&pki.client(None))).await;
    wait_refused(&d, "emitter", "no_certificate", 1.0).await;
    // A certificate from another CA.
    let other = Pki::named_ca("other CA");
    let stranger = ClientFiles {
        ca: pki.path("ca.pem"),
        cert_key: Some(
            other
                .ca
                .write_leaf(other.dir.path(), &Leaf::new("x", Usage::Client))
                .unwrap(),
        ),
        server_name: None,
    }
    .client()
    .unwrap();
    let _ = Stream::connect(d.analyzer, Some(&stranger)).await;
    wait_refused(&d, "analyzer", "unknown_issuer", 1.0).await;
    // An expired certificate.
    let expired = pki.client(Some(Leaf {
        days: -1,
        ..Leaf::new("old", Usage::Client)
    }));
    let _ = Stream::connect(d.emitter, Some(&expired)).await;
    wait_refused(&d, "emitter", "expired", 1.0).await;
    // Plain TCP on the TLS port.
    let mut plain = Stream::connect(d.emitter, None).await.unwrap();
    plain.write_all(&log_stream(9, [1; 3], 64)).await.unwrap();
    wait_refused(&d, "emitter", "not_tls", 1.0).await;
    // A client that connects and says nothing: closed at the handshake timeout (0.5 s).
    let mut silent = Stream::connect(d.analyzer, None).await.unwrap();
    wait_refused(&d, "analyzer", "timeout", 1.0).await;
    let mut rest = Vec::new();
    assert_eq!(silent.read_to_end(&mut rest).await.unwrap_or(0), 0);

    // The others were untouched.
    good.write_all(&log_stream(1, [2; 5], 64)).await.unwrap();
    good.shutdown().await.unwrap();
    assert!(a.recv_until(10, SECS(5)).await);
    let snap = d.stop().await;
    assert_eq!(snap.totals.received, 10);
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules_limit_priorities_and_keep_the_connection_open() {
    let pki = Pki::new();
    let access = pki.path("access.toml");
    write(
        &access,
        "[emitters.\"low-*\"]\npriorities = \"128-255\"\n[analyzers]\nallow = [\"a*\"]\n",
    );
    let d = pki
        .start(distributor::Config {
            access: Some(access),
            ..pki.config(true)
        })
        .await;
    let mut a = pki.analyzer(d.analyzer, "a1", "a1").await;
    d.wait_live(1).await;
    let mut b = pki.analyzer(d.analyzer, "b1", "b1").await;
    match b.next(SECS(5)).await {
        Some(Downstream::Reject(why)) => assert!(why.contains("may not connect"), "{why}"),
        other => panic!("expected a REJECT, got {other:?}"),
    }
    // low-1 sends every priority once: 0-127 are forbidden, the connection stays open.
    let mut low = connect(
        d.emitter,
        Some(&pki.named("low-1")),
        &log_stream(1, 0..=255, 64),
    )
    .await;
    assert!(a.recv_until(128, SECS(5)).await);
    low.write_all(&log_stream(2, [200; 10], 64)).await.unwrap();
    assert!(
        a.recv_until(138, SECS(5)).await,
        "still open after forbidden frames"
    );
    assert!(a.got.iter().all(|g| g.priority >= 128));
    // Another identity may send anything.
    let mut hi = connect(
        d.emitter,
        Some(&pki.named("high")),
        &log_stream(3, [0; 10], 64),
    )
    .await;
    hi.shutdown().await.unwrap();
    assert!(a.recv_until(148, SECS(5)).await);
    low.shutdown().await.unwrap();
    let snap = d.stop().await;
    assert_eq!(snap.totals.dropped_by(DropReason::Forbidden), 128);
    let forbidden = snap.totals.dropped[DropReason::Forbidden as usize];
    assert!(forbidden[..128].iter().all(|n| *n == 1) && forbidden[128..].iter().all(|n| *n == 0));
    assert_eq!(snap.totals.rejected_hellos[5], 1, "not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_access_file_and_the_certificates() {
    let pki = Pki::new();
    let mut d = mutual_process(&pki, "[analyzers]\nallow = [\"a*\"]\n");
    let access = pki.path("access.toml");
    let live = "distributor_analyzer_live";
    let mut a1 = pki.analyzer(d.analyzer, "a1", "a1").await;
    d.wait_metric(live, "", |v| v == 1.0).await;
    let mut b1 = pki.analyzer(d.analyzer, "b1", "b1").await;
    assert!(matches!(
        b1.next(SECS(5)).await,
        Some(Downstream::Reject(_))
    ));

    // A bad file is refused whole; the rules in force stay.
    write(&access, "[analyzers]\nallow = [\"b*x*\"]\n");
    d.hup();
    d.wait_metric(live, "", |v| v == 1.0).await;
    for _ in 0..100 {
        if d.log().iter().any(|l| l.contains("access file refused")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        d.log()
            .iter()
            .any(|l| l.contains("access file refused") && l.contains("b*x*"))
    );

    // Now b* only: a1's session ends (revoked), b1 gets in.
    write(&access, "[analyzers]\nallow = [\"b*\"]\n");
    d.hup();
    assert!(a1.closed_within(SECS(5)).await, "a1 revoked");
    let _b1 = pki.analyzer(d.analyzer, "b1", "b1").await;
    d.wait_metric(live, "analyzer=\"b1\"", |v| v == 1.0).await;
    d.wait_metric(
        "distributor_analyzer_failures_total",
        "reason=\"revoked\"",
        |v| v == 1.0,
    )
    .await;

    // A new CA and certificate for the distributor: clients of the new CA get in only
    // after SIGHUP.
    let next = Authority::new("next CA").unwrap();
    let next_dir = tempfile::tempdir().unwrap();
    next.write(next_dir.path()).unwrap();
    let new_client = ClientFiles {
        ca: next_dir.path().join("ca.pem"),
        cert_key: None,
        server_name: None,
    }
    .client()
    .unwrap();
    let metrics = d.metrics;
    let scrape = |c: Client| async move {
        let mut s = Stream::connect(metrics, Some(&c)).await?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.ok();
        let mut text = String::new();
        s.read_to_string(&mut text).await.ok();
        Ok::<_, runner::tls::TlsError>(text)
    };
    assert!(
        scrape(new_client.clone()).await.is_err(),
        "old certificate in force"
    );
    next.write_leaf(pki.dir.path(), &Leaf::new("distributor", Usage::Server))
        .unwrap();
    d.hup();
    let mut ok = false;
    for _ in 0..100 {
        if scrape(new_client.clone())
            .await
            .is_ok_and(|t| t.contains("200 OK"))
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the reloaded certificate is served: {:?}", d.log());
    d.scrape_tls = Some(new_client);
    let log = d.stop();
    assert!(
        log.iter()
            .any(|l| l.contains("TLS certificate and key reloaded"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_listeners_beyond_loopback_are_warned_about() {
    let d = Process::start_on("0.0.0.0", &[], None);
    let log = d.log();
    assert!(
        log.iter()
            .any(|l| l.contains("WARN") && l.contains("beyond loopback without TLS")),
        "{log:?}"
    );
    drop(d);
    let quiet = Process::start(&[], None).log();
    assert!(!quiet.iter().any(|l| l.contains("beyond loopback")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_what_counts_as_delivered_reaches_the_analyzer() {
    // An analyzer that does not read fills its socket: bytes then wait inside the TLS
    // session, and must not count as delivered until they are on the socket.
    let pki = Pki::new();
    let d = pki
        .start(distributor::Config {
            drain_timeout: Duration::from_millis(500),
            ..pki.config(true)
        })
        .await;
    let mut a = pki.analyzer(d.analyzer, "a", "a").await;
    d.wait_live(1).await;
    let mut e = connect(
        d.emitter,
        Some(&pki.named("e")),
        &log_stream(1, [7; 20_000], 512),
    )
    .await;
    e.shutdown().await.unwrap();
    d.wait_metric("distributor_received_frames_total", 20_000.0)
        .await;
    let snap = d.stop().await;
    assert!(
        snap.totals.dropped_by(DropReason::Shutdown) > 0,
        "the analyzer held frames back at shutdown"
    );
    a.recv_quiet(Duration::from_secs(2)).await;
    // Every frame counted delivered arrived. Frames of a flush still under way at the drain
    // deadline count as dropped (shutdown) though some of their bytes were on the socket:
    // the analyzer may see a few of those too, never fewer than delivered.
    let got = a.got.len() as u64;
    assert!(
        got >= snap.totals.delivered,
        "{got} < {}",
        snap.totals.delivered
    );
    assert!(got <= snap.totals.received);
}

/// A distributor binary over mutual TLS with `access` as its access file.
fn mutual_process(pki: &Pki, access: &str) -> Process {
    let path = pki.path("access.toml");
    write(&path, access);
    let args = [
        "--tls-cert",
        pki.path("distributor.pem").to_str().unwrap(),
        "--tls-key",
        pki.path("distributor.key").to_str().unwrap(),
        "--tls-client-ca",
        pki.path("ca.pem").to_str().unwrap(),
        "--access",
        path.to_str().unwrap(),
    ]
    .map(str::to_owned);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut d = Process::start(&args, None);
    d.scrape_tls = Some(pki.client(None));
    d
}

/// The REJECT an analyzer gets, or a panic.
async fn rejected(a: &mut Analyzer, d: &Process) -> String {
    match a.next(SECS(5)).await {
        Some(Downstream::Reject(why)) => why,
        other => panic!("expected a REJECT, got {other:?}: {:#?}", d.log()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_weights_bind_certificates_under_mutual_tls() {
    let pki = Pki::new();
    // Only emitter rules: under mutual TLS no certificate may be an analyzer.
    let d = mutual_process(&pki, "[emitters.\"low-*\"]\npriorities = \"128-255\"\n");
    let why = rejected(&mut pki.analyzer(d.analyzer, "a1", "a1").await, &d).await;
    assert!(
        why.contains("\"a1\" may not connect as an analyzer"),
        "{why}"
    );
    assert!(
        d.log().iter().any(|l| l.contains("names no analyzers")),
        "the default deny is said at start"
    );
    d.stop();

    let d = mutual_process(
        &pki,
        r#"
        [roles]
        analyzers = ["sink-*"]
        emitters = ["app-*"]
        [analyzers.max_weights]
        "sink-big" = 1000
        "sink-*" = 10
        "#,
    );
    let mut a1 = pki.analyzer(d.analyzer, "sink-1", "sink-1").await;
    d.wait_metric("distributor_analyzer_live", "", |v| v == 1.0)
        .await;
    // An emitter's certificate is refused as an analyzer.
    let why = rejected(&mut pki.analyzer(d.analyzer, "app-1", "app-1").await, &d).await;
    assert!(
        why.contains("\"app-1\" may not connect as an analyzer"),
        "{why}"
    );
    // A weight over the identity's limit is refused, naming the limit; within it, taken.
    let s = Stream::connect(d.analyzer, Some(&pki.named("sink-2")))
        .await
        .unwrap();
    let mut heavy = Analyzer::over(s, &hello("sink-2", 1e6, false)).await;
    let why = rejected(&mut heavy, &d).await;
    assert!(
        why.contains("exceeds the limit of 10 (the access file's analyzers.max_weights)"),
        "{why}"
    );
    let s = Stream::connect(d.analyzer, Some(&pki.named("sink-big")))
        .await
        .unwrap();
    let _big = Analyzer::over(s, &hello("sink-big", 1000.0, false)).await;
    d.wait_metric("distributor_analyzer_live", "", |v| v == 2.0)
        .await;
    // An analyzer's certificate is refused as an emitter: with an EMITTER HELLO, a REJECT.
    let mut e = connect(
        d.emitter,
        Some(&pki.named("sink-3")),
        &emitter_hello("sink-3", true),
    )
    .await;
    match Replies::new().next(&mut e, SECS(5)).await {
        Some(Reply::Reject(why)) => {
            assert!(
                why.contains("\"sink-3\" may not connect as an emitter"),
                "{why}"
            )
        }
        other => panic!("expected a REJECT, got {other:?}"),
    }
    // Without one, the connection is closed before any frame is taken.
    let mut plain = connect(
        d.emitter,
        Some(&pki.named("sink-4")),
        &log_stream(1, [3; 10], 64),
    )
    .await;
    let mut rest = Vec::new();
    let _ = plain.read_to_end(&mut rest).await;
    // A listed emitter's frames flow.
    let mut app = connect(
        d.emitter,
        Some(&pki.named("app-1")),
        &log_stream(2, [5; 10], 64),
    )
    .await;
    app.shutdown().await.unwrap();
    d.wait_metric("distributor_delivered_frames_total", "", |v| v == 10.0)
        .await;
    let text = d.metrics().await;
    let count = |name: &str, reason: &str| metric_sum(&text, name, &format!("reason=\"{reason}\""));
    assert_eq!(
        count("distributor_rejected_hellos_total", "not_allowed"),
        1.0
    );
    assert_eq!(
        count("distributor_rejected_hellos_total", "weight_too_large"),
        1.0
    );
    assert_eq!(
        count("distributor_rejected_emitter_hellos_total", "not_allowed"),
        1.0
    );
    assert_eq!(
        count("distributor_closed_connections_total", "not_allowed"),
        1.0
    );
    assert_eq!(
        metric_sum(&text, "distributor_received_frames_total", ""),
        10.0
    );
    assert!(a1.recv_until(0, SECS(1)).await);
    d.stop();
}
