// Tokenizer benchmarks on the real Qwen3 tokenizer (tools/fetch_tokenizer.sh; each benchmark
// reports an error and does nothing when it is absent):
//   EncodeMixedCorpus       the 1386-string golden corpus (scripts, emoji, code, whitespace,
//                           special tokens, long runs), pre-token cache warm
//   EncodeMixedCorpusCold   the same with the cache cleared before every pass
//   EncodeProse             English prose (~45 KB), cache warm
//   EncodeRepeatedChar      100 KB of one letter: one huge pre-token (BPE heap path)
//   Decode                  the corpus' golden ids back to text
//   Load                    tokenizer.json + tokenizer_config.json from the page cache
// Counters: tokens/s ("items_per_second") and input bytes/s.
#include <benchmark/benchmark.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/tokenizer.h"

namespace {

const sc::Tokenizer* tokenizer() {
  static const std::unique_ptr<sc::Tokenizer> t = []() -> std::unique_ptr<sc::Tokenizer> {
    const std::string dir = sc::qwen3_tokenizer_dir();
    if (dir.empty()) return nullptr;
    return std::make_unique<sc::Tokenizer>(sc::Tokenizer::from_dir(dir));
  }();
  return t.get();
}

struct Corpus {
  std::vector<std::string> texts;
  std::vector<std::vector<sc::TokenId>> ids;
  int64_t bytes = 0, tokens = 0;
};
const Corpus& corpus() {
  static const Corpus c = [] {
    Corpus c;
    std::ifstream f(std::string(SC_FIXTURES) + "/tokenizer/qwen3_goldens.json");
    const nlohmann::json g = nlohmann::json::parse(f);
    for (const auto& e : g["encode"]) {
      c.texts.push_back(e["text"]);
      c.ids.push_back(e["ids"]);
      c.bytes += int64_t(c.texts.back().size());
      c.tokens += int64_t(c.ids.back().size());
    }
    return c;
  }();
  return c;
}

#define NEED_TOKENIZER(state)                                                         \
  if (!tokenizer()) {                                                                 \
    state.SkipWithError("Qwen3 tokenizer not found: run bash tools/fetch_tokenizer.sh"); \
    return;                                                                           \
  }

void encode_corpus(benchmark::State& state, bool cold) {
  NEED_TOKENIZER(state);
  const sc::Tokenizer& t = *tokenizer();
  const Corpus& c = corpus();
  for (const auto& s : c.texts) t.encode(s);  // warm the cache (and the page cache)
  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      t.clear_cache();
      state.ResumeTiming();
    }
    for (const auto& s : c.texts) benchmark::DoNotOptimize(t.encode(s));
  }
  state.SetItemsProcessed(state.iterations() * c.tokens);
  state.SetBytesProcessed(state.iterations() * c.bytes);
}
void BM_EncodeMixedCorpus(benchmark::State& state) { encode_corpus(state, false); }
void BM_EncodeMixedCorpusCold(benchmark::State& state) { encode_corpus(state, true); }

void BM_EncodeProse(benchmark::State& state) {
  NEED_TOKENIZER(state);
  const sc::Tokenizer& t = *tokenizer();
  std::string text;
  const char* para =
      "The committee met on Tuesday to review the quarterly figures. Revenue rose by 4.2 percent, "
      "while costs held steady; the chair noted that the new warehouse, opened in March, had already "
      "cut delivery times in half. Questions followed about staffing, the pension plan and next "
      "year's budget, which won't be final until the autumn.\n\n";
  while (text.size() < 45000) text += para;
  const int64_t n_tok = int64_t(t.encode(text).size());
  for (auto _ : state) benchmark::DoNotOptimize(t.encode(text));
  state.SetItemsProcessed(state.iterations() * n_tok);
  state.SetBytesProcessed(state.iterations() * int64_t(text.size()));
}

void BM_EncodeRepeatedChar(benchmark::State& state) {
  NEED_TOKENIZER(state);
  const sc::Tokenizer& t = *tokenizer();
  const std::string text(100000, 'a');  // longer than the cache's word limit: never cached
  const int64_t n_tok = int64_t(t.encode(text).size());
  for (auto _ : state) benchmark::DoNotOptimize(t.encode(text));
  state.SetItemsProcessed(state.iterations() * n_tok);
  state.SetBytesProcessed(state.iterations() * int64_t(text.size()));
}

void BM_Decode(benchmark::State& state) {
  NEED_TOKENIZER(state);
  const sc::Tokenizer& t = *tokenizer();
  const Corpus& c = corpus();
  for (auto _ : state)
    for (const auto& ids : c.ids) benchmark::DoNotOptimize(t.decode(ids));
  state.SetItemsProcessed(state.iterations() * c.tokens);
}

void BM_Load(benchmark::State& state) {
  const std::string dir = sc::qwen3_tokenizer_dir();
  if (dir.empty()) {
    state.SkipWithError("Qwen3 tokenizer not found: run bash tools/fetch_tokenizer.sh");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(sc::Tokenizer::from_dir(dir));
}

}  // namespace

BENCHMARK(BM_EncodeMixedCorpus)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeMixedCorpusCold)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeProse)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeRepeatedChar)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Load)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_MAIN();
