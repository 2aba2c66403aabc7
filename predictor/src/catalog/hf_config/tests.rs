//! Parsing tests: each supported architecture from hand-written configs, every published fixture
//! against its catalog entry, and each bad-config error.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::*;
use crate::catalog::Catalog;

const FILE: &str = "fixture/config.json";

fn parse(config: &Value) -> Result<ModelSpec, CatalogError> {
    ModelSpec::from_hf_config_str(&config.to_string(), Path::new(FILE))
}

fn error(config: &Value) -> String {
    let e = parse(config).expect_err("expected an error").to_string();
    assert!(e.contains(FILE), "the error names the file: {e}");
    e
}

/// `config` with the top-level (or, for `text_config.x`, nested) fields of `changes` set;
/// `Value::Null` values remove the field.
fn with(config: &Value, changes: &[(&str, Value)]) -> Value {
    let mut c = config.clone();
    for (key, v) in changes {
        let (obj, key) = match key.split_once('.') {
            Some((outer, inner)) => (c[outer].as_object_mut().unwrap(), inner),
            None => (c.as_object_mut().unwrap(), *key),
        };
        if v.is_null() {
            obj.remove(key);
        } else {
            obj.insert(key.to_string(), v.clone());
        }
    }
    c
}

fn llama() -> Value {
    json!({
        "architectures": ["LlamaForCausalLM"], "num_hidden_layers": 4, "num_attention_heads": 8,
        "num_key_value_heads": 2, "hidden_size": 512, "intermediate_size": 1024,
        "vocab_size": 1000, "max_position_embeddings": 4096, "rope_theta": 500000.0,
        "hidden_act": "silu", "torch_dtype": "bfloat16"
    })
}

fn mixtral() -> Value {
    with(
        &llama(),
        &[
            ("architectures", json!(["MixtralForCausalLM"])),
            ("num_local_experts", json!(8)),
            ("num_experts_per_tok", json!(2)),
            ("sliding_window", Value::Null),
        ],
    )
}

fn qwen3_moe() -> Value {
    with(
        &llama(),
        &[
            ("architectures", json!(["Qwen3MoeForCausalLM"])),
            ("head_dim", json!(128)),
            ("num_experts", json!(16)),
            ("num_experts_per_tok", json!(4)),
            ("moe_intermediate_size", json!(256)),
            ("decoder_sparse_step", json!(1)),
            ("mlp_only_layers", json!([])),
            ("use_sliding_window", json!(false)),
        ],
    )
}

fn llama4() -> Value {
    json!({
        "architectures": ["Llama4ForConditionalGeneration"],
        "torch_dtype": "bfloat16",
        "text_config": {
            "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 2,
            "head_dim": 64, "hidden_size": 512, "intermediate_size": 256,
            "intermediate_size_mlp": 1024, "vocab_size": 1000, "max_position_embeddings": 65536,
            "num_local_experts": 4, "num_experts_per_tok": 1, "interleave_moe_layer_step": 2,
            "attention_chunk_size": 1024, "no_rope_layers": [], "use_qk_norm": true,
            "rope_theta": 500000.0
        },
        "vision_config": {
            "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "patch_size": 2,
            "image_size": 8, "num_channels": 3, "projector_input_dim": 24,
            "projector_output_dim": 24, "vision_output_dim": 24
        }
    })
}

fn deepseek() -> Value {
    json!({
        "architectures": ["DeepseekV3ForCausalLM"], "num_hidden_layers": 6,
        "num_attention_heads": 16, "num_key_value_heads": 16, "hidden_size": 1024,
        "intermediate_size": 4096, "moe_intermediate_size": 256, "vocab_size": 1000,
        "max_position_embeddings": 8192, "q_lora_rank": 384, "kv_lora_rank": 128,
        "qk_nope_head_dim": 64, "qk_rope_head_dim": 32, "v_head_dim": 64,
        "n_routed_experts": 32, "num_experts_per_tok": 4, "n_shared_experts": 2,
        "first_k_dense_replace": 2, "moe_layer_freq": 1, "torch_dtype": "bfloat16",
        "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                "weight_block_size": [128, 128]}
    })
}

fn compressed_fp8(ignore: Value) -> Value {
    json!({
        "quant_method": "compressed-tensors",
        "format": "float-quantized",
        "config_groups": {"group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "dynamic": false},
            "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": true}
        }},
        "ignore": ignore
    })
}

#[test]
fn llama_mistral_and_qwen_dense_models() {
    let m = parse(&llama()).unwrap();
    assert_eq!(m.architecture, "LlamaForCausalLM");
    assert_eq!(
        (m.num_key_value_heads, m.head_dim(), m.head_dim),
        (2, 64, None)
    );
    assert!(!m.tie_word_embeddings && !m.qkv_bias && !m.qk_norm);
    assert_eq!(
        (m.moe.clone(), m.mla.clone(), m.local_attention.clone()),
        (None, None, None)
    );
    assert_eq!((m.name.as_str(), m.source.as_str()), (FILE, FILE));
    // Without num_key_value_heads: multi-head attention.
    let m = parse(&with(&llama(), &[("num_key_value_heads", Value::Null)])).unwrap();
    assert_eq!(m.num_key_value_heads, 8);

    // Mistral-Nemo style: an explicit head_dim that differs from hidden / heads, and a sliding
    // window on every layer.
    let mistral = with(
        &llama(),
        &[
            ("architectures", json!(["MistralForCausalLM"])),
            ("head_dim", json!(128)),
            ("sliding_window", json!(1024)),
        ],
    );
    let m = parse(&mistral).unwrap();
    assert_eq!((m.head_dim, m.head_dim()), (Some(128), 128));
    let l = m.local_attention.clone().unwrap();
    assert_eq!(
        (l.kind, l.window_tokens, l.global_every),
        (LocalAttentionKind::SlidingWindow, 1024, 0)
    );
    assert!((0..4).all(|layer| m.is_local_attention_layer(layer)));
    // A window as long as the context, or none, limits nothing.
    for window in [json!(4096), Value::Null] {
        let m = parse(&with(&mistral, &[("sliding_window", window)])).unwrap();
        assert_eq!(m.local_attention, None);
    }
    // A head_dim equal to hidden / heads is not repeated.
    let m = parse(&with(&mistral, &[("head_dim", json!(64))])).unwrap();
    assert_eq!(m.head_dim, None);

    // Qwen2: QKV bias; the sliding window only counts with use_sliding_window.
    let qwen2 = with(
        &llama(),
        &[
            ("architectures", json!(["Qwen2ForCausalLM"])),
            ("sliding_window", json!(1024)),
            ("use_sliding_window", json!(false)),
            ("max_window_layers", json!(0)),
        ],
    );
    let m = parse(&qwen2).unwrap();
    assert!(m.qkv_bias && !m.attention_bias);
    assert_eq!(m.local_attention, None);
    let m = parse(&with(&qwen2, &[("use_sliding_window", json!(true))])).unwrap();
    assert_eq!(m.local_attention.unwrap().global_every, 0);
    // Full attention on the first max_window_layers layers, windowed after: not modelled.
    let e = error(&with(
        &qwen2,
        &[
            ("use_sliding_window", json!(true)),
            ("max_window_layers", json!(2)),
        ],
    ));
    assert!(e.contains("`sliding_window`") && e.contains("2, 3"), "{e}");

    // Qwen3: q/k norm, explicit head_dim.
    let qwen3 = with(
        &llama(),
        &[
            ("architectures", json!(["Qwen3ForCausalLM"])),
            ("head_dim", json!(128)),
            ("attention_bias", json!(false)),
        ],
    );
    let m = parse(&qwen3).unwrap();
    assert!(m.qk_norm && !m.qkv_bias);
    assert_eq!(m.head_dim(), 128);
}

#[test]
fn layer_types_override_the_per_architecture_fields() {
    let types = |t: &[&str]| json!(t);
    let base = with(
        &llama(),
        &[
            ("architectures", json!(["Qwen3ForCausalLM"])),
            ("sliding_window", json!(512)),
        ],
    );
    let m = parse(&with(
        &base,
        &[(
            "layer_types",
            types(&[
                "sliding_attention",
                "full_attention",
                "sliding_attention",
                "full_attention",
            ]),
        )],
    ))
    .unwrap();
    let l = m.local_attention.unwrap();
    assert_eq!((l.window_tokens, l.global_every), (512, 2));
    let e = error(&with(
        &base,
        &[("layer_types", types(&["full_attention"; 3]))],
    ));
    assert!(
        e.contains("`layer_types` has 3 entries for 4 layers"),
        "{e}"
    );
    let e = error(&with(
        &base,
        &[("layer_types", types(&["linear_attention"; 4]))],
    ));
    assert!(e.contains("linear_attention"), "{e}");
}

#[test]
fn mixtral_and_qwen3_moe_models() {
    let m = parse(&mixtral()).unwrap();
    let moe = m.moe.clone().unwrap();
    assert_eq!(
        (
            moe.num_experts,
            moe.experts_per_token,
            moe.expert_intermediate_size
        ),
        (8, 2, 1024)
    );
    assert_eq!(
        (
            moe.num_shared_experts,
            moe.first_dense_layers,
            moe.layer_step
        ),
        (0, 0, 1)
    );
    assert_eq!(m.moe_layers_in(0..4), 4);

    let m = parse(&qwen3_moe()).unwrap();
    let moe = m.moe.clone().unwrap();
    assert_eq!((moe.num_experts, moe.expert_intermediate_size), (16, 256));
    assert_eq!(m.intermediate_size, 1024);
    assert!(m.qk_norm);
    // decoder_sparse_step = 2: layers 1 and 3.
    let m = parse(&with(&qwen3_moe(), &[("decoder_sparse_step", json!(2))])).unwrap();
    assert_eq!(m.moe.as_ref().unwrap().layer_step, 2);
    assert_eq!(
        (0..4).filter(|&l| m.is_moe_layer(l)).collect::<Vec<_>>(),
        [1, 3]
    );
    // mlp_only_layers on the first layers: first dense layers.
    let m = parse(&with(&qwen3_moe(), &[("mlp_only_layers", json!([0, 1]))])).unwrap();
    assert_eq!(m.moe.unwrap().first_dense_layers, 2);
    // ... elsewhere: not modelled, and out of range: an error.
    let e = error(&with(&qwen3_moe(), &[("mlp_only_layers", json!([2]))]));
    assert!(
        e.contains("`mlp_only_layers`") && e.contains("0, 1, 3"),
        "{e}"
    );
    let e = error(&with(&qwen3_moe(), &[("mlp_only_layers", json!([7]))]));
    assert!(e.contains("names layer 7") && e.contains("4 layers"), "{e}");
}

#[test]
fn llama4_text_model_with_shared_expert_chunks_and_vision_tower() {
    let m = parse(&llama4()).unwrap();
    assert_eq!(m.architecture, "Llama4ForConditionalGeneration");
    // Dense layers use intermediate_size_mlp; experts and the shared expert intermediate_size.
    assert_eq!(m.intermediate_size, 1024);
    let moe = m.moe.clone().unwrap();
    assert_eq!(
        (
            moe.num_experts,
            moe.experts_per_token,
            moe.expert_intermediate_size
        ),
        (4, 1, 256)
    );
    assert_eq!(
        (moe.num_shared_experts, moe.shared_expert_intermediate_size),
        (1, 256)
    );
    // interleave_moe_layer_step = 2: layers 1, 3, 5, 7 (0-based).
    assert_eq!(
        (0..8).filter(|&l| m.is_moe_layer(l)).collect::<Vec<_>>(),
        [1, 3, 5, 7]
    );
    // Chunked attention, every 4th layer global (the default NoPE interval).
    let l = m.local_attention.clone().unwrap();
    assert_eq!(
        (l.kind, l.window_tokens, l.global_every),
        (LocalAttentionKind::Chunked, 1024, 4)
    );
    assert_eq!(
        (0..8)
            .filter(|&l| !m.is_local_attention_layer(l))
            .collect::<Vec<_>>(),
        [3, 7]
    );
    assert!(m.qk_norm);
    // Vision tower by hand: patch embedding 3·2·2·16 = 192; class token 16; positions
    // (4² + 1)·16 = 272; two LayerNorms 64; per layer 4·(256 + 16) + (2·16·32 + 32 + 16) + 64
    // = 1088 + 1072 + 64 = 2224, two layers 4448; adapter 32·24 + 24·24 = 1344; projector to the
    // text width 24·512 = 12288.
    assert_eq!(m.extra_params, 192 + 16 + 272 + 64 + 4448 + 1344 + 12288);

    // Explicit no_rope_layers (1 = RoPE and chunked) and moe_layers.
    let m = parse(&with(
        &llama4(),
        &[
            (
                "text_config.no_rope_layers",
                json!([1, 0, 1, 0, 1, 0, 1, 0]),
            ),
            ("text_config.moe_layers", json!([0, 1, 2, 3, 4, 5, 6, 7])),
        ],
    ))
    .unwrap();
    assert_eq!(m.local_attention.unwrap().global_every, 2);
    assert_eq!(m.moe.unwrap().layer_step, 1);
    // attention_chunk_size = null: no chunking; absent: Transformers' default of 8192 tokens.
    let mut c = llama4();
    c["text_config"]["attention_chunk_size"] = Value::Null;
    assert_eq!(parse(&c).unwrap().local_attention, None);
    let c = with(
        &llama4(),
        &[("text_config.attention_chunk_size", Value::Null)],
    );
    assert_eq!(
        parse(&c).unwrap().local_attention.unwrap().window_tokens,
        8192
    );
    // No vision tower: no extra parameters.
    assert_eq!(
        parse(&with(&llama4(), &[("vision_config", Value::Null)]))
            .unwrap()
            .extra_params,
        0
    );
    // Errors name the nested field.
    let e = error(&with(
        &llama4(),
        &[("text_config.no_rope_layers", json!([1, 0]))],
    ));
    assert!(e.contains("`text_config.no_rope_layers`"), "{e}");
    let e = error(&with(&llama4(), &[("text_config", Value::Null)]));
    assert!(e.contains("`text_config` is missing"), "{e}");
    let e = error(&with(
        &llama4(),
        &[("text_config.intermediate_size_mlp", Value::Null)],
    ));
    assert!(
        e.contains("`text_config.intermediate_size_mlp` is missing"),
        "{e}"
    );
    let e = error(&with(&llama4(), &[("text_config.moe_layers", json!([9]))]));
    assert!(e.contains("`text_config.moe_layers` names layer 9"), "{e}");
}

#[test]
fn deepseek_v3_mla_shared_experts_first_dense_layers_and_fp8() {
    let m = parse(&deepseek()).unwrap();
    let mla = m.mla.clone().unwrap();
    assert_eq!(
        (
            mla.q_lora_rank,
            mla.kv_lora_rank,
            mla.qk_nope_head_dim,
            mla.qk_rope_head_dim,
            mla.v_head_dim
        ),
        (Some(384), 128, 64, 32, 64)
    );
    let moe = m.moe.clone().unwrap();
    assert_eq!(
        (
            moe.num_experts,
            moe.experts_per_token,
            moe.first_dense_layers
        ),
        (32, 4, 2)
    );
    assert_eq!(
        (moe.num_shared_experts, moe.shared_expert_intermediate_size),
        (2, 256)
    );
    assert_eq!((m.num_dense_mlp_layers(), m.intermediate_size), (2, 4096));
    assert_eq!(
        (m.quantization.as_deref(), m.unquantized_attention),
        (Some("fp8"), false)
    );
    assert_eq!(m.head_dim, None);
    // KV cache: the latent and the rotary key, once per token.
    assert_eq!(m.kv_bytes_per_token_per_layer(8, 2), (128 + 32) * 2);
    // q_lora_rank = null: queries projected directly.
    let m = parse(&with(&deepseek(), &[("q_lora_rank", json!(null))])).unwrap();
    assert_eq!(m.mla.unwrap().q_lora_rank, None);
    // moe_layer_freq = 2 after one dense layer: layers 2 and 4 (multiples of 2 from layer 1 on).
    let m = parse(&with(
        &deepseek(),
        &[
            ("first_k_dense_replace", json!(1)),
            ("moe_layer_freq", json!(2)),
        ],
    ))
    .unwrap();
    assert_eq!(
        (0..6).filter(|&l| m.is_moe_layer(l)).collect::<Vec<_>>(),
        [2, 4]
    );
    // ... but from layer 0 (layers 0, 2, 4) it is not a first-dense-then-every-n pattern.
    let e = error(&with(
        &deepseek(),
        &[
            ("first_k_dense_replace", json!(0)),
            ("moe_layer_freq", json!(2)),
        ],
    ));
    assert!(
        e.contains("`moe_layer_freq`") && e.contains("0, 2, 4"),
        "{e}"
    );
}

#[test]
fn fp8_checkpoints_and_their_unquantized_modules() {
    let q = |ignore: Value| {
        parse(&with(
            &mixtral(),
            &[("quantization_config", compressed_fp8(ignore))],
        ))
    };
    let m = q(json!(["lm_head", "re:.*block_sparse_moe.gate$"])).unwrap();
    assert_eq!(
        (m.quantization.as_deref(), m.unquantized_attention),
        (Some("fp8"), false)
    );
    // Every layer's attention listed (as RedHatAI's Llama-4 checkpoints do), or a regex.
    let every: Vec<String> = (0..4)
        .flat_map(|l| ["q", "k", "v", "o"].map(|p| format!("model.layers.{l}.self_attn.{p}_proj")))
        .collect();
    assert!(q(json!(every)).unwrap().unquantized_attention);
    assert!(
        q(json!(["re:.*self_attn.*", "lm_head"]))
            .unwrap()
            .unquantized_attention
    );
    // Some layers only, an MLP matrix, or a layer that does not exist: errors.
    for (ignored, expected) in [
        (
            "model.layers.0.self_attn.q_proj",
            "attention of 1 of the 4 layers",
        ),
        (
            "model.layers.0.mlp.down_proj",
            "leaves `model.layers.0.mlp.down_proj` unquantized",
        ),
        ("model.layers.9.self_attn.q_proj", "only 4 layers"),
    ] {
        let config = with(
            &mixtral(),
            &[("quantization_config", compressed_fp8(json!([ignored])))],
        );
        let e = error(&config);
        assert!(
            e.contains("`quantization_config.ignore`") && e.contains(expected),
            "{e}"
        );
    }
    // DeepSeek-style `fp8` with modules left out.
    let m = parse(&with(
        &deepseek(),
        &[(
            "quantization_config",
            json!({"quant_method": "fp8", "modules_to_not_convert": ["lm_head", "re:.*attn.*"]}),
        )],
    ))
    .unwrap();
    assert!(m.unquantized_attention);
}

#[test]
fn other_quantizations_are_clear_errors() {
    let bad = |q: Value| error(&with(&llama(), &[("quantization_config", q)]));
    let e = bad(json!({"quant_method": "awq", "bits": 4}));
    assert!(
        e.contains("`quantization_config.quant_method` = `awq` is not supported"),
        "{e}"
    );
    let e = bad(json!({"bits": 4}));
    assert!(
        e.contains("`quantization_config.quant_method` is missing"),
        "{e}"
    );
    // compressed-tensors with 4-bit integer weights (a W4A16 checkpoint).
    let mut int4 = compressed_fp8(json!(["lm_head"]));
    int4["config_groups"]["group_0"]["weights"] = json!({"num_bits": 4, "type": "int"});
    let e = bad(int4);
    assert!(
        e.contains("`quantization_config.config_groups.group_0.weights.type`")
            && e.contains("4-bit int weights"),
        "{e}"
    );
    // FP8 weights without activation quantization: weight-only, not modelled.
    let mut w8a16 = compressed_fp8(json!([]));
    w8a16["config_groups"]["group_0"]["input_activations"] = Value::Null;
    let e = bad(w8a16);
    assert!(
        e.contains("input_activations") && e.contains("weights only"),
        "{e}"
    );
    let e = bad(json!({"quant_method": "compressed-tensors"}));
    assert!(
        e.contains("`quantization_config.config_groups` is missing"),
        "{e}"
    );
}

#[test]
fn unknown_architectures_and_missing_or_bad_fields_name_the_file_and_field() {
    let e = error(&with(
        &llama(),
        &[("architectures", json!(["GPT2LMHeadModel"]))],
    ));
    assert!(e.contains("`GPT2LMHeadModel` is not supported"), "{e}");
    for arch in SUPPORTED_ARCHITECTURES {
        assert!(e.contains(arch), "{e} lists {arch}");
    }
    let e = error(&with(&llama(), &[("architectures", Value::Null)]));
    assert!(
        e.contains("`architectures` is missing") && e.contains("DeepseekV3ForCausalLM"),
        "{e}"
    );
    // Every required field of every family, removed in turn.
    for (config, fields) in [
        (
            llama(),
            &[
                "num_hidden_layers",
                "num_attention_heads",
                "hidden_size",
                "intermediate_size",
                "vocab_size",
                "max_position_embeddings",
            ][..],
        ),
        (mixtral(), &["num_local_experts", "num_experts_per_tok"][..]),
        (qwen3_moe(), &["num_experts", "moe_intermediate_size"][..]),
        (
            deepseek(),
            &[
                "kv_lora_rank",
                "qk_nope_head_dim",
                "qk_rope_head_dim",
                "v_head_dim",
                "n_routed_experts",
                "moe_intermediate_size",
            ][..],
        ),
    ] {
        for field in fields {
            let e = error(&with(&config, &[(field, Value::Null)]));
            assert!(e.contains(&format!("field `{field}` is missing")), "{e}");
        }
    }
    for (value, problem) in [
        (json!(0), "is 0"),
        (json!(-4), "is negative"),
        (json!(512.5), "not a whole number"),
        (json!("512"), "not a number"),
        (json!(5_000_000_000u64), "larger than 4294967295"),
        (json!(1e30), "larger than 4294967295"),
    ] {
        let e = error(&with(&llama(), &[("hidden_size", value)]));
        assert!(
            e.contains("field `hidden_size`") && e.contains(problem),
            "{e}"
        );
    }
    let e = error(&with(&llama(), &[("tie_word_embeddings", json!("yes"))]));
    assert!(
        e.contains("`tie_word_embeddings`") && e.contains("not true or false"),
        "{e}"
    );
    let e = error(&with(&mixtral(), &[("num_experts_per_tok", json!(9))]));
    assert!(
        e.contains("`num_experts_per_tok` = 9 is more than the 8 routed experts"),
        "{e}"
    );
    let e = error(&with(&llama(), &[("num_hidden_layers", json!(100_000))]));
    assert!(
        e.contains("`num_hidden_layers` = 100000") && e.contains("65536"),
        "{e}"
    );
    let e = parse_text("{not json");
    assert!(e.contains("not valid JSON"), "{e}");
    let e = parse_text("[1, 2]");
    assert!(e.contains("not a JSON object"), "{e}");
}

fn parse_text(text: &str) -> String {
    ModelSpec::from_hf_config_str(text, Path::new(FILE))
        .unwrap_err()
        .to_string()
}

/// Issue 18: a config whose sizes each fit in 32 bits but whose products overflow 64 bits once
/// produced a wrapped weight size and then an internal error; it is now refused when read.
#[test]
fn sizes_whose_products_overflow_are_refused() {
    let huge = with(
        &llama(),
        &[
            ("hidden_size", json!(4_000_000_000u64)),
            ("intermediate_size", json!(4_000_000_000u64)),
            ("num_attention_heads", json!(4)),
            ("num_key_value_heads", json!(4)),
            ("vocab_size", json!(4_000_000_000u64)),
        ],
    );
    let e = error(&huge);
    assert!(
        e.contains("parameters") && e.contains("check the sizes"),
        "{e}"
    );
    // Experts multiply too.
    let e = error(&with(
        &mixtral(),
        &[
            ("num_local_experts", json!(4_000_000_000u64)),
            ("intermediate_size", json!(4_000_000_000u64)),
        ],
    ));
    assert!(e.contains("parameters") && e.contains("experts"), "{e}");
    // A KV cache of more than 1 GiB per token.
    let e = error(&with(
        &llama(),
        &[
            ("head_dim", json!(1 << 24)),
            ("hidden_size", json!(8)),
            ("num_key_value_heads", json!(8)),
        ],
    ));
    assert!(e.contains("KV-cache bytes per token"), "{e}");
    // A vision tower that large.
    let e = error(&with(
        &llama4(),
        &[("vision_config.hidden_size", json!(4_000_000_000u64))],
    ));
    assert!(e.contains("`vision_config.hidden_size`"), "{e}");
}

/// Issue 18: `torch_dtype: "int3"` is named in a clear error.
#[test]
fn unknown_torch_dtypes_are_refused() {
    let e = error(&with(&llama(), &[("torch_dtype", json!("int3"))]));
    assert!(
        e.contains("`torch_dtype` = `int3` is not supported; expected bfloat16, float16, float32"),
        "{e}"
    );
    // The newer `dtype` key, and the top level of a multimodal config, are read too.
    let m = parse(&with(
        &llama(),
        &[("torch_dtype", Value::Null), ("dtype", json!("float16"))],
    ));
    assert_eq!(m.unwrap().torch_dtype, "float16");
    let mut c = with(&llama4(), &[("torch_dtype", json!("int3"))]);
    assert!(error(&c).contains("int3"));
    c["text_config"]["torch_dtype"] = json!("float32");
    assert_eq!(parse(&c).unwrap().torch_dtype, "float32");
    // Absent everywhere: bfloat16.
    let m = parse(&with(&llama(), &[("torch_dtype", Value::Null)])).unwrap();
    assert_eq!(m.torch_dtype, "bfloat16");
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf_configs")
}

/// Every published `config.json` under `tests/fixtures/hf_configs/` gives exactly its catalog
/// entry (apart from the name and source), so the catalog cannot drift from the published facts.
#[test]
fn every_published_config_gives_its_catalog_entry() {
    let cat = Catalog::builtin();
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 13, "{files:?}");
    for f in files {
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        let name = stem.replacen("__", "/", 1);
        let mut parsed = ModelSpec::from_hf_config(&f).unwrap_or_else(|e| panic!("{e}"));
        let entry = cat.model(&name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            entry.source,
            format!("https://huggingface.co/{name}/blob/main/config.json")
        );
        parsed.name = entry.name.clone();
        parsed.source = entry.source.clone();
        // The sampling defaults come from generation_config.json, which is not a fixture.
        if let Some(g) = &entry.generation {
            assert_eq!(
                g.source,
                format!("https://huggingface.co/{name}/blob/main/generation_config.json")
            );
        }
        parsed.generation = entry.generation.clone();
        assert_eq!(parsed, entry, "{name}");
    }
}

/// The sampling defaults are read from the `generation_config.json` beside `config.json`; a file
/// without them, or no file, gives none; bad values name the file and the field.
#[test]
fn generation_defaults_are_read_from_beside_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, llama().to_string()).unwrap();
    assert_eq!(ModelSpec::from_hf_config(&config).unwrap().generation, None);
    let generation = dir.path().join("generation_config.json");
    let write = |v: Value| std::fs::write(&generation, v.to_string()).unwrap();
    write(json!({"bos_token_id": 1, "eos_token_id": [2, 3], "do_sample": true}));
    assert_eq!(ModelSpec::from_hf_config(&config).unwrap().generation, None);
    write(json!({
        "do_sample": true, "temperature": 0.7, "top_p": 0.8, "top_k": 20,
        "repetition_penalty": 1.05
    }));
    let g = ModelSpec::from_hf_config(&config)
        .unwrap()
        .generation
        .unwrap();
    assert_eq!(
        (g.temperature, g.top_p, g.top_k, g.repetition_penalty),
        (Some(0.7), Some(0.8), Some(20), Some(1.05))
    );
    assert_eq!(g.source, generation.display().to_string());
    assert!(g.filters_logits(1000));
    for (bad, field) in [
        (json!({"top_p": 1.5}), "top_p"),
        (json!({"top_p": 0}), "top_p"),
        (json!({"temperature": -1}), "temperature"),
        (json!({"top_k": -5}), "top_k"),
        (json!({"repetition_penalty": "high"}), "repetition_penalty"),
    ] {
        write(bad);
        let e = ModelSpec::from_hf_config(&config).unwrap_err().to_string();
        assert!(e.contains("generation_config.json"), "{e}");
        assert!(e.contains(field), "{e}");
    }
    write(json!([1, 2]));
    let e = ModelSpec::from_hf_config(&config).unwrap_err().to_string();
    assert!(
        e.contains("generation_config.json") && e.contains("not a JSON object"),
        "{e}"
    );
}

/// Top-p below 1 or top-k below the vocabulary filter the logits, unless decoding is greedy.
#[test]
fn which_generation_defaults_filter_the_logits() {
    let g = |temperature, top_p, top_k| crate::catalog::GenerationDefaults {
        temperature,
        top_p,
        top_k,
        repetition_penalty: None,
        source: String::new(),
    };
    assert!(g(Some(0.6), Some(0.9), None).filters_logits(1000));
    assert!(g(None, None, Some(20)).filters_logits(1000));
    assert!(g(None, Some(0.95), Some(0)).filters_logits(1000));
    assert!(!g(Some(0.6), Some(1.0), None).filters_logits(1000));
    assert!(!g(Some(0.6), None, Some(0)).filters_logits(1000));
    assert!(!g(None, None, Some(1000)).filters_logits(1000));
    assert!(g(None, None, Some(999)).filters_logits(1000));
    assert!(!g(Some(0.0), Some(0.9), Some(20)).filters_logits(1000));
    assert!(!g(Some(1.0), None, None).filters_logits(1000));
}
