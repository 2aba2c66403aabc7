#!/usr/bin/env bash
# One-time (idempotent) set-up for building servesim on a fresh Debian/Ubuntu machine with Rust.
#
#  1. a C/C++ toolchain (cc, the C headers, libstdc++ and libgomp: the XGBoost library links them);
#  2. libclang, which bindgen loads to generate the XGBoost bindings: found exactly where bindgen
#     looks (below), else installed: libclang-dev with apt when root, else PyPI's `libclang` wheel
#     unpacked under .deps/ (with gcc's header directory for stddef.h and friends);
#  3. Python 3 with pip, to download the wheels;
#  4. the XGBoost 3.4.1 shared library from PyPI's `xgboost-cpu` wheel, unpacked under .deps/;
#  5. .cargo/config.toml (git-ignored): the XGBoost library directory, an rpath to it for every
#     binary (nothing needs LD_LIBRARY_PATH), and LIBCLANG_PATH when libclang came from the wheel.
#
# Each step is skipped when already done; a step that cannot be done stops the script with one
# sentence saying what to install.
#
#   scripts/setup.sh                 do the set-up
#   scripts/setup.sh --find-libclang print the libclang bindgen would load (exit 1: none), change nothing
#
# Environment:
#   SERVESIM_DEPS_DIR=DIR          where the libraries are unpacked (default: .deps/ here); checkouts
#                                  that share it (and a CARGO_TARGET_DIR) share their builds
#   SERVESIM_XGB_WHEEL=PATH        an xgboost_cpu-3.4.1 wheel downloaded elsewhere (no PyPI access)
#   SERVESIM_LIBCLANG_WHEEL=PATH   a libclang-18.1.1 wheel downloaded elsewhere (no PyPI access)
#   SERVESIM_SETUP_NO_INSTALL=1    install nothing (no apt-get, no download): only check, and say
#                                  what is missing
#   SERVESIM_LIBCLANG_DIRS=D1:D2   search only these directories for libclang instead of the system's
#                                  (tests; LIBCLANG_PATH still wins, as it does for bindgen)
#   LIBCLANG_PATH                  as for bindgen: the only place libclang is looked for
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
deps="${SERVESIM_DEPS_DIR:-$root/.deps}"
mkdir -p "$deps" && deps="$(cd "$deps" && pwd)"
xgb_version=3.4.1
xgb_root="$deps/xgboost-cpu-$xgb_version"
xgb_lib="$xgb_root/xgboost/lib"
clang_version=18.1.1
clang_root="$deps/libclang-$clang_version"
clang_lib="$clang_root/clang/native"
config=".cargo/config.toml"

say() { printf 'setup: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
may_install() { [ "${SERVESIM_SETUP_NO_INSTALL:-0}" != 1 ]; }
can_apt() { may_install && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_updated=0
apt_install() { # packages... ; false when apt-get fails (no network to the package index, ...)
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || return 1
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

# --- libclang, found as clang-sys (bindgen's loader, in its run-time mode) finds it -------------------
# Names: libclang.so, libclang-*.so, libclang.so.*, libclang-*.so.*, but never libclang-cpp (the C++
# library, which does not export the C API); the file must be a 64-bit ELF. Places: LIBCLANG_PATH alone
# (a directory, or a file) when set; else `llvm-config --prefix`/{bin,lib,lib64}, LD_LIBRARY_PATH,
# LIBRARY_PATH, then the directories matching clang-sys's Linux patterns below.
is_elf64() { [ -f "$1" ] && [ -r "$1" ] && [ "$(head -c 5 "$1" 2>/dev/null | od -An -c | tr -d ' \n')" = '177ELF002' ]; }
libclang_in() { # directory -> prints the first usable libclang in it
  local dir=$1 f name
  [ -d "$dir" ] || return 1
  for f in "$dir"/libclang.so "$dir"/libclang-*.so "$dir"/libclang.so.* "$dir"/libclang-*.so.*; do
    name=${f##*/}
    case $name in *-cpp.*|*'*'*) continue ;; esac
    if is_elf64 "$f"; then printf '%s\n' "$f"; return 0; fi
  done
  return 1
}
libclang_search_dirs() {
  if [ -n "${SERVESIM_LIBCLANG_DIRS+set}" ]; then
    tr ':' '\n' <<<"$SERVESIM_LIBCLANG_DIRS"
    return
  fi
  local prefix d
  if prefix="$(llvm-config --prefix 2>/dev/null)"; then
    printf '%s\n' "$prefix/bin" "$prefix/lib" "$prefix/lib64"
  fi
  tr ':' '\n' <<<"${LD_LIBRARY_PATH:-}:${LIBRARY_PATH:-}"
  shopt -s nullglob nocaseglob
  for d in /usr/local/llvm*/lib* /usr/local/lib*/*/* /usr/local/lib*/* /usr/local/lib* \
    /usr/lib*/*/* /usr/lib*/* /usr/lib*; do
    [ -d "$d" ] && printf '%s\n' "$d"
  done
  shopt -u nullglob nocaseglob
}
find_libclang() {
  local d
  if [ -n "${LIBCLANG_PATH:-}" ]; then
    if [ -f "$LIBCLANG_PATH" ]; then
      case ${LIBCLANG_PATH##*/} in
        *-cpp.*) return 1 ;;
        libclang.so | libclang-*.so | libclang.so.* | libclang-*.so.*)
          is_elf64 "$LIBCLANG_PATH" && printf '%s\n' "$LIBCLANG_PATH" && return 0 ;;
      esac
      return 1
    fi
    libclang_in "$LIBCLANG_PATH"
    return
  fi
  while IFS= read -r d; do
    [ -n "$d" ] && libclang_in "$d" && return 0
  done < <(libclang_search_dirs)
  return 1
}

if [ "${1:-}" = --find-libclang ]; then
  find_libclang
  exit
fi
[ $# -eq 0 ] || die "unknown argument \`$1\`: run scripts/setup.sh with no argument (or --find-libclang)"

# --- 1. C/C++ toolchain ---------------------------------------------------------------------------
toolchain_ok() {
  local tmp rc=0
  tmp="$(mktemp -d)"
  printf '#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\nint main(void) { return 0; }\n' >"$tmp/t.c"
  cc "$tmp/t.c" -o "$tmp/t" -lstdc++ -lgomp >/dev/null 2>&1 || rc=1
  rm -rf "$tmp"
  return $rc
}
command -v cargo >/dev/null || die "cargo is missing: install Rust (https://rustup.rs) and re-run"
if ! toolchain_ok; then
  if can_apt; then
    say "installing a C/C++ toolchain with apt-get (g++: cc, libc headers, libstdc++, libgomp)"
    apt_install g++ || die "apt-get could not install g++ (no access to the package index?): install a C/C++ toolchain (Debian/Ubuntu: apt-get install g++) and re-run"
  fi
  toolchain_ok || die "a C/C++ toolchain is missing (cc with the C headers, libstdc++ and libgomp): install it (Debian/Ubuntu: sudo apt-get install g++) and re-run"
fi

# --- 3. Python 3 with pip, only when step 2 or 4 must download a wheel (helpers) --------------------
python_ok() { command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; }
need_python() { # why
  python_ok && return 0
  if can_apt; then
    say "installing python3 and pip with apt-get ($1)"
    apt_install python3 python3-pip || true
  fi
  python_ok || die "Python 3 with pip is missing ($1): install it (Debian/Ubuntu: sudo apt-get install python3-pip) and re-run"
}
unzip_wheel() { # wheel dir
  if command -v python3 >/dev/null; then
    python3 -m zipfile -e "$1" "$2"
  elif command -v unzip >/dev/null; then
    unzip -q -o "$1" -d "$2"
  else
    die "neither python3 nor unzip is available to unpack $1: install one (Debian/Ubuntu: sudo apt-get install unzip) and re-run"
  fi
}
pypi_wheel() { # requirement glob env_var platform... -> prints the wheel's path
  local req=$1 glob=$2 var=$3 wheel
  shift 3
  wheel="${!var:-}"
  if [ -n "$wheel" ]; then
    [ -f "$wheel" ] || die "$var=$wheel: no such file"
    printf '%s\n' "$wheel"
    return
  fi
  wheel="$(ls "$deps"/wheels/$glob 2>/dev/null | head -n1 || true)"
  if [ -z "$wheel" ]; then
    may_install || die "$req is not downloaded and SERVESIM_SETUP_NO_INSTALL=1: download its wheel and re-run with $var=/path/to/it"
    need_python "to download $req from PyPI"
    mkdir -p "$deps/wheels"
    say "downloading $req from PyPI"
    local platforms=()
    for p in "$@"; do platforms+=(--platform "$p"); done
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version 3.12 "${platforms[@]}" "$req" -d "$deps/wheels" >"$deps/pip.log" 2>&1 ||
      die "could not download $req from PyPI (no network? pip's messages are in $deps/pip.log): download its wheel elsewhere and re-run with $var=/path/to/it"
    wheel="$(ls "$deps"/wheels/$glob | head -n1)"
  fi
  printf '%s\n' "$wheel"
}

# --- 2. libclang -----------------------------------------------------------------------------------
clang_env=""
found="$(find_libclang || true)"
if [ -n "${LIBCLANG_PATH:-}" ]; then
  [ -n "$found" ] || die "LIBCLANG_PATH=$LIBCLANG_PATH holds no usable libclang (libclang.so, libclang-N.so, libclang.so.N; not libclang-cpp): point it at the directory of one, or unset it, and re-run"
elif [ -z "$found" ]; then
  if [ -z "${SERVESIM_LIBCLANG_DIRS+set}" ] && is_elf64 "$clang_lib/libclang.so"; then
    found="$clang_lib/libclang.so" # PyPI's wheel, unpacked by an earlier run
  elif can_apt; then
    say "installing libclang-dev with apt-get (bindgen needs libclang to build the XGBoost bindings)"
    apt_install libclang-dev || say "apt-get could not install libclang-dev; trying PyPI's libclang wheel"
    found="$(find_libclang || true)"
  fi
  if [ -z "$found" ] && may_install; then
    if ! is_elf64 "$clang_lib/libclang.so"; then
      wheel="$(pypi_wheel "libclang==$clang_version" "libclang-$clang_version-*.whl" SERVESIM_LIBCLANG_WHEEL \
        manylinux2010_x86_64 manylinux2014_x86_64)"
      rm -rf "$clang_root"
      mkdir -p "$clang_root"
      tmp="$(mktemp -d)"
      unzip_wheel "$wheel" "$tmp"
      mv "$tmp"/libclang-"$clang_version".data/platlib/clang "$clang_root/clang"
      rm -rf "$tmp"
      is_elf64 "$clang_lib/libclang.so" || die "$wheel holds no usable clang/native/libclang.so: delete it and re-run"
      say "libclang $clang_version (PyPI's wheel) ready in $clang_lib"
    fi
    found="$clang_lib/libclang.so"
  fi
fi
[ -n "$found" ] || die "libclang is missing (bindgen loads it to build the XGBoost bindings; libclang-cpp is not enough): install it (Debian/Ubuntu: sudo apt-get install libclang-dev) and re-run"
if [ "$found" = "$clang_lib/libclang.so" ]; then
  # The wheel has no compiler headers (stddef.h, stdint.h): bindgen gets gcc's.
  gcc_include="$(cc -print-file-name=include 2>/dev/null || true)"
  [ -f "$gcc_include/stddef.h" ] || die "gcc's header directory (for stddef.h) was not found next to PyPI's libclang: install libclang-dev (Debian/Ubuntu: sudo apt-get install libclang-dev) or gcc, and re-run"
  clang_env="LIBCLANG_PATH = \"$clang_lib\"
BINDGEN_EXTRA_CLANG_ARGS = \"-isystem $gcc_include\"
"
fi

# --- 4. the XGBoost library ------------------------------------------------------------------------
if [ ! -f "$xgb_lib/libxgboost.so.3" ]; then
  wheel="$(pypi_wheel "xgboost-cpu==$xgb_version" "xgboost_cpu-$xgb_version-*.whl" SERVESIM_XGB_WHEEL \
    manylinux_2_28_x86_64)"
  rm -rf "$xgb_root"
  mkdir -p "$xgb_root"
  unzip_wheel "$wheel" "$xgb_root"
  [ -f "$xgb_lib/libxgboost.so" ] || die "$wheel holds no xgboost/lib/libxgboost.so: delete it and re-run"
  ln -sf libxgboost.so "$xgb_lib/libxgboost.so.3"
  say "XGBoost library ready in $xgb_lib"
fi

# --- 5. .cargo/config.toml -------------------------------------------------------------------------
mkdir -p .cargo
want="# written by scripts/setup.sh; do not edit (git-ignored)
[env]
XGBOOST_LIB_DIR = \"$xgb_lib\"
$clang_env
[target.x86_64-unknown-linux-gnu]
rustflags = [\"-C\", \"link-arg=-Wl,-rpath,$xgb_lib\"]
"
if [ ! -f "$config" ] || [ "$(cat "$config")" != "$(printf '%s' "$want")" ]; then
  printf '%s' "$want" >"$config"
  say "wrote $config"
fi
