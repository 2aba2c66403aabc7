//! Embeds every catalog file under `data/catalog/` and every calibration under `data/calibration/`
//! into the library, so the binaries carry them and work from any directory. A file added there is
//! picked up at the next build.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read catalog directory {}: {e}", dir.display()))
        .map(|e| e.expect("catalog directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

/// Writes `OUT_DIR/<out_name>`: a constant `name` listing every `.toml` under `dir` as
/// (path relative to `dir`, contents).
fn embed(dir: &Path, name: &str, doc: &str, out_name: &str) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    if dir.is_dir() {
        collect(dir, &mut files);
    }
    let mut code = format!("/// {doc}\npub(crate) const {name}: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let rel = f
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let abs = f.canonicalize().unwrap();
        writeln!(
            code,
            "    ({rel:?}, include_str!({:?})),",
            abs.to_string_lossy()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join(out_name);
    std::fs::write(out, code).unwrap();
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let data = manifest.join("..").join("data");
    embed(
        &data.join("catalog"),
        "EMBEDDED",
        "Catalog files embedded at build time: (path relative to data/catalog, contents).",
        "embedded_catalog.rs",
    );
    embed(
        &data.join("calibration"),
        "EMBEDDED_CALIBRATIONS",
        "Calibration files embedded at build time: (path relative to data/calibration, contents).",
        "embedded_calibrations.rs",
    );
}
