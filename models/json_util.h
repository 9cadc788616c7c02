// Strict JSON parsing shared by every reader of outside input (config.json, safetensors headers,
// index files, tokenizer.json, datasets): invalid JSON and duplicate keys become InputErrors that
// name the file. nlohmann/json would otherwise keep the last duplicate silently.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "models/errors.h"

namespace sc {

// Bounds on every JSON input (config, baseline, runs file, datasets, index files, tokenizer.json):
// a larger file or a deeper nesting is an InputError naming the file and the limit, before the
// parser spends time or memory on it (a 200 kB file nested 10^5 deep took 45 s and 10 GB).
constexpr size_t kMaxJsonFileBytes = size_t(64) << 20;  // 64 MiB (tokenizer.json: 11 MB)
constexpr size_t kMaxJsonDepth = 256;                   // nested objects / arrays (real files: < 10)

// Parses text; throws InputError(kind) naming `file` on invalid JSON, a duplicate key (the key's
// JSON path is given, e.g. "/weight_map/lm_head.weight") or nesting deeper than kMaxJsonDepth.
nlohmann::json parse_json_strict(const std::string& text, const std::string& file, InputKind kind);

// "JSON nested deeper than 256 levels (the limit for input files)": the problem text of that error.
std::string json_too_deep_problem();

// The human part of a nlohmann exception's text, without "[json.exception.type_error.302] ".
std::string json_exception_text(const std::exception& e);

// Reads a whole file: a regular file (or a pipe) of at most `max_bytes`; InputError(kind) naming
// the file when it cannot be opened or read, is a directory or a device, or is larger.
std::string read_text_file(const std::string& path, InputKind kind, size_t max_bytes = kMaxJsonFileBytes);

// read_text_file, then parse_json_strict, both naming `path`.
nlohmann::json read_json_file(const std::string& path, InputKind kind);

// Short printable rendering of a JSON value for error messages (truncated at ~80 chars).
std::string json_brief(const nlohmann::json& v);

}  // namespace sc
