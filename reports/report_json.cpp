#include "reports/report_json.h"

#include "models/errors.h"
#include "models/json_util.h"

namespace sc {

std::string render_report_json(const StrategyReport& r) {
  nlohmann::json j = r;
  return j.dump(2) + "\n";
}

std::vector<RunResult> read_run_results(const std::string& path) {
  const nlohmann::json j = read_json_file(path, InputKind::Usage);
  const nlohmann::json* list = &j;
  nlohmann::json one;
  if (j.is_object() && j.contains("runs")) {
    list = &j["runs"];
  } else if (j.is_object()) {
    one = nlohmann::json::array({j});
    list = &one;
  }
  if (!list->is_array()) throw InputError(InputKind::Usage, path, "runs", json_brief(*list), "expected an array of run results");
  std::vector<RunResult> out;
  for (size_t i = 0; i < list->size(); ++i) {
    try {
      // `shardcheck run --json` prints {"run": RunResult, "predicted": ..., "agreement": ...}.
      const nlohmann::json& item = (*list)[i];
      out.push_back((item.is_object() && item.contains("run") ? item.at("run") : item).get<RunResult>());
    } catch (const InputError& e) {
      throw InputError(InputKind::Usage, path, "runs[" + std::to_string(i) + "]", "", e.problem());
    } catch (const nlohmann::json::exception& e) {
      throw InputError(InputKind::Usage, path, "runs[" + std::to_string(i) + "]", json_brief((*list)[i]),
                       "not a run result (shardcheck run --json): " + json_exception_text(e));
    }
  }
  return out;
}

}  // namespace sc
