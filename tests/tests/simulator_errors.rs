//! End-to-end: bad input gives a clear error and a non-zero exit, never a panic.

use std::process::Command;

use servesim_e2e::binary;

/// Runs `simulator run ARGS` expecting failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let out = Command::new(binary("simulator"))
        .arg("run")
        .arg("-q")
        .args(args)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run simulator");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "simulator {args:?} should fail");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn zero_or_negative_rate() {
    for qps in ["0", "-2"] {
        let e = fails(&[&format!("--qps={qps}")]);
        assert!(e.contains("qps"), "{e}");
    }
}

#[test]
fn chunk_size_zero() {
    let e = fails(&["--chunk-size", "0"]);
    assert!(
        e.contains("scheduler.chunk_size") && e.contains("--chunk-size"),
        "{e}"
    );
}

#[test]
fn more_pipeline_stages_than_layers() {
    let e = fails(&["--pp", "64"]);
    assert!(
        e.contains("64 pipeline stages") && e.contains("32 layers"),
        "{e}"
    );
}

#[test]
fn model_that_does_not_fit() {
    let e = fails(&["--model", "meta-llama/Llama-2-70b-hf", "--device", "a100"]);
    for s in ["Llama-2-70b-hf", "a100", "TP1 × PP1", "GiB", "--tp", "--pp"] {
        assert!(e.contains(s), "missing {s:?} in: {e}");
    }
}

#[test]
fn empty_trace_and_missing_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.csv");
    std::fs::write(&empty, "arrived_at,num_prefill_tokens,num_decode_tokens\n").unwrap();
    let e = fails(&["--trace", empty.to_str().unwrap()]);
    assert!(e.contains("empty.csv"), "{e}");

    let missing = tmp.path().join("missing.csv");
    std::fs::write(&missing, "arrived_at,num_prefill_tokens\n0.5,100\n").unwrap();
    let e = fails(&["--trace", missing.to_str().unwrap()]);
    assert!(
        e.contains("missing.csv") && e.contains("num_decode_tokens"),
        "{e}"
    );
}

#[test]
fn unknown_names_and_bad_config_files() {
    let e = fails(&["--scheduler", "fifo"]);
    assert!(e.contains("fifo") && e.contains("sarathi"), "{e}");
    let e = fails(&["--device", "tpu"]);
    assert!(e.contains("tpu") && e.contains("h100"), "{e}");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "[cluster]\nreplicas = 2\n").unwrap();
    let e = fails(&["--config", cfg.to_str().unwrap()]);
    assert!(e.contains("bad.toml") && e.contains("replicas"), "{e}");
}

#[test]
fn bad_kv_aware_router_weights() {
    // Negative and non-finite weights name the field and the flag.
    let e = fails(&["--router", "kv_aware", "--kv-overlap-weight", "-1"]);
    assert!(
        e.contains("cluster.kv_aware.overlap_weight") && e.contains("--kv-overlap-weight"),
        "{e}"
    );
    let e = fails(&["--router", "kv_aware", "--kv-load-weight", "inf"]);
    assert!(
        e.contains("cluster.kv_aware.load_weight") && e.contains("finite"),
        "{e}"
    );
    let e = fails(&[
        "--router",
        "kv_aware",
        "--kv-overlap-weight",
        "0",
        "--kv-load-weight",
        "0",
    ]);
    assert!(
        e.contains("both 0") && e.contains("--kv-load-weight"),
        "{e}"
    );
    // The same checks apply to a configuration file.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("weights.toml");
    std::fs::write(
        &cfg,
        "[cluster]\nrouter = \"kv_aware\"\n[cluster.kv_aware]\noverlap_weight = nan\n",
    )
    .unwrap();
    let e = fails(&["--config", cfg.to_str().unwrap()]);
    assert!(e.contains("cluster.kv_aware.overlap_weight"), "{e}");
    std::fs::write(&cfg, "[cluster.kv_aware]\nweight = 1\n").unwrap();
    let e = fails(&["--config", cfg.to_str().unwrap()]);
    assert!(e.contains("weights.toml") && e.contains("weight"), "{e}");
    // A weight flag with another router would do nothing: an error naming the fix.
    let e = fails(&["--router", "lor", "--kv-load-weight", "2"]);
    assert!(
        e.contains("--kv-load-weight") && e.contains("--router kv_aware"),
        "{e}"
    );
}
