// GGUF reader (v2 and v3, little-endian), torch-free: reads back the llama.cpp control vectors that
// steering/export.cpp writes, and any other GGUF file's metadata and tensor table.
//
// Layout (ggml docs/gguf.md): "GGUF", u32 version, u64 tensor_count, u64 kv_count; kv_count
// entries {string key, u32 type, value}; tensor_count entries {string name, u32 n_dims,
// u64 dims[n_dims], u32 ggml_type, u64 offset}; padding to general.alignment (default 32); the
// data section. Strings are u64 length + bytes; arrays are u32 element type + u64 count + values.
//
// Every length and count is checked against the bytes left before anything is allocated, so a
// hostile file costs at most its own size. Any violation (bad magic or version, truncation,
// duplicate key or tensor name, unknown value or tensor type, more than 4 dims, element count
// overflow, a row not a whole number of quantisation blocks, misaligned offset, tensor data past
// the end or overlapping another tensor) is a CheckpointError naming the file, the key or tensor
// and the value.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sc {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9,
  U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

struct GgufValue {
  GgufType type = GgufType::U8;
  uint64_t u = 0;      // unsigned integers and bool
  int64_t i = 0;       // signed integers
  double f = 0;        // F32 / F64
  std::string s;       // String
  GgufType elem = GgufType::U8;  // Array: element type
  std::vector<GgufValue> array;

  bool is_integer() const;
  // Integer value as int64 (unsigned values above INT64_MAX are not representable: false).
  bool as_int64(int64_t* out) const;
};

struct GgufTensor {
  std::string name;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the contiguous (row) dimension
  uint32_t ggml_type = 0;     // 0 = F32, 1 = F16, 30 = BF16, ...
  uint64_t offset = 0;        // relative to the data section
  uint64_t nbytes = 0;
  int64_t numel() const;
};

// ggml type name ("f32", "q8_0", ...) or "" when unknown to this reader.
const char* ggml_type_name(uint32_t t);

class GgufFile {
 public:
  // Parses bytes in memory; `file` names the source in errors.
  static GgufFile parse(std::string bytes, const std::string& file);
  static GgufFile read(const std::string& path);

  const std::string& file() const { return file_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  // Metadata keys in file order, and look-up by key (nullptr when absent).
  const std::vector<std::string>& keys() const { return keys_; }
  const GgufValue* find(const std::string& key) const;
  // Tensors in file order, and look-up by name (nullptr when absent).
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* tensor(const std::string& name) const;
  const uint8_t* data(const GgufTensor& t) const;
  // Elements as float for F32, F16 and BF16 tensors (CheckpointError for other types).
  std::vector<float> tensor_f32(const std::string& name) const;

 private:
  std::string file_;
  std::string bytes_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::string> keys_;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> by_name_;
};

}  // namespace sc
