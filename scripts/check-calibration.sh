#!/usr/bin/env bash
# Refits a small subset of the calibration (two Llama-3.1-8B experiments on H100, three
# coefficients, short stages; about a minute on 2 cores) and fails when the coefficients differ
# from the committed data/calibration/vllm-0.15.1/ci-subset.toml. With --write, writes that file.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release -p simulator --bin simulator >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release/simulator"
committed=data/calibration/vllm-0.15.1/ci-subset.toml
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
start=$(date +%s)
"$bin" calibrate --quiet --measurements data/calibration/vllm-0.15.1-measured.json --device h100 \
  --experiments 16-llama-3-1-8b-tp1-general,26-llama-3-1-8b-tp2-general \
  --start data/calibration/vllm-0.15.1/h100.toml \
  --fit gemm_bandwidth,step_gpu_us,frontend_ms --fit-stage-s 60 --eval-stage-s 60 --max-iters 40 --refine-iters 0 \
  --out "$out/ci-subset.toml"
coefficients() { sed -n '/^\[coefficients\]/,$p' "$1"; }
if [ "${1:-}" = "--write" ]; then
  cp "$out/ci-subset.toml" "$committed"
  echo "check-calibration: wrote $committed ($(( $(date +%s) - start )) s)"
  exit 0
fi
if ! diff <(coefficients "$committed") <(coefficients "$out/ci-subset.toml"); then
  echo "check-calibration: the refitted coefficients differ from $committed (above); if the model changed on purpose, run scripts/calibrate.sh" >&2
  exit 1
fi
echo "check-calibration: refit matches $committed ($(( $(date +%s) - start )) s)"
