//! Embeds every catalog file under `data/catalog/` into the library, so the binaries carry the
//! catalog and work from any directory. A file added there is picked up at the next build.
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

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let catalog = manifest.join("..").join("data").join("catalog");
    println!("cargo:rerun-if-changed={}", catalog.display());
    let mut files = Vec::new();
    collect(&catalog, &mut files);
    let mut code = String::from("/// Catalog files embedded at build time: (path relative to data/catalog, contents).\npub(crate) const EMBEDDED: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let rel = f
            .strip_prefix(&catalog)
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
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("embedded_catalog.rs");
    std::fs::write(out, code).unwrap();
}
