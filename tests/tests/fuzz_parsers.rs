//! Fuzzing of every input parser with proptest (docs/reliability.md): trace CSVs, Mooncake traces,
//! configuration TOML, Hugging Face `config.json`, profile CSVs, search spaces and shard files.
//!
//! Each target gets arbitrary bytes, text made of the format's own tokens (headers, numbers at
//! and past the edges, NaN, empty cells, odd separators) and mutations of a valid file. The
//! property: the parser returns, never panics; an error is one readable message (no debug
//! structs); what it accepts obeys the format's invariants (requests in arrival order, lengths
//! ≥ 1 and within `max_tokens`, arrivals inside the clock's range).
//!
//! `FUZZ_CASES` sets the cases per target (default 512, what CI runs); failures are shrunk and
//! printed with the input, and proptest keeps the seeds of failing cases in
//! `fuzz_parsers.proptest-regressions` beside this file (committed) so that they run first.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

use predictor::profile::{AttentionProfile, Collective, MlpProfile, NetworkProfile};
use predictor::Catalog;
use simulator::search::results::Header;
use simulator::search::space::{SearchKnobs, SpaceFile};
use simulator::workload::{generate, TraceConfig, WorkloadConfig};
use simulator::SimConfig;

fn config() -> Config {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// A number cell: ordinary values, edges, overflow, NaN, junk.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..5000).prop_map(|v| v.to_string()),
        (0.0f64..1e4).prop_map(|v| v.to_string()),
        Just(String::new()),
        Just("NaN".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("1e308".to_string()),
        Just("1.7e9".to_string()),
        Just("inf".to_string()),
        Just("18446744073709551616".to_string()),
        Just("4294967296".to_string()),
        Just("\"3\"".to_string()),
        "[a-z ]{0,4}",
    ]
}

/// CSV text whose header is drawn from `columns` (plus junk), with rows of `cell`s, some ragged,
/// with LF or CRLF line ends and blank lines.
fn csv_text(columns: &'static [&'static str]) -> impl Strategy<Value = String> {
    let header = proptest::sample::subsequence(columns.to_vec(), 0..=columns.len());
    (
        header,
        any::<bool>(),
        proptest::collection::vec(
            (proptest::collection::vec(cell(), 0..8), any::<bool>()),
            0..8,
        ),
    )
        .prop_map(|(header, crlf, rows)| {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut text = header.join(",");
            text.push_str(nl);
            for (cells, blank_before) in rows {
                if blank_before {
                    text.push_str(nl);
                }
                text.push_str(&cells.join(","));
                text.push_str(nl);
            }
            text
        })
}

/// `valid` with a few bytes replaced, inserted or cut.
fn mutated(valid: &'static str) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6).prop_map(
        move |edits| {
            let mut b = valid.as_bytes().to_vec();
            for (at, byte, kind) in edits {
                if b.is_empty() {
                    break;
                }
                let i = at.index(b.len());
                match kind {
                    0 => b[i] = byte,
                    1 => b.insert(i, byte),
                    _ => b.truncate(i),
                }
            }
            b
        },
    )
}

fn bytes_or(
    text: impl Strategy<Value = String> + 'static,
    valid: &'static str,
) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        text.prop_map(String::into_bytes),
        mutated(valid),
    ]
    .boxed()
}

fn readable(message: &str) -> Result<(), TestCaseError> {
    for debug in [
        "Position {",
        "ErrorKind",
        "Utf8Error",
        "UnequalLengths",
        "Some(",
    ] {
        prop_assert!(!message.contains(debug), "debug struct in: {}", message);
    }
    Ok(())
}

fn file_with(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Replays `path` as a trace and checks the accepted requests' invariants.
fn replay(path: &Path, max_tokens: u32) -> Result<(), TestCaseError> {
    let cfg = WorkloadConfig {
        num_requests: None,
        max_tokens,
        trace: Some(TraceConfig::new(path)),
        ..WorkloadConfig::default()
    };
    match generate(&cfg, 7) {
        Err(e) => readable(&e.to_string())?,
        Ok(requests) => {
            let mut last = 0;
            for r in requests.take(10_000) {
                prop_assert!(r.arrival_ns >= last, "out of order");
                prop_assert!(r.arrival_ns <= simulator::engine::MAX_SIMULATED_NS);
                prop_assert!(r.prefill_tokens >= 1 && r.decode_tokens >= 1);
                prop_assert!(r.prefill_tokens + r.decode_tokens <= max_tokens);
                last = r.arrival_ns;
            }
        }
    }
    Ok(())
}

const TRACE: &str = "arrived_at,num_prefill_tokens,num_decode_tokens,session_id,prefix_id,prefix_tokens\n0.5,100,10,,,\n1.0,120,12,1,,\n2.0,300,5,1,7,64\n";
const TRACE_COLUMNS: &[&str] = &[
    "arrived_at",
    "num_prefill_tokens",
    "num_decode_tokens",
    "session_id",
    "prefix_id",
    "prefix_tokens",
    "x",
];
const MOONCAKE: &str = "{\"timestamp\": 0, \"input_length\": 700, \"output_length\": 10, \"hash_ids\": [0, 1]}\n{\"timestamp\": 1500, \"input_length\": 600, \"output_length\": 3, \"hash_ids\": [0, 2]}\n";
const MLP_HEADER: &str = "time_stats.input_layernorm.median,time_stats.attn_pre_proj.median,time_stats.attn_rope.median,time_stats.attn_post_proj.median,time_stats.post_attention_layernorm.median,time_stats.mlp_up_proj.median,time_stats.mlp_act.median,time_stats.mlp_down_proj.median,time_stats.add.median,n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,use_gated_mlp,num_tokens,num_tensor_parallel_workers";
const MLP: &str = "time_stats.input_layernorm.median,time_stats.attn_pre_proj.median,time_stats.attn_rope.median,time_stats.attn_post_proj.median,time_stats.post_attention_layernorm.median,time_stats.mlp_up_proj.median,time_stats.mlp_act.median,time_stats.mlp_down_proj.median,time_stats.add.median,n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,use_gated_mlp,num_tokens,num_tensor_parallel_workers\n0.005,0.065,0.005,0.025,0.005,0.116,0.007,0.06,0.002,32,32,4096,11008,32768,True,1,1\n";
const HF_CONFIG: &str = r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32, "num_hidden_layers": 32, "vocab_size": 32000, "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}"#;
const SPACE: &str = "seed = 3\n[space]\nmodels = [\"meta-llama/Llama-2-7b-hf\"]\ntp = [1, 2]\n[[space.devices]]\ndevice = \"h100\"\n[[space.schedulers]]\nname = \"vllm\"\n[workload]\nnum_requests = 50\n";
const SIM_TOML: &str = "seed = 1\ntime_limit_s = 30.0\n[cluster]\nnum_replicas = 2\nrouter = \"lor\"\n[replica]\ntp = 2\n[scheduler]\nname = \"vllm_v1\"\nchunk_size = 256\n[workload]\nnum_requests = 10\n[workload.arrival]\nkind = \"gamma\"\nqps = 2.0\ncv = 2.0\n[output]\ntimeseries_interval_s = 0.5\n[slo]\nttft_s = 1.0\n[predictor.roofline]\nlink = 0.5\n";

/// TOML built from keys the configuration knows and values at and past their edges.
fn toml_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("seed"),
        Just("time_limit_s"),
        Just("[cluster]\nnum_replicas"),
        Just("[replica]\ntp"),
        Just("[replica]\nmemory_margin_fraction"),
        Just("[scheduler]\nnum_blocks"),
        Just("[scheduler]\nchunk_size"),
        Just("[scheduler]\nwatermark_blocks_fraction"),
        Just("[workload]\nnum_requests"),
        Just("[workload]\nmax_tokens"),
        Just("[workload.arrival]\nqps"),
        Just("[output]\ntimeseries_interval_s"),
        Just("[slo]\nttft_s"),
        Just("[predictor.params]\ncpu_overhead_ms_per_batch"),
        Just("[predictor.roofline]\ngemm_compute"),
    ];
    let value = prop_oneof![
        Just("0"),
        Just("-1"),
        Just("1"),
        Just("0.5"),
        Just("nan"),
        Just("inf"),
        Just("-inf"),
        Just("1e308"),
        Just("18446744073709551615"),
        Just("\"x\""),
        Just("[]"),
    ];
    proptest::collection::vec((key, value), 0..4).prop_map(|kv| {
        kv.iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect::<String>()
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn csv_traces(bytes in bytes_or(csv_text(TRACE_COLUMNS), TRACE), max_tokens in 2u32..5000) {
        let dir = tempfile::tempdir().unwrap();
        replay(&file_with(dir.path(), "t.csv", &bytes), max_tokens)?;
    }

    #[test]
    fn mooncake_traces(
        bytes in bytes_or(
            proptest::collection::vec(
                (cell(), cell(), cell(), proptest::collection::vec(0u64..5, 0..4)),
                0..5,
            )
            .prop_map(|lines| {
                lines
                    .iter()
                    .map(|(t, i, o, h)| format!(
                        "{{\"timestamp\": {t}, \"input_length\": {i}, \"output_length\": {o}, \"hash_ids\": {h:?}}}\n"
                    ))
                    .collect::<String>()
            }),
            MOONCAKE,
        ),
        max_tokens in 2u32..5000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        replay(&file_with(dir.path(), "t.jsonl", &bytes), max_tokens)?;
    }

    #[test]
    fn configuration_toml(text in prop_oneof![toml_text(), mutated(SIM_TOML).prop_map(|b| String::from_utf8_lossy(&b).into_owned())]) {
        if let Ok(cfg) = SimConfig::from_toml(&text) {
            if cfg.validate_values().is_ok() {
                // what validates resolves or fails with a message, without panicking
                let _ = cfg.resolve(&Catalog::builtin());
            }
        }
    }

    #[test]
    fn hugging_face_config_json(bytes in bytes_or(Just(HF_CONFIG.to_string()), HF_CONFIG)) {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with(dir.path(), "config.json", &bytes);
        if let Err(e) = Catalog::builtin().model(path.to_str().unwrap()) {
            readable(&e.to_string())?;
        }
    }

    #[test]
    fn profile_csvs(bytes in bytes_or(csv_text(&[
        "time_stats.attn_pre_proj.median", "n_head", "n_kv_head", "n_embd", "num_tokens",
        "num_tensor_parallel_workers", "use_gated_mlp", "vocab_size", "batch_size", "kv_cache_size",
        "prefill_chunk_size", "is_prefill", "time_stats.attn_prefill.median", "size",
        "num_workers", "time_stats.all_reduce.median", "time_stats.send_recv.median",
        "devices_per_node", "rank",
    ]).prop_map(|t| if t.len() % 3 == 0 { format!("{MLP_HEADER}\n{t}") } else { t }), MLP)) {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with(dir.path(), "p.csv", &bytes);
        let errors = [
            MlpProfile::read(&path).err().map(|e| e.to_string()),
            AttentionProfile::read(&path).err().map(|e| e.to_string()),
            NetworkProfile::read(&path, Collective::AllReduce).err().map(|e| e.to_string()),
            NetworkProfile::read(&path, Collective::SendRecv).err().map(|e| e.to_string()),
        ];
        for e in errors.into_iter().flatten() {
            prop_assert!(e.contains("p.csv"), "{}", e);
            readable(&e)?;
        }
    }

    #[test]
    fn search_spaces(bytes in bytes_or(Just(SPACE.to_string()), SPACE)) {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with(dir.path(), "space.toml", &bytes);
        if let Ok(space) = SpaceFile::load(&path) {
            for c in space.expand().iter().take(50) {
                let _ = c.config.validate_values();
            }
        }
    }

    #[test]
    fn shard_files(
        index in 0usize..6,
        count in 0usize..4,
        num in 0usize..4,
        rows in proptest::collection::vec((0usize..6, proptest::option::of(0.0f64..10.0)), 0..4),
        junk in proptest::collection::vec(any::<u8>(), 0..64),
        raw in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let header = Header {
            format: "servesim-search-shard-v1".into(),
            seed: 1,
            search: SearchKnobs::default(),
            slos: simulator::search::slo::default_slos(),
            num_configurations: num,
            space_fingerprint: "0".into(),
        };
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|(i, cap)| serde_json::json!({ "row": { "index": i, "capacity_qps": cap }, "run_config": null }))
            .collect();
        let text = if raw {
            junk
        } else {
            serde_json::json!({
                "header": header,
                "shard": { "index": index, "count": count },
                "rows": rows,
            })
            .to_string()
            .into_bytes()
        };
        file_with(dir.path(), "shard.json", &text);
        if let Err(e) = simulator::search::shard::merge(&[dir.path().to_path_buf()]) {
            readable(&e.to_string())?;
        }
    }
}
