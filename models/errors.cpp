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

// Control characters from the input (a JSON key holding "\n", found by fuzz_config) are escaped,
// so that the message stays one line.
static std::string one_line(const std::string& in) {
  std::string out;
  for (unsigned char c : in) {
    if (c >= 0x20 && c != 0x7f) {
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// Echoed keys and values are cut to kMaxEchoChars (a 1 MB JSON string, a flag value pasted by
// mistake): the line stays readable. The cut never splits a UTF-8 sequence.
static std::string cut(const std::string& s) {
  if (s.size() <= kMaxEchoChars) return s;
  size_t n = kMaxEchoChars - 3;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n) + "...";
}

static std::string compose(InputKind kind, const std::string& file_in, const std::string& key_in,
                           const std::string& value_in, const std::string& problem_in) {
  // Format: "<kind> error: <file>: key '<key>' = <value>: <problem>"
  const std::string file = one_line(file_in), key = cut(one_line(key_in)), value = cut(one_line(value_in)),
                    problem = one_line(problem_in);
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

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace sc
