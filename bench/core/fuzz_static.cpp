// Static fuzz cases per second (issue goal >= 10^5/s on the 2-core CI machine): each static
// property run through the whole rapidcheck runner (generation, property, checker) for 20000
// cases per iteration, and all four together. items_per_second = cases per CPU second; the same
// runs print their wall-clock rate in `shardcheck fuzz --static-only --cases N`.
#include <benchmark/benchmark.h>

#include "checks/fuzz/fuzz.h"

using namespace sc;

static void run(benchmark::State& state, const std::string& only) {
  const std::vector<fuzz::Property> props = fuzz::static_properties();
  fuzz::RunOptions o;
  o.cases = 20000;
  int64_t cases = 0;
  for (auto _ : state) {
    ++o.seed;
    for (const auto& p : props) {
      if (!only.empty() && p.name != only) continue;
      fuzz::PropertyReport r = fuzz::run_property(p, o);
      if (!r.passed) state.SkipWithError((p.name + ": " + r.failure).c_str());
      cases += r.cases;
    }
  }
  state.SetItemsProcessed(cases);
}

static void BM_FuzzStatic_ReplicateKv(benchmark::State& s) { run(s, "replicate-kv-preconditions"); }
static void BM_FuzzStatic_HfAutoKvColumns(benchmark::State& s) { run(s, "hf-auto-kv-columns"); }
static void BM_FuzzStatic_CheckerTotal(benchmark::State& s) { run(s, "checker-total"); }
static void BM_FuzzStatic_MemoryConservation(benchmark::State& s) { run(s, "memory-conservation"); }
static void BM_FuzzStatic_All(benchmark::State& s) { run(s, ""); }
BENCHMARK(BM_FuzzStatic_ReplicateKv)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FuzzStatic_HfAutoKvColumns)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FuzzStatic_CheckerTotal)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FuzzStatic_MemoryConservation)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FuzzStatic_All)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
