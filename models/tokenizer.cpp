// Byte-level BPE tokenizer (see tokenizer.h for the pipeline and the supported subset).
#include "models/tokenizer.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <queue>
#include <stdexcept>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "models/errors.h"
#include "models/json_util.h"

#if __has_include(<pcre2.h>) && __has_include(<utf8proc.h>)
#define SC_TOKENIZER_ENABLED 1
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>
#else
#define SC_TOKENIZER_ENABLED 0
#endif

namespace sc {

using nlohmann::json;

// ------------------------------------------------------------------------------------------------
// Small helpers shared by loading and encoding
// ------------------------------------------------------------------------------------------------
namespace {

[[noreturn]] void tok_error(const std::string& file, const std::string& key, const std::string& value,
                            const std::string& problem) {
  throw TokenizerError(file, key, value, problem);
}

// Decodes one UTF-8 code point at s[i] of a string already known to be valid; advances i.
uint32_t next_cp(std::string_view s, size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) { ++i; return b; }
  int n = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : 1;
  uint32_t cp = b & (0x3F >> n);
  for (int k = 0; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + 1 + size_t(k)]) & 0x3F);
  i += size_t(n) + 1;
  return cp;
}

// Code point that ends at byte `end` (exclusive) of a valid UTF-8 string.
uint32_t prev_cp(std::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return next_cp(s, i);
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is invalid there. `maximal`
// receives the length of the maximal subpart to replace by one U+FFFD (>= 1) when invalid:
// the lead byte plus the continuation bytes that were still acceptable (Unicode 3.9, "U+FFFD
// substitution of maximal subparts", which Rust's from_utf8_lossy follows).
size_t utf8_seq(const unsigned char* s, size_t n, size_t i, size_t& maximal) {
  const unsigned char b = s[i];
  maximal = 1;
  if (b < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the first continuation byte
  if (b >= 0xC2 && b <= 0xDF) need = 1;
  else if (b == 0xE0) { need = 2; lo = 0xA0; }
  else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) need = 2;
  else if (b == 0xED) { need = 2; hi = 0x9F; }
  else if (b == 0xF0) { need = 3; lo = 0x90; }
  else if (b >= 0xF1 && b <= 0xF3) need = 3;
  else if (b == 0xF4) { need = 3; hi = 0x8F; }
  else return 0;
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= n) return 0;
    const unsigned char c = s[i + k];
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (c < l || c > h) return 0;
    maximal = k + 1;
  }
  return need + 1;
}

// Byte offset of the first invalid UTF-8 sequence, or npos.
size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0, m = 0;
  while (i < s.size()) {
    if (p[i] < 0x80) { ++i; continue; }
    size_t len = utf8_seq(p, s.size(), i, m);
    if (!len) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Rust String::from_utf8_lossy: each maximal invalid subpart becomes U+FFFD.
std::string utf8_lossy(std::string_view s) {
  if (find_invalid_utf8(s) == std::string_view::npos) return std::string(s);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0, m = 0;
  while (i < s.size()) {
    size_t len = utf8_seq(p, s.size(), i, m);
    if (len) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += m;
    }
  }
  return out;
}

// Unicode White_Space (what Rust's regex \s matches; used for lstrip/rstrip of added tokens).
bool is_white_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

#if SC_TOKENIZER_ENABLED
// Rust regex \w (Unicode): alphabetic, marks, decimal digits, connector punctuation, joiners.
bool is_word_char(uint32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (c == 0x200C || c == 0x200D) return true;
  switch (utf8proc_category(utf8proc_int32_t(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}
#endif

// GPT-2's byte <-> unicode alphabet: printable Latin-1 bytes stand for themselves, the other 68
// bytes (controls, space, DEL, NBSP, soft hyphen, ...) take code points 256, 257, ... in order.
std::vector<uint32_t> byte_to_unicode_table() {
  std::vector<uint32_t> t(256);
  uint32_t extra = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    t[b] = printable ? b : 256 + extra++;
  }
  return t;
}

// Open-addressing hash map from a token pair (left id, right id) to (rank, merged id).
class MergeTable {
 public:
  struct Value { uint32_t rank; TokenId merged; };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, Value{0, -1});
    mask_ = cap - 1;
    size_ = 0;
  }
  // Later entries for the same pair replace earlier ones (as HF's HashMap collect does).
  void put(TokenId a, TokenId b, Value v) {
    if ((size_ + 1) * 2 > keys_.size()) grow();
    const uint64_t k = key(a, b);
    size_t i = hash(k) & mask_;
    while (keys_[i] != kEmpty && keys_[i] != k) i = (i + 1) & mask_;
    if (keys_[i] == kEmpty) ++size_;
    keys_[i] = k;
    vals_[i] = v;
  }
  const Value* find(TokenId a, TokenId b) const {
    const uint64_t k = key(a, b);
    size_t i = hash(k) & mask_;
    while (true) {
      if (keys_[i] == k) return &vals_[i];
      if (keys_[i] == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t key(TokenId a, TokenId b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  static size_t hash(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdULL; k ^= k >> 33; k *= 0xc4ceb9fe1a85ec53ULL; k ^= k >> 33;
    return size_t(k);
  }
  void grow() {
    std::vector<uint64_t> ok = std::move(keys_);
    std::vector<Value> ov = std::move(vals_);
    reserve(ok.size());
    for (size_t i = 0; i < ok.size(); ++i)
      if (ok[i] != kEmpty) put(TokenId(ok[i] >> 32), TokenId(uint32_t(ok[i])), ov[i]);
  }
  std::vector<uint64_t> keys_;
  std::vector<Value> vals_;
  size_t mask_ = 0, size_ = 0;
};

// A set of added tokens matched leftmost-longest (what HF's Aho-Corasick LeftmostLongest gives).
struct AddedMatcher {
  std::vector<size_t> token_index;                     // into Impl::added
  std::vector<std::string> patterns;                   // what is matched (content, maybe normalized)
  std::vector<std::vector<size_t>> by_first_byte;      // pattern indices, longest first
  bool empty() const { return patterns.empty(); }
  void build() {
    by_first_byte.assign(256, {});
    for (size_t i = 0; i < patterns.size(); ++i)
      by_first_byte[static_cast<unsigned char>(patterns[i][0])].push_back(i);
    for (auto& v : by_first_byte)
      std::stable_sort(v.begin(), v.end(), [&](size_t a, size_t b) { return patterns[a].size() > patterns[b].size(); });
  }
  // First match at or after `from`: returns pattern index and sets start; -1 if none.
  long find(std::string_view s, size_t from, size_t& start) const {
    for (size_t i = from; i < s.size(); ++i) {
      const auto& cands = by_first_byte[static_cast<unsigned char>(s[i])];
      for (size_t p : cands) {
        const std::string& pat = patterns[p];
        if (s.size() - i >= pat.size() && std::memcmp(s.data() + i, pat.data(), pat.size()) == 0) {
          start = i;
          return long(p);
        }
      }
    }
    return -1;
  }
};


// Streaming reader of tokenizer.json. /model/vocab and /model/merges (nearly all of an 11 MB
// file) go straight into flat vectors; everything else is built as a json DOM. Duplicate keys
// are errors anywhere (as parse_json_strict), naming their JSON pointer.
struct RawMerge {
  std::string a, b;  // string form: a = whole "x y", b unused
  bool pair = false;
};

class TokenizerJsonReader {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  explicit TokenizerJsonReader(std::string file) : file_(std::move(file)) {}

  json rest;                                          // the file without vocab and merges
  std::vector<std::pair<std::string, int64_t>> vocab;  // in file order
  std::vector<RawMerge> merges;
  bool have_vocab = false, have_merges = false;

  void parse(const std::string& text) {
    json::sax_parse(text, this, json::input_format_t::json, /*strict=*/true);
  }

  bool null() { return value(json(nullptr)); }
  bool boolean(bool v) { return value(json(v)); }
  bool number_integer(number_integer_t v) { return value(json(v)); }
  bool number_unsigned(number_unsigned_t v) { return value(json(v)); }
  bool number_float(number_float_t v, const string_t&) { return value(json(v)); }
  bool string(string_t& v) { return value(json(std::move(v))); }
  bool binary(binary_t&) { return fail("", "binary values are not JSON"); }
  bool start_object(std::size_t) { return open(true); }
  bool start_array(std::size_t) { return open(false); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(string_t& k) {
    Frame& f = stack_.back();
    if (f.mode == Mode::Dom && f.node->contains(k)) {
      throw TokenizerError(file_, path() + "/" + k, "", "duplicate key in JSON object");
    }
    f.key = std::move(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) {
    throw TokenizerError(file_, "", "", "invalid JSON: " + json_exception_text(ex));
  }

 private:
  enum class Mode { Dom, Vocab, Merges, MergePair };
  struct Frame {
    bool object;
    Mode mode;
    json* node;        // Dom frames only
    std::string name;  // key or index under which this container sits
    std::string key;   // current key (objects)
    size_t index = 0;  // current index (arrays)
  };
  std::vector<Frame> stack_;
  std::string file_;

  std::string path() const {
    std::string p;
    for (size_t i = 1; i < stack_.size(); ++i) p += "/" + stack_[i].name;
    return p;
  }
  std::string child_name() const {
    const Frame& f = stack_.back();
    return f.object ? f.key : std::to_string(f.index);
  }
  [[noreturn]] bool fail(const std::string& value, const std::string& problem) {
    std::string p = path();
    if (!stack_.empty()) p += "/" + child_name();
    throw TokenizerError(file_, p, value, problem);
  }
  // Where a new value goes in the DOM (parent is a Dom frame).
  json* slot() {
    Frame& f = stack_.back();
    if (f.object) return &(*f.node)[f.key];
    f.node->push_back(json());
    return &f.node->back();
  }
  void advance() {
    if (!stack_.empty() && !stack_.back().object) stack_.back().index++;
  }
  bool value(json v) {
    if (stack_.empty()) { rest = std::move(v); return true; }
    Frame& f = stack_.back();
    switch (f.mode) {
      case Mode::Dom:
        *slot() = std::move(v);
        break;
      case Mode::Vocab:
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
          fail(json_brief(v), "token id must be a non-negative integer");
        vocab.emplace_back(f.key, v.get<int64_t>());
        break;
      case Mode::Merges:
        if (!v.is_string()) fail(json_brief(v), "a merge must be \"a b\" or [\"a\", \"b\"]");
        merges.push_back({v.get<std::string>(), "", false});
        break;
      case Mode::MergePair: {
        RawMerge& m = merges.back();
        if (!v.is_string() || f.index >= 2) fail(json_brief(v), "a merge pair must be two strings [\"a\", \"b\"]");
        (f.index == 0 ? m.a : m.b) = v.get<std::string>();
        break;
      }
    }
    advance();
    return true;
  }
  bool open(bool object) {
    if (stack_.size() >= kMaxJsonDepth) throw TokenizerError(file_, "", "", json_too_deep_problem());
    if (stack_.empty()) {
      rest = object ? json::object() : json::array();
      stack_.push_back({object, Mode::Dom, &rest, "", "", 0});
      return true;
    }
    Frame& f = stack_.back();
    const std::string name = child_name();
    Mode mode = Mode::Dom;
    if (f.mode == Mode::Dom && stack_.size() == 2 && stack_[1].name == "model" && f.object) {
      // Other shapes stay in the DOM, for load_model to report after the model type.
      if (name == "vocab" && object) {
        mode = Mode::Vocab;
        have_vocab = true;
      } else if (name == "merges" && !object) {
        mode = Mode::Merges;
        have_merges = true;
      }
    } else if (f.mode == Mode::Merges) {
      if (object) fail("{...}", "a merge must be \"a b\" or [\"a\", \"b\"]");
      merges.push_back({"", "", true});
      mode = Mode::MergePair;
    } else if (f.mode != Mode::Dom) {
      fail(object ? "{...}" : "[...]", f.mode == Mode::Vocab ? "token id must be a non-negative integer"
                                                             : "a merge pair must be two strings [\"a\", \"b\"]");
    }
    json* node = nullptr;
    if (mode == Mode::Dom) {
      node = slot();
      *node = object ? json::object() : json::array();
    }
    stack_.push_back({object, mode, node, name, "", 0});
    return true;
  }
  bool close() {
    if (stack_.back().mode == Mode::MergePair && stack_.back().index != 2)
      throw TokenizerError(file_, path(), "", "a merge pair must be two strings [\"a\", \"b\"]");
    stack_.pop_back();
    advance();
    return true;
  }
};

// A piece of text: either an added token (id >= 0) or text to tokenize, with its byte span.
struct Segment {
  size_t begin, end;
  TokenId id;  // -1: plain text
};

}  // namespace

// ------------------------------------------------------------------------------------------------
// Impl
// ------------------------------------------------------------------------------------------------

struct Tokenizer::Impl {
  std::string file;
  std::unordered_map<std::string, TokenId> token_ids;  // model vocab and added tokens
  std::vector<std::string> tokens;                     // id -> token string ("" for holes)
  std::vector<std::string> bytes;                      // id -> the bytes it decodes to
  std::vector<uint8_t> special;                        // id -> skipped by skip_special_tokens
  std::vector<AddedToken> added;
  AddedMatcher raw_matcher, norm_matcher;
  TokenId byte_ids[256] = {};
  MergeTable merges;
  size_t n_merges = 0;
  bool ignore_merges = false;
  bool nfc = false;
  std::optional<TokenId> pad, eos, bos;

#if SC_TOKENIZER_ENABLED
  std::vector<pcre2_code*> regexes;  // Split steps, applied in order
  bool jit = false;
#endif

  // Pre-token cache: bytes -> ids. Bounded; when full, new words are not cached (as HF does).
  static constexpr size_t kCacheCapacity = 1 << 16;
  static constexpr size_t kCacheMaxWord = 256;
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<TokenId>> cache;

  ~Impl() {
#if SC_TOKENIZER_ENABLED
    for (auto* r : regexes) pcre2_code_free(r);
#endif
  }

  void load(TokenizerJsonReader& r, const std::string& config_text, const std::string& config_file);
  void load_model(const json& m, TokenizerJsonReader& r);
  void load_added(const json& a);
  void check_id_space(int64_t max_id, size_t count, const std::string& key) const;
  void load_normalizer(const json& n);
  void load_pre_tokenizer(const json& p);
  void load_config(const json& c, const std::string& config_file);

  void encode(std::string_view text, std::vector<TokenId>& ids,
              std::vector<std::pair<size_t, size_t>>* offsets) const;
  void split_added(std::string_view s, const AddedMatcher& m, std::vector<Segment>& out) const;
  void encode_text(std::string_view piece, size_t base, bool exact, size_t coarse_end,
                   std::vector<TokenId>& ids, std::vector<std::pair<size_t, size_t>>* offsets) const;
  void bpe(std::string_view word, std::vector<TokenId>& out) const;
  void bpe_uncached(std::string_view word, std::vector<TokenId>& out) const;
};

#if SC_TOKENIZER_ENABLED
namespace {

// NFC via utf8proc. Fast path: text made only of code points that NFC never changes and that
// never combine with a neighbour (below U+0300, CJK unified ideographs, Hangul syllables) is
// returned as is. (Hangul syllables can absorb a following trailing jamo, but such a jamo is
// outside the fast set, which sends the whole piece to utf8proc.)
bool nfc_trivial(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) { ++i; continue; }
    uint32_t c = next_cp(s, i);
    if (c < 0x300 || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7A3)) continue;
    return false;
  }
  return true;
}

std::string nfc_normalize(std::string_view s) {
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                    utf8proc_ssize_t(s.size()), &out,
                                    utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) throw std::invalid_argument(std::string("NFC failed: ") + utf8proc_errmsg(n));
  std::string r(reinterpret_cast<const char*>(out), size_t(n));
  std::free(out);
  return r;
}

// Per-thread PCRE2 match state (match data for one pair, and a JIT stack).
struct MatchState {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mc = nullptr;
  pcre2_jit_stack* js = nullptr;
  MatchState() {
    md = pcre2_match_data_create(1, nullptr);
    mc = pcre2_match_context_create(nullptr);
    js = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    if (mc && js) pcre2_jit_stack_assign(mc, nullptr, js);
    if (!md || !mc) throw std::bad_alloc();
  }
  ~MatchState() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    if (js) pcre2_jit_stack_free(js);
  }
};
MatchState& match_state() {
  thread_local MatchState st;
  return st;
}

// Escapes a literal for a PCRE2 pattern (Split with {"String": ...}).
std::string regex_quote(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (std::strchr("\\^$.|?*+()[]{}-/#", c) && c != '\0') r += '\\';
    r += c;
  }
  return r;
}

}  // namespace
#endif

void Tokenizer::Impl::load(TokenizerJsonReader& r, const std::string& config_text, const std::string& config_file) {
  const json& j = r.rest;
  if (!j.is_object()) tok_error(file, "", json_brief(j), "top level is not a JSON object");
  auto get = [&](const char* k) -> const json* {
    auto it = j.find(k);
    return it == j.end() ? nullptr : &*it;
  };
  const json* model = get("model");
  if (!model) tok_error(file, "/model", "", "missing key");
  load_model(*model, r);
  if (const json* t = get("truncation"); t && !t->is_null())
    tok_error(file, "/truncation", json_brief(*t), "truncation is not supported (expected null)");
  if (const json* n = get("normalizer")) load_normalizer(*n);
  if (const json* p = get("pre_tokenizer"); p && !p->is_null()) load_pre_tokenizer(*p);
  else tok_error(file, "/pre_tokenizer", "null", "a byte-level pre-tokenizer (Split + ByteLevel) is required");
  if (const json* pp = get("post_processor"); pp && !pp->is_null()) {
    const std::string type = pp->value("type", "");
    if (type != "ByteLevel")
      tok_error(file, "/post_processor/type", json_brief(pp->value("type", json())),
                "unsupported post_processor (only ByteLevel or null)");
  }
  const json* dec = get("decoder");
  if (!dec || dec->is_null() || dec->value("type", "") != "ByteLevel")
    tok_error(file, "/decoder", dec ? json_brief(*dec) : "", "unsupported decoder (only ByteLevel)");
  if (const json* a = get("added_tokens"); a && !a->is_null()) load_added(*a);

  // Special-token ids named by the files.
  if (const json* pd = get("padding"); pd && pd->is_object()) {
    if (pd->contains("pad_id") && (*pd)["pad_id"].is_number_integer()) pad = (*pd)["pad_id"].get<TokenId>();
  }
  if (!config_text.empty()) load_config(parse_json_strict(config_text, config_file, InputKind::Tokenizer), config_file);
}

// Token ids index dense tables, so their range must stay proportionate to the number of tokens:
// an id of 10^9 in a small file would otherwise allocate tens of GB (found by fuzz_tokenizer).
void Tokenizer::Impl::check_id_space(int64_t max_id, size_t count, const std::string& key) const {
  constexpr int64_t kMaxId = (int64_t(1) << 24) - 1;
  if (max_id > kMaxId)
    tok_error(file, key, std::to_string(max_id), "token id above the supported maximum of " + std::to_string(kMaxId));
  if (max_id >= 2 * int64_t(count) + 65536)
    tok_error(file, key, std::to_string(max_id),
              "token ids are too sparse: id " + std::to_string(max_id) + " for " + std::to_string(count) +
                  " tokens (ids must stay below 2 x tokens + 65536)");
}

void Tokenizer::Impl::load_model(const json& m, TokenizerJsonReader& r) {
  if (!m.is_object()) tok_error(file, "/model", json_brief(m), "not an object");
  // Vocabulary (streamed by the reader); first, so that duplicate keys are reported as such.
  token_ids.reserve(r.vocab.size() + 64);
  TokenId max_id = -1;
  for (const auto& [tok, id] : r.vocab) {
    if (tok.empty()) tok_error(file, "/model/vocab/", std::to_string(id), "empty token string");
    if (!token_ids.emplace(tok, TokenId(id)).second)
      tok_error(file, "/model/vocab/" + tok, std::to_string(id), "duplicate key in JSON object");
    max_id = std::max(max_id, TokenId(id));
  }
  check_id_space(max_id, r.vocab.size(), "/model/vocab");
  tokens.assign(size_t(max_id) + 1, std::string());
  for (const auto& [tok, id] : r.vocab) {
    if (!tokens[size_t(id)].empty())
      tok_error(file, "/model/vocab/" + tok, std::to_string(id), "id already used by token '" + tokens[size_t(id)] + "'");
    tokens[size_t(id)] = tok;
  }

  const json type = m.value("type", json());
  if (type != "BPE") tok_error(file, "/model/type", json_brief(type), "unsupported model type (only BPE)");
  if (!r.have_vocab) {
    if (m.contains("vocab")) tok_error(file, "/model/vocab", json_brief(m["vocab"]), "vocab must be an object {token: id}");
    tok_error(file, "/model/vocab", "", "missing key");
  }
  auto require_empty = [&](const char* key) {
    auto it = m.find(key);
    if (it == m.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty())) return;
    tok_error(file, std::string("/model/") + key, json_brief(*it), "unsupported (expected null or \"\")");
  };
  require_empty("continuing_subword_prefix");
  require_empty("end_of_word_suffix");
  if (auto it = m.find("dropout"); it != m.end() && !it->is_null() && !(it->is_number() && it->get<double>() == 0.0))
    tok_error(file, "/model/dropout", json_brief(*it), "BPE dropout is not supported (expected null)");
  if (auto it = m.find("byte_fallback"); it != m.end() && it->is_boolean() && it->get<bool>())
    tok_error(file, "/model/byte_fallback", "true", "byte_fallback is not supported by the byte-level BPE");
  if (auto it = m.find("ignore_merges"); it != m.end() && it->is_boolean()) ignore_merges = it->get<bool>();

  // Byte-level alphabet: every byte must have its one-character token.
  const std::vector<uint32_t> b2u = byte_to_unicode_table();
  std::vector<int> u2b(512, -1);  // code point -> byte (the alphabet lies below U+0200)
  for (uint32_t b = 0; b < 256; ++b) {
    u2b[b2u[b]] = int(b);
    std::string ch;
    append_utf8(ch, b2u[b]);
    auto it = token_ids.find(ch);
    if (it == token_ids.end())
      tok_error(file, "/model/vocab", json_brief(json(ch)),
                "byte-level alphabet incomplete: no token for byte " + std::to_string(b));
    byte_ids[b] = it->second;
  }
  // Bytes each token decodes to: every character mapped back through the alphabet; a token with
  // a character outside it decodes to its own UTF-8 (what HF's ByteLevel decoder does).
  bytes.assign(tokens.size(), std::string());
  for (size_t id = 0; id < tokens.size(); ++id) {
    const std::string& t = tokens[id];
    std::string out;
    bool ok = true;
    size_t i = 0;
    while (i < t.size()) {
      const uint32_t cp = next_cp(t, i);
      if (cp >= u2b.size() || u2b[cp] < 0) { ok = false; break; }
      out += char(u2b[cp]);
    }
    bytes[id] = ok ? out : t;
  }

  // Merges: "a b" strings or ["a", "b"] pairs (streamed by the reader); rank = position.
  if (!r.have_merges) {
    if (m.contains("merges") && !m["merges"].is_null())
      tok_error(file, "/model/merges", json_brief(m["merges"]), "merges must be an array");
    tok_error(file, "/model/merges", "", "missing key");
  }
  merges.reserve(r.merges.size());
  n_merges = r.merges.size();
  std::string merged;
  for (size_t k = 0; k < r.merges.size(); ++k) {
    RawMerge& e = r.merges[k];
    const std::string key = "/model/merges/" + std::to_string(k);
    if (!e.pair) {
      const std::string whole = e.a;
      const size_t sp = whole.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 >= whole.size() || whole.find(' ', sp + 1) != std::string::npos)
        tok_error(file, key, json_brief(json(whole)), "a merge string must be two tokens separated by one space");
      e.a = whole.substr(0, sp);
      e.b = whole.substr(sp + 1);
    }
    auto brief = [&] { return e.pair ? json_brief(json::array({e.a, e.b})) : json_brief(json(e.a + " " + e.b)); };
    auto ia = token_ids.find(e.a), ib = token_ids.find(e.b);
    if (ia == token_ids.end()) tok_error(file, key, brief(), "merge names unknown token '" + e.a + "'");
    if (ib == token_ids.end()) tok_error(file, key, brief(), "merge names unknown token '" + e.b + "'");
    merged = e.a;
    merged += e.b;
    auto im = token_ids.find(merged);
    if (im == token_ids.end()) tok_error(file, key, brief(), "merge result '" + merged + "' is not in the vocab");
    merges.put(ia->second, ib->second, MergeTable::Value{uint32_t(k), im->second});
  }
  r.vocab.clear();
  r.vocab.shrink_to_fit();
  r.merges.clear();
  r.merges.shrink_to_fit();
}

void Tokenizer::Impl::load_added(const json& a) {
  if (!a.is_array()) tok_error(file, "/added_tokens", json_brief(a), "added_tokens must be an array");
  for (size_t i = 0; i < a.size(); ++i) {
    const json& e = a[i];
    const std::string key = "/added_tokens/" + std::to_string(i);
    if (!e.is_object()) tok_error(file, key, json_brief(e), "an added token must be an object");
    AddedToken t;
    auto idit = e.find("id");
    if (idit == e.end() || !idit->is_number_integer() || idit->get<int64_t>() < 0 || idit->get<int64_t>() > INT32_MAX)
      tok_error(file, key + "/id", idit == e.end() ? "" : json_brief(*idit), "id must be a non-negative integer");
    t.id = idit->get<TokenId>();
    auto cit = e.find("content");
    if (cit == e.end() || !cit->is_string() || cit->get<std::string>().empty())
      tok_error(file, key + "/content", cit == e.end() ? "" : json_brief(*cit), "content must be a non-empty string");
    t.content = cit->get<std::string>();
    if (find_invalid_utf8(t.content) != std::string::npos)
      tok_error(file, key + "/content", json_brief(*cit), "content is not valid UTF-8");
    auto flag = [&](const char* k, bool def) {
      auto it = e.find(k);
      if (it == e.end() || it->is_null()) return def;
      if (!it->is_boolean()) tok_error(file, key + "/" + k, json_brief(*it), "must be true or false");
      return it->get<bool>();
    };
    t.single_word = flag("single_word", false);
    t.lstrip = flag("lstrip", false);
    t.rstrip = flag("rstrip", false);
    t.special = flag("special", false);
    t.normalized = flag("normalized", !t.special);
    // Same content as a vocab token: must name the same id.
    auto vit = token_ids.find(t.content);
    if (vit != token_ids.end() && vit->second != t.id)
      tok_error(file, key + "/id", std::to_string(t.id),
                "token '" + t.content + "' already has id " + std::to_string(vit->second));
    if (size_t(t.id) < tokens.size() && !tokens[size_t(t.id)].empty() && tokens[size_t(t.id)] != t.content)
      tok_error(file, key + "/id", std::to_string(t.id), "id already used by token '" + tokens[size_t(t.id)] + "'");
    for (const AddedToken& o : added)
      if (o.content == t.content) tok_error(file, key + "/content", json_brief(*cit), "duplicate added token");
    if (size_t(t.id) >= tokens.size()) {
      check_id_space(t.id, token_ids.size() + 1, key + "/id");
      tokens.resize(size_t(t.id) + 1);
      bytes.resize(size_t(t.id) + 1);
    }
    tokens[size_t(t.id)] = t.content;
    token_ids[t.content] = t.id;
    // Decoded bytes: HF's ByteLevel decoder maps the content through the byte alphabet when
    // every character belongs to it, else keeps the UTF-8. The contents of real files are
    // printable ASCII, for which both are the content itself.
    if (bytes[size_t(t.id)].empty()) bytes[size_t(t.id)] = t.content;
    added.push_back(t);
  }
  special.assign(tokens.size(), 0);
  for (size_t i = 0; i < added.size(); ++i) {
    if (added[i].special) special[size_t(added[i].id)] = 1;
    AddedMatcher& m = added[i].normalized ? norm_matcher : raw_matcher;
    m.token_index.push_back(i);
#if SC_TOKENIZER_ENABLED
    m.patterns.push_back(added[i].normalized && nfc ? nfc_normalize(added[i].content) : added[i].content);
#else
    m.patterns.push_back(added[i].content);
#endif
  }
  raw_matcher.build();
  norm_matcher.build();
}

void Tokenizer::Impl::load_normalizer(const json& n) {
  if (n.is_null()) return;
  auto one = [&](const json& x, const std::string& key) {
    const json type = x.is_object() ? x.value("type", json()) : json();
    if (type == "NFC") { nfc = true; return; }
    tok_error(file, key + "/type", json_brief(type), "unsupported normalizer (only NFC, or a Sequence of NFC)");
  };
  if (n.is_object() && n.value("type", "") == "Sequence") {
    const json& list = n.value("normalizers", json::array());
    for (size_t i = 0; i < list.size(); ++i) one(list[i], "/normalizer/normalizers/" + std::to_string(i));
  } else {
    one(n, "/normalizer");
  }
}

void Tokenizer::Impl::load_pre_tokenizer(const json& p) {
  // Accepted: Sequence[Split(...)..., ByteLevel(use_regex=false)], or that without the Sequence.
  std::vector<std::pair<const json*, std::string>> steps;
  if (p.is_object() && p.value("type", "") == "Sequence") {
    auto it = p.find("pretokenizers");
    if (it == p.end() || !it->is_array())
      tok_error(file, "/pre_tokenizer/pretokenizers", it == p.end() ? "" : json_brief(*it), "must be an array");
    for (size_t i = 0; i < it->size(); ++i) steps.push_back({&(*it)[i], "/pre_tokenizer/pretokenizers/" + std::to_string(i)});
  } else {
    steps.push_back({&p, "/pre_tokenizer"});
  }
  bool byte_level = false;
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& s = *steps[i].first;
    const std::string& key = steps[i].second;
    const json type = s.is_object() ? s.value("type", json()) : json();
    if (byte_level) tok_error(file, key, json_brief(s), "nothing may follow the ByteLevel pre-tokenizer");
    if (type == "ByteLevel") {
      if (s.value("add_prefix_space", false))
        tok_error(file, key + "/add_prefix_space", "true", "add_prefix_space is not supported");
      if (s.value("use_regex", true))
        tok_error(file, key + "/use_regex", "true",
                  "ByteLevel with use_regex=true (the built-in GPT-2 regex) is not supported; expected a Split step");
      byte_level = true;
    } else if (type == "Split") {
      const json behavior = s.value("behavior", json());
      if (behavior != "Isolated")
        tok_error(file, key + "/behavior", json_brief(behavior), "unsupported Split behavior (only Isolated)");
      if (s.value("invert", false)) tok_error(file, key + "/invert", "true", "inverted Split is not supported");
      auto pit = s.find("pattern");
      std::string pattern, pkey;
      if (pit != s.end() && pit->is_object() && pit->contains("Regex") && (*pit)["Regex"].is_string()) {
        pattern = (*pit)["Regex"].get<std::string>();
        pkey = key + "/pattern/Regex";
      } else if (pit != s.end() && pit->is_object() && pit->contains("String") && (*pit)["String"].is_string()) {
#if SC_TOKENIZER_ENABLED
        pattern = regex_quote((*pit)["String"].get<std::string>());
#endif
        pkey = key + "/pattern/String";
      } else {
        tok_error(file, key + "/pattern", pit == s.end() ? "" : json_brief(*pit), "expected {\"Regex\": ...} or {\"String\": ...}");
      }
#if SC_TOKENIZER_ENABLED
      int err = 0;
      PCRE2_SIZE erroff = 0;
      pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &err, &erroff, nullptr);
      if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        tok_error(file, pkey, json_brief(json(pattern)),
                  "invalid regex at offset " + std::to_string(erroff) + ": " + reinterpret_cast<char*>(msg));
      }
      regexes.push_back(re);
      // SC_PCRE2_NO_JIT=1 keeps the interpreter (lets the tests cover that path too).
      const char* no_jit = std::getenv("SC_PCRE2_NO_JIT");
      const bool want_jit = !(no_jit && *no_jit && std::string(no_jit) != "0");
      jit = want_jit && pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0 && (regexes.size() == 1 || jit);
#else
      (void)pkey;
#endif
    } else {
      tok_error(file, key + "/type", json_brief(type), "unsupported pre-tokenizer (only Split and ByteLevel)");
    }
  }
  if (!byte_level) tok_error(file, "/pre_tokenizer", json_brief(p), "a ByteLevel step is required");
}

void Tokenizer::Impl::load_config(const json& c, const std::string& config_file) {
  if (!c.is_object()) tok_error(config_file, "", json_brief(c), "top level is not a JSON object");
  auto resolve = [&](const char* key) -> std::optional<TokenId> {
    auto it = c.find(key);
    if (it == c.end() || it->is_null()) return std::nullopt;
    std::string content;
    if (it->is_string()) content = it->get<std::string>();
    else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) content = (*it)["content"].get<std::string>();
    else tok_error(config_file, std::string("/") + key, json_brief(*it), "expected a token string or {\"content\": ...}");
    auto t = token_ids.find(content);
    if (t == token_ids.end())
      tok_error(config_file, std::string("/") + key, json_brief(json(content)), "token is not in the tokenizer's vocab");
    return t->second;
  };
  if (auto v = resolve("pad_token")) pad = v;
  eos = resolve("eos_token");
  bos = resolve("bos_token");
}

// ------------------------------------------------------------------------------------------------
// Encoding
// ------------------------------------------------------------------------------------------------

// HF AddedVocabulary::find_matches: cut `s` into plain text and added tokens.
void Tokenizer::Impl::split_added(std::string_view s, const AddedMatcher& m, std::vector<Segment>& out) const {
  size_t done = 0;  // end of the last emitted segment
  size_t from = 0;  // where to look for the next match
  while (!m.empty() && from < s.size()) {
    size_t start = 0;
    const long p = m.find(s, from, start);
    if (p < 0) break;
    const AddedToken& tok = added[m.token_index[size_t(p)]];
    size_t stop = start + m.patterns[size_t(p)].size();
    from = stop;
    if (start < done) continue;  // inside whitespace an earlier rstrip absorbed
#if SC_TOKENIZER_ENABLED
    if (tok.single_word) {
      const bool word_before = start > 0 && is_word_char(prev_cp(s, start));
      size_t j = stop;
      const bool word_after = stop < s.size() && is_word_char(next_cp(s, j));
      if (word_before || word_after) continue;
    }
#endif
    if (tok.lstrip) {
      size_t ns = start;
      while (ns > done) {
        size_t k = ns - 1;
        while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        size_t j = k;
        if (!is_white_space(next_cp(s, j))) break;
        ns = k;
      }
      start = ns;
    }
    if (tok.rstrip) {
      while (stop < s.size()) {
        size_t j = stop;
        if (!is_white_space(next_cp(s, j))) break;
        stop = j;
      }
      from = stop;
    }
    if (done < start) out.push_back({done, start, -1});
    out.push_back({start, stop, tok.id});
    done = stop;
  }
  if (done < s.size()) out.push_back({done, s.size(), -1});
}

void Tokenizer::Impl::encode(std::string_view text, std::vector<TokenId>& ids,
                             std::vector<std::pair<size_t, size_t>>* offsets) const {
#if SC_TOKENIZER_ENABLED
  if (size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
    throw std::invalid_argument("tokenizer: input text is not valid UTF-8 at byte " + std::to_string(bad));
  std::vector<Segment> segs;
  split_added(text, raw_matcher, segs);
  for (const Segment& seg : segs) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      if (offsets) offsets->push_back({seg.begin, seg.end});
      continue;
    }
    std::string_view piece = text.substr(seg.begin, seg.end - seg.begin);
    std::string normalized;
    bool exact = true;
    if (nfc && !nfc_trivial(piece)) {
      normalized = nfc_normalize(piece);
      exact = normalized == piece;
      piece = normalized;
    }
    if (norm_matcher.empty()) {
      encode_text(piece, seg.begin, exact, seg.end, ids, offsets);
      continue;
    }
    std::vector<Segment> inner;
    split_added(piece, norm_matcher, inner);
    for (const Segment& in : inner) {
      if (in.id >= 0) {
        ids.push_back(in.id);
        if (offsets) offsets->push_back(exact ? std::make_pair(seg.begin + in.begin, seg.begin + in.end)
                                              : std::make_pair(seg.begin, seg.end));
      } else {
        encode_text(piece.substr(in.begin, in.end - in.begin), seg.begin + (exact ? in.begin : 0), exact, seg.end,
                    ids, offsets);
      }
    }
  }
#else
  (void)text; (void)ids; (void)offsets;
  throw TokenizerError(file, "", "", "shardcheck was built without PCRE2/utf8proc; the tokenizer is unavailable");
#endif
}

// Pre-tokenizes a normalized piece with the Split regexes and BPE-encodes each pre-token.
// `base` is the byte offset of the piece in the input (when exact) and coarse spans run
// [base, coarse_end) otherwise.
void Tokenizer::Impl::encode_text(std::string_view piece, size_t base, bool exact, size_t coarse_end,
                                  std::vector<TokenId>& ids, std::vector<std::pair<size_t, size_t>>* offsets) const {
#if SC_TOKENIZER_ENABLED
  // Pre-tokens as (begin, end) within `piece`, refined by each Split step in turn.
  std::vector<std::pair<size_t, size_t>> cur{{0, piece.size()}}, next;
  if (piece.empty()) return;
  MatchState& st = match_state();
  for (pcre2_code* re : regexes) {
    next.clear();
    for (auto [b, e] : cur) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data() + b);
      const size_t len = e - b;
      size_t pos = 0, last = 0;
      while (pos < len) {
        int rc = jit ? pcre2_jit_match(re, subject, len, pos, 0, st.md, st.mc)
                     : pcre2_match(re, subject, len, pos, PCRE2_NO_UTF_CHECK, st.md, st.mc);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          PCRE2_UCHAR msg[256];
          pcre2_get_error_message(rc, msg, sizeof msg);
          throw std::runtime_error(std::string("tokenizer: regex match failed: ") + reinterpret_cast<char*>(msg));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) {  // empty match: not a split; step over one character
          size_t j = ms;
          if (j >= len) break;
          next_cp(piece.substr(b, len), j);
          pos = j;
          continue;
        }
        if (last < ms) next.push_back({b + last, b + ms});
        next.push_back({b + ms, b + me});
        last = pos = me;
      }
      if (last < len) next.push_back({b + last, e});
    }
    cur.swap(next);
  }
  for (auto [b, e] : cur) {
    const size_t first = ids.size();
    bpe(piece.substr(b, e - b), ids);
    if (!offsets) continue;
    size_t at = b;
    for (size_t k = first; k < ids.size(); ++k) {
      const size_t n = bytes[size_t(ids[k])].size();
      offsets->push_back(exact ? std::make_pair(base + at, base + at + n) : std::make_pair(base, coarse_end));
      at += n;
    }
  }
#else
  (void)piece; (void)base; (void)exact; (void)coarse_end; (void)ids; (void)offsets;
#endif
}

void Tokenizer::Impl::bpe(std::string_view word, std::vector<TokenId>& out) const {
  if (word.size() == 1) {
    out.push_back(byte_ids[static_cast<unsigned char>(word[0])]);
    return;
  }
  const bool cacheable = word.size() <= kCacheMaxWord;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu);
    auto it = cache.find(std::string(word));
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  bpe_uncached(word, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu);
    if (cache.size() < kCacheCapacity) cache.emplace(std::string(word), std::vector<TokenId>(out.begin() + long(first), out.end()));
  }
}

// BPE on the bytes of one pre-token: repeatedly merge the adjacent pair of lowest rank
// (leftmost on ties) until no pair has a merge. Symbols sit in a linked list over byte
// positions; candidate pairs in a min-heap keyed (rank, position), checked when popped
// against the current symbols, so the whole word costs O(n log n) even for very long runs.
void Tokenizer::Impl::bpe_uncached(std::string_view word, std::vector<TokenId>& out) const {
  const int n = int(word.size());
  if (ignore_merges) {
    // HF ignore_merges: a pre-token that is itself a token is taken whole.
    std::string mapped;
    static const std::vector<uint32_t> b2u = byte_to_unicode_table();
    for (char c : word) append_utf8(mapped, b2u[static_cast<unsigned char>(c)]);
    auto it = token_ids.find(mapped);
    if (it != token_ids.end()) { out.push_back(it->second); return; }
  }
  struct Sym { TokenId id; int prev, next; };
  std::vector<Sym> sym(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) sym[size_t(i)] = {byte_ids[static_cast<unsigned char>(word[size_t(i)])], i - 1, i + 1 < n ? i + 1 : -1};

  struct Cand {
    uint32_t rank; int pos; TokenId left, right, merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int left) {
    if (left < 0) return;
    const int right = sym[size_t(left)].next;
    if (right < 0) return;
    const TokenId a = sym[size_t(left)].id, b = sym[size_t(right)].id;
    if (const MergeTable::Value* v = merges.find(a, b)) heap.push({v->rank, left, a, b, v->merged});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = sym[size_t(c.pos)];
    // Stale candidate: the left symbol changed or died, or its right neighbour changed.
    if (l.id != c.left || l.next < 0 || sym[size_t(l.next)].id != c.right) continue;
    const int r = l.next;
    l.id = c.merged;
    l.next = sym[size_t(r)].next;
    if (l.next >= 0) sym[size_t(l.next)].prev = c.pos;
    sym[size_t(r)].id = -1;  // dead
    push(l.prev);
    push(c.pos);
  }
  for (int i = 0; i >= 0; i = sym[size_t(i)].next) out.push_back(sym[size_t(i)].id);
}

// ------------------------------------------------------------------------------------------------
// Public API
// ------------------------------------------------------------------------------------------------

namespace {
std::shared_ptr<Tokenizer::Impl> make_impl(const std::string& text, const std::string& file,
                                           const std::string& config_text, const std::string& config_file) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  impl->file = file;
  TokenizerJsonReader reader(file);
  reader.parse(text);
  impl->load(reader, config_text, config_file);
  if (impl->special.size() < impl->tokens.size()) impl->special.resize(impl->tokens.size(), 0);
  return impl;
}
// Whole file (tokenizer.json is ~11 MB), bounded as every JSON input; TokenizerError naming the file.
std::string read_file(const std::string& path) { return read_text_file(path, InputKind::Tokenizer); }
bool file_exists(const std::string& p) {
  std::ifstream f(p);
  return bool(f);
}
}  // namespace

Tokenizer Tokenizer::from_json_text(const std::string& tokenizer_json, const std::string& file,
                                    const std::string& config_json, const std::string& config_file) {
  return Tokenizer(make_impl(tokenizer_json, file, config_json, config_file.empty() ? file : config_file));
}

Tokenizer Tokenizer::from_file(const std::string& tokenizer_json, const std::string& tokenizer_config_json) {
  const std::string text = read_file(tokenizer_json);
  std::string config;
  if (!tokenizer_config_json.empty()) config = read_file(tokenizer_config_json);
  return Tokenizer(make_impl(text, tokenizer_json, config, tokenizer_config_json));
}

Tokenizer Tokenizer::from_dir(const std::string& dir) {
  const std::string cfg = dir + "/tokenizer_config.json";
  return from_file(dir + "/tokenizer.json", file_exists(cfg) ? cfg : "");
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool /*add_special_tokens*/) const {
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 4);
  impl_->encode(text, ids, nullptr);
  return ids;
}

Encoding Tokenizer::encode_with_offsets(std::string_view text, bool /*add_special_tokens*/) const {
  Encoding e;
  impl_->encode(text, e.ids, &e.offsets);
  return e;
}

std::vector<std::vector<TokenId>> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                                          bool add_special_tokens) const {
  std::vector<std::vector<TokenId>> out;
  out.reserve(texts.size());
  for (const std::string& t : texts) out.push_back(encode(t, add_special_tokens));
  return out;
}

PaddedBatch Tokenizer::encode_batch_padded(const std::vector<std::string>& texts, bool add_special_tokens) const {
  if (!impl_->pad) throw std::logic_error("tokenizer " + impl_->file + " names no pad token");
  return pad_left(encode_batch(texts, add_special_tokens), *impl_->pad);
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool skip_special_tokens) const {
  std::string raw;
  raw.reserve(ids.size() * 4);
  for (TokenId id : ids) {
    if (id < 0 || size_t(id) >= impl_->tokens.size() || impl_->tokens[size_t(id)].empty())
      throw std::out_of_range("tokenizer: token id " + std::to_string(id) + " is not in the vocab");
    if (skip_special_tokens && impl_->special[size_t(id)]) continue;
    raw += impl_->bytes[size_t(id)];
  }
  return utf8_lossy(raw);
}

std::optional<TokenId> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->token_ids.find(std::string(token));
  if (it == impl_->token_ids.end()) return std::nullopt;
  return it->second;
}

const std::string& Tokenizer::id_to_token(TokenId id) const {
  if (id < 0 || size_t(id) >= impl_->tokens.size() || impl_->tokens[size_t(id)].empty())
    throw std::out_of_range("tokenizer: token id " + std::to_string(id) + " is not in the vocab");
  return impl_->tokens[size_t(id)];
}

const std::string& Tokenizer::token_bytes(TokenId id) const {
  id_to_token(id);
  return impl_->bytes[size_t(id)];
}

size_t Tokenizer::vocab_size() const { return impl_->tokens.size(); }
size_t Tokenizer::num_merges() const { return impl_->n_merges; }
const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }
bool Tokenizer::is_special(TokenId id) const {
  return id >= 0 && size_t(id) < impl_->special.size() && impl_->special[size_t(id)];
}
std::optional<TokenId> Tokenizer::pad_id() const { return impl_->pad; }
std::optional<TokenId> Tokenizer::eos_id() const { return impl_->eos; }
std::optional<TokenId> Tokenizer::bos_id() const { return impl_->bos; }
const std::string& Tokenizer::file() const { return impl_->file; }
bool Tokenizer::regex_jit() const {
#if SC_TOKENIZER_ENABLED
  return impl_->jit;
#else
  return false;
#endif
}
size_t Tokenizer::cache_size() const {
  std::lock_guard<std::mutex> lock(impl_->cache_mu);
  return impl_->cache.size();
}
void Tokenizer::clear_cache() const {
  std::lock_guard<std::mutex> lock(impl_->cache_mu);
  impl_->cache.clear();
}

int64_t Encoding::token_at_byte(size_t pos) const {
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (offsets[i].first <= pos && pos < offsets[i].second) {
      // Coarse spans: the tokens of an NFC-changed piece share one span; take the last.
      while (i + 1 < offsets.size() && offsets[i + 1] == offsets[i]) ++i;
      return int64_t(i);
    }
  }
  return -1;
}

PaddedBatch pad_left(const std::vector<std::vector<TokenId>>& seqs, TokenId pad_id) {
  if (seqs.empty()) throw std::invalid_argument("pad_left: empty batch");
  PaddedBatch b;
  b.batch = int64_t(seqs.size());
  for (const auto& s : seqs) b.seq_len = std::max(b.seq_len, int64_t(s.size()));
  const size_t total = size_t(b.batch * b.seq_len);
  b.input_ids.assign(total, pad_id);
  b.attention_mask.assign(total, 0);
  b.position_ids.assign(total, 1);
  for (size_t r = 0; r < seqs.size(); ++r) {
    const int64_t len = int64_t(seqs[r].size()), pad = b.seq_len - len;
    b.lengths.push_back(len);
    for (int64_t i = 0; i < len; ++i) {
      const size_t at = size_t(int64_t(r) * b.seq_len + pad + i);
      b.input_ids[at] = seqs[r][size_t(i)];
      b.attention_mask[at] = 1;
      b.position_ids[at] = i;
    }
  }
  return b;
}

std::string qwen3_tokenizer_dir() {
  std::string dir;
  if (const char* env = std::getenv("SC_QWEN3_TOKENIZER_DIR"); env && *env) dir = env;
#ifdef SHARDCHECK_SOURCE_DIR
  else dir = std::string(SHARDCHECK_SOURCE_DIR) + "/.deps/qwen3-tokenizer";
#endif
  if (dir.empty() || !file_exists(dir + "/tokenizer.json")) return "";
  return dir;
}

}  // namespace sc
