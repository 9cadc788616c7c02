#!/usr/bin/env bash
# Hardening check (CI runs it from .ci/run): the torch-free code (models, checks, reports, CLI, core
# tests) built with clang, AddressSanitizer + UndefinedBehaviorSanitizer (-fno-sanitize-recover=all)
# and libFuzzer, in its own build folder; then every core test (GoogleTest and the fuzz corpus
# replays) and a short libFuzzer run of every target of tests/fuzz on a scratch copy of its corpus.
# Any sanitizer report, leak or fuzz crash fails the script; a crash input is kept under
# $SAN_BUILD_DIR/fuzz-artifacts/<target>/ (add it to fixtures/fuzz/<target>/ once fixed).
#
# Usage: bash tools/sanitize.sh            (env: SAN_BUILD_DIR=build-san, FUZZ_SECONDS=20, JOBS=nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${SAN_BUILD_DIR:-build-san}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
JOBS=${JOBS:-$(nproc)}
CXX_CLANG=${SAN_CXX:-$(command -v clang++ || true)}
if [ -z "$CXX_CLANG" ]; then
  echo "sanitize: clang++ not found (setup.sh installs clang and libclang-rt-14-dev)" >&2
  exit 1
fi
t0=$(date +%s)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX_CLANG" \
  -DSHARDCHECK_WITH_TORCH=OFF -DSHARDCHECK_BUILD_BENCH=OFF -DSHARDCHECK_SANITIZE=ON -DSHARDCHECK_FUZZERS=ON >/dev/null
cmake --build "$BUILD" -j"$JOBS"
t1=$(date +%s)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$BUILD" -L core --output-on-failure -j"$JOBS" --timeout 900
t2=$(date +%s)

status=0
for bin in "$BUILD"/fuzz_*; do
  name=$(basename "$bin")
  target=${name#fuzz_}
  work="$BUILD/fuzz-work/$target"
  art="$BUILD/fuzz-artifacts/$target"
  rm -rf "$work"
  mkdir -p "$work" "$art"
  cp fixtures/fuzz/"$target"/* "$work"/
  if "$bin" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -artifact_prefix="$art/" "$work" \
      >"$BUILD/fuzz-$target.log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$BUILD/fuzz-$target.log")
    echo "sanitize: fuzz_$target: ${runs:-?} executions in ${FUZZ_SECONDS}s, no crash"
  else
    status=1
    echo "sanitize: fuzz_$target FAILED; log $BUILD/fuzz-$target.log, input(s) in $art:" >&2
    ls "$art" >&2
    grep -E "ERROR|runtime error|fuzz check failed|SUMMARY" "$BUILD/fuzz-$target.log" | head -20 >&2
  fi
done
t3=$(date +%s)
echo "sanitize: build $((t1 - t0)) s, core tests $((t2 - t1)) s, fuzzing $((t3 - t2)) s"
exit $status
