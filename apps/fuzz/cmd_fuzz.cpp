// `shardcheck fuzz`: property-based fuzzing of layouts (static properties here; the numerical
// ones run the harness when LibTorch is built in).
#include <chrono>
#include <cstdio>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "checks/fuzz/fuzz.h"
#include "models/errors.h"
#include "models/fault_hooks.h"

#if defined(SHARDCHECK_WITH_NUMERICAL_FUZZ)
#include "harness/fuzz/numerical.h"
#define SC_HAVE_NUMERICAL_FUZZ 1
#endif

namespace sc::cli {
namespace {

struct FuzzArgs {
  int cases = 200;
  uint64_t seed = 1;
  bool static_only = false, json = false;
  std::string property, reproduce, out = "fuzz-failures";
  std::string backend = "threads", inject_fault;
  int gloo_every = 10;
};

const bool kFuzz = register_command({"fuzz", 35, [](CLI::App& app) {
  auto a = std::make_shared<FuzzArgs>();
  app.description("property-based fuzzing of TP/EP/PP sizes against head counts and other sizes (rapidcheck)");
  app.add_option("--cases", a->cases, "cases per property")->capture_default_str()->check(at_least(1));
  app.add_option("--seed", a->seed, "seed")->capture_default_str();
  app.add_flag("--static-only", a->static_only, "only the checker properties (no harness runs)");
  app.add_option("--property", a->property, "run one property by name");
  app.add_option("--reproduce", a->reproduce, "replay a failure (string printed with the failure)");
  app.add_option("--out", a->out, "folder for minimal failing cases (config.json + plan.json)")->capture_default_str();
  app.add_option("--backend", a->backend,
                 "numerical properties: threads (in-process ranks; every --gloo-every-th case and every failing "
                 "case also on Gloo, which must agree) or gloo (every case on Gloo ranks)")
      ->capture_default_str();
  app.add_option("--gloo-every", a->gloo_every, "with --backend threads: also run every N-th case on Gloo (0: none)")
      ->capture_default_str();
  app.add_option("--inject-fault", a->inject_fault,
                 "detection self-test: seed a sharding bug into every sharded run (docs/detection.md)");
  app.add_flag("--json", a->json, "JSON output");
  return [a]() -> int {
    std::unique_ptr<faults::Scoped> fault;
    if (!a->inject_fault.empty()) fault = std::make_unique<faults::Scoped>(faults::parse(a->inject_fault));
    if (a->backend != "threads" && a->backend != "gloo")
      throw PlanError("--backend", a->backend, "must be threads or gloo");
    if (a->gloo_every < 0) throw PlanError("--gloo-every", std::to_string(a->gloo_every), "must be >= 0");
    std::vector<fuzz::Property> props = fuzz::static_properties();
#ifdef SC_HAVE_NUMERICAL_FUZZ
    NumericalFuzzOptions nopt;
    nopt.backend = a->backend;
    nopt.gloo_every = a->gloo_every;
    nopt.counts = std::make_shared<NumericalFuzzCounts>();
    if (!a->static_only)
      for (auto& p : numerical_properties(nopt)) props.push_back(p);
#endif
    if (!a->property.empty()) {
      std::vector<fuzz::Property> one;
      for (auto& p : props)
        if (p.name == a->property) one.push_back(p);
      if (one.empty()) throw PlanError("--property", a->property, "no such property");
      props = one;
    }
    fuzz::RunOptions o;
    o.seed = a->seed;
    o.cases = a->cases;
    o.reproduce = a->reproduce;
    o.out_dir = a->out;
    const bool tty = isatty(2);
    // Progress (terminal only): cases done and the rate since the property started.
    auto started = std::make_shared<std::chrono::steady_clock::time_point>();
    if (!a->json && tty)
      o.progress = [last = std::make_shared<int>(-1), started](const std::string& name, int done, int total) {
        if (done == *last) return;
        *last = done;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - *started).count();
        std::fprintf(stderr, "\r  %-28s %5d / %d  %.0f cases/s  ", name.c_str(), done, total, s > 0 ? done / s : 0.0);
        std::fflush(stderr);
      };
    nlohmann::json all = nlohmann::json::array();
    bool ok = true;
    std::string text;
    // Totals per kind: the two speed numbers of the fuzzer (static cases/s, numerical cases/s).
    struct Total {
      int cases = 0;
      double seconds = 0;
      double rate() const { return seconds > 0 ? cases / seconds : 0.0; }
    } stat, num;
    for (const auto& p : props) {
      *started = std::chrono::steady_clock::now();
      fuzz::PropertyReport r = fuzz::run_property(p, o);
      Total& t = p.numerical ? num : stat;
      t.cases += r.cases;
      t.seconds += r.seconds;
      if (!a->json && tty) std::fprintf(stderr, "\r%*s\r", 60, "");
      ok &= r.passed;
      nlohmann::json j = r;
      if (!r.passed && !r.reproduce.empty()) j["replay"] = fuzz::replay_command(p, o, r);
      all.push_back(j);
      char line[256];
      std::snprintf(line, sizeof line, "%-28s %s  %d cases in %.2f s (%.0f cases/s)%s\n", p.name.c_str(),
                    r.passed ? "pass" : "FAIL", r.cases, r.seconds, r.seconds > 0 ? r.cases / r.seconds : 0.0,
                    p.numerical ? ("  [" + a->backend + "]").c_str() : "");
      text += line;
      if (!r.passed) {
        text += "  " + r.failure + "\n";
        if (!r.counterexample.empty()) text += "  minimal case: " + r.counterexample;
        for (const auto& f : r.written) text += "  wrote " + f + "\n";
        if (!r.reproduce.empty()) text += "  replay: " + fuzz::replay_command(p, o, r) + "\n";
      }
    }
    nlohmann::json totals = {{"static", {{"cases", stat.cases}, {"seconds", stat.seconds}, {"cases_per_s", stat.rate()}}}};
    char line[256];
    std::snprintf(line, sizeof line, "static: %d cases in %.2f s (%.0f cases/s)\n", stat.cases, stat.seconds, stat.rate());
    if (stat.cases > 0) text += line;
#ifdef SC_HAVE_NUMERICAL_FUZZ
    if (num.cases > 0 || num.seconds > 0) {
      std::snprintf(line, sizeof line, "numerical: %d cases in %.2f s (%.1f cases/s; runs: %d threads, %d gloo)\n",
                    num.cases, num.seconds, num.rate(), nopt.counts->threads, nopt.counts->gloo);
      text += line;
      totals["numerical"] = {{"cases", num.cases}, {"seconds", num.seconds}, {"cases_per_s", num.rate()},
                             {"backend", a->backend}, {"gloo_every", a->gloo_every},
                             {"runs_threads", nopt.counts->threads}, {"runs_gloo", nopt.counts->gloo}};
    }
#endif
    if (a->json)
      print(nlohmann::json{{"schema", kFuzzSchema}, {"seed", a->seed}, {"cases", a->cases}, {"properties", all}, {"totals", totals}, {"ok", ok}}
                .dump(2));
    else print(text);
    return ok ? 0 : 1;
  };
}});

}  // namespace
}  // namespace sc::cli
