#!/usr/bin/env bash
# Capacity-search benchmark: `simulator search` over examples/search/llama2-bench.toml, 128
# configurations (Llama-2-7b-hf and Llama-2-70b-hf; a100 and h100; TP 1, 2, 4, 8; PP 1, 2; vllm,
# sarathi at chunk 512 and 2048, orca; 300 s of Poisson arrivals with Zipf lengths per
# simulation; Vidur's default SLOs). Prints the search's own summary and, last, one line
#   search_wall_s=<S> configurations=<N> simulations=<K> threads=<T>
# Target: under 60 s wall on 2 cores.
#
# Environment: THREADS (default 2), SPACE (default examples/search/llama2-bench.toml), OUT
# (default: a temporary directory, removed afterwards).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
threads="${THREADS:-2}"
space="${SPACE:-examples/search/llama2-bench.toml}"
cargo build --release -p simulator --bin simulator >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release/simulator"
if [ -n "${OUT:-}" ]; then
  out="$OUT"
else
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
start=$(date +%s.%N)
"$bin" search --quiet --threads "$threads" --space "$space" --out "$out"
end=$(date +%s.%N)
read -r n sims < <(python3 - "$out/results.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["configurations"]
print(len(rows), sum(len(r["evaluations"]) for r in rows))
PY
)
col=$(head -1 "$out/results.csv" | tr , '\n' | grep -nx status | cut -d: -f1)
statuses=$(cut -d, -f"$col" "$out/results.csv" | tail -n +2 | sort | uniq -c | tr -s ' ' | tr '\n' ';')
echo "statuses:${statuses}"
echo "best by requests per USD: $(head -1 "$out/best.toml")"
printf 'search_wall_s=%.2f configurations=%s simulations=%s threads=%s\n' \
  "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" "$n" "$sims" "$threads"
