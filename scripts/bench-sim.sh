#!/usr/bin/env bash
# Simulator speed benchmark: the standard scenario (Llama-2-7b-hf on one A100, TP 1; vLLM and
# Sarathi-Serve; Poisson arrivals near saturation; 1,024-token prompts, 256-token outputs) at 1k,
# 10k and 100k requests. Prints simulated requests per wall-second and peak RSS (from
# /usr/bin/time -v) per run; the last line is
#   simulated_requests_per_second=<N> peak_rss_mb=<M>
# for the 100k runs (the slower scheduler's rate and the larger RSS).
#
# Environment: QPS (default 4.5, ≈95 % of the roofline's saturation rate of this scenario),
# SIZES (default "1000 10000 100000"), SCHEDULERS (default "vllm sarathi"; an entry
# SCHEDULER:FLAG adds the `simulator run` flag --FLAG, e.g. vllm_v1:no-enable-prefix-caching;
# SIZES=1000000 SCHEDULERS="vllm_v1 vllm_v1:no-enable-prefix-caching sarathi" compares vllm_v1
# with prefix caching, its default, and without, against sarathi), SIMULATOR (a simulator binary
# to time instead of building this checkout's), PROFILES (default
# data/vidur/profiling, committed; empty for the roofline backend), FULL=1 to also time a 100k run that writes batches.csv and
# trace.json (the benchmark runs skip those two large files; requests.csv, timeseries.csv and
# summary.json are written).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
qps="${QPS:-4.5}"
sizes="${SIZES:-1000 10000 100000}"
schedulers="${SCHEDULERS:-vllm sarathi}"
profiles="${PROFILES-data/vidur/profiling}"
[ -x /usr/bin/time ] || { echo "bench-sim: /usr/bin/time is needed (Debian: apt-get install time)" >&2; exit 1; }
if [ -z "${SIMULATOR:-}" ]; then cargo build --release -p simulator --bin simulator >&2; fi
bin="${SIMULATOR:-${CARGO_TARGET_DIR:-$root/target}/release/simulator}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
profile_args=()
if [ -n "$profiles" ]; then
  [ -d "$profiles" ] || { echo "bench-sim: PROFILES=$profiles is not a directory" >&2; exit 1; }
  profile_args=(--profiles "$profiles")
fi

run() { # scheduler[:flag] requests extra-args... -> "wall_s cpu_s rss_kb backend"
  local spec=$1 n=$2; shift 2
  local s=${spec%%:*}
  if [ "$spec" != "$s" ]; then set -- "--${spec#*:}" "$@"; fi
  /usr/bin/time -v -o "$tmp/time.txt" "$bin" run -q --model meta-llama/Llama-2-7b-hf --device a100 \
    --tp 1 --scheduler "$s" --qps "$qps" --prefill-tokens 1024 --decode-tokens 256 \
    --num-requests "$n" "${profile_args[@]}" --out "$tmp/run" "$@"
  local wall user sys rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tmp/time.txt")
  user=$(awk -F': ' '/User time/ {print $2}' "$tmp/time.txt")
  sys=$(awk -F': ' '/System time/ {print $2}' "$tmp/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tmp/time.txt")
  local backend
  backend=$(sed -n 's/.*"kind": "\([a-z]*\)".*/\1/p' "$tmp/run/summary.json" | head -1)
  echo "$wall $(echo "$user + $sys" | bc -l) $rss $backend"
}

w=9
for s in $schedulers; do [ ${#s} -gt $w ] && w=${#s}; done
printf "%-${w}s %9s %8s %8s %14s %14s %8s %s\n" scheduler requests wall_s cpu_s req/s_wall req/s_cpu rss_mb backend
worst_rate=""; worst_rss=0
for n in $sizes; do
  for s in $schedulers; do
    read -r wall cpu rss backend < <(run "$s" "$n" --no-batches --no-trace)
    rate=$(echo "$n / ($wall + 0.0001)" | bc -l)
    crate=$(echo "if ($cpu >= 0.01) $n / $cpu else 0" | bc -l)
    rss_mb=$(echo "$rss / 1024" | bc -l)
    printf "%-${w}s %9d %8.2f %8.2f %14.0f %14.0f %8.1f %s\n" "$s" "$n" "$wall" "$cpu" "$rate" "$crate" "$rss_mb" "$backend"
    if [ "$n" = "100000" ]; then
      if [ -z "$worst_rate" ] || [ "$(echo "$rate < $worst_rate" | bc -l)" = 1 ]; then worst_rate=$rate; fi
      if [ "$(echo "$rss_mb > $worst_rss" | bc -l)" = 1 ]; then worst_rss=$rss_mb; fi
    fi
  done
done
if [ "${FULL:-0}" = 1 ]; then
  read -r wall cpu rss backend < <(run sarathi 100000)
  printf "%-${w}s %9d %8.2f %8.2f %14.0f %14.0f %8.1f %s (all files)\n" sarathi 100000 "$wall" "$cpu" \
    "$(echo "100000 / $wall" | bc -l)" "$(echo "100000 / $cpu" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$backend"
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
if [ -n "$worst_rate" ]; then
  printf 'simulated_requests_per_second=%.0f peak_rss_mb=%.0f\n' "$worst_rate" "$worst_rss"
fi
