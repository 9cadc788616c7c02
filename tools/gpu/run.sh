#!/usr/bin/env bash
# One call of the GPU machine: build with torch 2.x CUDA LibTorch, run the GPU tests and the GPU
# benchmarks (shardcheck vs HF transformers side by side), write the results to OUT.
#
#   bash tools/gpu/run.sh OUT [build|test|bench ...]      (default: build test bench)
#
# Needs: python3 with torch (CUDA) and transformers, cmake, ninja, g++; header-only and static deps
# the machine lacks (gloo headers, nlohmann, CLI11, rapidcheck, GoogleTest, pcre2, utf8proc) come
# from third_party_local/prefix, made here by tools/gpu/make_prefix.sh and carried with the call.
# Results to commit: OUT/gpu_layer.md and OUT/gpu_layer.json -> bench/results/, OUT/tests.log.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
cd "$(dirname "$0")/../.."
OUT=${1:?usage: tools/gpu/run.sh OUT [build|test|bench ...]}
shift
STAGES=${*:-build test bench}
mkdir -p "$OUT"
P=$PWD/third_party_local/prefix
BUILD=${BUILD:-build-gpu}
status=0

if [[ " $STAGES " == *" build "* ]]; then
  TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  export PKG_CONFIG_PATH=$P/lib/x86_64-linux-gnu/pkgconfig
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
  # nvcc for our fused kernels (families/decoder/cuda); without it they are left out of the build.
  export CUDACXX=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
  t0=$(date +%s)
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$P" \
    -DSHARDCHECK_EXTRA_INCLUDE="$P/include" -DSHARDCHECK_BUILD_BENCH=OFF > "$OUT/cmake.log" 2>&1 ||
    { tail -40 "$OUT/cmake.log"; exit 1; }
  grep -E "Fused CUDA kernels|Triton expert GEMMs|CUDA compiler" "$OUT/cmake.log"
  cmake --build "$BUILD" -j"$(nproc)" --target shardcheck sc_tests_torch 2>&1 | tail -60 > "$OUT/build.log"
  if [ "${PIPESTATUS[0]}" != 0 ]; then grep -B2 -A8 "error" "$OUT/build.log" | head -80; exit 1; fi
  echo "build: $(( $(date +%s) - t0 )) s"
fi

if [[ " $STAGES " == *" test "* ]]; then
  # The GPU tests (ctest label gpu: Gpu*), the HF goldens and the steering tests (LibTorch 2.x here).
  "$BUILD/sc_tests_torch" --gtest_filter="${GTEST_FILTER:-Gpu*:Golden*:Qwen3Modules*:Steer*}" 2>&1 | tee "$OUT/tests.log" |
    grep -E "^\[ (gpu|gpu-sim|gpu-steer|golden) |FAILED|PASSED|SKIPPED|Failure|Expected|Which is|actual|error" | head -120
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi

if [[ " $STAGES " == *" bench "* ]]; then
  PYTHONUNBUFFERED=1 python3 tools/gpu/bench_vs_hf.py --bin "$BUILD/shardcheck" --out "$OUT" ${BENCH_ARGS:-} 2>&1 |
    tee "$OUT/bench.log" | tail -40
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi
exit $status
