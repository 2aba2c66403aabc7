#!/usr/bin/env bash
# Runs a simulation (by default: the built-in default scenario), after the one-time set-up.
# Arguments go to `simulator run` (see docs/cli.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root"
cargo build --release -p simulator --quiet
exec "${CARGO_TARGET_DIR:-$root/target}/release/simulator" run "$@"
