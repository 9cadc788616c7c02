// Steering evaluation sweep on CPU (fp32, world size 1, seeded random weights of the small
// Qwen3-MoE shape of steering_setup.h, shared with steering_capture.cpp: hidden 128, 8 layers,
// 8 experts top-2, vocab 512).
//   BM_SweepCached   evaluate() with the prefix KV cache (the default; timed): one full forward
//                    per batch, then per layer only the suffix columns through the later layers
//                    and the head. The naive sweep (layers x batches full forwards of
//                    batch x multipliers rows) runs untimed beside it on the same data. Counters:
//                    naive_s, speedup = naive / cached time, work_ratio = naive / cached
//                    token-layers, max_gap = largest |logit difference| gap between the two.
// Args: examples, prefix (columns before the instruction end), suffix (steered columns, the
// assistant header; Qwen3's "<|im_start|>assistant\n<think>\n\n</think>\n\n(" is 9 tokens).
// Every layer is evaluated at multipliers -2..2, batch 8.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>

#include "harness/executor.h"
#include "steering/evaluate.h"
#include "bench/torch/steering_setup.h"

namespace {

using steering_bench::bench_config;
using steering_bench::one;
using steering_bench::spec;

// Prompts of prefix + (i % 5) tokens (so batches are left-padded) followed by a common suffix.
std::vector<sc::EvalExample> prompts(int64_t n, int64_t prefix, int64_t suffix, int64_t vocab) {
  std::vector<sc::EvalExample> v;
  for (int64_t i = 0; i < n; ++i) {
    sc::EvalExample e;
    const int64_t p = prefix + i % 5;
    for (int64_t t = 0; t < p; ++t) e.prompt.push_back(sc::TokenId((i * 31 + t * 7 + 3) % vocab));
    e.instruction_end = p;
    for (int64_t t = 0; t < suffix; ++t) e.prompt.push_back(sc::TokenId((t * 13 + 5) % vocab));
    e.match = 10;
    e.nonmatch = 11;
    v.push_back(e);
  }
  return v;
}

void BM_SweepCached(benchmark::State& state) {
  const sc::ModelConfig c = bench_config();
  const auto ex = prompts(state.range(0), state.range(1), state.range(2), c.vocab_size);
  std::map<int64_t, at::Tensor> vecs;
  for (int64_t L = 0; L < c.num_hidden_layers; ++L)
    vecs[L] = at::linspace(-0.5, 0.5, c.hidden_size, at::kDouble) * double(L + 1);
  sc::EvalOptions o;
  o.batch_size = 8;
  double cached_s = 0, naive_s = 0, gap = 0, ratio = 0;
  for (auto _ : state) {
    state.PauseTiming();
    o.cached = false;
    const sc::EvalResult naive = sc::evaluate(c, one(), spec(), ex, vecs, o);
    naive_s += naive.seconds;
    o.cached = true;
    state.ResumeTiming();
    const sc::EvalResult cached = sc::evaluate(c, one(), spec(), ex, vecs, o);
    state.PauseTiming();
    cached_s += cached.seconds;
    ratio = cached.work_ratio();
    for (size_t l = 0; l < cached.layers.size(); ++l)
      for (size_t k = 0; k < cached.layers[l].example_logit_diff.size(); ++k)
        for (size_t i = 0; i < ex.size(); ++i)
          gap = std::max(gap, std::abs(cached.layers[l].example_logit_diff[k][i] - naive.layers[l].example_logit_diff[k][i]));
    state.ResumeTiming();
  }
  state.counters["naive_s"] = naive_s / double(state.iterations());
  state.counters["speedup"] = cached_s > 0 ? naive_s / cached_s : 0;
  state.counters["work_ratio"] = ratio;
  state.counters["max_gap"] = gap;
}

}  // namespace

BENCHMARK(BM_SweepCached)->Args({16, 48, 9})->Args({16, 200, 9})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

BENCHMARK_MAIN();
