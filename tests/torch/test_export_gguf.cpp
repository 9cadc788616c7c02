// The control-vector export (steering/export.cpp) read back with the torch-free GGUF reader
// (models/gguf.h), which enforces llama.cpp's layout rules (tensors in order, each padded to the
// alignment, data inside the file).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>

#include <torch/torch.h>

#include "models/gguf.h"
#include "steering/export.h"

TEST(ExportGguf, ControlVectorReadsBackExactly) {
  const int64_t H = 7;  // 28 bytes per vector: padding between tensors is exercised
  std::map<int64_t, at::Tensor> vecs;
  for (int64_t L = 0; L < 5; ++L) vecs[L] = (at::arange(H, at::kDouble) - 3.0) * (L + 0.5);
  const std::string path = ::testing::TempDir() + "/sc-export-" + std::to_string(::getpid()) + ".gguf";
  ASSERT_EQ(sc::write_control_vector_gguf(path, vecs, "moe-tiny"), 4);
  const sc::GgufFile g = sc::GgufFile::read(path);
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_EQ(g.data_offset() % 32, 0u);
  EXPECT_EQ(g.find("general.architecture")->s, "controlvector");
  EXPECT_EQ(g.find("controlvector.model_hint")->s, "moe-tiny");
  EXPECT_EQ(g.find("controlvector.layer_count")->type, sc::GgufType::I32);
  EXPECT_EQ(g.find("controlvector.layer_count")->i, 4);
  ASSERT_EQ(g.tensors().size(), 4u);
  for (int64_t L = 1; L < 5; ++L) {
    const sc::GgufTensor* t = g.tensor("direction." + std::to_string(L));
    ASSERT_NE(t, nullptr) << L;
    EXPECT_EQ(t->dims, std::vector<int64_t>{H});
    EXPECT_EQ(t->offset, uint64_t(L - 1) * 32);
    const std::vector<float> v = g.tensor_f32(t->name);
    for (int64_t i = 0; i < H; ++i) EXPECT_EQ(v[size_t(i)], float((double(i) - 3.0) * (double(L) + 0.5))) << L << " " << i;
  }
  EXPECT_EQ(g.tensor("direction.0"), nullptr);  // HF layer 0 is not steerable in llama.cpp
  std::remove(path.c_str());
}
