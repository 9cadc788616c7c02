// Qwen3 chat formatting, equal to transformers' apply_chat_template(..., tokenize=False) with the
// chat template that ships in Qwen3's tokenizer_config.json, for conversations of system, user,
// assistant and tool messages (no `tools` list and no `tool_calls`). This is the template's logic
// written out in C++, not a Jinja engine; fixtures/tokenizer/qwen3_goldens.json holds strings
// rendered by transformers itself that the tests compare against.
//
// What the template does, in short:
//   <|im_start|>{role}\n{content}<|im_end|>\n        per system (first message) / user turn
//   assistant turns after the last real user query get "<think>\n{reasoning}\n</think>\n\n"
//   before their content when they are the last message or carry reasoning; reasoning comes
//   from reasoning_content or from a "<think>...</think>" prefix of the content (stripped);
//   consecutive tool messages share one user turn of <tool_response> blocks;
//   add_generation_prompt appends "<|im_start|>assistant\n", and enable_thinking=false then
//   appends the empty think block "<think>\n\n</think>\n\n".
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace sc {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" or "tool"
  std::string content;
  std::optional<std::string> reasoning_content;  // assistant only; nullopt = not given
};

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  // nullopt = not passed to the template (it then leaves thinking on: no empty think block).
  std::optional<bool> enable_thinking;
};

// Throws std::invalid_argument for an empty conversation or an unknown role.
std::string apply_qwen3_chat_template(const std::vector<ChatMessage>& messages,
                                      const ChatTemplateOptions& options = {});

// The common case: optional system message, one user turn, generation prompt, thinking off.
std::string qwen3_prompt(const std::string& user, const std::string& system = "", bool enable_thinking = false);

}  // namespace sc
