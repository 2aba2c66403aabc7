#!/usr/bin/env bash
# Smoke run of every catalog model: `simulator run` (engine model, vllm_v1) at the smallest layout
# that fits, trying TP 1, 2, 4, 8 on H100 and then on H200 (DeepSeek-V3 needs 8 H200s). A short
# workload (NUM_REQUESTS, default 100, at 2 req/s; 512-token prompts, 128-token outputs). One line
# per model: model, architecture, layout, device, KV blocks per replica, TTFT p50, TPOT p50 and the
# run's wall time; then the total wall time. Exits non-zero if a model fits no layout.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
n="${NUM_REQUESTS:-100}"
command -v python3 >/dev/null || { echo "models-smoke: python3 is needed to read summary.json" >&2; exit 1; }
cargo build --release -q -p simulator --bin simulator >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release/simulator"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN {print a - b}'; }
start=$(now)
failed=0
printf '%-52s %-34s %-10s %-6s %9s %12s %12s %7s\n' model architecture layout device kv_blocks ttft_p50_ms tpot_p50_ms wall_s
for f in data/catalog/models/*/*.toml; do
  model=$(sed -n 's/^name = "\(.*\)"/\1/p' "$f" | head -1)
  arch=$(sed -n 's/^architecture = "\(.*\)"/\1/p' "$f" | head -1)
  done_=""
  for device in h100 h200; do
    for tp in 1 2 4 8; do
      t0=$(now)
      if "$bin" run -q --model "$model" --device "$device" --tp "$tp" --num-requests "$n" --qps 2 \
          --prefill-tokens 512 --decode-tokens 128 --no-batches --no-trace --no-report \
          --out "$tmp/run" >"$tmp/out.txt" 2>"$tmp/err.txt"; then
        wall=$(since "$t0")
        read -r blocks ttft tpot < <(python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))
print(s["replicas"][0]["kv_blocks_total"], s["latency"]["ttft_s"]["p50"] * 1e3, s["latency"]["tpot_s"]["p50"] * 1e3)' "$tmp/run/summary.json")
        printf '%-52s %-34s %-10s %-6s %9d %12.1f %12.2f %7.2f\n' "$model" "${arch:-?}" "TP$tp" "$device" \
          "$blocks" "$ttft" "$tpot" "$wall"
        done_=1
        break 2
      fi
      rm -rf "$tmp/run"
    done
  done
  if [ -z "$done_" ]; then
    echo "$model: no layout fits; last error: $(head -c 400 "$tmp/err.txt")"
    failed=$((failed + 1))
  fi
done
printf 'total wall %.1f s\n' "$(since "$start")"
[ "$failed" = 0 ]
