//! Benchmarks: fitting and tabulating one case (Vidur's published Llama-2-7B/A100 profile, TP 1,
//! 2, 4, 8, with the a100_dgx network), and one stage-time lookup of the profiled backend.
//! The profiles are the ones committed under `data/vidur/profiling/`.
//!
//! Run: `cargo bench -p predictor --bench predictor`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use predictor::exec::profiled::tables_from_fit;
use predictor::fit::case::{fit_case, CaseInputs};
use predictor::fit::select::SearchConfig;
use predictor::setup::{profiled_model, ExecSetup};
use predictor::table::TableBounds;
use predictor::{BatchShape, Catalog, ExecutionModel, Parallelism};

fn profiles() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/vidur/profiling");
    assert!(p.is_dir(), "{} is missing", p.display());
    p
}

fn bench(c: &mut Criterion) {
    let dir = profiles();
    let cat = Catalog::builtin();
    let model = cat.model("meta-llama/Llama-2-7b-hf").unwrap();
    let device = cat.device("a100").unwrap();
    let node = cat.node("a100_dgx").unwrap();
    let inputs = CaseInputs::load(
        std::slice::from_ref(&dir),
        &model,
        "a100",
        Some(&node),
        Some(&[1, 2, 4, 8]),
    )
    .unwrap();
    let cfg = SearchConfig::default();
    let mut g = c.benchmark_group("fit");
    g.sample_size(10);
    g.bench_function("llama2_7b_a100_fit_and_tabulate_tp1248", |b| {
        b.iter(|| {
            let f = fit_case(&inputs, &cfg).unwrap();
            for tp in [1, 2, 4, 8] {
                tables_from_fit(
                    &f,
                    &model,
                    &node,
                    Parallelism::new(tp, 2),
                    TableBounds::default(),
                )
                .unwrap();
            }
        })
    });
    g.finish();

    let mut s = ExecSetup::new(model.clone(), device, node, Parallelism::new(2, 2));
    s.profiles_dirs = vec![dir];
    let m = profiled_model(&s).unwrap();
    let mut batch = BatchShape::new();
    batch.add_prefill(512, 0);
    batch.add_prefill(300, 1024);
    for i in 0..32 {
        batch.add_decode(1000 + 10 * i);
    }
    c.bench_function("profiled_stage_time_lookup", |b| {
        b.iter(|| std::hint::black_box(m.stage_time(std::hint::black_box(&batch), 0)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
