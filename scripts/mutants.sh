#!/usr/bin/env bash
# Mutation testing (cargo-mutants) of the core simulator files against the simulator's lib tests
# (docs/reliability.md).
#
#   scripts/mutants.sh [FILE...]          every mutant of these files (default: every core file)
#   scripts/mutants.sh --list-changed [BASE]  print the core files --changed would mutate
#   scripts/mutants.sh --changed [BASE]   only the mutants on lines of core files changed since the
#                                         merge base with BASE (default: main; when HEAD is BASE
#                                         itself, the last commit's change, HEAD^..HEAD); nothing
#                                         changed, or no mutant on the changed lines, is success
#
# Environment:
#   MUTANTS_BUDGET_S   wall-clock budget of the whole run, s (default: none); mutants not reached
#                      by then are reported as not tested, which is not a failure
#   MUTANTS_OUT        where cargo-mutants writes its reports (default: target/mutants)
#   MUTANTS_IN_PLACE=1 mutate this tree in place (reuses target/; do not edit files meanwhile)
#   MUTANTS_SKIP       lib tests left out of the first pass (default: calibrate::, which takes
#                      about 85 % of the tests' time); every mutant that pass misses is run again
#                      against all the lib tests, so the verdicts are those of the whole suite.
#                      Empty: one pass with every test.
#
# One job, niced, release profile with incremental builds, the simulator crate itself at
# opt-level 0 (its dependencies stay optimised: a rebuild takes ~14 s instead of ~70 s), only
# `cargo test --lib` of simulator.
# Exit status: 0 when every mutant tested was caught (a test failed, or the tests hung past the
# timeout: 60 s in the first pass; in the second, 3 × the unmutated run and at least 120 s, since
# the whole suite's time varies with the machine's load), unviable or listed in
# mutants/equivalent.txt; 1 when one was missed and is not listed there; 2 on a usage or tool
# error.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

CORE_FILES=(
  simulator/src/scheduler/vllm_v1.rs
  simulator/src/scheduler/sarathi.rs
  simulator/src/kv.rs
  simulator/src/prefix_cache.rs
  simulator/src/engine/mod.rs
  simulator/src/engine/decode_run.rs
  simulator/src/engine/parallel.rs
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
# reports of an earlier run must not be read as this one's
rm -rf "$out/mutants.out"
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

# cargo-mutants over the mutants selected by "$@" (extra arguments), reports in $2, tests
# skipping $1 (empty: none)
run_pass() {
  local skip=$1 dir=$2 timeout=$3
  shift 3
  local test_args=() limit=() time_args=(--timeout "$timeout")
  [ -n "$skip" ] && test_args=(-- -- --skip "$skip")
  # auto: the unmutated run (no limit) sets the mutants' limit
  [ "$timeout" = auto ] && time_args=(--timeout-multiplier 3 --minimum-test-timeout 120)
  if [ "${MUTANTS_BUDGET_S:-0}" -gt 0 ]; then
    local left=$((MUTANTS_BUDGET_S - ($(date +%s) - start)))
    if [ "$left" -le 0 ]; then
      echo "mutants: the ${MUTANTS_BUDGET_S} s budget is spent; these mutants are untested"
      : >"$dir/mutants.out/missed.txt" 2>/dev/null || true
      return 0
    fi
    limit=(timeout --signal=INT "$left")
  fi
  set +e
  CARGO_INCREMENTAL=1 "${limit[@]}" nice -n 15 cargo mutants "${mode[@]}" -p simulator \
    "$@" --profile release --cargo-arg=--lib \
    --cargo-arg=--config=profile.release.package.simulator.opt-level=0 \
    --cargo-arg=--config=profile.release.package.simulator.codegen-units=256 \
    --baseline run "${time_args[@]}" --output "$dir" --no-shuffle "${test_args[@]}" >"$dir/run.log" 2>&1
  local rc=$?
  set -e
  tail -n 3 "$dir/run.log"
  case $rc in
    0|2|3) ;;
    124|130)
      echo "mutants: the ${MUTANTS_BUDGET_S} s budget ended the run; mutants not reached are untested" ;;
    *) echo "mutants: cargo-mutants failed (exit $rc); see $dir/run.log" >&2; return 2 ;;
  esac
}

start=$(date +%s)
skip="${MUTANTS_SKIP-calibrate::}"
pass_ok=0
run_pass "$skip" "$out" 60 "${file_args[@]}" "${in_diff[@]}" || pass_ok=$?
restore_regressions
[ "$pass_ok" = 0 ] || exit 2
# Changed lines without a mutant (comments, tests, declarations): cargo-mutants writes no reports.
if [ ! -d "$out/mutants.out" ] && grep -q "No mutants" "$out/run.log"; then
  echo "mutants: no mutant on the lines mutated; nothing to test"
  exit 0
fi
# Second pass: what the first pass missed, against every lib test (a regex of the exact names).
first="$out/mutants.out"
if [ -n "$skip" ] && [ -s "$first/missed.txt" ]; then
  n=$(wc -l <"$first/missed.txt")
  echo "mutants: $n missed without $skip; running them again with every lib test"
  re="^($(sed -e 's/[][\\.^$*+?(){}|#&~-]/\\&/g' "$first/missed.txt" | paste -sd '|'))\$"
  rm -rf "$out/full"
  mkdir -p "$out/full/mutants.out"
  run_pass "" "$out/full" auto --re "$re" "${file_args[@]}" || pass_ok=$?
  restore_regressions
  [ "$pass_ok" = 0 ] || exit 2
  # the second pass's verdicts replace the first's for those mutants (a budget that ran out
  # leaves the rest untested, not missed)
  cat "$out/full/mutants.out/caught.txt" >>"$first/caught.txt" 2>/dev/null || true
  cp "$out/full/mutants.out/missed.txt" "$first/missed.txt" 2>/dev/null || : >"$first/missed.txt"
  cat "$out/full/mutants.out/timeout.txt" >>"$first/timeout.txt" 2>/dev/null || true
fi
results="$out/mutants.out"
status=0
caught=$(cat "$results/caught.txt" 2>/dev/null | wc -l)
hung=$(cat "$results/timeout.txt" 2>/dev/null | wc -l)
unviable=$(cat "$results/unviable.txt" 2>/dev/null | wc -l)
while IFS= read -r m; do
  [ -z "$m" ] && continue
  if [ -f "$allow" ] && grep -qxF "$m" <(sed -e 's/ *#.*$//' "$allow"); then
    echo "   equivalent (listed in mutants/equivalent.txt): $m"
  else
    echo "   MISSED: $m"
    status=1
  fi
done < <(cat "$results/missed.txt" 2>/dev/null)
echo "mutants: $caught caught, $hung caught by a hang (the tests ran past the timeout), $unviable unviable, in $(( $(date +%s) - start )) s"
exit $status
