//! All-or-nothing output directories: a command writes into a staging directory inside its `--out`
//! and moves its files into place only when it succeeds (docs/outputs.md, "Failed runs and re-used
//! directories").
//!
//! On success every known output name this command wrote replaces the old one, and every known
//! output name it did not write (a `trace.json` of an earlier run that had traces on, say) is
//! removed, so a directory never mixes two runs. On failure the staging directory is removed and
//! the directory is left as it was. Files that are not outputs are never touched. A directory that
//! holds the outputs of another command (a sweep's, a comparison's) is refused: their `plots/`
//! would be replaced.

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

/// The names `simulator sweep` writes in its directory (`runs` and `plots` are directories).
pub const SWEEP_NAMES: [&str; 5] = ["sweep.csv", "sweep.json", "sweep.html", "plots", "runs"];

/// The names `simulator compare` writes in its directory (`plots` is a directory).
pub const COMPARE_NAMES: [&str; 2] = ["compare.html", "plots"];

/// The command whose outputs a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// `simulator run` ([`OUTPUT_NAMES`]).
    Run,
    /// `simulator sweep` ([`SWEEP_NAMES`]).
    Sweep,
    /// `simulator compare` ([`COMPARE_NAMES`]).
    Compare,
}

impl OutputKind {
    const ALL: [OutputKind; 3] = [OutputKind::Run, OutputKind::Sweep, OutputKind::Compare];

    /// The names this command writes in its directory.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            OutputKind::Run => &OUTPUT_NAMES,
            OutputKind::Sweep => &SWEEP_NAMES,
            OutputKind::Compare => &COMPARE_NAMES,
        }
    }

    /// The file that marks a directory as holding this command's outputs.
    fn marker(self) -> &'static str {
        match self {
            OutputKind::Run => "summary.json",
            OutputKind::Sweep => "sweep.json",
            OutputKind::Compare => "compare.html",
        }
    }

    fn command(self) -> &'static str {
        match self {
            OutputKind::Run => "simulator run",
            OutputKind::Sweep => "simulator sweep",
            OutputKind::Compare => "simulator compare",
        }
    }
}

fn io_err(path: &Path, source: std::io::Error) -> SimError {
    SimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Fails when `dir` holds the outputs of a command other than `kind` (its `plots/` and other
/// files would be replaced or mixed).
pub fn check_kind(dir: &Path, kind: OutputKind) -> Result<(), SimError> {
    for other in OutputKind::ALL {
        if other != kind && dir.join(other.marker()).is_file() {
            return Err(SimError::Config {
                field: "output".into(),
                why: format!(
                    "--out {} holds the outputs of `{}` ({}); `{}` would replace or mix them: write to another directory",
                    dir.display(),
                    other.command(),
                    other.marker(),
                    kind.command()
                ),
            });
        }
    }
    Ok(())
}

/// A staging directory for the outputs of one command into `dir`.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    root: PathBuf,
    work: PathBuf,
    names: &'static [&'static str],
}

impl Staging {
    /// A staging directory for the outputs of one run ([`OutputKind::Run`]).
    pub fn create(dir: &Path) -> Result<Staging, SimError> {
        Self::create_for(dir, OutputKind::Run)
    }

    /// Checks that `dir` does not hold another command's outputs ([`check_kind`]), creates `dir`
    /// (if missing) and an empty staging directory inside it. The staging directory ends with the
    /// same name as `dir`, so what is written there names the outputs as `dir` would.
    pub fn create_for(dir: &Path, kind: OutputKind) -> Result<Staging, SimError> {
        check_kind(dir, kind)?;
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
            names: kind.names(),
        })
    }

    /// Where the command writes its files.
    pub fn path(&self) -> &Path {
        &self.work
    }

    /// Moves the staged outputs into place, removes the known outputs of earlier runs that this
    /// run did not write, and removes the staging directory.
    pub fn commit(self) -> Result<(), SimError> {
        for name in self.names {
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

/// Fails when an input file of a run (`what`, e.g. `--trace`) is one of the files a run into
/// `dir` writes: the run would overwrite its own input.
pub fn check_not_an_output(dir: &Path, what: &str, input: &Path) -> Result<(), SimError> {
    check_not_an_output_of(dir, OutputKind::Run, what, input)
}

/// Fails when an input file (`what`) is one of the files (or inside one of the directories)
/// `kind` writes in `dir`.
pub fn check_not_an_output_of(
    dir: &Path,
    kind: OutputKind,
    what: &str,
    input: &Path,
) -> Result<(), SimError> {
    let (Ok(input_abs), Ok(dir_abs)) = (input.canonicalize(), dir.canonicalize()) else {
        return Ok(()); // a missing input is reported by its reader; a missing dir holds nothing
    };
    for name in kind.names() {
        let out = dir_abs.join(name);
        if input_abs == out || input_abs.starts_with(&out) {
            return Err(SimError::Config {
                field: "output".into(),
                why: format!(
                    "{what} {} is the {name} this {} would write in --out {}; write to another directory, or move the input out of it",
                    input.display(),
                    match kind {
                        OutputKind::Run => "run",
                        OutputKind::Sweep => "sweep",
                        OutputKind::Compare => "comparison",
                    },
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

    #[test]
    fn another_commands_directory_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let sweep = tmp.path().join("sweep");
        std::fs::create_dir_all(sweep.join("plots")).unwrap();
        std::fs::write(sweep.join("sweep.json"), "{}").unwrap();
        std::fs::write(sweep.join("plots/sweep_ttft.svg"), "old").unwrap();
        let e = Staging::create(&sweep).unwrap_err().to_string();
        assert!(
            e.contains("simulator sweep") && e.contains("sweep.json"),
            "{e}"
        );
        let e = Staging::create_for(&sweep, OutputKind::Compare)
            .unwrap_err()
            .to_string();
        assert!(e.contains("simulator compare"), "{e}");
        assert_eq!(
            std::fs::read_to_string(sweep.join("plots/sweep_ttft.svg")).unwrap(),
            "old"
        );
        assert_eq!(std::fs::read_dir(&sweep).unwrap().count(), 2);
        // its own kind: staged and replaced as a whole (a stale rate directory goes)
        std::fs::create_dir_all(sweep.join("runs/09-qps9")).unwrap();
        let s = Staging::create_for(&sweep, OutputKind::Sweep).unwrap();
        std::fs::create_dir_all(s.path().join("runs/01-qps1")).unwrap();
        std::fs::write(s.path().join("sweep.json"), "new").unwrap();
        s.commit().unwrap();
        assert!(sweep.join("runs/01-qps1").is_dir() && !sweep.join("runs/09-qps9").exists());
        assert!(!sweep.join("plots").exists());
        // a run directory is refused by a sweep
        let run = tmp.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("summary.json"), "{}").unwrap();
        assert!(Staging::create_for(&run, OutputKind::Sweep).is_err());
        assert!(Staging::create(&run).is_ok());
    }

    #[test]
    fn an_input_inside_a_sweeps_outputs_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("runs/01-qps1/config.toml");
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(&cfg, "x").unwrap();
        let e = check_not_an_output_of(tmp.path(), OutputKind::Sweep, "--config", &cfg)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--config") && e.contains("sweep"), "{e}");
        assert!(check_not_an_output(tmp.path(), "--config", &cfg).is_ok());
    }
}
