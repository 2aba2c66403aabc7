#!/usr/bin/env bash
# Cluster-scale benchmark of `simulator run` (docs/performance.md). One line per case:
#   requests replicas router scheduler backend wall_s cpu_s sim_req_per_s peak_rss_mb
# where sim_req_per_s = requests / wall_s and cpu_s = user + system time (both from
# /usr/bin/time; on a shared machine cpu_s is the steadier figure).
#
# Scenario of every case: Meta-Llama-3-8B on H100 replicas (TP 1), Poisson arrivals,
# 1,024-token prompts and 256-token outputs, 6.25 req/s per replica (400 req/s over 64
# replicas), prefix caching on (vllm_v1's default), requests.csv, timeseries.csv and
# summary.json written (no batches.csv, trace.json or report: see FULL below).
#
# Cases (targets of issue 17 in docs/performance.md):
#   64     1M requests, 64 replicas, lor, vllm_v1
#   1000   1M requests, 1,000 replicas, lor, vllm_v1 (6,250 req/s)
#   single 1M requests on one replica, vllm_v1 and sarathi (6 req/s)
#   10m    10M requests, 64 replicas, lor, vllm_v1 (7 simulated hours; memory flat in requests)
#
# Environment: CASES (default "64 1000 single 10m"), SCALE (multiplies every request count,
# default 1; e.g. 0.1 for a quick look), BACKEND (the execution backend, default roofline: the
# targets were set with it; `engine` is the calibrated engine model, the simulator's default),
# FULL=1 to also write batches.csv and trace.json, SIMULATOR (a binary to time instead of this
# checkout's release build), THREADS (threads per run, `simulator run --threads`; default 1; the
# single-replica cases always use one).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cases="${CASES:-64 1000 single 10m}"
scale="${SCALE:-1}"
backend="${BACKEND:-roofline}"
threads="${THREADS:-1}"
[ -x /usr/bin/time ] || { echo "bench-scale: /usr/bin/time is needed (Debian: apt-get install time)" >&2; exit 1; }
if [ -n "${SIMULATOR:-}" ]; then
  bin="$SIMULATOR"
else
  cargo build --release -p simulator --bin simulator >&2
  bin="${CARGO_TARGET_DIR:-$root/target}/release/simulator"
fi
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
  local t=()
  [ "$threads" != 1 ] && t=(--threads "$threads")
  /usr/bin/time -f "%e %U %S %M" -o "$tmp/time.txt" "$bin" run -q --no-report "${files[@]}" "${t[@]}" \
    --model meta-llama/Meta-Llama-3-8B --device h100 --backend "$backend" \
    --num-replicas "$r" --router "$router" \
    --scheduler "$sched" --qps "$qps" --prefill-tokens 1024 --decode-tokens 256 \
    --num-requests "$n" --out "$tmp/run"
  read -r wall user sys rss < "$tmp/time.txt"
  awk -v n="$n" -v r="$r" -v router="$router" -v sched="$sched" -v be="$backend" \
    -v wall="$wall" -v user="$user" -v sys="$sys" -v rss="$rss" \
    'BEGIN { printf "%9d %8d %-11s %-8s %-8s %8.2f %8.2f %13.0f %11.1f\n", n, r, router, sched, be,
             wall, user + sys, n / (wall + 0.001), rss / 1024 }'
}

printf '%9s %8s %-11s %-8s %-8s %8s %8s %13s %11s\n' requests replicas router scheduler backend \
  wall_s cpu_s sim_req_per_s peak_rss_mb
for c in $cases; do
  case "$c" in
    64) run 1000000 64 lor vllm_v1 400 ;;
    1000) run 1000000 1000 lor vllm_v1 6250 ;;
    single) run 1000000 1 round_robin vllm_v1 6; run 1000000 1 round_robin sarathi 6 ;;
    10m) run 10000000 64 lor vllm_v1 400 ;;
    *) echo "bench-scale: unknown case $c (64, 1000, single, 10m)" >&2; exit 1 ;;
  esac
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
