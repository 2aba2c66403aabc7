//! End-to-end: `simulator run --scheduler vllm_v1` with prefix caching, its metrics in the output
//! files, and clear errors for its knobs.

use std::process::{Command, Output};

use servesim_e2e::binary;

fn simulator(args: &[&str]) -> Output {
    Command::new(binary("simulator"))
        .args(args)
        .output()
        .expect("run simulator (build the binaries first)")
}

fn summary(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

fn run(dir: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "run",
        "-q",
        "--scheduler",
        "vllm_v1",
        "--num-requests",
        "60",
        "--prefix-groups",
        "2",
        "--prefix-tokens",
        "200",
        "--no-batches",
        "--no-trace",
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = simulator(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    summary(dir)
}

#[test]
fn prefix_groups_hit_the_cache_and_the_metrics_reach_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let on = run(&tmp.path().join("on"), &[]);
    let p = &on["prefix_cache"];
    assert_eq!(p["enabled"], true);
    // two 200-token prompts: all but (about) the first request of each reuse 12 blocks
    assert!(p["request_hit_rate"].as_f64().unwrap() > 0.9, "{p}");
    assert!(p["hit_tokens"].as_u64().unwrap() >= 50 * 192, "{p}");
    assert_eq!(on["preemptions"]["total"], 0);
    let csv = std::fs::read_to_string(tmp.path().join("on/requests.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let cached = header
        .iter()
        .position(|&c| c == "cached_prefill_tokens")
        .unwrap();
    let computed = header
        .iter()
        .position(|&c| c == "computed_prefill_tokens")
        .unwrap();
    let prompt = header.iter().position(|&c| c == "prefill_tokens").unwrap();
    let mut cached_sum = 0;
    for line in csv.lines().skip(1) {
        let f: Vec<u64> = line
            .split(',')
            .enumerate()
            .filter(|(i, _)| [cached, computed, prompt].contains(i))
            .map(|(_, v)| v.parse().unwrap())
            .collect();
        // columns in header order: prefill, cached, ..., computed
        assert_eq!(f[0], f[1] + f[2], "{line}");
        cached_sum += f[1];
    }
    assert_eq!(cached_sum, p["cached_prefill_tokens"].as_u64().unwrap());

    let off = run(&tmp.path().join("off"), &["--no-enable-prefix-caching"]);
    assert_eq!(off["prefix_cache"]["enabled"], false);
    assert_eq!(off["prefix_cache"]["hit_tokens"], 0);
    let mean = |s: &serde_json::Value| s["latency"]["ttft_s"]["mean"].as_f64().unwrap();
    assert!(mean(&off) > mean(&on), "{} vs {}", mean(&off), mean(&on));
}

fn fails(args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let mut all = args.to_vec();
    all.extend_from_slice(&["-q", "--out", out_dir.to_str().unwrap()]);
    let out = simulator(&all);
    assert!(!out.status.success(), "{args:?} succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_knobs_are_named() {
    let e = fails(&["run", "--scheduler", "vllm", "--enable-prefix-caching"]);
    assert!(
        e.contains("scheduler.enable_prefix_caching") && e.contains("vllm_v1"),
        "{e}"
    );
    let e = fails(&[
        "run",
        "--scheduler",
        "vllm_v1",
        "--max-tokens",
        "4096",
        "--max-model-len",
        "2048",
    ]);
    assert!(e.contains("scheduler.vllm_v1.max_model_len"), "{e}");
    let e = fails(&[
        "run",
        "--scheduler",
        "vllm_v1",
        "--no-enable-chunked-prefill",
        "--max-num-batched-tokens",
        "512",
    ]);
    assert!(
        e.contains("scheduler.vllm_v1.max_num_batched_tokens") && e.contains("chunked prefill"),
        "{e}"
    );
    let e = fails(&["run", "--scheduler", "vllm_v1", "--max-num-seqs", "0"]);
    assert!(e.contains("--max-num-seqs"), "{e}");
    let e = fails(&["run", "--gpu-memory-utilization", "1.5"]);
    assert!(e.contains("gpu_memory_utilization"), "{e}");
}

/// `--sampling`: the default model's generation defaults (top-p 0.9) make the sampler filter,
/// which `plain` turns off and `filtered` turns on for a model without defaults; the choice is
/// recorded in the configuration written beside the results; a bad value is refused.
#[test]
fn sampling_mode_moves_the_engine_models_step_time() {
    let tmp = tempfile::tempdir().unwrap();
    let mean_e2e = |name: &str, extra: &[&str]| {
        let dir = tmp.path().join(name);
        let s = run(&dir, extra);
        let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        (s["latency"]["e2e_s"]["mean"].as_f64().unwrap(), config)
    };
    let (auto, auto_cfg) = mean_e2e("auto", &[]);
    let (plain, plain_cfg) = mean_e2e("plain", &["--sampling", "plain"]);
    let (filtered, _) = mean_e2e("filtered", &["--sampling", "filtered"]);
    assert!(plain < auto, "plain {plain} vs auto {auto}");
    assert_eq!(filtered, auto, "Meta-Llama-3-8B's defaults already filter");
    assert!(auto_cfg.contains("sampling = \"auto\""), "{auto_cfg}");
    assert!(plain_cfg.contains("sampling = \"plain\""), "{plain_cfg}");
    // Mixtral sets no defaults: auto is plain, filtered is slower.
    let mixtral = ["--model", "mistralai/Mixtral-8x7B-v0.1", "--tp", "2"];
    let (m_auto, _) = mean_e2e("m_auto", &mixtral);
    let (m_plain, _) = mean_e2e(
        "m_plain",
        &[&mixtral[..], &["--sampling", "plain"]].concat(),
    );
    let (m_filtered, _) = mean_e2e(
        "m_filtered",
        &[&mixtral[..], &["--sampling", "filtered"]].concat(),
    );
    assert_eq!(m_auto, m_plain);
    assert!(m_filtered > m_auto, "{m_filtered} vs {m_auto}");
    let e = fails(&["run", "--sampling", "nucleus"]);
    assert!(e.contains("--sampling") && e.contains("plain"), "{e}");
}
