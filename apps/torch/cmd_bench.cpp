// `shardcheck bench`: time one real-width decoder layer (or a whole short model with and without
// all-layer capture) on CPU or CUDA, for each kernel set (ops/kernels.h), optionally
// against a reference output (e.g. HF transformers' layer output for the same weights and input,
// written by tools/gpu/bench_vs_hf.py), reporting per-layer time, tokens/s, NMSE and fraction of
// the bf16 roofline.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#if __has_include(<torch/csrc/autograd/profiler_kineto.h>)
#include <torch/csrc/autograd/profiler_kineto.h>
#define SC_HAVE_KINETO 1
#endif

#include "families/family.h"
#include "apps/cli.h"
#include "checks/checker.h"
#include "checks/strategies.h"
#include "harness/executor.h"
#include "models/errors.h"
#include "families/decoder/model.h"
#include "families/decoder/weights.h"
#include "models/safetensors.h"

namespace sc::cli {
namespace {

struct BenchArgs {
  std::string model, config, input, device = "cpu", dtype = "bfloat16";
  std::vector<std::string> kernels{"eager", "best"};
  int64_t batch = 64, seq = 103, layer = -1, repeats = 20, warmup = 3, back_to_back = -1;
  double peak_tflops = 989.0;
  bool capture = false, json = false, breakdown = false, ignore_memory = false;
  std::string trace;
  uint64_t seed = 1234;
};

at::Tensor read_named(const Checkpoint& ck, const std::string& name, const std::string& file) {
  const TensorInfo& ti = ck.info(name);
  at::ScalarType st = ti.dtype == DType::I64 ? at::kLong : to_scalar_type(ti.dtype);
  at::Tensor t = at::empty(ti.shape, st);
  ck.read(name, t.data_ptr(), ti.nbytes());
  (void)file;
  return t;
}

void sync(const at::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
}

// Median seconds of `fn` over `repeats` runs after `warmup`.
template <class F>
double time_median(const at::Device& d, int64_t warmup, int64_t repeats, F&& fn) {
  for (int64_t i = 0; i < warmup; ++i) fn();
  sync(d);
  std::vector<double> t;
  for (int64_t i = 0; i < repeats; ++i) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    sync(d);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Median seconds per call of `fn` called `n` times back to back with one synchronisation at the
// end, over `repeats` such runs: the time a layer takes inside a model's forward, where the host
// enqueues the next layer while the device runs this one (the method of HF's per-layer number,
// (T(4 layers) - T(2 layers)) / 2). time_median's per-call synchronisation adds the launch latency
// and whatever host work precedes the first kernel to every call.
template <class F>
double time_back_to_back(const at::Device& d, int64_t warmup, int64_t repeats, int64_t n, F&& fn) {
  for (int64_t i = 0; i < warmup; ++i) fn();
  sync(d);
  std::vector<double> t;
  for (int64_t r = 0; r < repeats; ++r) {
    const auto a = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < n; ++i) fn();
    sync(d);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count() / double(n));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Kineto profiler around the timed calls (CPU ops and CUDA kernels), saved as a Chrome trace.
void start_trace(const std::string& path) {
#ifdef SC_HAVE_KINETO
  (void)path;
  using namespace torch::profiler::impl;
  const ProfilerConfig cfg(ProfilerState::KINETO);
  const std::set<ActivityType> acts{ActivityType::CPU, ActivityType::CUDA};
  torch::autograd::profiler::prepareProfiler(cfg, acts);
  torch::autograd::profiler::enableProfiler(cfg, acts);
#else
  throw PlanError("--trace", path, "this LibTorch has no Kineto profiler header");
#endif
}

void stop_trace(const std::string& path) {
#ifdef SC_HAVE_KINETO
  auto result = torch::autograd::profiler::disableProfiler();
  try {
    result->save(path);
  } catch (const std::exception&) {  // LibTorch built without USE_KINETO (Debian's 1.13) has no trace writer
    throw PlanError("--trace", path, "this LibTorch was built without the Kineto profiler; use a torch 2.x LibTorch");
  }
#else
  (void)path;
#endif
}

// Medians of two functions timed in alternation (warmup each first), so that clock or thermal
// drift during the run does not land on one of them: the capture overhead is a few percent.
template <class F, class G>
std::pair<double, double> time_median_pair(const at::Device& d, int64_t warmup, int64_t repeats, F&& f, G&& g) {
  for (int64_t i = 0; i < warmup; ++i) {
    f();
    g();
  }
  std::vector<double> tf, tg;
  for (int64_t i = 0; i < repeats; ++i) {
    tf.push_back(time_median(d, 0, 1, f));
    tg.push_back(time_median(d, 0, 1, g));
  }
  std::sort(tf.begin(), tf.end());
  std::sort(tg.begin(), tg.end());
  return {tf[tf.size() / 2], tg[tg.size() / 2]};
}

// Tokens whose top-k expert set differs from the reference's (ids of the same count, [T, K] or
// [B, S, K]; checked where the input is read), and a mask [T] of those tokens.
std::pair<int64_t, at::Tensor> routing_differs(const at::Tensor& ids, const at::Tensor& ref_ids) {
  const int64_t K = ids.size(-1);
  const at::Tensor a = std::get<0>(at::sort(ids.reshape({-1, K}).to(at::kCPU, at::kLong), 1));
  const at::Tensor b = std::get<0>(at::sort(ref_ids.reshape({-1, K}).to(at::kCPU, at::kLong), 1));
  const at::Tensor differ = a.ne(b).any(1);
  return {differ.sum().item<int64_t>(), differ};
}

double nmse(const at::Tensor& a, const at::Tensor& ref) {
  const at::Tensor x = a.to(at::kCPU, at::kDouble).reshape(ref.sizes()), r = ref.to(at::kCPU, at::kDouble);
  const double den = r.pow(2).sum().item<double>();
  return (x - r).pow(2).sum().item<double>() / (den > 0 ? den : 1.0);
}

// FLOPs of one decoder layer's matmuls for B*S tokens (attention projections, QK^T and PV with
// the causal half, router, top-k experts or the dense MLP).
double layer_flops(const ModelConfig& c, int64_t B, int64_t S, bool sparse) {
  const double T = double(B) * S, H = c.hidden_size, D = c.head_dim;
  const double q = c.num_attention_heads * D, kv = c.num_key_value_heads * D;
  double f = 2 * T * H * (q + 2 * kv) + 2 * T * q * H;              // q, k, v, o
  f += 2.0 * double(B) * c.num_attention_heads * double(S) * S * D;  // QK^T + PV, causal half
  if (sparse)
    f += 2 * T * H * c.num_experts + 2 * T * c.num_experts_per_tok * 3 * H * c.moe_intermediate_size;
  else
    f += 2 * T * 3 * H * c.intermediate_size;
  return f;
}

const bool kBench = register_command({"bench", 70, [](CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  app.description("time a real-width decoder layer per kernel set (CPU or CUDA), optionally against a reference output");
  add_model_source(app, &a->model, &a->config);
  app.add_option("--input", a->input,
                 "safetensors with x [B, S, H] (the layer input) and optionally ref [B, S, H] (reference output)");
  app.add_option("--layer", a->layer, "layer to time (default: the first sparse layer)");
  app.add_option("--device", a->device, "cpu | cuda | cuda:N")->capture_default_str();
  app.add_option("--dtype", a->dtype, "float32 | bfloat16 | float16 | float64")->capture_default_str();
  app.add_option("--batch", a->batch, "batch (without --input)")->capture_default_str();
  app.add_option("--seq", a->seq, "sequence length (without --input)")->capture_default_str();
  app.add_option("--kernels", a->kernels, "kernel sets to compare: eager, best, or e.g. sdpa+grouped_experts (repeatable)")
      ->capture_default_str();
  app.add_option("--repeats", a->repeats, "timed runs (median)")->capture_default_str()->check(at_least(1));
  app.add_option("--warmup", a->warmup, "untimed runs first")->capture_default_str()->check(at_least(0));
  app.add_option("--peak-tflops", a->peak_tflops, "dense bf16 peak of the device for the roofline fraction")
      ->capture_default_str();
  app.add_option("--seed", a->seed, "seed of random weights and inputs")->capture_default_str();
  app.add_flag("--capture", a->capture,
               "time the whole model's forward with and without all-layer read-position capture instead of one layer");
  app.add_option("--trace", a->trace,
                 "write a Chrome trace (LibTorch's Kineto profiler: ops and CUDA kernels) of the timed layer calls; "
                 "with several --kernels, FILE.<kernels>.json each");
  app.add_option("--back-to-back", a->back_to_back,
                 "also time this many layer calls back to back with one synchronisation (per-layer time inside a "
                 "model's forward); 0 or 1: off (default: 10 on CUDA, off on CPU where calls are synchronous)")
      ->check(at_least(0));
  app.add_flag("--breakdown", a->breakdown, "also time the layer's parts: attention block, router, MoE block");
  app.add_flag("--ignore-memory-estimate", a->ignore_memory,
               "run even when the predicted memory of the timed weights and activations exceeds what the device has");
  app.add_flag("--json", a->json, "JSON output");
  return [a]() -> int {
    const std::string cfg_path = model_config_path(a->model, a->config);
    const ModelConfig c = read_model_config_file(cfg_path);
    require_forward_support(c);  // a family with a spec only: one line, before anything else
    at::Device device(at::kCPU);
    try {
      device = at::Device(a->device);
    } catch (const std::exception&) {
      throw_input_error(InputKind::Usage, "", "--device", a->device, "expected cpu, cuda or cuda:N");
    }
    if (device.is_cuda() && !torch::cuda::is_available())
      throw_input_error(InputKind::Usage, "", "--device", a->device, "no CUDA device is available");
    const auto dt = dtype_from_torch_name(a->dtype);
    if (!dt || !dtype_is_float(*dt))
      throw PlanError("--dtype", a->dtype, "unknown dtype (float32, bfloat16, float16, float64)");
    const at::ScalarType st = to_scalar_type(*dt);
    if (a->capture && a->back_to_back > 1)
      throw PlanError("--back-to-back", std::to_string(a->back_to_back),
                      "times single layers; --capture times whole forwards (in alternation, per call)");
    at::NoGradGuard ng;

    int64_t layer = a->layer;
    if (layer < 0) {
      layer = 0;
      for (int64_t l = 0; l < c.num_hidden_layers; ++l)
        if (c.layer_is_sparse(l)) {
          layer = l;
          break;
        }
    }
    if (layer >= c.num_hidden_layers)
      throw_input_error(InputKind::Usage, cfg_path, "--layer", std::to_string(layer),
                        "the model has " + std::to_string(c.num_hidden_layers) + " layers");
    // Memory first: the timed weights (one layer, or the whole model with --capture) plus one
    // forward's activations (the checker's model), against the GPU's free or the host's available memory.
    const ParallelPlan plan;
    {
      ParallelPlan pd;
      pd.dtype = *dt;
      pd.batch = a->batch;
      pd.seq = a->seq;
      const RankMemory m = estimate_memory(c, pd).front();
      const int64_t weights = a->capture ? m.weight_bytes : c.layer_params(layer) * int64_t(dtype_size(*dt));
      const int64_t need = weights + m.activation_bytes;
      const int64_t have = device.is_cuda() ? cuda_memory(device.has_index() ? device.index() : 0).first : host_available_bytes();
      if (!a->ignore_memory && have > 0 && need > have) {
        char text[320];
        std::snprintf(text, sizeof text,
                      "%s needs about %.1f GiB (%s weights %.1f GiB plus activations of batch %lld x seq %lld) but %s "
                      "has %.1f GiB free; use a smaller --batch / --seq or dtype, or --ignore-memory-estimate",
                      a->capture ? "the whole model's forward" : ("layer " + std::to_string(layer)).c_str(),
                      double(need) / (1 << 30), a->dtype.c_str(), double(weights) / (1 << 30), (long long)a->batch,
                      (long long)a->seq, device.is_cuda() ? a->device.c_str() : "the host", double(have) / (1 << 30));
        throw PlanError("memory", c.name.empty() ? cfg_path : c.name, text);
      }
    }
    ProgressLine progress;
    LoadOptions o;
    o.dtype = st;
    o.device = device;
    {
      const double total = double(a->capture ? c.total_params() : c.layer_params(layer)) * double(dtype_size(*dt));
      auto done = std::make_shared<double>(0);
      o.on_tensor = [progress, done, total, src = a->model.empty() ? std::string("generating random weights")
                                                                   : std::string("loading weights")](uint64_t b) mutable {
        *done += double(b);
        progress(src, std::min(*done, total), total);
      };
    }
    if (!a->capture) {
      o.first_layer = layer;
      o.last_layer = layer + 1;
      o.with_embed = 0;
      o.with_head = 0;
    }
    ModelWeights w;
    if (!a->model.empty()) {
      const Checkpoint ck = Checkpoint::open(a->model);
      summarize_checkpoint(c, a->model).require_loadable();
      w = load_weights(ck, c, plan, 0, o);
    } else {
      w = random_weights(c, plan, 0, a->seed, o);
    }
    progress(a->model.empty() ? "generating random weights" : "loading weights", 1, 1);

    at::Tensor x, ref, ref_topk;
    if (!a->input.empty()) {
      const Checkpoint in = Checkpoint::open(a->input);
      x = read_named(in, "x", a->input).to(device, st);
      if (in.has("ref")) ref = read_named(in, "ref", a->input);
      if (in.has("ref_topk")) ref_topk = read_named(in, "ref_topk", a->input);
      auto bad = [&](const char* key, const at::Tensor& t, const std::string& expected) {
        throw_input_error(InputKind::Checkpoint, a->input, key, shape_str(t.sizes().vec()), "expected " + expected);
      };
      const std::string xs = "[B, S, " + std::to_string(c.hidden_size) + "]";
      if (x.dim() != 3 || x.size(2) != c.hidden_size) bad("x", x, xs);
      if (ref.defined() && ref.sizes() != x.sizes()) bad("ref", ref, "the shape of x, " + shape_str(x.sizes().vec()));
      const int64_t K = c.num_experts_per_tok;
      if (ref_topk.defined() && (!at::isIntegralType(ref_topk.scalar_type(), false) || ref_topk.dim() < 2 ||
                                 ref_topk.size(-1) != K || ref_topk.numel() != x.size(0) * x.size(1) * K))
        bad("ref_topk", ref_topk,
            "integer expert ids [B * S, " + std::to_string(K) + "] = [" + std::to_string(x.size(0) * x.size(1)) + ", " +
                std::to_string(K) + "]");
    }
    const int64_t B = x.defined() ? x.size(0) : a->batch, S = x.defined() ? x.size(1) : a->seq;
    if (!x.defined()) {
      at::manual_seed(a->seed);
      x = at::randn({B, S, c.hidden_size}, at::TensorOptions().dtype(at::kFloat)).to(device, st);
    }
    const at::Tensor ids = at::randint(c.vocab_size, {B, S}, at::TensorOptions().dtype(at::kLong)).to(device);

    nlohmann::json rows = nlohmann::json::array();
    const std::string timing_phase = "timing " + std::to_string(a->kernels.size()) + " kernel set(s), " +
                                     std::to_string(a->warmup + a->repeats) + " calls each";
    const double flops = layer_flops(c, B, S, c.layer_is_sparse(layer));
    for (const std::string& ks : a->kernels) {
      Kernels k;
      try {
        k = parse_kernels(ks, device, st);
      } catch (const std::invalid_argument& e) {
        throw PlanError("--kernels", ks, e.what());
      }
      prepare_kernels(w, k);
      progress(timing_phase, double(&ks - &a->kernels[0]), double(a->kernels.size()));
      nlohmann::json row{{"kernels", describe(k)}};
      if (a->capture) {
        ForwardInputs fin;
        fin.input_ids = ids;
        CaptureSpec cap;
        cap.all_layers = true;
        cap.positions = at::full({B}, S - 1, at::TensorOptions().dtype(at::kLong).device(device));
        const auto [plain, captured] =
            time_median_pair(device, a->warmup, a->repeats, [&] { forward(w, c, fin, local_comm()); },
                             [&] { forward(w, c, fin, local_comm(), cap); });
        row["forward_ms"] = plain * 1e3;
        row["forward_capture_ms"] = captured * 1e3;
        row["capture_overhead_pct"] = (captured / plain - 1) * 100;
      } else {
        const LayerWeights& L = w.layer(layer);
        AttentionContext ctx = make_attention_context(c, ForwardInputs{}, B, S, st, device);
        ctx.kernels = w.kernels;
        LayerOutput out;
        const std::string trace =
            a->trace.empty() || a->kernels.size() == 1 ? a->trace : a->trace + "." + describe(k) + ".json";
        if (!trace.empty()) {  // the profiler records exactly the timed layer calls
          for (int64_t i = 0; i < a->warmup; ++i) decoder_layer_forward(L, c, w.attn_layout, x, ctx, local_comm());
          sync(device);
          start_trace(trace);
        }
        const double s = time_median(device, trace.empty() ? a->warmup : 0, a->repeats,
                                     [&] { out = decoder_layer_forward(L, c, w.attn_layout, x, ctx, local_comm()); });
        if (!trace.empty()) {
          stop_trace(trace);
          row["trace"] = trace;
        }
        row["layer_ms"] = s * 1e3;
        const int64_t n_b2b = a->back_to_back >= 0 ? a->back_to_back : device.is_cuda() ? 10 : 0;
        if (n_b2b > 1)
          row["layer_ms_back_to_back"] =
              1e3 * time_back_to_back(device, std::max<int64_t>(1, a->warmup), std::max<int64_t>(3, a->repeats / 4), n_b2b,
                                      [&] { decoder_layer_forward(L, c, w.attn_layout, x, ctx, local_comm()); });
        row["tokens_per_s"] = double(B * S) / s;
        row["tflops"] = flops / s / 1e12;
        row["roofline_fraction"] = flops / s / 1e12 / a->peak_tflops;
        if (ref.defined()) row["nmse_vs_ref"] = nmse(out.hidden, ref);
        if (ref.defined() && ref_topk.defined() && out.routing.ids.defined()) {
          // A token whose expert set differs (a near-tie flipped by rounding) differs by O(1) and
          // dominates the NMSE; the tokens routed alike show the arithmetic.
          const auto [n, differ] = routing_differs(out.routing.ids, ref_topk);
          row["tokens_routed_differently"] = n;
          row["tokens"] = B * S;
          const at::Tensor same = differ.logical_not().nonzero().squeeze(1);
          const at::Tensor o2 = out.hidden.reshape({B * S, -1}).to(at::kCPU), r2 = ref.reshape({B * S, -1}).to(at::kCPU);
          row["nmse_vs_ref_routed_alike"] = nmse(o2.index_select(0, same), r2.index_select(0, same));
        }
        if (out.routing.ids.defined() && c.num_experts > 0) {
          // The load the expert GEMMs see: rows (token-expert pairs) per expert of this call.
          const at::Tensor counts = at::bincount(out.routing.ids.reshape(-1).to(at::kCPU), {}, c.num_experts);
          row["expert_rows"] = {{"min", counts.min().item<int64_t>()},
                                {"mean", double(counts.sum().item<int64_t>()) / double(c.num_experts)},
                                {"max", counts.max().item<int64_t>()}};
        }
        if (a->breakdown) {
          const double eps = c.rms_norm_eps;
          const at::Tensor hn = rms_norm(out.attn_residual, L.post_norm, eps, k);
          nlohmann::json parts;
          parts["attention_block_ms"] = 1e3 * time_median(device, a->warmup, a->repeats, [&] {
            attention_forward(L.attn, c, w.attn_layout, rms_norm(x, L.input_norm, eps, k), ctx, local_comm());
          });
          if (L.sparse && L.has_mlp) {
            parts["router_ms"] = 1e3 * time_median(device, a->warmup, a->repeats,
                                                   [&] { route(hn.reshape({-1, c.hidden_size}), L.moe.router, c, k); });
            parts["moe_block_ms"] = 1e3 * time_median(device, a->warmup, a->repeats,
                                                      [&] { moe_forward(L.moe, c, rms_norm(out.attn_residual, L.post_norm, eps, k), local_comm(), k); });
          }
          row["breakdown"] = parts;
        }
      }
      rows.push_back(row);
    }
    progress(timing_phase, double(a->kernels.size()), double(a->kernels.size()));
    nlohmann::json j{{"model", c.name},       {"layer", layer},         {"device", device.str()},
                     {"dtype", a->dtype},     {"batch", B},             {"seq", S},
                     {"layer_tflop", flops / 1e12}, {"peak_tflops", a->peak_tflops}, {"results", rows}};
    if (a->json) {
      j["schema"] = kBenchSchema;
      print(j.dump(2));
    } else {
      std::string s = "shardcheck bench: " + c.name + " layer " + std::to_string(layer) + " on " + device.str() + ", " +
                      a->dtype + ", batch " + std::to_string(B) + " x seq " + std::to_string(S) + "\n";
      for (const auto& r : rows) {
        char buf[256];
        if (a->capture)
          std::snprintf(buf, sizeof buf, "  %-34s forward %.3f ms, with all-layer capture %.3f ms (%+.2f %%)\n",
                        r["kernels"].get<std::string>().c_str(), r["forward_ms"].get<double>(),
                        r["forward_capture_ms"].get<double>(), r["capture_overhead_pct"].get<double>());
        else
          std::snprintf(buf, sizeof buf, "  %-34s %.3f ms/layer  %.0f tok/s  %.1f TFLOP/s (%.0f %% of %.0f)",
                        r["kernels"].get<std::string>().c_str(), r["layer_ms"].get<double>(),
                        r["tokens_per_s"].get<double>(), r["tflops"].get<double>(),
                        100 * r["roofline_fraction"].get<double>(), a->peak_tflops);
        s += buf;
        if (r.contains("layer_ms_back_to_back")) {
          std::snprintf(buf, sizeof buf, "  %.3f ms/layer back to back", r["layer_ms_back_to_back"].get<double>());
          s += buf;
        }
        if (!a->capture && r.contains("nmse_vs_ref")) {
          std::snprintf(buf, sizeof buf, "  nmse vs ref %.2e", r["nmse_vs_ref"].get<double>());
          s += buf;
          if (r.contains("tokens_routed_differently")) {
            std::snprintf(buf, sizeof buf, " (%lld of %lld tokens routed to other experts; over the rest %.2e)",
                          (long long)r["tokens_routed_differently"].get<int64_t>(), (long long)r["tokens"].get<int64_t>(),
                          r["nmse_vs_ref_routed_alike"].get<double>());
            s += buf;
          }
        }
        if (r.contains("expert_rows")) {
          const auto& er = r["expert_rows"];
          std::snprintf(buf, sizeof buf, "  rows per expert min %lld mean %.0f max %lld",
                        (long long)er["min"].get<int64_t>(), er["mean"].get<double>(), (long long)er["max"].get<int64_t>());
          s += buf;
        }
        if (!a->capture) s += "\n";
        if (r.contains("breakdown")) s += "    parts: " + r["breakdown"].dump() + "\n";
      }
      print(s);
    }
    return 0;
  };
}});

}  // namespace
}  // namespace sc::cli
