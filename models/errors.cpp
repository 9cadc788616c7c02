#include "models/errors.h"

namespace sc {

const char* input_kind_name(InputKind k) {
  switch (k) {
    case InputKind::Config: return "config";
    case InputKind::Checkpoint: return "checkpoint";
    case InputKind::Tokenizer: return "tokenizer";
    case InputKind::Dataset: return "dataset";
    case InputKind::Plan: return "plan";
    case InputKind::Usage: return "usage";
    case InputKind::Output: return "output";
  }
  return "input";
}

static std::string compose(InputKind kind, const std::string& file, const std::string& key,
                           const std::string& value, const std::string& problem) {
  // Format: "<kind> error: <file>: key '<key>' = <value>: <problem>"
  std::string s = std::string(input_kind_name(kind)) + " error: ";
  if (!file.empty()) s += file + ": ";
  if (!key.empty()) s += "key '" + key + "'";
  if (!value.empty()) s += (key.empty() ? "value " : " = ") + value;
  if (!key.empty() || !value.empty()) s += ": ";
  s += problem;
  return s;
}

InputError::InputError(InputKind kind, std::string file, std::string key, std::string value, std::string problem)
    : std::runtime_error(compose(kind, file, key, value, problem)),
      kind_(kind), file_(std::move(file)), key_(std::move(key)), value_(std::move(value)), problem_(std::move(problem)) {}

std::string clean_exception_text(const char* what) {
  std::string s = what ? what : "";
  for (const char* marker : {"\nException raised from", "Exception raised from ", "\nframe #"}) {
    auto p = s.find(marker);
    if (p != std::string::npos) s = s.substr(0, p);
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

void throw_input_error(InputKind kind, const std::string& file, const std::string& key, const std::string& value,
                       const std::string& problem) {
  switch (kind) {
    case InputKind::Config: throw ConfigError(file, key, value, problem);
    case InputKind::Checkpoint: throw CheckpointError(file, key, value, problem);
    case InputKind::Tokenizer: throw TokenizerError(file, key, value, problem);
    case InputKind::Dataset: throw DatasetError(file, key, value, problem);
    case InputKind::Plan: throw PlanError(key, value, problem);
    default: throw InputError(kind, file, key, value, problem);
  }
}

}  // namespace sc
