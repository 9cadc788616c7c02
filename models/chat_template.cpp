// Qwen3 chat template, transcribed from its Jinja source (see chat_template.h).
#include "models/chat_template.h"

#include <stdexcept>

namespace sc {

namespace {

// Python's str.lstrip / rstrip / strip with a set of characters.
std::string lstrip(const std::string& s, const char* chars) {
  const size_t b = s.find_first_not_of(chars);
  return b == std::string::npos ? std::string() : s.substr(b);
}
std::string rstrip(const std::string& s, const char* chars) {
  const size_t e = s.find_last_not_of(chars);
  return e == std::string::npos ? std::string() : s.substr(0, e + 1);
}
std::string strip(const std::string& s, const char* chars) { return lstrip(rstrip(s, chars), chars); }

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// A user message that only wraps a tool result does not count as the user's query.
bool is_tool_response(const ChatMessage& m) {
  return starts_with(m.content, "<tool_response>") && ends_with(m.content, "</tool_response>");
}

}  // namespace

std::string apply_qwen3_chat_template(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options) {
  if (messages.empty()) throw std::invalid_argument("chat template: no messages");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant" && r != "tool")
      throw std::invalid_argument("chat template: message " + std::to_string(i) + " has unknown role '" + r + "'");
  }
  const size_t n = messages.size();
  std::string out;

  // A leading system message gets its own turn.
  if (messages[0].role == "system") out += "<|im_start|>system\n" + messages[0].content + "<|im_end|>\n";

  // Index of the last user message that is a real query (not a wrapped tool response); the
  // template starts it at the last message and moves it back to that user message if any.
  size_t last_query = n - 1;
  for (size_t k = n; k-- > 0;) {
    if (messages[k].role == "user" && !is_tool_response(messages[k])) {
      last_query = k;
      break;
    }
  }

  for (size_t i = 0; i < n; ++i) {
    const ChatMessage& m = messages[i];
    const bool first = i == 0, last = i + 1 == n;
    if (m.role == "user" || (m.role == "system" && !first)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      std::string content = m.content, reasoning;
      if (m.reasoning_content) {
        reasoning = *m.reasoning_content;
      } else if (m.content.find("</think>") != std::string::npos) {
        // content.split('</think>')[-1].lstrip('\n') and
        // content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
        const size_t last_close = m.content.rfind("</think>");
        content = lstrip(m.content.substr(last_close + 8), "\n");
        std::string before = rstrip(m.content.substr(0, m.content.find("</think>")), "\n");
        const size_t open = before.rfind("<think>");
        if (open != std::string::npos) before = before.substr(open + 7);
        reasoning = lstrip(before, "\n");
      }
      if (i > last_query && (last || !reasoning.empty())) {
        out += "<|im_start|>assistant\n<think>\n" + strip(reasoning, "\n") + "\n</think>\n\n" + lstrip(content, "\n");
      } else {
        out += "<|im_start|>assistant\n" + content;
      }
      out += "<|im_end|>\n";
    } else if (m.role == "tool") {
      if (first || messages[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
      if (last || messages[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (options.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (options.enable_thinking.has_value() && !*options.enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

std::string qwen3_prompt(const std::string& user, const std::string& system, bool enable_thinking) {
  std::vector<ChatMessage> msgs;
  if (!system.empty()) msgs.push_back({"system", system, std::nullopt});
  msgs.push_back({"user", user, std::nullopt});
  ChatTemplateOptions o;
  o.add_generation_prompt = true;
  o.enable_thinking = enable_thinking;
  return apply_qwen3_chat_template(msgs, o);
}

}  // namespace sc
