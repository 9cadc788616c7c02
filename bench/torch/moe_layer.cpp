// One Qwen3-MoE decoder layer (attention + sparse MoE block) and the MoE block alone, forward on
// CPU in fp32, world size 1, deterministic random weights.
//   tiny:     hidden 64, 8 / 2 heads, head_dim 32, 8 experts top-2, moe_intermediate 64
//   30b-a3b:  Qwen3-30B-A3B widths (hidden 2048, 32 / 4 heads, head_dim 128, moe_intermediate 768)
//             but only 8 experts (top-2) so the weights fit a small machine.
// Args: batch, seq. Counters: tokens/s.
#include <benchmark/benchmark.h>

#include <ATen/Parallel.h>

#include "families/decoder/model.h"
#include "families/decoder/weights.h"

namespace {

sc::ModelConfig bench_config(bool wide) {
  sc::ModelConfig c = sc::configs::qwen3_30b_a3b();
  if (!wide) {
    c.name = "tiny";
    c.hidden_size = 64;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 2;
    c.head_dim = 32;
    c.moe_intermediate_size = 64;
    c.intermediate_size = 128;
    c.vocab_size = 256;
  }
  c.num_experts = 8;
  c.num_experts_per_tok = 2;
  c.num_hidden_layers = 1;
  c.mlp_only_layers.clear();
  c.decoder_sparse_step = 1;
  return c;
}

struct Setup {
  sc::ModelConfig c;
  sc::ModelWeights w;
  at::Tensor x;
  sc::AttentionContext ctx;
};

Setup make(bool wide, int64_t B, int64_t S) {
  Setup s;
  s.c = bench_config(wide);
  sc::LoadOptions o;
  o.with_embed = 0;
  o.with_head = 0;
  s.w = sc::random_weights(s.c, sc::ParallelPlan{}, 0, 1234, o);
  s.x = at::randn({B, S, s.c.hidden_size}, at::kFloat);
  sc::ForwardInputs in;
  s.ctx = sc::make_attention_context(s.c, in, B, S, at::kFloat, at::kCPU);
  return s;
}

void BM_DecoderLayer(benchmark::State& state, bool wide) {
  at::NoGradGuard ng;
  const int64_t B = state.range(0), S = state.range(1);
  Setup s = make(wide, B, S);
  for (auto _ : state) {
    sc::LayerOutput o = sc::decoder_layer_forward(s.w.layers[0], s.c, s.w.attn_layout, s.x, s.ctx, sc::local_comm());
    benchmark::DoNotOptimize(o.hidden.data_ptr());
  }
  state.counters["tokens/s"] = benchmark::Counter(double(B * S), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = at::get_num_threads();
}

void BM_MoeBlock(benchmark::State& state, bool wide) {
  at::NoGradGuard ng;
  const int64_t B = state.range(0), S = state.range(1);
  Setup s = make(wide, B, S);
  const at::Tensor n = sc::rms_norm(s.x, s.w.layers[0].post_norm, s.c.rms_norm_eps);
  for (auto _ : state) {
    sc::MoeOutput o = sc::moe_forward(s.w.layers[0].moe, s.c, n, sc::local_comm());
    benchmark::DoNotOptimize(o.out.data_ptr());
  }
  state.counters["tokens/s"] = benchmark::Counter(double(B * S), benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK_CAPTURE(BM_DecoderLayer, tiny, false)->Args({1, 32})->Args({4, 128})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DecoderLayer, 30b_a3b_8experts, true)->Args({1, 32})->Args({4, 64})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_MoeBlock, tiny, false)->Args({1, 32})->Args({4, 128})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_MoeBlock, 30b_a3b_8experts, true)->Args({1, 32})->Args({4, 64})->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
