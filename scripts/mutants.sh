#!/usr/bin/env bash
# Mutation testing (cargo-mutants) of the core simulator files against the simulator's lib tests
# (docs/reliability.md).
#
#   scripts/mutants.sh [FILE...]          every mutant of these files (default: every core file)
#   scripts/mutants.sh --list-changed [BASE]  print the core files --changed would mutate
#   scripts/mutants.sh --changed [BASE]   only the mutants on lines of core files changed since the
#                                         merge base with BASE (default: main; when HEAD is BASE
#                                         itself, the last commit's change, HEAD^..HEAD); nothing
#                                         changed is success
#
# Environment:
#   MUTANTS_BUDGET_S   wall-clock budget of the whole run, s (default: none); mutants not reached
#                      by then are reported as not tested, which is not a failure
#   MUTANTS_OUT        where cargo-mutants writes its reports (default: target/mutants)
#   MUTANTS_IN_PLACE=1 mutate this tree in place (reuses target/; do not edit files meanwhile)
#
# One job, niced, release profile with incremental builds, only `cargo test --lib` of simulator.
# Exit status: 0 when every mutant tested was caught, unviable or listed in
# mutants/equivalent.txt; 1 when one was missed (or timed out) and is not listed there; 2 on a
# usage or tool error.
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

# --list-changed: print the core files --changed would mutate (no cargo-mutants needed)
list_only=0
if [ "${1:-}" = "--list-changed" ]; then
  list_only=1
  shift
  set -- --changed "$@"
fi

if [ "$list_only" = 0 ] && ! command -v cargo-mutants >/dev/null; then
  echo "mutants: cargo-mutants is missing; install it with: cargo install cargo-mutants --locked" >&2
  exit 2
fi

out="${MUTANTS_OUT:-$root/target/mutants}"
mkdir -p "$out"
files=()
in_diff=()
if [ "${1:-}" = "--changed" ]; then
  base="${2:-main}"
  git rev-parse -q --verify "$base" >/dev/null || base="origin/main"
  mb="$(git merge-base HEAD "$base" 2>/dev/null || true)"
  if [ -z "$mb" ] || [ "$mb" = "$(git rev-parse HEAD)" ]; then
    mb="$(git rev-parse -q --verify HEAD^ || true)"
  fi
  if [ -z "$mb" ]; then
    [ "$list_only" = 1 ] || echo "mutants: nothing to compare HEAD with; nothing to mutate"
    exit 0
  fi
  git diff "$mb" HEAD -- "${CORE_FILES[@]}" >"$out/changed.diff"
  for f in "${CORE_FILES[@]}"; do
    if grep -q "^+++ b/$f$" "$out/changed.diff"; then files+=("$f"); fi
  done
  if [ "$list_only" = 1 ]; then
    [ ${#files[@]} -gt 0 ] && printf '%s\n' "${files[@]}"
    exit 0
  fi
  if [ ${#files[@]} -eq 0 ]; then
    echo "mutants: no core file changed since $(git rev-parse --short "$mb"); nothing to mutate"
    exit 0
  fi
  in_diff=(--in-diff "$out/changed.diff")
  echo "mutants: mutating the lines changed since $(git rev-parse --short "$mb") in: ${files[*]}"
elif [ $# -gt 0 ]; then
  files=("$@")
else
  files=("${CORE_FILES[@]}")
fi

allow="$root/mutants/equivalent.txt"
mode=(-j 1 --copy-target=true)
[ "${MUTANTS_IN_PLACE:-0}" = 1 ] && mode=(--in-place)
limit=()
[ "${MUTANTS_BUDGET_S:-0}" -gt 0 ] && limit=(timeout --signal=INT "$MUTANTS_BUDGET_S")
file_args=()
for f in "${files[@]}"; do file_args+=(-f "$f"); done

# Proptests that fail under a mutant record their seeds in simulator/proptest-regressions/; in
# place, that would leave the mutants' seeds in the tree. Note what is there, restore it after.
regress=simulator/proptest-regressions
before_untracked="$(git ls-files --others --exclude-standard -- "$regress")"
before_modified="$(git diff --name-only -- "$regress")"
restore_regressions() {
  [ "${MUTANTS_IN_PLACE:-0}" = 1 ] || return 0
  git ls-files --others --exclude-standard -- "$regress" | while IFS= read -r f; do
    grep -qxF "$f" <<<"$before_untracked" || rm -f "$f"
  done
  git diff --name-only -- "$regress" | while IFS= read -r f; do
    grep -qxF "$f" <<<"$before_modified" || git checkout -q -- "$f"
  done
}

start=$(date +%s)
set +e
CARGO_INCREMENTAL=1 "${limit[@]}" nice -n 15 cargo mutants "${mode[@]}" -p simulator \
  "${file_args[@]}" "${in_diff[@]}" --profile release --cargo-arg=--lib --baseline skip \
  --timeout 300 --output "$out" --no-shuffle >"$out/run.log" 2>&1
rc=$?
set -e
restore_regressions
tail -n 3 "$out/run.log"
results="$out/mutants.out"
case $rc in
  0|2|3) ;;
  124|130)
    echo "mutants: the ${MUTANTS_BUDGET_S} s budget ended the run; mutants not reached are untested" ;;
  *) echo "mutants: cargo-mutants failed (exit $rc); see $out/run.log" >&2; exit 2 ;;
esac
status=0
caught=$(cat "$results/caught.txt" 2>/dev/null | wc -l)
unviable=$(cat "$results/unviable.txt" 2>/dev/null | wc -l)
while IFS= read -r m; do
  [ -z "$m" ] && continue
  if [ -f "$allow" ] && grep -qxF "$m" <(sed -e 's/ *#.*$//' "$allow"); then
    echo "   equivalent (listed in mutants/equivalent.txt): $m"
  else
    echo "   MISSED: $m"
    status=1
  fi
done < <(cat "$results/missed.txt" "$results/timeout.txt" 2>/dev/null)
echo "mutants: $caught caught, $unviable unviable, in $(( $(date +%s) - start )) s"
exit $status
