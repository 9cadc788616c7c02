#include "checks/findings.h"

#include <algorithm>

#include "models/errors.h"

namespace sc {

const char* severity_name(Severity s) {
  switch (s) {
    case Severity::Info: return "info";
    case Severity::Warning: return "warning";
    case Severity::Error: return "error";
  }
  return "?";
}

Severity severity_from_name(const std::string& s) {
  if (s == "info") return Severity::Info;
  if (s == "warning") return Severity::Warning;
  if (s == "error") return Severity::Error;
  throw PlanError("severity", s, "unknown severity (info, warning, error)");
}

int64_t RankMemory::total_bytes(bool shard_only) const {
  const int64_t run = weight_bytes + activation_bytes;
  const int64_t load = shard_only ? load_peak_shard_bytes : load_peak_full_bytes;
  return std::max(run, load);
}

bool CheckResult::ok() const { return first_error() == nullptr; }

const Finding* CheckResult::first_error() const {
  for (const auto& f : findings)
    if (f.severity == Severity::Error) return &f;
  return nullptr;
}

const Finding* CheckResult::predicted_runtime_failure() const {
  // Shape failures a run raises. Other errors are plans HF refuses (experts-ep, pp-layers), silent
  // wrong numbers (gqa-misaligned) or memory: they do not raise in a run.
  for (const char* phase : {"load", "forward"})
    for (const auto& f : findings)
      if (f.severity == Severity::Error && f.phase == phase) return &f;
  return nullptr;
}

int64_t CheckResult::max_total_bytes() const {
  int64_t m = 0;
  for (const auto& r : memory) m = std::max(m, r.total_bytes(plan.shard_only_loading));
  return m;
}

double to_gib(int64_t bytes) { return double(bytes) / double(int64_t(1) << 30); }

void to_json(nlohmann::json& j, const Finding& f) {
  j = nlohmann::json{{"id", f.id},           {"severity", severity_name(f.severity)},
                     {"parameter", f.parameter}, {"module", f.module},
                     {"ranks", f.ranks},     {"message", f.message},
                     {"error_text", f.error_text}, {"fix", f.fix},
                     {"values", f.values.is_null() ? nlohmann::json::object() : f.values}};
  if (!f.phase.empty()) j["phase"] = f.phase;
}

void from_json(const nlohmann::json& j, Finding& f) {
  f.id = j.at("id").get<std::string>();
  f.severity = severity_from_name(j.at("severity").get<std::string>());
  f.parameter = j.value("parameter", "");
  f.module = j.value("module", "");
  f.ranks = j.value("ranks", std::vector<int64_t>{});
  f.message = j.value("message", "");
  f.error_text = j.value("error_text", "");
  f.fix = j.value("fix", "");
  f.values = j.value("values", nlohmann::json::object());
  f.phase = j.value("phase", "");
}

void to_json(nlohmann::json& j, const RankMemory& m) {
  j = nlohmann::json{{"rank", m.rank},
                     {"stage", m.stage},
                     {"layers", m.layers},
                     {"weight_bytes", m.weight_bytes},
                     {"load_peak_shard_bytes", m.load_peak_shard_bytes},
                     {"load_peak_full_bytes", m.load_peak_full_bytes},
                     {"activation_bytes", m.activation_bytes}};
}

void from_json(const nlohmann::json& j, RankMemory& m) {
  m.rank = j.at("rank").get<int64_t>();
  m.stage = j.value("stage", int64_t(0));
  m.layers = j.value("layers", int64_t(0));
  m.weight_bytes = j.at("weight_bytes").get<int64_t>();
  m.load_peak_shard_bytes = j.value("load_peak_shard_bytes", int64_t(0));
  m.load_peak_full_bytes = j.value("load_peak_full_bytes", int64_t(0));
  m.activation_bytes = j.value("activation_bytes", int64_t(0));
}

void to_json(nlohmann::json& j, const CheckResult& r) {
  j = nlohmann::json{{"config", r.config_name},
                     {"config_source", r.config_source},
                     {"plan", r.plan},
                     {"ok", r.ok()},
                     {"findings", r.findings},
                     {"memory", r.memory},
                     {"memory_limit_gib", r.memory_limit_gib},
                     {"max_total_bytes", r.max_total_bytes()},
                     {"rope_scaling", r.rope_scaling}};
}

void from_json(const nlohmann::json& j, CheckResult& r) {
  r.config_name = j.value("config", "");
  r.config_source = j.value("config_source", "");
  r.plan = j.at("plan").get<ParallelPlan>();
  r.findings = j.at("findings").get<std::vector<Finding>>();
  r.memory = j.value("memory", std::vector<RankMemory>{});
  r.memory_limit_gib = j.value("memory_limit_gib", 0.0);
  r.rope_scaling = j.value("rope_scaling", nlohmann::json(nullptr));
}

}  // namespace sc
