#!/usr/bin/env bash
# MoE step times from `predictor predict`, engine model (vLLM V1, shipped calibration) and roofline:
# Mixtral-8x7B TP2 on H100 (h100_dgx) and DeepSeek-V3 (its FP8 checkpoint, W8A8) TP8 EP8 on H200
# (h200_dgx). For decode batches of 1..256 requests at a fixed context (CONTEXT, default 1024
# tokens) it prints one row per batch: the expected distinct experts the batch touches on one GPU,
# E·(1 − (1 − k/E)^T) · (local experts / E), the stage time and its routed-expert part (moe_experts)
# of each backend, and the expert time per request; then one prefill chunk of 128..8192 tokens.
# Markdown tables on stdout (docs/models.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
context="${CONTEXT:-1024}"
cargo build --release -q -p predictor --bin predictor >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release/predictor"

# predict <field> <args...> -> value (ms) of the `total` or `moe_experts` line
ms() { # backend op args...
  local backend=$1 op=$2; shift 2
  "$bin" predict --backend "$backend" "$@" | awk -v op="$op" '$1 == op {print $2}'
}

table() { # title experts top_k ep args...
  local title=$1 e=$2 k=$3 ep=$4; shift 4
  echo
  echo "### $title: decode at context $context"
  echo
  echo "| batch | touched experts/GPU | engine step ms | engine moe_experts ms | engine experts ms/request | roofline step ms | roofline moe_experts ms | roofline experts ms/request |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  for b in 1 2 4 8 16 32 64 128 256; do
    local te tx rt rx touched
    te=$(ms engine total "$@" --decode "$b" --kv "$context")
    tx=$(ms engine moe_experts "$@" --decode "$b" --kv "$context")
    rt=$(ms roofline total "$@" --decode "$b" --kv "$context")
    rx=$(ms roofline moe_experts "$@" --decode "$b" --kv "$context")
    touched=$(awk -v e="$e" -v k="$k" -v t="$b" -v ep="$ep" 'BEGIN {printf "%.2f", e * (1 - (1 - k / e) ^ t) / ep}')
    awk -v b="$b" -v u="$touched" -v te="$te" -v tx="$tx" -v rt="$rt" -v rx="$rx" \
      'BEGIN {printf "| %d | %s | %.3f | %.3f | %.4f | %.3f | %.3f | %.4f |\n", b, u, te, tx, tx / b, rt, rx, rx / b}'
  done
  echo
  echo "### $title: one prefill chunk"
  echo
  echo "| prefill tokens | engine step ms | engine moe_experts ms | roofline step ms | roofline moe_experts ms |"
  echo "|---:|---:|---:|---:|---:|"
  for p in 128 512 2048 8192; do
    printf '| %d | %.3f | %.3f | %.3f | %.3f |\n' "$p" \
      "$(ms engine total "$@" --prefill "$p")" "$(ms engine moe_experts "$@" --prefill "$p")" \
      "$(ms roofline total "$@" --prefill "$p")" "$(ms roofline moe_experts "$@" --prefill "$p")"
  done
}

table "Mixtral-8x7B-v0.1, TP2, H100 (bf16)" 8 2 1 \
  --model mistralai/Mixtral-8x7B-v0.1 --device h100 --node h100_dgx --tp 2
table "DeepSeek-V3, TP8 EP8, H200 (fp8 W8A8)" 256 8 8 \
  --model deepseek-ai/DeepSeek-V3 --device h200 --node h200_dgx --tp 8 --ep 8
