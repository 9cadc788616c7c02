// `shardcheck check CONFIG` and `shardcheck matrix CONFIG`: the static checker.
#include <nlohmann/json.hpp>

#include "families/family.h"
#include "apps/cli.h"
#include "checks/checker.h"
#include "checks/matrix.h"
#include "reports/text.h"

namespace sc::cli {
namespace {

struct CheckArgs {
  std::string config;
  PlanFlags plan;
  bool json = false, explain = false;
  std::string gpu_mem = "0";
};

const bool kCheck = register_command({"check", 10, [](CLI::App& app) {
  auto a = std::make_shared<CheckArgs>();
  a->plan.seq = 128;
  app.description("predict shape failures, silent-wrong layouts and per-rank memory of a config under TP/EP/PP");
  app.add_option("config", a->config, "HF config.json")->required();
  a->plan.add_to(&app);
  app.add_option("--gpu-mem", a->gpu_mem, "per-rank memory in GiB; above it is an error (0: not checked)");
  app.add_flag("--json", a->json, "JSON output");
  app.add_flag("--explain", a->explain, "print the sharding table of the plan");
  return [a]() -> int {
    ModelConfig c = read_model_config_file(a->config);
    ParallelPlan p = a->plan.to_plan(c);
    CheckOptions o;
    o.memory_limit_gib = parse_gib(a->gpu_mem, "--gpu-mem");
    CheckResult r = check(c, p, o);
    if (a->json) {
      nlohmann::json j = r;
      j["schema"] = kCheckSchema;
      if (a->explain) j["explain"] = render_plan_explain(c, p);
      print(j.dump(2));
    } else {
      if (a->explain) print(render_plan_explain(c, p));
      print(render_check_text(r));
      if (!c.rope_scaling_type.empty())
        print("rope scaling: " + c.rope_scaling_summary() + " (changes no tensor shape; information only)");
    }
    return r.ok() ? 0 : 1;
  };
}});

struct MatrixArgs {
  std::string config, tps = "1,2,4,8,16", eps = "1", pps = "1";
  PlanFlags plan;
  bool json = false;
  std::string gpu_mem = "0";
};

const bool kMatrix = register_command({"matrix", 20, [](CLI::App& app) {
  auto a = std::make_shared<MatrixArgs>();
  app.description("run the checker over every tp x ep x pp combination: outcome, first failing invariant, memory");
  app.add_option("config", a->config, "HF config.json")->required();
  app.add_option("--tp", a->tps, "comma list of tensor-parallel sizes")->capture_default_str();
  app.add_option("--ep", a->eps, "comma list of expert-parallel sizes")->capture_default_str();
  app.add_option("--pp", a->pps, "comma list of pipeline sizes")->capture_default_str();
  a->plan.add_to(&app, /*with_sizes=*/false);
  app.add_option("--gpu-mem", a->gpu_mem, "per-rank memory in GiB; above it is an error (0: not checked)");
  app.add_flag("--json", a->json, "JSON output");
  return [a]() -> int {
    ModelConfig c = read_model_config_file(a->config);
    ParallelPlan base = a->plan.to_plan(c);
    CheckOptions o;
    o.memory_limit_gib = parse_gib(a->gpu_mem, "--gpu-mem");
    auto rows = run_matrix(c, base, parse_int_list(a->tps, "--tp"), parse_int_list(a->eps, "--ep"),
                           parse_int_list(a->pps, "--pp"), o);
    if (a->json) {
      nlohmann::json j{{"schema", kMatrixSchema}, {"config", c.name}, {"config_source", c.source}, {"rows", rows}};
      print(j.dump(2));
    } else {
      print(render_matrix_text(c.name, rows));
    }
    bool any_fail = false;
    for (const auto& r : rows) any_fail |= r.valid && !r.ok;
    return any_fail ? 1 : 0;
  };
}});

}  // namespace
}  // namespace sc::cli
