#!/usr/bin/env bash
# Mutation testing (cargo-mutants) of the core simulator files, against the simulator's lib tests.
#
#   scripts/mutants.sh [FILE...]          mutate these files (default: every core file)
#   scripts/mutants.sh --changed [BASE]   only the core files changed since the merge base with BASE
#                                         (default: main, else origin/main); nothing to do is success
#
# Environment:
#   MUTANTS_BUDGET_S   stop starting new files after this many seconds (default: none); the file
#                      running when the budget ends is finished, the rest are listed as skipped
#   MUTANTS_OUT        where cargo-mutants writes its reports (default: target/mutants)
#   MUTANTS_IN_PLACE=1 mutate this tree in place (faster: reuses target/; do not edit files meanwhile)
#
# Runs one file at a time, one job, niced, in the release profile with incremental builds.
# Exit status: 0 when every mutant was caught, unviable or listed in mutants/equivalent.txt;
# 1 when a mutant was missed (or timed out) and is not listed there; 2 on a usage or tool error.
# The equivalent mutants (no test can tell them apart) are listed, with reasons, in
# mutants/equivalent.txt, one `file:line: mutation` per line as cargo-mutants names them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

CORE_FILES=(
  simulator/src/scheduler/vllm_v1.rs
  simulator/src/scheduler/sarathi.rs
  simulator/src/kv.rs
  simulator/src/prefix_cache.rs
  simulator/src/engine/mod.rs
  simulator/src/engine/bookkeeping.rs
  simulator/src/metrics/histogram.rs
)

if ! command -v cargo-mutants >/dev/null; then
  echo "mutants: cargo-mutants is missing; install it with: cargo install cargo-mutants --locked" >&2
  exit 2
fi

files=()
if [ "${1:-}" = "--changed" ]; then
  base="${2:-main}"
  git rev-parse -q --verify "$base" >/dev/null || base="origin/main"
  if ! mb="$(git merge-base HEAD "$base" 2>/dev/null)"; then
    echo "mutants: no merge base with $base; nothing to compare against" >&2
    exit 0
  fi
  changed="$(git diff --name-only "$mb" -- 'simulator/src')"
  for f in "${CORE_FILES[@]}"; do
    if grep -qx "$f" <<<"$changed"; then files+=("$f"); fi
  done
  if [ ${#files[@]} -eq 0 ]; then
    echo "mutants: no core file changed since $(git rev-parse --short "$mb"); nothing to mutate"
    exit 0
  fi
elif [ $# -gt 0 ]; then
  files=("$@")
else
  files=("${CORE_FILES[@]}")
fi

out="${MUTANTS_OUT:-$root/target/mutants}"
mkdir -p "$out"
allow="$root/mutants/equivalent.txt"
budget="${MUTANTS_BUDGET_S:-0}"
start=$(date +%s)
mode=(-j 1 --copy-target=true)
[ "${MUTANTS_IN_PLACE:-0}" = 1 ] && mode=(--in-place)
status=0
skipped=()
for f in "${files[@]}"; do
  if [ "$budget" -gt 0 ] && [ $(( $(date +%s) - start )) -ge "$budget" ]; then
    skipped+=("$f")
    continue
  fi
  name="$(echo "$f" | tr '/' '_')"
  echo "== mutants: $f ($(( $(date +%s) - start )) s)"
  set +e
  CARGO_INCREMENTAL=1 nice -n 15 cargo mutants "${mode[@]}" -p simulator -f "$f" \
    --profile release --cargo-arg=--lib --baseline skip --timeout 300 \
    --output "$out/$name" --no-shuffle >"$out/$name.log" 2>&1
  rc=$?
  set -e
  tail -n 3 "$out/$name.log"
  # 0: all caught; 2: some missed; 3: some timed out; anything else is a tool or build error
  case $rc in
    0) ;;
    2|3)
      missed="$out/$name/mutants.out/missed.txt"
      timeout_file="$out/$name/mutants.out/timeout.txt"
      while IFS= read -r m; do
        [ -z "$m" ] && continue
        if [ -f "$allow" ] && grep -qxF "$m" <(sed -e 's/ *#.*//' "$allow"); then
          echo "   equivalent (listed): $m"
        else
          echo "   MISSED: $m"
          status=1
        fi
      done < <(cat "$missed" "$timeout_file" 2>/dev/null)
      ;;
    *) echo "mutants: cargo-mutants failed on $f (exit $rc); see $out/$name.log" >&2; exit 2 ;;
  esac
done
if [ ${#skipped[@]} -gt 0 ]; then
  echo "mutants: time budget of ${budget} s spent; not mutated: ${skipped[*]}"
fi
echo "mutants: done in $(( $(date +%s) - start )) s"
exit $status
