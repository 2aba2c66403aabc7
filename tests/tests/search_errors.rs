//! `simulator search` rejects bad space files and flags with a clear error and a non-zero exit.

use std::process::Command;

use servesim_e2e::{binary, repo_root};

const GOOD: &str = r#"
[space]
models = ["meta-llama/Llama-2-7b-hf"]
[[space.devices]]
device = "a100"
[[space.schedulers]]
name = "vllm"
[workload]
num_requests = 50
"#;

fn search_with(space: &str, extra: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("space.toml");
    std::fs::write(&f, space).unwrap();
    let o = Command::new(binary("simulator"))
        .args(["search", "--quiet", "--space"])
        .arg(&f)
        .arg("--out")
        .arg(dir.path().join("out"))
        .args(extra)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

#[test]
fn unknown_key_is_named() {
    let (ok, e) = search_with(&GOOD.replace("[space]", "[space]\ntp_degrees = [1]"), &[]);
    assert!(!ok);
    assert!(
        e.contains("unknown field `tp_degrees`") && e.contains("line 3"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn impossible_slo_is_rejected() {
    let (ok, e) = search_with(
        &format!("{GOOD}\n[[slo]]\nmetric = \"ttft\"\npercentile = 90\nmax_s = 0\n"),
        &[],
    );
    assert!(!ok);
    assert!(
        e.contains("slo[0].max_s") && e.contains("impossible"),
        "{e}"
    );
    let (ok, e) = search_with(
        &format!("{GOOD}\n[[slo]]\nmetric = \"tbt\"\npercentile = 120\nmax_s = 0.2\n"),
        &[],
    );
    assert!(!ok);
    assert!(
        e.contains("slo[0].percentile") && e.contains("(0, 100]"),
        "{e}"
    );
}

#[test]
fn empty_space_is_rejected() {
    let (ok, e) = search_with(
        &GOOD.replace("models = [\"meta-llama/Llama-2-7b-hf\"]", "models = []"),
        &[],
    );
    assert!(!ok);
    assert!(
        e.contains("space.models") && e.contains("no configuration"),
        "{e}"
    );
}

#[test]
fn bad_flags_are_rejected() {
    let (ok, e) = search_with(GOOD, &["--shard", "4/4"]);
    assert!(!ok);
    assert!(e.contains("--shard 4/4"), "{e}");
    let o = Command::new(binary("simulator"))
        .args(["search", "--out", "x"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--space"));
}

#[test]
fn example_spaces_are_valid() {
    let dir = repo_root().join("examples/search");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let out = tempfile::tempdir().unwrap();
        // One configuration in 64: checks the file end to end, quickly.
        let o = Command::new(binary("simulator"))
            .args(["search", "--quiet", "--shard", "0/64", "--space"])
            .arg(&p)
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.path().join("shard.json").exists());
        n += 1;
    }
    assert!(n >= 2);
}
