//! `simulator search --shard I/N` and `simulator search merge`: four shards merge into outputs
//! byte-identical to the unsharded search, whatever the thread count.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use servesim_e2e::binary;

const SPACE: &str = r#"
seed = 3
[space]
models = ["meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-70b-hf"]
tp = [1, 2, 4]
[[space.devices]]
device = "h100"
[[space.schedulers]]
name = "vllm"
[[space.schedulers]]
name = "orca"
[workload]
num_requests = 150
[workload.lengths]
kind = "fixed"
prefill_tokens = 512
decode_tokens = 128
"#;

fn sim(args: &[&str], paths: &[&Path]) -> std::process::Output {
    let mut c = Command::new(binary("simulator"));
    c.args(args);
    for p in paths {
        c.arg(p);
    }
    c.output().unwrap()
}

/// Every file under `dir`, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn four_shards_merge_byte_identically() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.toml");
    std::fs::write(&space, SPACE).unwrap();
    let whole = dir.path().join("whole");
    let o = sim(
        &["search", "--quiet", "--threads", "1", "--space"],
        &[&space, Path::new("--out"), &whole],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let two = dir.path().join("two-threads");
    let o = sim(
        &["search", "--quiet", "--threads", "2", "--space"],
        &[&space, Path::new("--out"), &two],
    );
    assert!(o.status.success());
    let expect = files(&whole);
    assert!(expect.contains_key("results.csv") && expect.contains_key("best.toml"));
    assert!(expect.keys().any(|k| k.starts_with("configs")));
    assert_eq!(files(&two), expect, "thread count changed the outputs");

    let mut shard_dirs = Vec::new();
    for i in 0..4 {
        let d = dir.path().join(format!("shard{i}"));
        let o = sim(
            &["search", "--quiet", "--shard", &format!("{i}/4"), "--space"],
            &[&space, Path::new("--out"), &d],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        shard_dirs.push(d);
    }
    let merged = dir.path().join("merged");
    // A stale run file of an earlier search goes; other files stay.
    std::fs::create_dir_all(merged.join("configs")).unwrap();
    std::fs::write(merged.join("configs/9999.toml"), "stale").unwrap();
    std::fs::write(merged.join("configs/notes.txt"), "mine").unwrap();
    // Shards in any order.
    let order: Vec<&Path> = [3, 0, 2, 1]
        .iter()
        .map(|&i| shard_dirs[i].as_path())
        .collect();
    let mut args: Vec<&Path> = order.clone();
    args.push(Path::new("--out"));
    args.push(&merged);
    let o = sim(&["search", "merge", "--quiet"], &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut got = files(&merged);
    assert_eq!(
        got.remove("configs/notes.txt").as_deref(),
        Some(&b"mine"[..])
    );
    assert_eq!(got, expect, "merged shards differ from the whole search");

    // A missing shard is named.
    let o = sim(
        &["search", "merge"],
        &[
            &shard_dirs[0],
            &shard_dirs[1],
            &shard_dirs[3],
            Path::new("--out"),
            &merged,
        ],
    );
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("missing shard(s) 2/4"), "{e}");
    // The same shard twice.
    let o = sim(
        &["search", "merge"],
        &[&shard_dirs[0], &shard_dirs[0], Path::new("--out"), &merged],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("given twice"));
    // A shard of another space of the same size (one price changed) is refused.
    let other_space = dir.path().join("other.toml");
    std::fs::write(
        &other_space,
        SPACE.replace(
            "device = \"h100\"",
            "device = \"h100\"\nprice_per_gpu_hour_usd = 9.0",
        ),
    )
    .unwrap();
    let other = dir.path().join("other-shard2");
    let o = sim(
        &["search", "--quiet", "--shard", "2/4", "--space"],
        &[&other_space, Path::new("--out"), &other],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = sim(
        &["search", "merge"],
        &[
            &shard_dirs[0],
            &shard_dirs[1],
            &other,
            &shard_dirs[3],
            Path::new("--out"),
            &merged,
        ],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("different spaces"));
    edited_shards_are_refused(dir.path(), &shard_dirs, &merged);
}

/// Shard files edited by hand (issue 18): an `I/N` out of range, a row of another shard, a row
/// without its run configuration. Each is an error naming the file, never a panic or a merge that
/// silently drops `best.toml`.
fn edited_shards_are_refused(tmp: &Path, shard_dirs: &[std::path::PathBuf], merged: &Path) {
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shard_dirs[1].join("shard.json")).unwrap())
            .unwrap();
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit, &str); 3] = [
        (
            "index5",
            |v| v["shard"]["index"] = 5.into(),
            "its shard is 5/4",
        ),
        (
            "foreign-row",
            |v| v["rows"][0]["row"]["index"] = 0.into(),
            "does not belong to shard 1/4",
        ),
        (
            "no-run-config",
            |v| {
                for r in v["rows"].as_array_mut().unwrap() {
                    r["run_config"] = serde_json::Value::Null;
                }
            },
            "has a capacity but no run_config",
        ),
    ];
    for (name, edit, expect) in edits {
        let mut v = original.clone();
        edit(&mut v);
        let d = tmp.join(format!("edited-{name}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("shard.json"), v.to_string()).unwrap();
        let o = sim(
            &["search", "merge"],
            &[
                &shard_dirs[0],
                &d,
                &shard_dirs[2],
                &shard_dirs[3],
                Path::new("--out"),
                merged,
            ],
        );
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {e}");
        assert!(e.contains(expect) && e.contains("edited-"), "{name}: {e}");
    }
}
