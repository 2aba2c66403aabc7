#!/usr/bin/env bash
# One-time (idempotent) set-up for building servesim on a fresh Debian machine.
#
#  1. libclang-dev (bindgen, used by the XGBoost bindings), installed with apt when missing;
#  2. the XGBoost 3.4.1 shared library from PyPI's `xgboost-cpu` wheel, unpacked under .deps/;
#  3. .cargo/config.toml (git-ignored), pointing the `xgb` crate at that library and giving every
#     binary an rpath to it, so nothing needs LD_LIBRARY_PATH.
#
# Re-running it is cheap: each step is skipped when already done. Honours SERVESIM_XGB_WHEEL=<path to a
# downloaded wheel> for machines without PyPI access.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
xgb_version=3.4.1
deps="$root/.deps"
xgb_root="$deps/xgboost-cpu-$xgb_version"
xgb_lib="$xgb_root/xgboost/lib"

say() { printf 'setup: %s\n' "$*" >&2; }

if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && ! ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing libclang-dev (needed to build the XGBoost bindings)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev >/dev/null
  else
    say "libclang is missing: install it (Debian/Ubuntu: sudo apt-get install libclang-dev) and re-run"
    exit 1
  fi
fi

if [ ! -f "$xgb_lib/libxgboost.so.3" ]; then
  mkdir -p "$deps/wheels"
  wheel="${SERVESIM_XGB_WHEEL:-}"
  if [ -z "$wheel" ]; then
    wheel="$(ls "$deps"/wheels/xgboost_cpu-"$xgb_version"-*.whl 2>/dev/null | head -n1 || true)"
  fi
  if [ -z "$wheel" ]; then
    say "downloading the xgboost-cpu==$xgb_version wheel from PyPI (5.8 MB)"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
      --platform manylinux_2_28_x86_64 "xgboost-cpu==$xgb_version" -d "$deps/wheels"
    wheel="$(ls "$deps"/wheels/xgboost_cpu-"$xgb_version"-*.whl | head -n1)"
  fi
  rm -rf "$xgb_root"
  mkdir -p "$xgb_root"
  python3 -m zipfile -e "$wheel" "$xgb_root"
  ln -sf libxgboost.so "$xgb_lib/libxgboost.so.3"
  say "XGBoost library ready in $xgb_lib"
fi

mkdir -p .cargo
config=".cargo/config.toml"
want="# written by scripts/setup.sh; do not edit (git-ignored)
[env]
XGBOOST_LIB_DIR = \"$xgb_lib\"

[target.x86_64-unknown-linux-gnu]
rustflags = [\"-C\", \"link-arg=-Wl,-rpath,$xgb_lib\"]
"
if [ ! -f "$config" ] || [ "$(cat "$config")" != "$(printf '%s' "$want")" ]; then
  printf '%s' "$want" > "$config"
  say "wrote $config"
fi
