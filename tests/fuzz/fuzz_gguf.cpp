// GGUF reader (models/gguf.h), as used on exported control vectors: any bytes give a GgufFile or a
// CheckpointError; every tensor of a parsed file lies inside it and converts without reading past it.
#include <string>

#include "models/gguf.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sc::fuzz::expect_input_error("gguf", [&] {
    const sc::GgufFile g = sc::GgufFile::parse(std::string(reinterpret_cast<const char*>(data), size), "x.gguf");
    sc::fuzz::check(g.keys().size() * 13 <= size, "more keys than bytes");
    for (const auto& k : g.keys()) sc::fuzz::check(g.find(k) != nullptr, "key not found: " + k);
    for (const sc::GgufTensor& t : g.tensors()) {
      sc::fuzz::check(g.tensor(t.name) == &t || g.tensor(t.name) != nullptr, "tensor not found");
      sc::fuzz::check(g.data_offset() + t.offset + t.nbytes <= size, "tensor data past end of input");
      const uint8_t* p = g.data(t);
      volatile uint8_t sink = 0;
      for (uint64_t i = 0; i < t.nbytes; i += 64) sink = sink + p[i];
      if (t.nbytes) sink = sink + p[t.nbytes - 1];
      if (t.ggml_type == 0 || t.ggml_type == 1 || t.ggml_type == 30)
        sc::fuzz::check(int64_t(g.tensor_f32(t.name).size()) == t.numel(), "tensor_f32 size");
    }
  });
  return 0;
}
