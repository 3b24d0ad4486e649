//! Encode and decode throughput of the frames on the hot path.

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::{analyzer, log, probe};
use std::hint::black_box;

const FRAMES: usize = 1000;

fn log_stream() -> BytesMut {
    let mut wire = BytesMut::new();
    for seq in 0..FRAMES as u64 {
        let mut payload = BytesMut::new();
        let p = probe::Probe {
            emitter: 1,
            seq,
            sent_ns: seq,
        };
        probe::encode(0, p, &[0x5a; 484], &mut payload);
        log::encode(0, &payload, &mut wire).unwrap_or_default();
    }
    wire
}

fn bench(c: &mut Criterion) {
    let wire = log_stream();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("log_decode_1000x517B", |b| {
        b.iter(|| {
            let mut buf = wire.clone();
            let mut d = log::LogDecoder::new(log::DEFAULT_MAX_FRAME);
            let mut n = 0;
            while let Ok(Some(f)) = d.decode(&mut buf) {
                n += f.payload.len();
            }
            black_box(n)
        })
    });
    let payload = [0x5au8; 512];
    g.bench_function("log_encode_1000x512B", |b| {
        let mut out = BytesMut::with_capacity(FRAMES * 520);
        b.iter(|| {
            out.clear();
            for _ in 0..FRAMES {
                log::encode(1, &payload, &mut out).unwrap_or_default();
            }
            black_box(out.len())
        })
    });
    g.bench_function("deliver_header_1000", |b| {
        b.iter(|| {
            let mut x = 0u8;
            for i in 0..FRAMES as u64 {
                x ^= analyzer::deliver_header(1, i, i, 512)[21];
            }
            black_box(x)
        })
    });
    g.bench_function("probe_encode_verify_1000x512B", |b| {
        let mut out = BytesMut::with_capacity(600);
        b.iter(|| {
            for seq in 0..FRAMES as u64 {
                out.clear();
                probe::encode(
                    2,
                    probe::Probe {
                        emitter: 1,
                        seq,
                        sent_ns: 0,
                    },
                    &[7; 484],
                    &mut out,
                );
                black_box(probe::verify(2, &out).is_ok());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
