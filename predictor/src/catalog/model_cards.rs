//! The built-in catalog against published facts: every model's parameter count against its model
//! card, the model names the calibration measurements use, and each device's default node.

use super::Catalog;
use crate::parallel::Parallelism;
use crate::precision::Precision;

/// Published total parameter counts, with where each number comes from. `total_params()` counts
/// the matrices, embeddings, norms and biases from the config, so it lands within a fraction of a
/// percent of these (model cards round to 3 significant digits).
const MODEL_CARDS: &[(&str, f64)] = &[
    // Model card: "8B"; Hugging Face model page (safetensors): 8.03B params.
    ("meta-llama/Llama-3.1-8B-Instruct", 8.03e9),
    // Hugging Face model page (safetensors): 70.6B params.
    ("meta-llama/Llama-3.1-70B-Instruct", 70.6e9),
    // Model card: "Number of Parameters: 14.8B".
    ("Qwen/Qwen3-14B", 14.8e9),
    // Model card: "Number of Parameters: 7.61B".
    ("Qwen/Qwen2.5-7B-Instruct", 7.61e9),
    // Mistral AI's announcement "Mixtral of experts": 46.7B total parameters, 12.9B per token.
    ("mistralai/Mixtral-8x7B-v0.1", 46.7e9),
    // Mistral AI's announcement "Cheaper, Better, Faster, Stronger": 141B total, 39B active.
    ("mistralai/Mixtral-8x22B-v0.1", 141e9),
    ("mistralai/Mixtral-8x22B-Instruct-v0.1", 141e9),
    // Meta's Llama 4 model card: Scout, 17B activated, 109B total (text and vision).
    ("RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic", 109e9),
    // Hugging Face model page (safetensors): 12.2B params (model card: "12B").
    ("mistralai/Mistral-Nemo-Instruct-2407", 12.2e9),
    // Hugging Face model page (safetensors): 34.4B params (model card: "34B").
    ("01-ai/Yi-34B", 34.4e9),
    // DeepSeek-V3 README_WEIGHTS.md: main model 671B total parameters (the 11.5B MTP module apart).
    ("deepseek-ai/DeepSeek-V3", 671e9),
    // Model card: "Number of Parameters: 30.5B in total and 3.3B activated".
    ("Qwen/Qwen3-30B-A3B", 30.5e9),
    // Model card: "Number of Parameters: 235B in total and 22B activated".
    ("Qwen/Qwen3-235B-A22B", 235e9),
];

#[test]
fn every_new_model_matches_its_model_card_parameter_count() {
    let cat = Catalog::builtin();
    for &(name, published) in MODEL_CARDS {
        let m = cat.model(name).unwrap();
        let ratio = m.total_params() as f64 / published;
        assert!(
            (ratio - 1.0).abs() < 0.01,
            "{name}: {} parameters vs {published:.3e} published ({:+.2}%)",
            m.total_params(),
            100.0 * (ratio - 1.0)
        );
    }
}

#[test]
fn active_parameters_match_the_model_cards_too() {
    // Active parameters per token exclude the embeddings; the cards count them in, so add them
    // back: Mixtral-8x7B 12.9B, Qwen3-30B-A3B 3.3B, Qwen3-235B-A22B 22B, DeepSeek-V3 37B
    // (README: 36.6B + 0.9B embedding), Llama-4-Scout 17B.
    let cat = Catalog::builtin();
    for (name, published) in [
        ("mistralai/Mixtral-8x7B-v0.1", 12.9e9),
        ("Qwen/Qwen3-30B-A3B", 3.3e9),
        ("Qwen/Qwen3-235B-A22B", 22e9),
        ("deepseek-ai/DeepSeek-V3", 37.5e9),
        ("RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic", 17e9),
    ] {
        let m = cat.model(name).unwrap();
        let embeddings = 2 * m.vocab_matrix_params_per_gpu(1);
        let active = (m.active_params_per_token() + embeddings) as f64;
        assert!(
            (active / published - 1.0).abs() < 0.05,
            "{name}: {active:.4e} active vs {published:.3e}"
        );
    }
}

#[test]
fn every_model_of_the_calibration_measurements_resolves() {
    // The `model` names of ../shared/calibration/vllm-0.15.1-measured.json (vLLM 0.15.1 runs).
    let cat = Catalog::builtin();
    for name in [
        "01-ai/Yi-34B",
        "Qwen/Qwen2.5-7B-Instruct",
        "Qwen/Qwen3-14B",
        "RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic",
        "meta-llama/Llama-3.1-70B-Instruct",
        "meta-llama/Llama-3.1-8B-Instruct",
        "mistralai/Mistral-Nemo-Instruct-2407",
        "mistralai/Mixtral-8x22B-Instruct-v0.1",
        "mistralai/Mixtral-8x22B-v0.1",
        "mistralai/Mixtral-8x7B-v0.1",
    ] {
        assert_eq!(cat.model(name).unwrap().name, name);
    }
}

#[test]
fn instruct_entries_share_their_base_models_architecture() {
    let cat = Catalog::builtin();
    for (instruct, base) in [
        (
            "meta-llama/Llama-3.1-8B-Instruct",
            "meta-llama/Llama-3.1-8B",
        ),
        (
            "meta-llama/Llama-3.1-70B-Instruct",
            "meta-llama/Llama-3.1-70B",
        ),
    ] {
        let mut i = cat.model(instruct).unwrap();
        let b = cat.model(base).unwrap();
        (i.name, i.source) = (b.name.clone(), b.source.clone());
        // Meta ships the same sampling defaults with both, each from its own repository.
        let (gi, gb) = (
            i.generation.as_mut().unwrap(),
            b.generation.as_ref().unwrap(),
        );
        assert!(gi.source.contains(instruct) && gb.source.contains(base));
        gi.source = gb.source.clone();
        assert_eq!(i, b, "{instruct}");
    }
}

#[test]
fn every_device_has_a_default_node() {
    let cat = Catalog::builtin();
    for (device, node) in [
        ("a100", "a100_dgx"),
        ("h100", "h100_dgx"),
        ("h200", "h200_dgx"),
        ("b200", "b200_dgx"),
        ("a40", "a40_pairwise_nvlink"),
        ("l40s", "l40s_pcie"),
    ] {
        let n = cat.default_node_for(device).unwrap();
        assert_eq!((n.name.as_str(), n.device.as_str()), (node, device));
    }
    // The L40S node is PCIe only: no faster pair link, a slower network than the DGX nodes.
    let l40s = cat.node("l40s_pcie").unwrap();
    assert_eq!(l40s.devices_per_node, 8);
    assert_eq!(l40s.collective_link(2), l40s.collective_link(8));
    assert!(
        l40s.collective_link(16).bandwidth_bytes_per_s
            < cat
                .node("h100_dgx")
                .unwrap()
                .inter_node_bandwidth_bytes_per_s
    );
}

#[test]
fn scout_fp8_keeps_its_attention_in_16_bits() {
    // RedHatAI's checkpoint leaves the attention projections unquantized: they weigh 2 bytes per
    // parameter, the experts 1.
    let cat = Catalog::builtin();
    let m = cat
        .model("RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic")
        .unwrap();
    assert!(m.unquantized_attention);
    let fp8 = Precision {
        linear_weight_bytes: 1,
        fp8_compute: true,
        ..Precision::BF16
    };
    let one = Parallelism::new(1, 1);
    let mut all_fp8 = m.clone();
    all_fp8.unquantized_attention = false;
    let attention = u64::from(m.num_hidden_layers) * m.attention_params_per_gpu(1);
    assert_eq!(
        m.stage_weight_bytes(one, 0, &fp8) - all_fp8.stage_weight_bytes(one, 0, &fp8),
        attention
    );
    // About 3.0B attention parameters in 48 layers.
    assert!(
        (attention as f64 / 3.02e9 - 1.0).abs() < 0.01,
        "{attention}"
    );
}
