#include "families/family.h"
#include "reports/gate.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <sstream>
#include <tuple>

#include "checks/checker.h"
#include "models/errors.h"
#include "models/json_util.h"

namespace sc {

const char* case_status_name(CaseStatus s) {
  switch (s) {
    case CaseStatus::Pass: return "pass";
    case CaseStatus::Fail: return "fail";
    case CaseStatus::KnownFailure: return "known-failure";
    case CaseStatus::Skipped: return "skipped";
    case CaseStatus::Error: return "error";
  }
  return "?";
}

bool BaselineEntry::operator<(const BaselineEntry& o) const {
  return std::tie(config, tp, ep, pp, plan, finding) < std::tie(o.config, o.tp, o.ep, o.pp, o.plan, o.finding);
}
bool BaselineEntry::operator==(const BaselineEntry& o) const {
  return std::tie(config, tp, ep, pp, plan, finding) == std::tie(o.config, o.tp, o.ep, o.pp, o.plan, o.finding);
}
std::string BaselineEntry::describe() const {
  return config + " tp=" + std::to_string(tp) + " ep=" + std::to_string(ep) + " pp=" + std::to_string(pp) +
         " plan=" + plan + ": " + finding;
}

std::string GateCase::layout() const { return status == CaseStatus::Error ? "read " + config_path : plan.describe(); }

int GateResult::count(CaseStatus s) const {
  return int(std::count_if(cases.begin(), cases.end(), [&](const GateCase& c) { return c.status == s; }));
}

int GateResult::exit_code() const {
  if (count(CaseStatus::Error) > 0) return 3;
  return count(CaseStatus::Fail) > 0 ? 1 : 0;
}

GateInput read_gate_input(const std::string& path) {
  GateInput in;
  in.path = path;
  try {
    const nlohmann::json j = read_json_file(path, InputKind::Config);
    // A config of a family this tool reads is a model config whatever else it lacks: its errors must show.
    const bool family_type = j.is_object() && j.contains("model_type") && j.at("model_type").is_string() &&
                             find_family(j.at("model_type").get<std::string>()) != nullptr;
    in.not_model = family_type ? "" : not_a_model_config(j);
    if (in.not_model.empty()) in.config = read_model_config_parsed(j, path);
  } catch (const InputError& e) {
    in.error = e.what();
  }
  return in;
}

std::vector<BaselineEntry> read_baseline(const std::string& path) {
  const nlohmann::json j = read_json_file(path, InputKind::Usage);
  auto bad = [&](const std::string& key, const nlohmann::json& v, const std::string& problem) {
    throw InputError(InputKind::Usage, path, key, v.is_null() ? "" : json_brief(v), "baseline: " + problem);
  };
  if (!j.is_array()) bad("", j, "expected a JSON array of {config, tp, ep, pp, plan, finding} objects");
  std::vector<BaselineEntry> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const nlohmann::json& e = j[i];
    const std::string at = "[" + std::to_string(i) + "]";
    if (!e.is_object()) bad(at, e, "each entry must be an object");
    BaselineEntry b;
    for (const auto& [k, v] : e.items()) {
      const std::string key = at + "." + k;
      if (k == "config" || k == "finding" || k == "plan" || k == "reason") {
        if (!v.is_string()) bad(key, v, "must be a string");
        const std::string s = v.get<std::string>();
        if (k == "config") b.config = s;
        else if (k == "finding") b.finding = s;
        else if (k == "reason") b.reason = s;
        else {
          try {
            b.plan = plan_style_name(plan_style_from_name(s));
          } catch (const PlanError&) {
            bad(key, v, "unknown plan style (hf-auto or replicate-kv)");
          }
        }
      } else if (k == "tp" || k == "ep" || k == "pp") {
        if (!v.is_number_integer() || v.get<int64_t>() < 1) bad(key, v, "must be a positive integer");
        (k == "tp" ? b.tp : k == "ep" ? b.ep : b.pp) = v.get<int64_t>();
      } else {
        bad(key, v, "unknown key (expected config, tp, ep, pp, plan, finding, reason)");
      }
    }
    if (b.config.empty()) bad(at + ".config", nullptr, "missing or empty");
    if (b.finding.empty()) bad(at + ".finding", nullptr, "missing or empty");
    out.push_back(std::move(b));
  }
  return out;
}

std::string baseline_json(std::vector<BaselineEntry> entries) {
  std::sort(entries.begin(), entries.end());
  entries.erase(std::unique(entries.begin(), entries.end()), entries.end());
  std::string out = "[\n";
  for (size_t i = 0; i < entries.size(); ++i) {
    const BaselineEntry& e = entries[i];
    nlohmann::ordered_json j{{"config", e.config}, {"tp", e.tp},   {"ep", e.ep},
                             {"pp", e.pp},         {"plan", e.plan}, {"finding", e.finding}};
    if (!e.reason.empty()) j["reason"] = e.reason;
    out += "  " + j.dump() + (i + 1 < entries.size() ? ",\n" : "\n");
  }
  return out + "]\n";
}

namespace {

bool entry_matches(const BaselineEntry& e, const GateCase& c) {
  return (e.config == c.config || e.config == c.config_path) && e.tp == c.plan.tp && e.ep == c.plan.ep &&
         e.pp == c.plan.pp && e.plan == plan_style_name(c.plan.style);
}

}  // namespace

void apply_baseline(GateResult& r, const std::vector<BaselineEntry>& baseline) {
  r.stale.clear();
  std::vector<bool> used(baseline.size(), false), in_scope(baseline.size(), false);
  for (GateCase& c : r.cases) {
    if (c.status == CaseStatus::Error) continue;  // not evaluated: its entries are neither used nor stale
    c.new_ids.clear();
    c.known_ids.clear();
    for (size_t i = 0; i < baseline.size(); ++i)
      if (entry_matches(baseline[i], c)) in_scope[i] = true;
    if (c.status == CaseStatus::Skipped) continue;
    for (const Finding& f : c.errors) {
      bool known = false;
      for (size_t i = 0; i < baseline.size(); ++i)
        if (entry_matches(baseline[i], c) && baseline[i].finding == f.id) {
          known = true;
          used[i] = true;
        }
      auto& ids = known ? c.known_ids : c.new_ids;
      if (std::find(ids.begin(), ids.end(), f.id) == ids.end()) ids.push_back(f.id);
    }
    c.status = c.errors.empty() ? CaseStatus::Pass : (c.new_ids.empty() ? CaseStatus::KnownFailure : CaseStatus::Fail);
  }
  for (size_t i = 0; i < baseline.size(); ++i)
    if (in_scope[i] && !used[i]) r.stale.push_back(baseline[i]);
}

GateResult run_gate(const std::vector<GateInput>& inputs, const GateOptions& o,
                    const std::vector<BaselineEntry>& baseline) {
  GateResult r;
  CheckOptions co;
  co.memory_limit_gib = o.gpu_mem_gib;
  for (const GateInput& in : inputs) {
    if (!in.not_model.empty()) {
      r.not_model_configs.push_back({in.path, in.not_model});
      continue;
    }
    if (!in.config) {
      GateCase gc;
      gc.config = config_name_from_path(in.path);
      if (gc.config.empty()) gc.config = in.path;
      gc.config_path = in.path;
      gc.status = CaseStatus::Error;
      gc.error = in.error;
      r.cases.push_back(std::move(gc));
      continue;
    }
    const ModelConfig& c = *in.config;
    const std::string& path = in.path;
    for (PlanStyle style : o.plans)
      for (int64_t pp : o.pps)
        for (int64_t ep : o.eps)
          for (int64_t tp : o.tps) {
            GateCase gc;
            gc.config = c.name.empty() ? path : c.name;
            gc.config_path = path;
            gc.plan.tp = tp;
            gc.plan.ep = ep;
            gc.plan.pp = pp;
            gc.plan.style = style;
            gc.plan.batch = o.batch;
            gc.plan.seq = o.seq;
            gc.plan.micro_batches = o.micro_batches;
            gc.plan.dtype = c.dtype;
            gc.plan.shard_only_loading = !o.full_tensor_loading;
            const auto t0 = std::chrono::steady_clock::now();
            try {
              gc.plan.validate();
              if (ep > 1 && !c.is_moe()) {
                gc.status = CaseStatus::Skipped;
                gc.skip_reason = "expert parallelism needs a MoE model (" + c.model_type + " is dense)";
              } else {
                const CheckResult cr = check(c, gc.plan, co);
                for (const auto& f : cr.findings)
                  if (f.severity == Severity::Error) gc.errors.push_back(f);
              }
            } catch (const PlanError& e) {
              gc.status = CaseStatus::Skipped;
              gc.skip_reason = "invalid layout: " + e.problem();
            }
            gc.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            r.cases.push_back(std::move(gc));
          }
  }
  apply_baseline(r, baseline);
  return r;
}

GateResult run_gate(const std::vector<ModelConfig>& configs, const std::vector<std::string>& paths,
                    const GateOptions& o, const std::vector<BaselineEntry>& baseline) {
  std::vector<GateInput> inputs;
  for (size_t ci = 0; ci < configs.size(); ++ci) {
    GateInput in;
    in.path = ci < paths.size() ? paths[ci] : configs[ci].source;
    in.config = configs[ci];
    inputs.push_back(std::move(in));
  }
  return run_gate(inputs, o, baseline);
}

std::vector<BaselineEntry> baseline_from(const GateResult& r) {
  std::vector<BaselineEntry> out;
  for (const GateCase& c : r.cases)
    for (const Finding& f : c.errors) {
      BaselineEntry e;
      e.config = c.config;
      e.tp = c.plan.tp;
      e.ep = c.plan.ep;
      e.pp = c.plan.pp;
      e.plan = plan_style_name(c.plan.style);
      e.finding = f.id;
      out.push_back(e);
    }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

namespace {
nlohmann::json entry_json(const BaselineEntry& e) {
  nlohmann::json j{{"config", e.config}, {"tp", e.tp}, {"ep", e.ep}, {"pp", e.pp}, {"plan", e.plan}, {"finding", e.finding}};
  if (!e.reason.empty()) j["reason"] = e.reason;
  return j;
}
}  // namespace

void to_json(nlohmann::json& j, const GateResult& r) {
  nlohmann::json cases = nlohmann::json::array();
  for (const GateCase& c : r.cases)
    cases.push_back({{"config", c.config},
                     {"config_path", c.config_path},
                     {"layout", c.layout()},
                     {"plan", c.plan},
                     {"status", case_status_name(c.status)},
                     {"findings", c.errors},
                     {"new_findings", c.new_ids},
                     {"known_findings", c.known_ids},
                     {"skip_reason", c.skip_reason},
                     {"error", c.error}});
  nlohmann::json stale = nlohmann::json::array();
  for (const auto& e : r.stale) stale.push_back(entry_json(e));
  nlohmann::json not_model = nlohmann::json::array();
  for (const auto& f : r.not_model_configs) not_model.push_back({{"path", f.path}, {"reason", f.reason}});
  j = {{"schema", "shardcheck.gate/1"},
       {"tests", r.cases.size()},
       {"passed", r.count(CaseStatus::Pass)},
       {"failures", r.count(CaseStatus::Fail)},
       {"known_failures", r.count(CaseStatus::KnownFailure)},
       {"skipped", r.count(CaseStatus::Skipped)},
       {"errors", r.count(CaseStatus::Error)},
       {"not_model_configs", not_model},
       {"stale_baseline", stale},
       {"exit_code", r.exit_code()},
       {"cases", cases}};
}

std::string render_gate_text(const GateResult& r) {
  std::ostringstream os;
  for (const GateCase& c : r.cases) {
    switch (c.status) {
      case CaseStatus::Pass: os << "PASS    "; break;
      case CaseStatus::Fail: os << "FAIL    "; break;
      case CaseStatus::KnownFailure: os << "KNOWN   "; break;
      case CaseStatus::Skipped: os << "SKIP    "; break;
      case CaseStatus::Error: os << "ERROR   "; break;
    }
    os << c.config << "  " << c.layout();
    if (c.status == CaseStatus::Skipped) os << "  (" << c.skip_reason << ")";
    if (c.status == CaseStatus::Error) os << "\n        " << c.error;
    for (const Finding& f : c.errors) {
      const bool is_new = std::find(c.new_ids.begin(), c.new_ids.end(), f.id) != c.new_ids.end();
      os << "\n        " << (is_new ? "" : "[baseline] ") << f.id << ": "
         << (f.error_text.empty() ? f.message : f.error_text);
    }
    os << "\n";
  }
  for (const auto& e : r.stale) os << "STALE   baseline entry " << e.describe() << " (no longer fails: remove it)\n";
  for (const auto& f : r.not_model_configs) os << "NOTMODEL " << f.path << "  (" << f.reason << ")\n";
  os << r.cases.size() << " case(s): " << r.count(CaseStatus::Pass) << " passed, " << r.count(CaseStatus::Fail)
     << " failed, " << r.count(CaseStatus::KnownFailure) << " known failure(s), " << r.count(CaseStatus::Skipped)
     << " skipped, " << r.count(CaseStatus::Error) << " config error(s), " << r.stale.size() << " stale baseline entr"
     << (r.stale.size() == 1 ? "y" : "ies") << "; " << r.not_model_configs.size() << " file(s) not model configs\n";
  return os.str();
}

}  // namespace sc
