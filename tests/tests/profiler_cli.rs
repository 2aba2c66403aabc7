//! End-to-end tests of the `profiler` binary on a machine without a GPU: the plan and its budget,
//! and the clear error (not a panic) of every GPU command.

use std::process::Command;

use servesim_e2e::binary;

fn profiler(args: &[&str]) -> std::process::Output {
    Command::new(binary("profiler"))
        .args(args)
        .env_remove("PROFILER_LIBS_READY")
        .output()
        .expect("run profiler")
}

/// True when this machine might have an NVIDIA driver (then the no-GPU tests do not apply).
fn driver_present() -> bool {
    [
        "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
        "/usr/lib64/libcuda.so.1",
        "/usr/local/nvidia/lib64/libcuda.so.1",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
}

fn gpu_seconds(stdout: &str) -> (f64, f64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Total:"))
        .expect("a Total: line");
    let num_after = |key: &str| -> f64 {
        let i = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
        line[i..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        num_after("estimated GPU time"),
        num_after("with host overhead"),
    )
}

#[test]
fn plan_for_llama3_8b_and_70b_over_tp_1_2_4_8_is_under_five_minutes() {
    for model in ["Meta-Llama-3-8B", "Meta-Llama-3-70B"] {
        let out = profiler(&["plan", "--model", model, "--tp", "1,2,4,8"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        for tp in ["  1 ", "  2 ", "  4 ", "  8 "] {
            assert!(
                text.lines().any(|l| l.starts_with(tp)),
                "no row for tp {tp}:\n{text}"
            );
        }
        assert!(text.contains("116"), "116 token counts per TP:\n{text}");
        let (gpu, total) = gpu_seconds(&text);
        assert!(
            gpu > 1.0 && gpu <= total && total < 300.0,
            "{model}: {gpu} s / {total} s\n{text}"
        );
    }
}

#[test]
fn quick_plan_is_much_smaller() {
    let full = profiler(&["plan", "--model", "Meta-Llama-3-8B"]);
    let quick = profiler(&["plan", "--model", "Meta-Llama-3-8B", "--quick"]);
    let (_, f) = gpu_seconds(&String::from_utf8_lossy(&full.stdout));
    let (_, q) = gpu_seconds(&String::from_utf8_lossy(&quick.stdout));
    assert!(q < f / 4.0, "quick {q} s vs full {f} s");
}

#[test]
fn gpu_commands_without_a_gpu_exit_with_one_clear_sentence() {
    if driver_present() {
        eprintln!("skipped: this machine has an NVIDIA driver");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let o = out_dir.to_str().unwrap();
    for args in [
        vec!["all", "--model", "Meta-Llama-3-8B", "--out", o],
        vec!["mlp", "--model", "Meta-Llama-3-8B", "--quick", "--out", o],
        vec!["collectives", "--model", "Meta-Llama-3-8B", "--out", o],
        vec!["check"],
    ] {
        let out = profiler(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line expected:\n{err}");
        assert!(
            lines[0].starts_with("profiler: no NVIDIA driver: libcuda.so.1 was not found"),
            "{err}"
        );
        assert!(lines[0].contains("--cuda-lib-dir"), "{err}");
        assert!(!out_dir.exists(), "nothing is written without a GPU");
    }
}

#[test]
fn bad_model_or_tp_is_a_clear_error_before_any_gpu_work() {
    let out = profiler(&["plan", "--model", "no-such-model"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown model `no-such-model`"), "{err}");
    let out = profiler(&[
        "all",
        "--model",
        "Meta-Llama-3-8B",
        "--tp",
        "3",
        "--out",
        "/nonexistent/x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not divide"), "{err}");
}

#[test]
fn plan_of_an_moe_model_lists_its_moe_operators_and_a_dense_plan_does_not() {
    let out = profiler(&[
        "plan",
        "--model",
        "mistralai/Mixtral-8x7B-v0.1",
        "--tp",
        "2",
        "--quick",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("MoE / MLA operators"), "{s}");
    for op in ["moe_gate", "moe_experts", "all_to_all"] {
        assert!(
            s.lines().any(|l| l.trim_start().starts_with(op)),
            "{op} missing:\n{s}"
        );
    }
    assert!(s.contains("do not time them yet"), "{s}");
    let dense = profiler(&["plan", "--model", "Meta-Llama-3-8B", "--quick"]);
    assert!(dense.status.success());
    assert!(!String::from_utf8_lossy(&dense.stdout).contains("moe_experts"));
}
