// Contrastive datasets: the fixture CAA JSON and pairs JSONL, prompts equal to transformers'
// template (goldens), read positions equal to HF's char_to_token, and errors naming file,
// item/line, key and value.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "models/dataset.h"
#include "models/errors.h"
#include "models/tokenizer.h"

using namespace sc;
using nlohmann::json;

namespace {

std::string fixture(const std::string& name) { return std::string(SC_FIXTURES) + "/datasets/" + name; }

const json& golden_rows() {
  static const json g = [] {
    std::ifstream f(std::string(SC_FIXTURES) + "/tokenizer/qwen3_goldens.json");
    return json::parse(f)["dataset"];
  }();
  return g;
}

const Tokenizer* real() {
  static const std::unique_ptr<Tokenizer> t = []() -> std::unique_ptr<Tokenizer> {
    const std::string dir = qwen3_tokenizer_dir();
    if (dir.empty()) return nullptr;
    return std::make_unique<Tokenizer>(Tokenizer::from_dir(dir));
  }();
  return t.get();
}

// Golden row for (file, index, side).
const json& row(const std::string& file, size_t index, const std::string& side) {
  for (const json& r : golden_rows())
    if (r["file"] == file && r["index"] == index && r["side"] == side) return r;
  throw std::runtime_error("no golden row for " + file);
}

void expect_ds_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no DatasetError thrown";
  } catch (const DatasetError& e) {
    const std::string m = e.what();
    for (const auto& p : parts) EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
  }
}

}  // namespace

TEST(Dataset, AnswerLetters) {
  EXPECT_EQ(parse_answer_letter("(A)"), 'A');
  EXPECT_EQ(parse_answer_letter(" (B)"), 'B');
  EXPECT_EQ(parse_answer_letter("(C) some text"), 'C');
  EXPECT_EQ(parse_answer_letter("D"), 'D');
  EXPECT_EQ(parse_answer_letter(" E \n"), 'E');
  EXPECT_EQ(parse_answer_letter("(a)"), 0);
  EXPECT_EQ(parse_answer_letter("(AB)"), 0);
  EXPECT_EQ(parse_answer_letter("Yes"), 0);
  EXPECT_EQ(parse_answer_letter(""), 0);
}

TEST(Dataset, FixtureCaaItems) {
  Dataset ds = load_dataset(fixture("metric_units_caa.json"));
  EXPECT_EQ(ds.format, DatasetFormat::CaaJson);
  ASSERT_EQ(ds.examples.size(), 24u);
  int a_matching = 0;
  for (const ContrastExample& ex : ds.examples) {
    EXPECT_NE(ex.positive_letter, ex.negative_letter);
    a_matching += ex.positive_letter == 'A';
    EXPECT_EQ(ex.positive, ex.eval_prompt + ex.positive_letter);
    EXPECT_EQ(ex.negative, ex.eval_prompt + ex.negative_letter);
    EXPECT_EQ(ex.eval_prompt.back(), '(');
    EXPECT_EQ(ex.positive_read_byte, ex.positive.size() - 1);  // the answer letter
    EXPECT_EQ(ex.positive[ex.positive_read_byte], ex.positive_letter);
    EXPECT_EQ(ex.negative[ex.negative_read_byte], ex.negative_letter);
    EXPECT_NE(ex.positive.find(ex.question), std::string::npos);
  }
  EXPECT_EQ(a_matching, 12);  // balanced: the letter says nothing about the behaviour
}

TEST(Dataset, CaaPromptsEqualTransformersTemplate) {
  Dataset ds = load_caa_json(fixture("metric_units_caa.json"));
  for (const ContrastExample& ex : ds.examples) {
    EXPECT_EQ(ex.positive, row("metric_units_caa.json", ex.index, "positive")["text"].get<std::string>());
    EXPECT_EQ(ex.negative, row("metric_units_caa.json", ex.index, "negative")["text"].get<std::string>());
  }
}

TEST(Dataset, PairsJsonlEqualTransformersTemplate) {
  Dataset ds = load_dataset(fixture("concise_pairs.jsonl"));
  EXPECT_EQ(ds.format, DatasetFormat::PairsJsonl);
  ASSERT_EQ(ds.examples.size(), 12u);
  EXPECT_EQ(ds.examples[0].index, 1u);  // line numbers
  for (const ContrastExample& ex : ds.examples) {
    EXPECT_EQ(ex.positive, row("concise_pairs.jsonl", ex.index, "positive")["text"].get<std::string>());
    EXPECT_EQ(ex.negative, row("concise_pairs.jsonl", ex.index, "negative")["text"].get<std::string>());
    EXPECT_EQ(ex.positive_letter, 0);
  }
  DatasetOptions raw;
  raw.chat_format_pairs = false;
  Dataset r = load_pairs_jsonl(fixture("concise_pairs.jsonl"), raw);
  EXPECT_EQ(r.examples[0].positive, "Answer in one short sentence: why is the sky blue?");
}

TEST(Dataset, ReadPositionsEqualHf) {
  if (!real()) GTEST_SKIP() << "Qwen3 tokenizer not found: run `bash tools/fetch_tokenizer.sh`";
  for (const std::string file : {"metric_units_caa.json", "concise_pairs.jsonl"}) {
    Dataset ds = load_dataset(fixture(file));
    std::vector<TokenizedExample> tok = tokenize_dataset(ds, *real());
    ASSERT_EQ(tok.size(), ds.examples.size());
    for (size_t i = 0; i < tok.size(); ++i) {
      const json& p = row(file, ds.examples[i].index, "positive");
      const json& n = row(file, ds.examples[i].index, "negative");
      EXPECT_EQ(tok[i].positive, p["ids"].get<std::vector<TokenId>>());
      EXPECT_EQ(tok[i].negative, n["ids"].get<std::vector<TokenId>>());
      EXPECT_EQ(tok[i].positive_read, p["read"].get<int64_t>());
      EXPECT_EQ(tok[i].negative_read, n["read"].get<int64_t>());
      EXPECT_EQ(tok[i].positive_read, int64_t(tok[i].positive.size()) - 1);
    }
    if (ds.format == DatasetFormat::CaaJson) {
      // The read token holds the answer letter: "(A" is one Qwen3 token.
      EXPECT_EQ(real()->decode({tok[0].positive[size_t(tok[0].positive_read)]}),
                std::string("(") + ds.examples[0].positive_letter);
    }
  }
}

TEST(Dataset, SystemPromptAndThinking) {
  DatasetOptions o;
  o.system_prompt = "You are terse.";
  Dataset ds = load_caa_json(fixture("metric_units_caa.json"), o);
  EXPECT_EQ(ds.examples[0].positive.rfind("<|im_start|>system\nYou are terse.<|im_end|>\n", 0), 0u);
  o.system_prompt.clear();
  o.enable_thinking = true;
  ds = load_caa_json(fixture("metric_units_caa.json"), o);
  EXPECT_EQ(ds.examples[0].positive.find("<think>"), std::string::npos);
}

TEST(Dataset, CaaErrorsNameFileItemKeyAndValue) {
  auto caa = [](const std::string& text) { return [text] { parse_caa_json(text, "caa.json"); }; };
  const std::string ok = R"J({"question": "Q?\n (A) x\n (B) y", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"})J";
  EXPECT_NO_THROW(parse_caa_json("[" + ok + "]", "caa.json"));
  expect_ds_error(caa(R"J({"a": 1})J"), {"caa.json", "expected a JSON array"});
  expect_ds_error(caa("[]"), {"caa.json", "no items"});
  expect_ds_error(caa("[" + ok + ", 5]"), {"caa.json", "key '/1'", "5", "must be an object"});
  expect_ds_error(caa(R"J([{"answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}])J"),
                  {"/0/question", "missing key"});
  expect_ds_error(caa(R"J([{"question": 7, "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}])J"),
                  {"/0/question", "7", "must be a string"});
  expect_ds_error(caa("[" + ok + R"J(, {"question": "Q (A) (B)", "answer_matching_behavior": "(a)", "answer_not_matching_behavior": "(B)"}])J"),
                  {"caa.json", "/1/answer_matching_behavior", "(a)"});
  expect_ds_error(caa(R"J([{"question": "Q (A) (B)", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(A)"}])J"),
                  {"/0/answer_not_matching_behavior", "same letter"});
  expect_ds_error(caa(R"J([{"question": "Q (A) only", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}])J"),
                  {"/0/question", "Q (A) only", "(B)"});
  expect_ds_error(caa(R"J([{"question": "Q (A) (B)", "question": "again", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}])J"),
                  {"caa.json", "/0/question", "duplicate key"});
  expect_ds_error(caa("[{"), {"caa.json", "invalid JSON"});
  expect_ds_error([] { load_caa_json("/nonexistent/data.json"); }, {"/nonexistent/data.json"});
}

TEST(Dataset, JsonlErrorsNameFileLineKeyAndValue) {
  auto pairs = [](const std::string& text) { return [text] { parse_pairs_jsonl(text, "p.jsonl"); }; };
  EXPECT_EQ(parse_pairs_jsonl("\n{\"positive\": \"a\", \"negative\": \"b\"}\r\n\n", "p.jsonl").examples.size(), 1u);
  expect_ds_error(pairs("{\"positive\": \"a\", \"negative\": \"b\"}\n{\"positive\": \"a\"}\n"),
                  {"p.jsonl:2", "/negative", "missing key"});
  expect_ds_error(pairs("{\"positive\": \"a\", \"negative\": \"b\"}\n\nnot json\n"), {"p.jsonl:3", "invalid JSON"});
  expect_ds_error(pairs("{\"positive\": 1, \"negative\": \"b\"}"), {"p.jsonl:1", "/positive", "1", "must be a string"});
  expect_ds_error(pairs("{\"positive\": \"\", \"negative\": \"b\"}"), {"p.jsonl:1", "/positive", "must not be empty"});
  expect_ds_error(pairs("[1, 2]"), {"p.jsonl:1", "[1,2]", "expected an object"});
  expect_ds_error(pairs("\n  \n"), {"p.jsonl", "no pairs"});
  expect_ds_error(pairs("{\"positive\": \"a\", \"positive\": \"b\", \"negative\": \"c\"}"), {"p.jsonl:1", "/positive", "duplicate key"});
}
