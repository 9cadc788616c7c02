// The CI gate (`shardcheck gate`): the checker over configs x layouts, compared with a baseline
// of known, accepted failures. Torch-free. The baseline format (docs/gate.md) is a JSON array:
//   [{"config": "qwen3-235b-a22b", "tp": 8, "ep": 1, "pp": 1, "plan": "hf-auto",
//     "finding": "kv-heads-split", "reason": "optional free text"}]
// "config" is the config's name (its folder) or the path as given on the command line.
//
// A case (config x layout) is
//   pass           no error finding;
//   fail           an error finding the baseline does not list (exit code 1);
//   known-failure  every error finding is listed in the baseline (JUnit: skipped);
//   skipped        the layout does not exist (tp/ep not dividing, ep > 1 on a dense model);
//   error          the model config could not be read (unreadable, invalid JSON, a bad value):
//                  one case per such config, holding the config error's text; the other configs
//                  are still gated (exit code 3, docs/gate.md).
// Files that are not model configs (generation_config.json, tokenizer_config.json, ...: see
// not_a_model_config) are not cases: they are listed as skipped files with the reason.
// A baseline entry is stale when its config and layout were evaluated in this run but the finding
// no longer occurs (reported; not a failure). Entries for configs or layouts outside this run are
// ignored, so one baseline can serve a repository of configs while CI checks only changed ones.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checks/findings.h"
#include "layout/plan.h"
#include "models/config.h"

namespace sc {

struct BaselineEntry {
  std::string config;
  int64_t tp = 1, ep = 1, pp = 1;
  std::string plan = "hf-auto";
  std::string finding;
  std::string reason;  // free text, kept when read and written
  bool operator<(const BaselineEntry& o) const;
  bool operator==(const BaselineEntry& o) const;
  std::string describe() const;  // "qwen3-235b-a22b tp=8 ep=1 pp=1 plan=hf-auto: kv-heads-split"
};

// Reads a baseline file; InputError naming the file (and the entry) on any malformed content.
std::vector<BaselineEntry> read_baseline(const std::string& path);
// The baseline as JSON text: sorted, one entry per line, stable across runs.
std::string baseline_json(std::vector<BaselineEntry> entries);

struct GateOptions {
  std::vector<int64_t> tps = {1, 2, 4, 8}, eps = {1}, pps = {1};
  std::vector<PlanStyle> plans = {PlanStyle::HfAuto};
  int64_t batch = 64, seq = 103, micro_batches = 1;
  double gpu_mem_gib = 0;  // 0: memory is not gated
  bool full_tensor_loading = false;
};

enum class CaseStatus { Pass, Fail, KnownFailure, Skipped, Error };
const char* case_status_name(CaseStatus s);  // "pass", "fail", "known-failure", "skipped", "error"

// One file given to the gate, read: a model config, a config error, or not a model config.
struct GateInput {
  std::string path;                   // as given
  std::optional<ModelConfig> config;  // the model config, when it is one and reads cleanly
  std::string error;                  // the InputError text when it could not be read
  std::string not_model;              // why it is not a model config (the file is skipped)
};
// Never throws an InputError about the file itself: those go into `error`.
GateInput read_gate_input(const std::string& path);

struct SkippedFile {
  std::string path, reason;
};

struct GateCase {
  std::string config;         // config name (folder), or the path when it has none
  std::string config_path;    // as given
  ParallelPlan plan;
  CaseStatus status = CaseStatus::Pass;
  std::vector<Finding> errors;          // error findings (predicted)
  std::vector<std::string> new_ids;     // error ids not in the baseline
  std::vector<std::string> known_ids;   // error ids the baseline lists
  std::string skip_reason;
  std::string error;          // Error: the config error's text ("config error: FILE: key 'K' = V: ...")
  double seconds = 0;
  std::string layout() const;  // "tp=8 ep=1 pp=1 plan=hf-auto"; "read PATH" for an Error case
};

struct GateResult {
  std::vector<GateCase> cases;
  std::vector<BaselineEntry> stale;   // listed but no longer failing
  std::vector<SkippedFile> not_model_configs;  // files given that are not model configs
  int count(CaseStatus s) const;
  // 3 when a model config could not be read (whatever else happened), else 1 on a new failure, else 0.
  int exit_code() const;
};

// Runs the checker on every config x tp x ep x pp x plan and classifies against the baseline;
// inputs in the order given (an Error case stands where its config's cases would).
GateResult run_gate(const std::vector<GateInput>& inputs, const GateOptions& o,
                    const std::vector<BaselineEntry>& baseline);
// The same over configs already read (`paths` as given, else each config's source).
GateResult run_gate(const std::vector<ModelConfig>& configs, const std::vector<std::string>& paths,
                    const GateOptions& o, const std::vector<BaselineEntry>& baseline);
// Re-classifies the cases of `r` against another baseline (statuses, ids and stale entries).
void apply_baseline(GateResult& r, const std::vector<BaselineEntry>& baseline);
// Every error finding of every failing case, as baseline entries.
std::vector<BaselineEntry> baseline_from(const GateResult& r);

// "shardcheck.gate/1": counts, cases with their findings, stale entries, exit code.
void to_json(nlohmann::json& j, const GateResult& r);
std::string render_gate_text(const GateResult& r);

}  // namespace sc
