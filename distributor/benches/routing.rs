//! Routing pick cost for 3, 10, 100 and 1000 analyzers (O(1) random, O(log n) smooth).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use distributor::router::{Router, Routing};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("router_pick");
    g.throughput(Throughput::Elements(1));
    for n in [3usize, 10, 100, 1000] {
        let weights: Vec<f64> = (0..n).map(|i| 1.0 + (i % 7) as f64).collect();
        for strategy in [Routing::Random, Routing::Smooth] {
            let mut r = Router::new(strategy, 1);
            r.set_weights(&weights);
            g.bench_with_input(BenchmarkId::new(format!("{strategy:?}"), n), &n, |b, _| {
                b.iter(|| black_box(r.pick()))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
