//! The files `simulator calibrate` writes, all or nothing: the calibration `--out FILE.toml` and the
//! tables beside it (`FILE.md`, `FILE.csv`, `FILE.sensitivity.md`, `FILE.cv.md`, `FILE.cv.csv`).
//!
//! The contents are collected while the command runs and written only when it has succeeded, each
//! to a temporary name in its directory and then renamed into place; files of an earlier
//! calibration at these names that this one did not write are removed, so the tables always
//! belong to the calibration beside them (docs/calibration.md). Other files are never touched.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Every file a calibration into `out` may write, `out` first.
pub fn names(out: &Path) -> Vec<PathBuf> {
    let mut v = vec![out.to_path_buf()];
    v.extend(
        ["md", "csv", "sensitivity.md", "cv.md", "cv.csv"]
            .iter()
            .map(|ext| out.with_extension(ext)),
    );
    v
}

/// Checks `--out` before anything runs: a `.toml` name, none of the files the command writes is
/// one of its `inputs` (flag, file), and with `--baseline` (which writes only the tables) no
/// calibration already at `out`, whose tables would be replaced.
pub fn check(out: &Path, inputs: &[(&str, &Path)], baseline: bool) -> Result<()> {
    if !out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
    {
        bail!(
            "--out {}: give the calibration file's name ending in .toml (its tables are written beside it as .md and .csv)",
            out.display()
        );
    }
    for name in names(out) {
        let Ok(written) = name.canonicalize() else {
            continue; // not there yet: no input can be it
        };
        for (flag, input) in inputs {
            if input.canonicalize().is_ok_and(|i| i == written) {
                bail!(
                    "{flag} {} is {}, which this calibration would write (--out {}); write the calibration to another file",
                    input.display(),
                    name.display(),
                    out.display()
                );
            }
        }
    }
    if baseline && out.exists() {
        bail!(
            "--out {} is a calibration: --baseline would replace its tables ({}, {}); give the baseline a name of its own",
            out.display(),
            out.with_extension("md").display(),
            out.with_extension("csv").display()
        );
    }
    Ok(())
}

/// The files of one calibration, held until [`Outputs::commit`].
#[derive(Debug, Default)]
pub struct Outputs {
    files: Vec<(PathBuf, String)>,
}

impl Outputs {
    /// Adds a file.
    pub fn add(&mut self, path: PathBuf, text: String) {
        self.files.push((path, text));
    }

    /// Writes every file (temporary names, then renamed) and removes those of `names` this
    /// calibration did not write. On an error the temporary files are removed and the files
    /// already in place are left as they were.
    pub fn commit(self, names: &[PathBuf]) -> Result<()> {
        let temp = |p: &Path| {
            let mut name = p.file_name().unwrap_or_default().to_os_string();
            name.push(format!(".servesim-partial-{}", std::process::id()));
            p.with_file_name(name)
        };
        let mut written: Vec<PathBuf> = Vec::new();
        for (path, text) in &self.files {
            let t = temp(path);
            if let Err(e) = std::fs::write(&t, text) {
                let _ = std::fs::remove_file(&t);
                for w in &written {
                    let _ = std::fs::remove_file(temp(w));
                }
                return Err(e).with_context(|| format!("cannot write {}", path.display()));
            }
            written.push(path.clone());
        }
        for path in &written {
            std::fs::rename(temp(path), path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        for stale in names.iter().filter(|n| !written.contains(n)) {
            if stale.is_file() {
                std::fs::remove_file(stale)
                    .with_context(|| format!("cannot remove the stale {}", stale.display()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_writes_all_and_removes_stale_tables() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("cal.toml");
        for n in names(&out) {
            std::fs::write(n, "old").unwrap();
        }
        std::fs::write(tmp.path().join("other.md"), "mine").unwrap();
        let mut o = Outputs::default();
        o.add(out.clone(), "new".into());
        o.add(out.with_extension("md"), "new".into());
        o.commit(&names(&out)).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["cal.md", "cal.toml", "other.md"]);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "new");
    }

    #[test]
    fn inputs_among_the_outputs_and_bad_names_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("cal.toml");
        let meas = tmp.path().join("cal.csv");
        std::fs::write(&meas, "x").unwrap();
        let e = check(&out, &[("--measurements", &meas)], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--measurements") && e.contains("cal.csv"), "{e}");
        let other = tmp.path().join("m.json");
        std::fs::write(&other, "x").unwrap();
        check(&out, &[("--measurements", &other)], false).unwrap();
        let e = check(&tmp.path().join("cal.md"), &[], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains(".toml"), "{e}");
        std::fs::write(&out, "x").unwrap();
        assert!(check(&out, &[], true)
            .unwrap_err()
            .to_string()
            .contains("--baseline"));
        check(&out, &[], false).unwrap();
    }
}
