#!/usr/bin/env bash
# Per-kernel GPU time of one decoder layer, to see where a layer's time goes:
#
#   bash tools/gpu/profile.sh OUT [KERNELS] [MODEL ...]     (after tools/gpu/run.sh OUT build)
#
# Runs `shardcheck bench --trace` (LibTorch's Kineto profiler around the timed layer calls) on
# random weights at each model's real widths (batch 64 x seq 103, bf16) and writes
# OUT/kernels_MODEL.txt: each CUDA kernel's time per layer call, largest first, then the span of a
# call's kernels, the idle time between them and the largest gaps (host work the GPU waited for). With
# WEIGHTS="--model DIR --input DIR/input.safetensors" (one model) it profiles those weights and
# that input instead (e.g. HF's layer 0 as tools/gpu/bench_vs_hf.py saves it under /tmp/sc-gpu-bench).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: tools/gpu/profile.sh OUT [KERNELS] [MODEL ...]}
KERNELS=${2:-best}
shift $(( $# >= 2 ? 2 : 1 ))
MODELS=${*:-qwen3-235b-a22b qwen3-30b-a3b}
BIN=${BUILD:-build-gpu}/shardcheck
REPEATS=10
mkdir -p "$OUT"
for m in $MODELS; do
  trace=/tmp/sc-trace-$m.json
  "$BIN" bench ${WEIGHTS:---config "fixtures/configs/$m/config.json"} --device cuda --dtype bfloat16 --kernels "$KERNELS" \
    --repeats $REPEATS --trace "$trace" > "$OUT/bench_$m.log" 2>&1 || { tail -20 "$OUT/bench_$m.log"; continue; }
  python3 - "$trace" "$m" "$KERNELS" $REPEATS <<'PY' | tee "$OUT/kernels_$m.txt"
import collections, json, sys
path, model, kernels, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ev = [e for e in json.load(open(path))["traceEvents"] if e.get("cat") == "kernel" and e.get("ph") == "X"]
tot, n = collections.Counter(), collections.Counter()
for e in ev:
    tot[e["name"]] += e["dur"]
    n[e["name"]] += 1
all_us = sum(tot.values())
print(f"{model} ({kernels}): GPU kernel time per layer call {all_us / calls / 1e3:.3f} ms ({len(ev) / calls:.0f} kernels)")
for name, us in tot.most_common(22):
    print(f"{us / calls / 1e3:8.3f} ms {n[name] / calls:4.1f}x  {name[:120]}")
# Idle time inside a call: the calls' kernels in launch order, first start to last end, against the
# kernels' own time; and the largest idle gaps between two kernels of one call.
ev.sort(key=lambda e: e["ts"])
per = len(ev) // calls
if per and per * calls == len(ev):
    spans, gaps = [], collections.Counter()
    for c in range(calls):
        ks = ev[c * per:(c + 1) * per]
        spans.append(ks[-1]["ts"] + ks[-1]["dur"] - ks[0]["ts"])
        for a, b in zip(ks, ks[1:]):
            gaps[(a["name"][:50], b["name"][:50])] += b["ts"] - (a["ts"] + a["dur"])
    spans.sort()
    print(f"span of one call's kernels (first start to last end), median {spans[len(spans) // 2] / 1e3:.3f} ms; "
          f"idle inside a call {sum(gaps.values()) / calls / 1e3:.3f} ms; largest gaps:")
    for (a, b), us in gaps.most_common(8):
        print(f"{us / calls / 1e3:8.3f} ms  after {a}  before {b}")
PY
done
