// GPU tests (skipped without CUDA; run by tools/gpu/run.sh on the GPU machine):
//  - the HF goldens on CUDA in fp32 and bf16, with the reference (eager) kernels and the fast ones
//    (ops/kernels.h: SDPA, grouped-GEMM experts, fused RMSNorm);
//  - several ranks simulated on ONE GPU with the in-process backend (families/decoder/local_ranks.h:
//    ranks as threads, collectives performed in process). NCCL needs one GPU per rank, so this is
//    how TP / EP / PP numerics are tested on a one-GPU machine. Tests only: real runs use c10d;
//  - grouped-GEMM experts under EP (foreign experts masked) against the per-expert loop, with and
//    without our fused CUDA kernels;
//  - each fused CUDA kernel (ops/cuda/fused.cu) against the LibTorch ops it replaces, at
//    the 235B layer's widths.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include "checks/run_result.h"
#include "harness/executor.h"
#include "ops/fused_ops.h"
#include "ops/kernels.h"
#include "checks/tensors.h"
#include "families/family.h"
#include "families/decoder/local_ranks.h"
#include "families/decoder/model.h"
#include "models/errors.h"
#include "families/decoder/weights.h"
#include "models/safetensors.h"
#include "tensor_util.h"

namespace fs = std::filesystem;

namespace sc {
namespace {

using testutil::nmse;
using testutil::read_tensor;

const fs::path kModels = fs::path(SC_FIXTURES) / "models";

#define SC_REQUIRE_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"

struct GpuCase {
  at::ScalarType dtype;
  bool fast;
  double max_nmse;  // layer outputs and logits vs the fp32 HF golden
};

ForwardInputs golden_inputs(const Checkpoint& g, const std::string& batch, at::Device d) {
  ForwardInputs in;
  in.input_ids = read_tensor(g, "input_ids." + batch).to(d);
  in.attention_mask = read_tensor(g, "attention_mask." + batch).to(d);
  in.position_ids = read_tensor(g, "position_ids." + batch).to(d);
  return in;
}

TEST(Gpu, GoldensOnCudaWithEachKernelSet) {
  SC_REQUIRE_CUDA();
  const at::Device cuda(at::kCUDA, 0);
  // fp32: only the summation order differs from the CPU reference. bf16: 8-bit mantissa through
  // every op; a router near-tie flip moves one token's expert mix, which the bound allows.
  const GpuCase cases[] = {{at::kFloat, false, 1e-9}, {at::kFloat, true, 1e-9},
                           {at::kBFloat16, false, 3e-2}, {at::kBFloat16, true, 3e-2}};
  const auto models = testutil::golden_models(kModels);
  ASSERT_FALSE(models.empty());
  for (const std::string& m : models) {
    const fs::path dir = kModels / m;
    const ModelConfig c = read_model_config_file((dir / "config.json").string());
    const Checkpoint ck = Checkpoint::open(dir.string());
    const Checkpoint golden = Checkpoint::open((dir / "golden.safetensors").string());
    for (const GpuCase& gc : cases) {
      LoadOptions o;
      o.dtype = gc.dtype;
      o.device = cuda;
      ModelWeights w = load_weights(ck, c, ParallelPlan{}, 0, o);
      const Kernels k = gc.fast ? best_kernels(cuda, gc.dtype) : Kernels{};
      prepare_kernels(w, k);
      double worst = 0;
      for (const char* batch : {"plain", "padded"}) {
        SCOPED_TRACE(m + " " + c10::toString(gc.dtype) + " " + describe(k) + " " + batch);
        const std::string pre = std::string("f32.") + batch + ".";
        CaptureSpec cap;
        cap.all_layers = true;
        const ForwardOutput out = forward(w, c, golden_inputs(golden, batch, cuda), local_comm(), cap);
        ASSERT_TRUE(out.logits.is_cuda());
        for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
          const double e = nmse(out.layer_out.at(l), read_tensor(golden, pre + "layer_out." + std::to_string(l)));
          EXPECT_LE(e, gc.max_nmse) << "layer_out." << l;
          worst = std::max(worst, e);
        }
        const double e = nmse(out.logits, read_tensor(golden, pre + "logits"));
        EXPECT_LE(e, gc.max_nmse) << "logits";
        worst = std::max(worst, e);
      }
      std::printf("[ gpu      ] %-16s %-9s %-34s max NMSE vs HF fp32 golden %.2e\n", m.c_str(),
                  c10::toString(gc.dtype), describe(k).c_str(), worst);
    }
  }
}

struct SimCase {
  const char* name;
  int64_t tp, ep, pp;
  PlanStyle style;
};

// TP / EP / PP ranks as threads sharing one GPU, against the single-device run of the same dtype
// and kernels on the same GPU.
TEST(Gpu, SimulatedRanksOnOneGpuMatchSingleDevice) {
  SC_REQUIRE_CUDA();
  const at::Device cuda(at::kCUDA, 0);
  const fs::path dir = kModels / "moe-tiny";
  const ModelConfig c = ModelConfig::from_file((dir / "config.json").string());
  const Checkpoint ck = Checkpoint::open(dir.string());
  const Checkpoint golden = Checkpoint::open((dir / "golden.safetensors").string());
  const SimCase cases[] = {{"tp2", 2, 1, 1, PlanStyle::HfAuto},
                           {"tp4-rkv", 4, 1, 1, PlanStyle::ReplicateKv},
                           {"ep4", 1, 4, 1, PlanStyle::HfAuto},
                           {"tp2-ep2", 2, 2, 1, PlanStyle::HfAuto},
                           {"tp2-rkv-pp2", 2, 1, 2, PlanStyle::ReplicateKv}};
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    const Kernels k = best_kernels(cuda, dt);
    LoadOptions o;
    o.dtype = dt;
    o.device = cuda;
    ModelWeights ref_w = load_weights(ck, c, ParallelPlan{}, 0, o);
    prepare_kernels(ref_w, k);
    const ForwardInputs in = golden_inputs(golden, "padded", cuda);
    CaptureSpec cap;
    cap.all_layers = true;
    cap.router = true;
    const ForwardOutput ref = forward(ref_w, c, in, local_comm(), cap);
    // bf16: the TP all-reduce adds partial sums rounded to bf16, a different rounding from the
    // single-device matmul; fp32: summation order only.
    const double bound = dt == at::kFloat ? 1e-10 : 2e-2;
    for (const SimCase& sc : cases) {
      SCOPED_TRACE(std::string(sc.name) + " " + c10::toString(dt));
      ParallelPlan p;
      p.tp = sc.tp;
      p.ep = sc.ep;
      p.pp = sc.pp;
      p.style = sc.style;
      const auto res = run_ranks_in_threads(
          c, p,
          [&](int64_t r) {
            ModelWeights w = load_weights(ck, c, p, r, o);
            prepare_kernels(w, k);
            return w;
          },
          in, cap);
      double worst = 0;
      for (int64_t r = 0; r < p.world_size(); ++r) {
        ASSERT_EQ(res[size_t(r)].error, "") << "rank " << r;
        const StageOutput& out = res[size_t(r)].out;
        for (const auto& kv : out.layer_out) {
          ASSERT_TRUE(kv.second.is_cuda());
          const double e = nmse(kv.second, ref.layer_out.at(kv.first));
          EXPECT_LE(e, bound) << "rank " << r << " layer " << kv.first;
          worst = std::max(worst, e);
        }
        if (out.logits.defined()) worst = std::max(worst, nmse(out.logits, ref.logits));
      }
      EXPECT_LE(worst, bound);
      std::printf("[ gpu-sim  ] moe-tiny %-12s %-9s %-34s max NMSE vs one device %.2e\n", sc.name, c10::toString(dt),
                  describe(k).c_str(), worst);
    }
  }
}

// The grouped-GEMM expert path with a quarter of the experts local (EP = 4): pairs routed to
// other ranks' experts must contribute exactly nothing. Compared with the per-expert loop on the
// same weights; summed over the 4 EP ranks it must equal the single-device block.
TEST(Gpu, GroupedExpertsMatchLoopUnderExpertParallel) {
  SC_REQUIRE_CUDA();
  const at::Device cuda(at::kCUDA, 0);
  if (!best_kernels(cuda, at::kBFloat16).grouped_experts) GTEST_SKIP() << "no _grouped_mm in this LibTorch";
  ModelConfig c = configs::qwen3_30b_a3b();
  c.hidden_size = 256;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.num_experts = 16;
  c.num_experts_per_tok = 4;
  c.moe_intermediate_size = 128;
  c.num_hidden_layers = 1;
  c.vocab_size = 512;
  LoadOptions o;
  o.dtype = at::kBFloat16;
  o.device = cuda;
  o.with_embed = 0;
  o.with_head = 0;
  at::manual_seed(7);
  const at::Tensor x = at::randn({4, 37, c.hidden_size}).to(cuda, at::kBFloat16);
  Kernels grouped;
  grouped.grouped_experts = true;
  std::vector<Kernels> sets = {grouped};
  if (best_kernels(cuda, at::kBFloat16).fused) {
    Kernels f = grouped;
    f.fused = true;
    sets.push_back(f);
  }
  for (const Kernels& kset : sets) {
    SCOPED_TRACE(describe(kset));
    at::Tensor total_grouped, total_loop;
    ParallelPlan p;
    p.ep = 4;
    for (int64_t r = 0; r < 4; ++r) {
      ModelWeights w = random_weights(c, p, r, 99, o);
      const MoeOutput loop = moe_forward(w.layers[0].moe, c, x, local_comm());
      prepare_kernels(w, kset);
      ASSERT_TRUE(w.layers[0].moe.stacked());
      const MoeOutput g = moe_forward(w.layers[0].moe, c, x, local_comm(), kset);
      const double e = nmse(g.out, loop.out);
      EXPECT_LE(e, 1e-4) << "ep rank " << r;
      EXPECT_FALSE(at::isnan(g.out).any().item<bool>()) << "ep rank " << r;
      total_grouped = r == 0 ? g.out.to(at::kFloat) : total_grouped + g.out.to(at::kFloat);
      total_loop = r == 0 ? loop.out.to(at::kFloat) : total_loop + loop.out.to(at::kFloat);
    }
    ModelWeights one = random_weights(c, ParallelPlan{}, 0, 99, o);
    const MoeOutput full_loop = moe_forward(one.layers[0].moe, c, x, local_comm());
    prepare_kernels(one, kset);
    const MoeOutput full = moe_forward(one.layers[0].moe, c, x, local_comm(), kset);
    const double e_full = nmse(full.out, full_loop.out), e_sum = nmse(total_grouped, full.out.to(at::kFloat));
    EXPECT_LE(e_full, 1e-4);
    EXPECT_LE(e_sum, 1e-4);
    std::printf("[ gpu      ] %s experts vs loop: NMSE one device %.2e, sum of 4 EP ranks vs one device %.2e\n",
                describe(kset).c_str(), e_full, e_sum);
  }
}

// Each fused kernel against the LibTorch ops it replaces, at the Qwen3-235B-A22B layer's widths
// (hidden 4096, 64 / 4 heads of 128, 128 experts top-8, expert width 1536; 412 tokens), in fp32
// (only the summation order differs: NMSE <= 1e-12) and bf16 (one rounding where the ops round
// after each step).
TEST(Gpu, FusedKernelsMatchTorchOps) {
  SC_REQUIRE_CUDA();
  const at::Device cuda(at::kCUDA, 0);
  if (!fused::compiled()) GTEST_SKIP() << "built without the CUDA kernels";
  const ModelConfig c = configs::qwen3_235b_a22b();
  const int64_t B = 4, S = 103, T = B * S, D = c.head_dim, H = c.hidden_size, E = c.num_experts;
  const int64_t K = c.num_experts_per_tok;
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dt));
    const bool f32 = dt == at::kFloat;
    const auto opt = at::TensorOptions().dtype(dt).device(cuda);
    at::manual_seed(11);
    // q/k norm + RoPE, in place on the [B, S, heads, D] view of a projection output; positions
    // differ per batch row (as with left padding), so cos / sin are [B, S, D].
    const at::Tensor pos = at::arange(S, at::TensorOptions().dtype(at::kLong).device(cuda)).unsqueeze(0) +
                           at::arange(B, at::TensorOptions().dtype(at::kLong).device(cuda)).unsqueeze(1) * 7;
    const auto cs = rope_cos_sin(c, pos, dt);
    for (int64_t heads : {c.num_attention_heads, c.num_key_value_heads}) {
      const at::Tensor proj = at::randn({B, S, heads * D}, opt) * 3;
      const at::Tensor wn = at::rand({D}, opt) + 0.5;
      at::Tensor ref = rms_norm(proj.view({B, S, heads, D}), wn, c.rms_norm_eps).transpose(1, 2);
      ref = ref * cs.first.unsqueeze(1) + rotate_half(ref) * cs.second.unsqueeze(1);
      at::Tensor got = proj.clone().view({B, S, heads, D});
      fused::head_norm_rope_(got, wn, cs.first, cs.second, c.rms_norm_eps);
      const double e = nmse(got.transpose(1, 2), ref);
      EXPECT_LE(e, f32 ? 1e-12 : 5e-5) << heads << " heads";
      std::printf("[ gpu-fuse ] %-9s norm+rope %2lld heads: NMSE %.2e\n", c10::toString(dt), (long long)heads, e);
    }
    // Residual add + RMSNorm.
    const at::Tensor a = at::randn({B, S, H}, opt), b = at::randn({B, S, H}, opt), wn = at::rand({H}, opt) + 0.5;
    const auto hn = fused::add_rms_norm(a, b, wn, c.rms_norm_eps);
    EXPECT_TRUE(at::equal(hn.first, a + b));
    const double en = nmse(hn.second, rms_norm(a + b, wn, c.rms_norm_eps));
    EXPECT_LE(en, f32 ? 1e-12 : 2e-5);
    // Router softmax + top-k: the same experts, weights within rounding.
    const at::Tensor x2 = at::randn({T, H}, opt), router = at::randn({E, H}, opt) * 0.05;
    const Routing r_ref = route(x2, router, c);
    Kernels kf;
    kf.fused = true;
    const Routing r = route(x2, router, c, kf);
    // Compared as sets per token (sorted by id): on equal probabilities the order inside the
    // top-k may differ, and a tie between the k-th and (k+1)-th may pick either expert.
    const auto sa = at::sort(r.ids, 1), sb = at::sort(r_ref.ids, 1);
    const at::Tensor wa = r.weights.gather(1, std::get<1>(sa)).to(at::kFloat);
    const at::Tensor wb = r_ref.weights.gather(1, std::get<1>(sb)).to(at::kFloat);
    const at::Tensor differ = std::get<0>(sa).ne(std::get<0>(sb)).any(1);
    const at::Tensor top = std::get<0>(at::topk(at::softmax(r_ref.logits, -1, at::kFloat), K + 1, -1));
    const at::Tensor boundary_tie = top.select(1, K - 1).eq(top.select(1, K));
    const int64_t n_differ = differ.sum().item<int64_t>();
    EXPECT_EQ(differ.logical_and(boundary_tie.logical_not()).sum().item<int64_t>(), 0)
        << n_differ << " of " << T << " tokens chose other experts without a tie";
    if (f32) EXPECT_EQ(n_differ, 0);
    const at::Tensor same = differ.logical_not().unsqueeze(1);
    const double ew = (wa - wb).abs().masked_fill(same.logical_not(), 0).max().item<double>();
    EXPECT_LE(ew, f32 ? 1e-6 : 4e-3);  // bf16: one ulp of values below 1
    std::printf("[ gpu-fuse ] %-9s add+norm NMSE %.2e, top-k: %lld of %lld tokens differ (ties), weights max |diff| %.1e\n",
                c10::toString(dt), en, (long long)n_differ, (long long)T, ew);
  }
  // Error text names the shapes.
  try {
    const auto opt = at::TensorOptions().dtype(at::kFloat).device(cuda);
    at::Tensor x = at::zeros({2, 3, 4, 8}, opt);
    fused::head_norm_rope_(x, at::ones({8}, opt), at::zeros({1, 5, 8}, opt), at::zeros({1, 5, 8}, opt), 1e-6);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("got [1, 5, 8]"), std::string::npos) << e.what();
  }
}

// fused::group_pairs against a layout computed here from the expert ids alone: each local expert's
// rows start at its predecessor's end rounded up to the pad (so at multiples of it), hold exactly
// its pairs, each pair's row points back at the pair, padding and unused rows are -1, and pairs of
// other ranks' experts have no row. Pad 1 is at::_grouped_mm's contiguous layout (offs = the
// cumulative counts), pad 128 the padded layout of the Triton expert GEMM.
TEST(Gpu, GroupPairsLayouts) {
  SC_REQUIRE_CUDA();
  if (!fused::compiled()) GTEST_SKIP() << "built without the fused CUDA kernels";
  const at::Device cuda(at::kCUDA, 0);
  struct Case {
    const char* name;
    int64_t T, K, E, El, first;
    int pad;
  };
  const Case cases[] = {{"all local, pad 1", 1000, 8, 128, 128, 0, 1},
                        {"all local, pad 128", 1000, 8, 128, 128, 0, 128},
                        {"ep rank 2 of 4, pad 128", 777, 8, 128, 32, 64, 128},
                        {"5 tokens (empty experts), pad 64", 5, 8, 128, 128, 0, 64},
                        {"1023 experts, pad 128", 300, 8, 1023, 1023, 0, 128}};
  for (const Case& cs : cases) {
    SCOPED_TRACE(cs.name);
    at::manual_seed(5);
    const at::Tensor ids = std::get<1>(at::topk(at::rand({cs.T, cs.E}, at::TensorOptions().device(cuda)), cs.K, -1));
    const fused::PairLayout l = fused::group_pairs(ids, cs.El, cs.first, cs.pad);
    const int64_t P = cs.T * cs.K;
    ASSERT_EQ(l.rows, P + (cs.pad > 1 ? cs.El * (cs.pad - 1) : 0));
    ASSERT_EQ(l.pair_of_row.numel(), l.rows);
    const at::Tensor id = ids.reshape({-1}).cpu(), offs = l.offs.cpu(), rop = l.row_of_pair.cpu(), por = l.pair_of_row.cpu();
    const auto idv = id.accessor<int64_t, 1>();
    const auto ov = offs.accessor<int32_t, 1>();
    const auto rv = rop.accessor<int32_t, 1>();
    const auto pv = por.accessor<int32_t, 1>();
    std::vector<int64_t> count(size_t(cs.El), 0);
    for (int64_t p = 0; p < P; ++p)
      if (idv[p] >= cs.first && idv[p] < cs.first + cs.El) ++count[size_t(idv[p] - cs.first)];
    std::vector<int64_t> start(size_t(cs.El), 0);
    int64_t prev_end = 0;
    for (int64_t e = 0; e < cs.El; ++e) {
      start[size_t(e)] = (prev_end + cs.pad - 1) / cs.pad * cs.pad;
      ASSERT_EQ(ov[e], start[size_t(e)] + count[size_t(e)]) << "expert " << e;
      prev_end = ov[e];
    }
    std::vector<char> used(size_t(l.rows), 0);
    for (int64_t p = 0; p < P; ++p) {
      const int64_t e = idv[p] - cs.first;
      if (e < 0 || e >= cs.El) {
        ASSERT_EQ(rv[p], -1) << "pair " << p << " of expert " << idv[p] << " (not local)";
        continue;
      }
      const int64_t r = rv[p];
      ASSERT_TRUE(r >= start[size_t(e)] && r < ov[e]) << "pair " << p << " of expert " << idv[p] << " at row " << r;
      ASSERT_EQ(pv[r], p) << "row " << r;
      ASSERT_FALSE(used[size_t(r)]) << "row " << r << " holds two pairs";
      used[size_t(r)] = 1;
    }
    for (int64_t r = 0; r < l.rows; ++r)
      if (!used[size_t(r)]) ASSERT_EQ(pv[r], -1) << "row " << r << " holds no pair";
    if (cs.pad == 1) {  // at::_grouped_mm's offsets: the cumulative counts
      int64_t c = 0;
      for (int64_t e = 0; e < cs.El; ++e) ASSERT_EQ(ov[e], c += count[size_t(e)]);
    }
  }
  try {
    fused::group_pairs(at::zeros({4, 2}, at::TensorOptions().dtype(at::kLong).device(cuda)), 0, 0, 128);
    ADD_FAILURE() << "0 local experts accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("got 0 experts, pad 128"), std::string::npos) << e.what();
  }
}

// Our Triton expert GEMMs (Kernels::moe_gemm) against the _grouped_mm path they replace, through
// fused::experts: the 235B and 30B expert widths with every expert local (some with no rows when
// the tokens are few) and a quarter of the experts local (EP=4 rank 2: pairs of other ranks'
// experts skipped), 1023 experts. The GEMMs accumulate in fp32 in the same k order and SiLU * up *
// weight is the same kernel on both paths, so the outputs are equal (H200, Triton 3.6: every case
// prints "equal: yes"); the NMSE bound leaves room for another Triton version's wgmma schedule.
TEST(Gpu, MoeGemmMatchesGroupedMm) {
  SC_REQUIRE_CUDA();
  const at::Device cuda(at::kCUDA, 0);
  if (!fused::moe_gemm_compiled()) GTEST_SKIP() << "built without the Triton expert GEMMs";
  if (!fused::moe_gemm_usable(cuda)) GTEST_SKIP() << "the Triton expert GEMMs are sm_90a (H100 / H200)";
  const auto opt = at::TensorOptions().dtype(at::kBFloat16).device(cuda);
  struct Case {
    const char* name;
    int64_t H, I, E, K, T, El, first;
  };
  const Case cases[] = {{"235b widths, all local", 4096, 1536, 128, 8, 1000, 128, 0},
                        {"30b widths, all local", 2048, 768, 128, 8, 6592, 128, 0},
                        {"235b widths, 5 tokens", 4096, 1536, 128, 8, 5, 128, 0},
                        {"30b widths, ep rank 2 of 4", 2048, 768, 128, 8, 777, 32, 64},
                        {"1023 experts, narrow", 256, 128, 1023, 8, 1000, 1023, 0}};
  for (const Case& cs : cases) {
    SCOPED_TRACE(cs.name);
    ASSERT_TRUE(fused::moe_gemm_fits(cs.H, cs.I)) << "the case would test _grouped_mm against itself";
    at::manual_seed(21);
    const at::Tensor x = at::randn({cs.T, cs.H}, opt);
    const auto top = at::topk(at::softmax(at::randn({cs.T, cs.E}, opt.dtype(at::kFloat)), -1), cs.K, -1);
    const at::Tensor ids = std::get<1>(top), w = std::get<0>(top).to(at::kBFloat16);
    const at::Tensor gate_up = at::randn({cs.El, 2 * cs.I, cs.H}, opt) * 0.02;
    const at::Tensor down = at::randn({cs.El, cs.H, cs.I}, opt) * 0.02;
    const at::Tensor ref = fused::experts(x, ids, w, gate_up, down, cs.first, false);
    const at::Tensor got = fused::experts(x, ids, w, gate_up, down, cs.first, true);
    const double e = nmse(got, ref);
    EXPECT_LE(e, 1e-6);
    EXPECT_FALSE(at::isnan(got).any().item<bool>());
    // Tokens routed only to other ranks' experts get zero rows, as on the _grouped_mm path.
    EXPECT_TRUE(at::equal(got.abs().sum(1).eq(0), ref.abs().sum(1).eq(0)));
    std::printf("[ gpu-fuse ] moe_gemm %-28s NMSE vs _grouped_mm %.2e, equal: %s\n", cs.name, e,
                at::equal(got, ref) ? "yes" : "no");
  }
  EXPECT_FALSE(fused::moe_gemm_fits(4096, 192));  // e.g. 30B-A3B's 768 at TP=4: _grouped_mm is kept
  EXPECT_TRUE(best_kernels(cuda, at::kBFloat16).moe_gemm);  // compiled and usable here (checked above)
  try {
    parse_kernels("moe_gemm", cuda, at::kBFloat16);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("runs inside the fused grouped experts"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(parse_kernels("grouped_experts+fused+moe_gemm", cuda, at::kBFloat16).moe_gemm);
}

// The harness over NCCL, one GPU per rank (needs >= 2 GPUs; a one-GPU machine skips it and the
// simulated-ranks test above covers the numerics): TP=2 and TP=2 x EP=2 of the fixture checkpoint
// in bf16 with the fast kernels, compared with the single-GPU reference by the harness.
TEST(Gpu, NcclHarnessMatchesReference) {
  SC_REQUIRE_CUDA();
  const int64_t gpus = int64_t(torch::cuda::device_count());
  if (gpus < 2) GTEST_SKIP() << "NCCL needs one GPU per rank; " << gpus << " present";
  const fs::path dir = kModels / "moe-tiny";
  const ModelConfig c = ModelConfig::from_file((dir / "config.json").string());
  RunSpec spec;
  spec.checkpoint = dir.string();
  spec.dtype = at::kBFloat16;
  spec.backend = "nccl";
  spec.kernels = "best";
  const RunInputs in = random_inputs(c, 4, 16, 5);
  for (auto [tp, ep] : {std::pair<int64_t, int64_t>{2, 1}, {2, 2}, {4, 4}}) {
    if (std::max(tp, ep) > gpus) continue;
    ParallelPlan p;
    p.tp = tp;
    p.ep = ep;
    p.dtype = DType::BF16;
    const PlanRun run = run_plan(c, p, spec, in);
    EXPECT_TRUE(run.result.ok()) << "tp=" << tp << " ep=" << ep << ": " << nlohmann::json(run.result).dump();
    std::printf("[ gpu-nccl ] moe-tiny tp=%lld ep=%lld bf16 best: %s\n", (long long)tp, (long long)ep,
                run.result.ok() ? "matches the single-GPU reference" : "DIFFERS");
  }
}

// Asking for a kernel the build or device lacks is an error that names it, never a silent
// fallback (runs on CPU too).
// Random weights made on the GPU (random_weights off the CPU) are the host's, bit for bit.
TEST(Gpu, RandomWeightsMadeOnTheGpuEqualTheHosts) {
  SC_REQUIRE_CUDA();
  const ModelConfig c = read_model_config_file((kModels / "qwen2-moe-tiny" / "config.json").string());
  const at::Device cuda(at::kCUDA, 0);
  for (const TensorSpec& s : model_tensors(c)) {
    const at::Tensor host = random_tensor(c, s.name, 77);
    ASSERT_TRUE(at::equal(random_tensor(c, s.name, 77, cuda).cpu(), host)) << s.name;
    if (s.shape.size() == 2)  // a rank's slice along either dimension (the rows and columns a plan gives it)
      for (int dim : {0, 1}) {
        const int64_t b = s.shape[size_t(dim)] / 4, e = b + std::max<int64_t>(1, s.shape[size_t(dim)] / 2);
        EXPECT_TRUE(at::equal(random_tensor(c, s.name, 77, cuda, SliceSpec{true, dim, b, e}).cpu(), host.narrow(dim, b, e - b)))
            << s.name << " dim " << dim;
      }
  }
}

TEST(Gpu, UnavailableKernelIsNamed) {
  try {
    parse_kernels("sdpa+grouped_experts", at::Device(at::kCPU), at::kFloat);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("kernel 'sdpa' is not available for Float on cpu"), std::string::npos)
        << e.what();
  }
  try {
    parse_kernels("flash", at::Device(at::kCPU), at::kFloat);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown kernel 'flash'"), std::string::npos) << e.what();
  }
  try {
    parse_kernels("fused", at::Device(at::kCPU), at::kFloat);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("kernel 'fused' is not available for Float on cpu"), std::string::npos)
        << e.what();
  }
  try {
    parse_kernels("moe_gemm", at::Device(at::kCPU), at::kBFloat16);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("kernel 'moe_gemm' is not available for BFloat16 on cpu"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(describe(parse_kernels("eager", at::Device(at::kCPU), at::kFloat)), "eager");
  EXPECT_FALSE(best_kernels(at::Device(at::kCPU), at::kBFloat16).any());
  // Through the harness: refused before any rank starts, as bad input naming the flag.
  const fs::path dir = kModels / "moe-tiny";
  const ModelConfig c = ModelConfig::from_file((dir / "config.json").string());
  RunSpec spec;
  spec.checkpoint = dir.string();
  spec.kernels = "grouped_experts";
  try {
    run_plan(c, ParallelPlan{}, spec, random_inputs(c, 1, 4, 1));
    FAIL() << "expected a PlanError";
  } catch (const PlanError& e) {
    EXPECT_NE(std::string(e.what()).find("--kernels"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("grouped_experts"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sc
