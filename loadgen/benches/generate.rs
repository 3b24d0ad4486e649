//! Probe generation cost: one 512-byte-mean LOG frame with its probe and crc.
#![expect(
    clippy::panic,
    reason = "a benchmark with a bad setup has nothing to measure"
)]

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use loadgen::generate::{EmitterGen, PriorityGen, PriorityMode, SizeGen};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("loadgen");
    g.throughput(Throughput::Elements(1000));
    for mode in [PriorityMode::Single, PriorityMode::Weighted] {
        let size = SizeGen::new(512.0, 0.5, 64, 8192).unwrap_or_else(|e| panic!("{e}"));
        let range = "0-255".parse().unwrap_or_else(|e: String| panic!("{e}"));
        let mut generator = EmitterGen::new(1, 1, PriorityGen::new(mode, 0, range), size);
        let mut out = BytesMut::with_capacity(1 << 20);
        let mut seq = 0;
        g.bench_function(format!("frames_1000_{mode:?}"), |b| {
            b.iter(|| {
                out.clear();
                for _ in 0..1000 {
                    generator.frame(seq, seq, &mut out);
                    seq += 1;
                }
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
