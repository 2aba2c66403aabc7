#!/usr/bin/env bash
# Cluster-scale benchmark of `simulator run` (docs/performance.md). One line per case:
#   requests replicas router scheduler threads wall_s cpu_s sim_req_per_s peak_rss_mb
# where sim_req_per_s = requests / wall_s and cpu_s = user + system time (both from
# /usr/bin/time; on a shared machine cpu_s is the steadier figure).
#
# Scenario of every case: Meta-Llama-3-8B on H100 replicas (TP 1, roofline), Poisson arrivals,
# 1,024-token prompts and 256-token outputs, 6.25 req/s per replica (400 req/s over 64
# replicas), requests.csv, timeseries.csv and summary.json written (no batches.csv, trace.json
# or report: see the FULL note below).
#
# Cases (targets on 2 cores in docs/performance.md):
#   64     1M requests, 64 replicas, lor, vllm_v1
#   1000   1M requests, 1,000 replicas, lor, vllm_v1 (6,250 req/s)
#   single 1M requests on one replica, vllm_v1 and sarathi (6 req/s)
#   10m    10M requests, 1,000 replicas, lor, vllm_v1
#
# Environment: CASES (default "64 1000 single 10m"), SCALE (multiplies every request count,
# default 1; e.g. 0.1 for a quick look), THREADS (the thread counts of the 64-replica case,
# default "1 2"), FULL=1 to also write batches.csv and trace.json.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cases="${CASES:-64 1000 single 10m}"
scale="${SCALE:-1}"
[ -x /usr/bin/time ] || { echo "bench-scale: /usr/bin/time is needed (Debian: apt-get install time)" >&2; exit 1; }
cargo build --release -p simulator --bin simulator >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release/simulator"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
files=(--no-batches --no-trace)
[ "${FULL:-0}" = 1 ] && files=()

# requests replicas router scheduler qps
run() {
  local n r router sched qps
  n=$(awk -v n="$1" -v s="$scale" 'BEGIN { printf "%d", n * s }')
  r=$2 router=$3 sched=$4 qps=$5
  rm -rf "$tmp/run"
  /usr/bin/time -f "%e %U %S %M" -o "$tmp/time.txt" "$bin" run -q --no-report "${files[@]}" \
    --model meta-llama/Meta-Llama-3-8B --device h100 --num-replicas "$r" --router "$router" \
    --scheduler "$sched" --qps "$qps" --prefill-tokens 1024 --decode-tokens 256 \
    --num-requests "$n" --out "$tmp/run"
  read -r wall user sys rss < "$tmp/time.txt"
  printf '%9d %8d %-11s %-8s %7d %8.2f %8.2f %13.0f %11.1f\n' "$n" "$r" "$router" "$sched" "$th" \
    "$wall" "$(echo "$user + $sys" | bc -l)" "$(echo "$n / ($wall + 0.001)" | bc -l)" \
    "$(echo "$rss / 1024" | bc -l)"
}

printf '%9s %8s %-11s %-8s %7s %8s %8s %13s %11s\n' requests replicas router scheduler threads \
  wall_s cpu_s sim_req_per_s peak_rss_mb
for c in $cases; do
  case "$c" in
    64) for th in $threads_64; do run 1000000 64 lor vllm_v1 400 "$th"; done ;;
    1000) run 1000000 1000 lor vllm_v1 6250 2 ;;
    single) run 1000000 1 round_robin vllm_v1 6 1; run 1000000 1 round_robin sarathi 6 1 ;;
    10m) run 10000000 1000 lor vllm_v1 6250 2 ;;
    *) echo "bench-scale: unknown case $c (64, 1000, single, 10m)" >&2; exit 1 ;;
  esac
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
