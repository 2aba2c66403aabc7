//! Finding the CUDA libraries at start-up.
//!
//! cudarc `dlopen`s bare names (`libcublas.so.13`, `libnccl.so`, ...), so the loader's search path
//! decides what is found, and glibc reads `LD_LIBRARY_PATH` once, at process start. The profiler
//! therefore looks for the libraries itself (`--cuda-lib-dir`, `$PROFILER_CUDA_LIB_DIRS`, a Python
//! environment's `site-packages/nvidia/*/lib`, `/usr/local/cuda/lib64`), makes a private directory of
//! compatibility links for names cudarc does not try (`libnccl.so -> libnccl.so.2`), puts all of it
//! in front of `LD_LIBRARY_PATH` and re-executes itself once (guarded by `PROFILER_LIBS_READY`).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Set in the re-executed process; its presence stops a second re-exec.
pub const READY_ENV: &str = "PROFILER_LIBS_READY";
/// Extra library directories, `:`-separated.
pub const DIRS_ENV: &str = "PROFILER_CUDA_LIB_DIRS";
/// The Python whose `site-packages` is searched (default `python3`).
pub const PYTHON_ENV: &str = "PROFILER_PYTHON";

/// The libraries the profiler uses: `(what, file names tried, required)`.
pub const LIBRARIES: [(&str, &[&str], bool); 6] = [
    ("CUDA driver", &["libcuda.so.1", "libcuda.so"], true),
    ("cuBLAS", &["libcublas.so.13", "libcublas.so"], true),
    ("cuBLASLt", &["libcublasLt.so.13", "libcublasLt.so"], true),
    ("NVRTC", &["libnvrtc.so.13", "libnvrtc.so"], true),
    ("NCCL", &["libnccl.so", "libnccl.so.2"], false),
    ("cuDNN", &["libcudnn.so.9", "libcudnn.so"], false),
];

/// Site-packages directories of the Python named by `$PROFILER_PYTHON` (or `python3`), if any.
pub fn python_site_packages() -> Vec<PathBuf> {
    let python = std::env::var_os(PYTHON_ENV).unwrap_or_else(|| OsString::from("python3"));
    let script = "import site,sysconfig\nfor p in [sysconfig.get_paths()['purelib']]+site.getsitepackages(): print(p)";
    let Ok(out) = Command::new(python).args(["-c", script]).output() else {
        return Vec::new();
    };
    let mut seen = BTreeSet::new();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.is_dir() && seen.insert(p.clone()))
        .collect()
}

/// The directories to search, in order: explicit ones, `$PROFILER_CUDA_LIB_DIRS`, every
/// `<site-packages>/nvidia/*/lib` (sorted), then `/usr/local/cuda/lib64`. Missing ones are dropped.
pub fn candidate_dirs(
    explicit: &[PathBuf],
    env_dirs: Option<&str>,
    site_packages: &[PathBuf],
) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = explicit.to_vec();
    if let Some(e) = env_dirs {
        v.extend(e.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }
    for sp in site_packages {
        let Ok(rd) = std::fs::read_dir(sp.join("nvidia")) else {
            continue;
        };
        let mut libs: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("lib"))
            .filter(|p| p.is_dir())
            .collect();
        libs.sort();
        v.extend(libs);
    }
    v.push(PathBuf::from("/usr/local/cuda/lib64"));
    let mut seen = BTreeSet::new();
    v.into_iter()
        .filter(|p| p.is_dir() && seen.insert(p.clone()))
        .collect()
}

/// The first file among `names` in `dirs` (directory order first).
pub fn find_in(dirs: &[PathBuf], names: &[&str]) -> Option<PathBuf> {
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.exists())
}

/// What the start-up step prepared.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Directory of compatibility links (first on the path).
    pub link_dir: PathBuf,
    /// Directories found, in search order.
    pub dirs: Vec<PathBuf>,
    /// The new `LD_LIBRARY_PATH`.
    pub ld_library_path: OsString,
}

/// Creates `link_dir` with the compatibility links (`libnccl.so` when only `libnccl.so.2` exists)
/// and composes `LD_LIBRARY_PATH = link_dir : dirs : old`.
pub fn prepare(
    dirs: &[PathBuf],
    link_dir: &Path,
    old: Option<&OsString>,
) -> std::io::Result<Prepared> {
    std::fs::create_dir_all(link_dir)?;
    if find_in(dirs, &["libnccl.so"]).is_none() {
        if let Some(target) = find_in(dirs, &["libnccl.so.2"]) {
            let link = link_dir.join("libnccl.so");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&target, &link)?;
        }
    }
    let mut parts: Vec<PathBuf> = vec![link_dir.to_path_buf()];
    parts.extend(dirs.iter().cloned());
    if let Some(old) = old {
        parts.extend(std::env::split_paths(old).filter(|p| !p.as_os_str().is_empty()));
    }
    let ld = std::env::join_paths(parts).map_err(std::io::Error::other)?;
    Ok(Prepared {
        link_dir: link_dir.to_path_buf(),
        dirs: dirs.to_vec(),
        ld_library_path: ld,
    })
}

/// True when this process still has to prepare the path and re-execute (the guard is unset).
pub fn needs_reexec(ready: Option<&OsString>) -> bool {
    ready.is_none()
}

/// Finds the libraries, prepares the path and re-executes this binary with the same arguments.
/// Returns only when no re-exec is needed (already done) or on failure to exec.
pub fn reexec_with_library_path(explicit: &[PathBuf]) -> std::io::Result<()> {
    if !needs_reexec(std::env::var_os(READY_ENV).as_ref()) {
        return Ok(());
    }
    let env_dirs = std::env::var(DIRS_ENV).ok();
    let dirs = candidate_dirs(explicit, env_dirs.as_deref(), &python_site_packages());
    let p = prepare(
        &dirs,
        &link_dir(),
        std::env::var_os("LD_LIBRARY_PATH").as_ref(),
    )?;
    let exe = std::env::current_exe()?;
    let err = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("LD_LIBRARY_PATH", &p.ld_library_path)
            .env(READY_ENV, "1")
            .exec()
    };
    Err(err)
}

fn link_dir() -> PathBuf {
    std::env::temp_dir().join(format!("profiler-libs-{}", std::process::id()))
}

/// Removes this process's link directory (after re-exec the pid is unchanged); the libraries
/// already loaded stay loaded.
pub fn remove_link_dir() {
    if std::env::var_os(READY_ENV).is_some() {
        let _ = std::fs::remove_dir_all(link_dir());
    }
}

/// The directories of `LD_LIBRARY_PATH` (what the loader searched), for error messages.
pub fn searched_dirs() -> Vec<PathBuf> {
    std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Where each library was found on the current `LD_LIBRARY_PATH` (or "system loader path"),
/// for the run metadata: `(what, path or None)`.
pub fn resolved() -> Vec<(String, Option<PathBuf>)> {
    let dirs = searched_dirs();
    LIBRARIES
        .iter()
        .map(|(what, names, _)| {
            let found = find_in(&dirs, names).map(|p| std::fs::canonicalize(&p).unwrap_or(p));
            (what.to_string(), found)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"").unwrap();
    }

    #[test]
    fn finds_wheel_dirs_links_nccl_and_builds_the_library_path() {
        let t = tempfile::tempdir().unwrap();
        let sp = t.path().join("site-packages");
        touch(&sp.join("nvidia/cu13/lib/libcublas.so.13"));
        touch(&sp.join("nvidia/cudnn/lib/libcudnn.so.9"));
        touch(&sp.join("nvidia/nccl/lib/libnccl.so.2"));
        std::fs::create_dir_all(sp.join("nvidia/no_lib_here")).unwrap();
        let extra = t.path().join("extra");
        std::fs::create_dir_all(&extra).unwrap();
        let dirs = candidate_dirs(
            std::slice::from_ref(&extra),
            Some(&format!("{}:/does/not/exist", extra.display())),
            std::slice::from_ref(&sp),
        );
        let mut want = vec![
            extra.clone(),
            sp.join("nvidia/cu13/lib"),
            sp.join("nvidia/cudnn/lib"),
            sp.join("nvidia/nccl/lib"),
        ];
        if Path::new("/usr/local/cuda/lib64").is_dir() {
            want.push("/usr/local/cuda/lib64".into());
        }
        assert_eq!(dirs, want);

        let links = t.path().join("links");
        let old = OsString::from("/old/a:/old/b");
        let p = prepare(&dirs, &links, Some(&old)).unwrap();
        let link = links.join("libnccl.so");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            sp.join("nvidia/nccl/lib/libnccl.so.2")
        );
        let parts: Vec<PathBuf> = std::env::split_paths(&p.ld_library_path).collect();
        assert_eq!(parts[0], links);
        assert_eq!(parts[1], extra);
        assert_eq!(
            &parts[parts.len() - 2..],
            &[PathBuf::from("/old/a"), PathBuf::from("/old/b")]
        );
        assert_eq!(
            find_in(&parts, &["libcublas.so.13"]),
            Some(sp.join("nvidia/cu13/lib/libcublas.so.13"))
        );
        // preparing twice (e.g. a rerun with the same pid) replaces the link instead of failing
        prepare(&dirs, &links, None).unwrap();
    }

    #[test]
    fn no_nccl_link_when_libnccl_so_exists_or_nccl_is_absent() {
        let t = tempfile::tempdir().unwrap();
        touch(&t.path().join("a/libnccl.so"));
        touch(&t.path().join("a/libnccl.so.2"));
        let links = t.path().join("links");
        prepare(&[t.path().join("a")], &links, None).unwrap();
        assert!(!links.join("libnccl.so").exists());
        let links2 = t.path().join("links2");
        prepare(&[], &links2, None).unwrap();
        assert!(!links2.join("libnccl.so").exists());
    }

    #[test]
    fn the_reexec_guard_stops_a_second_exec() {
        assert!(needs_reexec(None));
        assert!(!needs_reexec(Some(&OsString::from("1"))));
    }
}
