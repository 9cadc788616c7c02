// `shardcheck matrix`: the checker over a grid of tp x ep x pp. Torch-free.
#pragma once
#include <string>
#include <vector>

#include "checks/checker.h"

namespace sc {

struct MatrixRow {
  ParallelPlan plan;
  bool valid = true;              // false: the plan itself is impossible (e.g. tp and ep not dividing)
  bool ok = false;
  std::string first_error_id;     // "" when ok
  std::string first_error_text;   // exact LibTorch text, or the finding's message
  int64_t max_total_bytes = 0;    // per rank, predicted
  int64_t max_weight_bytes = 0;
  int warnings = 0;
};

std::vector<MatrixRow> run_matrix(const ModelConfig& c, const ParallelPlan& base, const std::vector<int64_t>& tps,
                                  const std::vector<int64_t>& eps, const std::vector<int64_t>& pps,
                                  const CheckOptions& o = {});

void to_json(nlohmann::json& j, const MatrixRow& r);

}  // namespace sc
