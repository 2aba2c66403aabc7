//! All-or-nothing output directories: a run writes into a staging directory inside `--out` and
//! moves its files into place only when it succeeds (docs/outputs.md, "Failed runs and re-used
//! directories").
//!
//! On success every known output name this run wrote replaces the old one, and every known output
//! name it did not write (a `trace.json` of an earlier run that had traces on, say) is removed, so
//! a directory never mixes two runs. On failure the staging directory is removed and the directory
//! is left as it was. Files that are not run outputs are never touched.

use std::path::{Path, PathBuf};

use crate::error::SimError;

/// The names a run may write in its directory (`plots` is a directory).
pub const OUTPUT_NAMES: [&str; 10] = [
    "config.toml",
    "requests.csv",
    "batches.csv",
    "timeseries.csv",
    "summary.json",
    "bench.json",
    "itl_histogram.csv",
    "trace.json",
    "plots",
    "report.html",
];

fn io_err(path: &Path, source: std::io::Error) -> SimError {
    SimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A staging directory for the outputs of one run into `dir`.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    root: PathBuf,
    work: PathBuf,
}

impl Staging {
    /// Creates `dir` (if missing) and an empty staging directory inside it. The staging directory
    /// ends with the same name as `dir`, so what is written there names the run as `dir` would.
    pub fn create(dir: &Path) -> Result<Staging, SimError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let root = dir.join(format!(".servesim-partial-{}", std::process::id()));
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(|e| io_err(&root, e))?;
        }
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_os_string()))
            .unwrap_or_else(|| "run".into());
        let work = root.join(name);
        std::fs::create_dir_all(&work).map_err(|e| io_err(&work, e))?;
        Ok(Staging {
            dir: dir.to_path_buf(),
            root,
            work,
        })
    }

    /// Where the run writes its files.
    pub fn path(&self) -> &Path {
        &self.work
    }

    /// Moves the staged outputs into place, removes the known outputs of earlier runs that this
    /// run did not write, and removes the staging directory.
    pub fn commit(self) -> Result<(), SimError> {
        for name in OUTPUT_NAMES {
            let staged = self.work.join(name);
            let target = self.dir.join(name);
            let old = std::fs::symlink_metadata(&target).ok();
            match old {
                Some(m) if m.is_dir() => {
                    std::fs::remove_dir_all(&target).map_err(|e| io_err(&target, e))?
                }
                Some(_) if !staged.exists() => {
                    std::fs::remove_file(&target).map_err(|e| io_err(&target, e))?
                }
                _ => {}
            }
            if staged.exists() {
                std::fs::rename(&staged, &target).map_err(|e| io_err(&target, e))?;
            }
        }
        std::fs::remove_dir_all(&self.root).map_err(|e| io_err(&self.root, e))
    }

    /// Removes the staging directory, leaving the output directory as it was.
    pub fn discard(self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Fails when an input file of the run (`what`, e.g. `--trace`) is one of the files a run into
/// `dir` writes: the run would overwrite its own input.
pub fn check_not_an_output(dir: &Path, what: &str, input: &Path) -> Result<(), SimError> {
    let (Ok(input_abs), Ok(dir_abs)) = (input.canonicalize(), dir.canonicalize()) else {
        return Ok(()); // a missing input is reported by its reader; a missing dir holds nothing
    };
    for name in OUTPUT_NAMES {
        let out = dir_abs.join(name);
        if input_abs == out || input_abs.starts_with(&out) {
            return Err(SimError::Config {
                field: "output".into(),
                why: format!(
                    "{what} {} is the {name} this run would write in --out {}; write the run to another directory, or move the input out of it",
                    input.display(),
                    dir.display()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_and_removes_stale_outputs_and_keeps_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir_all(dir.join("plots")).unwrap();
        for (name, text) in [
            ("requests.csv", "old"),
            ("trace.json", "old"),
            ("notes.txt", "mine"),
            ("plots/x.svg", "old"),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let s = Staging::create(&dir).unwrap();
        assert!(s.path().ends_with("run"), "{}", s.path().display());
        std::fs::write(s.path().join("requests.csv"), "new").unwrap();
        std::fs::write(s.path().join("summary.json"), "new").unwrap();
        // before the commit the old files are untouched
        assert_eq!(
            std::fs::read_to_string(dir.join("requests.csv")).unwrap(),
            "old"
        );
        s.commit().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["notes.txt", "requests.csv", "summary.json"]);
        assert_eq!(
            std::fs::read_to_string(dir.join("requests.csv")).unwrap(),
            "new"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn discard_leaves_the_directory_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("requests.csv"), "old").unwrap();
        let s = Staging::create(tmp.path()).unwrap();
        std::fs::write(s.path().join("requests.csv"), "partial").unwrap();
        s.discard();
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("requests.csv")).unwrap(),
            "old"
        );
    }

    #[test]
    fn an_input_inside_the_outputs_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let trace = tmp.path().join("requests.csv");
        std::fs::write(&trace, "x").unwrap();
        let e = check_not_an_output(tmp.path(), "--trace", &trace)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--trace") && e.contains("requests.csv"), "{e}");
        let other = tmp.path().join("mytrace.csv");
        std::fs::write(&other, "x").unwrap();
        assert!(check_not_an_output(tmp.path(), "--trace", &other).is_ok());
    }
}
