//! Verify + record cost per arrival in summary mode (the sink's hot path without I/O).

use analyzer_sink::verify::Tracker;
use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::analyzer::Deliver;
use protocol::probe::{self, Probe};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let frames: Vec<Deliver> = (0..1000u64)
        .map(|seq| {
            let mut b = BytesMut::new();
            probe::encode(
                3,
                Probe {
                    emitter: (seq % 10) as u32,
                    seq,
                    sent_ns: 1,
                },
                &[7u8; 484],
                &mut b,
            );
            Deliver {
                priority: 3,
                queued_ns: 1,
                dispatch_ns: 2,
                payload: b.freeze(),
            }
        })
        .collect();
    let mut g = c.benchmark_group("sink");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("verify_1000x512B", |b| {
        let mut t = Tracker::new();
        b.iter(|| {
            for d in &frames {
                black_box(t.observe(d, 10));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
