// safetensors reader and writer (torch-free).
//
// File layout (https://github.com/huggingface/safetensors, format section):
//   [0, 8)            u64 little-endian N: byte length of the JSON header
//   [8, 8 + N)        UTF-8 JSON object: {"__metadata__": {str: str}?, name: {"dtype", "shape",
//                     "data_offsets": [begin, end)}, ...}; may be padded with trailing spaces
//   [8 + N, EOF)      data section; offsets are relative to its start
//
// The reader mmaps the file and validates the header the way the reference implementation does
// (header size limit, UTF-8, JSON object, dtypes, shapes, byte lengths, offsets contiguous and
// covering the data section exactly), so every tensor pointer handed out afterwards lies inside
// the mapping. Any violation is a CheckpointError naming the file, the tensor/field and the value.
#include "models/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <utility>

#include "models/atomic_file.h"
#include "models/errors.h"
#include "models/json_util.h"

namespace sc {

namespace {

using json = nlohmann::json;

// Same limit as the reference implementation (MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

// ---- small helpers --------------------------------------------------------------------------

// Offset (in bytes) of the first byte that is not part of a well-formed UTF-8 sequence, or
// npos when the whole buffer is valid. Rejects overlong encodings, UTF-16 surrogates and code
// points above U+10FFFF (RFC 3629), as Rust's str::from_utf8 does.
size_t find_invalid_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;   // no overlongs
      if (c == 0xED) hi = 0x9F;   // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;   // no overlongs
      if (c == 0xF4) hi = 0x8F;   // <= U+10FFFF
    } else {
      return i;  // continuation byte, overlong lead (C0/C1) or F5..FF
    }
    if (i + len > n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string::npos;
}

std::string hex_bytes(const uint8_t* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i) out += ' ';
    out += "0x";
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

// A JSON integer >= 0 (nlohmann stores non-negative literals as unsigned, "-0" as signed 0).
// Floats ("1.0", "1e3") and out-of-range integers (parsed as floats) are rejected.
bool json_to_u64(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    int64_t s = v.get<int64_t>();
    if (s < 0) return false;
    *out = uint64_t(s);
    return true;
  }
  return false;
}

std::string range_str(uint64_t b, uint64_t e) {
  return "[" + std::to_string(b) + ", " + std::to_string(e) + ")";
}

// Rethrows an InputError from the shared JSON/file helpers as a CheckpointError (same fields),
// so callers can catch one type for every checkpoint problem.
template <class F>
auto as_checkpoint_error(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const CheckpointError&) {
    throw;
  } catch (const InputError& e) {
    throw CheckpointError(e.file(), e.key(), e.value(), e.problem());
  }
}

[[noreturn]] void bad(const std::string& file, const std::string& key, const std::string& value,
                      const std::string& problem) {
  throw CheckpointError(file, key, value, problem);
}

bool is_directory(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool is_regular_file(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool path_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}
std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

}  // namespace

// ---- TensorInfo -----------------------------------------------------------------------------

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated at load/write time not to overflow
  return n;
}

// ---- SafetensorsFile ------------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) bad(path_, "", "", std::string("cannot open file: ") + std::strerror(errno));
  // Releases the fd / mapping if the constructor throws (the destructor would not run).
  struct Guard {
    SafetensorsFile* self;
    bool armed = true;
    ~Guard() {
      if (!armed) return;
      if (self->map_) ::munmap(const_cast<uint8_t*>(self->map_), self->size_);
      if (self->fd_ >= 0) ::close(self->fd_);
      self->map_ = nullptr;
      self->fd_ = -1;
    }
  } guard{this};

  struct stat st;
  if (::fstat(fd_, &st) != 0) bad(path_, "", "", std::string("cannot stat file: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) bad(path_, "", "", "not a regular file");
  size_ = uint64_t(st.st_size);
  if (size_ < 8)
    bad(path_, "header_length", std::to_string(size_) + " bytes in file",
         "file too short: a safetensors file starts with an 8-byte header length");

  void* m = ::mmap(nullptr, size_t(size_), PROT_READ, MAP_PRIVATE, fd_, 0);
  if (m == MAP_FAILED) bad(path_, "", "", std::string("mmap failed: ") + std::strerror(errno));
  map_ = static_cast<const uint8_t*>(m);
  // The mapping keeps the file alive; no further need for the descriptor.
  ::close(fd_);
  fd_ = -1;

  // -- header length --
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | map_[i];
  if (header_len > kMaxHeaderBytes)
    bad(path_, "header_length", std::to_string(header_len),
         "header larger than the 100000000-byte limit");
  if (header_len > size_ - 8)
    bad(path_, "header_length", std::to_string(header_len),
         "header extends past end of file (file has " + std::to_string(size_) + " bytes)");
  if (header_len == 0) bad(path_, "header_length", "0", "empty header (must hold a JSON object)");
  data_offset_ = 8 + header_len;
  const uint64_t data_size = size_ - data_offset_;

  // -- header text: UTF-8, then strict JSON (duplicate keys are errors) --
  const uint8_t* hdr = map_ + 8;
  size_t bad_at = find_invalid_utf8(hdr, size_t(header_len));
  if (bad_at != std::string::npos) {
    size_t n = std::min<size_t>(4, size_t(header_len) - bad_at);
    bad(path_, "header", "byte " + std::to_string(bad_at) + " (" + hex_bytes(hdr + bad_at, n) + ")",
         "header is not valid UTF-8");
  }
  std::string text(reinterpret_cast<const char*>(hdr), size_t(header_len));
  json j;
  try {
    j = parse_json_strict(text, path_, InputKind::Checkpoint);
  } catch (const InputError& e) {
    // A duplicate top-level key ("/name") is a duplicate tensor name; say so in plain words.
    const std::string& k = e.key();
    if (!k.empty() && k[0] == '/' && k.find('/', 1) == std::string::npos) {
      std::string name;
      for (size_t i = 1; i < k.size(); ++i) {  // undo JSON-pointer escaping (~0 = ~, ~1 = /)
        if (k[i] == '~' && i + 1 < k.size() && (k[i + 1] == '0' || k[i + 1] == '1')) {
          name += k[i + 1] == '0' ? '~' : '/';
          ++i;
        } else {
          name += k[i];
        }
      }
      bad(path_, name, "", name == kMetadataKey ? "duplicate __metadata__ in header"
                                          : "duplicate tensor name in header");
    }
    bad(path_, e.key(), e.value(), e.problem());
  }
  if (!j.is_object()) bad(path_, "header", json_brief(j), "header is not a JSON object");

  // -- entries --
  struct Span { uint64_t begin, end; const std::string* name; };
  std::vector<Span> spans;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == kMetadataKey) {
      // The reference accepts null here (Option<HashMap<String, String>>).
      if (v.is_null()) continue;
      if (!v.is_object()) bad(path_, kMetadataKey, json_brief(v), "__metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          bad(path_, std::string(kMetadataKey) + "." + m.key(), json_brief(m.value()),
               "__metadata__ values must be strings");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) bad(path_, name, json_brief(v), "tensor entry must be an object");

    TensorInfo t;
    t.name = name;
    t.file = path_;

    // dtype
    auto d = v.find("dtype");
    if (d == v.end()) bad(path_, name + ".dtype", "", "missing field");
    if (!d->is_string()) bad(path_, name + ".dtype", json_brief(*d), "dtype must be a string");
    auto dt = dtype_from_st_name(d->get<std::string>());
    if (!dt)
      bad(path_, name + ".dtype", json_brief(*d),
           "unknown dtype (expected F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2)");
    t.dtype = *dt;

    // shape: array of non-negative integers; numel * dtype size must not overflow
    auto s = v.find("shape");
    if (s == v.end()) bad(path_, name + ".shape", "", "missing field");
    if (!s->is_array()) bad(path_, name + ".shape", json_brief(*s), "shape must be an array of non-negative integers");
    uint64_t nbytes = uint64_t(dtype_size(t.dtype));
    for (const json& e : *s) {
      uint64_t dim;
      if (!json_to_u64(e, &dim) || dim > uint64_t(std::numeric_limits<int64_t>::max()))
        bad(path_, name + ".shape", json_brief(*s), "shape must be an array of non-negative integers");
      if (__builtin_mul_overflow(nbytes, dim, &nbytes))
        bad(path_, name + ".shape", json_brief(*s), "shape product times dtype size overflows 64 bits");
      t.shape.push_back(int64_t(dim));
    }

    // data_offsets: [begin, end) inside the data section, end - begin == numel * dtype size
    auto o = v.find("data_offsets");
    if (o == v.end()) bad(path_, name + ".data_offsets", "", "missing field");
    if (!o->is_array() || o->size() != 2 || !json_to_u64((*o)[0], &t.data_begin) ||
        !json_to_u64((*o)[1], &t.data_end))
      bad(path_, name + ".data_offsets", json_brief(*o), "data_offsets must be [begin, end] with non-negative integers");
    if (t.data_begin > t.data_end)
      bad(path_, name + ".data_offsets", json_brief(*o), "begin is greater than end");
    if (t.data_end > data_size)
      bad(path_, name + ".data_offsets", json_brief(*o),
           "extends past end of data section (" + std::to_string(data_size) + " bytes; file truncated?)");
    if (t.data_end - t.data_begin != nbytes)
      bad(path_, name + ".data_offsets", json_brief(*o),
           "byte length " + std::to_string(t.data_end - t.data_begin) + " != numel of shape " +
               shape_str(t.shape) + " x " + std::to_string(dtype_size(t.dtype)) + " bytes (" +
               dtype_st_name(t.dtype) + ") = " + std::to_string(nbytes));

    auto ins = tensors_.emplace(name, std::move(t));
    spans.push_back({ins.first->second.data_begin, ins.first->second.data_end, &ins.first->first});
  }

  // -- layout: sorted by offsets, the spans must tile [0, data_size) with no gap or overlap --
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t pos = 0;
  const std::string* prev = nullptr;
  for (const Span& sp : spans) {
    if (sp.begin < pos)
      bad(path_, *sp.name + ".data_offsets", range_str(sp.begin, sp.end),
           "overlaps tensor '" + *prev + "' which ends at " + std::to_string(pos));
    if (sp.begin > pos)
      bad(path_, *sp.name + ".data_offsets", range_str(sp.begin, sp.end),
           "gap of " + std::to_string(sp.begin - pos) + " bytes before it (" +
               (prev ? "previous tensor '" + *prev + "' ends" : std::string("data section starts")) + " at " +
               std::to_string(pos) + ")");
    pos = sp.end;
    prev = sp.name;
  }
  if (pos != data_size)
    bad(path_, "data_section", "tensors cover " + range_str(0, pos) + " of " + std::to_string(data_size) + " bytes",
         "data section not fully covered by tensors (trailing bytes)");

  guard.armed = false;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_t(size_));
  if (fd_ >= 0) ::close(fd_);
}

const uint8_t* SafetensorsFile::data(const TensorInfo& t) const {
  // Guard against a TensorInfo from another file: never hand out a pointer past the mapping.
  if (t.data_begin > t.data_end || t.data_end > size_ - data_offset_)
    throw CheckpointError(path_, t.name + ".data_offsets", range_str(t.data_begin, t.data_end),
                          "not inside this file's data section");
  return map_ + data_offset_ + t.data_begin;
}

// ---- Checkpoint -----------------------------------------------------------------------------

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint ck;
  ck.path_ = path;
  auto add_whole_file = [&](const std::string& file) {
    auto f = std::make_shared<SafetensorsFile>(file);
    ck.files_[file] = f;
    for (const auto& kv : f->tensors()) ck.by_tensor_[kv.first] = f;
  };

  if (!path_exists(path)) throw CheckpointError(path, "", "", "no such file or directory");
  if (!is_directory(path)) {
    add_whole_file(path);  // a single .safetensors file
    return ck;
  }

  const std::string index = join_path(path, "model.safetensors.index.json");
  const std::string single = join_path(path, "model.safetensors");
  if (!path_exists(index)) {
    if (!path_exists(single))
      throw CheckpointError(path, "", "",
                            "directory has neither model.safetensors.index.json nor model.safetensors");
    add_whole_file(single);
    return ck;
  }

  // Sharded: {"weight_map": {tensor: file relative to the directory}, "metadata": {...}}.
  json j = as_checkpoint_error([&] {
    return read_json_file(index, InputKind::Checkpoint);
  });
  if (!j.is_object()) throw CheckpointError(index, "", json_brief(j), "index is not a JSON object");
  auto wm = j.find("weight_map");
  if (wm == j.end()) throw CheckpointError(index, "weight_map", "", "missing field");
  if (!wm->is_object())
    throw CheckpointError(index, "weight_map", json_brief(*wm), "weight_map must be an object {tensor: file}");
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    const std::string key = "weight_map." + it.key();
    if (!it.value().is_string()) throw CheckpointError(index, key, json_brief(it.value()), "file name must be a string");
    const std::string rel = it.value().get<std::string>();
    bool escapes = false;  // a ".." component leaves the checkpoint directory
    for (size_t b = 0; b <= rel.size();) {
      size_t e = rel.find('/', b);
      if (e == std::string::npos) e = rel.size();
      escapes = escapes || rel.compare(b, e - b, "..") == 0;
      b = e + 1;
    }
    if (rel.empty() || rel[0] == '/' || escapes)
      throw CheckpointError(index, key, json_brief(it.value()), "file must be a relative path inside the checkpoint");
    const std::string file = join_path(path, rel);
    auto f = ck.files_.find(file);
    if (f == ck.files_.end()) {
      if (!is_regular_file(file))
        throw CheckpointError(index, key, json_brief(it.value()), "file does not exist: " + file);
      f = ck.files_.emplace(file, std::make_shared<SafetensorsFile>(file)).first;
    }
    if (!f->second->tensors().count(it.key()))
      throw CheckpointError(index, key, json_brief(it.value()), "tensor not found in that file");
    ck.by_tensor_[it.key()] = f->second;
  }
  // Tensors present in a shard but absent from weight_map are ignored (the index defines the
  // checkpoint), matching how transformers loads sharded checkpoints.
  return ck;
}

bool Checkpoint::has(const std::string& name) const { return by_tensor_.count(name) != 0; }

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = by_tensor_.find(name);
  if (it == by_tensor_.end()) throw CheckpointError(path_, name, "", "tensor not found in checkpoint");
  return it->second->tensors().at(name);
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(by_tensor_.size());
  for (const auto& kv : by_tensor_) out.push_back(kv.first);  // std::map: already sorted
  return out;
}

std::map<std::string, std::string> Checkpoint::metadata() const {
  // Files in path order; the first file to define a key wins.
  std::map<std::string, std::string> out;
  for (const auto& f : files_)
    for (const auto& kv : f.second->metadata()) out.emplace(kv.first, kv.second);
  return out;
}

void Checkpoint::read(const std::string& name, void* dst, uint64_t dst_bytes) const {
  const TensorInfo& t = info(name);
  if (dst_bytes != t.nbytes())
    throw CheckpointError(t.file, name, "dst_bytes=" + std::to_string(dst_bytes),
                          "destination size must equal the tensor's " + std::to_string(t.nbytes()) + " bytes");
  if (t.nbytes() == 0) return;
  if (!dst) throw CheckpointError(t.file, name, "dst=null", "destination buffer is null");
  std::memcpy(dst, by_tensor_.at(name)->data(t), size_t(t.nbytes()));
  *bytes_read_ += t.nbytes();
}

void Checkpoint::read_slice(const std::string& name, int dim, int64_t begin, int64_t end, void* dst,
                            uint64_t dst_bytes) const {
  const TensorInfo& t = info(name);
  const int rank = int(t.shape.size());
  const std::string where = "shape " + shape_str(t.shape);
  if (dim < 0 || dim >= rank)
    throw CheckpointError(t.file, name, "dim=" + std::to_string(dim),
                          "slice dim out of range for " + where);
  const int64_t extent = t.shape[size_t(dim)];
  if (begin < 0 || end < begin || end > extent)
    throw CheckpointError(t.file, name, "[" + std::to_string(begin) + ", " + std::to_string(end) + ") along dim " +
                          std::to_string(dim), "slice range must satisfy 0 <= begin <= end <= " +
                          std::to_string(extent) + " (" + where + ")");

  // View the tensor as [outer, extent, inner]: outer = prod(shape[:dim]), inner = prod(shape[dim+1:]).
  // Each of the `outer` blocks contributes one contiguous run of (end - begin) * inner elements.
  // All products are bounded by numel, which was checked not to overflow when the file was opened.
  uint64_t outer = 1, inner_bytes = uint64_t(dtype_size(t.dtype));
  for (int i = 0; i < dim; ++i) outer *= uint64_t(t.shape[size_t(i)]);
  for (int i = dim + 1; i < rank; ++i) inner_bytes *= uint64_t(t.shape[size_t(i)]);
  const uint64_t run = uint64_t(end - begin) * inner_bytes;
  const uint64_t block = uint64_t(extent) * inner_bytes;  // stride between consecutive runs
  const uint64_t total = outer * run;
  if (dst_bytes != total)
    throw CheckpointError(t.file, name, "dst_bytes=" + std::to_string(dst_bytes),
                          "destination size must equal the slice's " + std::to_string(total) + " bytes");
  if (total == 0) return;
  if (!dst) throw CheckpointError(t.file, name, "dst=null", "destination buffer is null");

  const uint8_t* src = by_tensor_.at(name)->data(t) + uint64_t(begin) * inner_bytes;
  uint8_t* out = static_cast<uint8_t*>(dst);
  if (run == block) {
    std::memcpy(out, src, size_t(total));  // the slice is one contiguous range (e.g. dim 0)
  } else {
    for (uint64_t o = 0; o < outer; ++o) std::memcpy(out + o * run, src + o * block, size_t(run));
  }
  *bytes_read_ += total;
}

// ---- writer ---------------------------------------------------------------------------------

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Validate and compute sizes; lay tensors out in name order.
  std::vector<std::pair<const TensorToWrite*, uint64_t>> order;  // tensor, nbytes
  std::set<std::string> seen;
  for (const TensorToWrite& t : tensors) {
    if (t.name == kMetadataKey) throw OutputError(path, "tensor name '__metadata__' is reserved");
    if (!seen.insert(t.name).second) throw OutputError(path, "duplicate tensor name '" + t.name + "'");
    uint64_t nbytes = uint64_t(dtype_size(t.dtype));
    int64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw OutputError(path, "tensor '" + t.name + "' has a negative dimension in shape " + shape_str(t.shape));
      if (__builtin_mul_overflow(nbytes, uint64_t(d), &nbytes) || __builtin_mul_overflow(numel, d, &numel))
        throw OutputError(path, "tensor '" + t.name + "' shape " + shape_str(t.shape) + " overflows");
    }
    if (nbytes > 0 && !t.data) throw OutputError(path, "tensor '" + t.name + "' has null data but " +
                                                     std::to_string(nbytes) + " bytes");
    order.emplace_back(&t, nbytes);
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first->name < b.first->name; });

  // Header JSON, written by hand to keep __metadata__ first and tensors in layout order (as
  // the reference writer does); nlohmann only escapes the strings. Invalid UTF-8 in a name
  // makes dump() throw, which becomes an OutputError.
  auto quote = [&](const std::string& s) {
    try {
      return json(s).dump(-1, ' ', false, json::error_handler_t::strict);
    } catch (const json::exception&) {
      throw OutputError(path, "name or metadata is not valid UTF-8: " + json(s).dump(-1, ' ', true, json::error_handler_t::replace));
    }
  };
  std::string header = "{";
  if (!metadata.empty()) {
    header += quote(kMetadataKey) + ":{";
    bool first = true;
    for (const auto& kv : metadata) {
      if (!first) header += ',';
      first = false;
      header += quote(kv.first) + ":" + quote(kv.second);
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (const auto& [t, nbytes] : order) {
    if (header.size() > 1) header += ',';
    header += quote(t->name) + ":{\"dtype\":\"" + dtype_st_name(t->dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < t->shape.size(); ++i) header += (i ? "," : "") + std::to_string(t->shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + nbytes) + "]}";
    offset += nbytes;
  }
  header += "}";
  // Pad with spaces so the data section starts 8-byte aligned (8 + header length % 8 == 0).
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > kMaxHeaderBytes)
    throw OutputError(path, "header of " + std::to_string(header.size()) + " bytes exceeds the 100000000-byte limit");

  std::string bytes;
  bytes.reserve(size_t(8 + header.size() + offset));
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes += char((n >> (8 * i)) & 0xFF);
  bytes += header;
  for (const auto& [t, nbytes] : order)
    if (nbytes) bytes.append(static_cast<const char*>(t->data), size_t(nbytes));
  write_file_atomic(path, bytes);
}

}  // namespace sc
