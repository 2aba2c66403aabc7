#!/usr/bin/env bash
# Simulation speed of the engine model against the plain roofline on the same run: 100k requests
# (Meta-Llama-3-8B, one H100, vllm_v1, Poisson at 12 req/s, 1024-token prompts, 256-token outputs),
# no batches/trace/report. Prints the wall and user CPU seconds of each backend and their ratio.
#
#   ./scripts/bench-engine.sh [REQUESTS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release -p simulator --bin simulator >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release/simulator"
n="${1:-100000}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
declare -A user
for backend in roofline engine; do
  /usr/bin/time -f "%e %U %M" -o "$out/time" "$bin" run --backend "$backend" --num-requests "$n" \
    --qps 12 --no-batches --no-trace --no-report -q --out "$out/$backend"
  read -r wall cpu rss <"$out/time"
  user[$backend]=$cpu
  echo "backend=$backend requests=$n wall_s=$wall user_s=$cpu peak_rss_mb=$((rss / 1024))"
done
awk -v e="${user[engine]}" -v r="${user[roofline]}" 'BEGIN { printf "engine/roofline user-time ratio: %.2f\n", e / r }'
