#include "reports/text.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "checks/sharding.h"

namespace sc {

std::string format_gib(int64_t bytes) {
  char buf[64];
  const double g = to_gib(bytes);
  std::snprintf(buf, sizeof buf, g >= 100 ? "%.0f GiB" : (g >= 0.1 ? "%.2f GiB" : "%.4f GiB"), g);
  return buf;
}

namespace {
std::string pad(const std::string& s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }

std::string rank_list(const std::vector<int64_t>& r) {
  // Compress runs: 0,1,2,3,5 -> 0-3,5
  std::string out;
  for (size_t i = 0; i < r.size();) {
    size_t j = i;
    while (j + 1 < r.size() && r[j + 1] == r[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(r[i]);
    if (j > i) out += "-" + std::to_string(r[j]);
    i = j + 1;
  }
  return out;
}
}  // namespace

std::string render_check_text(const CheckResult& r) {
  std::ostringstream os;
  os << "shardcheck check: " << (r.config_name.empty() ? r.config_source : r.config_name) << "  ["
     << r.plan.describe() << ", batch " << r.plan.batch << " x seq " << r.plan.seq << ", "
     << dtype_torch_name(r.plan.dtype) << ", world " << r.plan.world_size() << "]\n";
  int n_err = 0, n_warn = 0;
  for (const auto& f : r.findings) {
    n_err += f.severity == Severity::Error;
    n_warn += f.severity == Severity::Warning;
  }
  os << (r.ok() ? "PASS" : "FAIL") << ": " << n_err << " error(s), " << n_warn << " warning(s)\n";
  for (const auto& f : r.findings) {
    std::string sev = severity_name(f.severity);
    for (auto& ch : sev) ch = char(std::toupper(ch));
    os << "\n" << sev << " [" << f.id << "] " << f.module;
    if (!f.ranks.empty()) os << " (ranks " << rank_list(f.ranks) << ")";
    os << "\n  " << f.message << "\n";
    if (!f.error_text.empty()) os << "  LibTorch raises: " << f.error_text << "\n";
    if (!f.fix.empty()) os << "  fix: " << f.fix << "\n";
  }
  if (!r.memory.empty()) {
    os << "\nmemory per rank (predicted";
    if (r.memory_limit_gib > 0) os << ", limit " << r.memory_limit_gib << " GiB";
    os << "):\n";
    os << "  " << pad("ranks", 12) << pad("stage", 7) << pad("layers", 8) << pad("weights", 12) << pad("activations", 13)
       << pad("load(shard)", 13) << pad("load(full)", 12) << "\n";
    // Group ranks with identical figures.
    std::vector<bool> done(r.memory.size(), false);
    for (size_t i = 0; i < r.memory.size(); ++i) {
      if (done[i]) continue;
      const auto& m = r.memory[i];
      std::vector<int64_t> ranks;
      for (size_t k = i; k < r.memory.size(); ++k) {
        const auto& o = r.memory[k];
        if (!done[k] && o.stage == m.stage && o.weight_bytes == m.weight_bytes &&
            o.activation_bytes == m.activation_bytes && o.load_peak_full_bytes == m.load_peak_full_bytes) {
          ranks.push_back(o.rank);
          done[k] = true;
        }
      }
      os << "  " << pad(rank_list(ranks), 12) << pad(std::to_string(m.stage), 7) << pad(std::to_string(m.layers), 8)
         << pad(format_gib(m.weight_bytes), 12) << pad(format_gib(m.activation_bytes), 13)
         << pad(format_gib(m.load_peak_shard_bytes), 13) << pad(format_gib(m.load_peak_full_bytes), 12) << "\n";
    }
  }
  return os.str();
}

std::string render_matrix_text(const std::string& config_name, const std::vector<MatrixRow>& rows) {
  std::ostringstream os;
  os << "shardcheck matrix: " << config_name << "\n";
  os << pad("tp", 5) << pad("ep", 5) << pad("pp", 5) << pad("world", 7) << pad("outcome", 9) << pad("max GiB/rank", 14)
     << "first failing invariant\n";
  for (const auto& r : rows) {
    os << pad(std::to_string(r.plan.tp), 5) << pad(std::to_string(r.plan.ep), 5) << pad(std::to_string(r.plan.pp), 5)
       << pad(r.valid ? std::to_string(r.plan.world_size()) : "-", 7)
       << pad(!r.valid ? "invalid" : (r.ok ? "pass" : "FAIL"), 9)
       << pad(r.valid ? format_gib(r.max_total_bytes) : "-", 14);
    if (!r.first_error_id.empty()) os << r.first_error_id << ": " << r.first_error_text;
    else if (r.warnings) os << "(" << r.warnings << " warning(s))";
    os << "\n";
  }
  return os.str();
}

std::string render_plan_explain(const ModelConfig& c, const ParallelPlan& p) {
  std::ostringstream os;
  os << "plan " << plan_style_name(p.style) << " (" << p.describe() << "): stage of " << p.stage_size()
     << " ranks, attention tp=" << p.tp << " x " << p.tp_replicas() << " replica(s), experts ep=" << p.ep
     << " x expert-tp=" << p.etp() << ", world " << p.world_size() << "\n";
  for (const auto& e : sharding_table(c, p)) {
    os << "  " << pad(e.pattern, 44) << pad(shard_rule_name(e.rule), 17) << "(HF: " << e.hf_name << ")\n";
  }
  const AttentionLayout a = attention_layout(c, p, 0);
  os << "  attention: q/k/v = view(q_proj(x), [B, S, -1, " << c.head_dim << "]); k, v repeated n_rep="
     << a.n_rep << (p.style == PlanStyle::HfAuto ? " (global heads / kv heads)" : " (local ratio)") << "\n";
  return os.str();
}

std::string render_run_text(const RunResult& r) {
  std::ostringstream os;
  os << "run: " << r.model << "  [" << r.plan.describe() << ", " << dtype_torch_name(r.plan.dtype) << ", backend "
     << r.backend << " on " << r.device << ", " << r.plan.world_size() << " ranks]\n";
  os << "verdict: " << verdict_name(r.verdict) << " - " << r.summary << "\n";
  if (!r.errors.empty()) {
    // Group ranks that raised the same text.
    std::vector<bool> done(r.errors.size(), false);
    for (size_t i = 0; i < r.errors.size(); ++i) {
      if (done[i]) continue;
      std::vector<int64_t> ranks;
      for (size_t k = i; k < r.errors.size(); ++k)
        if (!done[k] && r.errors[k].what == r.errors[i].what && r.errors[k].where == r.errors[i].where) {
          ranks.push_back(r.errors[k].rank);
          done[k] = true;
        }
      os << "  ranks " << rank_list(ranks) << " (" << r.errors[i].where << "): " << r.errors[i].what << "\n";
    }
  }
  if (!r.comparisons.empty()) {
    os << "  " << pad("tensor", 10) << pad("NMSE", 12) << pad("max |diff|", 12) << pad("diverged", 10)
       << "router flips (benign)\n";
    for (const auto& c : r.comparisons) {
      char a[32], b[32];
      std::snprintf(a, sizeof a, "%.2e", c.nmse);
      std::snprintf(b, sizeof b, "%.2e", c.max_abs);
      os << "  " << pad(c.name, 10) << pad(a, 12) << pad(b, 12)
         << pad(std::to_string(c.tokens_diverged) + "/" + std::to_string(c.tokens), 10);
      if (c.layer >= 0) os << c.router_flips << " (" << c.router_flips_benign << ")";
      os << "\n";
    }
    char t[32];
    std::snprintf(t, sizeof t, "%.0e", r.tolerance_nmse);
    os << "  tolerance: NMSE <= " << t << " per tensor for " << dtype_torch_name(r.plan.dtype) << "\n";
  }
  if (r.points_compared > 0)
    os << "  compared every rank's tensors at every point before and after each collective against its slice "
          "of the reference: "
       << r.points_compared << " comparisons\n";
  if (!r.first_divergence.empty()) os << "  first divergence: " << r.first_divergence << "\n";
  if (!r.load_peak_bytes.empty()) {
    int64_t mx = *std::max_element(r.load_peak_bytes.begin(), r.load_peak_bytes.end());
    int64_t rd = r.bytes_read.empty() ? 0 : *std::max_element(r.bytes_read.begin(), r.bytes_read.end());
    os << "  measured: peak while loading " << format_gib(mx) << " per rank (max), read " << format_gib(rd)
       << " per rank (max)";
    if (r.forward_ms > 0) {
      char f[64];
      std::snprintf(f, sizeof f, "; forward %.2f ms (reference %.2f ms), %.0f tokens/s", r.forward_ms, r.reference_ms,
                    r.tokens_per_s);
      os << f;
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace sc
