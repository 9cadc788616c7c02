// safetensors reader (mmap, validated like the reference implementation) and atomic writer.
// Torch-free. Errors are CheckpointError naming file, tensor, field and values.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/dtype.h"

namespace sc {

struct TensorInfo {
  std::string name;
  std::string file;              // the .safetensors file holding it
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t data_begin = 0;       // offsets relative to the data section, as in the header
  uint64_t data_end = 0;
  int64_t numel() const;
  uint64_t nbytes() const { return data_end - data_begin; }
};

// One mmapped .safetensors file. Throws CheckpointError on any violation of the format:
// header length (8-byte LE u64) past EOF or > 100 MB, invalid UTF-8/JSON, not an object, duplicate
// names, unknown dtype, bad shape, byte length != numel * dtype size, offsets not sorted /
// contiguous / covering the data section exactly, __metadata__ not a string->string map.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Pointer to the tensor's bytes inside the mapping (valid while this object lives).
  const uint8_t* data(const TensorInfo& t) const;
  uint64_t file_size() const { return size_; }

 private:
  std::string path_;
  int fd_ = -1;
  const uint8_t* map_ = nullptr;
  uint64_t size_ = 0;
  uint64_t data_offset_ = 0;  // 8 + header length
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint: a directory with model.safetensors, or with model.safetensors.index.json
// ({"weight_map": {tensor: file}}), or a single .safetensors file path.
// Slice reads copy only the requested bytes into the caller's buffer, so a TP/EP rank never
// materialises a tensor it does not own.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& path);

  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // CheckpointError if missing
  std::vector<std::string> names() const;                 // sorted
  const std::string& path() const { return path_; }
  std::map<std::string, std::string> metadata() const;    // merged __metadata__ of all files

  // Whole tensor into dst (dst_bytes must equal info.nbytes()).
  void read(const std::string& name, void* dst, uint64_t dst_bytes) const;
  // Elements [begin, end) along `dim` (any dim of any rank), all other dims whole, written
  // contiguously (row-major) into dst. dst_bytes must equal the slice's byte size.
  void read_slice(const std::string& name, int dim, int64_t begin, int64_t end, void* dst, uint64_t dst_bytes) const;
  // Bytes copied out by read/read_slice so far (for load-memory measurements).
  uint64_t bytes_read() const { return *bytes_read_; }

 private:
  std::string path_;
  std::map<std::string, std::shared_ptr<SafetensorsFile>> files_;  // by file path
  std::map<std::string, std::shared_ptr<SafetensorsFile>> by_tensor_;
  std::shared_ptr<uint64_t> bytes_read_ = std::make_shared<uint64_t>(0);
};

struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // numel * dtype_size bytes
};

// Writes a .safetensors file atomically (temp file in the same folder + fsync + rename):
// either the old file or the complete new one exists, never a partial one. Tensors are laid
// out in name order; OutputError on failure.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace sc
