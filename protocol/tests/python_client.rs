//! The independent Python client (`tests/python/ldclient.py`, written from PROTOCOL.md
//! alone with Python's `lz4` and `zstandard`) against this crate's encoders and decoders,
//! over real sockets: it decodes BATCH frames this crate made, and this crate decodes the
//! compressed emitter stream it sends. Needs `python3` with `pip install lz4 zstandard`.
#![expect(clippy::unwrap_used, reason = "a failed setup fails the test")]
#![expect(clippy::panic, reason = "a test that cannot run says why")]

use bytes::BytesMut;
use protocol::analyzer::{self, deliver_header};
use protocol::batch::BatchEncoder;
use protocol::codec::Codec;
use protocol::emitter::{EmitterDecoder, Item};
use protocol::probe::{self, Probe};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HINT: &str =
    "the Python client needs python3 with lz4 and zstandard: pip install lz4 zstandard";

fn client(args: &[&str]) -> Child {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/ldclient.py");
    Command::new("python3")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start python3 ({e}); {HINT}"))
}

/// Accepts the client's connection, failing with its stderr if it dies first.
fn accept(listener: &TcpListener, child: &mut Child) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the Python client exited ({status}) before connecting:\n{err}\n{HINT}");
        }
        assert!(
            Instant::now() < deadline,
            "the Python client never connected"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The client's exit status and its one-line JSON summary.
fn finish(child: Child) -> (bool, String) {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty() || out.status.success(), "{stderr}");
    (out.status.success(), stdout)
}

fn deliver(priority: u8, payload: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(&deliver_header(priority, 1, 2, payload.len()));
    out.extend_from_slice(payload);
}

fn binary(priority: u8, seq: u64) -> BytesMut {
    let mut p = BytesMut::new();
    let filler = format!("{seq} GET /api/v1/orders/{} 200 cache=hit", seq % 97);
    probe::encode(
        priority,
        Probe {
            emitter: 3,
            seq,
            sent_ns: 1,
        },
        filler.as_bytes(),
        &mut p,
    );
    p
}

#[test]
fn the_python_analyzer_decodes_batches_made_here() {
    for (flag, codec) in [("lz4", Codec::Lz4), ("zstd", Codec::Zstd)] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut child = client(&[
            "analyzer",
            "--distributor",
            &addr,
            "--compress",
            flag,
            "--acks",
            "--count",
            "250",
        ]);
        let mut s = accept(&listener, &mut child);
        let mut buf = BytesMut::new();
        let hello = loop {
            if let Some(h) = analyzer::decode_hello(&mut buf).unwrap() {
                break h;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "closed before its HELLO");
            buf.extend_from_slice(&chunk[..n]);
        };
        assert_eq!((hello.compression, hello.acks), (Some(codec), true));
        let mut wire = BytesMut::new();
        // 10 plain, a BATCH of 200 binary probes, a BATCH of 40 syslog text probes.
        for seq in 0..10 {
            deliver((seq % 4) as u8, &binary((seq % 4) as u8, seq), &mut wire);
        }
        let mut enc = BatchEncoder::new(codec, 3).unwrap();
        let mut raw = BytesMut::new();
        for seq in 10..210 {
            deliver(7, &binary(7, seq), &mut raw);
        }
        enc.encode(&raw, &mut wire).unwrap();
        raw.clear();
        for seq in 210..250u64 {
            // <86>: facility 10 (authpriv), severity 6: priority 6 * 32 + 10 = 202.
            let mut p = BytesMut::from(&b"<86>1 2026-12-02T06:03:00Z host sshd 1 - - "[..]);
            let filler = format!("Accepted publickey for user{seq} from 10.0.0.7 port 52144");
            probe::text::encode(
                Probe {
                    emitter: 4,
                    seq,
                    sent_ns: 5,
                },
                filler.as_bytes(),
                &mut p,
            )
            .unwrap();
            p.extend_from_slice(b"\n");
            deliver(202, &p, &mut raw);
        }
        enc.encode(&raw, &mut wire).unwrap();
        s.write_all(&wire).unwrap();
        let mut acks = BytesMut::new();
        let mut last = 0;
        while last < 250 {
            if let Some(n) = analyzer::decode_ack(&mut acks).unwrap() {
                assert!(n >= last, "ACKs are cumulative");
                last = n;
                continue;
            }
            let mut chunk = [0u8; 64];
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "closed at ACK {last}");
            acks.extend_from_slice(&chunk[..n]);
        }
        let (ok, summary) = finish(child);
        assert!(ok, "{flag}: {summary}");
        for want in [
            "\"delivers\": 250",
            "\"batches\": 2",
            "\"plain\": 10",
            "\"probes_ok\": 250",
            "\"text_probes\": 40",
            "\"corrupt\": 0",
            "\"error\": null",
        ] {
            assert!(summary.contains(want), "{flag}: {want} in {summary}");
        }
        assert!(
            summary.contains(&format!("\"wire_bytes\": {}", wire.len())),
            "{summary}"
        );
    }
}

#[test]
fn the_python_emitters_stream_decodes_here() {
    for flag in ["lz4", "zstd"] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut child = client(&[
            "emitter",
            "--target",
            &addr,
            "--compress",
            flag,
            "--acks",
            "--count",
            "500",
            "--flush-every",
            "37",
        ]);
        let mut s = accept(&listener, &mut child);
        let mut d = EmitterDecoder::new(protocol::log::DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::new();
        let mut seqs = Vec::new();
        let mut hello = None;
        loop {
            let mut chunk = [0u8; 8192];
            let n = s.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            while let Some(item) = d.decode(&mut buf).unwrap() {
                match item {
                    Item::Hello(h) => hello = Some(h),
                    Item::Log(f) => {
                        let p = probe::verify(f.priority, &f.payload).unwrap();
                        assert_eq!(p.emitter, 900);
                        seqs.push(p.seq);
                    }
                }
            }
            // Every frame decoded is acknowledged, as a distributor would once secured.
            let mut ack = BytesMut::new();
            analyzer::encode_ack(seqs.len() as u64, &mut ack);
            s.write_all(&ack).unwrap();
        }
        let hello = hello.unwrap();
        assert_eq!(
            (hello.acks, hello.compression.map(|c| c.name())),
            (true, Some(flag))
        );
        assert_eq!(seqs, (0..500).collect::<Vec<_>>(), "{flag}");
        assert!(
            d.at_boundary() && d.held() == 0 && buf.is_empty(),
            "{flag}: a whole stream"
        );
        drop(s);
        let (ok, summary) = finish(child);
        assert!(ok, "{flag}: {summary}");
        assert!(summary.contains("\"acked\": 500"), "{summary}");
        assert!(
            summary.contains(&format!("\"wire_bytes\": {}", d.wire_bytes())),
            "{flag}: the bytes it sent are the bytes decoded: {} in {summary}",
            d.wire_bytes()
        );
    }
}
