// Byte-level BPE tokenizer read from a Hugging Face tokenizer.json of Qwen2/Qwen3's kind.
// Torch-free. Equal to HF `tokenizers` for those files (checked id for id against goldens made
// by tokenizers itself: fixtures/tokenizer/qwen3_goldens.json, tools/make_tokenizer_goldens.py).
//
// Pipeline of encode(text), as HF runs it for these files:
//   1. added tokens (<|im_start|>, <|endoftext|>, <think>, ...) are cut out of the raw text first,
//      leftmost-longest, honouring each token's single_word / lstrip / rstrip flags; tokens with
//      normalized=true are matched after step 2 instead;
//   2. the normalizer (NFC, via utf8proc) runs on each remaining piece;
//   3. the pre-tokenizer Split regex from the file (PCRE2, UTF + UCP, JIT when available) cuts
//      each piece into pre-tokens (behaviour Isolated: matches and the gaps between them);
//   4. ByteLevel: each pre-token is taken as bytes (GPT-2 byte <-> unicode alphabet);
//   5. BPE merges by rank (lowest first, leftmost on ties), with a per-pre-token cache.
// decode(ids) maps each token back to bytes and repairs invalid UTF-8 the way Rust's
// String::from_utf8_lossy does (one U+FFFD per maximal invalid subsequence).
//
// Anything in a file outside that supported subset (another model type, normalizer,
// pre-tokenizer or post-processor, truncation, byte_fallback, ...) is a TokenizerError naming
// the file, the key (a JSON pointer) and the value; so is a bad file (missing merges, a merge
// naming an unknown token, an invalid regex, duplicate ids, ...).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sc {

using TokenId = int32_t;

// One entry of tokenizer.json's "added_tokens".
struct AddedToken {
  TokenId id = -1;
  std::string content;
  bool single_word = false;  // match only when not inside a word
  bool lstrip = false;       // the match absorbs whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool normalized = false;   // match against the normalized text instead of the raw text
  bool special = false;      // skipped by decode(..., skip_special_tokens = true)
};

// Token ids with, for each token, its byte span [first, second) in the input text. For a piece
// that NFC changed (rare: decomposed accents, compatibility characters) the spans of that
// piece's tokens are the whole piece; elsewhere they are exact.
struct Encoding {
  std::vector<TokenId> ids;
  std::vector<std::pair<size_t, size_t>> offsets;
  // Index of the token whose span contains byte `pos` (the last such token when spans are
  // coarse); -1 when no token covers it (e.g. pos past the end).
  int64_t token_at_byte(size_t pos) const;
};

// A left-padded batch, row-major [batch, seq_len], ready to copy into tensors.
struct PaddedBatch {
  int64_t batch = 0, seq_len = 0;
  std::vector<int64_t> input_ids;       // pad id in the padding
  std::vector<int64_t> attention_mask;  // 0 on padding, 1 on real tokens
  std::vector<int64_t> position_ids;    // 0, 1, ... over real tokens; 1 on padding (as HF generate)
  std::vector<int64_t> lengths;         // real tokens per row
  int64_t pad_count(int64_t row) const { return seq_len - lengths[size_t(row)]; }
  // Column of token i of row `row` once padded.
  int64_t padded_index(int64_t row, int64_t i) const { return pad_count(row) + i; }
};

// Left-pads sequences to the longest one. Throws std::invalid_argument on an empty list.
PaddedBatch pad_left(const std::vector<std::vector<TokenId>>& seqs, TokenId pad_id);

class Tokenizer {
 public:
  // tokenizer.json, plus tokenizer_config.json for pad/eos/bos ("" = none).
  static Tokenizer from_file(const std::string& tokenizer_json, const std::string& tokenizer_config_json = "");
  // dir/tokenizer.json and, when present, dir/tokenizer_config.json.
  static Tokenizer from_dir(const std::string& dir);
  // From text already in memory; `file` names the source in errors.
  static Tokenizer from_json_text(const std::string& tokenizer_json, const std::string& file,
                                  const std::string& config_json = "", const std::string& config_file = "");

  // Text (valid UTF-8; std::invalid_argument otherwise) -> ids. add_special_tokens asks the
  // post-processor to add BOS/EOS; Qwen's ByteLevel post-processor adds none, so for the
  // supported files it changes nothing (kept for parity with HF's signature).
  std::vector<TokenId> encode(std::string_view text, bool add_special_tokens = false) const;
  Encoding encode_with_offsets(std::string_view text, bool add_special_tokens = false) const;
  std::vector<std::vector<TokenId>> encode_batch(const std::vector<std::string>& texts,
                                                 bool add_special_tokens = false) const;
  // encode_batch + pad_left with pad_id() (std::logic_error when the files name no pad token).
  PaddedBatch encode_batch_padded(const std::vector<std::string>& texts, bool add_special_tokens = false) const;

  // Ids -> text. Ids out of range throw std::out_of_range.
  std::string decode(const std::vector<TokenId>& ids, bool skip_special_tokens = false) const;

  // Vocabulary look-ups over the model vocab and the added tokens. Token strings are in the
  // byte-level alphabet ("Ġthe"), added tokens as written ("<|im_end|>").
  std::optional<TokenId> token_to_id(std::string_view token) const;
  const std::string& id_to_token(TokenId id) const;  // std::out_of_range
  // The raw bytes a token stands for (" the" for "Ġthe").
  const std::string& token_bytes(TokenId id) const;  // std::out_of_range
  // One past the largest id (model vocab + added tokens). Qwen3: 151669 (the model's embedding
  // has more rows, 151936; the extra rows are never produced by the tokenizer).
  size_t vocab_size() const;
  size_t num_merges() const;
  const std::vector<AddedToken>& added_tokens() const;
  bool is_special(TokenId id) const;

  // From tokenizer.json "padding" or tokenizer_config.json; Qwen3: pad <|endoftext|>,
  // eos <|im_end|>, no bos.
  std::optional<TokenId> pad_id() const;
  std::optional<TokenId> eos_id() const;
  std::optional<TokenId> bos_id() const;

  const std::string& file() const;
  // Whether PCRE2 JIT compiled the split regex (environment SC_PCRE2_NO_JIT=1 at load turns it off).
  bool regex_jit() const;
  // Entries in the pre-token cache (for tests and benchmarks).
  size_t cache_size() const;
  void clear_cache() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;  // immutable after load except the internal cache
};

// Where the fetched real Qwen3 tokenizer lives (tools/fetch_tokenizer.sh): $SC_QWEN3_TOKENIZER_DIR
// if set, else <source>/.deps/qwen3-tokenizer. Returns "" when tokenizer.json is not there.
std::string qwen3_tokenizer_dir();

}  // namespace sc
