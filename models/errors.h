// Input errors: one type per input kind, each naming the file, the key and the offending value.
// The CLI maps every InputError to exit code 2 and prints what() on one line.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace sc {

// Keys and values longer than this are cut ("...") in the message; the fields keep the raw text.
constexpr size_t kMaxEchoChars = 80;

enum class InputKind { Config, Checkpoint, Tokenizer, Dataset, Plan, Usage, Output };

const char* input_kind_name(InputKind k);

class InputError : public std::runtime_error {
 public:
  InputError(InputKind kind, std::string file, std::string key, std::string value, std::string problem);
  InputKind kind() const { return kind_; }
  const std::string& file() const { return file_; }
  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }
  const std::string& problem() const { return problem_; }

 private:
  InputKind kind_;
  std::string file_, key_, value_, problem_;
};

// Thin named subclasses so callers can catch one kind.
struct ConfigError : InputError {
  ConfigError(std::string file, std::string key, std::string value, std::string problem)
      : InputError(InputKind::Config, std::move(file), std::move(key), std::move(value), std::move(problem)) {}
};
struct CheckpointError : InputError {
  CheckpointError(std::string file, std::string key, std::string value, std::string problem)
      : InputError(InputKind::Checkpoint, std::move(file), std::move(key), std::move(value), std::move(problem)) {}
};
struct TokenizerError : InputError {
  TokenizerError(std::string file, std::string key, std::string value, std::string problem)
      : InputError(InputKind::Tokenizer, std::move(file), std::move(key), std::move(value), std::move(problem)) {}
};
struct DatasetError : InputError {
  DatasetError(std::string file, std::string key, std::string value, std::string problem)
      : InputError(InputKind::Dataset, std::move(file), std::move(key), std::move(value), std::move(problem)) {}
};
struct PlanError : InputError {
  PlanError(std::string key, std::string value, std::string problem)
      : InputError(InputKind::Plan, "", std::move(key), std::move(value), std::move(problem)) {}
};
struct OutputError : InputError {
  OutputError(std::string file, std::string problem)
      : InputError(InputKind::Output, std::move(file), "", "", std::move(problem)) {}
};

// The message of a caught LibTorch exception without the C++ backtrace that torch 2.x appends
// ("Exception raised from ... at ...") or 1.13's trailing frames: the first line(s) users see in Python.
std::string clean_exception_text(const char* what);

// "[2, 3, 22]": a shape as error messages print it.
std::string shape_str(const std::vector<int64_t>& shape);

// Throws the subclass that matches `kind` (so callers can catch ConfigError, CheckpointError, ...).
[[noreturn]] void throw_input_error(InputKind kind, const std::string& file, const std::string& key,
                                    const std::string& value, const std::string& problem);

}  // namespace sc
