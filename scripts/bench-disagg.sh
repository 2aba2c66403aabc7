#!/usr/bin/env bash
# Disaggregated vs colocated serving at an equal GPU count (docs/disaggregation.md): Llama-3-8B
# on H100 (TP 1, vllm_v1, the calibrated engine model), 8 GPUs as 8 colocated replicas or as
# P prefill + D decode replicas (2+6, 4+4, 6+2; KV over NVLink, one DGX node). For each
# workload and configuration, Poisson arrivals at each rate of the list; the table gives the
# best goodput (completed requests meeting every SLO per second) over the rates, and the
# latencies at that rate.
#
#   long:  total length uniform on [4200, 8200], prompt:output 30 (≈ 4–8k in, 135–265 out)
#   short: total length uniform on [300, 700], prompt:output 1.5 (≈ 180–420 in, 120–280 out)
#
# Then times runs of 1M requests over 16 prefill + 16 decode replicas (short prompts at 600 req/s,
# layerwise; no batches.csv/trace.json/report; requests.csv, timeseries.csv and summary.json are
# written), with vllm_v1's prefix caching off and on (its default): wall seconds and peak RSS
# (/usr/bin/time). The prompts share nothing, so caching finds nothing: the difference is its
# bookkeeping (docs/vllm-v1.md, "Simulation speed").
#
# Then the search: `simulator search` over examples/search/disagg-pd.toml (8 H100s: colocated, or
# every P:D split × both transfer modes) for the long workload and its short-prompt twin, at each
# TPOT p90 limit of SEARCH_TPOTS: one line per configuration (capacity = the highest Poisson rate
# meeting TTFT p90 <= 2 s and the TPOT limit), then the best split against colocated.
#
# Environment: MODE (after_prefill or layerwise, default layerwise), SLO_TTFT (s, default 2),
# SLO_TPOT (s, default 0.012), N (requests per run, default 1500), LONG_RATES (default
# "8 12 16 20 24 28"), SHORT_RATES (default "60 120 180 240 300 360 420"), RATES=0 to skip the
# rate scan, SEARCH=0 to skip the search, SEARCH_TPOTS (default "0.012 0.02 0.05"), MILLION=0 to
# skip the 1M runs, MILLION=only to run only them, PREFIX_CACHING (0: only off, 1: only on;
# default both), SIMULATOR (a simulator binary to time instead of building this checkout's).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mode="${MODE:-layerwise}"
slo_ttft="${SLO_TTFT:-2}"
slo_tpot="${SLO_TPOT:-0.012}"
n="${N:-1500}"
long_rates="${LONG_RATES:-8 12 16 20 24 28}"
short_rates="${SHORT_RATES:-60 120 180 240 300 360 420}"
command -v jq >/dev/null || { echo "bench-disagg: jq is needed" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-disagg: /usr/bin/time is needed (Debian: apt-get install time)" >&2; exit 1; }
if [ -z "${SIMULATOR:-}" ]; then cargo build --release -p simulator --bin simulator --quiet >&2; fi
bin="${SIMULATOR:-${CARGO_TARGET_DIR:-$root/target}/release/simulator}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

pools() { # prefill decode -> config file
  printf '[[cluster.pool]]\nrole = "prefill"\nreplicas = %s\n\n[[cluster.pool]]\nrole = "decode"\nreplicas = %s\n\n[cluster.kv_transfer]\nmode = "%s"\n' "$1" "$2" "$mode" >"$tmp/p$1d$2.toml"
  echo "$tmp/p$1d$2.toml"
}

workload_args() {
  case $1 in
    long) echo "--lengths uniform --min-tokens 4200 --max-tokens 8200 --pd-ratio 30" ;;
    short) echo "--lengths uniform --min-tokens 300 --max-tokens 700 --pd-ratio 1.5" ;;
  esac
}

workloads="long short"
{ [ "${MILLION:-1}" = only ] || [ "${RATES:-1}" = 0 ]; } && workloads=""
[ -n "$workloads" ] && printf '%-6s %-12s %6s %10s %9s %9s %9s %9s\n' workload config qps goodput ttft_p50 ttft_p99 tpot_p50 tpot_p99
for w in $workloads; do
  if [ "$w" = long ]; then rates=$long_rates; else rates=$short_rates; fi
  for c in colocated-8 2P+6D 4P+4D 6P+2D; do
    case $c in
      colocated-8) cfg=(--num-replicas 8) ;;
      *) p=${c%%P*}; d=${c#*+}; d=${d%D}; cfg=(--config "$(pools "$p" "$d")") ;;
    esac
    best=""
    for q in $rates; do
      # shellcheck disable=SC2046
      "$bin" run -q --no-report --no-batches --no-trace --num-requests "$n" --qps "$q" \
        --slo-ttft "$slo_ttft" --slo-tpot "$slo_tpot" $(workload_args "$w") "${cfg[@]}" \
        --out "$tmp/run" >/dev/null
      line=$(jq -r --arg q "$q" '[$q, .slo.goodput_requests_per_s, .latency.ttft_s.p50, .latency.ttft_s.p99, .latency.tpot_s.p50, .latency.tpot_s.p99] | @tsv' "$tmp/run/summary.json")
      g=$(cut -f2 <<<"$line")
      if [ -z "$best" ] || awk -v a="$g" -v b="$(cut -f2 <<<"$best")" 'BEGIN{exit !(a>b)}'; then best=$line; fi
    done
    IFS=$'\t' read -r q g t50 t99 p50 p99 <<<"$best"
    printf '%-6s %-12s %6s %10.2f %9.3f %9.3f %9.4f %9.4f\n' "$w" "$c" "$q" "$g" "$t50" "$t99" "$p50" "$p99"
  done
done
[ -n "$workloads" ] && echo "(goodput: req/s meeting TTFT <= $slo_ttft s and TPOT <= $slo_tpot s; mode $mode; $n requests per run; best over the rates)"

if [ "${SEARCH:-1}" = 1 ] && [ "${MILLION:-1}" != only ]; then
  space=examples/search/disagg-pd.toml
  for w in long short; do
    for t in ${SEARCH_TPOTS:-0.012 0.02 0.05}; do
      sed -e "s/^max_s = 0.012/max_s = $t/" "$space" >"$tmp/$w.toml"
      if [ "$w" = short ]; then
        sed -i -e 's/^min_tokens = 4200/min_tokens = 300/' -e 's/^max_tokens = 8200/max_tokens = 700/' \
          -e 's/^pd_ratio = 30.0/pd_ratio = 1.5/' "$tmp/$w.toml"
      fi
      start=$(date +%s.%N)
      "$bin" search -q --space "$tmp/$w.toml" --out "$tmp/search-$w-$t"
      wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
      echo "search: $w prompts, TTFT p90 <= 2 s, TPOT p90 <= $t s ($wall s wall)"
      printf '  %-16s %-9s %10s %9s %9s %8s %8s\n' deployment status capacity ttft_p90 tpot_p90 busy_P busy_D
      jq -r '.configurations[] | [
          (if .pools then "\(.pools.prefill_replicas)P+\(.pools.decode_replicas)D \(.pools.transfer_mode | sub("after_prefill"; "ap") | sub("layerwise"; "lw"))" else "colocated-\(.replicas)" end),
          .status, (.capacity_qps // 0), (.slo_values_s[0] // 0), (.slo_values_s[1] // 0),
          ((.at_capacity.pools // [])[0].busy_fraction_mean // .at_capacity.busy_fraction // 0),
          ((.at_capacity.pools // [])[1].busy_fraction_mean // .at_capacity.busy_fraction // 0)
        ] | @tsv' "$tmp/search-$w-$t/results.json" |
        while IFS=$'\t' read -r dep st cap t90 p90 bp bd; do
          printf '  %-16s %-9s %10.2f %9.3f %9.4f %8.2f %8.2f\n' "$dep" "$st" "$cap" "$t90" "$p90" "$bp" "$bd"
        done
      jq -r '[.configurations[] | select(.status == "ok" or .status == "not_converged")] as $ok
        | ($ok | map(select(.pools == null)) | max_by(.capacity_qps)) as $c
        | ($ok | map(select(.pools != null)) | max_by(.capacity_qps)) as $d
        | "  best disaggregated \($d.pools.prefill_replicas)P+\($d.pools.decode_replicas)D \($d.pools.transfer_mode): \($d.capacity_qps) req/s; colocated: \($c.capacity_qps // "none") req/s; ratio \(if $c then ($d.capacity_qps / $c.capacity_qps * 100 | round / 100) else "n/a" end)"' \
        "$tmp/search-$w-$t/results.json"
    done
  done
fi

if [ "${MILLION:-1}" != 0 ]; then
  case "${PREFIX_CACHING:-both}" in
    0) settings=off ;;
    1) settings=on ;;
    *) settings="off on" ;;
  esac
  for pc in $settings; do
    caching=()
    [ "$pc" = off ] && caching=(--no-enable-prefix-caching)
    # shellcheck disable=SC2046
    /usr/bin/time -f "%e %M" -o "$tmp/time" "$bin" run -q --no-report --no-batches --no-trace \
      --num-requests 1000000 --qps 600 $(workload_args short) --config "$(pools 16 16)" \
      "${caching[@]}" --out "$tmp/million" >/dev/null
    read -r wall rss <"$tmp/time"
    jq -r --arg w "$wall" --arg rss "$((rss / 1024))" --arg pc "prefix caching $pc" \
      '"1M requests over 16 prefill + 16 decode replicas (\($pc)): \($w) s wall, peak RSS \($rss) MB, \(.requests.completed) completed, \(.simulated_time_s | floor) s simulated"' "$tmp/million/summary.json"
  done
fi
