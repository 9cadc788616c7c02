// Checker evaluations per second (goal >= 10^5/s on the 2-core CI machine): a full check
// (all invariants + per-rank memory) of real configs under several plans.
#include <benchmark/benchmark.h>

#include "checks/checker.h"

using namespace sc;

static void run(benchmark::State& state, const ModelConfig& c, int64_t tp, int64_t ep, int64_t pp, bool memory) {
  ParallelPlan p;
  p.tp = tp;
  p.ep = ep;
  p.pp = pp;
  p.batch = 64;
  p.seq = 103;
  CheckOptions o;
  o.memory = memory;
  for (auto _ : state) {
    CheckResult r = check(c, p, o);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

static void BM_Check235B_Tp8_Fail(benchmark::State& s) { run(s, configs::qwen3_235b_a22b(), 8, 1, 1, true); }
static void BM_Check235B_Tp4_Pass(benchmark::State& s) { run(s, configs::qwen3_235b_a22b(), 4, 1, 1, true); }
static void BM_Check235B_Tp8Ep8(benchmark::State& s) { run(s, configs::qwen3_235b_a22b(), 8, 8, 1, true); }
static void BM_Check235B_Pp8(benchmark::State& s) { run(s, configs::qwen3_235b_a22b(), 1, 1, 8, true); }
static void BM_Check235B_Tp8_NoMemory(benchmark::State& s) { run(s, configs::qwen3_235b_a22b(), 8, 1, 1, false); }
static void BM_Check32B_Tp2(benchmark::State& s) { run(s, configs::qwen3_32b(), 2, 1, 1, true); }
BENCHMARK(BM_Check235B_Tp8_Fail);
BENCHMARK(BM_Check235B_Tp4_Pass);
BENCHMARK(BM_Check235B_Tp8Ep8);
BENCHMARK(BM_Check235B_Pp8);
BENCHMARK(BM_Check235B_Tp8_NoMemory);
BENCHMARK(BM_Check32B_Tp2);
BENCHMARK_MAIN();
