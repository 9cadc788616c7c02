#include "checks/matrix.h"

#include <algorithm>

#include "models/errors.h"

namespace sc {

std::vector<MatrixRow> run_matrix(const ModelConfig& c, const ParallelPlan& base, const std::vector<int64_t>& tps,
                                  const std::vector<int64_t>& eps, const std::vector<int64_t>& pps,
                                  const CheckOptions& o) {
  std::vector<MatrixRow> rows;
  for (int64_t pp : pps)
    for (int64_t ep : eps)
      for (int64_t tp : tps) {
        MatrixRow row;
        row.plan = base;
        row.plan.tp = tp;
        row.plan.ep = ep;
        row.plan.pp = pp;
        try {
          row.plan.validate();
        } catch (const PlanError& e) {
          row.valid = false;
          row.first_error_id = "invalid-plan";
          row.first_error_text = e.problem();
          rows.push_back(row);
          continue;
        }
        if (ep > 1 && !c.is_moe()) {
          row.valid = false;
          row.first_error_id = "invalid-plan";
          row.first_error_text = "expert parallelism on a dense model";
          rows.push_back(row);
          continue;
        }
        CheckResult r = check(c, row.plan, o);
        row.ok = r.ok();
        if (const Finding* f = r.first_error()) {
          row.first_error_id = f->id;
          row.first_error_text = f->error_text.empty() ? f->message : f->error_text;
        }
        row.max_total_bytes = r.max_total_bytes();
        for (const auto& m : r.memory) row.max_weight_bytes = std::max(row.max_weight_bytes, m.weight_bytes);
        row.warnings = int(std::count_if(r.findings.begin(), r.findings.end(),
                                         [](const Finding& f) { return f.severity == Severity::Warning; }));
        rows.push_back(row);
      }
  return rows;
}

void to_json(nlohmann::json& j, const MatrixRow& r) {
  j = nlohmann::json{{"plan", r.plan},
                     {"valid", r.valid},
                     {"ok", r.ok},
                     {"first_error_id", r.first_error_id},
                     {"first_error_text", r.first_error_text},
                     {"max_total_bytes", r.max_total_bytes},
                     {"max_weight_bytes", r.max_weight_bytes},
                     {"warnings", r.warnings}};
}

}  // namespace sc
