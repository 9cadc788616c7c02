// Contrastive datasets: CAA JSON and positive/negative JSONL (see dataset.h).
#include "models/dataset.h"

#include <cctype>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "models/chat_template.h"
#include "models/errors.h"
#include "models/json_util.h"

namespace sc {

using nlohmann::json;

namespace {

[[noreturn]] void ds_error(const std::string& file, const std::string& key, const std::string& value,
                           const std::string& problem) {
  throw DatasetError(file, key, value, problem);
}

// A required non-empty string field of an object.
std::string required_string(const json& obj, const char* field, const std::string& file, const std::string& prefix) {
  auto it = obj.find(field);
  if (it == obj.end()) ds_error(file, prefix + "/" + field, "", "missing key");
  if (!it->is_string()) ds_error(file, prefix + "/" + field, json_brief(*it), "must be a string");
  std::string s = it->get<std::string>();
  if (s.empty()) ds_error(file, prefix + "/" + field, "\"\"", "must not be empty");
  return s;
}

bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

}  // namespace

char parse_answer_letter(const std::string& answer) {
  size_t i = 0;
  while (i < answer.size() && std::isspace(static_cast<unsigned char>(answer[i]))) ++i;
  if (i < answer.size() && answer[i] == '(') {
    if (i + 2 < answer.size() && std::isupper(static_cast<unsigned char>(answer[i + 1])) && answer[i + 2] == ')')
      return answer[i + 1];
    return 0;
  }
  // A bare letter, alone.
  size_t e = answer.size();
  while (e > i && std::isspace(static_cast<unsigned char>(answer[e - 1]))) --e;
  if (e == i + 1 && std::isupper(static_cast<unsigned char>(answer[i]))) return answer[i];
  return 0;
}

Dataset parse_caa_json(const std::string& text, const std::string& file, const DatasetOptions& options) {
  const json j = parse_json_strict(text, file, InputKind::Dataset);
  if (!j.is_array()) ds_error(file, "", json_brief(j), "expected a JSON array of CAA items");
  if (j.empty()) ds_error(file, "", "[]", "no items");
  Dataset ds;
  ds.file = file;
  ds.format = DatasetFormat::CaaJson;
  for (size_t i = 0; i < j.size(); ++i) {
    const json& item = j[i];
    const std::string at = "/" + std::to_string(i);
    if (!item.is_object()) ds_error(file, at, json_brief(item), "a CAA item must be an object");
    ContrastExample ex;
    ex.index = i;
    ex.question = required_string(item, "question", file, at);
    const std::string match = required_string(item, "answer_matching_behavior", file, at);
    const std::string other = required_string(item, "answer_not_matching_behavior", file, at);
    ex.positive_letter = parse_answer_letter(match);
    ex.negative_letter = parse_answer_letter(other);
    if (!ex.positive_letter)
      ds_error(file, at + "/answer_matching_behavior", json_brief(json(match)), "expected an answer like \"(A)\"");
    if (!ex.negative_letter)
      ds_error(file, at + "/answer_not_matching_behavior", json_brief(json(other)), "expected an answer like \"(B)\"");
    if (ex.positive_letter == ex.negative_letter)
      ds_error(file, at + "/answer_not_matching_behavior", json_brief(json(other)),
               "same letter as answer_matching_behavior");
    for (char letter : {ex.positive_letter, ex.negative_letter}) {
      const std::string choice = std::string("(") + letter + ")";
      if (ex.question.find(choice) == std::string::npos)
        ds_error(file, at + "/question", json_brief(json(ex.question)), "does not contain the choice " + choice);
    }
    ex.eval_prompt = qwen3_prompt(ex.question, options.system_prompt, options.enable_thinking) + "(";
    ex.positive = ex.eval_prompt + ex.positive_letter;
    ex.negative = ex.eval_prompt + ex.negative_letter;
    ex.positive_read_byte = ex.positive.size() - 1;
    ex.negative_read_byte = ex.negative.size() - 1;
    ds.examples.push_back(std::move(ex));
  }
  return ds;
}

Dataset parse_pairs_jsonl(const std::string& text, const std::string& file, const DatasetOptions& options) {
  Dataset ds;
  ds.file = file;
  ds.format = DatasetFormat::PairsJsonl;
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = file + ":" + std::to_string(line_no);
    const json j = parse_json_strict(line, where, InputKind::Dataset);
    if (!j.is_object()) ds_error(where, "", json_brief(j), "expected an object {\"positive\": ..., \"negative\": ...}");
    ContrastExample ex;
    ex.index = line_no;
    const std::string pos_text = required_string(j, "positive", where, "");
    const std::string neg_text = required_string(j, "negative", where, "");
    if (options.chat_format_pairs) {
      ex.positive = qwen3_prompt(pos_text, options.system_prompt, options.enable_thinking);
      ex.negative = qwen3_prompt(neg_text, options.system_prompt, options.enable_thinking);
    } else {
      ex.positive = pos_text;
      ex.negative = neg_text;
    }
    ex.positive_read_byte = ex.positive.size() - 1;
    ex.negative_read_byte = ex.negative.size() - 1;
    ds.examples.push_back(std::move(ex));
  }
  if (ds.examples.empty()) ds_error(file, "", "", "no pairs (the file has no non-blank line)");
  return ds;
}

Dataset load_caa_json(const std::string& path, const DatasetOptions& options) {
  return parse_caa_json(read_text_file(path, InputKind::Dataset), path, options);
}

Dataset load_pairs_jsonl(const std::string& path, const DatasetOptions& options) {
  return parse_pairs_jsonl(read_text_file(path, InputKind::Dataset), path, options);
}

Dataset load_dataset(const std::string& path, const DatasetOptions& options) {
  return ends_with(path, ".jsonl") ? load_pairs_jsonl(path, options) : load_caa_json(path, options);
}

std::vector<TokenizedExample> tokenize_dataset(const Dataset& ds, const Tokenizer& tok) {
  std::vector<TokenizedExample> out;
  out.reserve(ds.examples.size());
  for (const ContrastExample& ex : ds.examples) {
    TokenizedExample t;
    Encoding p = tok.encode_with_offsets(ex.positive);
    Encoding n = tok.encode_with_offsets(ex.negative);
    t.positive_read = p.token_at_byte(ex.positive_read_byte);
    t.negative_read = n.token_at_byte(ex.negative_read_byte);
    if (t.positive_read < 0 || t.negative_read < 0)
      throw std::logic_error("tokenize_dataset: read position not covered by any token in example " +
                             std::to_string(ex.index) + " of " + ds.file);
    t.positive = std::move(p.ids);
    t.negative = std::move(n.ids);
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace sc
