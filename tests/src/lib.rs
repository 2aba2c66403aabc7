//! Helpers for servesim's end-to-end tests (the tests live in `tests/tests/`).

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `data/vidur`: Vidur's published data, committed (`data/vidur/PROVENANCE.md`).
pub fn vidur_data() -> PathBuf {
    let p = repo_root().join("data/vidur");
    assert!(p.is_dir(), "{} is missing", p.display());
    p
}

/// Path of a workspace binary built by cargo for these tests (`target/<profile>/<name>`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test-binary> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target profile dir");
    dir.join(name)
}

/// Runs the built `simulator` binary with `args` (panics, naming the fix, when it is not built).
pub fn run_simulator(args: &[&str]) -> std::process::Output {
    let bin = binary("simulator");
    assert!(
        bin.exists(),
        "{} is missing: build the binaries first (cargo build --release --workspace --bins)",
        bin.display()
    );
    std::process::Command::new(bin)
        .args(args)
        .output()
        .expect("run simulator")
}

/// [`run_simulator`], expecting success; returns stdout.
pub fn simulator_ok(args: &[&str]) -> String {
    let out = run_simulator(args);
    assert!(
        out.status.success(),
        "simulator {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
