//! Real sockets on loopback: a distributor on port 0, emitters and analyzers speaking the
//! wire protocol from the `protocol` crate.

use bytes::{BufMut, BytesMut};
use distributor::Snapshot;
use distributor::{Config, Listeners};
use protocol::analyzer::{self as wire, Downstream, DownstreamDecoder, Hello};
use protocol::emitter::EmitterHello;
use protocol::probe::{self, Probe};
use runner::net::Stream;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A distributor running inside the test on loopback ports.
pub struct Running {
    pub emitter: SocketAddr,
    pub analyzer: SocketAddr,
    pub metrics: SocketAddr,
    /// How to reach /metrics when the distributor serves TLS.
    pub scrape_tls: Option<runner::tls::Client>,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Result<Snapshot, distributor::RunError>>,
}

impl Running {
    pub async fn start(config: Config) -> Self {
        let bind = || TcpListener::bind("127.0.0.1:0");
        let listeners = Listeners {
            emitter: bind().await.unwrap(),
            analyzer: bind().await.unwrap(),
            metrics: Some(bind().await.unwrap()),
        };
        let emitter = listeners.emitter.local_addr().unwrap();
        let analyzer = listeners.analyzer.local_addr().unwrap();
        let metrics = listeners.metrics.as_ref().unwrap().local_addr().unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(distributor::run(config, listeners, async move {
            let _ = rx.await;
        }));
        Self {
            emitter,
            analyzer,
            metrics,
            scrape_tls: None,
            stop,
            handle,
        }
    }

    /// Stops it and returns the final accounting, checking the invariant every test needs.
    pub async fn stop(self) -> Snapshot {
        let _ = self.stop.send(());
        let snap = self.handle.await.unwrap().unwrap();
        let t = &snap.totals;
        assert_eq!(snap.in_system(), 0, "nothing left inside after shutdown");
        assert_eq!(
            t.received,
            t.delivered + t.dropped_total(),
            "received = delivered + dropped"
        );
        snap
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let mut s = Stream::connect(self.metrics, self.scrape_tls.as_ref())
            .await
            .unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        text
    }

    /// Sum of a metric's samples (all label sets).
    pub async fn metric(&self, name: &str) -> f64 {
        metric_sum(&self.metrics().await, name, "")
    }

    /// Waits until `n` analyzer sessions are live.
    pub async fn wait_live(&self, n: usize) {
        self.wait_metric("distributor_analyzer_live", n as f64)
            .await;
    }

    /// Waits until a metric's sum equals `value` (10 s at most).
    pub async fn wait_metric(&self, name: &str, value: f64) {
        for _ in 0..1000 {
            if self.metric(name).await == value {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} never reached {value}: {}", self.metric(name).await);
    }
}

/// A probe payload for (emitter, seq) of `size` bytes at `priority`.
pub fn probe_payload(priority: u8, emitter: u32, seq: u64, size: usize) -> BytesMut {
    let mut b = BytesMut::new();
    let filler = vec![(seq % 251) as u8; size.saturating_sub(probe::MIN_LEN)];
    probe::encode(
        priority,
        Probe {
            emitter,
            seq,
            sent_ns: protocol::now_ns(),
        },
        &filler,
        &mut b,
    );
    b
}

/// LOG frames of probes with the given priorities, seqs from 0.
pub fn log_stream(emitter: u32, priorities: impl IntoIterator<Item = u8>, size: usize) -> BytesMut {
    let mut wire = BytesMut::new();
    for (seq, p) in priorities.into_iter().enumerate() {
        let payload = probe_payload(p, emitter, seq as u64, size);
        protocol::log::encode(p, &payload, &mut wire).unwrap();
    }
    wire
}

/// Connects as an emitter, writes `bytes`, closes.
pub async fn emit(addr: SocketAddr, bytes: impl AsRef<[u8]>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes.as_ref()).await.unwrap();
    s.shutdown().await.unwrap();
}

/// One delivered probe as an analyzer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Got {
    pub emitter: u32,
    pub seq: u64,
    pub priority: u8,
    pub queued_ns: u64,
    pub dispatch_ns: u64,
}

/// A test analyzer, over plain TCP or TLS.
pub struct Analyzer {
    pub stream: Stream,
    buf: BytesMut,
    dec: DownstreamDecoder,
    pub got: Vec<Got>,
    /// DELIVER frames seen, probes or not.
    pub delivered: usize,
}

impl Analyzer {
    pub async fn connect(addr: SocketAddr, id: &str, weight: f64, acks: bool) -> Self {
        Self::connect_raw(addr, &hello(id, weight, acks)).await
    }

    /// Connects and sends `first` as is.
    pub async fn connect_raw(addr: SocketAddr, first: &[u8]) -> Self {
        let stream = Stream::connect(addr, None).await.unwrap();
        Self::over(stream, first).await
    }

    /// Sends `first` on an open connection (a TLS one, say).
    pub async fn over(mut stream: Stream, first: &[u8]) -> Self {
        stream.write_all(first).await.unwrap();
        Self {
            stream,
            buf: BytesMut::with_capacity(1 << 16),
            dec: DownstreamDecoder::new(1 << 20),
            got: Vec::new(),
            delivered: 0,
        }
    }

    /// The next frame; `None` on EOF, error or after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Downstream> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                if let Downstream::Deliver(d) = &f {
                    self.delivered += 1;
                    // Payloads that are not probes are counted, not verified.
                    let Ok(p) = probe::verify(d.priority, &d.payload) else {
                        return Some(f);
                    };
                    self.got.push(Got {
                        emitter: p.emitter,
                        seq: p.seq,
                        priority: d.priority,
                        queued_ns: d.queued_ns,
                        dispatch_ns: d.dispatch_ns,
                    });
                }
                return Some(f);
            }
            self.buf.reserve(1 << 16);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// Reads until `self.got` holds `n` deliveries; false after `timeout`.
    pub async fn recv_until(&mut self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.got.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || self.next(left).await.is_none() {
                return false;
            }
        }
        true
    }

    /// Reads everything that arrives until `quiet` passes with nothing new.
    pub async fn recv_quiet(&mut self, quiet: Duration) {
        while self.next(quiet).await.is_some() {}
    }

    pub async fn ack(&mut self, count: u64) {
        let mut b = BytesMut::new();
        wire::encode_ack(count, &mut b);
        self.stream.write_all(&b).await.unwrap();
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Whether the distributor closed the connection within `timeout` (frames read on
    /// the way are kept).
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.buf.reserve(1 << 16);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => while let Ok(Some(_)) = self.dec.decode(&mut self.buf) {},
                Err(_) => return false,
            }
        }
    }
}

/// A raw HELLO with every field chosen by the test.
pub fn raw_hello(version: u16, flags: u8, weight: f64, id: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u32((16 + id.len()) as u32);
    b.put_u8(wire::KIND_HELLO);
    b.put_u16(version);
    b.put_u8(flags);
    b.put_f64(weight);
    b.put_slice(id);
    b
}

/// A HELLO for `id`.
pub fn hello(id: &str, weight: f64, acks: bool) -> BytesMut {
    let mut b = BytesMut::new();
    Hello {
        version: wire::VERSION,
        acks,
        compression: None,
        weight,
        id: id.to_owned(),
    }
    .encode(&mut b)
    .unwrap();
    b
}

/// An EMITTER HELLO.
pub fn emitter_hello(id: &str, acks: bool) -> BytesMut {
    let mut b = BytesMut::new();
    EmitterHello {
        acks,
        compression: None,
        id: id.to_owned(),
    }
    .encode(&mut b)
    .unwrap();
    b
}

/// Reads frames the distributor sends an emitter: ACK counts, or the REJECT reason.
pub struct Replies {
    buf: BytesMut,
}

#[derive(Debug, PartialEq)]
pub enum Reply {
    Ack(u64),
    Reject(String),
    Closed,
}

impl Replies {
    pub fn new() -> Self {
        Self {
            buf: BytesMut::new(),
        }
    }

    pub async fn next(&mut self, s: &mut Stream, timeout: Duration) -> Option<Reply> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
                if self.buf.len() >= len {
                    let f = self.buf.split_to(len);
                    return Some(match f[4] {
                        0x41 => Reply::Ack(u64::from_be_bytes(f[5..13].try_into().unwrap())),
                        0x45 => Reply::Reject(String::from_utf8_lossy(&f[5..]).into_owned()),
                        k => panic!("unexpected kind 0x{k:02x}"),
                    });
                }
            }
            match tokio::time::timeout_at(deadline, s.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Some(Reply::Closed),
                Ok(Ok(_)) => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads ACKs until one says `count`; false if the connection ends or time runs out.
    pub async fn until(&mut self, s: &mut Stream, count: u64, timeout: Duration) -> bool {
        let mut last = 0;
        loop {
            match self.next(s, timeout).await {
                Some(Reply::Ack(n)) => {
                    assert!(n >= last, "ACK counts never decrease: {n} after {last}");
                    assert!(n <= count, "ACK {n} beyond the {count} frames sent");
                    last = n;
                    if n == count {
                        return true;
                    }
                }
                _ => return false,
            }
        }
    }
}

/// Connects (over TLS with `tls`) and sends `first`.
pub async fn connect(addr: SocketAddr, tls: Option<&runner::tls::Client>, first: &[u8]) -> Stream {
    let mut s = Stream::connect(addr, tls).await.unwrap();
    s.write_all(first).await.unwrap();
    s
}

/// A config for tests: fast hang detection, short drain.
pub fn config() -> Config {
    Config {
        hang_timeout: Duration::from_secs(2),
        drain_timeout: Duration::from_secs(5),
        seed: Some(7),
        ..Config::default()
    }
}

/// The shipped `distributor` binary as a child process on loopback ports, for what only a
/// process shows: its memory (from /proc), its file-descriptor limit, its log.
pub struct Process {
    child: std::process::Child,
    pub emitter: SocketAddr,
    pub analyzer: SocketAddr,
    pub metrics: SocketAddr,
    /// How to reach /metrics when the distributor serves TLS.
    pub scrape_tls: Option<runner::tls::Client>,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    /// Starts it with `args` (the listeners are added, on port 0), optionally under a
    /// file-descriptor limit (`ulimit -n`), and waits until it listens.
    pub fn start(args: &[&str], nofile: Option<u32>) -> Self {
        Self::start_on("127.0.0.1", args, nofile)
    }

    /// As [`Process::start`], listening on `host` (port 0).
    pub fn start_on(host: &str, args: &[&str], nofile: Option<u32>) -> Self {
        use std::io::BufRead as _;
        let bin = env!("CARGO_BIN_EXE_distributor");
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = std::process::Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(bin);
                c
            }
            None => std::process::Command::new(bin),
        };
        let any = format!("{host}:0");
        cmd.args([
            "--emitter-listen",
            &any,
            "--analyzer-listen",
            &any,
            "--metrics-listen",
            &any,
        ])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<(String, String, String)>();
        let reader = {
            let log = std::sync::Arc::clone(&log);
            std::thread::spawn(move || {
                let mut addrs: (Option<String>, Option<String>) = (None, None);
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let field = |name: &str| {
                        line.split_whitespace()
                            .find_map(|w| w.strip_prefix(name))
                            .map(str::to_owned)
                    };
                    if line.contains("distributor listening") {
                        addrs.0 = field("emitter=");
                        addrs.1 = field("analyzer=");
                    }
                    if let (Some(m), (Some(e), Some(a))) = (field("metrics="), &addrs) {
                        let _ = tx.send((e.clone(), a.clone(), m));
                    }
                    log.lock().unwrap().push(line);
                }
            })
        };
        let (e, a, m) = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("distributor did not start: {:?}", log.lock().unwrap()));
        Self {
            child,
            emitter: e.parse().unwrap(),
            analyzer: a.parse().unwrap(),
            metrics: m.parse().unwrap(),
            scrape_tls: None,
            log,
            reader: Some(reader),
        }
    }

    /// Sends SIGHUP (reload the TLS files and the access file).
    pub fn hup(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    }

    /// A field of /proc/PID/status in bytes (`VmRSS`, `VmHWM`: the peak).
    pub fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"));
        kb * 1024
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let mut s = Stream::connect(self.metrics, self.scrape_tls.as_ref())
            .await
            .unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        text
    }

    /// Sum of a metric's samples whose line contains `labels` (all when empty).
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        metric_sum(&self.metrics().await, name, labels)
    }

    /// Waits (20 s at most) until `check` holds for a metric's sum.
    pub async fn wait_metric(&self, name: &str, labels: &str, check: impl Fn(f64) -> bool) -> f64 {
        for _ in 0..200 {
            let v = self.metric(name, labels).await;
            if check(v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{name}{{{labels}}} never met the condition: {}",
            self.metric(name, labels).await
        );
    }

    /// SIGTERM, then waits for the exit; the log.
    pub fn stop(mut self) -> Vec<String> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "distributor exited with {status}");
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL, as a crash: nothing runs on the way out. The log.
    pub fn kill(mut self) -> Vec<String> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.log.lock().unwrap().clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A test that failed before `stop` still ends the process it started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sum of the samples of `name` (with `_total` or not) on lines containing `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| l.contains(labels))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A field `name=value` of a log line, as a number.
pub fn log_field(line: &str, name: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}
