//! Micro-benchmarks of the read → graph → usage pipeline on a generated root.
//!
//! `cargo bench --bench reader` uses 2,000 images over 6,000 layers (override
//! with DOCKGC_BENCH_IMAGES / DOCKGC_BENCH_LAYERS). Under `cargo test` the
//! bench binary runs each benchmark once on a tiny root, as a smoke test.

use criterion::{Criterion, criterion_group, criterion_main};
use dockgc::graph::Graph;
use dockgc::synth::{SynthSpec, generate};
use dockgc::{plan, policy, store, usage};
use std::hint::black_box;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pipeline(c: &mut Criterion) {
    let benching = std::env::args().any(|a| a == "--bench");
    let (images, layers) = if benching {
        (
            env_or("DOCKGC_BENCH_IMAGES", 2_000),
            env_or("DOCKGC_BENCH_LAYERS", 6_000),
        )
    } else {
        (40, 120)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    generate(&root, &SynthSpec::scale(images, layers)).expect("generate root");

    let mut g = c.benchmark_group(format!("{images}-images"));
    g.sample_size(10);
    g.bench_function("store::load", |b| {
        b.iter(|| black_box(store::load(&root).expect("load")))
    });
    let snap = store::load(&root).expect("load");
    g.bench_function("graph::build", |b| {
        b.iter(|| black_box(Graph::build(&snap).loaded.len()))
    });
    let graph = Graph::build(&snap);
    g.bench_function("usage::compute", |b| {
        b.iter(|| {
            black_box(usage::compute(
                &graph,
                &usage::Options { shared_size: None },
            ))
        })
    });
    // Planning: `prune -a --orphans` selection and plan, from a loaded snapshot.
    g.bench_function("prune plan", |b| {
        b.iter(|| {
            let sel = policy::select(&graph, &policy::Options::all(0));
            let o = plan::OrphanOptions {
                enabled: true,
                grace: 0,
                now: 0,
                live: false,
            };
            black_box(plan::build(&graph, &sel, &o, String::new()).reclaim.total)
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
