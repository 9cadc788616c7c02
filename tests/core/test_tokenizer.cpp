// Tokenizer and chat template.
//  * TokenizerGolden.*: the real Qwen3 tokenizer.json (fetched by tools/fetch_tokenizer.sh;
//    skipped with a message when absent) against ids, decodes and chat strings made by HF
//    tokenizers 0.23 / transformers 5.17 (fixtures/tokenizer/qwen3_goldens.json).
//  * Tokenizer.*: behaviour on small synthetic tokenizer.json files (always run): BPE rank order,
//    merge spellings, added-token flags, offsets, padding, errors naming file, key and value.
//  * ChatTemplate.*: transformers-rendered chat strings (always run; no tokenizer needed).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "models/chat_template.h"
#include "models/errors.h"
#include "models/tokenizer.h"

using namespace sc;
using nlohmann::json;

namespace {

const json& goldens() {
  static const json g = [] {
    std::ifstream f(std::string(SC_FIXTURES) + "/tokenizer/qwen3_goldens.json");
    if (!f) throw std::runtime_error("missing fixtures/tokenizer/qwen3_goldens.json");
    return json::parse(f);
  }();
  return g;
}

// The real tokenizer, loaded once; nullptr when it was not fetched.
const Tokenizer* real() {
  static const std::unique_ptr<Tokenizer> t = []() -> std::unique_ptr<Tokenizer> {
    const std::string dir = qwen3_tokenizer_dir();
    if (dir.empty()) return nullptr;
    return std::make_unique<Tokenizer>(Tokenizer::from_dir(dir));
  }();
  return t.get();
}

#define REQUIRE_REAL_TOKENIZER()                                                                 \
  if (!real())                                                                                   \
  GTEST_SKIP() << "Qwen3 tokenizer not found: run `bash tools/fetch_tokenizer.sh` (it writes " \
                  ".deps/qwen3-tokenizer/) or set SC_QWEN3_TOKENIZER_DIR"

std::string show_ids(const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId i : ids) s += (s.empty() ? "" : " ") + std::to_string(i);
  return s;
}

// ---- synthetic byte-level tokenizer.json --------------------------------------------------------

// GPT-2's byte -> unicode alphabet, written out for the tests.
std::string byte_char(int b) {
  const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  int cp = b;
  if (!printable) {
    int n = 0;
    for (int k = 0; k < b; ++k)
      if (!((k >= 0x21 && k <= 0x7E) || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) s += char(cp);
  else { s += char(0xC0 | (cp >> 6)); s += char(0x80 | (cp & 0x3F)); }
  return s;
}

// A small tokenizer of Qwen's shape: ids 0..255 the byte alphabet, then merged tokens.
json synth(const std::vector<std::pair<std::string, std::string>>& merges) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  json m = json::array();
  int next = 256;
  for (auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
    m.push_back(a + " " + b);
  }
  json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = json::array({
      {{"id", 1000}, {"content", "<|end|>"}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
       {"normalized", false}, {"special", true}},
      {{"id", 1001}, {"content", "<t>"}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
       {"normalized", false}, {"special", false}},
  });
  j["normalizer"] = {{"type", "NFC"}};
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "Split"},
                     {"pattern", {{"Regex", " ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"}}},
                     {"behavior", "Isolated"}, {"invert", false}},
                    {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}})}};
  j["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  j["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false},
                {"ignore_merges", false}, {"vocab", vocab}, {"merges", m}};
  return j;
}

const std::vector<std::pair<std::string, std::string>> kMerges = {
    {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"Ġ", "w"}, {"o", "r"}, {"Ġw", "or"}, {"Ġwor", "l"},
    {"Ġworl", "d"}, {"a", "a"}, {"b", "c"}, {"a", "b"}};

Tokenizer synth_tokenizer(const json& j = synth(kMerges), const std::string& config = "") {
  return Tokenizer::from_json_text(j.dump(), "synth.json", config, "synth_config.json");
}

std::vector<TokenId> ids_of(const Tokenizer& t, const std::vector<std::string>& toks) {
  std::vector<TokenId> r;
  for (auto& s : toks) r.push_back(*t.token_to_id(s));
  return r;
}

// Expects a TokenizerError whose message names all of `parts`.
void expect_tok_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no TokenizerError thrown";
  } catch (const TokenizerError& e) {
    const std::string m = e.what();
    for (const auto& p : parts) EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
  }
}

}  // namespace

// ================================================================================================
// Goldens from HF tokenizers / transformers
// ================================================================================================

TEST(TokenizerGolden, FileMetadata) {
  const json& meta = goldens()["meta"];
  EXPECT_EQ(meta["errors"].size(), 0u) << meta["errors"].dump();
  EXPECT_GE(goldens()["encode"].size(), 1000u);
  EXPECT_EQ(meta["transformers_vs_tokenizers_mismatches"], 0);
  REQUIRE_REAL_TOKENIZER();
  std::ifstream f(real()->file(), std::ios::binary | std::ios::ate);
  EXPECT_EQ(int64_t(f.tellg()), meta["tokenizer_json_size"].get<int64_t>())
      << "the fetched tokenizer.json differs in size from the one the goldens were made with";
  EXPECT_EQ(real()->vocab_size(), 151669u);
  EXPECT_EQ(real()->num_merges(), 151387u);
  EXPECT_EQ(real()->added_tokens().size(), 26u);
  EXPECT_EQ(real()->pad_id(), std::optional<TokenId>(151643));  // <|endoftext|>
  EXPECT_EQ(real()->eos_id(), std::optional<TokenId>(151645));  // <|im_end|>
  EXPECT_EQ(real()->bos_id(), std::nullopt);
  std::cout << "[ tokenizer] PCRE2 JIT " << (real()->regex_jit() ? "on" : "off") << "\n";
}

TEST(TokenizerGolden, EncodeEqualsHfForEveryString) {
  REQUIRE_REAL_TOKENIZER();
  const Tokenizer& t = *real();
  size_t n = 0, equal = 0;
  for (const json& e : goldens()["encode"]) {
    const std::string text = e["text"];
    const std::vector<TokenId> want = e["ids"];
    const std::vector<TokenId> got = t.encode(text);
    ++n;
    if (got == want) {
      ++equal;
    } else if (n - equal <= 10) {
      ADD_FAILURE() << "text " << json(text).dump() << "\n  ours: " << show_ids(got) << "\n  HF:   " << show_ids(want);
    }
  }
  std::cout << "[ golden   ] exact match " << equal << "/" << n << " strings\n";
  EXPECT_EQ(equal, n);
}

TEST(TokenizerGolden, DecodeEqualsHf) {
  REQUIRE_REAL_TOKENIZER();
  const Tokenizer& t = *real();
  size_t pieces = 0;
  for (const json& e : goldens()["encode"]) {
    const std::vector<TokenId> ids = e["ids"];
    const std::string decoded = e.value("decoded", e["text"].get<std::string>());
    const std::string decoded_skip = e.value("decoded_skip", decoded);
    EXPECT_EQ(t.decode(ids), decoded) << json(e["text"]).dump();
    EXPECT_EQ(t.decode(ids, /*skip_special_tokens=*/true), decoded_skip) << json(e["text"]).dump();
    // Decoding is the inverse of encoding on the normalized text.
    EXPECT_EQ(t.encode(decoded), ids) << json(e["text"]).dump();
    if (e.contains("pieces")) {
      // Single tokens that hold part of a UTF-8 character decode to U+FFFD, as HF's do.
      for (size_t k = 0; k < ids.size(); ++k) EXPECT_EQ(t.decode({ids[k]}), e["pieces"][k].get<std::string>());
      ++pieces;
    }
  }
  EXPECT_GT(pieces, 50u);
}

TEST(TokenizerGolden, ChatStringsTokenizeAsHf) {
  REQUIRE_REAL_TOKENIZER();
  for (const json& c : goldens()["chat"]) {
    const std::vector<TokenId> want = c["ids"];
    EXPECT_EQ(real()->encode(c["text"].get<std::string>()), want) << c["text"].dump();
  }
}

TEST(TokenizerGolden, SpecialTokensInsideText) {
  REQUIRE_REAL_TOKENIZER();
  const Tokenizer& t = *real();
  const TokenId im_start = *t.token_to_id("<|im_start|>"), im_end = *t.token_to_id("<|im_end|>");
  const TokenId think = *t.token_to_id("<think>"), endoftext = *t.token_to_id("<|endoftext|>");
  EXPECT_EQ(im_start, 151644);
  EXPECT_EQ(think, 151667);
  auto ids = t.encode("<|im_start|>user\nhi<|im_end|>");
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), im_start);
  EXPECT_EQ(ids.back(), im_end);
  // <think> is an added token that is not special: matched in text, kept by skip_special_tokens.
  ids = t.encode("a<think>b<|endoftext|>");
  EXPECT_NE(std::find(ids.begin(), ids.end(), think), ids.end());
  EXPECT_NE(std::find(ids.begin(), ids.end(), endoftext), ids.end());
  EXPECT_EQ(t.decode(ids, true), "a<think>b");
  EXPECT_TRUE(t.is_special(endoftext));
  EXPECT_FALSE(t.is_special(think));
  // A partial marker is ordinary text.
  ids = t.encode("<|im_start");
  EXPECT_EQ(std::find(ids.begin(), ids.end(), im_start), ids.end());
}

TEST(TokenizerGolden, LongInputsAreFast) {
  REQUIRE_REAL_TOKENIZER();
  const Tokenizer& t = *real();
  // 100 KB of one repeated character: one huge pre-token for letters and punctuation, 100K
  // pre-tokens for digits, one whitespace run. Each must finish quickly (no quadratic BPE).
  for (const std::string unit : {"a", " ", "!", "1", "\xE4\xB8\xAD" /* 中 */, "\n", "ab"}) {
    std::string s;
    while (s.size() < 100000) s += unit;
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = t.encode(s);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(sec, 5.0) << json(unit).dump();
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(t.decode(ids), s);
  }
}

TEST(TokenizerGolden, InterpreterPathWithoutJitAgrees) {
  REQUIRE_REAL_TOKENIZER();
  ::setenv("SC_PCRE2_NO_JIT", "1", 1);
  const Tokenizer t = Tokenizer::from_dir(qwen3_tokenizer_dir());
  ::unsetenv("SC_PCRE2_NO_JIT");
  EXPECT_FALSE(t.regex_jit());
  size_t equal = 0;
  for (const json& e : goldens()["encode"]) equal += t.encode(e["text"].get<std::string>()) == e["ids"].get<std::vector<TokenId>>();
  EXPECT_EQ(equal, goldens()["encode"].size());
  const std::string spaces(100000, ' '), letters(100000, 'x');
  EXPECT_EQ(t.encode(spaces), real()->encode(spaces));
  EXPECT_EQ(t.encode(letters + spaces + "y"), real()->encode(letters + spaces + "y"));
}

TEST(TokenizerGolden, BatchWithLeftPadding) {
  REQUIRE_REAL_TOKENIZER();
  const Tokenizer& t = *real();
  const std::vector<std::string> texts = {"Hello", "Hello, world! How are you today?", ""};
  PaddedBatch b = t.encode_batch_padded(texts);
  const auto seqs = t.encode_batch(texts);
  ASSERT_EQ(b.batch, 3);
  EXPECT_EQ(b.seq_len, int64_t(seqs[1].size()));
  for (int64_t r = 0; r < b.batch; ++r) {
    EXPECT_EQ(b.lengths[size_t(r)], int64_t(seqs[size_t(r)].size()));
    for (int64_t c = 0; c < b.seq_len; ++c) {
      const size_t at = size_t(r * b.seq_len + c);
      const bool real_tok = c >= b.pad_count(r);
      EXPECT_EQ(b.attention_mask[at], real_tok ? 1 : 0);
      EXPECT_EQ(b.input_ids[at], real_tok ? seqs[size_t(r)][size_t(c - b.pad_count(r))] : 151643);
      EXPECT_EQ(b.position_ids[at], real_tok ? c - b.pad_count(r) : 1);
    }
    // The last real token sits in the last column for every row (left padding).
    if (b.lengths[size_t(r)] > 0) EXPECT_EQ(b.padded_index(r, b.lengths[size_t(r)] - 1), b.seq_len - 1);
  }
}

TEST(TokenizerGolden, OffsetsCoverTheText) {
  REQUIRE_REAL_TOKENIZER();
  const Tokenizer& t = *real();
  for (const json& e : goldens()["encode"]) {
    const std::string text = e["text"];
    const Encoding enc = t.encode_with_offsets(text);
    ASSERT_EQ(enc.ids.size(), enc.offsets.size());
    size_t at = 0;
    bool exact = true;
    for (size_t k = 0; k < enc.ids.size(); ++k) {
      if (enc.offsets[k].first != at) exact = false;
      at = enc.offsets[k].second;
    }
    if (exact && !e.contains("decoded")) {
      // Text NFC left alone and no stripped whitespace: spans tile the text and hold the bytes.
      EXPECT_EQ(at, text.size()) << json(text).dump();
      for (size_t k = 0; k < enc.ids.size(); ++k) {
        const auto [b, en] = enc.offsets[k];
        EXPECT_EQ(text.substr(b, en - b), t.token_bytes(enc.ids[k])) << json(text).dump();
      }
    }
  }
}

TEST(TokenizerGolden, ThreadsShareOneTokenizer) {
  REQUIRE_REAL_TOKENIZER();
  const Tokenizer& t = *real();
  std::vector<std::string> texts;
  for (const json& e : goldens()["encode"]) texts.push_back(e["text"]);
  std::vector<std::vector<std::vector<TokenId>>> results(2);
  t.clear_cache();
  std::vector<std::thread> th;
  for (int k = 0; k < 2; ++k)
    th.emplace_back([&, k] { results[size_t(k)] = t.encode_batch(texts); });
  for (auto& x : th) x.join();
  size_t i = 0;
  for (const json& e : goldens()["encode"]) {
    const std::vector<TokenId> want = e["ids"];
    EXPECT_EQ(results[0][i], want);
    EXPECT_EQ(results[1][i], want);
    ++i;
  }
  EXPECT_GT(t.cache_size(), 0u);
}

// ================================================================================================
// Synthetic tokenizers
// ================================================================================================

TEST(Tokenizer, BpeMergesByRankLeftmostFirst) {
  Tokenizer t = synth_tokenizer();
  EXPECT_EQ(t.encode("hello"), ids_of(t, {"hello"}));
  EXPECT_EQ(t.encode("hello world"), ids_of(t, {"hello", "Ġworld"}));
  // "a a" applies left to right: aaa -> aa a.
  EXPECT_EQ(t.encode("aaa"), ids_of(t, {"aa", "a"}));
  EXPECT_EQ(t.encode("aaaa"), ids_of(t, {"aa", "aa"}));
  // "b c" (rank 10) beats "a b" (rank 11): abc -> a bc.
  EXPECT_EQ(t.encode("abc"), ids_of(t, {"a", "bc"}));
  EXPECT_EQ(t.decode(t.encode("hello world")), "hello world");
  EXPECT_EQ(t.vocab_size(), 1002u);
  EXPECT_EQ(t.pad_id(), std::nullopt);
}

TEST(Tokenizer, MergesAsPairsEqualMergesAsStrings) {
  json j = synth(kMerges);
  json pairs = json::array();
  for (auto& [a, b] : kMerges) pairs.push_back({a, b});
  j["model"]["merges"] = pairs;
  Tokenizer a = synth_tokenizer(), b = synth_tokenizer(j);
  for (const std::string s : {"hello world", "aaaab c abc", "hellohello"}) EXPECT_EQ(a.encode(s), b.encode(s));
}

TEST(Tokenizer, AddedTokensAndFlags) {
  json j = synth(kMerges);
  j["added_tokens"].push_back({{"id", 1002}, {"content", "<l>"}, {"lstrip", true}, {"special", true}, {"normalized", false}});
  j["added_tokens"].push_back({{"id", 1003}, {"content", "<r>"}, {"rstrip", true}, {"special", true}, {"normalized", false}});
  j["added_tokens"].push_back({{"id", 1004}, {"content", "sw"}, {"single_word", true}, {"special", false}, {"normalized", false}});
  j["added_tokens"].push_back({{"id", 1005}, {"content", "\xC7\x8E"}, {"special", false}, {"normalized", true}});  // ǎ
  Tokenizer t = synth_tokenizer(j);
  const TokenId end = 1000, tt = 1001, l = 1002, r = 1003, sw = 1004, a_caron = 1005;
  EXPECT_EQ(t.encode("<|end|>"), std::vector<TokenId>{end});
  EXPECT_EQ(t.encode("hello<|end|>"), (std::vector<TokenId>{*t.token_to_id("hello"), end}));
  // Leftmost-longest: "<t>" inside text, and <|end|> before a later <t>.
  EXPECT_EQ(t.encode("<t><|end|>"), (std::vector<TokenId>{tt, end}));
  // lstrip eats the spaces on its left, rstrip those on its right.
  EXPECT_EQ(t.encode("a   <l>b"), (std::vector<TokenId>{*t.token_to_id("a"), l, *t.token_to_id("b")}));
  EXPECT_EQ(t.encode("a<r>   b"), (std::vector<TokenId>{*t.token_to_id("a"), r, *t.token_to_id("b")}));
  Encoding enc = t.encode_with_offsets("a   <l>b");
  EXPECT_EQ(enc.offsets[1], (std::pair<size_t, size_t>{1, 7}));
  // single_word: matched alone, not inside a word.
  EXPECT_EQ(t.encode("x sw y")[1], t.encode(" ")[0]);
  EXPECT_NE(std::find(t.encode("x sw y").begin(), t.encode("x sw y").end(), sw), t.encode("x sw y").end());
  auto inside = t.encode("swim");
  EXPECT_EQ(std::find(inside.begin(), inside.end(), sw), inside.end());
  // normalized=true: matched after NFC, so a decomposed a + U+030C finds it too.
  EXPECT_EQ(t.encode("\xC7\x8E"), std::vector<TokenId>{a_caron});
  EXPECT_EQ(t.encode("a\xCC\x8C"), std::vector<TokenId>{a_caron});
  EXPECT_EQ(t.encode("xa\xCC\x8Cx")[1], a_caron);
  // Decoding: skip_special_tokens drops special ones only.
  EXPECT_EQ(t.decode({*t.token_to_id("a"), end, tt, l}, true), "a<t>");
  EXPECT_EQ(t.decode({*t.token_to_id("a"), end, tt, l}, false), "a<|end|><t><l>");
}

TEST(Tokenizer, DecodeRepairsInvalidUtf8LikeRust) {
  Tokenizer t = synth_tokenizer();
  // "é" is C3 A9; "中" is E4 B8 AD. Alone, each partial byte sequence is one U+FFFD.
  const std::string fffd = "\xEF\xBF\xBD";
  auto byte = [&](int b) { return *t.token_to_id(byte_char(b)); };
  EXPECT_EQ(t.decode({byte(0xC3)}), fffd);
  EXPECT_EQ(t.decode({byte(0xC3), byte(0xA9)}), "\xC3\xA9");
  EXPECT_EQ(t.decode({byte(0xE4), byte(0xB8)}), fffd);            // truncated: one maximal subpart
  EXPECT_EQ(t.decode({byte(0xE4), byte(0xB8), byte(0x41)}), fffd + "A");
  EXPECT_EQ(t.decode({byte(0xE4), byte(0x41), byte(0xAD)}), fffd + "A" + fffd);
  EXPECT_EQ(t.decode({byte(0xFF), byte(0xC0), byte(0x80)}), fffd + fffd + fffd);
  EXPECT_EQ(t.decode({byte(0xED), byte(0xA0), byte(0x80)}), fffd + fffd + fffd);  // surrogate
  EXPECT_EQ(t.decode({byte(0xF0), byte(0x9F), byte(0x98)}), fffd);
  EXPECT_EQ(t.decode({}), "");
  EXPECT_THROW(t.decode({5000}), std::out_of_range);
  EXPECT_THROW(t.decode({-1}), std::out_of_range);
}

TEST(Tokenizer, RejectsInvalidUtf8Input) {
  Tokenizer t = synth_tokenizer();
  EXPECT_THROW(t.encode(std::string("ab\xFF")), std::invalid_argument);
  EXPECT_THROW(t.encode(std::string("\xC3")), std::invalid_argument);
  EXPECT_TRUE(t.encode("").empty());
  EXPECT_EQ(t.encode(std::string("a\0b", 3)).size(), 3u);  // NUL is an ordinary character
}

TEST(Tokenizer, CacheGivesTheSameIds) {
  Tokenizer t = synth_tokenizer();
  t.clear_cache();
  const auto first = t.encode("hello world hello world aaaa");
  EXPECT_GT(t.cache_size(), 0u);
  EXPECT_EQ(t.encode("hello world hello world aaaa"), first);
  t.clear_cache();
  EXPECT_EQ(t.cache_size(), 0u);
}

TEST(Tokenizer, PadTokenFromConfig) {
  Tokenizer t = synth_tokenizer(synth(kMerges), R"({"pad_token": "<|end|>", "eos_token": {"content": "<|end|>"}, "bos_token": null})");
  EXPECT_EQ(t.pad_id(), std::optional<TokenId>(1000));
  EXPECT_EQ(t.eos_id(), std::optional<TokenId>(1000));
  EXPECT_EQ(t.bos_id(), std::nullopt);
  expect_tok_error([] { synth_tokenizer(synth(kMerges), R"({"pad_token": "<nope>"})"); },
                   {"synth_config.json", "pad_token", "<nope>", "not in the tokenizer's vocab"});
  EXPECT_THROW(synth_tokenizer().encode_batch_padded({"a"}), std::logic_error);
  PaddedBatch b = pad_left({{1, 2, 3}, {4}}, 0);
  EXPECT_EQ(b.input_ids, (std::vector<int64_t>{1, 2, 3, 0, 0, 4}));
  EXPECT_EQ(b.attention_mask, (std::vector<int64_t>{1, 1, 1, 0, 0, 1}));
  EXPECT_EQ(b.position_ids, (std::vector<int64_t>{0, 1, 2, 1, 1, 0}));
  EXPECT_THROW(pad_left({}, 0), std::invalid_argument);
}

TEST(Tokenizer, ErrorsNameFileKeyAndValue) {
  auto with = [](const std::function<void(json&)>& edit) {
    json j = synth(kMerges);
    edit(j);
    return [j] { synth_tokenizer(j); };
  };
  expect_tok_error(with([](json& j) { j["model"]["type"] = "WordPiece"; }),
                   {"synth.json", "/model/type", "WordPiece", "unsupported model type"});
  expect_tok_error(with([](json& j) { j["model"].erase("merges"); }), {"synth.json", "/model/merges", "missing"});
  expect_tok_error(with([](json& j) { j["model"]["merges"].push_back("zz qq"); }),
                   {"/model/merges/12", "zz qq", "unknown token 'zz'"});
  expect_tok_error(with([](json& j) { j["model"]["merges"].push_back("a c"); }),
                   {"/model/merges/12", "a c", "'ac' is not in the vocab"});
  expect_tok_error(with([](json& j) { j["model"]["merges"].push_back("abc"); }),
                   {"/model/merges/12", "abc", "separated by one space"});
  expect_tok_error(with([](json& j) { j["model"]["merges"].push_back(json::array({"a"})); }),
                   {"/model/merges/12", "two strings"});
  expect_tok_error(with([](json& j) { j["model"]["vocab"]["zz"] = "x"; }),
                   {"/model/vocab/zz", "\"x\"", "non-negative integer"});
  expect_tok_error(with([](json& j) { j["model"]["vocab"]["zz"] = 5; }), {"/model/vocab/", "already used"});
  expect_tok_error(with([](json& j) { j["model"]["vocab"].erase("a"); }), {"/model/vocab", "\"a\"", "alphabet incomplete"});
  expect_tok_error(with([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed"; }),
                   {"/pre_tokenizer/pretokenizers/0/pattern/Regex", "(unclosed", "invalid regex"});
  expect_tok_error(with([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed"; }),
                   {"/pre_tokenizer/pretokenizers/0/behavior", "Removed"});
  expect_tok_error(with([](json& j) { j["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = true; }),
                   {"/pre_tokenizer/pretokenizers/1/use_regex", "not supported"});
  expect_tok_error(with([](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }), {"/normalizer/type", "NFKC"});
  expect_tok_error(with([](json& j) { j["post_processor"] = {{"type", "TemplateProcessing"}}; }),
                   {"/post_processor/type", "TemplateProcessing"});
  expect_tok_error(with([](json& j) { j["decoder"] = nullptr; }), {"/decoder", "unsupported decoder"});
  expect_tok_error(with([](json& j) { j["truncation"] = {{"max_length", 8}}; }), {"/truncation", "max_length"});
  expect_tok_error(with([](json& j) { j["model"]["byte_fallback"] = true; }), {"/model/byte_fallback"});
  expect_tok_error(with([](json& j) { j["model"]["dropout"] = 0.1; }), {"/model/dropout", "0.1"});
  expect_tok_error(with([](json& j) { j["added_tokens"][0]["id"] = 3; }), {"/added_tokens/0/id", "3", "already used"});
  expect_tok_error(with([](json& j) { j["added_tokens"][1]["content"] = ""; }), {"/added_tokens/1/content"});
  expect_tok_error(with([](json& j) { j["added_tokens"][1]["lstrip"] = "yes"; }), {"/added_tokens/1/lstrip", "\"yes\""});
  // Duplicate keys and broken JSON.
  expect_tok_error([] { Tokenizer::from_json_text(R"({"model": {"vocab": {"a": 0, "a": 1}, "merges": []}})", "dup.json"); },
                   {"dup.json", "/model/vocab/a", "duplicate key"});
  expect_tok_error([] { Tokenizer::from_json_text(R"({"model": {"type": "BPE", "type": "BPE"}})", "dup2.json"); },
                   {"dup2.json", "/model/type", "duplicate key"});
  expect_tok_error([] { Tokenizer::from_json_text(R"({"model": )", "cut.json"); }, {"cut.json", "invalid JSON"});
  expect_tok_error([] { Tokenizer::from_file("/nonexistent/tokenizer.json"); }, {"/nonexistent/tokenizer.json"});
}

// ================================================================================================
// Chat template
// ================================================================================================

TEST(ChatTemplate, EqualsTransformersForEveryGoldenConversation) {
  size_t n = 0;
  for (const json& c : goldens()["chat"]) {
    std::vector<ChatMessage> msgs;
    for (const json& m : c["messages"]) {
      ChatMessage cm{m["role"], m["content"], std::nullopt};
      if (m.contains("reasoning_content")) cm.reasoning_content = m["reasoning_content"].get<std::string>();
      msgs.push_back(cm);
    }
    ChatTemplateOptions o;
    o.add_generation_prompt = c["add_generation_prompt"];
    if (c.contains("enable_thinking")) o.enable_thinking = c["enable_thinking"].get<bool>();
    EXPECT_EQ(apply_qwen3_chat_template(msgs, o), c["text"].get<std::string>()) << c["messages"].dump();
    ++n;
  }
  EXPECT_GE(n, 20u);
}

TEST(ChatTemplate, SingleUserTurnWithoutThinking) {
  EXPECT_EQ(qwen3_prompt("Hello"),
            "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  EXPECT_EQ(qwen3_prompt("Hi", "Be brief."),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
            "<think>\n\n</think>\n\n");
  EXPECT_EQ(qwen3_prompt("Hi", "", /*enable_thinking=*/true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, RejectsEmptyAndUnknownRoles) {
  EXPECT_THROW(apply_qwen3_chat_template({}), std::invalid_argument);
  EXPECT_THROW(apply_qwen3_chat_template({{"narrator", "x", std::nullopt}}), std::invalid_argument);
}
