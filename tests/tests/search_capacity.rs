//! `simulator search` end to end: the capacity it reports is reproduced by an independent
//! `simulator run` of the configuration file it writes, and 10 % more load misses an SLO.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use servesim_e2e::binary;

/// A small space: 8 configurations of Llama-2-7b-hf, 250 requests each.
pub const SPACE: &str = r#"
seed = 11
[space]
models = ["meta-llama/Llama-2-7b-hf"]
tp = [1, 2]
[[space.devices]]
device = "a100"
[[space.devices]]
device = "h100"
[[space.schedulers]]
name = "vllm"
[[space.schedulers]]
name = "sarathi"
chunk_size = [512]
[workload]
num_requests = 250
[workload.arrival]
kind = "poisson"
qps = 1.0
[workload.lengths]
kind = "uniform"
min_tokens = 256
max_tokens = 2048
pd_ratio = 4.0
"#;

fn search(space: &str, out: &Path, extra: &[&str]) {
    let dir = out.parent().unwrap();
    let file = dir.join("space.toml");
    std::fs::write(&file, space).unwrap();
    let o = Command::new(binary("simulator"))
        .args(["search", "--quiet", "--space"])
        .arg(&file)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn run(config: &Path, out: &Path, qps: Option<f64>) -> Value {
    let mut c = Command::new(binary("simulator"));
    c.args(["run", "--quiet", "--no-batches", "--no-trace", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out);
    if let Some(q) = qps {
        c.arg("--qps").arg(q.to_string());
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

fn percentile(summary: &Value, metric: &str, pct: f64) -> f64 {
    let key = match pct as u32 {
        50 => "p50",
        90 => "p90",
        95 => "p95",
        99 => "p99",
        _ => "max",
    };
    summary["latency"][format!("{metric}_s")][key]
        .as_f64()
        .unwrap()
}

/// The SLOs `summary` misses, judged from summary.json alone.
fn misses(summary: &Value, slos: &[Value], time_limit_s: f64) -> Vec<String> {
    let mut v = Vec::new();
    let req = &summary["requests"];
    if req["completed"] != req["arrived"]
        || summary["simulated_time_s"].as_f64().unwrap() >= time_limit_s - 1e-6
    {
        v.push("time limit".to_string());
    }
    for s in slos {
        let metric = s["metric"].as_str().unwrap();
        let pct = s["percentile"].as_f64().unwrap();
        let x = percentile(summary, metric, pct);
        if x > s["max_s"].as_f64().unwrap() {
            v.push(format!("{metric} p{pct} = {x}"));
        }
    }
    v
}

/// An independent `simulator run` of row `r`'s configuration file meets every SLO at the
/// reported capacity, with the numbers the search reported, and misses one 10 % above it.
fn confirm(out: &Path, dir: &Path, r: &Value, slos: &[Value]) {
    let index = r["index"].as_u64().unwrap();
    let cap = r["capacity_qps"].as_f64().unwrap();
    let config = out.join(format!("configs/{index:04}.toml"));
    let limit = r["at_capacity"]["time_limit_s"].as_f64().unwrap();
    let at = run(&config, &dir.join(format!("at-{index}")), None);
    assert_eq!(
        misses(&at, slos, limit),
        Vec::<String>::new(),
        "{}: the run at the reported capacity {cap} misses",
        r["key"]
    );
    // The same numbers as the search reported.
    for (i, s) in slos.iter().enumerate() {
        let x = percentile(
            &at,
            s["metric"].as_str().unwrap(),
            s["percentile"].as_f64().unwrap(),
        );
        assert_eq!(x, r["slo_values_s"][i].as_f64().unwrap(), "{}", r["key"]);
    }
    assert_eq!(at["latency"], r["at_capacity"]["latency"]);
    if let Some(pools) = r["at_capacity"]["pools"].as_array() {
        assert_eq!(&at["pools"], &Value::Array(pools.clone()), "{}", r["key"]);
    }
    let above = run(
        &config,
        &dir.join(format!("above-{index}")),
        Some(cap * 1.1),
    );
    let m = misses(&above, slos, limit);
    assert!(
        !m.is_empty(),
        "{}: a run 10% above the capacity {cap} meets every SLO",
        r["key"]
    );
}

/// Four GPUs of Llama-3-8B on H100: 4 colocated replicas, or 1+3, 2+2 and 3+1 prefill and
/// decode replicas; long prompts and a tight TPOT limit.
const DISAGG_SPACE: &str = r#"
seed = 5
[space]
models = ["meta-llama/Meta-Llama-3-8B"]
gpu_budget = 4
[[space.devices]]
device = "h100"
[[space.schedulers]]
name = "vllm_v1"
[space.disaggregation]
transfer_modes = ["layerwise"]
[workload]
num_requests = 300
max_tokens = 6000
[workload.arrival]
kind = "poisson"
qps = 1.0
[workload.lengths]
kind = "uniform"
min_tokens = 3000
max_tokens = 6000
pd_ratio = 30.0
[[slo]]
metric = "ttft"
percentile = 90
max_s = 2.0
[[slo]]
metric = "tpot"
percentile = 90
max_s = 0.012
"#;

#[test]
fn independent_runs_confirm_disaggregated_capacities() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    search(DISAGG_SPACE, &out, &[]);
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let slos = results["header"]["slos"].as_array().unwrap().clone();
    let rows = results["configurations"].as_array().unwrap();
    let keys: Vec<&str> = rows.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "Meta-Llama-3-8B_h100_tp1_pp1_r4_vllm_v1",
            "Meta-Llama-3-8B_h100_tp1_pp1_p1d3_lw_vllm_v1",
            "Meta-Llama-3-8B_h100_tp1_pp1_p2d2_lw_vllm_v1",
            "Meta-Llama-3-8B_h100_tp1_pp1_p3d1_lw_vllm_v1",
        ]
    );
    for r in rows {
        assert_eq!(r["status"], "ok", "{}: {}", r["key"], r["reason"]);
        assert_eq!(r["gpus"], 4);
    }
    // Every disaggregated row: its run file has both pools and reproduces the capacity.
    for r in &rows[1..] {
        let i = r["index"].as_u64().unwrap();
        let toml = std::fs::read_to_string(out.join(format!("configs/{i:04}.toml"))).unwrap();
        assert_eq!(toml.matches("[[cluster.pool]]").count(), 2, "{toml}");
        assert_eq!(r["at_capacity"]["pools"].as_array().unwrap().len(), 2);
        confirm(&out, dir.path(), r, &slos);
    }
    // The pool columns of results.csv, and best.toml runs whatever deployment won.
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .contains(",prefill_replicas,decode_replicas,"));
    assert!(csv.lines().nth(3).unwrap().contains(",2,2,h100,"), "{csv}");
    let best: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("best.json")).unwrap()).unwrap();
    let bi = best["requests_per_usd"]["index"].as_u64().unwrap() as usize;
    let at = run(&out.join("best.toml"), &dir.path().join("best"), None);
    assert_eq!(at["latency"], rows[bi]["at_capacity"]["latency"]);
}

#[test]
fn independent_runs_confirm_three_capacities() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    search(SPACE, &out, &[]);
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let slos = results["header"]["slos"].as_array().unwrap().clone();
    let rows = results["configurations"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    let ok: Vec<&Value> = rows.iter().filter(|r| r["status"] == "ok").collect();
    assert!(ok.len() >= 3, "fewer than 3 configurations with a capacity");
    // Three different configurations: the first, middle and last with a capacity.
    for r in [ok[0], ok[ok.len() / 2], ok[ok.len() - 1]] {
        confirm(&out, dir.path(), r, &slos);
    }
    // best.toml is the best configuration by requests per USD and reproduces its numbers.
    let best: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("best.json")).unwrap()).unwrap();
    let bi = best["requests_per_usd"]["index"].as_u64().unwrap() as usize;
    let at = run(&out.join("best.toml"), &dir.path().join("best"), None);
    assert_eq!(at["latency"], rows[bi]["at_capacity"]["latency"]);
    let bv = best["requests_per_usd"]["value"].as_f64().unwrap();
    for r in rows.iter().filter(|r| r["status"] == "ok") {
        assert!(r["requests_per_usd"].as_f64().unwrap() <= bv);
    }
}

#[test]
fn invalid_configurations_are_rows_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let space = SPACE
        .replace(
            "[\"meta-llama/Llama-2-7b-hf\"]",
            "[\"meta-llama/Llama-2-70b-hf\"]",
        )
        .replace("tp = [1, 2]", "tp = [1, 3]");
    search(&space, &out, &[]);
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 9, "{csv}");
    assert!(
        lines[1].contains(",invalid,") && lines[1].contains("does not fit"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(",invalid,") && lines[2].contains("does not fit"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains(",invalid,") && lines[3].contains("heads"),
        "{}",
        lines[3]
    );
    // Invalid rows keep the deployment's price (catalog: 2.21 USD per a100-hour).
    assert!(
        lines[1].contains(",a100,,1,1,1,auto,auto,1,1,vllm,128,512,4096,2.21,2.21,invalid,"),
        "{}",
        lines[1]
    );
    assert!(!out.join("best.toml").exists());
    assert!(out.join("search.html").exists());
}
