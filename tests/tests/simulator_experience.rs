//! End-to-end: what a user sees. `simulator run --json` and `bench.json` are read by a script
//! written against `vllm bench serve`'s result keys; the overload verdict; `simulator compare`
//! and `simulator sweep`; help on a bare `simulator`.

use std::path::Path;
use std::process::{Command, Output};

use servesim_e2e::{run_simulator, simulator_ok};

fn simulator(args: &[&str]) -> Output {
    run_simulator(args)
}

fn ok(args: &[&str]) -> String {
    simulator_ok(args)
}

fn fails(args: &[&str]) -> String {
    let out = simulator(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "simulator {args:?} should fail");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// A script written against the result JSON of `vllm bench serve --save-result` (its keys and
/// units, as in vllm/benchmarks/serve.py): it prints vLLM's result block from the JSON and checks
/// the numbers against requests.csv the way vLLM computes them (numpy.mean/std/percentile over
/// per-request values). It knows nothing of servesim.
const VLLM_SCRIPT: &str = r#"
import csv, json, math, sys

result = json.load(open(sys.argv[1]))
requests_csv = sys.argv[2]

print("{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="="))
print("{:<40} {:<10}".format("Successful requests:", result["completed"]))
print("{:<40} {:<10}".format("Failed requests:", result["failed"]))
print("{:<40} {:<10.2f}".format("Benchmark duration (s):", result["duration"]))
print("{:<40} {:<10}".format("Total input tokens:", result["total_input_tokens"]))
print("{:<40} {:<10}".format("Total generated tokens:", result["total_output_tokens"]))
print("{:<40} {:<10.2f}".format("Request throughput (req/s):", result["request_throughput"]))
print("{:<40} {:<10.2f}".format("Request goodput (req/s):", result["request_goodput"]))
print("{:<40} {:<10.2f}".format("Output token throughput (tok/s):", result["output_throughput"]))
print("{:<40} {:<10.2f}".format("Total Token throughput (tok/s):", result["total_token_throughput"]))
for name, header in [("ttft", "Time to First Token"), ("tpot", "Time per Output Token (excl. 1st token)"),
                     ("itl", "Inter-token Latency"), ("e2el", "End-to-end Latency")]:
    print("{s:{c}^{n}}".format(s=header, n=50, c="-"))
    print("{:<40} {:<10.2f}".format(f"Mean {name.upper()} (ms):", result[f"mean_{name}_ms"]))
    print("{:<40} {:<10.2f}".format(f"Median {name.upper()} (ms):", result[f"median_{name}_ms"]))
    for p in ["50", "90", "99", "99.9"]:
        print("{:<40} {:<10.2f}".format(f"P{p} {name.upper()} (ms):", result[f"p{p}_{name}_ms"]))

def mean(v): return sum(v) / len(v)
def std(v):
    m = mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / len(v))
def percentile(v, p):  # numpy's default (linear)
    v = sorted(v)
    pos = (len(v) - 1) * p / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])

rows = list(csv.DictReader(open(requests_csv)))
ttfts = [float(r["ttft_s"]) for r in rows]
e2els = [float(r["e2e_s"]) for r in rows]
tpots = [float(r["tpot_s"]) for r in rows if r["tpot_s"]]
outs = [int(r["decode_tokens"]) for r in rows]
ins = [int(r["prefill_tokens"]) for r in rows]
assert result["completed"] == len(rows), (result["completed"], len(rows))
assert result["total_output_tokens"] == sum(outs)
assert result["total_input_tokens"] == sum(ins)
dur = result["duration"]
for key, want in [("request_throughput", len(rows) / dur), ("output_throughput", sum(outs) / dur),
                  ("total_token_throughput", (sum(ins) + sum(outs)) / dur)]:
    assert math.isclose(result[key], want, rel_tol=1e-9), (key, result[key], want)
good = sum(1 for t, o, e in zip(ttfts, rows, e2els)
           if t <= 0.5 and (not o["tpot_s"] or float(o["tpot_s"]) <= 0.05))
assert math.isclose(result["request_goodput"], good / dur, rel_tol=1e-9), (result["request_goodput"], good / dur)
for name, vals in [("ttft", ttfts), ("tpot", tpots), ("e2el", e2els)]:
    ms = [x * 1e3 for x in vals]
    assert math.isclose(result[f"mean_{name}_ms"], mean(ms), rel_tol=1e-6), name
    assert math.isclose(result[f"std_{name}_ms"], std(ms), rel_tol=1e-4), name
    for p in [50, 90, 99, 99.9]:
        key = "median" if p == 50 else None
        got = result[f"p{p:g}_{name}_ms"]
        assert abs(got - percentile(ms, p)) <= 1e-3 * percentile(ms, p) + 1e-6, (name, p, got, percentile(ms, p))
    assert math.isclose(result[f"median_{name}_ms"], result[f"p50_{name}_ms"], rel_tol=1e-12)
# ITL: the mean over every gap is the output-weighted mean of the per-request TPOTs.
gaps = sum(int(r["decode_tokens"]) - 1 for r in rows)
weighted = sum(float(r["tpot_s"]) * (int(r["decode_tokens"]) - 1) for r in rows if r["tpot_s"]) / gaps
assert math.isclose(result["mean_itl_ms"], weighted * 1e3, rel_tol=1e-6), (result["mean_itl_ms"], weighted * 1e3)
print("vLLM-keyed script: OK")
"#;

fn python3() -> Command {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "python3 is required (README: a machine with Rust and Python 3); it runs the vLLM-keyed script"
    );
    Command::new("python3")
}

#[test]
fn a_script_written_for_vllm_bench_reads_our_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let stdout = ok(&[
        "run",
        "--num-requests",
        "300",
        "--qps",
        "12",
        "--lengths",
        "uniform",
        "--min-tokens",
        "64",
        "--json",
        "--metric-percentiles",
        "50,90,99,99.9",
        "--goodput",
        "ttft:500",
        "tpot:50",
        "--no-trace",
        "--no-batches",
        "--no-report",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let bench = std::fs::read_to_string(dir.join("bench.json")).unwrap();
    assert_eq!(stdout, bench, "--json prints bench.json");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["request_rate"], 12.0);
    assert_eq!(v["burstiness"], 1.0);
    let script = tmp.path().join("vllm_keys.py");
    std::fs::write(&script, VLLM_SCRIPT).unwrap();
    let out = python3()
        .arg(&script)
        .arg(dir.join("bench.json"))
        .arg(dir.join("requests.csv"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the vLLM-keyed script failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Mean TTFT (ms):") && text.contains("vLLM-keyed script: OK"));
}

fn light_run(dir: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "run",
        "--no-trace",
        "--no-batches",
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend(extra);
    if !extra.contains(&"--num-requests") {
        args.extend(["--num-requests", "200"]);
    }
    ok(&args)
}

#[test]
fn the_summary_leads_with_the_workload_and_flags_overload() {
    let tmp = tempfile::tempdir().unwrap();
    let fine = light_run(&tmp.path().join("fine"), &["--qps", "2", "--no-report"]);
    let lines: Vec<&str> = fine.lines().collect();
    assert!(
        lines[0].contains("on 1 replica of 1 h100 GPU (TP1 × PP1)"),
        "{fine}"
    );
    assert!(
        lines[2].starts_with("workload: 200 requests over"),
        "{fine}"
    );
    assert!(lines[3].starts_with("load: ok"), "{fine}");
    assert!(fine.contains("cost: 1 GPU at"), "{fine}");
    let over = light_run(
        &tmp.path().join("over"),
        &["--qps", "60", "--num-requests", "600", "--no-report"],
    );
    assert!(over.contains("load: OVERLOADED"), "{over}");
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("over/summary.json")).unwrap())
            .unwrap();
    assert_eq!(s["load"]["status"], "overloaded");
    assert!(!s["load"]["reasons"].as_array().unwrap().is_empty());
    assert!(s["workload"]["offered_rate_per_s"].as_f64().unwrap() > 50.0);
}

#[test]
fn compare_puts_runs_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("sarathi"), tmp.path().join("vllm"));
    light_run(
        &a,
        &["--qps", "8", "--no-report", "-q", "--scheduler", "sarathi"],
    );
    light_run(
        &b,
        &["--qps", "8", "--no-report", "-q", "--scheduler", "vllm"],
    );
    let out = tmp.path().join("cmp");
    let (ap, bp, op) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let table = ok(&["compare", ap, bp, "--out", op]);
    assert!(table.contains("baseline sarathi"), "{table}");
    assert!(
        table.contains("TTFT p99 (ms)") && table.contains(" *"),
        "{table}"
    );
    assert!(table.contains("scheduler.name: sarathi | vllm"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["compare", ap, bp, "--json", "--out", op])).unwrap();
    assert_eq!(json["format"], "servesim-compare/1");
    assert_eq!(json["runs"][1]["label"], "vllm");
    assert!(json["runs"][0]["metrics"]["p99_ttft_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(json["differences"]["scheduler.name"][1], "vllm");
    let html = std::fs::read_to_string(out.join("compare.html")).unwrap();
    let svgs = std::fs::read_dir(out.join("plots"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "svg")
        })
        .count();
    assert_eq!(svgs, 8, "TTFT, TPOT, ITL, E2E, each linear and log");
    assert_eq!(html.matches("<svg").count(), svgs);
    assert!(!html.contains("<script"));
    // One directory is not a comparison; a directory without summary.json is named.
    let e = fails(&["compare", ap, "--out", op]);
    assert!(e.contains("2 values") || e.contains("RUN_DIR"), "{e}");
    let e = fails(&["compare", ap, tmp.path().to_str().unwrap(), "--out", op]);
    assert!(e.contains("no summary.json"), "{e}");
}

#[test]
fn sweep_runs_every_rate_and_reuses_the_run_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let text = ok(&[
        "sweep",
        "--qps",
        "2:6:3",
        "--num-requests",
        "120",
        "--scheduler",
        "vllm",
        "--threads",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(text.contains("sweep of 3 rates"), "{text}");
    assert!(text.contains("knee:"), "{text}");
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.lines().next().unwrap().contains("p99_ttft_ms"));
    for (i, q) in ["2", "4", "6"].iter().enumerate() {
        let cfg =
            std::fs::read_to_string(out.join(format!("runs/{:02}-qps{q}/config.toml", i + 1)))
                .unwrap();
        assert!(cfg.contains(&format!("qps = {q}.0")), "{cfg}");
        assert!(
            cfg.contains("name = \"vllm\""),
            "the run flags apply: {cfg}"
        );
        assert!(cfg.contains("batches = false") && cfg.contains("trace = false"));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json["points"].as_array().unwrap().len(), 3);
    assert!(json["points"][2]["bench"]["p90_ttft_ms"].as_f64().is_some());
    // errors name the flag and the fix
    let e = fails(&["sweep", "--qps", "1:5", "--out", out.to_str().unwrap()]);
    assert!(e.contains("A:B:N"), "{e}");
    let e = fails(&[
        "sweep",
        "--qps",
        "1,2",
        "--arrival",
        "static",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(e.contains("--qps"), "{e}");
}

#[test]
fn a_bare_simulator_prints_help_and_typos_get_suggestions() {
    let out = simulator(&[]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("Usage: simulator <COMMAND>") && text.contains("sweep"),
        "{text}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let o = tmp.path().join("x");
    let e = fails(&["run", "--model", "Llama-2-7b", "--out", o.to_str().unwrap()]);
    assert!(
        e.contains("did you mean `meta-llama/Llama-2-7b-hf`?"),
        "{e}"
    );
    let e = fails(&["run", "--device", "h10", "--out", o.to_str().unwrap()]);
    assert!(
        e.contains("did you mean `h100`?") && !e.contains("--catalog"),
        "{e}"
    );
}
