#!/usr/bin/env bash
# Routing comparison (issue 15, part 2): every router on one shared-prefix workload over 8
# replicas, one table row per router (docs/concepts.md#routers).
#
# Workload (defaults): Llama-3-8B on 8 × H100 (TP 1), vllm_v1 with prefix caching, engine backend;
# 6,000 Poisson requests at 180 req/s (round robin serves ≈ 93 % of 200 req/s, so this is near but
# below its saturation); each prompt is one of 64 system prompts of 3,072 tokens, picked with a
# Zipf law (θ = 1: a few hot prompts), then 256 unique tokens; 128 output tokens.
#
# Columns:
#   token_hit     prompt tokens served from the prefix cache / prompt tokens (summary.json)
#   req_hit       requests that reused at least one cached block / requests
#   ttft_p50/p99  time to first token, ms
#   e2e_p99       end-to-end latency, ms
#   req_max/mean  most requests served by one replica / mean per replica (1 = even)
#   req_cv        coefficient of variation of requests per replica (std / mean, population std)
#   pre_max/mean  most prompt tokens computed (not cached) by one replica / mean per replica
#   wall_s        wall time of the run
#   rss_mb        peak resident memory of the run, MB (/usr/bin/time)
#
# Environment: QPS (180), REQUESTS (6000), PREFIXES (64), PREFIX_TOKENS (3072), THETA (1),
# UNIQUE_TOKENS (256), OUTPUT_TOKENS (128), REPLICAS (8), SEED (42), ROUTERS (a space-separated
# list of router[:overlap_weight:load_weight]; default: every router, kv_aware with its default
# weights (16:1) and five other weightings, down to overlap alone, 1:0), EXTRA_ARGS (more
# `simulator run` flags, e.g. "--num-blocks 8000" for caches that cannot hold every prompt),
# SIMULATOR (a simulator binary to time instead of building this checkout's).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
command -v python3 >/dev/null || { echo "bench-routing: python3 is needed" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-routing: /usr/bin/time is needed (Debian: apt-get install time)" >&2; exit 1; }
qps="${QPS:-180}"
requests="${REQUESTS:-6000}"
prefixes="${PREFIXES:-64}"
prefix_tokens="${PREFIX_TOKENS:-3072}"
theta="${THETA:-1}"
unique="${UNIQUE_TOKENS:-256}"
output="${OUTPUT_TOKENS:-128}"
replicas="${REPLICAS:-8}"
seed="${SEED:-42}"
read -r -a extra <<<"${EXTRA_ARGS:-}"
routers="${ROUTERS:-round_robin random lor power_of_two least_kv kv_aware kv_aware:1:1 kv_aware:4:1 kv_aware:64:1 kv_aware:1000:1 kv_aware:1:0}"
if [ -z "${SIMULATOR:-}" ]; then cargo build --release -q -p simulator --bin simulator >&2; fi
bin="${SIMULATOR:-${CARGO_TARGET_DIR:-$root/target}/release/simulator}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "workload: $replicas replicas, $requests requests, Poisson $qps req/s, $prefixes prefixes × $prefix_tokens tokens (zipf θ=$theta) + $unique unique prompt tokens, $output output tokens, seed $seed${EXTRA_ARGS:+, $EXTRA_ARGS}"
printf '%-22s %9s %8s %9s %9s %9s %12s %7s %12s %7s %7s\n' \
  router token_hit req_hit ttft_p50 ttft_p99 e2e_p99 req_max/mean req_cv pre_max/mean wall_s rss_mb
for spec in $routers; do
  IFS=: read -r router overlap load <<<"$spec"
  args=(--router "$router")
  [ -n "${overlap:-}" ] && args+=(--kv-overlap-weight "$overlap")
  [ -n "${load:-}" ] && args+=(--kv-load-weight "$load")
  rm -rf "$tmp/run"
  /usr/bin/time -f "%e %M" -o "$tmp/time" "$bin" run -q --no-report --no-trace --no-batches --seed "$seed" --num-replicas "$replicas" \
    --prefix-groups "$prefixes" --prefix-tokens "$prefix_tokens" --prefix-law zipf \
    --prefix-zipf-theta "$theta" --prefill-tokens "$unique" --decode-tokens "$output" \
    --num-requests "$requests" --qps "$qps" --out "$tmp/run" "${args[@]}" "${extra[@]}"
  read -r wall rss <"$tmp/time"
  python3 - "$tmp/run" "$spec" "$replicas" "$wall" "$rss" <<'EOF'
import csv, json, statistics, sys
out, label, replicas, wall, rss_kb = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
s = json.load(open(f"{out}/summary.json"))
n = [0] * replicas
computed = [0] * replicas
with open(f"{out}/requests.csv") as f:
    for row in csv.DictReader(f):
        r = int(row["replica_id"])
        n[r] += 1
        computed[r] += int(row["computed_prefill_tokens"])
def max_over_mean(v):
    m = sum(v) / len(v)
    return max(v) / m if m else 0.0
mean = sum(n) / len(n)
cv = statistics.pstdev(n) / mean if mean else 0.0
pc, lat = s["prefix_cache"], s["latency"]
print(f"{label:<22} {pc['token_hit_rate']:9.3f} {pc['request_hit_rate']:8.3f} "
      f"{lat['ttft_s']['p50'] * 1e3:9.1f} {lat['ttft_s']['p99'] * 1e3:9.1f} {lat['e2e_s']['p99'] * 1e3:9.1f} "
      f"{max_over_mean(n):12.2f} {cv:7.3f} {max_over_mean(computed):12.2f} {wall:7.2f} {rss_kb / 1024:7.1f}")
EOF
done
