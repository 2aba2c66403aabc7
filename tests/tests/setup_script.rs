//! `scripts/setup.sh`: its libclang detection finds exactly what bindgen would load, and a machine
//! without libclang gets one sentence saying what to install (and nothing is changed).

use std::path::Path;
use std::process::{Command, Output};

use servesim_e2e::repo_root;

/// Runs `scripts/setup.sh ARGS` with libclang searched only in `dirs` (and `LIBCLANG_PATH` as
/// given), installing nothing.
fn setup(args: &[&str], dirs: &[&Path], libclang_path: Option<&Path>) -> Output {
    let joined = dirs
        .iter()
        .map(|d| d.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/setup.sh"))
        .args(args)
        .env("SERVESIM_LIBCLANG_DIRS", joined)
        .env("SERVESIM_SETUP_NO_INSTALL", "1")
        .env_remove("LIBCLANG_PATH");
    if let Some(p) = libclang_path {
        cmd.env("LIBCLANG_PATH", p);
    }
    cmd.output().expect("bash runs")
}

/// What `--find-libclang` prints (trimmed), or `None` when it finds nothing (exit 1, no output).
fn find(dirs: &[&Path], libclang_path: Option<&Path>) -> Option<String> {
    let o = setup(&["--find-libclang"], dirs, libclang_path);
    let out = String::from_utf8(o.stdout).unwrap().trim().to_string();
    match o.status.code() {
        Some(0) => {
            assert!(!out.is_empty());
            Some(out)
        }
        Some(1) => {
            assert!(out.is_empty(), "{out}");
            None
        }
        other => panic!("exit {other:?}: {}", String::from_utf8_lossy(&o.stderr)),
    }
}

/// A file whose header says 64-bit ELF (what clang-sys checks before loading it).
fn elf64(path: &Path) {
    let mut bytes = vec![0x7f, b'E', b'L', b'F', 2, 1, 1];
    bytes.resize(64, 0);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn libclang_detection_takes_what_bindgen_loads_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let empty = dir("empty");
    assert_eq!(find(&[&empty], None), None);
    assert_eq!(find(&[&tmp.path().join("absent")], None), None);

    // The machine of issue 13: only the C++ library (libclang-cpp), which bindgen cannot use.
    let cpp = dir("cpp");
    elf64(&cpp.join("libclang-cpp.so.14"));
    elf64(&cpp.join("libclang-cpp.so"));
    assert_eq!(find(&[&cpp], None), None);

    // Names bindgen loads, but files it would reject: not an ELF, a 32-bit ELF, a dangling link.
    let text = dir("text");
    std::fs::write(text.join("libclang.so"), "INPUT(libclang.so.1)\n").unwrap();
    let elf32 = dir("elf32");
    let mut bytes = vec![0x7f, b'E', b'L', b'F', 1];
    bytes.resize(64, 0);
    std::fs::write(elf32.join("libclang-14.so"), bytes).unwrap();
    let dangling = dir("dangling");
    std::os::unix::fs::symlink(
        dangling.join("missing.so.1"),
        dangling.join("libclang.so.1"),
    )
    .unwrap();
    assert_eq!(find(&[&text, &elf32, &dangling, &cpp], None), None);

    // Every name bindgen loads: libclang.so, libclang-N.so, libclang.so.N, libclang-N.so.N.
    for name in [
        "libclang.so",
        "libclang-17.so",
        "libclang.so.1",
        "libclang-14.so.1",
    ] {
        let d = dir(&format!("good-{name}"));
        elf64(&d.join(name));
        let want = d.join(name).to_str().unwrap().to_string();
        assert_eq!(find(&[&empty, &cpp, &d], None), Some(want), "{name}");
    }
    // A symbolic link to a good file counts (Debian's libclang-14.so.1 is one).
    let linked = dir("linked");
    elf64(&linked.join("libclang-14.so.14.0.6"));
    std::os::unix::fs::symlink("libclang-14.so.14.0.6", linked.join("libclang-14.so.1")).unwrap();
    assert!(find(&[&linked], None).is_some_and(|p| p.ends_with("libclang-14.so.1")));

    // LIBCLANG_PATH is the only place looked at when set, as for bindgen: a directory or a file.
    let good = tmp.path().join("good-libclang.so");
    assert_eq!(
        find(&[&empty], Some(&good)),
        Some(good.join("libclang.so").to_str().unwrap().to_string())
    );
    assert_eq!(find(&[&good], Some(&empty)), None);
    let file = good.join("libclang.so");
    assert_eq!(
        find(&[&empty], Some(&file)),
        Some(file.to_str().unwrap().to_string())
    );
    assert_eq!(find(&[&good], Some(&cpp.join("libclang-cpp.so.14"))), None);
}

#[test]
fn without_libclang_and_without_installing_setup_says_what_to_install_in_one_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    let cpp = tmp.path().join("cpp");
    std::fs::create_dir_all(&cpp).unwrap();
    elf64(&cpp.join("libclang-cpp.so.14"));
    let o = setup(&[], &[&cpp], None);
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("setup: libclang is missing")
            && lines[0].contains("sudo apt-get install libclang-dev")
            && lines[0].ends_with("and re-run"),
        "{err}"
    );
    // A LIBCLANG_PATH that holds none is named.
    let o = setup(&[], &[&cpp], Some(&cpp));
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("LIBCLANG_PATH={}", cpp.display())),
        "{err}"
    );
    // An unknown argument is refused before anything happens.
    let o = setup(&["--frobnicate"], &[&cpp], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown argument `--frobnicate`"));
}
