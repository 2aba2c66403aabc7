#!/usr/bin/env bash
# Runs every test of the workspace (unit, property and end-to-end tests), after the one-time set-up.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root"
cargo build --release --workspace --bins
cargo test --release --workspace --no-fail-fast "$@"
