#include "models/json_util.h"

#include <sys/stat.h>

#include <fstream>
#include <set>
#include <sstream>
#include <vector>

namespace sc {

namespace {
std::string json_pointer_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}
[[noreturn]] void throw_kind(InputKind kind, const std::string& file, const std::string& key,
                             const std::string& value, const std::string& problem) {
  throw_input_error(kind, file, key, value, problem);
}
}  // namespace

nlohmann::json parse_json_strict(const std::string& text, const std::string& file, InputKind kind) {
  using json = nlohmann::json;
  // Per open container: the keys seen so far (objects) and the path of that container.
  struct Frame { bool object; std::set<std::string> keys; std::string path; std::string pending_key; size_t index = 0; };
  std::vector<Frame> stack;
  std::string dup_path;
  auto child_path = [&](void) -> std::string {
    if (stack.empty()) return "";
    Frame& f = stack.back();
    if (f.object) return f.path + "/" + json_pointer_escape(f.pending_key);
    return f.path + "/" + std::to_string(f.index);
  };
  auto after_value = [&]() {
    if (!stack.empty() && !stack.back().object) stack.back().index++;
  };
  json::parser_callback_t cb = [&](int /*depth*/, json::parse_event_t ev, json& parsed) -> bool {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (stack.size() >= kMaxJsonDepth) throw_kind(kind, file, "", "", json_too_deep_problem());
        stack.push_back(Frame{ev == json::parse_event_t::object_start, {}, child_path(), "", 0});
        break;
      case json::parse_event_t::key: {
        Frame& f = stack.back();
        std::string k = parsed.get<std::string>();
        if (!f.keys.insert(k).second && dup_path.empty()) dup_path = f.path + "/" + json_pointer_escape(k);
        f.pending_key = k;
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        stack.pop_back();
        after_value();
        break;
      case json::parse_event_t::value:
        after_value();
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    // parse_error, and out_of_range.406 for a number too large for a double ("1E400", found by
    // fuzz_config).
    throw_kind(kind, file, "", "", "invalid JSON: " + json_exception_text(e));
  }
  if (!dup_path.empty()) throw_kind(kind, file, dup_path, "", "duplicate key in JSON object");
  return j;
}

std::string json_too_deep_problem() {
  return "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels (the limit for input files)";
}

std::string json_exception_text(const std::exception& e) {
  // nlohmann prefixes "[json.exception.parse_error.101] "; keep the human part.
  std::string msg = e.what();
  if (msg.rfind("[json.exception.", 0) == 0) {
    auto p = msg.find("] ");
    if (p != std::string::npos) msg = msg.substr(p + 2);
  }
  return msg;
}

std::string read_text_file(const std::string& path, InputKind kind, size_t max_bytes) {
  const std::string limit = std::to_string(max_bytes >> 20) + " MiB (" + std::to_string(max_bytes) + " bytes)";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw_input_error(kind, path, "", "", "cannot open file");
  if (S_ISDIR(st.st_mode)) throw_input_error(kind, path, "", "", "is a directory, not a file");
  // Devices (/dev/zero, a terminal) never end or block: refused. Pipes (<(...)) are read, bounded.
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
    throw_input_error(kind, path, "", "", "not a regular file (a device or socket)");
  if (S_ISREG(st.st_mode) && uint64_t(st.st_size) > max_bytes)
    throw_input_error(kind, path, "", "", "file is " + std::to_string(st.st_size) + " bytes, more than the " + limit +
                                              " limit for input files");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_input_error(kind, path, "", "", "cannot open file");
  std::string out;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    out.append(buf.data(), size_t(in.gcount()));
    if (out.size() > max_bytes)
      throw_input_error(kind, path, "", "", "more than the " + limit + " limit for input files");
  }
  if (in.bad()) throw_input_error(kind, path, "", "", "read error");
  return out;
}

nlohmann::json read_json_file(const std::string& path, InputKind kind) {
  return parse_json_strict(read_text_file(path, kind), path, kind);
}

std::string json_brief(const nlohmann::json& v) {
  std::string s = v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

}  // namespace sc
