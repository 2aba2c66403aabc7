#!/usr/bin/env bash
# The one script to run on a GPU machine (about 3-4 minutes, hard limit 5), next to a profiler binary
# built on a CPU-only machine (`cargo build --release -p profiler`; carry target/release/profiler).
#
#   scripts/gpu-check.sh [OUTPUT_DIR]        (default: $OUT, else ./gpu-check-out)
#
# 1. prints the environment (nvidia-smi, glibc, the NVIDIA pip wheels) and the libraries the
#    profiler resolves;
# 2. `profiler check`: every kernel against its CPU reference, the measured ceilings and the
#    achieved rates of Llama-3-8B operators (check/check.json);
# 3. when PyPI's torch is present: the same attention and GEMM shapes through PyTorch
#    (scaled_dot_product_attention with the FLASH and CUDNN backends, F.linear), with the ratio of
#    our time to torch's (torch_compare.json);
# 4. `profiler all --model Meta-Llama-3-8B --quick`: the quick sweep into OUTPUT_DIR/quick in
#    Vidur's layout, then checks every CSV (rows present, no NaN, no zero where a time is measured);
# 5. prints a summary last (only the end of the output may come back from the GPU machine).
# Everything goes to OUTPUT_DIR (log in OUTPUT_DIR/log). Environment: PROFILER_BIN (the binary),
# PROFILER_PYTHON (the Python with torch and the nvidia-* wheels; default /opt/torch/.venv/bin/python
# when present, else python3), PROFILER_CUDA_LIB_DIRS (extra library directories).
set -uo pipefail
start=$(date +%s)
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-${OUT:-$PWD/gpu-check-out}}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log="$out/log"
: > "$log"
say() { printf '%s\n' "$*" | tee -a "$log"; }
elapsed() { echo $(( $(date +%s) - start )); }
summary=()
note() { summary+=("$*"); say "$*"; }
failed=0

bin="${PROFILER_BIN:-}"
for c in "$bin" "$root/target/release/profiler" "$root/profiler-bin" "$PWD/profiler"; do
  if [ -n "$c" ] && [ -x "$c" ] && [ -f "$c" ]; then bin="$c"; break; fi
done
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  say "gpu-check: no profiler binary: build it with 'cargo build --release -p profiler' and carry target/release/profiler (or set PROFILER_BIN)"
  exit 1
fi
if [ -z "${PROFILER_PYTHON:-}" ]; then
  if [ -x /opt/torch/.venv/bin/python ]; then PROFILER_PYTHON=/opt/torch/.venv/bin/python; else PROFILER_PYTHON=python3; fi
fi
export PROFILER_PYTHON

say "== environment ($(date -u +%FT%TZ))"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm --format=csv 2>&1 || echo "nvidia-smi failed"
  ldd --version 2>&1 | head -1
  "$PROFILER_PYTHON" -m pip show nvidia-cublas nvidia-cuda-nvrtc nvidia-cudnn-cu13 nvidia-nccl-cu13 2>/dev/null | grep -E '^(Name|Version|Location)' || echo "pip show: no nvidia wheels"
  echo "profiler: $bin"; } 2>&1 | tee -a "$log"

# --- 2. check -------------------------------------------------------------------------------------
say "== profiler check ($(elapsed) s)"
timeout 120 "$bin" check --out "$out/check" 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
case $rc in
  0) note "check: all kernels agree with the CPU reference" ;;
  1) failed=1; note "check: SOME KERNELS FAIL (see FAIL lines above)" ;;
  124) failed=1; note "check: timed out after 120 s" ;;
  *) failed=1; note "check: exited $rc" ;;
esac

# --- 3. torch comparison --------------------------------------------------------------------------
say "== PyTorch comparison ($(elapsed) s)"
if "$PROFILER_PYTHON" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
  CHECK_JSON="$out/check/check.json" COMPARE_JSON="$out/torch_compare.json" timeout 90 "$PROFILER_PYTHON" - <<'PY' 2>&1 | tee -a "$log"
import json, os, statistics, torch
import torch.nn.functional as F
dev, bf = "cuda", torch.bfloat16
def timed(fn, reps=20):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); b.synchronize(); ts.append(a.elapsed_time(b))
    return statistics.median(ts)
ours = {}
try:
    for r in json.load(open(os.environ["CHECK_JSON"]))["report"]["rates"]:
        ours[r["name"]] = r["median_ms"]
except Exception as e:
    print("no check.json from the profiler:", e)
res = {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "rows": []}
try:
    from torch.nn.attention import sdpa_kernel, SDPBackend
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
except Exception:
    sdpa_kernel, backends = None, {}
hq, hkv, d = 32, 8, 128
cases = [("attn_prefill q=4096 prefix=0", 1, 4096, 4096, True),
         ("attn_decode b=64 kv=4096", 64, 1, 4097, False),
         ("attn_decode b=256 kv=4096", 256, 1, 4097, False)]
for name, b, sq, skv, causal in cases:
    q = torch.randn(b, hq, sq, d, device=dev, dtype=bf)
    k = torch.randn(b, hkv, skv, d, device=dev, dtype=bf)
    v = torch.randn(b, hkv, skv, d, device=dev, dtype=bf)
    kr, vr = k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1)
    for bname, be in backends.items():
        t = None
        # GQA without copying K/V where this torch supports it (>= 2.5), else K/V repeated per head
        for gqa in (True, False):
            try:
                with sdpa_kernel(be):
                    if gqa:
                        t = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True))
                    else:
                        t = timed(lambda: F.scaled_dot_product_attention(q, kr, vr, is_causal=causal))
                bname_used = bname + ("" if gqa else "(kv repeated)")
                break
            except Exception as e:
                err = str(e).splitlines()[0][:80] if str(e) else type(e).__name__
        if t is None:
            print(f"{name:34s} torch-{bname}: unavailable ({err})"); continue
        bname = bname_used
        mine = ours.get(name)
        ratio = mine / t if mine else float("nan")
        res["rows"].append({"op": name, "torch_backend": bname, "torch_ms": t, "ours_ms": mine, "ours_over_torch": ratio})
        print(f"{name:34s} torch-{bname:5s} {t:9.4f} ms   ours {mine if mine else float('nan'):9.4f} ms   ours/torch {ratio:5.2f}")
m = 4096
for name, n, kk in [("attn_pre_proj", 6144, 4096), ("attn_post_proj", 4096, 4096), ("mlp_up_proj", 28672, 4096), ("mlp_down_proj", 4096, 14336)]:
    x = torch.randn(m, kk, device=dev, dtype=bf); w = torch.randn(n, kk, device=dev, dtype=bf) * 0.05
    t = timed(lambda: F.linear(x, w))
    mine = ours.get(f"{name} M={m}")
    ratio = mine / t if mine else float("nan")
    res["rows"].append({"op": f"{name} M={m}", "torch_backend": "F.linear", "torch_ms": t, "ours_ms": mine, "ours_over_torch": ratio, "torch_tflops": 2*m*n*kk/t/1e9})
    print(f"{name+' M=4096':34s} F.linear     {t:9.4f} ms   ours {mine if mine else float('nan'):9.4f} ms   ours/torch {ratio:5.2f}   torch {2*m*n*kk/t/1e9:6.0f} TFLOP/s")
json.dump(res, open(os.environ["COMPARE_JSON"], "w"), indent=1)
PY
  [ "${PIPESTATUS[0]}" = 0 ] && note "torch: comparison written to torch_compare.json" || note "torch: comparison failed or timed out"
else
  note "torch: not available with CUDA in $PROFILER_PYTHON; comparison skipped"
fi

# --- 4. quick sweep -------------------------------------------------------------------------------
say "== quick sweep, Meta-Llama-3-8B, TP 1,2,4,8 ($(elapsed) s)"
left=$(( 285 - $(elapsed) ))
[ $left -lt 30 ] && left=30
sweep_start=$(date +%s)
timeout $left "$bin" all --model Meta-Llama-3-8B --tp 1,2,4,8 --quick --out "$out/quick" 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || failed=1
note "sweep: exit $rc after $(( $(date +%s) - sweep_start )) s"
"$PROFILER_PYTHON" - "$out/quick" <<'PY' 2>&1 | tee -a "$log"
import csv, math, pathlib, sys
root = pathlib.Path(sys.argv[1]); bad = 0; files = sorted(root.rglob("*.csv"))
if not files:
    print("csv: no CSV files written"); sys.exit(1)
for f in files:
    rows = list(csv.DictReader(open(f)))
    zero_ok = ("attn_input_reshape", "attn_output_reshape")
    problems = 0
    for r in rows:
        prefill = r.get("is_prefill") == "True"
        for k, v in r.items():
            if not k.startswith("time_stats.") or k.endswith(".std"):
                continue
            op = k.split(".")[1]
            if op in zero_ok or (op == "attn_decode" and prefill) or (op == "attn_prefill" and r.get("is_prefill") == "False"):
                continue
            x = float(v)
            if math.isnan(x) or x <= 0:
                problems += 1
    bad += problems
    print(f"csv: {f.relative_to(root)}: {len(rows)} rows, {problems} NaN/zero measured values")
sys.exit(1 if bad else 0)
PY
[ "${PIPESTATUS[0]}" = 0 ] && note "csv: every measured value is finite and positive" || { failed=1; note "csv: PROBLEMS (see csv: lines above)"; }

say "== summary ($(elapsed) s, output in $out)"
for s in "${summary[@]}"; do say "  $s"; done
exit $failed
