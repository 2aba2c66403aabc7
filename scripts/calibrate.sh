#!/usr/bin/env bash
# Regenerates the shipped engine-model calibrations from the committed measurements:
#
#   ./scripts/calibrate.sh            # h100 with its leave-one-family-out cross-validation (the
#                                     # same two-step fit once per held-out family, written to
#                                     # h100.cv.{md,csv}), then a100 and l40s from it, then the CI
#                                     # subset: about 9 min on 2 cores
#   ./scripts/calibrate.sh --no-cv    # the same without the cross-validation (about 2.5 min); the
#                                     # committed h100.cv.{md,csv} are then removed, being stale
#
# Writes data/calibration/vllm-0.15.1/{h100,a100,l40s,ci-subset}.toml with their .md/.csv tables
# (docs/calibration.md). Deterministic: the same inputs give the same files.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release -p simulator --bin simulator >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release/simulator"
meas=data/calibration/vllm-0.15.1-measured.json
dir=data/calibration/vllm-0.15.1
cv=(--cross-validate)
case "${1:-}" in
  "") ;;
  --no-cv) cv=() ;;
  *) echo "calibrate.sh: unknown option ${1}; use --no-cv or nothing" >&2; exit 2 ;;
esac

# From the priors: 200 Nelder-Mead iterations over 60-s stages (each at least 8 mean E2E
# latencies), then at most 60 more in which the experiments whose 60-s stages misrepresent their whole
# stages (queues near capacity, cold prefix caches) are simulated whole (--refine-iters).
"$bin" calibrate --measurements "$meas" --device h100 --out "$dir/h100.toml" \
  "${cv[@]}"
# Two or three experiments per GPU: fit the coefficients that move most from H100 (A100's
# experiments include Mixtral, so its MoE kernel efficiency too).
"$bin" calibrate --measurements "$meas" --device a100 --start "$dir/h100.toml" \
  --fit gemm_bandwidth,step_gpu_us,frontend_ms,sampler_filter_bytes_per_logit --out "$dir/a100.toml"
"$bin" calibrate --measurements "$meas" --device l40s --start "$dir/h100.toml" \
  --fit gemm_bandwidth,step_gpu_us,frontend_ms,sampler_filter_bytes_per_logit --out "$dir/l40s.toml"
"$(dirname "$0")/check-calibration.sh" --write
