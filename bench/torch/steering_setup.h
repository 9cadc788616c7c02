// The model and run set-up shared by the steering benchmarks (steering_capture.cpp,
// steering_sweep.cpp): CPU, fp32, world size 1, seeded random weights of a small Qwen3-MoE shape
// (hidden 128, 8 heads / 2 KV heads of 32, 8 layers, 8 experts top-2, vocab 512).
#pragma once
#include "harness/executor.h"
#include "models/config.h"

namespace steering_bench {

inline sc::ModelConfig bench_config() {
  sc::ModelConfig c = sc::configs::qwen3_30b_a3b();
  c.name = "steer-bench";
  c.hidden_size = 128;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  c.head_dim = 32;
  c.moe_intermediate_size = 64;
  c.intermediate_size = 256;
  c.vocab_size = 512;
  c.num_experts = 8;
  c.num_experts_per_tok = 2;
  c.num_hidden_layers = 8;
  c.mlp_only_layers.clear();
  c.decoder_sparse_step = 1;
  return c;
}

// World size 1 (the single-device path the steering commands take without --tp/--ep/--pp).
inline sc::ParallelPlan one() {
  sc::ParallelPlan p;
  p.dtype = sc::DType::F32;
  return p;
}

inline sc::RunSpec spec() {
  sc::RunSpec s;
  s.dtype = at::kFloat;
  return s;
}

}  // namespace steering_bench
