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
