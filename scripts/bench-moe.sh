#!/usr/bin/env bash
# Simulator speed with a mixture-of-experts model: 100k requests (REQUESTS) of Mixtral-8x7B against
# its dense sibling Mistral-7B (same attention and hidden size) at the same layout (TP2 on H100,
# engine model, vllm_v1) and the same workload (Poisson at QPS, default 3 req/s, which both
# sustain; 1,024-token prompts, 256-token outputs). Prints wall seconds, batches simulated and wall
# per batch for each, then
#   moe_wall_ratio=<Mixtral wall / dense wall> moe_per_batch_ratio=<same per simulated batch>
# The issue's bar is a wall ratio of at most 1.3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
qps="${QPS:-3}"
n="${REQUESTS:-100000}"
command -v python3 >/dev/null || { echo "bench-moe: python3 is needed to read summary.json" >&2; exit 1; }
cargo build --release -q -p simulator --bin simulator >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release/simulator"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

run() { # model -> "wall batches"
  local t0 t1
  t0=$(date +%s.%N)
  "$bin" run -q --model "$1" --device h100 --tp 2 --scheduler vllm_v1 --qps "$qps" \
    --prefill-tokens 1024 --decode-tokens 256 --num-requests "$n" --no-batches --no-trace \
    --no-report --out "$tmp/run"
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc -l) $(python3 -c 'import json, sys; print(sum(r["batches"] for r in json.load(open(sys.argv[1]))["replicas"]))' "$tmp/run/summary.json")"
  rm -rf "$tmp/run"
}

printf '%-30s %9s %10s %12s\n' model wall_s batches us_per_batch
read -r dw db < <(run mistralai/Mistral-7B-v0.1)
printf '%-30s %9.2f %10d %12.2f\n' Mistral-7B-v0.1 "$dw" "$db" "$(echo "$dw / $db * 1000000" | bc -l)"
read -r mw mb < <(run mistralai/Mixtral-8x7B-v0.1)
printf '%-30s %9.2f %10d %12.2f\n' Mixtral-8x7B-v0.1 "$mw" "$mb" "$(echo "$mw / $mb * 1000000" | bc -l)"
printf 'moe_wall_ratio=%.3f moe_per_batch_ratio=%.3f\n' "$(echo "$mw / $dw" | bc -l)" \
  "$(echo "($mw / $mb) / ($dw / $db)" | bc -l)"
