//! The memory planner against vLLM: for every experiment of the committed measurements file that
//! records the engine's KV-cache size (`kv_blocks_total_gpu`), the KV blocks our plan gives the
//! same deployment (model, GPU, TP, precision, engine arguments, shipped calibration) must be within
//! 1 % of the engine's. Run with `-- --nocapture` to print the table (docs/models.md).

use std::path::Path;

use predictor::exec::engine::calibration::DEFAULT_ENGINE_VERSION;
use predictor::exec::engine::Calibration;
use predictor::Catalog;
use simulator::calibrate::experiment::{to_config, SimShape};
use simulator::calibrate::measurements::read_measurements;
use simulator::calibrate::measurements::BenchDefaults;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[test]
fn kv_blocks_match_the_engine_for_every_recorded_experiment() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/calibration/vllm-0.15.1-measured.json");
    let exps = read_measurements(&file, &BenchDefaults::default()).unwrap();
    let cat = Catalog::builtin();
    let mut seen = std::collections::BTreeSet::new();
    let mut worst: f64 = 0.0;
    println!(
        "| model | GPU | TP | precision | gpu_mem_util | max_num_batched_tokens | vLLM blocks | our blocks | error | weights GiB/GPU | params (ours) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for e in &exps {
        let Some(engine_blocks) = e.kv_blocks_total_gpu else {
            continue;
        };
        // One row per distinct deployment (the memory plan does not depend on the load).
        let key = format!(
            "{}|{}|{}|{}|{}|{}",
            e.model,
            e.gpu,
            e.tp,
            e.precision,
            e.engine.gpu_memory_utilization,
            e.engine.max_num_batched_tokens
        );
        if !seen.insert(key) {
            continue;
        }
        let (cal, _) = Calibration::builtin(DEFAULT_ENGINE_VERSION, &e.gpu.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("no shipped calibration for {}", e.gpu));
        let cfg = to_config(e, &cal.coefficients, &SimShape::default())
            .unwrap_or_else(|why| panic!("{}: {why}", e.id));
        let r = cfg
            .resolve(&cat)
            .unwrap_or_else(|why| panic!("{}: {why}", e.id));
        let ours = r.memory.num_blocks;
        let err = ours as f64 / engine_blocks as f64 - 1.0;
        worst = worst.max(err.abs());
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:+.2} % | {:.1} | {:.1}B |",
            e.model,
            e.gpu,
            e.tp,
            e.precision,
            e.engine.gpu_memory_utilization,
            e.engine.max_num_batched_tokens,
            engine_blocks,
            ours,
            err * 100.0,
            r.memory.weight_bytes as f64 / GIB,
            r.model.total_params() as f64 / 1e9
        );
        assert!(
            err.abs() <= 0.01,
            "{}: {ours} KV blocks against the engine's {engine_blocks} ({:+.2} %)",
            e.id,
            err * 100.0
        );
    }
    println!(
        "deployments: {}, worst error {:.2} %",
        seen.len(),
        worst * 100.0
    );
    assert!(
        seen.len() >= 8,
        "the measurements file records kv_blocks_total_gpu for at least 8 deployments"
    );
}
