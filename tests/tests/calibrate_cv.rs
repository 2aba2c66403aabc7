//! End-to-end: `simulator calibrate --cross-validate` on two families of the shipped measurements
//! writes the held-out table (one row per held-out stage) and the coefficients of each fold.

use servesim_e2e::{repo_root, simulator_ok};

#[test]
fn cross_validation_writes_held_out_rows_and_each_folds_coefficients() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cal.toml");
    let measurements = repo_root().join("data/calibration/vllm-0.15.1-measured.json");
    simulator_ok(&[
        "calibrate",
        "--measurements",
        measurements.to_str().unwrap(),
        "--device",
        "h100",
        "--experiments",
        "59-qwen3-14b,65-01-ai-yi-34b",
        "--fit",
        "frontend_ms,step_gpu_us",
        "--max-iters",
        "3",
        "--refine-iters",
        "0",
        "--fit-stage-s",
        "20",
        "--eval-stage-s",
        "20",
        "--cross-validate",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(out.with_extension("cv.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    // Each experiment has two stages, each predicted by the fold that held its family out.
    assert_eq!(rows.len(), 4, "{csv}");
    for (row, family) in rows.iter().zip(["qwen3", "qwen3", "yi", "yi"]) {
        assert_eq!(row.split(',').nth(1), Some(family), "{csv}");
    }
    let md = std::fs::read_to_string(out.with_extension("cv.md")).unwrap();
    let folds = md
        .split("## Coefficients of each fold")
        .nth(1)
        .unwrap_or_else(|| panic!("no fold table in\n{md}"));
    let table: Vec<&str> = folds.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(
        table[0], "| held out | `frontend_ms` (ms) | `step_gpu_us` (µs) |",
        "{md}"
    );
    assert_eq!(table.len(), 4, "{md}");
    assert!(table[2].starts_with("| qwen3 | ") && table[3].starts_with("| yi | "));
    // Each fold fitted only the other family, so the two folds differ.
    fn cells(row: &str) -> Vec<&str> {
        row.split('|').skip(2).map(str::trim).collect()
    }
    assert_ne!(cells(table[2]), cells(table[3]), "{md}");
}
