//! The compression ratios lz4 and zstd reach on the loadgen's payloads, as the links carry
//! them (PROTOCOL.md section 7): BATCH frames of whole DELIVER frames (distributor ->
//! analyzer) and a compressed emitter stream flushed at every write (emitter ->
//! distributor). Prints a Markdown table; the README carries its figures.
//!
//! `cargo run --release -p loadgen --example ratio [MESSAGES]`
#![expect(
    clippy::unwrap_used,
    reason = "an example with a bad setup has nothing to show"
)]

use bytes::BytesMut;
use loadgen::generate::{EmitterGen, PriorityGen, PriorityMode, SizeGen};
use protocol::batch::BatchEncoder;
use protocol::codec::{Codec, StreamCompressor};
use runfolder::Payload;
use std::time::Instant;

/// LOG frames of `n` messages of one emitter, and their lengths.
fn frames(payload: Payload, n: u64) -> (Vec<u8>, Vec<usize>) {
    let size = SizeGen::new(512.0, 0.5, 64, 8192).unwrap();
    let priority = PriorityGen::new(PriorityMode::Weighted, 0, "0-255".parse().unwrap());
    let mut g = EmitterGen::new(1, 7, priority, size).with_payload(payload);
    let mut out = BytesMut::new();
    let mut lens = Vec::new();
    let t0 = 1_796_191_380_000_000_000u64;
    for seq in 0..n {
        // 2,000 msg/s: stamps advance as they would.
        let (_, len) = g.frame(seq, t0 + seq * 500_000, &mut out);
        lens.push(len);
    }
    (out.to_vec(), lens)
}

/// The same messages as DELIVER frames (17 bytes more each: stamps and kind).
fn delivers(log: &[u8], lens: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(log.len() + lens.len() * 17);
    let mut at = 0;
    for (i, len) in lens.iter().enumerate() {
        let frame = &log[at..at + len];
        let t = 1_796_191_380_000_000_000u64 + i as u64 * 500_000;
        out.extend_from_slice(&protocol::analyzer::deliver_header(
            frame[4],
            t,
            t + 20_000,
            len - 5,
        ));
        out.extend_from_slice(&frame[5..]);
        at += len;
    }
    out
}

/// (ratio, MB/s of input) of BATCH frames of about `batch` bytes each.
fn batches(codec: Codec, level: i32, raw: &[u8], batch: usize) -> (f64, f64) {
    let mut enc = BatchEncoder::new(codec, level).unwrap();
    let mut wire = BytesMut::new();
    let started = Instant::now();
    let mut at = 0;
    while at < raw.len() {
        // Whole frames up to `batch` bytes.
        let mut end = at;
        while end < raw.len() && end - at < batch {
            end += u32::from_be_bytes(raw[end..end + 4].try_into().unwrap()) as usize;
        }
        enc.encode(&raw[at..end], &mut wire).unwrap();
        at = end;
    }
    let secs = started.elapsed().as_secs_f64();
    (
        raw.len() as f64 / wire.len() as f64,
        raw.len() as f64 / secs / 1e6,
    )
}

/// (ratio, MB/s) of one emitter stream flushed every `per_write` messages.
fn stream(codec: Codec, level: i32, log: &[u8], lens: &[usize], per_write: usize) -> (f64, f64) {
    let mut c = StreamCompressor::new(codec, level).unwrap();
    let mut wire = BytesMut::new();
    let started = Instant::now();
    let mut at = 0;
    for chunk in lens.chunks(per_write) {
        let n: usize = chunk.iter().sum();
        c.compress(&log[at..at + n], &mut wire).unwrap();
        at += n;
    }
    c.finish(&mut wire).unwrap();
    let secs = started.elapsed().as_secs_f64();
    (
        log.len() as f64 / wire.len() as f64,
        log.len() as f64 / secs / 1e6,
    )
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(200_000, |a| a.parse().unwrap());
    let codecs = [
        (Codec::Lz4, 0, "lz4"),
        (Codec::Zstd, 1, "zstd 1"),
        (Codec::Zstd, 3, "zstd 3"),
        (Codec::Zstd, 9, "zstd 9"),
    ];
    println!("{n} messages, sizes log-normal mean 512 B (sigma 0.5, 64..8192), binary probes\n");
    println!(
        "| payload | link | unit | {} |",
        codecs.map(|c| c.2).join(" | ")
    );
    println!("|---|---|---|{}", "---|".repeat(codecs.len()));
    for payload in [Payload::Text, Payload::Random] {
        let (log, lens) = frames(payload, n);
        let raw = delivers(&log, &lens);
        let cell = |(r, s): (f64, f64)| format!("{r:.2}x ({s:.0} MB/s)");
        for batch in [16 * 1024, 64 * 1024, 256 * 1024] {
            let cells: Vec<String> = codecs
                .iter()
                .map(|c| cell(batches(c.0, c.1, &raw, batch)))
                .collect();
            println!(
                "| {payload} | BATCH to analyzer | {} KiB | {} |",
                batch / 1024,
                cells.join(" | ")
            );
        }
        for per_write in [1, 10, 128] {
            let cells: Vec<String> = codecs
                .iter()
                .map(|c| cell(stream(c.0, c.1, &log, &lens, per_write)))
                .collect();
            println!(
                "| {payload} | emitter stream | {per_write} msg/flush | {} |",
                cells.join(" | ")
            );
        }
    }
}
