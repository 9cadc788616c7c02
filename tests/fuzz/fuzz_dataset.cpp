// Steering datasets (models/dataset.h). Input: one option byte (bit 0: pairs JSONL instead of CAA
// JSON; bit 1: JSONL texts verbatim; bit 2: a system prompt; bit 3: thinking on), then the file.
// Any file gives a Dataset or a DatasetError; every example's read position lies in its prompt and,
// tokenized with the seed tokenizer, maps to a token.
#include <fstream>
#include <sstream>
#include <string>

#include "models/dataset.h"
#include "tests/fuzz/fuzz_common.h"

namespace {
const sc::Tokenizer& tokenizer() {
  static const sc::Tokenizer t = [] {
    const std::string path = std::string(SC_FIXTURES) + "/fuzz/tokenizer/seed-qwen-shape";
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    const std::string s = ss.str();
    if (s.empty()) sc::fuzz::fail("cannot read " + path);
    return sc::Tokenizer::from_json_text(s.substr(0, s.find('\0')), path);
  }();
  return t;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  sc::DatasetOptions o;
  o.chat_format_pairs = !(flags & 2);
  if (flags & 4) o.system_prompt = "You are a careful assistant.";
  o.enable_thinking = flags & 8;
  const sc::Tokenizer& tok = tokenizer();
  sc::fuzz::expect_input_error("dataset", [&] {
    const sc::Dataset ds = (flags & 1) ? sc::parse_pairs_jsonl(text, "d.jsonl", o) : sc::parse_caa_json(text, "d.json", o);
    sc::fuzz::check(!ds.examples.empty(), "empty dataset accepted");
    for (const auto& ex : ds.examples) {
      sc::fuzz::check(ex.positive_read_byte < ex.positive.size() && ex.negative_read_byte < ex.negative.size(),
                      "read byte outside the prompt");
      if (ds.format == sc::DatasetFormat::CaaJson)
        sc::fuzz::check(ex.positive[ex.positive_read_byte] == ex.positive_letter &&
                            ex.negative[ex.negative_read_byte] == ex.negative_letter,
                        "CAA read byte is not the answer letter");
    }
    for (const auto& t : sc::tokenize_dataset(ds, tok))
      sc::fuzz::check(t.positive_read >= 0 && t.positive_read < int64_t(t.positive.size()) && t.negative_read >= 0 &&
                          t.negative_read < int64_t(t.negative.size()),
                      "read token outside the sequence");
  });
  return 0;
}
