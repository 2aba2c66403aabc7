//! End-to-end: `simulator run` writes every documented file, reproducibly.

use std::path::Path;
use std::process::{Command, Output};

use servesim_e2e::binary;

fn simulator(args: &[&str]) -> Output {
    let bin = binary("simulator");
    assert!(
        bin.exists(),
        "{} is missing: build the binaries first (cargo build --release --workspace --bins)",
        bin.display()
    );
    Command::new(bin)
        .args(args)
        .output()
        .expect("run simulator")
}

fn ok(args: &[&str]) -> String {
    let out = simulator(args);
    assert!(
        out.status.success(),
        "simulator {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn a_run_writes_every_file_and_names_the_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let stdout = ok(&[
        "run",
        "--num-requests",
        "40",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(stdout.contains("execution backend: engine"), "{stdout}");
    assert!(stdout.contains("calibration vllm-0.15.1/h100"), "{stdout}");
    assert!(stdout.contains(dir.to_str().unwrap()), "{stdout}");

    let requests = String::from_utf8(read(&dir, "requests.csv")).unwrap();
    let mut lines = requests.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("request_id,replica_id,arrived_at_s"),
        "{header}"
    );
    assert_eq!(lines.count(), 40);

    let summary: serde_json::Value = serde_json::from_slice(&read(&dir, "summary.json")).unwrap();
    assert_eq!(summary["requests"]["completed"], 40);
    assert_eq!(summary["backend"]["kind"], "engine");
    let ttft = &summary["latency"]["ttft_s"];
    assert!(ttft["p50"].as_f64().unwrap() > 0.0);
    assert!(ttft["p99"].as_f64().unwrap() <= ttft["max"].as_f64().unwrap());

    let trace: serde_json::Value = serde_json::from_slice(&read(&dir, "trace.json")).unwrap();
    let spans = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X")
        .count();
    let batches = String::from_utf8(read(&dir, "batches.csv")).unwrap();
    assert_eq!(spans, batches.lines().count() - 1, "one span per batch row");
    assert!(batches
        .lines()
        .next()
        .unwrap()
        .ends_with("send_recv_ms,lm_head_ms,launch_overhead_ms,cpu_overhead_ms"));

    let ts = String::from_utf8(read(&dir, "timeseries.csv")).unwrap();
    assert!(ts.lines().count() > 2);
    let config = String::from_utf8(read(&dir, "config.toml")).unwrap();
    assert!(config.contains("node = \"h100_dgx\""), "{config}");
}

/// Runs `args --out a` and `args --out b`, then `run -q --config a/config.toml --out c` (with
/// `rerun` added), and checks that every file of `files` is byte-identical in the three; returns
/// the configuration `a/config.toml`.
fn reproducible(
    args: &[&str],
    rerun: &[&str],
    (a, b, c): (&Path, &Path, &Path),
    files: &[&str],
) -> std::path::PathBuf {
    for dir in [a, b] {
        let mut all = args.to_vec();
        all.extend(["--out", dir.to_str().unwrap()]);
        ok(&all);
    }
    let cfg = a.join("config.toml");
    let mut again = vec!["run", "-q"];
    again.extend(rerun);
    again.extend([
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        c.to_str().unwrap(),
    ]);
    ok(&again);
    for name in files {
        assert!(
            read(a, name) == read(b, name),
            "{name} differs between runs ({args:?})"
        );
        assert!(
            read(a, name) == read(c, name),
            "{name} differs when rerun from config.toml ({args:?})"
        );
    }
    cfg
}

#[test]
fn same_seed_same_bytes_and_config_reproduces_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let c = tmp.path().join("c");
    let common = [
        "run",
        "-q",
        "--num-requests",
        "120",
        "--qps",
        "20",
        "--num-replicas",
        "2",
        "--router",
        "random",
        "--scheduler",
        "vllm",
    ];
    let cfg = reproducible(
        &common,
        &[],
        (&a, &b, &c),
        &[
            "requests.csv",
            "summary.json",
            "batches.csv",
            "timeseries.csv",
            "trace.json",
            "config.toml",
        ],
    );
    // a flag overrides the file
    let d = tmp.path().join("d");
    ok(&[
        "run",
        "-q",
        "--config",
        cfg.to_str().unwrap(),
        "--seed",
        "7",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert!(read(&a, "requests.csv") != read(&d, "requests.csv"));
    let text = String::from_utf8(read(&d, "config.toml")).unwrap();
    assert!(text.starts_with("seed = 7"), "{text}");
}

#[test]
fn every_scheduler_runs_and_skipping_files_works() {
    let tmp = tempfile::tempdir().unwrap();
    for s in ["vllm", "orca", "faster_transformer", "sarathi", "lightllm"] {
        let dir = tmp.path().join(s);
        ok(&[
            "run",
            "-q",
            "--scheduler",
            s,
            "--model",
            "Llama-2-7b-hf",
            "--device",
            "a100",
            "--num-requests",
            "30",
            "--no-batches",
            "--no-trace",
            "--out",
            dir.to_str().unwrap(),
        ]);
        let summary: serde_json::Value =
            serde_json::from_slice(&read(&dir, "summary.json")).unwrap();
        assert_eq!(summary["requests"]["completed"], 30, "{s}");
        assert!(!dir.join("batches.csv").exists() && !dir.join("trace.json").exists());
    }
}

#[test]
fn a_time_limit_stops_the_run_and_lists_unfinished_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    ok(&[
        "run",
        "-q",
        "--num-requests",
        "200",
        "--qps",
        "10",
        "--time-limit",
        "5",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&read(&dir, "summary.json")).unwrap();
    let arrived = summary["requests"]["arrived"].as_u64().unwrap();
    let completed = summary["requests"]["completed"].as_u64().unwrap();
    assert!(
        arrived < 200 && completed < arrived,
        "{arrived} {completed}"
    );
    assert_eq!(summary["simulated_time_s"].as_f64().unwrap(), 5.0);
    let requests = String::from_utf8(read(&dir, "requests.csv")).unwrap();
    let rows: Vec<&str> = requests.lines().skip(1).collect();
    assert_eq!(rows.len() as u64, arrived);
    // completed_at_s is the sixth column; unfinished requests leave it empty
    let unfinished = rows
        .iter()
        .filter(|l| l.split(',').nth(5) == Some(""))
        .count() as u64;
    assert_eq!(unfinished, arrived - completed);
}

#[test]
fn run_without_options_runs_the_default_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(binary("simulator"))
        .arg("run")
        .current_dir(tmp.path())
        .output()
        .expect("run simulator");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "meta-llama/Meta-Llama-3-8B on 1 replica of 1 h100 GPU (TP1 × PP1): vllm_v1 scheduler"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("execution backend: engine"), "{stdout}");
    assert!(stdout.contains("calibration vllm-0.15.1/h100"), "{stdout}");
    assert!(
        stdout.contains("requests: 1000 arrived, 1000 completed"),
        "{stdout}"
    );
    let runs: Vec<_> = std::fs::read_dir(tmp.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].join("summary.json").is_file());
    let name = runs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stdout.contains(&format!("outputs: runs/{name}")),
        "{stdout}"
    );
    assert!(stdout.contains("load: ok"), "{stdout}");
}

#[test]
fn rate_stages_from_the_command_line_report_each_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    ok(&[
        "run",
        "-q",
        "--rate-stages",
        "2:20,6:20",
        "--no-report",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&read(&dir, "summary.json")).unwrap();
    let stages = summary["stages"].as_array().expect("summary.stages");
    assert_eq!(stages.len(), 2, "{stages:?}");
    let arrived = summary["requests"]["arrived"].as_u64().unwrap();
    // 2 req/s for 20 s then 6 req/s for 20 s: about 160 arrivals.
    assert!((100..230).contains(&arrived), "{arrived}");
}

#[test]
fn new_routers_are_reproducible_and_config_toml_keeps_the_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let common = [
        "run",
        "-q",
        "--no-report",
        "--num-requests",
        "150",
        "--qps",
        "40",
        "--num-replicas",
        "3",
        "--prefix-groups",
        "6",
        "--prefix-tokens",
        "256",
        "--prefill-tokens",
        "64",
        "--decode-tokens",
        "16",
    ];
    for (name, extra) in [
        (
            "kv",
            &[
                "--router",
                "kv_aware",
                "--kv-overlap-weight",
                "8",
                "--kv-load-weight",
                "0.5",
            ][..],
        ),
        ("p2c", &["--router", "power_of_two"][..]),
        ("kv_usage", &["--router", "least_kv"][..]),
    ] {
        let (a, b, c) = (
            tmp.path().join(format!("{name}_a")),
            tmp.path().join(format!("{name}_b")),
            tmp.path().join(format!("{name}_c")),
        );
        let mut args = common.to_vec();
        args.extend(extra);
        reproducible(
            &args,
            &["--no-report"],
            (&a, &b, &c),
            &["requests.csv", "summary.json"],
        );
        let toml = String::from_utf8(read(&a, "config.toml")).unwrap();
        assert_eq!(
            toml.contains("[cluster.kv_aware]"),
            name == "kv",
            "{name}: {toml}"
        );
    }
}

#[test]
fn threads_write_the_same_files_as_one_thread() {
    // A run split over threads (--threads) writes every file byte for byte as one thread does:
    // the calibrated engine model with vllm_v1's defaults (asynchronous scheduling, prefix
    // caching) over shared multi-turn prompts behind lor, power_of_two with two pipeline stages,
    // and sarathi on the roofline behind round_robin. A run that cannot be split (batches.csv
    // written) says so and runs on one thread, with the same files.
    let tmp = tempfile::tempdir().unwrap();
    let common = [
        "--num-requests",
        "400",
        "--qps",
        "30",
        "--num-replicas",
        "5",
        "--prefix-groups",
        "4",
        "--prefix-tokens",
        "256",
        "--min-turns",
        "2",
        "--max-turns",
        "3",
        "--timeseries-interval",
        "0.5",
    ];
    let cases: [&[&str]; 4] = [
        &["--router", "lor", "--no-batches", "--no-trace"],
        &[
            "--router",
            "power_of_two",
            "--pp",
            "2",
            "--no-batches",
            "--no-trace",
        ],
        &[
            "--router",
            "round_robin",
            "--scheduler",
            "sarathi",
            "--backend",
            "roofline",
            "--no-batches",
            "--no-trace",
        ],
        &["--router", "lor"],
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut dirs = Vec::new();
        for threads in ["1", "2"] {
            let dir = tmp.path().join(format!("case{i}-{threads}"));
            let mut args = vec![
                "run",
                "--no-report",
                "--threads",
                threads,
                "--out",
                dir.to_str().unwrap(),
            ];
            args.extend_from_slice(&common);
            args.extend_from_slice(case);
            let out = simulator(&args);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            let one_thread = stderr.contains("ran on one thread, not 2: batches.csv");
            assert_eq!(
                one_thread,
                threads == "2" && i == 3,
                "case {case:?}: {stderr}"
            );
            dirs.push(dir);
        }
        for f in [
            "requests.csv",
            "timeseries.csv",
            "summary.json",
            "bench.json",
            "itl_histogram.csv",
            "config.toml",
        ] {
            assert!(
                read(&dirs[0], f) == read(&dirs[1], f),
                "case {case:?}: {f} differs with --threads 2"
            );
        }
    }
    // a thread count of 0 is refused by name
    let out = simulator(&["run", "--threads", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
}

#[test]
fn step_by_step_writes_the_same_files_as_decode_runs() {
    // The engine model with asynchronous scheduling and prefix caching (vllm_v1's defaults),
    // multi-turn sessions over shared prompts behind lor, the other policies that form decode
    // runs, and two pipeline stages (micro-batches running while another is in flight, with the
    // engine model and with the roofline): every file is byte-identical with --step-by-step.
    let tmp = tempfile::tempdir().unwrap();
    let common = [
        "--num-requests",
        "300",
        "--qps",
        "12",
        "--lengths",
        "zipf",
        "--min-tokens",
        "64",
        "--length-max-tokens",
        "1024",
        "--pd-ratio",
        "3",
        "--max-tokens",
        "4096",
    ];
    let cases: [&[&str]; 7] = [
        &[],
        &[
            "--num-replicas",
            "3",
            "--router",
            "lor",
            "--prefix-groups",
            "4",
            "--prefix-tokens",
            "256",
            "--min-turns",
            "2",
            "--max-turns",
            "4",
        ],
        &["--scheduler", "sarathi", "--backend", "roofline"],
        &["--scheduler", "vllm", "--backend", "roofline"],
        &["--scheduler", "orca", "--backend", "roofline"],
        &["--pp", "2"],
        &[
            "--pp",
            "2",
            "--scheduler",
            "sarathi",
            "--backend",
            "roofline",
        ],
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut dirs = Vec::new();
        for step in [false, true] {
            let dir = tmp.path().join(format!("case{i}-{step}"));
            let mut args = vec![
                "run",
                "--quiet",
                "--no-report",
                "--out",
                dir.to_str().unwrap(),
            ];
            args.extend_from_slice(&common);
            args.extend_from_slice(case);
            if step {
                args.push("--step-by-step");
            }
            ok(&args);
            dirs.push(dir);
        }
        for f in [
            "requests.csv",
            "batches.csv",
            "timeseries.csv",
            "trace.json",
            "summary.json",
            "bench.json",
            "itl_histogram.csv",
        ] {
            assert!(
                read(&dirs[0], f) == read(&dirs[1], f),
                "case {case:?}: {f} differs with --step-by-step"
            );
        }
    }
}
