#include "reports/report_format.h"

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

namespace sc {

std::string format_bytes(double b) {
  char buf[48];
  const double KiB = 1024.0, MiB = KiB * 1024.0, GiB = MiB * 1024.0;
  if (b >= GiB) std::snprintf(buf, sizeof buf, "%.1f GiB", b / GiB);
  else if (b >= MiB) std::snprintf(buf, sizeof buf, "%.2f MiB", b / MiB);
  else if (b >= KiB) std::snprintf(buf, sizeof buf, "%.1f KiB", b / KiB);
  else std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

std::string format_gib1(int64_t bytes) {
  if (bytes < (int64_t(1) << 30) / 10) return format_bytes(double(bytes));  // small models: MiB / KiB
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f GiB", to_gib(bytes));
  return buf;
}

std::string format_count(int64_t n) {
  char buf[48];
  if (n >= 1000000000) std::snprintf(buf, sizeof buf, "%.1f B", double(n) / 1e9);
  else if (n >= 1000000) std::snprintf(buf, sizeof buf, "%.1f M", double(n) / 1e6);
  else if (n >= 1000) std::snprintf(buf, sizeof buf, "%.1f K", double(n) / 1e3);
  else std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

std::string format_gib_limit(double g) {
  char buf[48];
  std::snprintf(buf, sizeof buf, g == double(int64_t(g)) ? "%.0f GiB" : "%.1f GiB", g);
  return buf;
}

std::string format_percent(double f) {
  char buf[32];
  const double p = 100.0 * f;
  std::snprintf(buf, sizeof buf, p == double(int64_t(p)) ? "%.0f%%" : "%.1f%%", p);
  return buf;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 16);
  for (unsigned char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 allows tab, newline, carriage return and everything from 0x20 up.
        if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') break;
        out += char(ch);
    }
  }
  return out;
}

const char* source_mark(Source s) { return s == Source::Measured ? "ᵐ" : "ᵖ"; }

std::string outcome_label(const StrategyResult& r) {
  switch (r.outcome) {
    case Outcome::Works:
      if (r.bubble > 0)
        return "works, " + std::to_string(r.bubble_den - r.bubble_num) + "/" + std::to_string(r.bubble_den) + " busy";
      return "works";
    case Outcome::Fails: return "fails";
    case Outcome::OutOfMemory: return "out of memory";
    case Outcome::SilentWrong: return "silently wrong";
    case Outcome::NotApplicable: return "n/a";
  }
  return "?";
}

const char* outcome_class(const StrategyResult& r) {
  switch (r.outcome) {
    case Outcome::Works: return r.busy() < 0.5 ? "slow" : "ok";
    case Outcome::NotApplicable: return "na";
    default: return "fail";
  }
}

std::string not_run_line(const StrategyReport& r, const StrategyResult& x) {
  if (!r.options.launched || x.run || !x.strategy.applicable) return "";
  std::string w = why_not_run(x);
  if (w.empty()) return "Not run: no run of this layout.";
  if (w.rfind("not run", 0) == 0) w[0] = 'N';
  else w = "Not run: " + w;
  return w;
}

std::string format_ranks(const std::vector<int64_t>& r) {
  std::string out;
  for (size_t i = 0; i < r.size();) {
    size_t j = i;
    while (j + 1 < r.size() && r[j + 1] == r[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(r[i]) + (j > i ? "-" + std::to_string(r[j]) : "");
    i = j + 1;
  }
  return out;
}

namespace {
std::string sci(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1e", v);
  return b;
}
}  // namespace

// What a harness run observed, one line: the error texts and their ranks, or the accuracy vs the
// single-device reference with the router attribution.
std::string measured_line(const StrategyResult& x, const std::function<std::string(const std::string&)>& code,
                          const std::function<std::string(const std::string&)>& text) {
  const RunResult& run = *x.run;
  std::string out = "ᵐ " + text(run.backend) + " run";
  if (!run.scale.empty() && run.scale != "full widths") out += " (tiny width, batch " + std::to_string(run.plan.batch) +
                                                           " × seq " + std::to_string(run.plan.seq) + ")";
  out += ": ";
  if (!run.errors.empty()) {
    std::vector<std::pair<std::string, std::vector<int64_t>>> texts;
    for (const auto& e : run.errors) {
      auto it = std::find_if(texts.begin(), texts.end(), [&](const auto& t) { return t.first == e.what; });
      if (it == texts.end()) texts.push_back({e.what, {e.rank}});
      else it->second.push_back(e.rank);
    }
    for (size_t i = 0; i < texts.size(); ++i)
      out += (i ? "; " : "") + std::string(texts[i].second.size() == 1 ? "rank " : "ranks ") +
             format_ranks(texts[i].second) + " raised " + code(texts[i].first);
    if (!x.predicted_run_error.empty())
      out += x.error_text_matches ? " — exactly the checker's prediction for this shape"
                                  : " — NOT the checker's prediction " + code(x.predicted_run_error);
    return out;
  }
  out += text(x.correctness) + " vs the single-device reference";
  if (x.max_nmse) out += " (max NMSE " + sci(*x.max_nmse) + ", tolerance " + sci(run.tolerance_nmse);
  if (x.max_abs) out += ", max |Δ| " + sci(*x.max_abs);
  if (x.max_nmse) {
    out += ", router flips " + std::to_string(x.router_flips);
    if (x.router_flips) out += " (" + std::to_string(x.router_flips_benign) + " benign near-ties)";
    out += ")";
  }
  if (!run.first_divergence.empty()) out += "; first divergence: " + text(run.first_divergence);
  if (x.prediction_disagrees) out += " — DISAGREES with the prediction";
  return out;
}

}  // namespace sc
