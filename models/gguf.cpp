#include "models/gguf.h"

#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "models/errors.h"

namespace sc {

namespace {

[[noreturn]] void bad(const std::string& file, const std::string& key, const std::string& value,
                      const std::string& problem) {
  throw CheckpointError(file, key, value, problem);
}

struct TypeInfo {
  uint32_t id;
  const char* name;
  uint64_t block;  // elements per block
  uint64_t bytes;  // bytes per block
};
// ggml's type table (ggml.h enum ggml_type and the block structs of ggml-common.h).
constexpr TypeInfo kTypes[] = {
    {0, "f32", 1, 4},       {1, "f16", 1, 2},       {2, "q4_0", 32, 18},   {3, "q4_1", 32, 20},
    {6, "q5_0", 32, 22},    {7, "q5_1", 32, 24},    {8, "q8_0", 32, 34},   {9, "q8_1", 32, 36},
    {10, "q2_K", 256, 84},  {11, "q3_K", 256, 110}, {12, "q4_K", 256, 144}, {13, "q5_K", 256, 176},
    {14, "q6_K", 256, 210}, {15, "q8_K", 256, 292}, {24, "i8", 1, 1},      {25, "i16", 1, 2},
    {26, "i32", 1, 4},      {27, "i64", 1, 8},      {28, "f64", 1, 8},     {30, "bf16", 1, 2},
};
const TypeInfo* type_info(uint32_t t) {
  for (const auto& ti : kTypes)
    if (ti.id == t) return &ti;
  return nullptr;
}

constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

// Fixed size in bytes of a scalar value type (0 for String / Array, -1 for unknown types).
int scalar_size(uint32_t t) {
  switch (t) {
    case 0: case 1: case 7: return 1;
    case 2: case 3: return 2;
    case 4: case 5: case 6: return 4;
    case 10: case 11: case 12: return 8;
    case 8: case 9: return 0;
    default: return -1;
  }
}

class Reader {
 public:
  Reader(const std::string& b, const std::string& file) : b_(b), file_(file) {}
  size_t pos() const { return pos_; }
  size_t left() const { return b_.size() - pos_; }

  template <typename T>
  T get(const std::string& what) {
    if (left() < sizeof(T))
      bad(file_, what, "offset " + std::to_string(pos_),
          "file truncated: needs " + std::to_string(sizeof(T)) + " bytes, " + std::to_string(left()) + " left");
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));  // GGUF is little-endian, as are x86-64 and aarch64
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const std::string& what) {
    const uint64_t n = get<uint64_t>(what);
    if (n > left())
      bad(file_, what, "string length " + std::to_string(n),
          "longer than the " + std::to_string(left()) + " bytes left in the file");
    std::string s = b_.substr(pos_, size_t(n));
    pos_ += size_t(n);
    return s;
  }

 private:
  const std::string& b_;
  const std::string& file_;
  size_t pos_ = 0;
};

// Printable, truncated rendering of a key or name read from the file.
std::string brief(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 80)) {
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > 80) out += "...";
  return out;
}

GgufValue read_value(Reader& r, uint32_t type, const std::string& key, const std::string& file, bool in_array) {
  GgufValue v;
  if (type > 12) bad(file, key, "type " + std::to_string(type), "unknown GGUF value type (expected 0..12)");
  v.type = GgufType(type);
  switch (v.type) {
    case GgufType::U8: v.u = r.get<uint8_t>(key); break;
    case GgufType::I8: v.i = r.get<int8_t>(key); break;
    case GgufType::U16: v.u = r.get<uint16_t>(key); break;
    case GgufType::I16: v.i = r.get<int16_t>(key); break;
    case GgufType::U32: v.u = r.get<uint32_t>(key); break;
    case GgufType::I32: v.i = r.get<int32_t>(key); break;
    case GgufType::U64: v.u = r.get<uint64_t>(key); break;
    case GgufType::I64: v.i = r.get<int64_t>(key); break;
    case GgufType::F32: v.f = r.get<float>(key); break;
    case GgufType::F64: v.f = r.get<double>(key); break;
    case GgufType::Bool: {
      const uint8_t b = r.get<uint8_t>(key);
      if (b > 1) bad(file, key, std::to_string(b), "bool must be 0 or 1");
      v.u = b;
      break;
    }
    case GgufType::String: v.s = r.str(key); break;
    case GgufType::Array: {
      if (in_array) bad(file, key, "array of arrays", "nested arrays are not supported");
      const uint32_t elem = r.get<uint32_t>(key);
      const int size = scalar_size(elem);
      if (size < 0) bad(file, key, "array element type " + std::to_string(elem), "unknown GGUF value type (expected 0..12)");
      if (elem == uint32_t(GgufType::Array)) bad(file, key, "array of arrays", "nested arrays are not supported");
      v.elem = GgufType(elem);
      const uint64_t n = r.get<uint64_t>(key);
      const uint64_t min_each = size > 0 ? uint64_t(size) : 8;  // a string is at least its length
      if (n > r.left() / min_each)
        bad(file, key, "array of " + std::to_string(n) + " " + gguf_type_name(v.elem),
            "does not fit in the " + std::to_string(r.left()) + " bytes left in the file");
      v.array.reserve(size_t(n));
      for (uint64_t k = 0; k < n; ++k) v.array.push_back(read_value(r, elem, key, file, true));
      break;
    }
  }
  return v;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) {
        man <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                "bool",  "string", "array", "uint64", "int64", "float64"};
  const auto i = uint32_t(t);
  return i <= 12 ? names[i] : "unknown";
}

const char* ggml_type_name(uint32_t t) {
  const TypeInfo* ti = type_info(t);
  return ti ? ti->name : "";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16: case GgufType::U32:
    case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

bool GgufValue::as_int64(int64_t* out) const {
  switch (type) {
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64: *out = i; return true;
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64:
      if (u > uint64_t(std::numeric_limits<int64_t>::max())) return false;
      *out = int64_t(u);
      return true;
    default: return false;
  }
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;  // checked not to overflow at parse time
  return n;
}

GgufFile GgufFile::parse(std::string bytes, const std::string& file) {
  GgufFile g;
  g.file_ = file;
  g.bytes_ = std::move(bytes);
  Reader r(g.bytes_, file);
  if (g.bytes_.size() < 4 || g.bytes_.compare(0, 4, "GGUF") != 0)
    bad(file, "magic", brief(g.bytes_.substr(0, 4)), "not a GGUF file (expected the magic \"GGUF\")");
  r.get<uint32_t>("magic");
  g.version_ = r.get<uint32_t>("version");
  if (g.version_ != 2 && g.version_ != 3)
    bad(file, "version", std::to_string(g.version_), "unsupported GGUF version (expected 2 or 3)");
  const uint64_t n_tensors = r.get<uint64_t>("tensor_count");
  const uint64_t n_kv = r.get<uint64_t>("metadata_kv_count");
  // Each key-value takes at least 8 + 4 + 1 bytes, each tensor info 8 + 4 + 4 + 8.
  if (n_kv > r.left() / 13)
    bad(file, "metadata_kv_count", std::to_string(n_kv), "more entries than the file can hold");

  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string where = "metadata entry " + std::to_string(k);
    std::string key = r.str(where + " key");
    const uint32_t type = r.get<uint32_t>(brief(key));
    GgufValue v = read_value(r, type, brief(key), file, false);
    if (g.kv_.count(key)) bad(file, brief(key), "", "duplicate metadata key");
    g.keys_.push_back(key);
    g.kv_.emplace(std::move(key), std::move(v));
  }
  if (const GgufValue* a = g.find("general.alignment")) {
    if (a->type != GgufType::U32)
      bad(file, "general.alignment", gguf_type_name(a->type), "must be a uint32");
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      bad(file, "general.alignment", std::to_string(a->u), "must be a power of two");
    g.alignment_ = a->u;
  }

  if (n_tensors > r.left() / 24)
    bad(file, "tensor_count", std::to_string(n_tensors), "more tensor infos than the file can hold");
  uint64_t expected_offset = 0;  // tensors are laid out in order, each padded to the alignment (as llama.cpp requires)
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = r.str("tensor " + std::to_string(k) + " name");
    const std::string key = brief(t.name);
    if (g.by_name_.count(t.name)) bad(file, key, "", "duplicate tensor name");
    const uint32_t n_dims = r.get<uint32_t>(key + ".n_dims");
    if (n_dims == 0 || n_dims > kMaxDims)
      bad(file, key + ".n_dims", std::to_string(n_dims), "must be 1 to 4");
    uint64_t numel = 1;
    std::string shape = "[";
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = r.get<uint64_t>(key + ".dims");
      shape += (d ? ", " : "") + std::to_string(dim);
      if (dim > uint64_t(std::numeric_limits<int64_t>::max()) || __builtin_mul_overflow(numel, dim, &numel) ||
          numel > uint64_t(std::numeric_limits<int64_t>::max()))
        bad(file, key + ".dims", shape + (d + 1 < n_dims ? ", ...]" : "]"), "element count overflows int64");
      t.dims.push_back(int64_t(dim));
    }
    shape += "]";
    t.ggml_type = r.get<uint32_t>(key + ".type");
    const TypeInfo* ti = type_info(t.ggml_type);
    if (!ti) bad(file, key + ".type", std::to_string(t.ggml_type), "unknown or unsupported ggml type");
    if (uint64_t(t.dims[0]) % ti->block != 0)
      bad(file, key + ".dims", shape,
          "row of " + std::to_string(t.dims[0]) + " elements is not a whole number of " + ti->name + " blocks of " +
              std::to_string(ti->block));
    // 8-byte types of 2^62 or more elements overflow 64 bits.
    if (__builtin_mul_overflow(numel / ti->block, ti->bytes, &t.nbytes))
      bad(file, key + ".dims", shape, "byte size overflows 64 bits");
    t.offset = r.get<uint64_t>(key + ".offset");
    if (t.offset != expected_offset)
      bad(file, key + ".offset", std::to_string(t.offset),
          "expected " + std::to_string(expected_offset) + " (tensors are stored in order, each padded to " +
              std::to_string(g.alignment_) + " bytes)");
    const uint64_t padded = t.nbytes + (g.alignment_ - t.nbytes % g.alignment_) % g.alignment_;
    if (padded < t.nbytes || __builtin_add_overflow(expected_offset, padded, &expected_offset))
      bad(file, key + ".dims", shape, "data section size overflows 64 bits");
    g.by_name_[t.name] = g.tensors_.size();
    g.tensors_.push_back(std::move(t));
  }
  const uint64_t header_end = r.pos();
  g.data_offset_ = header_end + (g.alignment_ - header_end % g.alignment_) % g.alignment_;
  if (!g.tensors_.empty()) {
    const GgufTensor& last = g.tensors_.back();
    const uint64_t size = g.bytes_.size();
    if (g.data_offset_ > size || last.offset + last.nbytes > size - g.data_offset_)
      bad(file, brief(last.name), "data [" + std::to_string(last.offset) + ", " + std::to_string(last.offset + last.nbytes) + ")",
          "extends past the end of the file (data section of " +
              std::to_string(size > g.data_offset_ ? size - g.data_offset_ : 0) + " bytes; file truncated?)");
  }
  return g;
}

GgufFile GgufFile::read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path, "", "", "cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw CheckpointError(path, "", "", "read failed");
  return parse(ss.str(), path);
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensor* GgufFile::tensor(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::data(const GgufTensor& t) const {
  if (data_offset_ > bytes_.size() || t.offset > bytes_.size() - data_offset_ || t.nbytes > bytes_.size() - data_offset_ - t.offset)
    throw CheckpointError(file_, brief(t.name), "offset " + std::to_string(t.offset), "not inside this file's data section");
  return reinterpret_cast<const uint8_t*>(bytes_.data()) + data_offset_ + t.offset;
}

std::vector<float> GgufFile::tensor_f32(const std::string& name) const {
  const GgufTensor* t = tensor(name);
  if (!t) throw CheckpointError(file_, brief(name), "", "no such tensor");
  const uint8_t* p = data(*t);
  const size_t n = size_t(t->numel());
  std::vector<float> out(n);
  if (t->ggml_type == 0) {
    if (n) std::memcpy(out.data(), p, n * 4);
  } else if (t->ggml_type == 1 || t->ggml_type == 30) {
    for (size_t k = 0; k < n; ++k) {
      uint16_t h;
      std::memcpy(&h, p + 2 * k, 2);
      if (t->ggml_type == 1) {
        out[k] = half_to_float(h);
      } else {
        const uint32_t bits = uint32_t(h) << 16;
        std::memcpy(&out[k], &bits, 4);
      }
    }
  } else {
    throw CheckpointError(file_, brief(name), ggml_type_name(t->ggml_type), "only f32, f16 and bf16 tensors convert to float");
  }
  return out;
}

}  // namespace sc
