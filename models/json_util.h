// Strict JSON parsing shared by every reader of outside input (config.json, safetensors headers,
// index files, tokenizer.json, datasets): invalid JSON and duplicate keys become InputErrors that
// name the file. nlohmann/json would otherwise keep the last duplicate silently.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "models/errors.h"

namespace sc {

// Parses text; throws InputError(kind) naming `file` on invalid JSON or a duplicate key
// (the key's JSON path is given, e.g. "/weight_map/lm_head.weight").
nlohmann::json parse_json_strict(const std::string& text, const std::string& file, InputKind kind);

// Reads a whole file (throws InputError(kind) if it cannot be opened or read).
std::string read_text_file(const std::string& path, InputKind kind);

// read_text_file, then parse_json_strict, both naming `path`.
nlohmann::json read_json_file(const std::string& path, InputKind kind);

// Short printable rendering of a JSON value for error messages (truncated at ~80 chars).
std::string json_brief(const nlohmann::json& v);

}  // namespace sc
