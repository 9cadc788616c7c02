// Contrastive datasets for steering-vector extraction. Torch-free.
//
// Two input formats:
//  * CAA JSON (Rimsky et al.'s format): an array of items
//      {"question": "...\n\nChoices:\n (A) ...\n (B) ...",
//       "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}
//    Each item gives a positive prompt (the chat-formatted question, then the assistant's answer
//    prefix "(" + the matching letter) and a negative one (same with the other letter). The read
//    position is the answer letter: the last byte of each prompt.
//  * Pairs JSONL: one {"positive": "...", "negative": "..."} object per line (blank lines are
//    skipped). Each text is chat-formatted as a user turn with the generation prompt (or taken
//    as is with chat_format_pairs = false); the read position is the prompt's last token.
// Every problem is a DatasetError naming the file (with ":line" for JSONL), the key as a JSON
// pointer ("/3/question" for item 3 of a CAA file, "/positive" on a JSONL line) and the value.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "models/tokenizer.h"

namespace sc {

enum class DatasetFormat { CaaJson, PairsJsonl };

struct DatasetOptions {
  std::string system_prompt;       // "" = no system message
  bool enable_thinking = false;    // false: Qwen3's empty think block follows the generation prompt
  bool chat_format_pairs = true;   // JSONL: wrap texts as a user turn; false: use them verbatim
};

struct ContrastExample {
  size_t index = 0;  // CAA: item index (0-based); JSONL: line number (1-based)
  std::string positive, negative;            // full prompt texts
  size_t positive_read_byte = 0;             // byte of `positive` at the read position
  size_t negative_read_byte = 0;
  // CAA only (empty / 0 for JSONL):
  std::string question;                      // as in the file
  char positive_letter = 0, negative_letter = 0;  // 'A', 'B', ...
  std::string eval_prompt;                   // chat-formatted question + "(": where p(letter) is read
};

struct Dataset {
  std::string file;
  DatasetFormat format = DatasetFormat::CaaJson;
  std::vector<ContrastExample> examples;
};

Dataset parse_caa_json(const std::string& text, const std::string& file, const DatasetOptions& options = {});
Dataset parse_pairs_jsonl(const std::string& text, const std::string& file, const DatasetOptions& options = {});
Dataset load_caa_json(const std::string& path, const DatasetOptions& options = {});
Dataset load_pairs_jsonl(const std::string& path, const DatasetOptions& options = {});
// By extension: .jsonl -> pairs, anything else -> CAA JSON.
Dataset load_dataset(const std::string& path, const DatasetOptions& options = {});

// Parses a CAA answer: "(A)", " (B) some text", "A". Returns the letter, or 0 if unparsable.
char parse_answer_letter(const std::string& answer);

struct TokenizedExample {
  std::vector<TokenId> positive, negative;
  int64_t positive_read = -1, negative_read = -1;  // token index of the read position
};

// Encodes every example and maps its read bytes to token indices (the token that contains the
// answer letter; for Qwen3 "(A" is often one token, which is then the read token).
std::vector<TokenizedExample> tokenize_dataset(const Dataset& ds, const Tokenizer& tok);

}  // namespace sc
