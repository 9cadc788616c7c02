#include "apps/cli.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>

#include "models/errors.h"

namespace sc::cli {

std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}

bool register_command(Command c) {
  registry().push_back(std::move(c));
  return true;
}

void PlanFlags::add_to(CLI::App* app, bool with_sizes) {
  if (with_sizes) {
    app->add_option("--tp", tp, "tensor-parallel size")->capture_default_str();
    app->add_option("--ep", ep, "expert-parallel size")->capture_default_str();
    app->add_option("--pp", pp, "pipeline-parallel size")->capture_default_str();
  }
  app->add_option("--dp", dp, "data-parallel replicas")->capture_default_str();
  app->add_option("--plan", plan, "plan style: hf-auto | replicate-kv")->capture_default_str();
  app->add_option("--batch", batch, "batch size")->capture_default_str();
  app->add_option("--seq", seq, "sequence length")->capture_default_str();
  app->add_option("--dtype", dtype, "float32 | bfloat16 | float16 | float64 (default: the config's)");
  app->add_option("--micro-batches", micro_batches, "pipeline micro-batches")->capture_default_str();
  app->add_flag("--full-tensor-loading", full_tensor_loading,
                "every rank reads full tensors before slicing (as HF's EP loading does)");
}

ParallelPlan PlanFlags::to_plan(const ModelConfig& c) const {
  ParallelPlan p;
  p.tp = tp;
  p.ep = ep;
  p.pp = pp;
  p.dp = dp;
  p.batch = batch;
  p.seq = seq;
  p.micro_batches = micro_batches;
  p.style = plan_style_from_name(plan);
  p.dtype = c.dtype;
  if (!dtype.empty()) {
    auto d = dtype_from_torch_name(dtype);
    if (!d || !dtype_is_float(*d)) throw PlanError("--dtype", dtype, "unknown dtype (float32, bfloat16, float16, float64)");
    p.dtype = *d;
  }
  p.shard_only_loading = !full_tensor_loading;
  p.validate();
  if (p.ep > 1 && !c.is_moe())
    throw PlanError("--ep", std::to_string(p.ep), "expert parallelism needs a MoE model (" + c.model_type + " is dense)");
  return p;
}

void add_model_source(CLI::App& app, std::string* model, std::string* config) {
  auto* src = app.add_option_group("source");
  src->add_option("--model", *model, "HF checkpoint folder (config.json + safetensors)");
  src->add_option("--config", *config, "config.json only: seeded random weights of that shape");
  src->require_option(1);
}

std::string model_config_path(const std::string& model, const std::string& config) {
  if (!config.empty()) return config;
  std::string d = model;
  if (d.size() > 12 && d.substr(d.size() - 12) == ".safetensors") {
    auto slash = d.find_last_of('/');
    d = slash == std::string::npos ? "." : d.substr(0, slash);
  }
  return d + "/config.json";
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag) {
  std::vector<int64_t> out;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string item = text.substr(i, j - i);
    try {
      size_t used = 0;
      long long v = std::stoll(item, &used);
      if (used != item.size() || v < 1) throw std::invalid_argument("x");
      out.push_back(v);
    } catch (const std::exception&) {
      throw PlanError(flag, item.empty() ? text : item, "expected a comma-separated list of positive integers");
    }
    i = j + 1;
  }
  return out;
}

double parse_gib(const std::string& text, const std::string& flag) {
  const char* b = text.c_str();
  char* end = nullptr;
  const double v = std::strtod(b, &end);
  if (text.empty() || end != b + text.size() || !std::isfinite(v) || v < 0)
    throw PlanError(flag, text, "must be a finite number of GiB >= 0 (0: memory not checked)");
  return v;
}

struct ProgressLine::State {
  struct Phase {
    std::chrono::steady_clock::time_point start, last;
    bool ended = false;
  };
  std::mutex mu;
  bool tty = isatty(2) != 0;
  std::map<std::string, Phase> phases;  // phases may interleave (pipeline stages load while others run)
  bool open_line = false;
};

ProgressLine::ProgressLine() : s_(std::make_shared<State>()) {}

void ProgressLine::operator()(const std::string& phase, double done, double total) {
  std::lock_guard<std::mutex> g(s_->mu);
  const auto now = std::chrono::steady_clock::now();
  auto [it, fresh] = s_->phases.try_emplace(phase);
  State::Phase& ph = it->second;
  if (fresh) {
    ph.start = now;
    ph.last = now;
  }
  const bool end = total > 0 && done >= total;
  if (ph.ended) return;
  const double since = std::chrono::duration<double>(now - ph.last).count();
  // A log gets the end of each phase and, for a long one, a line every 15 s (none at its start).
  if (!end && since < (s_->tty ? 0.1 : 15.0)) return;
  ph.last = now;
  ph.ended = end;
  const double elapsed = std::chrono::duration<double>(now - ph.start).count();
  const double frac = total > 0 ? std::min(1.0, done / total) : 0.0;
  char line[256];
  if (end)
    std::snprintf(line, sizeof line, "%s: done in %.1f s", phase.c_str(), elapsed);
  else if (frac > 0.01 && elapsed > 0.5)
    std::snprintf(line, sizeof line, "%s: %3.0f %%, %.0f s elapsed, ETA %.0f s", phase.c_str(), 100 * frac, elapsed,
                  elapsed * (1 - frac) / frac);
  else
    std::snprintf(line, sizeof line, "%s: %3.0f %%, %.0f s elapsed", phase.c_str(), 100 * frac, elapsed);
  if (s_->tty) {
    std::fprintf(stderr, "\r%-72s", line);
    s_->open_line = !end;
    if (end) std::fputc('\n', stderr);
  } else {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}

void print(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  if (s.empty() || s.back() != '\n') std::fputc('\n', stdout);
  std::fflush(stdout);
}

void DeviceFlags::add_to(CLI::App* app) {
  app->add_option("--device", device, "cpu (Gloo ranks as threads) | cuda | cuda:N (NCCL, one GPU per rank from cuda:N)");
  backend_opt = app->add_option("--backend", backend, "gloo (ranks as threads on CPU) | nccl (one GPU per rank)")
                    ->capture_default_str();
}

int DeviceFlags::resolve() {
  if (device.empty()) return 0;
  const bool backend_given = backend_opt && backend_opt->count() > 0;
  if (device == "cpu") {
    if (backend_given && backend != "gloo")
      throw_input_error(InputKind::Usage, "", "--device", device, "contradicts --backend " + backend + " (cpu runs on gloo)");
    backend = "gloo";
    return 0;
  }
  int gpu = 0;
  if (device.rfind("cuda:", 0) == 0) {
    const std::string n = device.substr(5);
    if (n.empty() || n.size() > 4 || n.find_first_not_of("0123456789") != std::string::npos)
      throw_input_error(InputKind::Usage, "", "--device", device, "expected cpu, cuda or cuda:N");
    gpu = std::stoi(n);
  } else if (device != "cuda") {
    throw_input_error(InputKind::Usage, "", "--device", device, "expected cpu, cuda or cuda:N");
  }
  if (backend_given && backend != "nccl")
    throw_input_error(InputKind::Usage, "", "--device", device, "contradicts --backend " + backend + " (cuda runs on nccl)");
  backend = "nccl";
  return gpu;
}

}  // namespace sc::cli

namespace {

// A CLI11 parse error in the one-line form: "Could not convert: --tp = abc" names the flag and the
// value; other errors (a missing or unexpected argument) are the text alone.
sc::InputError usage_error(const CLI::App& app, const std::string& what) {
  const std::string prefix = "Could not convert: ";
  const auto eq = what.find(" = ");
  if (what.rfind(prefix, 0) == 0 && eq != std::string::npos) {
    const std::string flag = what.substr(prefix.size(), eq - prefix.size());
    const CLI::Option* opt = nullptr;
    for (const CLI::App* sub : app.get_subcommands()) opt = opt ? opt : sub->get_option_no_throw(flag);
    const std::string type = opt ? opt->get_type_name() : "";
    const std::string problem = type.rfind("INT", 0) == 0     ? "expected an integer"
                                : type.rfind("FLOAT", 0) == 0 ? "expected a number"
                                                              : "not a valid value for this flag";
    return sc::InputError(sc::InputKind::Usage, "", flag, "\"" + what.substr(eq + 3) + "\"", problem);
  }
  return sc::InputError(sc::InputKind::Usage, "", "", "", what);
}

// CLI11 reads an empty value ("--tp ''") as 0 and an empty output path as "no output": both are
// mistakes (an unset shell variable), refused for every option of the chosen subcommand.
void refuse_empty_values(const CLI::App* sub) {
  for (const CLI::Option* opt : sub->get_options()) {
    if (opt->get_type_size() == 0) continue;  // flags
    for (const std::string& v : opt->results())
      if (v.empty()) throw sc::InputError(sc::InputKind::Usage, "", opt->get_name(), "\"\"", "needs a value, not an empty one");
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sc;
  // LibTorch's CUDA caching allocator with expandable segments unless the user configured it: one
  // process makes weights of many sizes, then runs passes of many sizes, and fixed-size segments
  // keep what they cached for each (tools/gpu/steer_vs_hf.py --compare-alloc measures both).
  if (!std::getenv("PYTORCH_CUDA_ALLOC_CONF") && !std::getenv("PYTORCH_ALLOC_CONF"))
    setenv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True", 0);
  CLI::App app{"shardcheck: find and explain parallelism shape bugs in Qwen3 / Qwen3-MoE models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "shardcheck 0.1.0");
  auto& reg = cli::registry();
  std::sort(reg.begin(), reg.end(), [](const cli::Command& a, const cli::Command& b) { return a.order < b.order; });
  std::vector<std::pair<CLI::App*, std::function<int()>>> runs;
  for (auto& c : reg) {
    CLI::App* sub = app.add_subcommand(c.name);
    runs.emplace_back(sub, c.install(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "shardcheck: %s\n", usage_error(app, e.what()).what());
    return 2;
  }
  try {
    for (auto& [sub, fn] : runs)
      if (sub->parsed()) {
        refuse_empty_values(sub);
        return fn();
      }
  } catch (const InputError& e) {
    std::fprintf(stderr, "shardcheck: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shardcheck: error: %s\n", e.what());
    return 2;
  }
  return 2;
}
