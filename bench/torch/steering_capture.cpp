// Steering extraction costs on CPU (fp32, world size 1, seeded random weights of the small
// Qwen3-MoE shape of steering_setup.h, shared with steering_sweep.cpp: hidden 128, 8 layers,
// 8 experts top-2, vocab 512).
//   BM_PlainForward          one forward, no captures (baseline)
//   BM_ReadPositionCapture   the same forward capturing every layer at one read position per row
//                            (the extraction's forward): the ratio to the baseline is the capture cost
//   BM_CaptureOverhead       both forwards back to back in each iteration (alternating order): the
//                            capture cost as a median ratio, free of drift between benchmarks
//   BM_ExtractAllLayers      extract(): two forwards per batch capture all layers at once (timed);
//                            the per-layer emulation (one extraction pass per layer, as tools that
//                            hook one layer at a time do) runs untimed beside it: counters
//                            per_layer_s and ratio = per-layer / all-layer time
// Args: batch, seq. Counters: tokens/s.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "harness/executor.h"
#include "steering/extract.h"
#include "bench/torch/steering_setup.h"

namespace {

using steering_bench::bench_config;
using steering_bench::one;
using steering_bench::spec;

void forward_bench(benchmark::State& state, bool capture) {
  const sc::ModelConfig c = bench_config();
  const int64_t B = state.range(0), S = state.range(1);
  const sc::RunInputs in = sc::random_inputs(c, B, S, 7);
  sc::CaptureSpec cap;
  if (capture) {
    cap.all_layers = true;
    cap.positions = at::full({B}, S - 1, at::TensorOptions().dtype(at::kLong));
  }
  auto out = sc::run_sessions(c, one(), spec(), [&](sc::RankSession& s) {
    for (auto _ : state) {
      auto o = s.forward(in, cap);
      benchmark::DoNotOptimize(o.logits.data_ptr());
    }
  });
  if (!sc::all_ok(out)) state.SkipWithError(sc::describe_failures(out).c_str());
  state.counters["tokens/s"] = benchmark::Counter(double(B * S), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_PlainForward(benchmark::State& state) { forward_bench(state, false); }
void BM_ReadPositionCapture(benchmark::State& state) { forward_bench(state, true); }

// The capture cost without drift between two separate benchmarks: each iteration runs a plain
// forward and a capturing forward back to back (order alternating) in one session, both with the
// lm_head at the read position only (BM_PlainForward computes it at every position). Counters:
// overhead_pct = 100 (median over iterations of capture / plain time - 1), and the same from the
// summed times (overhead_sum_pct).
void BM_CaptureOverhead(benchmark::State& state) {
  const sc::ModelConfig c = bench_config();
  const int64_t B = state.range(0), S = state.range(1);
  const sc::RunInputs in = sc::random_inputs(c, B, S, 7);
  // Both heads at the read position only, so the layer captures are the only difference.
  sc::CaptureSpec none, cap;
  none.positions = at::full({B}, S - 1, at::TensorOptions().dtype(at::kLong));
  cap.all_layers = true;
  cap.positions = none.positions;
  std::vector<double> ratios;
  double plain_sum = 0, cap_sum = 0;
  auto out = sc::run_sessions(c, one(), spec(), [&](sc::RankSession& s) {
    auto timed = [&](const sc::CaptureSpec& cs) {
      const auto t0 = std::chrono::steady_clock::now();
      auto o = s.forward(in, cs);
      benchmark::DoNotOptimize(o.logits.data_ptr());
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    timed(none);  // warm-up
    int64_t i = 0;
    for (auto _ : state) {
      double tp, tc;
      if (i++ % 2) {
        tc = timed(cap);
        tp = timed(none);
      } else {
        tp = timed(none);
        tc = timed(cap);
      }
      plain_sum += tp;
      cap_sum += tc;
      ratios.push_back(tc / tp);
    }
  });
  if (!sc::all_ok(out)) state.SkipWithError(sc::describe_failures(out).c_str());
  std::sort(ratios.begin(), ratios.end());
  if (!ratios.empty()) state.counters["overhead_pct"] = 100.0 * (ratios[ratios.size() / 2] - 1.0);
  if (plain_sum > 0) state.counters["overhead_sum_pct"] = 100.0 * (cap_sum / plain_sum - 1.0);
}

std::vector<sc::TokenizedExample> dataset(int64_t n, int64_t S, int64_t vocab) {
  std::vector<sc::TokenizedExample> v;
  for (int64_t i = 0; i < n; ++i) {
    sc::TokenizedExample e;
    for (int64_t t = 0; t < S; ++t) {
      e.positive.push_back(sc::TokenId((i * 31 + t * 7) % vocab));
      e.negative.push_back(sc::TokenId((i * 31 + t * 7 + (t == S - 1 ? 1 : 0)) % vocab));
    }
    e.positive_read = e.negative_read = S - 1;
    v.push_back(e);
  }
  return v;
}

double extract_all_s(const sc::ModelConfig& c, const std::vector<sc::TokenizedExample>& ex, int64_t B) {
  sc::ExtractOptions o;
  o.batch_size = B;
  const auto t0 = std::chrono::steady_clock::now();
  sc::extract(c, one(), spec(), ex, o);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One pass per layer: the same batched forwards, capturing a single layer each time.
double extract_per_layer_s(const sc::ModelConfig& c, const std::vector<sc::TokenizedExample>& ex, int64_t B) {
  const auto t0 = std::chrono::steady_clock::now();
  auto out = sc::run_sessions(c, one(), spec(), [&](sc::RankSession& s) {
    for (int64_t L = 0; L < c.num_hidden_layers; ++L) {
      at::Tensor acc;
      for (size_t b0 = 0; b0 < ex.size(); b0 += size_t(B)) {
        const size_t b1 = std::min(ex.size(), b0 + size_t(B));
        at::Tensor side[2];
        for (int k = 0; k < 2; ++k) {
          std::vector<std::vector<sc::TokenId>> seqs;
          std::vector<int64_t> reads;
          for (size_t i = b0; i < b1; ++i) {
            seqs.push_back(k == 0 ? ex[i].positive : ex[i].negative);
            reads.push_back(k == 0 ? ex[i].positive_read : ex[i].negative_read);
          }
          std::vector<int64_t> pads;
          const sc::RunInputs in = sc::padded_inputs(seqs, 0, &pads);
          for (size_t r = 0; r < reads.size(); ++r) reads[r] += pads[r];
          sc::CaptureSpec cap;
          cap.layers = {L};
          cap.positions = at::tensor(reads, at::TensorOptions().dtype(at::kLong));
          side[k] = s.forward(in, cap).layer_out.at(L).to(at::kDouble);
        }
        const at::Tensor d = (side[0] - side[1]).sum(std::vector<int64_t>{0, 1});
        acc = acc.defined() ? acc + d : d;
      }
      benchmark::DoNotOptimize(acc.data_ptr());
    }
  });
  if (!sc::all_ok(out)) throw std::runtime_error(sc::describe_failures(out));
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BM_ExtractAllLayers(benchmark::State& state) {
  const sc::ModelConfig c = bench_config();
  const int64_t B = state.range(0), S = state.range(1);
  const auto ex = dataset(4 * B, S, c.vocab_size);
  double all = 0, per = 0;
  for (auto _ : state) {
    state.PauseTiming();
    per += extract_per_layer_s(c, ex, B);
    state.ResumeTiming();
    all += extract_all_s(c, ex, B);
  }
  state.counters["per_layer_s"] = per / double(state.iterations());
  state.counters["ratio"] = all > 0 ? per / all : 0;
  state.counters["tokens/s"] =
      benchmark::Counter(double(2 * 4 * B * S), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_PlainForward)->Args({8, 64})->Args({32, 128})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReadPositionCapture)->Args({8, 64})->Args({32, 128})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CaptureOverhead)->Args({8, 64})->Args({32, 128})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(20);
BENCHMARK(BM_ExtractAllLayers)->Args({8, 64})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

BENCHMARK_MAIN();
