#!/usr/bin/env bash
# CI: the scale-out drivers of `simulator search` against an unsharded search of
# examples/search/small.toml (8 configurations); every output file must be byte-identical.
#   1. scripts/ray_search.py on a local Ray cluster (`ray start --head`), 3 shards as Ray tasks;
#      a failing shard must stop it with the shard's error;
#   2. scripts/slurm_search.sh, syntax-checked (bash -n) and run against a stand-in `sbatch` that
#      executes the array tasks and the merge job in place.
# Installs Ray from PyPI (RAY_VERSION, default 2.60.0) into a virtual environment under target/
# (git-ignored; reused by later runs). Prints the wall time of each part.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
ray_version="${RAY_VERSION:-2.60.0}"
venv="$root/target/ray-venv"
space="$root/examples/search/small.toml"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(now)
if ! "$venv/bin/python" -c "import ray" 2>/dev/null; then
  python3 -c "import ensurepip, venv" 2>/dev/null \
    || { echo "check-scale-out: python3 with venv is needed (Debian: apt-get install python3-venv)" >&2; exit 1; }
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "ray==$ray_version"
fi
echo "check-scale-out: Ray $("$venv/bin/python" -c 'import ray; print(ray.__version__)') ready in $(since "$t0") s"
cargo build --release -p simulator --bin simulator >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release/simulator"
tmp="$(mktemp -d)"
ray_started=0
cleanup() {
  if [ "$ray_started" = 1 ]; then "$venv/bin/ray" stop --force >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

same() { # reference dir, other dir, label
  local diffs
  diffs=$(diff -rq "$1" "$2" || true)
  if [ -n "$diffs" ]; then
    echo "check-scale-out: $3 differs from the unsharded search:" >&2
    echo "$diffs" >&2
    exit 1
  fi
}

"$bin" search --quiet --threads 2 --space "$space" --out "$tmp/plain"

# 1. Ray
t1=$(now)
export RAY_DISABLE_USAGE_STATS=1
"$venv/bin/ray" start --head --num-cpus 2 --disable-usage-stats >"$tmp/ray-start.log" 2>&1 \
  || { cat "$tmp/ray-start.log" >&2; exit 1; }
ray_started=1
"$venv/bin/python" scripts/ray_search.py --address auto --space "$space" --shards 3 \
  --simulator "$bin" --quiet --out "$tmp/ray"
same "$tmp/plain" "$tmp/ray" "the Ray search (3 shards)"
printf 'seed = 1\n[space]\nmodels = ["no-such-model"]\n' >"$tmp/bad.toml"
if "$venv/bin/python" scripts/ray_search.py --address auto --space "$tmp/bad.toml" --shards 2 \
  --simulator "$bin" --quiet --out "$tmp/bad" 2>"$tmp/bad.err"; then
  echo "check-scale-out: the Ray search of a bad space succeeded" >&2
  exit 1
fi
grep -q "failed" "$tmp/bad.err" || { echo "check-scale-out: no shard error in:" >&2; cat "$tmp/bad.err" >&2; exit 1; }
"$venv/bin/ray" stop --force >/dev/null 2>&1
ray_started=0
echo "check-scale-out: Ray search (local cluster, 3 shards) byte-identical, wall $(since "$t1") s"

# 2. Slurm
t2=$(now)
bash -n scripts/slurm_search.sh
mkdir -p "$tmp/bin"
cat >"$tmp/bin/sbatch" <<'SBATCH'
#!/usr/bin/env bash
# stand-in for sbatch: runs the job (every array task, in order) at once and prints a job id
set -euo pipefail
array="" cpus=1 wrap=""
while [ $# -gt 0 ]; do
  case "$1" in
    --array=*) array="${1#--array=}" ;;
    --cpus-per-task=*) cpus="${1#--cpus-per-task=}" ;;
    --wrap) wrap="$2"; shift ;;
  esac
  shift
done
if [ -n "$array" ]; then
  for i in $(seq "${array%-*}" "${array#*-}"); do
    SLURM_ARRAY_TASK_ID=$i SLURM_CPUS_PER_TASK=$cpus sh -c "$wrap"
  done
else
  sh -c "$wrap"
fi
echo "$RANDOM"
SBATCH
chmod +x "$tmp/bin/sbatch"
PATH="$tmp/bin:$PATH" SIMULATOR="$bin" scripts/slurm_search.sh "$space" "$tmp/slurm" 3 1 >/dev/null
same "$tmp/plain" "$tmp/slurm/results" "the Slurm search (3 array tasks)"
echo "check-scale-out: Slurm script (syntax, stand-in sbatch, 3 shards) byte-identical, wall $(since "$t2") s"
