// The key reader of config.json parsing, shared by ModelConfig::from_json (the keys every family
// shares) and the families' own readers (families/*/spec.cpp): every error names the file, the
// full key (text_config.num_experts) and the value. Torch-free.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>

#include <nlohmann/json.hpp>

#include "models/errors.h"
#include "models/json_util.h"

namespace sc {

// Upper bounds that keep every derived product inside int64 (and far beyond any real model).
inline constexpr int64_t kMaxWidth = int64_t(1) << 20;    // hidden, head_dim, intermediate sizes
inline constexpr int64_t kMaxHeads = int64_t(1) << 14;
inline constexpr int64_t kMaxLayers = int64_t(1) << 14;
inline constexpr int64_t kMaxExperts = int64_t(1) << 16;
inline constexpr int64_t kMaxVocab = int64_t(1) << 24;
inline constexpr int64_t kMaxPositions = int64_t(1) << 32;
inline constexpr int64_t kMaxParams = int64_t(1) << 50;  // total_params (real models: < 2^41)

struct ConfigReader {
  const nlohmann::json& j;
  const std::string& file;
  std::string prefix = "";  // "rope_scaling." / "text_config." for a nested object: keys in messages are full

  [[noreturn]] void fail(const std::string& key, const nlohmann::json& v, const std::string& problem) const {
    throw ConfigError(file, prefix + key, json_brief(v), problem);
  }
  bool has(const char* key) const { return j.contains(key) && !j.at(key).is_null(); }

  int64_t integer(const char* key, int64_t lo, int64_t hi) const {
    const nlohmann::json& v = j.at(key);
    int64_t x = 0;
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > uint64_t(hi)) fail(key, v, "must be at most " + std::to_string(hi));
      x = int64_t(v.get<uint64_t>());
    } else if (v.is_number_integer()) {
      x = v.get<int64_t>();
    } else if (v.is_number_float()) {
      fail(key, v, "must be an integer, not a floating-point number");
    } else {
      fail(key, v, std::string("must be an integer, not a ") + v.type_name());
    }
    if (x < lo) fail(key, v, lo == 1 ? "must be positive" : "must be at least " + std::to_string(lo));
    if (x > hi) fail(key, v, "must be at most " + std::to_string(hi));
    return x;
  }
  int64_t required_int(const char* key, int64_t lo, int64_t hi) const {
    if (!has(key)) throw ConfigError(file, prefix + key, "(missing)", "required key is missing");
    return integer(key, lo, hi);
  }
  int64_t optional_int(const char* key, int64_t dflt, int64_t lo, int64_t hi) const {
    return has(key) ? integer(key, lo, hi) : dflt;
  }
  // The first of several spellings present (num_experts / num_local_experts / n_routed_experts), or nullptr.
  const char* first_of(std::initializer_list<const char*> keys) const {
    for (const char* k : keys)
      if (has(k)) return k;
    return nullptr;
  }
  bool boolean(const char* key, bool dflt) const {
    if (!has(key)) return dflt;
    const nlohmann::json& v = j.at(key);
    if (!v.is_boolean()) fail(key, v, std::string("must be true or false, not a ") + v.type_name());
    return v.get<bool>();
  }
  double positive_number(const nlohmann::json& v, const std::string& key) const {
    if (!v.is_number()) fail(key, v, std::string("must be a number, not a ") + v.type_name());
    double x = v.get<double>();
    if (!std::isfinite(x) || x <= 0) fail(key, v, "must be a positive finite number");
    return x;
  }
  std::string string(const char* key) const {
    const nlohmann::json& v = j.at(key);
    if (!v.is_string()) fail(key, v, std::string("must be a string, not a ") + v.type_name());
    return v.get<std::string>();
  }
};

}  // namespace sc
