//! The engine model's MoE expert time over decode batches: it follows the expected number of
//! distinct experts a batch touches, `E·(1 − (1 − k/E)^T)`, so it grows sublinearly in the batch
//! until every expert is touched (the roofline's exact form is tested in `exec::roofline`).

use predictor::exec::engine::calibration::DEFAULT_ENGINE_VERSION;
use predictor::exec::engine::Calibration;
use predictor::setup::engine_model;
use predictor::{BatchShape, Catalog, ExecSetup, ExecutionModel, Op, Parallelism, Precision};

fn experts_ms(exec: &dyn ExecutionModel, decodes: u64) -> f64 {
    let mut b = BatchShape::new();
    for _ in 0..decodes {
        b.add_decode(1024);
    }
    exec.stage_time(&b, 0).ops_ms.get(Op::MoeExperts)
}

fn touched(experts: f64, top_k: f64, tokens: f64) -> f64 {
    experts * (1.0 - (1.0 - top_k / experts).powf(tokens))
}

fn setup(model: &str, device: &str, par: Parallelism) -> ExecSetup {
    let cat = Catalog::builtin();
    let m = cat.model(model).unwrap();
    let d = cat.device(device).unwrap();
    let node = cat.default_node_for(device).unwrap();
    let mut s = ExecSetup::new(m.clone(), d.clone(), node, par);
    s.precision = Precision::resolve(&m, &d, &Default::default()).unwrap();
    let (cal, _) = Calibration::builtin(DEFAULT_ENGINE_VERSION, device).unwrap();
    s.engine_coefficients = cal.coefficients;
    s
}

#[test]
fn engine_expert_time_tracks_touched_experts_and_saturates() {
    // Mixtral-8x7B TP2 on H100: top-2 of 8.
    let s = setup(
        "mistralai/Mixtral-8x7B-v0.1",
        "h100",
        Parallelism::new(2, 1),
    );
    let exec = engine_model(&s);
    let one = experts_ms(&exec, 1);
    for t in [2u64, 4, 8] {
        // Weight-bound at small batches: the time scales as the touched experts (the routed
        // activations add a little).
        let ratio = experts_ms(&exec, t) / one;
        let want = touched(8.0, 2.0, t as f64) / 2.0;
        assert!(
            ratio >= want * 0.98 && ratio <= want * 1.10,
            "T={t}: {ratio} vs {want}"
        );
    }
    let mut prev = f64::INFINITY;
    for t in [1u64, 2, 4, 8, 16, 32, 64, 128, 256] {
        let per_token = experts_ms(&exec, t) / t as f64;
        assert!(per_token < prev, "T={t}");
        prev = per_token;
    }
    // 256 decodes touch 4× the experts of one: far from 256× the time.
    let big = experts_ms(&exec, 256) / one;
    assert!(big > 3.5 && big < 8.0, "{big}");

    // DeepSeek-V3 (FP8 checkpoint) with EP 8 of TP 8 on H200: 32 of 256 experts per GPU, top-8.
    let s = setup(
        "deepseek-ai/DeepSeek-V3",
        "h200",
        Parallelism::new(8, 1).with_ep(8),
    );
    let exec = engine_model(&s);
    let one = experts_ms(&exec, 1);
    let ratio = experts_ms(&exec, 8) / one;
    let want = touched(256.0, 8.0, 8.0) / 8.0;
    assert!(
        ratio >= want * 0.98 && ratio <= want * 1.10,
        "{ratio} vs {want}"
    );
    let big = experts_ms(&exec, 256) / one;
    assert!(big < 48.0, "{big}");
}
