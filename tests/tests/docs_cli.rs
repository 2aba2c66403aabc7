//! Every command-line option our binaries list in `--help` is documented somewhere in `docs/*.md`,
//! and every servesim option that `docs/vidur-migration.md` names exists.
//!
//! A binary or subcommand that does not exist (yet) is skipped with a printed note; the check covers
//! whatever the workspace builds (`scripts/test.sh` builds every binary before the tests).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use servesim_e2e::{binary, repo_root};

/// The help screens to check: binary and arguments.
const HELPS: &[(&str, &[&str])] = &[
    ("simulator", &["run", "--help"]),
    ("simulator", &["compare", "--help"]),
    ("simulator", &["sweep", "--help"]),
    ("simulator", &["search", "--help"]),
    ("simulator", &["search", "merge", "--help"]),
    ("simulator", &["calibrate", "--help"]),
    ("predictor", &["fit", "--help"]),
    ("predictor", &["predict", "--help"]),
    ("profiler", &["--help"]),
    ("profiler", &["plan", "--help"]),
    ("profiler", &["mlp", "--help"]),
    ("profiler", &["attention", "--help"]),
    ("profiler", &["collectives", "--help"]),
    ("profiler", &["all", "--help"]),
    ("profiler", &["check", "--help"]),
    ("profiler", &["compile-kernels", "--help"]),
];

/// Long options (`--name`) in a text, without `--help`/`--version`.
fn long_options(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i + 2 < bytes.len() {
        let starts = bytes[i] == b'-'
            && bytes[i + 1] == b'-'
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'-'))
            && bytes[i + 2].is_ascii_lowercase();
        if starts {
            let mut j = i + 2;
            while j < bytes.len()
                && (bytes[j].is_ascii_lowercase()
                    || bytes[j].is_ascii_digit()
                    || bytes[j] == b'-'
                    || bytes[j] == b'_')
            {
                j += 1;
            }
            let name = text[i..j].trim_end_matches('-').to_string();
            if name != "--help" && name != "--version" {
                out.insert(name);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The text of every `docs/*.md`.
fn docs_text() -> String {
    let dir = repo_root().join("docs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs one help screen; `None` (with a note) when the binary or subcommand is missing.
fn help(bin: &str, args: &[&str]) -> Option<String> {
    let path = binary(bin);
    let what = format!("{bin} {}", args.join(" "));
    if !Path::new(&path).is_file() {
        println!("note: {} not built; skipping `{what}`", path.display());
        return None;
    }
    let out = Command::new(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    if !out.status.success() {
        println!(
            "note: `{what}` failed ({}); skipping it: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        );
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_listed_option_is_documented() {
    let docs = docs_text();
    let documented = long_options(&docs);
    let mut missing = Vec::new();
    let mut checked = 0;
    for (bin, args) in HELPS {
        let Some(text) = help(bin, args) else {
            continue;
        };
        checked += 1;
        for opt in long_options(&text) {
            if !documented.contains(&opt) {
                missing.push(format!("{opt} (from `{bin} {}`)", args.join(" ")));
            }
        }
    }
    println!("checked {checked} help screens");
    assert!(
        missing.is_empty(),
        "options listed by --help but mentioned nowhere in docs/*.md (document them, e.g. in docs/cli.md):\n  {}",
        missing.join("\n  ")
    );
}

/// The servesim options named in the side-by-side tables of `docs/vidur-migration.md` (the second
/// column), up to the capacity-search section (whose options belong to `simulator search`).
fn migration_options() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_root().join("docs/vidur-migration.md")).unwrap();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("### Capacity search") {
            break;
        }
        let cells: Vec<&str> = line.split('|').collect();
        if line.starts_with('|') && cells.len() >= 4 {
            out.extend(long_options(cells[2]));
        }
    }
    out
}

#[test]
fn migration_table_names_real_options() {
    let ours = migration_options();
    assert!(
        ours.len() >= 30,
        "the migration table should name our options: {ours:?}"
    );
    let Some(run_help) = help("simulator", &["run", "--help"]) else {
        println!("note: `simulator run --help` unavailable; the migration table is not checked");
        return;
    };
    let mut known = long_options(&run_help);
    for (bin, args) in HELPS {
        if let Some(t) = help(bin, args) {
            known.extend(long_options(&t));
        }
    }
    let stale: Vec<&String> = ours.iter().filter(|o| !known.contains(*o)).collect();
    assert!(
        stale.is_empty(),
        "docs/vidur-migration.md names options our binaries do not have (fix the table): {stale:?}"
    );
}

#[test]
fn option_extraction() {
    let help = "Usage: simulator run [OPTIONS]\n  --num-replicas <N>  Replicas [default: 1]\n  -q, --quiet\n      --slo-ttft <SECONDS>\n  -h, --help  Print help (see --backend tables)\n";
    let got: Vec<String> = long_options(help).into_iter().collect();
    assert_eq!(
        got,
        ["--backend", "--num-replicas", "--quiet", "--slo-ttft"]
    );
    // Vidur-style names in a table cell, and no match inside words or on `---`.
    let cell = " `--cluster_config_num_replicas` and a-b--c and --- ";
    assert_eq!(
        long_options(cell).into_iter().collect::<Vec<_>>(),
        ["--cluster_config_num_replicas"]
    );
}

#[test]
fn every_engine_coefficient_and_its_range_is_documented() {
    let doc = std::fs::read_to_string(repo_root().join("docs/calibration.md")).unwrap();
    for c in predictor::exec::engine::coeffs::COEFFICIENTS {
        let row = format!("| `{}` | {} | [{}, {}] |", c.name, c.unit, c.min, c.max);
        assert!(
            doc.contains(&row),
            "docs/calibration.md lacks the row `{row}` (section Coefficient ranges)"
        );
    }
}
