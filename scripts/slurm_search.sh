#!/usr/bin/env bash
# Capacity search on a Slurm cluster: a job array with one task per shard (`simulator search
# --shard I/N`), then a merge job that starts once every shard succeeded (docs/search.md).
#
# Usage: scripts/slurm_search.sh SPACE.toml OUT_DIR [SHARDS] [CPUS_PER_SHARD]
#   SHARDS          array tasks [default: 32]
#   CPUS_PER_SHARD  CPUs (and simulator threads) per task [default: 16]
# Environment: SIMULATOR (the binary [default: simulator on PATH]), SBATCH_ARGS (extra sbatch
# options for both jobs, e.g. "--partition=cpu --time=00:30:00").
#
# OUT_DIR must be on a file system every node sees; the shards go to OUT_DIR/shards/I, the logs
# to OUT_DIR/logs and the merged search to OUT_DIR/results (identical to an unsharded search).
set -euo pipefail
usage() { echo "usage: $0 SPACE.toml OUT_DIR [SHARDS] [CPUS_PER_SHARD]" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 4 ] || usage
[ -f "$1" ] || { echo "slurm_search: $1: no such space file" >&2; exit 2; }
space="$(realpath "$1")"
out="$(realpath -m "$2")"
shards="${3:-32}"
cpus="${4:-16}"
[[ "$shards" =~ ^[1-9][0-9]*$ ]] || { echo "slurm_search: SHARDS must be a positive integer, not '$shards'" >&2; exit 2; }
[[ "$cpus" =~ ^[1-9][0-9]*$ ]] || { echo "slurm_search: CPUS_PER_SHARD must be a positive integer, not '$cpus'" >&2; exit 2; }
sim="${SIMULATOR:-simulator}"
command -v sbatch >/dev/null || { echo "slurm_search: sbatch not found (run this on a Slurm login node)" >&2; exit 1; }
read -r -a extra <<< "${SBATCH_ARGS:-}"
mkdir -p "$out/shards" "$out/logs"

# single quotes keep the paths whole in the job scripts; ${SLURM_...} is expanded by each task
array=$(sbatch --parsable "${extra[@]}" --job-name=servesim-search \
  --array="0-$((shards - 1))" --cpus-per-task="$cpus" --output="$out/logs/shard-%a.out" \
  --wrap "'$sim' search --quiet --space '$space' --shard \${SLURM_ARRAY_TASK_ID}/$shards \
--threads \${SLURM_CPUS_PER_TASK} --out '$out/shards/'\${SLURM_ARRAY_TASK_ID}")
array="${array%%;*}"
merge=$(sbatch --parsable "${extra[@]}" --job-name=servesim-merge \
  --dependency="afterok:$array" --output="$out/logs/merge.out" \
  --wrap "'$sim' search merge '$out'/shards/* --out '$out/results'")
echo "submitted array job $array ($shards shards of $cpus CPUs) and merge job ${merge%%;*};" \
  "results in $out/results"
