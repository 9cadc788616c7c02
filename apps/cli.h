// The shardcheck CLI: a registry of subcommands (apps/*.cpp and, with LibTorch, apps/torch/*.cpp
// register themselves), shared flag groups, and the exit-code contract:
//   0 no error findings / success, 1 error findings (or a run that diverged), 2 bad usage or bad input.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "layout/plan.h"
#include "models/config.h"

namespace sc::cli {

// A subcommand: `install` adds it to the app and returns the function run when it is chosen.
struct Command {
  std::string name;
  int order;  // position in --help
  std::function<std::function<int()>(CLI::App& app)> install;
};
bool register_command(Command c);

// --tp --ep --pp --dp --plan --batch --seq --dtype --micro-batches --full-tensor-loading
struct PlanFlags {
  int64_t tp = 1, ep = 1, pp = 1, dp = 1, batch = 1, seq = 128, micro_batches = 1;
  std::string plan = "hf-auto";
  std::string dtype;  // default: the config's dtype
  bool full_tensor_loading = false;
  void add_to(CLI::App* app, bool with_sizes = true);
  ParallelPlan to_plan(const ModelConfig& c) const;  // validates; PlanError on bad values
};

// --device cpu|cuda|cuda:N and --backend gloo|nccl of run and steer: the harness backend and the
// GPU of local rank 0 they mean. cpu: Gloo ranks as threads; cuda[:N]: NCCL, one GPU per rank from
// cuda:N. A contradiction (--device cpu --backend nccl) or a malformed device is a usage error.
struct DeviceFlags {
  std::string device;            // "" (from --backend), "cpu", "cuda", "cuda:N"
  std::string backend = "gloo";
  CLI::Option* backend_opt = nullptr;
  void add_to(CLI::App* app);
  // Sets backend and returns the first GPU (0 on CPU).
  int resolve();
};

// --model DIR|FILE.safetensors or --config FILE (exactly one): the model source of run, steer, bench.
void add_model_source(CLI::App& app, std::string* model, std::string* config);
// That source's config.json: --config, else the checkpoint's folder (a .safetensors file's folder).
std::string model_config_path(const std::string& model, const std::string& config);

// Parses comma lists "1,2,4,8" (flag name for errors).
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag);

// An option validator: an integer of at least `min` ("--repeats: must be an integer >= 1, got '0'").
inline CLI::Validator at_least(int64_t min) {
  return CLI::Validator(
      [min](std::string& v) -> std::string {
        try {
          size_t end = 0;
          if (std::stoll(v, &end) >= min && end == v.size()) return "";
        } catch (const std::exception&) {
        }
        return "must be an integer >= " + std::to_string(min) + ", got '" + v + "'";
      },
      "INT>=" + std::to_string(min));
}

// --gpu-mem: a finite number of GiB >= 0 (0: memory not checked); PlanError echoing the text.
double parse_gib(const std::string& text, const std::string& flag);

// The top-level "schema" of each --json output: "shardcheck.<command>/<major>" (docs/json-schemas.md).
// Keys are only added within a major version; a rename, removal or change of meaning bumps it.
// (gate: reports/gate.cpp, report: checks/strategies.h kReportSchema; steer's eval.json:
// "shardcheck.steer-eval/1".)
inline constexpr const char* kCheckSchema = "shardcheck.check/1";
inline constexpr const char* kMatrixSchema = "shardcheck.matrix/1";
inline constexpr const char* kRunSchema = "shardcheck.run/1";
inline constexpr const char* kReproSchema = "shardcheck.repro/1";
inline constexpr const char* kFuzzSchema = "shardcheck.fuzz/1";
inline constexpr const char* kSteerSchema = "shardcheck.steer/1";
inline constexpr const char* kBenchSchema = "shardcheck.bench/1";

// Print JSON or text to stdout.
void print(const std::string& s);

// Progress of long phases on stderr, with rate-based ETA: on a terminal one line updated in place
// (at most 10 times a second), in a log a line every 15 s while a phase lasts and one at its end.
// Callable as the library's progress callbacks (phase, done, total); thread-safe; phases may
// interleave.
class ProgressLine {
 public:
  ProgressLine();
  void operator()(const std::string& phase, double done, double total);

 private:
  struct State;
  std::shared_ptr<State> s_;
};

}  // namespace sc::cli
