#include "reports/junit.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "reports/report_format.h"

namespace sc {

namespace {

std::string attr(const std::string& s) { return "\"" + xml_escape(s) + "\""; }

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", s);
  return buf;
}

// One finding as readable text: id, module, ranks, message, exact error, fix.
std::string finding_text(const Finding& f, bool known) {
  std::string s = std::string(known ? "[known, in baseline] " : "") + f.id;
  if (!f.module.empty()) s += " in " + f.module;
  if (!f.ranks.empty()) s += " (ranks " + format_ranks(f.ranks) + ")";
  s += "\n  " + f.message + "\n";
  if (!f.error_text.empty()) s += "  LibTorch raises: " + f.error_text + "\n";
  if (!f.fix.empty()) s += "  fix: " + f.fix + "\n";
  return s;
}

std::string headline(const Finding& f) { return f.id + ": " + (f.error_text.empty() ? f.message : f.error_text); }

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

std::string render_junit(const GateResult& r) {
  // Suites in first-appearance order of their config.
  std::vector<std::string> suites;
  for (const auto& c : r.cases)
    if (!contains(suites, c.config)) suites.push_back(c.config);

  double total_time = 0;
  for (const auto& c : r.cases) total_time += c.seconds;
  std::ostringstream os;
  os << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  os << "<testsuites name=\"shardcheck gate\" tests=\"" << r.cases.size() << "\" failures=\""
     << r.count(CaseStatus::Fail) << "\" errors=\"" << r.count(CaseStatus::Error) << "\" time=\"" << seconds(total_time)
     << "\">\n";
  for (const std::string& suite : suites) {
    int tests = 0, failures = 0, errors = 0, skipped = 0;
    double time = 0;
    std::string path;
    for (const auto& c : r.cases) {
      if (c.config != suite) continue;
      path = c.config_path;
      ++tests;
      failures += c.status == CaseStatus::Fail;
      errors += c.status == CaseStatus::Error;
      skipped += c.status == CaseStatus::Skipped || c.status == CaseStatus::KnownFailure;
      time += c.seconds;
    }
    os << "  <testsuite name=" << attr(suite) << " tests=\"" << tests << "\" failures=\"" << failures
       << "\" errors=\"" << errors << "\" skipped=\"" << skipped << "\" time=\"" << seconds(time) << "\">\n";
    os << "    <properties><property name=\"config\" value=" << attr(path) << "/></properties>\n";
    for (const auto& c : r.cases) {
      if (c.config != suite) continue;
      os << "    <testcase classname=" << attr("shardcheck.gate." + suite) << " name=" << attr(c.layout())
         << " time=\"" << seconds(c.seconds) << "\"";
      if (c.status == CaseStatus::Pass) {
        os << "/>\n";
        continue;
      }
      os << ">\n";
      if (c.status == CaseStatus::Error) {
        // The config could not be read: the config error's one line, as on stderr.
        os << "      <error type=\"config-error\" message=" << attr(c.error) << "/>\n";
      } else if (c.status == CaseStatus::Skipped) {
        os << "      <skipped type=\"not-applicable\" message=" << attr(c.skip_reason) << "/>\n";
      } else {
        // The headline is the first new finding (fail) or the first known one (known failure).
        const Finding* head = nullptr;
        std::string body;
        for (const Finding& f : c.errors) {
          const bool known = !contains(c.new_ids, f.id);
          if (!head && (c.status == CaseStatus::KnownFailure || !known)) head = &f;
          body += finding_text(f, known);
        }
        if (c.status == CaseStatus::Fail) {
          os << "      <failure type=" << attr(head->id) << " message=" << attr(headline(*head)) << ">"
             << xml_escape(body) << "</failure>\n";
        } else {
          os << "      <skipped type=\"known-failure\" message=" << attr("known failure (baseline): " + headline(*head))
             << "/>\n";
          os << "      <system-out>" << xml_escape(body) << "</system-out>\n";
        }
      }
      os << "    </testcase>\n";
    }
    std::string stale;
    for (const auto& e : r.stale)
      if (e.config == suite || e.config == path)
        stale += "stale baseline entry: " + e.describe() + " (no longer fails: remove it)\n";
    if (!stale.empty()) os << "    <system-err>" << xml_escape(stale) << "</system-err>\n";
    os << "  </testsuite>\n";
  }
  os << "</testsuites>\n";
  return os.str();
}

}  // namespace sc
