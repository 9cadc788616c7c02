// safetensors reader (models/safetensors.h): any file gives a validated SafetensorsFile or a
// CheckpointError; every tensor of an accepted file reads whole and in slices along every dim
// without touching bytes outside the mapping (ASan checks the copies).
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "models/safetensors.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The reader maps a file by path: hand it an in-memory file.
  const int fd = memfd_create("fuzz.safetensors", MFD_CLOEXEC);
  if (fd < 0) sc::fuzz::fail("memfd_create");
  for (size_t off = 0; off < size;) {
    const ssize_t n = ::write(fd, data + off, size - off);
    if (n <= 0) sc::fuzz::fail("write to memfd");
    off += size_t(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  sc::fuzz::expect_input_error("safetensors", [&] {
    const sc::SafetensorsFile f(path);
    const sc::Checkpoint ck = sc::Checkpoint::open(path);
    sc::fuzz::check(ck.names().size() == f.tensors().size(), "checkpoint and file disagree on tensors");
    uint64_t total = 0;
    for (const auto& [name, t] : f.tensors()) {
      total += t.nbytes();
      sc::fuzz::check(t.numel() * sc::dtype_size(t.dtype) == int64_t(t.nbytes()), "numel x size != nbytes for " + name);
      std::vector<uint8_t> buf(t.nbytes());
      ck.read(name, buf.data(), buf.size());
      for (int dim = 0; dim < int(t.shape.size()); ++dim) {
        const int64_t extent = t.shape[size_t(dim)];
        for (auto [b, e] : {std::pair<int64_t, int64_t>{0, extent}, {extent / 2, extent}, {extent / 3, extent / 2}}) {
          const uint64_t bytes = extent ? t.nbytes() / uint64_t(extent) * uint64_t(e - b) : 0;
          std::vector<uint8_t> part(bytes);
          ck.read_slice(name, dim, b, e, part.data(), part.size());
          if (b == 0 && e == extent) sc::fuzz::check(part == buf, "whole slice != read for " + name);
        }
      }
    }
    sc::fuzz::check(total + 8 <= size, "tensors larger than the file");
  });
  ::close(fd);
  return 0;
}
