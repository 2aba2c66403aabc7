//! End-to-end: `simulator run` with prefill and decode pools (docs/disaggregation.md).

use std::path::Path;
use std::process::{Command, Output};

use servesim_e2e::binary;

fn simulator(args: &[&str]) -> Output {
    Command::new(binary("simulator"))
        .args(args)
        .output()
        .expect(
            "run simulator (build the binaries first: cargo build --release --workspace --bins)",
        )
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/disagg/2p2d.toml")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_disaggregated_run_writes_the_transfer_columns_pools_and_spans() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = simulator(&[
        "run",
        "--config",
        &example(),
        "--num-requests",
        "30",
        "--no-report",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("prefill pool: 2 replicas"), "{stdout}");
    let requests = std::fs::read_to_string(dir.join("requests.csv")).unwrap();
    let header: Vec<&str> = requests.lines().next().unwrap().split(',').collect();
    assert_eq!(
        header[header.len() - 7..],
        [
            "decode_replica_id",
            "ttft_queue_s",
            "ttft_prefill_s",
            "kv_wait_s",
            "kv_transfer_s",
            "first_decode_s",
            "kv_transfer_bytes"
        ]
    );
    for line in requests.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        // replicas 0–1 prefill, 2–3 decode
        assert!(["0", "1"].contains(&cells[1]), "{line}");
        assert!(["2", "3"].contains(&cells[header.len() - 7]), "{line}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["requests"]["completed"], 30);
    assert_eq!(summary["pools"][0]["role"], "prefill");
    assert_eq!(summary["pools"][1]["first_replica_id"], 2);
    assert_eq!(summary["kv_transfer"]["transfers"], 30);
    assert_eq!(summary["cost"]["gpus"], 4);
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("trace.json")).unwrap()).unwrap();
    let spans = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["cat"] == "kv_transfer")
        .count();
    assert_eq!(spans, 30);
    // the configuration written back runs again to the same requests
    let again = tmp.path().join("again");
    let out = simulator(&[
        "run",
        "--config",
        dir.join("config.toml").to_str().unwrap(),
        "--no-report",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.join("requests.csv")).unwrap(),
        std::fs::read(again.join("requests.csv")).unwrap()
    );
}

#[test]
fn a_decode_pool_without_a_prefill_pool_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "[[cluster.pool]]\nrole = \"decode\"\nreplicas = 2\n").unwrap();
    let out = simulator(&["run", "--config", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cluster.pool") && stderr.contains("role = \"prefill\""),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
