#!/usr/bin/env bash
# CI, no GPU needed: compiles every NVRTC kernel of the profiler for sm_80, sm_86 and sm_90 (plus sm_90a, what H100/H200 runs) with the
# NVRTC of PyPI's nvidia-cuda-nvrtc wheel (the CUDA 13.0 compiler the GPU machines use), and fails
# on any compile error or missing entry point. The wheel is cached under .deps/ (git-ignored).
#
# Offline: SERVESIM_NVRTC_WHEEL=<path to nvidia_cuda_nvrtc-13.0.88-*.whl> installs from that file.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
version=13.0.88
dir="$root/.deps/nvrtc-$version"
lib="$dir/nvidia/cu13/lib"

if [ ! -f "$lib/libnvrtc.so.13" ]; then
  echo "ci-nvrtc: installing nvidia-cuda-nvrtc==$version into $dir" >&2
  rm -rf "$dir"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir" \
    "${SERVESIM_NVRTC_WHEEL:-nvidia-cuda-nvrtc==$version}"
fi
[ -f "$lib/libnvrtc.so.13" ] || { echo "ci-nvrtc: $lib/libnvrtc.so.13 missing after install" >&2; exit 1; }

cargo build --release -p profiler --bin profiler
out="${CARGO_TARGET_DIR:-$root/target}/nvrtc-check"
rm -rf "$out"
PROFILER_CUDA_LIB_DIRS="$lib" "${CARGO_TARGET_DIR:-$root/target}/release/profiler" compile-kernels \
  --arch sm_80,sm_86,sm_90,sm_90a --out "$out"
