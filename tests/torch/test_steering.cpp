// Steering: batched all-layer extraction vs a naive per-example per-layer loop, sharded vs
// single-device, evaluation identities, and the export formats. Tiny fixture model (moe-tiny:
// 2 layers, hidden 64, vocab 128) in fp64 with a hand-made token dataset (ids < 128).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "families/family.h"
#include "harness/executor.h"
#include "models/config.h"
#include "families/decoder/comm.h"
#include "ops/kernels.h"
#include "families/decoder/model.h"
#include "families/decoder/weights.h"
#include "models/safetensors.h"
#include "models/tokenizer.h"
#include "steering/evaluate.h"
#include "steering/export.h"
#include "steering/extract.h"
#include "tensor_util.h"

namespace fs = std::filesystem;

namespace sc {
namespace {

const fs::path kTiny = fs::path(SC_FIXTURES) / "models" / "moe-tiny";

ModelConfig tiny_config() { return ModelConfig::from_file((kTiny / "config.json").string()); }

RunSpec fp64_spec() {
  RunSpec s;
  s.checkpoint = kTiny.string();
  s.dtype = at::kDouble;
  return s;
}

ParallelPlan single() {
  ParallelPlan p;
  p.dtype = DType::F64;
  return p;
}

// Contrast pairs of different lengths (so batches are padded), read at the last token; the two
// sides differ in their last ("letter") token and sometimes earlier.
std::vector<TokenizedExample> toy_dataset() {
  std::vector<TokenizedExample> v;
  const std::vector<std::vector<TokenId>> bodies = {
      {3, 17, 42, 8}, {5, 9}, {11, 12, 13, 14, 15, 16, 99}, {7, 77, 70}, {100, 2, 64, 31, 30}, {1}};
  for (size_t i = 0; i < bodies.size(); ++i) {
    TokenizedExample e;
    e.positive = bodies[i];
    e.negative = bodies[i];
    e.positive.push_back(40);  // "(A"
    e.negative.push_back(41);  // "(B"
    if (i % 2) e.negative.push_back(int(50 + i));  // unequal side lengths: read one token earlier
    e.positive_read = int64_t(e.positive.size()) - 1;
    e.negative_read = int64_t(bodies[i].size());
    v.push_back(e);
  }
  return v;
}

// Naive reference: batch 1, no padding, one forward per example, side and layer.
std::map<int64_t, at::Tensor> naive_mean_diff(const ModelConfig& c, const std::vector<TokenizedExample>& ex) {
  std::map<int64_t, at::Tensor> sums;
  auto out = run_sessions(c, single(), fp64_spec(), [&](RankSession& s) {
    for (int64_t L = 0; L < c.num_hidden_layers; ++L) {
      at::Tensor acc = at::zeros({c.hidden_size}, at::kDouble);
      for (const auto& e : ex) {
        auto read = [&](const std::vector<TokenId>& ids, int64_t pos) {
          RunInputs in;
          in.input_ids = at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong).view({1, -1});
          CaptureSpec cap;
          cap.layers = {L};
          return s.forward(in, cap).layer_out.at(L)[0][pos].to(at::kDouble);
        };
        acc += read(e.positive, e.positive_read) - read(e.negative, e.negative_read);
      }
      sums[L] = acc / double(ex.size());
    }
  });
  EXPECT_TRUE(all_ok(out)) << describe_failures(out);
  return sums;
}

double max_abs(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// The model follows HF's numerics, which cast to fp32 inside RMSNorm and the attention softmax even
// for fp64 inputs. A different batch shape (padding, more rows) changes BLAS blocking and so the
// last fp64 bits, and an fp32 cast can then round differently (relative 6e-8). So:
//  * batch 1 (same shapes as the naive loop): the streaming all-layer extraction equals the naive
//    per-example per-layer loop to 1e-12;
//  * batched with left padding: equal to fp32 rounding of the casts (1e-6 of the vector's scale);
//    observed ~2e-9 absolute on moe-tiny.
TEST(SteerExtract, AllLayerStreamingEqualsNaiveLoop) {
  const ModelConfig c = tiny_config();
  const auto ex = toy_dataset();
  const auto naive = naive_mean_diff(c, ex);
  ExtractOptions o;
  o.batch_size = 1;
  const SteeringResult r = extract(c, single(), fp64_spec(), ex, o);
  ASSERT_EQ(r.layers, (std::vector<int64_t>{0, 1}));
  for (int64_t L : r.layers) EXPECT_LT(max_abs(r.mean_diff.at(L), naive.at(L)), 1e-12) << "layer " << L;
}

TEST(SteerExtract, BatchedPaddedEqualsNaiveLoop) {
  const ModelConfig c = tiny_config();
  const auto ex = toy_dataset();
  ExtractOptions o;
  o.batch_size = 4;  // two batches, the second partial
  o.pca = true;
  int64_t calls = 0;
  o.progress = [&](const ExtractProgress& p) {
    ++calls;
    EXPECT_EQ(p.batches_total, 2);
  };
  const SteeringResult r = extract(c, single(), fp64_spec(), ex, o);
  EXPECT_EQ(calls, 2);
  ASSERT_EQ(r.layers, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(r.num_examples, int64_t(ex.size()));
  const auto naive = naive_mean_diff(c, ex);
  for (int64_t L : r.layers) {
    ASSERT_EQ(r.mean_diff.at(L).sizes(), at::IntArrayRef({c.hidden_size}));
    const double scale = naive.at(L).abs().max().item<double>();
    EXPECT_GT(scale, 1e-3);
    EXPECT_LT(max_abs(r.mean_diff.at(L), naive.at(L)), 1e-6 * scale) << "layer " << L;
    // PCA: unit norm, aligned with the mean difference.
    EXPECT_NEAR(r.pca.at(L).norm().item<double>(), 1.0, 1e-12);
    EXPECT_GE(at::dot(r.pca.at(L), r.mean_diff.at(L)).item<double>(), 0.0);
    EXPECT_GT(r.pca_explained.at(L), 0.0);
    EXPECT_LE(r.pca_explained.at(L), 1.0 + 1e-12);
  }
}

TEST(SteerExtract, PcaIsTopSingularVector) {
  // With a single example the difference matrix has rank 1: the PCA direction is d / |d|.
  const ModelConfig c = tiny_config();
  auto ex = toy_dataset();
  ex.resize(1);
  ExtractOptions o;
  o.pca = true;
  const SteeringResult r = extract(c, single(), fp64_spec(), ex, o);
  for (int64_t L : r.layers) {
    const at::Tensor d = r.mean_diff.at(L);
    EXPECT_LT(max_abs(r.pca.at(L), d / d.norm()), 1e-10);
    EXPECT_NEAR(r.pca_explained.at(L), 1.0, 1e-12);
    EXPECT_LT(max_abs(r.direction(L, true), d), 1e-10);
  }
}

TEST(SteerExtract, RejectsBadReadPositionAndEmptyDataset) {
  const ModelConfig c = tiny_config();
  EXPECT_THROW(extract(c, single(), fp64_spec(), {}), std::invalid_argument);
  auto ex = toy_dataset();
  ex[2].negative_read = 50;
  EXPECT_THROW(extract(c, single(), fp64_spec(), ex), std::invalid_argument);
  ex = toy_dataset();
  ex[1].positive[0] = 128;  // vocab is 128
  EXPECT_THROW(extract(c, single(), fp64_spec(), ex), std::invalid_argument);
}

// ---- evaluation ----

std::vector<EvalExample> toy_eval() {
  std::vector<EvalExample> v;
  const std::vector<std::vector<TokenId>> prompts = {{3, 17, 42, 8, 20, 21, 39}, {5, 9, 20, 21, 39}, {7, 77, 70, 20, 21, 39}};
  for (size_t i = 0; i < prompts.size(); ++i) {
    EvalExample e;
    e.prompt = prompts[i];
    e.instruction_end = int64_t(prompts[i].size()) - 3;  // "assistant header" = last 3 tokens
    e.match = i % 2 ? 6 : 5;
    e.nonmatch = i % 2 ? 5 : 6;
    v.push_back(e);
  }
  return v;
}

// Unsteered logit differences from a plain forward (no intervention), one example at a time.
std::vector<double> plain_logit_diffs(const ModelConfig& c, const std::vector<EvalExample>& ex) {
  std::vector<double> d;
  auto out = run_sessions(c, single(), fp64_spec(), [&](RankSession& s) {
    for (const auto& e : ex) {
      RunInputs in;
      in.input_ids = at::tensor(std::vector<int64_t>(e.prompt.begin(), e.prompt.end()), at::kLong).view({1, -1});
      const at::Tensor lg = s.forward(in, CaptureSpec{}).logits[0][-1];
      d.push_back(lg[e.match].item<double>() - lg[e.nonmatch].item<double>());
    }
  });
  EXPECT_TRUE(all_ok(out)) << describe_failures(out);
  return d;
}

TEST(SteerEvaluate, ZeroMultiplierIsUnsteeredAndSignsOppose) {
  const ModelConfig c = tiny_config();
  const SteeringResult r = extract(c, single(), fp64_spec(), toy_dataset());
  const auto ex = toy_eval();
  EvalOptions o;
  o.multipliers = {-1e-3, 0, 1e-3, 4};
  o.batch_size = 2;
  const EvalResult ev = evaluate(c, single(), fp64_spec(), ex, r.mean_diff, o);
  ASSERT_EQ(ev.layers.size(), 2u);
  const auto plain = plain_logit_diffs(c, ex);
  double mean_plain = 0;
  for (double d : plain) mean_plain += d / double(plain.size());
  for (const LayerEval& le : ev.layers) {
    // Padded batch vs unpadded single forwards: equal up to the fp32 casts inside the model (see
    // the extraction tests; observed < 1e-12 here).
    for (size_t i = 0; i < ex.size(); ++i) EXPECT_NEAR(le.example_logit_diff[1][i], plain[i], 1e-8);
    EXPECT_NEAR(le.logit_diff[1], mean_plain, 1e-8);
    EXPECT_NEAR(le.p_match[1], [&] {
      double s = 0;
      for (double d : plain) s += 1 / (1 + std::exp(-d));
      return s / double(plain.size());
    }(), 1e-9);
    // First order: +m and -m move the metric in opposite directions (nonzero derivative).
    const double up = le.logit_diff[2] - le.logit_diff[1], down = le.logit_diff[0] - le.logit_diff[1];
    EXPECT_LT(up * down, 0) << "layer " << le.layer;
    EXPECT_NEAR(up, -down, 1e-3 * std::abs(up) + 1e-12);  // symmetric to second order
    EXPECT_DOUBLE_EQ(le.slope, least_squares_slope(le.multipliers, le.logit_diff));
  }
  EXPECT_TRUE(ev.best_layer == 0 || ev.best_layer == 1);
}

TEST(SteerEvaluate, LastLayerSteeringMatchesHandComputedHead) {
  // Steering the last layer only changes the final norm + lm_head input: logits(h + m v) by hand.
  const ModelConfig c = tiny_config();
  const int64_t L = c.num_hidden_layers - 1;
  const at::Tensor v = at::linspace(-1, 1, c.hidden_size, at::kDouble);
  const double m = 2.5;
  auto ex = toy_eval();
  EvalOptions o;
  o.multipliers = {m};
  o.layers = {L};
  const EvalResult ev = evaluate(c, single(), fp64_spec(), ex, {{L, v}}, o);
  std::vector<double> want;
  auto out = run_sessions(c, single(), fp64_spec(), [&](RankSession& s) {
    for (const auto& e : ex) {
      RunInputs in;
      in.input_ids = at::tensor(std::vector<int64_t>(e.prompt.begin(), e.prompt.end()), at::kLong).view({1, -1});
      CaptureSpec cap;
      cap.layers = {L};
      const at::Tensor h = s.forward(in, cap).layer_out.at(L).slice(1, -1);  // [1, 1, H]
      const at::Tensor lg = final_logits(s.weights(), c, h + m * v, local_comm())[0][0];
      want.push_back(lg[e.match].item<double>() - lg[e.nonmatch].item<double>());
    }
  });
  ASSERT_TRUE(all_ok(out)) << describe_failures(out);
  for (size_t i = 0; i < ex.size(); ++i) EXPECT_NEAR(ev.layers[0].example_logit_diff[0][i], want[i], 1e-10);
}

// ---- prefix KV cache (the cached sweep) ----

// causal_mask with a cache: query i is column past + i; it sees keys <= its column that the
// attention mask keeps. Hand-written 0 / masked pattern for past 2, S 2, one row with 1 pad.
TEST(SteerKvCache, CausalMaskWithPastByHand) {
  const at::Tensor am = at::tensor({0, 1, 1, 1, 1, 1, 1, 1}, at::kLong).view({2, 4});
  const at::Tensor m = causal_mask(am, 2, 2, at::kDouble, at::kCPU, 2);
  ASSERT_EQ(m.sizes(), at::IntArrayRef({2, 1, 2, 4}));
  const int want[2][2][4] = {{{0, 1, 1, 0}, {0, 1, 1, 1}}, {{1, 1, 1, 0}, {1, 1, 1, 1}}};  // 1 = visible
  for (int b = 0; b < 2; ++b)
    for (int q = 0; q < 2; ++q)
      for (int k = 0; k < 4; ++k)
        EXPECT_EQ(m[b][0][q][k].item<double>() == 0.0, want[b][q][k] == 1) << b << ' ' << q << ' ' << k;
  EXPECT_THROW(causal_mask(am, 2, 3, at::kDouble, at::kCPU, 2), std::invalid_argument);  // mask is 4 wide, not 5
}

// Every layer of moe-tiny run on the suffix columns with the prefix's cached keys / values equals
// the full forward at those columns (left-padded batch with generate-style positions, and an
// unpadded one), and the present K/V of the split run is the full run's. Eager attention on the
// CPU in fp64; also the SDPA kernel on CUDA in fp32 when this LibTorch has it (the full unpadded
// forward then takes the is_causal path, the cached one the explicit mask).
void check_suffix_with_past(at::Device dev, at::ScalarType dt, const Kernels& kn, double tol) {
  const ModelConfig c = tiny_config();
  ModelWeights w = load_weights(Checkpoint::open(kTiny.string()), c, single(), 0, [&] {
    LoadOptions o;
    o.dtype = dt;
    o.device = dev;
    return o;
  }());
  prepare_kernels(w, kn);
  const RunInputs in = padded_inputs({{3, 17, 42, 8, 20, 21, 39}, {5, 9, 20, 21, 39}, {7, 77, 70, 20}}, 0);
  const int64_t B = 3, S = in.input_ids.size(1);
  for (bool padded : {true, false}) {
    ForwardInputs full;
    if (padded) {
      full.attention_mask = in.attention_mask.to(dev);
      full.positions_from_mask = true;
    }
    AttentionContext fctx = make_attention_context(c, full, B, S, dt, dev);
    fctx.kernels = w.kernels;
    for (int64_t P : {int64_t(0), int64_t(3), S - 1}) {
      AttentionContext sctx = make_attention_context(c, full, B, S - P, dt, dev, P);
      sctx.kernels = w.kernels;
      at::Tensor x = embed_tokens(w, in.input_ids.to(dev));
      at::Tensor xs = x.narrow(1, P, S - P);
      for (const LayerWeights& lw : w.layers) {
        LayerKv kv_full, kv_split;
        x = decoder_layer_forward(lw, c, w.attn_layout, x, fctx, local_comm(), nullptr, &kv_full).hidden;
        const LayerKv past{kv_full.k.narrow(2, 0, P), kv_full.v.narrow(2, 0, P)};
        xs = decoder_layer_forward(lw, c, w.attn_layout, xs, sctx, local_comm(), &past, &kv_split).hidden;
        EXPECT_LT(max_abs(xs, x.narrow(1, P, S - P)), tol) << "P " << P << " layer " << lw.index << " padded " << padded;
        EXPECT_LT(max_abs(kv_split.k, kv_full.k), tol);
        EXPECT_LT(max_abs(kv_split.v, kv_full.v), tol);
        if (P == 0) continue;
        // Three different copies of the suffix rows (rows copy-major) against one shared cache of B
        // rows equal the same copies against the cache repeated per copy (the plain path).
        const at::Tensor xc = at::cat({xs, xs * 1.25, xs - 0.5}, 0);
        const LayerKv rep{past.k.repeat({3, 1, 1, 1}), past.v.repeat({3, 1, 1, 1})};
        ForwardInputs cin;
        if (padded) {
          cin.attention_mask = full.attention_mask.repeat({3, 1});
          cin.positions_from_mask = true;
        }
        AttentionContext cctx = make_attention_context(c, cin, 3 * B, S - P, dt, dev, P);
        cctx.kernels = w.kernels;
        const at::Tensor shared = decoder_layer_forward(lw, c, w.attn_layout, xc, cctx, local_comm(), &past).hidden;
        const at::Tensor plain = decoder_layer_forward(lw, c, w.attn_layout, xc, cctx, local_comm(), &rep).hidden;
        EXPECT_LT(max_abs(shared, plain), tol) << "shared cache, P " << P << " layer " << lw.index;
        EXPECT_GT(max_abs(shared.narrow(0, B, B), shared.narrow(0, 0, B)), 1e-3);  // the copies differ
        LayerKv present;
        EXPECT_THROW(attention_forward(lw.attn, c, w.attn_layout, xc, cctx, local_comm(), &past, &present),
                     std::invalid_argument);
      }
      // A cache whose length disagrees with the context is refused, not silently misaligned.
      const auto opt = at::TensorOptions().dtype(dt).device(dev);
      const LayerKv wrong{at::zeros({B, 1, P + 1, c.head_dim}, opt), at::zeros({B, 1, P + 1, c.head_dim}, opt)};
      EXPECT_THROW(attention_forward(w.layers[0].attn, c, w.attn_layout, xs, sctx, local_comm(), &wrong),
                   std::invalid_argument);
    }
  }
}

TEST(SteerKvCache, SuffixWithPastEqualsFullForward) { check_suffix_with_past(at::kCPU, at::kDouble, Kernels{}, 1e-12); }

TEST(SteerKvCache, SuffixWithPastEqualsFullForwardSdpaCuda) {
  if (!torch::cuda::is_available() || !sdpa_compiled()) GTEST_SKIP() << "needs CUDA and a LibTorch with SDPA";
  Kernels k;
  k.sdpa = true;
  check_suffix_with_past(at::Device(at::kCUDA, 0), at::kFloat, k, 1e-4);  // SDPA takes fp32 at most
}

// Eval prompts whose instruction ends differ after left padding (batch of 3: suffixes of 5, 3 and
// 6 columns, the last steered from its first token; then one prompt alone), so the split column
// is the batch's smallest and each row is steered from its own end.
std::vector<EvalExample> ragged_eval() {
  auto v = toy_eval();
  v[0].instruction_end = 2;
  v[2].instruction_end = 0;
  EvalExample e;
  e.prompt = {100, 2, 64, 31, 30, 20, 21, 39, 9};
  e.instruction_end = 6;
  e.match = 6;
  e.nonmatch = 5;
  v.push_back(e);
  return v;
}

TEST(SteerEvaluate, CachedSweepEqualsNaiveSweep) {
  const ModelConfig c = tiny_config();
  const SteeringResult r = extract(c, single(), fp64_spec(), toy_dataset());
  for (const auto& ex : {toy_eval(), ragged_eval()}) {
    EvalOptions o;
    o.multipliers = {-3, -0.5, 0, 1, 4};
    o.batch_size = 3;  // ragged: a full batch and a batch of 1
    int64_t steps = 0, total = 0;
    o.progress = [&](int64_t d, int64_t t) { steps = d, total = t; };
    const EvalResult cached = evaluate(c, single(), fp64_spec(), ex, r.mean_diff, o);
    EXPECT_EQ(steps, total);
    o.max_pass_tokens = 1;  // one steered layer per pass (the default runs both in one)
    const EvalResult one_per_pass = evaluate(c, single(), fp64_spec(), ex, r.mean_diff, o);
    EXPECT_EQ(steps, total);
    o.cached = false;
    const EvalResult naive = evaluate(c, single(), fp64_spec(), ex, r.mean_diff, o);
    ASSERT_EQ(cached.layers.size(), 2u);
    EXPECT_TRUE(cached.cached);
    EXPECT_FALSE(naive.cached);
    for (size_t l = 0; l < 2; ++l) {
      for (size_t k = 0; k < o.multipliers.size(); ++k)
        for (size_t i = 0; i < ex.size(); ++i)
          for (const EvalResult* got : {&cached, &one_per_pass})
            EXPECT_NEAR(got->layers[l].example_logit_diff[k][i], naive.layers[l].example_logit_diff[k][i], 1e-10)
                << "layer " << l << " m " << o.multipliers[k] << " example " << i
                << (got == &cached ? " (one pass)" : " (a pass per layer)");
      EXPECT_NEAR(cached.layers[l].slope, naive.layers[l].slope, 1e-10);
      // The steering does something at +4 (else equality would be vacuous).
      EXPECT_GT(std::abs(naive.layers[l].logit_diff[4] - naive.layers[l].logit_diff[2]), 1e-4);
    }
    EXPECT_EQ(cached.naive_token_layers, naive.naive_token_layers);
    EXPECT_EQ(naive.token_layers, naive.naive_token_layers);
    EXPECT_GT(cached.work_ratio(), 1.0);
  }
  // Work counted by hand for toy_eval (one batch of 3, S = 7, instruction ends all at column 4,
  // 2 layers, 5 multipliers): naive 2 layers x 5 x 3 rows x 7 x 2 layers; cached 3 x 7 x 2 (the
  // prefill) + 5 x 3 x 3 suffix columns x (1 layer after layer 0 + 0 after layer 1).
  EvalOptions o;
  o.multipliers = {-3, -0.5, 0, 1, 4};
  o.batch_size = 3;
  const EvalResult ev = evaluate(c, single(), fp64_spec(), toy_eval(), r.mean_diff, o);
  EXPECT_EQ(ev.naive_token_layers, 2 * 5 * 3 * 7 * 2);
  EXPECT_EQ(ev.token_layers, 3 * 7 * 2 + 5 * 3 * 3 * 1);
}

TEST(SteerEvaluate, CachedSweepShardedEqualsSingleDevice) {
  // EP and PP (the steered layer on either stage; micro-batches ignored by the cached passes).
  const ModelConfig c = tiny_config();
  const at::Tensor v = at::linspace(-1, 1, c.hidden_size, at::kDouble);
  EvalOptions o;
  o.multipliers = {-2, 0, 2};
  o.batch_size = 4;
  const auto ex = ragged_eval();
  const std::map<int64_t, at::Tensor> vecs{{0, v}, {1, -v}};
  o.cached = false;
  const EvalResult ref = evaluate(c, single(), fp64_spec(), ex, vecs, o);
  o.cached = true;
  ParallelPlan pp = single();
  pp.pp = 2;
  pp.micro_batches = 2;
  ParallelPlan ep = single();
  ep.ep = 2;
  // Layers listed out of order; one pass for both (groups crossing the stage boundary) and a pass each.
  o.layers = {1, 0};
  for (const ParallelPlan& p : {pp, ep})
    for (int64_t max_pass : {int64_t(65536), int64_t(1)}) {
      o.max_pass_tokens = max_pass;
      const EvalResult got = evaluate(c, p, fp64_spec(), ex, vecs, o);
      ASSERT_EQ(got.layers.size(), 2u);
      for (size_t l = 0; l < 2; ++l) {
        const LayerEval& want = ref.layers[size_t(got.layers[l].layer)];
        ASSERT_EQ(want.layer, got.layers[l].layer);
        for (size_t k = 0; k < o.multipliers.size(); ++k)
          for (size_t i = 0; i < ex.size(); ++i)
            EXPECT_NEAR(got.layers[l].example_logit_diff[k][i], want.example_logit_diff[k][i], 1e-10)
                << p.describe() << " max_pass_tokens " << max_pass;
      }
    }
}

// ---- HF transformers goldens (tools/make_steering_goldens.py) ----

TEST(SteerGoldens, ExtractionAndSweepMatchHfTransformers) {
  const fs::path gf = fs::path(SC_FIXTURES) / "steering" / "moe-tiny.goldens.safetensors";
  if (!fs::exists(gf)) GTEST_SKIP() << gf << " absent (run tools/make_steering_goldens.py)";
  const Checkpoint g = Checkpoint::open(gf.string());
  const ModelConfig c = tiny_config();
  // Extraction: same data, batch 4, left padding, generate-style positions.
  ExtractOptions xo;
  xo.batch_size = std::stoll(g.metadata().at("batch_size"));
  ASSERT_EQ(xo.batch_size, 4);
  const SteeringResult r = extract(c, single(), fp64_spec(), toy_dataset(), xo);
  std::map<int64_t, at::Tensor> golden_vecs;
  for (int64_t L = 0; L < c.num_hidden_layers; ++L) {
    const at::Tensor want = testutil::read_tensor(g, "layers." + std::to_string(L) + ".mean_diff");
    golden_vecs[L] = want;
    const double scale = want.abs().max().item<double>();
    EXPECT_GT(scale, 1e-3);
    // HF (and we) run RMSNorm and the softmax in fp32 even in fp64, so LibTorch versions / BLAS
    // builds differ at fp32 rounding: measured 2.7e-8 relative (LibTorch 1.13 + OpenBLAS) and
    // ~1e-10 (2.11). A wrong layer, position or sign is off by > 1e-2.
    EXPECT_LT(max_abs(r.mean_diff.at(L), want), 1e-6 * scale) << "layer " << L;
  }
  // Evaluation: HF's own vectors, every eval prompt in one padded batch, both sweeps.
  std::vector<double> mults;
  {
    std::stringstream ss(g.metadata().at("multipliers"));
    std::string item;
    while (std::getline(ss, item, ',')) mults.push_back(std::stod(item));
  }
  ASSERT_EQ(mults, (std::vector<double>{-2, -1, 0, 1, 2}));
  const auto ex = toy_eval();
  for (bool cached : {true, false}) {
    EvalOptions o;
    o.multipliers = mults;
    o.batch_size = int64_t(ex.size());
    o.cached = cached;
    const EvalResult ev = evaluate(c, single(), fp64_spec(), ex, golden_vecs, o);
    for (const LayerEval& le : ev.layers)
      for (size_t k = 0; k < mults.size(); ++k) {
        const at::Tensor want =
            testutil::read_tensor(g, "eval.layer" + std::to_string(le.layer) + ".m" + std::to_string(k));
        ASSERT_EQ(want.numel(), int64_t(ex.size()));
        for (size_t i = 0; i < ex.size(); ++i)
          EXPECT_NEAR(le.example_logit_diff[k][i], want[int64_t(i)].item<double>(), 1e-6)  // fp32-internal ops, as above (max 4.5e-8 measured)
              << (cached ? "cached" : "naive") << " layer " << le.layer << " m " << mults[k] << " example " << i;
      }
  }
}

// ---- On a GPU: `steer --device cuda` against HF's own CUDA numerics in bf16 and fp32 ----
// (tools/make_steering_goldens.py --device cuda --dtype D: HF 5.17 with sdpa attention and its
// default experts on the same GPU model; label gpu, skipped without CUDA.) The extraction and both
// sweeps run on cuda:0 (backend nccl, one rank) with each kernel set; HF's vectors steer our sweep,
// so the logit differences compare the evaluation alone.
struct CudaSteerCase {
  at::ScalarType dtype;
  DType plan_dtype;
  const char* file_dtype;
  double min_cosine;    // per layer, our vector vs HF's
  double max_rel;       // per layer, |ours - HF| / |HF|
  double max_diff_gap;  // per example logit difference, relative to HF's largest |logit difference|
};

void check_steer_on_cuda(const CudaSteerCase& cs) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const fs::path gf = fs::path(SC_FIXTURES) / "steering" / ("moe-tiny.cuda-" + std::string(cs.file_dtype) + ".goldens.safetensors");
  ASSERT_TRUE(fs::exists(gf)) << gf << " absent (tools/make_steering_goldens.py --device cuda --dtype " << cs.file_dtype << ")";
  const Checkpoint g = Checkpoint::open(gf.string());
  const ModelConfig c = tiny_config();
  ParallelPlan p = single();
  p.dtype = cs.plan_dtype;
  for (const char* kernels : {"eager", "best"}) {
    SCOPED_TRACE(std::string(cs.file_dtype) + " kernels " + kernels);
    RunSpec spec = fp64_spec();
    spec.dtype = cs.dtype;
    spec.backend = "nccl";
    spec.launch.first_gpu = 0;
    spec.kernels = kernels;
    ExtractOptions xo;
    xo.batch_size = std::stoll(g.metadata().at("batch_size"));
    const SteeringResult r = extract(c, p, spec, toy_dataset(), xo);
    std::map<int64_t, at::Tensor> hf_vecs;
    double worst_cos = 1, worst_rel = 0;
    for (int64_t L = 0; L < c.num_hidden_layers; ++L) {
      const at::Tensor want = testutil::read_tensor(g, "layers." + std::to_string(L) + ".mean_diff").to(at::kDouble);
      hf_vecs[L] = want;
      const at::Tensor got = r.mean_diff.at(L).to(at::kCPU, at::kDouble);
      const double cos = (at::dot(got, want) / (got.norm() * want.norm())).item<double>();
      const double rel = ((got - want).norm() / want.norm()).item<double>();
      EXPECT_GE(cos, cs.min_cosine) << "layer " << L;
      EXPECT_LE(rel, cs.max_rel) << "layer " << L;
      worst_cos = std::min(worst_cos, cos);
      worst_rel = std::max(worst_rel, rel);
    }
    double worst_gap = 0, scale = 0;
    for (bool cached : {true, false}) {
      EvalOptions o;
      o.multipliers = {-2, -1, 0, 1, 2};
      const auto ex = toy_eval();
      o.batch_size = int64_t(ex.size());
      o.cached = cached;
      const EvalResult ev = evaluate(c, p, spec, ex, hf_vecs, o);
      for (const LayerEval& le : ev.layers)
        for (size_t k = 0; k < o.multipliers.size(); ++k) {
          const at::Tensor want =
              testutil::read_tensor(g, "eval.layer" + std::to_string(le.layer) + ".m" + std::to_string(k)).to(at::kDouble);
          scale = std::max(scale, want.abs().max().item<double>());
          for (size_t i = 0; i < ex.size(); ++i)
            worst_gap = std::max(worst_gap, std::abs(le.example_logit_diff[k][i] - want[int64_t(i)].item<double>()));
        }
    }
    EXPECT_GT(scale, 1e-2);  // the goldens are not all zero
    EXPECT_LE(worst_gap, cs.max_diff_gap * scale);
    std::printf("[ gpu-steer] moe-tiny %-8s %-5s vs HF on CUDA: min cosine %.6f, max rel %.2e, max logit-diff gap %.3g "
                "(HF's largest |diff| %.3g)\n",
                cs.file_dtype, kernels, worst_cos, worst_rel, worst_gap, scale);
  }
}

// Measured on an H200 (fixtures/steering/README.md): fp32 cosine 1.000000, relative error 1.8e-7,
// logit-difference gap 2.5e-7 of HF's largest; bf16 0.999976, 7.0e-3, 7.7e-3. A wrong layer, read
// column or sign is off by far more than either bound.
TEST(GpuSteer, MatchesHfOnCudaFloat32) {
  check_steer_on_cuda({at::kFloat, DType::F32, "float32", 0.99999, 1e-5, 1e-5});
}

TEST(GpuSteer, MatchesHfOnCudaBfloat16) {
  check_steer_on_cuda({at::kBFloat16, DType::BF16, "bfloat16", 0.999, 2e-2, 2e-2});
}

TEST(SteerEvaluate, RejectsAnswerIdsOutsideVocab) {
  const ModelConfig c = tiny_config();
  auto ex = toy_eval();
  ex[0].match = 500;
  EXPECT_THROW(evaluate(c, single(), fp64_spec(), ex, {{0, at::zeros({c.hidden_size}, at::kDouble)}}),
               std::invalid_argument);
}

TEST(SteerEvaluate, SlopeIsLeastSquares) {
  EXPECT_DOUBLE_EQ(least_squares_slope({-2, -1, 0, 1, 2}, {-3, -1, 1, 3, 5}), 2.0);
  EXPECT_DOUBLE_EQ(least_squares_slope({1, 1}, {0, 5}), 0.0);
}

// ---- export ----

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("sc_steer_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

TEST(SteerExport, Sha256) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex(std::string(1000, 'a')).size(), 64u);
}

TEST(SteerExport, SafetensorsRoundTrip) {
  SteeringResult r;
  r.num_examples = 3;
  r.hidden_size = 8;
  for (int64_t L : {0, 1, 2}) {
    r.layers.push_back(L);
    r.mean_diff[L] = at::arange(8, at::kDouble) * double(L + 1) - 3.25;
  }
  const fs::path f = temp_dir("st") / "vectors.safetensors";
  write_vectors_safetensors(f.string(), r, {"moe-tiny", "abc123", false});
  const Checkpoint ck = Checkpoint::open(f.string());
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"layers.0.direction", "layers.1.direction", "layers.2.direction"}));
  for (int64_t L : r.layers) {
    const std::string n = "layers." + std::to_string(L) + ".direction";
    EXPECT_EQ(ck.info(n).dtype, DType::F32);
    EXPECT_EQ(ck.info(n).shape, (std::vector<int64_t>{8}));
    std::vector<float> got(8);
    ck.read(n, got.data(), got.size() * sizeof(float));
    for (int64_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(got[size_t(i)], float(r.mean_diff[L][i].item<double>()));
  }
  const auto meta = ck.metadata();
  EXPECT_EQ(meta.at("model"), "moe-tiny");
  EXPECT_EQ(meta.at("dataset_sha256"), "abc123");
  EXPECT_EQ(meta.at("layer_indexing"), "HF decoder layer output, 0-based");
  testutil::remove_tree(f.parent_path());
}

// A tiny GGUF reader for the parts the control-vector writer uses.
struct GgufReader {
  std::string b;
  size_t pos = 0;
  template <typename T>
  T get() {
    T v;
    if (pos + sizeof(T) > b.size()) throw std::runtime_error("gguf: truncated");
    std::memcpy(&v, b.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str() {
    const auto n = get<uint64_t>();
    if (pos + n > b.size()) throw std::runtime_error("gguf: truncated string");
    std::string s = b.substr(pos, n);
    pos += n;
    return s;
  }
};

TEST(SteerExport, GgufControlVectorStructure) {
  const int64_t H = 5;
  std::map<int64_t, at::Tensor> vecs;
  for (int64_t L = 0; L < 4; ++L) vecs[L] = at::arange(H, at::kDouble) + 10.0 * double(L);
  const fs::path f = temp_dir("gguf") / "cv.gguf";
  EXPECT_EQ(write_control_vector_gguf(f.string(), vecs, "qwen3"), 3);  // HF layer 0 is not steerable there
  std::ifstream in(f, std::ios::binary);
  GgufReader g{std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>())};
  EXPECT_EQ(g.b.substr(0, 4), "GGUF");
  g.pos = 4;
  EXPECT_EQ(g.get<uint32_t>(), 3u);
  const auto n_tensors = g.get<uint64_t>(), n_kv = g.get<uint64_t>();
  EXPECT_EQ(n_tensors, 3u);
  std::map<std::string, std::string> strs;
  std::map<std::string, int32_t> ints;
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = g.str();
    const auto type = g.get<uint32_t>();
    if (type == 8) strs[key] = g.str();
    else if (type == 5) ints[key] = g.get<int32_t>();
    else FAIL() << "unexpected type " << type << " for " << key;
  }
  EXPECT_EQ(strs.at("general.architecture"), "controlvector");
  EXPECT_EQ(strs.at("controlvector.model_hint"), "qwen3");
  EXPECT_EQ(ints.at("controlvector.layer_count"), 3);
  std::vector<std::pair<std::string, uint64_t>> infos;
  for (uint64_t t = 0; t < n_tensors; ++t) {
    const std::string name = g.str();
    EXPECT_EQ(g.get<uint32_t>(), 1u);
    EXPECT_EQ(g.get<uint64_t>(), uint64_t(H));
    EXPECT_EQ(g.get<uint32_t>(), 0u);  // GGML_TYPE_F32
    infos.emplace_back(name, g.get<uint64_t>());
  }
  const size_t data = (g.pos + 31) / 32 * 32;
  for (size_t t = 0; t < infos.size(); ++t) {
    EXPECT_EQ(infos[t].first, "direction." + std::to_string(t + 1));
    EXPECT_EQ(infos[t].second % 32, 0u);
    std::vector<float> v(H);
    ASSERT_LE(data + infos[t].second + H * 4, g.b.size());
    std::memcpy(v.data(), g.b.data() + data + infos[t].second, H * 4);
    for (int64_t i = 0; i < H; ++i) EXPECT_FLOAT_EQ(v[size_t(i)], float(i + 10 * (t + 1)));  // direction.N = HF layer N
  }
  testutil::remove_tree(f.parent_path());
}

TEST(SteerExport, EvalJsonAndCsv) {
  EvalResult r;
  r.num_examples = 2;
  r.best_layer = 1;
  LayerEval le;
  le.layer = 1;
  le.multipliers = {-1, 1};
  le.logit_diff = {-0.5, 0.5};
  le.p_match = {0.4, 0.6};
  le.example_logit_diff = {{-0.5, -0.5}, {0.5, 0.5}};
  le.slope = 0.5;
  r.layers.push_back(le);
  const fs::path d = temp_dir("eval");
  write_eval_json((d / "eval.json").string(), r, {"m", "h", false});
  write_eval_csv((d / "eval.csv").string(), r);
  std::ifstream jf(d / "eval.json");
  const nlohmann::json j = nlohmann::json::parse(jf);
  EXPECT_EQ(j.at("best_layer"), 1);
  EXPECT_EQ(j.at("layers")[0].at("slope"), 0.5);
  std::ifstream cf(d / "eval.csv");
  std::stringstream ss;
  ss << cf.rdbuf();
  EXPECT_EQ(ss.str(), "layer,multiplier,logit_diff,p_match,slope\n1,-1,-0.5,0.40000000000000002,0.5\n1,1,0.5,0.59999999999999998,0.5\n");
  // The HTML page: the chart data carries the evaluation unchanged, two inline SVG charts.
  const SteeringChart ch = steering_chart(r, {"m", "h", false});
  ASSERT_EQ(ch.layers.size(), 1u);
  EXPECT_EQ(ch.multipliers, (std::vector<double>{-1, 1}));
  EXPECT_EQ(ch.layers[0].p_match, (std::vector<double>{0.4, 0.6}));
  EXPECT_EQ(ch.best_layer, 1);
  write_eval_html((d / "eval.html").string(), r, {"m", "h", false});
  std::ifstream hf(d / "eval.html");
  std::stringstream hs;
  hs << hf.rdbuf();
  EXPECT_NE(hs.str().find("data-layer=\"1\" data-slope=\"0.5\""), std::string::npos);
  EXPECT_NE(hs.str().find("class=\"pmatch\""), std::string::npos);
  testutil::remove_tree(d);
}

// ---- CLI ----

int run_cli(const std::string& args, std::string* err = nullptr) {
  const fs::path e = temp_dir("cli") / "stderr.txt";
  const int rc = std::system((std::string(SC_CLI) + " steer " + args + " > /dev/null 2> " + e.string()).c_str());
  if (err) {
    std::ifstream in(e);
    std::stringstream ss;
    ss << in.rdbuf();
    *err = ss.str();
  }
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(SteerCli, BadInputExit2AndSmokeRun) {
  if (qwen3_tokenizer_dir().empty()) GTEST_SKIP() << "Qwen3 tokenizer not fetched (tools/fetch_tokenizer.sh)";
  const std::string model = "--model " + kTiny.string();
  const std::string caa = (fs::path(SC_FIXTURES) / "datasets" / "metric_units_caa.json").string();
  std::string err;
  // vocab 128 < the tokenizer's ids: a clear config error unless explicitly allowed.
  EXPECT_EQ(run_cli(model + " --dataset " + caa, &err), 2);
  EXPECT_NE(err.find("vocab_size"), std::string::npos) << err;
  EXPECT_EQ(run_cli(model + " --allow-vocab-mismatch --dataset /nonexistent/data.json", &err), 2);
  EXPECT_NE(err.find("/nonexistent/data.json"), std::string::npos) << err;
  EXPECT_EQ(run_cli(model + " --allow-vocab-mismatch --dataset " + caa + " --layers 7", &err), 2);
  EXPECT_EQ(run_cli(model + " --allow-vocab-mismatch --dataset " + caa + " --multipliers 1,x", &err), 2);
  EXPECT_EQ(run_cli(model + " --allow-vocab-mismatch --dataset " + caa + " --multipliers nan,inf", &err), 2);
  EXPECT_EQ(err, "shardcheck: usage error: key '--multipliers' = nan,inf: expected a comma-separated list of finite "
                 "numbers\n");
  const fs::path out = temp_dir("cli_out");
  EXPECT_EQ(run_cli(model + " --allow-vocab-mismatch --dataset " + caa + " --pp 2 --batch-size 16 --multipliers -1,0,1 --out " +
                    out.string(), &err), 0) << err;
  for (const char* f : {"vectors.safetensors", "control_vector.gguf", "eval.json", "eval.csv", "eval.html"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  // The cached sweep is the default; --compare-sweeps runs the naive one too and reports the
  // measured speed-up and the largest gap (fp32 here).
  const fs::path js = out / "summary.json";
  const int rc = std::system((std::string(SC_CLI) + " steer " + model + " --allow-vocab-mismatch --dataset " + caa +
                              " --multipliers -1,1 --compare-sweeps --json > " + js.string() + " 2> /dev/null").c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
  std::ifstream jf(js);
  const nlohmann::json j = nlohmann::json::parse(jf);
  EXPECT_EQ(j.at("sweep").at("mode"), "cached");
  EXPECT_GT(j.at("sweep").at("work_ratio").get<double>(), 1.0);
  EXPECT_GT(j.at("sweep").at("measured").at("speedup").get<double>(), 0.0);
  EXPECT_LT(j.at("sweep").at("measured").at("max_abs_logit_diff_gap").get<double>(), 1e-3);
  // --sweep-pass-tokens 1: one steered layer per pass, still the naive sweep's numbers (fp64).
  const int rc1 = std::system((std::string(SC_CLI) + " steer " + model + " --allow-vocab-mismatch --dataset " + caa +
                               " --multipliers -1,1 --dtype float64 --sweep-pass-tokens 1 --compare-sweeps --json > " +
                               js.string() + " 2> /dev/null").c_str());
  ASSERT_TRUE(WIFEXITED(rc1) && WEXITSTATUS(rc1) == 0);
  std::ifstream jf1(js);
  EXPECT_LT(nlohmann::json::parse(jf1).at("sweep").at("measured").at("max_abs_logit_diff_gap").get<double>(), 1e-9);
  EXPECT_EQ(run_cli(model + " --allow-vocab-mismatch --dataset " + caa + " --sweep-pass-tokens 0", &err), 2);
  EXPECT_NE(err.find("--sweep-pass-tokens"), std::string::npos) << err;
  testutil::remove_tree(out);
  testutil::remove_tree(temp_dir("cli"));
}

// Checks before heavy work: the model folder's own tokenizer, an unwritable --out and prompts
// longer than max_position_embeddings fail in one line before extraction; the GGUF control
// vector's model_hint names llama.cpp's architecture.
TEST(SteerCli, ChecksBeforeHeavyWork) {
  if (qwen3_tokenizer_dir().empty()) GTEST_SKIP() << "Qwen3 tokenizer not fetched (tools/fetch_tokenizer.sh)";
  const std::string caa = (fs::path(SC_FIXTURES) / "datasets" / "metric_units_caa.json").string();
  const fs::path dir = temp_dir("checks");
  // A copy of moe-tiny with a short context, then with its own (broken) tokenizer.json.
  const fs::path m = dir / "moe-tiny-short";
  fs::create_directories(m);
  for (const auto& f : fs::directory_iterator(kTiny)) fs::copy_file(f.path(), m / f.path().filename());
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream((kTiny / "config.json").string()));
  cfg["max_position_embeddings"] = 16;
  std::ofstream((m / "config.json").string()) << cfg.dump(2);
  const std::string base = "--model " + m.string() + " --allow-vocab-mismatch --dataset " + caa;
  std::string err;
  EXPECT_EQ(run_cli(base, &err), 2);
  EXPECT_NE(err.find("shardcheck: dataset error: " + caa + ": key 'examples[0].positive' = "), std::string::npos) << err;
  EXPECT_NE(err.find("tokens: longer than max_position_embeddings = 16 of " + (m / "config.json").string()),
            std::string::npos) << err;
  EXPECT_EQ(err.find("extract:"), std::string::npos) << err;
  // --out under a file: refused before the tokenizer, the dataset or any forward.
  std::ofstream((dir / "a-file").string()) << "x";
  EXPECT_EQ(run_cli(base + " --out " + (dir / "a-file" / "out").string(), &err), 2);
  EXPECT_EQ(err, "shardcheck: output error: " + (dir / "a-file" / "out").string() + ": '" + (dir / "a-file").string() +
                     "' exists and is not a folder\n");
  // The model folder's tokenizer.json is the default tokenizer.
  std::ofstream((m / "tokenizer.json").string()) << "{}";
  EXPECT_EQ(run_cli(base, &err), 2);
  EXPECT_NE(err.find("tokenizer error: " + (m / "tokenizer.json").string()), std::string::npos) << err;
  // model_hint: llama.cpp's architecture name of the model type.
  EXPECT_EQ(gguf_architecture("qwen3_moe"), "qwen3moe");
  EXPECT_EQ(gguf_architecture("qwen3"), "qwen3");
  const fs::path out = dir / "out";
  ASSERT_EQ(run_cli("--model " + kTiny.string() + " --allow-vocab-mismatch --dataset " + caa + " --no-eval --out " +
                        out.string(), &err), 0) << err;
  std::ifstream g((out / "control_vector.gguf").string(), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(g)), std::istreambuf_iterator<char>());
  const std::string key = "controlvector.model_hint";
  const size_t k = bytes.find(key);
  ASSERT_NE(k, std::string::npos);
  // key, value type (u32 8 = string), length (u64), then the string.
  EXPECT_EQ(bytes.substr(k + key.size() + 4 + 8, 8), "qwen3moe");
  testutil::remove_tree(dir);
}

// Every family with a forward (fixtures/models: Qwen3-MoE and the HF 5.17 checkpoints of the
// others): batched extraction and the layer x multiplier sweep give the single-device result under
// TP, TP x EP (MoE families) with replicated KV heads, and PP with micro-batches (the intervention
// then sees batch offsets); steering with a nonzero multiplier changes the metric.
class SteerFamilies : public ::testing::TestWithParam<std::string> {};

TEST_P(SteerFamilies, ShardedEqualsSingleDevice) {
  const fs::path dir = fs::path(SC_FIXTURES) / "models" / GetParam();
  const ModelConfig c = read_model_config_file((dir / "config.json").string());
  RunSpec spec = fp64_spec();
  spec.checkpoint = dir.string();
  ExtractOptions xo;
  xo.batch_size = 4;
  const auto ex = toy_dataset();
  const SteeringResult ref = extract(c, single(), spec, ex, xo);
  const at::Tensor v = at::linspace(-1, 1, c.hidden_size, at::kDouble);
  EvalOptions eo;
  eo.multipliers = {-2, 0, 2};
  eo.batch_size = 3;
  const auto evx = toy_eval();
  const std::map<int64_t, at::Tensor> vecs{{0, v}, {1, -v}};
  const EvalResult eref = evaluate(c, single(), spec, evx, vecs, eo);
  EXPECT_GT(std::abs(eref.layers[0].logit_diff[2] - eref.layers[0].logit_diff[1]), 1e-6);
  std::vector<ParallelPlan> plans(3, single());
  plans[0].tp = 2;
  plans[1].pp = 2;
  plans[1].micro_batches = 2;
  plans[2].tp = 2;
  plans[2].ep = c.is_moe() ? 2 : 1;
  plans[2].style = PlanStyle::ReplicateKv;
  for (const ParallelPlan& p : plans) {
    const SteeringResult got = extract(c, p, spec, ex, xo);
    ASSERT_EQ(got.layers, ref.layers) << p.describe();
    for (int64_t L : ref.layers)
      EXPECT_LT(max_abs(got.mean_diff.at(L), ref.mean_diff.at(L)), 1e-10) << p.describe() << " layer " << L;
    const EvalResult e = evaluate(c, p, spec, evx, vecs, eo);
    for (size_t l = 0; l < eref.layers.size(); ++l)
      for (size_t k = 0; k < eo.multipliers.size(); ++k)
        for (size_t i = 0; i < evx.size(); ++i)
          EXPECT_NEAR(e.layers[l].example_logit_diff[k][i], eref.layers[l].example_logit_diff[k][i], 1e-10)
              << p.describe();
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SteerFamilies,
                         ::testing::Values("moe-tiny", "llama-tiny", "mistral-tiny", "mixtral-tiny", "qwen2-moe-tiny"),
                         testutil::param_name);

}  // namespace
}  // namespace sc
