// `shardcheck steer`: extract steering vectors from a contrastive dataset (batched, all layers,
// single-device or sharded through the harness), evaluate them CAA-style (layers x multipliers),
// and export safetensors / a llama.cpp control vector / the evaluation as JSON and CSV.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "families/family.h"
#include "apps/cli.h"
#include "harness/executor.h"
#include "models/atomic_file.h"
#include "models/dataset.h"
#include "models/errors.h"
#include "families/decoder/weights.h"
#include "models/tokenizer.h"
#include "steering/evaluate.h"
#include "steering/export.h"
#include "steering/extract.h"

namespace sc::cli {
namespace {

struct SteerArgs {
  std::string model, config, dataset, tokenizer, layers = "all", multipliers = "-2,-1,0,1,2", out, kernels = "auto";
  std::string system_prompt;
  PlanFlags plan;
  DeviceFlags device;
  int64_t batch_size = 8;
  uint64_t seed = 1234;
  bool pca = false, json = false, allow_vocab_mismatch = false, no_eval = false;
  bool naive_sweep = false, compare_sweeps = false, ignore_memory = false;
  std::string dump_tokens;
  int64_t eval_limit = 0;
  int64_t sweep_pass_tokens = 65536;
  double timeout_s = 600;
};

std::vector<double> parse_double_list(const std::string& text, const std::string& flag) {
  std::vector<double> v;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      v.push_back(std::stod(item, &used));
      if (used != item.size() || !std::isfinite(v.back())) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw_input_error(InputKind::Usage, "", flag, text, "expected a comma-separated list of finite numbers");
    }
  }
  if (v.empty()) throw_input_error(InputKind::Usage, "", flag, text, "expected at least one number");
  return v;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const bool kSteer = register_command({"steer", 40, [](CLI::App& app) {
  auto a = std::make_shared<SteerArgs>();
  app.description("extract steering vectors (batched, all layers, sharded or not), evaluate them and export them");
  add_model_source(app, &a->model, &a->config);
  app.add_option("--dataset", a->dataset, "CAA JSON (A/B items) or pairs JSONL")->required();
  app.add_option("--tokenizer", a->tokenizer, "folder with tokenizer.json (default: the fetched Qwen3 tokenizer)");
  a->plan.add_to(&app);
  app.add_option("--layers", a->layers, "layers to evaluate: all | comma list (0-based HF decoder layers)")->capture_default_str();
  app.add_option("--multipliers", a->multipliers, "steering multipliers to sweep")->capture_default_str();
  app.add_option("--batch-size", a->batch_size, "examples per forward")->capture_default_str();
  app.add_flag("--pca", a->pca, "steer with the first principal component of the differences (sign of the mean)");
  app.add_option("--out", a->out, "output folder: vectors.safetensors, control_vector.gguf, eval.json, eval.csv, eval.html (SVG charts)");
  app.add_option("--system-prompt", a->system_prompt, "system message of every prompt");
  a->device.add_to(&app);
  app.add_option("--kernels", a->kernels,
                 "auto (best on CUDA, eager on CPU) | eager | best | e.g. sdpa+grouped_experts (torch 2.x, CUDA)")
      ->capture_default_str();
  app.add_option("--seed", a->seed, "seed of random weights (--config)")->capture_default_str();
  app.add_option("--timeout", a->timeout_s, "seconds before a stuck collective fails the run")->capture_default_str();
  app.add_flag("--allow-vocab-mismatch", a->allow_vocab_mismatch,
               "map token ids modulo a smaller model vocab (smoke tests on tiny random models only)");
  app.add_flag("--no-eval", a->no_eval, "extract and export only");
  app.add_option("--eval-limit", a->eval_limit, "evaluate the first N examples only (0: all)")->check(CLI::NonNegativeNumber);
  app.add_option("--dump-tokens", a->dump_tokens,
                 "write the token ids every forward uses (extraction pairs, read positions, eval prompts) as JSON, "
                 "for running another implementation on exactly the same inputs");
  app.add_flag("--ignore-memory-estimate", a->ignore_memory,
               "run even when the predicted host memory of the ranks exceeds what this host has available");
  app.add_flag("--naive-sweep", a->naive_sweep,
               "evaluate with a full forward per (layer, batch) instead of the prefix KV cache");
  app.add_option("--sweep-pass-tokens", a->sweep_pass_tokens,
                 "cached sweep: suffix tokens per pass, the pass's activation memory (as many steered layers share a "
                 "pass as fit)")
      ->capture_default_str()
      ->check(at_least(1));
  app.add_flag("--compare-sweeps", a->compare_sweeps,
               "also run the other sweep: measured speed-up and largest logit-difference gap");
  app.add_flag("--json", a->json, "JSON summary on stdout");
  return [a]() -> int {
    // Under torchrun: one rank per process; rank 0 gathers the vectors, shares them for the sweep,
    // writes the outputs and reports; every process exits with rank 0's result.
    const bool torchrun = torchrun_job();
    const bool follower = torchrun && read_env_rank().rank != 0;
    const std::string cfg_path = model_config_path(a->model, a->config);
    const ModelConfig c = read_model_config_file(cfg_path);
    require_forward_support(c);  // a family with a spec only: one line, before anything else
    // Outputs first: an unwritable --out fails now, not after extraction and evaluation.
    if (!a->out.empty()) require_writable_dir(a->out);
    if (a->plan.dtype.empty()) a->plan.dtype = "float32";
    const ParallelPlan p = a->plan.to_plan(c);
    const int first_gpu = a->device.resolve();  // a malformed or contradictory --device: one line, now
    if (a->batch_size < 1) throw_input_error(InputKind::Usage, "", "--batch-size", std::to_string(a->batch_size), "must be >= 1");

    // Tokenizer and vocab coverage: --tokenizer, else the model folder's own tokenizer.json, else
    // the fetched Qwen3 tokenizer (random-weight --config runs).
    std::string tok_dir = a->tokenizer;
    if (tok_dir.empty() && !a->model.empty() && std::filesystem::is_regular_file(std::filesystem::path(a->model) / "tokenizer.json"))
      tok_dir = a->model;
    if (tok_dir.empty()) tok_dir = qwen3_tokenizer_dir();
    if (tok_dir.empty())
      throw_input_error(InputKind::Tokenizer, "", "--tokenizer", "",
                        "no tokenizer: pass --tokenizer DIR or fetch Qwen3's (tools/fetch_tokenizer.sh)");
    const Tokenizer tok = Tokenizer::from_dir(tok_dir);
    std::function<TokenId(TokenId)> map_id;
    if (int64_t(tok.vocab_size()) > c.vocab_size) {
      if (!a->allow_vocab_mismatch)
        throw ConfigError(cfg_path, "/vocab_size", std::to_string(c.vocab_size),
                          "smaller than the tokenizer's " + std::to_string(tok.vocab_size()) + " ids (" + tok.file() +
                              "); pass a matching model, or --allow-vocab-mismatch for a smoke test with ids modulo the vocab");
      const int64_t V = c.vocab_size;
      map_id = [V](TokenId t) { return TokenId(int64_t(t) % V); };
    }

    DatasetOptions dopt;
    dopt.system_prompt = a->system_prompt;
    const Dataset ds = load_dataset(a->dataset, dopt);
    if (ds.examples.empty()) throw DatasetError(a->dataset, "", "", "no examples");
    std::vector<TokenizedExample> tex = tokenize_dataset(ds, tok);
    if (map_id)
      for (auto& e : tex) {
        for (TokenId& t : e.positive) t = map_id(t);
        for (TokenId& t : e.negative) t = map_id(t);
      }
    TokenId pad = tok.pad_id().value_or(0);
    if (map_id) pad = map_id(pad);
    // Prompts the model cannot position: refused before any forward (naming the example).
    auto require_fits = [&](size_t i, const char* side, size_t n) {
      if (c.max_position_embeddings > 0 && int64_t(n) > c.max_position_embeddings)
        throw DatasetError(a->dataset, "examples[" + std::to_string(i) + "]." + side, std::to_string(n) + " tokens",
                           "longer than max_position_embeddings = " + std::to_string(c.max_position_embeddings) +
                               " of " + cfg_path);
    };
    for (size_t i = 0; i < tex.size(); ++i) {
      require_fits(i, "positive", tex[i].positive.size());
      require_fits(i, "negative", tex[i].negative.size());
    }

    RunSpec spec;
    spec.checkpoint = a->model;
    spec.seed = a->seed;
    spec.dtype = to_scalar_type(p.dtype);
    spec.launch.first_gpu = first_gpu;
    spec.backend = a->device.backend;
    spec.kernels = a->kernels;
    spec.keep_weights = true;  // extraction and sweep share one load (release_kept_weights below)
    spec.launch.timeout = std::chrono::milliseconds(int64_t(a->timeout_s * 1000));
    spec.check_memory = !a->ignore_memory;
    spec.progress = ProgressLine();

    // Layers and multipliers (validated before any forward runs).
    std::vector<int64_t> layers;
    if (a->layers != "all") {
      layers = parse_int_list(a->layers, "--layers");
      for (int64_t l : layers)
        if (l < 0 || l >= c.num_hidden_layers)
          throw_input_error(InputKind::Usage, "", "--layers", a->layers,
                            "layer " + std::to_string(l) + " outside [0, " + std::to_string(c.num_hidden_layers) + ")");
    }
    const std::vector<double> mults = parse_double_list(a->multipliers, "--multipliers");

    // Evaluation prompts (CAA files), checked and limited before any forward.
    const bool can_eval = !a->no_eval && ds.format == DatasetFormat::CaaJson;
    std::vector<EvalExample> eex;
    if (can_eval) {
      eex = make_eval_examples(ds, tok, map_id);
      if (a->eval_limit > 0 && int64_t(eex.size()) > a->eval_limit) eex.resize(size_t(a->eval_limit));
      for (size_t i = 0; i < eex.size(); ++i) require_fits(i, "eval prompt", eex[i].prompt.size());
    }
    if (!a->dump_tokens.empty() && !follower) {
      nlohmann::json d = {{"pad_id", pad}, {"extract", nlohmann::json::array()}, {"eval", nlohmann::json::array()}};
      for (const TokenizedExample& e : tex)
        d["extract"].push_back({{"positive", e.positive}, {"negative", e.negative}, {"positive_read", e.positive_read},
                                {"negative_read", e.negative_read}});
      for (const EvalExample& e : eex)
        d["eval"].push_back({{"prompt", e.prompt}, {"instruction_end", e.instruction_end}, {"match", e.match},
                             {"nonmatch", e.nonmatch}});
      write_file_atomic(a->dump_tokens, d.dump());
    }

    // The header once the extraction's launch has passed its checks (a refusal is then the only line).
    spec.on_checked = [&, printed = false]() mutable {
      if (printed || follower) return;
      printed = true;
      std::fprintf(stderr, "steer: %zu examples from %s, %s, %s\n", tex.size(), a->dataset.c_str(), p.describe().c_str(),
                   a->model.empty() ? "random weights" : a->model.c_str());
    };
    ExtractOptions eo;
    eo.batch_size = a->batch_size;
    eo.pad_id = pad;
    eo.pca = a->pca;
    eo.progress = [](const ExtractProgress& pr) {
      std::fprintf(stderr, "\rextract: batch %lld/%lld, %.0f tokens/s, ETA %.0f s   ", (long long)pr.batches_done,
                   (long long)pr.batches_total, pr.tokens_per_s, pr.eta_s);
      if (pr.batches_done == pr.batches_total) std::fprintf(stderr, "\n");
    };
    if (follower) eo.progress = nullptr;
    // GPU memory per phase (LibTorch's caching allocator on this process's first GPU).
    const bool on_gpu = spec.backend == "nccl";
    nlohmann::json gpu_memory;
    auto memory_phase = [&](const char* phase) {  // the peaks since the previous phase (or the start)
      const CudaAllocatorPeaks m = cuda_allocator_peaks(first_gpu, /*reset=*/true);
      if (m.allocated >= 0)
        gpu_memory[phase] = {{"peak_allocated_bytes", m.allocated},
                             {"peak_reserved_bytes", m.reserved},
                             {"alloc_retries", m.alloc_retries}};
    };
    const SteeringResult r = extract(c, p, spec, tex, eo);
    if (on_gpu) memory_phase("extract");
    std::map<int64_t, at::Tensor> vectors;
    for (int64_t l : r.layers) vectors[l] = r.direction(l, a->pca);
    if (torchrun) {  // rank 0 has every layer's vector: the sweep needs them on every process
      std::vector<std::pair<std::string, at::Tensor>> named;
      for (const auto& [l, v] : vectors) named.emplace_back(std::to_string(l), v);
      vectors.clear();
      for (auto& [name, v] : unpack_tensors(share_from_rank0(follower ? std::string() : pack_tensors(named))))
        vectors[std::stoll(name)] = v;
    }

    ExportInfo info;
    info.model = a->model.empty() ? c.name + " (random weights, seed " + std::to_string(a->seed) + ")" : a->model;
    info.dataset_sha256 = sha256_hex(read_bytes(a->dataset));
    info.use_pca = a->pca;

    EvalResult ev;
    struct SweepComparison {
      double naive_s = 0, cached_s = 0, max_gap = 0;
    };
    std::optional<SweepComparison> compare;
    if (can_eval) {
      EvalOptions vo;
      vo.layers = layers;
      vo.multipliers = mults;
      vo.batch_size = a->batch_size;
      vo.pad_id = pad;
      vo.progress = [](int64_t done, int64_t total) {
        std::fprintf(stderr, "\revaluate: forward %lld/%lld   ", (long long)done, (long long)total);
        if (done == total) std::fprintf(stderr, "\n");
      };
      vo.cached = !a->naive_sweep;
      vo.max_pass_tokens = a->sweep_pass_tokens;
      if (follower) vo.progress = nullptr;
      ev = evaluate(c, p, spec, eex, vectors, vo);
      if (a->compare_sweeps) {
        EvalOptions other = vo;
        other.cached = !vo.cached;
        other.progress = nullptr;
        std::fprintf(stderr, "evaluate: running the %s sweep for comparison\n", other.cached ? "cached" : "naive");
        const EvalResult ev2 = evaluate(c, p, spec, eex, vectors, other);
        const EvalResult& naive = vo.cached ? ev2 : ev;
        const EvalResult& cached = vo.cached ? ev : ev2;
        double gap = 0;
        for (size_t l = 0; l < ev.layers.size(); ++l)
          for (size_t k = 0; k < ev.layers[l].example_logit_diff.size(); ++k)
            for (size_t i = 0; i < ev.layers[l].example_logit_diff[k].size(); ++i)
              gap = std::max(gap, std::abs(ev.layers[l].example_logit_diff[k][i] - ev2.layers[l].example_logit_diff[k][i]));
        compare = SweepComparison{naive.seconds, cached.seconds, gap};
      }
    } else if (!a->no_eval) {
      std::fprintf(stderr, "steer: %s is a pairs file (no A/B answers): evaluation skipped\n", a->dataset.c_str());
    }
    if (on_gpu && can_eval) memory_phase("sweep");
    release_kept_weights();  // the last launch is done

    if (follower) return share_from_rank0("") == "0" ? 0 : 1;

    if (!a->out.empty()) {
      namespace fs = std::filesystem;
      write_vectors_safetensors((fs::path(a->out) / "vectors.safetensors").string(), r, info);
      write_control_vector_gguf((fs::path(a->out) / "control_vector.gguf").string(), vectors,
                                gguf_architecture(c.model_type));
      if (can_eval) {
        write_eval_json((fs::path(a->out) / "eval.json").string(), ev, info);
        write_eval_csv((fs::path(a->out) / "eval.csv").string(), ev);
        write_eval_html((fs::path(a->out) / "eval.html").string(), ev, info);
      }
    }

    if (a->json) {
      nlohmann::json j{{"model", info.model},
                       {"dataset", a->dataset},
                       {"dataset_sha256", info.dataset_sha256},
                       {"plan", p},
                       {"examples", r.num_examples},
                       {"extract_seconds", r.seconds},
                       {"load_seconds", r.load_seconds},
                       {"extract_batch_seconds", r.batch_seconds},
                       {"tokens", r.tokens},
                       {"layers", r.layers}};
      std::map<std::string, double> norms;
      for (const auto& [l, v] : vectors) norms[std::to_string(l)] = v.norm().item<double>();
      j["vector_norms"] = norms;
      if (can_eval) {
        j["evaluation"] = ev;
        nlohmann::json sw{{"mode", ev.cached ? "cached" : "naive"},
                          {"seconds", ev.seconds},
                          {"token_layers", ev.token_layers},
                          {"naive_token_layers", ev.naive_token_layers},
                          {"work_ratio", ev.work_ratio()}};
        if (compare)
          sw["measured"] = {{"naive_seconds", compare->naive_s},
                            {"cached_seconds", compare->cached_s},
                            {"speedup", compare->cached_s > 0 ? compare->naive_s / compare->cached_s : 0.0},
                            {"max_abs_logit_diff_gap", compare->max_gap}};
        j["sweep"] = sw;
      }
      if (!gpu_memory.is_null()) {
        gpu_memory["device"] = first_gpu;
        j["gpu_memory"] = gpu_memory;
      }
      j["schema"] = kSteerSchema;
      print(j.dump(2));
    } else {
      std::ostringstream os;
      os << "steering vectors: " << r.layers.size() << " layers from " << r.num_examples << " examples in " << r.seconds
         << " s (" << (a->pca ? "pca" : "mean difference") << ")\n";
      if (can_eval) {
        os << "layer  slope(logit diff / multiplier)  logit diff at multipliers";
        for (double m : mults) os << ' ' << m;
        os << "\n";
        for (const LayerEval& le : ev.layers) {
          os << le.layer << "  " << le.slope << " ";
          for (double d : le.logit_diff) os << ' ' << d;
          os << "\n";
        }
        os << "best layer by slope: " << ev.best_layer << "\n";
        char line[320];
        if (ev.cached)
          std::snprintf(line, sizeof line,
                        "sweep: cached prefix KV, %.2f s; %.1fx fewer token-layers than the naive layers x multipliers x full passes\n",
                        ev.seconds, ev.work_ratio());
        else
          std::snprintf(line, sizeof line, "sweep: naive full passes, %.2f s (the cached sweep would run %.1fx fewer token-layers)\n",
                        ev.seconds, ev.work_ratio());
        os << line;
        if (compare) {
          std::snprintf(line, sizeof line,
                        "sweep speed-up (measured): naive %.2f s / cached %.2f s = %.2fx; largest logit-difference gap %.3g\n",
                        compare->naive_s, compare->cached_s, compare->cached_s > 0 ? compare->naive_s / compare->cached_s : 0.0,
                        compare->max_gap);
          os << line;
        }
      }
      if (!a->out.empty()) os << "written to " << a->out << "\n";
      if (torchrun) os << "(one job across " << read_env_rank().world << " torchrun processes, one rank each)\n";
      print(os.str());
    }
    if (torchrun) share_from_rank0("0");
    return 0;
  };
}});

}  // namespace
}  // namespace sc::cli
