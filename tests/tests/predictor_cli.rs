//! End-to-end tests of the `predictor` binary: fit on a small profile directory, predict with each
//! backend, and clear errors (never a panic) for bad input.

use std::path::Path;
use std::process::{Command, Output};

use servesim_e2e::{binary, vidur_data};

fn predictor(args: &[&str]) -> Output {
    Command::new(binary("predictor"))
        .args(args)
        .output()
        .expect("run predictor (build it first: cargo build --release --bins)")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const OPS: [&str; 9] = [
    "input_layernorm",
    "attn_pre_proj",
    "attn_rope",
    "attn_post_proj",
    "post_attention_layernorm",
    "mlp_up_proj",
    "mlp_act",
    "mlp_down_proj",
    "add",
];

/// A small mlp.csv for Llama-2-7b dims on a100, TP 1 and 2, in Vidur's layout under `root`.
fn write_profile(root: &Path, truncate_last: bool) {
    let dir = root.join("compute/a100/meta-llama/Llama-2-7b-hf");
    std::fs::create_dir_all(&dir).unwrap();
    let mut s: String = OPS
        .iter()
        .map(|o| format!("time_stats.{o}.median,"))
        .collect();
    s += "n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,use_gated_mlp,num_tokens,num_tensor_parallel_workers\n";
    for tp in [1u64, 2] {
        for n in (8..=512u64).step_by(8) {
            for (k, _) in OPS.iter().enumerate() {
                let wobble = 1.0 + ((n * 31 + k as u64) % 7) as f64 * 0.003;
                s += &format!(
                    "{:.4},",
                    (0.003 + 0.0002 * (k + 1) as f64 * n as f64 / tp as f64) * wobble
                );
            }
            s += &format!("32,32,4096,11008,32768,True,{n},{tp}\n");
        }
    }
    if truncate_last {
        let cut = s.trim_end().rfind(',').unwrap();
        s.truncate(cut);
        s.push('\n');
    }
    std::fs::write(dir.join("mlp.csv"), s).unwrap();
}

#[test]
fn fit_writes_models_tables_and_accuracy_in_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    write_profile(dir.path(), false);
    let out = dir.path().join("out");
    let o = predictor(&[
        "fit",
        "--profiles",
        dir.path().to_str().unwrap(),
        "--device",
        "a100",
        "--model",
        "meta-llama/Llama-2-7b-hf",
        "--tp",
        "1,2",
        "--out",
        out.to_str().unwrap(),
        "--max-tokens",
        "256",
        "--max-batch-size",
        "4",
        "--max-prefill-chunk",
        "256",
    ]);
    let (so, se) = text(&o);
    assert!(o.status.success(), "{so}\n{se}");
    assert!(so.contains("pooled compute"), "{so}");
    let acc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("accuracy.json")).unwrap()).unwrap();
    let entries = acc["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 18);
    for key in [
        "op",
        "tp",
        "rows",
        "median_ape_pct",
        "p90_ape_pct",
        "p95_ape_pct",
        "max_ape_pct",
    ] {
        assert!(entries[0].get(key).is_some(), "entry lacks {key}");
    }
    assert_eq!(entries[0]["rows"], 64);
    let c = &acc["pooled"]["compute"];
    assert_eq!(c["rows"], 18 * 64);
    assert!(c["p95_ape_pct"].as_f64().unwrap() < 5.0, "{c}");
    assert!(c["median_of_medians_pct"].is_number());
    let models = std::fs::read_to_string(out.join("models.json")).unwrap();
    assert!(models.contains("\"sha256\""));
    let add = std::fs::read_to_string(out.join("tables/tp1/add.csv")).unwrap();
    assert!(add.starts_with("num_tokens,prediction\n1,"));
    assert_eq!(add.lines().count(), 257);
    let pre = std::fs::read_to_string(out.join("tables/tp2/attn_prefill.csv")).unwrap();
    assert!(pre.starts_with("kv_cache_size,prefill_chunk_size_squared,prediction\n0,1,"));

    // Fitting again gives byte-identical models.
    let out2 = dir.path().join("out2");
    let o = predictor(&[
        "fit",
        "--profiles",
        dir.path().to_str().unwrap(),
        "--device",
        "a100",
        "--model",
        "meta-llama/Llama-2-7b-hf",
        "--tp",
        "1,2",
        "--out",
        out2.to_str().unwrap(),
        "--no-accuracy",
        "--max-tokens",
        "256",
        "--max-batch-size",
        "4",
        "--max-prefill-chunk",
        "256",
    ]);
    assert!(o.status.success());
    let again = std::fs::read_to_string(out2.join("models.json")).unwrap();
    let strip = |s: &str| {
        s.replace(out.to_str().unwrap(), "")
            .replace(out2.to_str().unwrap(), "")
    };
    assert!(strip(&models) == strip(&again), "two fits differ");

    // The exported tables answer as the tables backend.
    let o = predictor(&[
        "predict",
        "--model",
        "meta-llama/Llama-2-7b-hf",
        "--device",
        "a100",
        "--tp",
        "2",
        "--prefill",
        "100",
        "--decode",
        "2",
        "--kv",
        "128",
        "--backend",
        "tables",
        "--tables",
        out.join("tables/tp2").to_str().unwrap(),
    ]);
    let (so, se) = text(&o);
    assert!(o.status.success(), "{so}\n{se}");
    assert!(so.contains("backend: tables"), "{so}");
}

#[test]
fn predict_without_a_profile_answers_from_the_engine_model_and_says_so() {
    let mut args = vec![
        "predict",
        "--model",
        "meta-llama/Meta-Llama-3-8B",
        "--device",
        "h100",
        "--tp",
        "1",
        "--pp",
        "1",
        "--prefill",
        "512,1024",
        "--decode",
        "32",
        "--kv",
        "2048",
    ];
    // Vidur's profiles have Llama-3-8B on A100 only, so H100 still falls back to the roofline.
    let profiles = vidur_data().join("profiling");
    args.extend(["--profiles", profiles.to_str().unwrap()]);
    let o = predictor(&args);
    let (so, se) = text(&o);
    assert!(o.status.success(), "{so}\n{se}");
    assert!(so.contains("backend: engine"), "{so}");
    assert!(so.contains("so the engine model answers"), "{so}");
    assert!(so.contains("mlp_up_proj") && so.contains("total"), "{so}");
}

#[test]
fn predict_with_vidur_profiles_answers_from_them_with_attention_from_the_roofline() {
    let profiles = vidur_data().join("profiling");
    let cache = tempfile::tempdir().unwrap();
    let o = predictor(&[
        "predict",
        "--model",
        "meta-llama/Llama-2-7b-hf",
        "--device",
        "a100",
        "--tp",
        "2",
        "--pp",
        "2",
        "--prefill",
        "512,1024",
        "--decode",
        "32",
        "--kv",
        "2048",
        "--profiles",
        profiles.to_str().unwrap(),
        "--cache",
        cache.path().to_str().unwrap(),
    ]);
    let (so, se) = text(&o);
    assert!(o.status.success(), "{so}\n{se}");
    assert!(so.contains("backend: profiled"), "{so}");
    assert!(
        so.contains("attn_prefill: answered by the roofline backend"),
        "{so}"
    );
    assert!(
        so.contains("all_reduce") && so.contains("send_recv"),
        "{so}"
    );
}

#[test]
fn bad_inputs_give_clear_errors_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    write_profile(dir.path(), true);
    let p = dir.path().to_str().unwrap();
    let out = dir.path().join("out");
    let o_ = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec![
                "fit",
                "--profiles",
                p,
                "--device",
                "a100",
                "--model",
                "llama-9000",
                "--out",
                o_,
            ],
            vec!["unknown model `llama-9000`"],
        ),
        (
            vec![
                "fit",
                "--profiles",
                p,
                "--device",
                "a100",
                "--model",
                "meta-llama/Llama-2-7b-hf",
                "--tp",
                "3",
                "--out",
                o_,
            ],
            vec!["tensor-parallel degree 3 does not divide"],
        ),
        (
            vec![
                "fit",
                "--profiles",
                p,
                "--device",
                "a100",
                "--model",
                "meta-llama/Llama-2-7b-hf",
                "--out",
                o_,
            ],
            vec!["mlp.csv:129", "num_tensor_parallel_workers", "truncated"],
        ),
        (
            vec![
                "predict",
                "--model",
                "meta-llama/Llama-2-7b-hf",
                "--device",
                "a100",
                "--tp",
                "3",
                "--prefill",
                "8",
            ],
            vec!["tensor-parallel degree 3 does not divide"],
        ),
        (
            vec![
                "predict",
                "--model",
                "meta-llama/Llama-2-7b-hf",
                "--device",
                "a100",
                "--backend",
                "profiled",
                "--prefill",
                "8",
                "--profiles",
                o_,
            ],
            vec!["no profile of meta-llama/Llama-2-7b-hf on a100"],
        ),
    ];
    for (args, needles) in cases {
        let o = predictor(&args);
        let (so, se) = text(&o);
        assert!(!o.status.success(), "{args:?} succeeded: {so}");
        assert!(!se.contains("panicked"), "{args:?} panicked: {se}");
        for n in needles {
            assert!(se.contains(n), "{args:?}: `{n}` not in: {se}");
        }
    }
}
