//! End-to-end regression tests of issue 18: inputs that used to hang, fill the disk, panic, mix or
//! lose outputs, or pass unvalidated now finish promptly with a clear error or a note.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use servesim_e2e::binary;

const HEADER: &str = "arrived_at,num_prefill_tokens,num_decode_tokens";

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary("simulator"))
        .current_dir(dir)
        .arg("run")
        .args(args)
        .output()
        .expect("run simulator")
}

/// `simulator run -q ARGS` in `dir`, expecting exit status 1 (not a panic); returns stderr.
fn fails_in(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["-q"];
    all.extend_from_slice(args);
    let o = run_in(dir, &all);
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
    assert!(
        !e.contains("panicked") && !e.contains("internal error"),
        "{e}"
    );
    e
}

fn ok_in(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn summary_notes(dir: &Path) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    v["notes"]
        .as_array()
        .map(|a| a.iter().map(|n| n.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn time_and_output_size_are_bounded_by_the_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "epoch.csv",
        &format!("{HEADER}\n1700000000.0,100,10\n1700000001.0,120,12\n"),
    );
    write(d, "two.csv", &format!("{HEADER}\n0.0,100,10\n1.0,120,12\n"));
    write(
        d,
        "moon.jsonl",
        "{\"timestamp\": 0, \"input_length\": 100, \"output_length\": 10, \"hash_ids\": [0]}\n\
         {\"timestamp\": 1e308, \"input_length\": 100, \"output_length\": 10, \"hash_ids\": [1]}\n",
    );
    // Epoch seconds: shifted to 0, said in the summary and summary.json.
    let out = ok_in(
        d,
        &["--trace", "epoch.csv", "--no-report", "--out", "epoch"],
    );
    assert!(
        out.contains("note: the trace's arrival times were shifted"),
        "{out}"
    );
    assert_eq!(summary_notes(&d.join("epoch")).len(), 1);
    let ts = std::fs::read_to_string(d.join("epoch/timeseries.csv")).unwrap();
    assert!(ts.lines().count() <= 4, "{ts}");

    let e = fails_in(d, &["--qps", "1e-300", "--num-requests", "3", "--out", "o"]);
    assert!(
        e.contains("past the simulator's limit") && e.contains("--qps"),
        "{e}"
    );
    let e = fails_in(
        d,
        &["--trace", "two.csv", "--time-scale", "1e9", "--out", "o"],
    );
    assert!(
        e.contains("timeseries.csv would pass 10000000 rows")
            && e.contains("--timeseries-interval"),
        "{e}"
    );
    let e = fails_in(d, &["--trace", "moon.jsonl", "--out", "o"]);
    assert!(
        e.contains("moon.jsonl, line 2") && e.contains("limit of 1e9 s"),
        "{e}"
    );
    // a rate so low that nothing arrives: an error, not an empty run with exit 0; the rate is
    // written as given, not as 300 digits
    let e = fails_in(d, &["--rate-stages", "1e-300:10", "--out", "o"]);
    assert!(
        e.contains("no request arrived") && e.contains("1e-300 req/s for 10 s") && e.len() < 400,
        "{e}"
    );
    let e = fails_in(d, &["--timeseries-interval", "1e-9", "--out", "o"]);
    assert!(
        e.contains("--timeseries-interval") && e.contains("0.001"),
        "{e}"
    );
    // none of the failed runs left anything behind
    assert!(!d.join("o").exists() || names(&d.join("o")).is_empty());
}

#[test]
fn failed_runs_leave_the_directory_as_it_was_and_reruns_remove_stale_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let small = ["-q", "--num-requests", "20", "--out", "run"];
    ok_in(d, &small);
    let run = d.join("run");
    let before: Vec<(String, Vec<u8>)> = names(&run)
        .into_iter()
        .filter(|n| n != "plots")
        .map(|n| (n.clone(), std::fs::read(run.join(&n)).unwrap()))
        .collect();
    assert!(before.iter().any(|(n, _)| n == "trace.json"));
    write(d, "bad.toml", "[scheduler]\nchunk_size = 0\n");
    fails_in(d, &["--config", "bad.toml", "--out", "run"]);
    // a failure during the simulation itself (after the output files were opened)
    fails_in(d, &["--qps", "1e-300", "--out", "run"]);
    for (n, bytes) in &before {
        assert_eq!(&std::fs::read(run.join(n)).unwrap(), bytes, "{n} changed");
    }
    assert!(
        !names(&run).iter().any(|n| n.starts_with(".servesim")),
        "{:?}",
        names(&run)
    );
    // A leaner run into the same directory: the old trace, batches and report go, other files stay.
    write(&run, "my-notes.txt", "mine");
    ok_in(
        d,
        &[
            "-q",
            "--num-requests",
            "20",
            "--no-trace",
            "--no-batches",
            "--no-report",
            "--out",
            "run",
        ],
    );
    assert_eq!(
        names(&run),
        [
            "bench.json",
            "config.toml",
            "itl_histogram.csv",
            "my-notes.txt",
            "requests.csv",
            "summary.json",
            "timeseries.csv"
        ]
    );
}

#[test]
fn an_output_path_equal_to_an_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("run")).unwrap();
    let trace = format!("{HEADER}\n0.0,100,10\n");
    write(&d.join("run"), "requests.csv", &trace);
    write(&d.join("run"), "config.toml", "seed = 1\n");
    let e = fails_in(d, &["--trace", "run/requests.csv", "--out", "run"]);
    assert!(
        e.contains("--trace run/requests.csv") && e.contains("--out run"),
        "{e}"
    );
    let e = fails_in(d, &["--config", "run/config.toml", "--out", "run"]);
    assert!(e.contains("--config run/config.toml"), "{e}");
    assert_eq!(
        std::fs::read_to_string(d.join("run/requests.csv")).unwrap(),
        trace
    );
    assert_eq!(
        std::fs::read_to_string(d.join("run/config.toml")).unwrap(),
        "seed = 1\n"
    );
}

#[test]
fn every_value_is_validated_with_its_flag_or_key() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for v in ["-1", "0", "NaN", "inf"] {
        let e = fails_in(d, &["--slo-ttft", v, "--out", "o"]);
        assert!(e.contains("slo.ttft_s") && e.contains("--slo-ttft"), "{e}");
    }
    for (toml, key) in [
        ("[slo]\ne2e_s = -1.0\n", "slo.e2e_s"),
        (
            "[predictor.params]\ncpu_overhead_ms_per_batch = -1.0\n",
            "predictor.params.cpu_overhead_ms_per_batch",
        ),
        (
            "[predictor.params]\nnccl_cpu_launch_overhead_ms = nan\n",
            "predictor.params.nccl_cpu_launch_overhead_ms",
        ),
        (
            "[predictor.roofline]\ngemm_compute = 0.0\n",
            "predictor.roofline.gemm_compute",
        ),
        (
            "[predictor.roofline]\nlink = 1.5\n",
            "predictor.roofline.link",
        ),
        (
            "[predictor.roofline]\nkernel_overhead_s = -1e-6\n",
            "predictor.roofline.kernel_overhead_s",
        ),
    ] {
        write(d, "c.toml", toml);
        let e = fails_in(d, &["--config", "c.toml", "--out", "o"]);
        assert!(e.contains(key), "{toml}: {e}");
    }
    let e = fails_in(
        d,
        &[
            "--device",
            "h100",
            "--node",
            "a100_pairwise_nvlink",
            "--out",
            "o",
        ],
    );
    assert!(
        e.contains("a100_pairwise_nvlink holds a100 GPUs") && e.contains("--node h100_dgx"),
        "{e}"
    );
    for n in ["18446744073709551615", "1"] {
        let e = fails_in(d, &["--num-blocks", n, "--out", "o"]);
        assert!(
            e.contains(&format!("--num-blocks {n}")) && e.contains("give a count in [256, "),
            "{e}"
        );
        assert!(!e.contains("--tp"), "{e}");
    }
    let e = fails_in(d, &["--profiles", "no-such-dir", "--out", "o"]);
    assert!(
        e.contains("predictor.profiles") && e.contains("no-such-dir is not a directory"),
        "{e}"
    );
}

#[test]
fn negative_flag_values_name_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    for flag in [
        "--time-limit",
        "--memory-margin",
        "--num-replicas",
        "--tp",
        "--chunk-size",
        "--timeseries-interval",
        "--seed",
        "--num-blocks",
        "--qps",
    ] {
        let o = run_in(tmp.path(), &["-q", flag, "-1", "--out", "o"]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{flag}");
        assert!(!e.contains("unexpected argument"), "{flag}: {e}");
        let key = flag.trim_start_matches("--");
        assert!(e.contains(flag) || e.contains(key), "{flag}: {e}");
    }
}

#[test]
fn partial_results_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "two.csv", &format!("{HEADER}\n0.0,100,10\n1.0,120,12\n"));
    let out = ok_in(
        d,
        &[
            "--trace",
            "two.csv",
            "--num-requests",
            "100",
            "--no-report",
            "--out",
            "short",
        ],
    );
    assert!(
        out.contains("note: 2 requests arrived, fewer than the 100 asked for"),
        "{out}"
    );
    assert_eq!(summary_notes(&d.join("short")).len(), 1);
    let out = ok_in(
        d,
        &[
            "--num-requests",
            "200",
            "--time-limit",
            "2",
            "--no-report",
            "--out",
            "cut",
        ],
    );
    assert!(
        out.contains("note: the run stopped at the time limit of 2 s"),
        "{out}"
    );
    assert!(summary_notes(&d.join("cut"))[0].contains("--time-limit"));
    // an existing profile directory without this model: the engine model answers, and says why
    std::fs::create_dir_all(d.join("profiles/compute")).unwrap();
    let out = ok_in(
        d,
        &[
            "--num-requests",
            "5",
            "--profiles",
            "profiles",
            "--no-report",
            "--out",
            "roof",
        ],
    );
    assert!(
        out.contains("note: no profile of") && out.contains("the engine backend answered"),
        "{out}"
    );
    // a complete run has no notes
    ok_in(
        d,
        &["-q", "--num-requests", "5", "--no-report", "--out", "plain"],
    );
    assert!(summary_notes(&d.join("plain")).is_empty());
}

#[test]
fn error_chains_do_not_repeat() {
    let tmp = tempfile::tempdir().unwrap();
    let e = fails_in(tmp.path(), &["--trace", "missing.csv", "--out", "o"]);
    assert_eq!(e.matches("os error 2").count(), 1, "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn predictor_fit_without_a_compute_profile_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let prof = tmp.path().join("prof");
    std::fs::create_dir_all(prof.join("compute/h100/meta-llama/Llama-2-7b-hf")).unwrap();
    // with the node's network profiles (data/vidur), the fit used to fit them alone
    let net = prof.join("network/h100_dgx");
    std::fs::create_dir_all(&net).unwrap();
    for f in ["all_reduce.csv.gz", "send_recv.csv.gz"] {
        std::fs::copy(
            servesim_e2e::vidur_data()
                .join("profiling/network/h100_dgx")
                .join(f),
            net.join(f),
        )
        .unwrap();
    }
    let o = Command::new(binary("predictor"))
        .args([
            "fit",
            "--device",
            "h100",
            "--model",
            "meta-llama/Llama-2-7b-hf",
            "--no-accuracy",
        ])
        .arg("--profiles")
        .arg(&prof)
        .arg("--out")
        .arg(tmp.path().join("fit"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("meta-llama/Llama-2-7b-hf on h100") && e.contains("mlp.csv"),
        "{e}"
    );
    assert!(e.contains("no compute profile of"), "{e}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("fitted"));
}

/// `simulator ARGS` in `dir`: (exit code, stderr).
fn command_in(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(binary("simulator"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run simulator");
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!e.contains("panicked"), "{args:?}: {e}");
    (o.status.code(), e)
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for n in names(dir) {
        let p = dir.join(&n);
        if p.is_dir() {
            for (m, bytes) in snapshot(&p) {
                files.push((format!("{n}/{m}"), bytes));
            }
        } else {
            files.push((n, std::fs::read(p).unwrap()));
        }
    }
    files
}

#[test]
fn sweep_and_compare_outputs_are_staged_and_kept_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let light = ["-q", "--num-requests", "30", "--no-trace", "--no-batches"];
    for (dir, sched) in [("a", "sarathi"), ("b", "vllm")] {
        let mut args = vec!["run", "--no-report", "--scheduler", sched, "--out", dir];
        args.extend(light);
        assert_eq!(command_in(d, &args).0, Some(0));
    }
    let a = snapshot(&d.join("a"));
    // a comparison written into one of the runs it compares would replace the run's plots/
    let (code, e) = command_in(d, &["compare", "a", "b", "-q", "--out", "a"]);
    assert_eq!(code, Some(1), "{e}");
    assert!(
        e.contains("simulator run") && e.contains("summary.json"),
        "{e}"
    );
    assert_eq!(snapshot(&d.join("a")), a);
    assert_eq!(
        command_in(d, &["compare", "a", "b", "-q", "--out", "c"]).0,
        Some(0)
    );
    assert!(d.join("c/compare.html").is_file());
    // ... and a run into a comparison's directory would replace its plots/
    let (code, e) = command_in(d, &["run", "-q", "--out", "c"]);
    assert_eq!(code, Some(1), "{e}");
    assert!(e.contains("simulator compare"), "{e}");

    let mut sweep = vec!["sweep", "--qps", "2,4", "--out", "s"];
    sweep.extend(light);
    assert_eq!(command_in(d, &sweep).0, Some(0));
    let s = snapshot(&d.join("s"));
    assert!(s.iter().any(|(n, _)| n == "runs/02-qps4/summary.json"));
    // a sweep that fails at its second rate leaves the earlier sweep whole
    sweep[2] = "2,1e-300";
    let (code, e) = command_in(d, &sweep);
    assert_eq!(code, Some(1), "{e}");
    assert!(e.contains("--qps 1e-300"), "{e}");
    assert_eq!(snapshot(&d.join("s")), s);
    // a sweep over an earlier one leaves no stale rate
    sweep[2] = "3";
    assert_eq!(command_in(d, &sweep).0, Some(0));
    assert_eq!(names(&d.join("s/runs")), ["01-qps3"]);
    // its inputs are not among its outputs; a run's directory is not a sweep's
    let mut own_config = sweep.clone();
    own_config.extend(["--config", "s/runs/01-qps3/config.toml"]);
    let (code, e) = command_in(d, &own_config);
    assert_eq!(code, Some(1), "{e}");
    assert!(e.contains("--config") && e.contains("sweep"), "{e}");
    sweep[4] = "a";
    let (code, e) = command_in(d, &sweep);
    assert_eq!(code, Some(1), "{e}");
    assert!(e.contains("simulator run"), "{e}");
    assert_eq!(snapshot(&d.join("a")), a);
}

#[test]
fn engine_model_inputs_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // staged rates parse (they used to panic in the argument parser) and are range-checked
    ok_in(
        d,
        &[
            "-q",
            "--rate-stages",
            "8:5,20:5",
            "--no-report",
            "--out",
            "staged",
        ],
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("staged/summary.json")).unwrap())
            .unwrap();
    assert_eq!(s["stages"].as_array().unwrap().len(), 2, "{s}");
    let e = fails_in(d, &["--rate-stages", "-1:10", "--out", "o"]);
    assert!(e.contains("workload.arrival.stages[].qps"), "{e}");
    let e = fails_in(d, &["--rate-stages", "8:nan", "--out", "o"]);
    assert!(e.contains("stages[].duration_s"), "{e}");
    // a vllm_v1 feature asked of another scheduler
    let e = fails_in(
        d,
        &["--async-scheduling", "--scheduler", "sarathi", "--out", "o"],
    );
    assert!(e.contains("scheduler.vllm_v1.async_scheduling"), "{e}");
    // [predictor.coefficients]: a partial table and a value out of range name the key
    write(
        d,
        "partial.toml",
        "[predictor.coefficients]\nfrontend_ms = 5\n",
    );
    let e = fails_in(d, &["--config", "partial.toml", "--out", "o"]);
    assert!(
        e.contains("leaves out") && e.contains("gemm_bandwidth"),
        "{e}"
    );
    assert!(!d.join("o").exists(), "nothing written");

    // simulator calibrate: numbers and outputs are checked before any work
    let calibrate = |args: &[&str]| {
        let o = Command::new(binary("simulator"))
            .current_dir(d)
            .arg("calibrate")
            .args(args)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        e
    };
    write(d, "cal.md", "measurements, named like a table");
    let e = calibrate(&["--measurements", "cal.md", "--out", "cal.toml"]);
    assert!(e.contains("--measurements cal.md"), "{e}");
    for (flag, value) in [
        ("--fit-stage-s", "-1"),
        ("--eval-stage-s", "nan"),
        ("--max-iters", "0"),
    ] {
        let e = calibrate(&["--measurements", "m.json", flag, value, "--out", "c.toml"]);
        assert!(e.contains(flag), "{e}");
    }
    let e = calibrate(&["--measurements", "m.json", "--out", "c.csv"]);
    assert!(e.contains(".toml"), "{e}");
    assert_eq!(
        std::fs::read_to_string(d.join("cal.md")).unwrap(),
        "measurements, named like a table"
    );
}
