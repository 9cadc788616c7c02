// Test helpers shared by the LibTorch tests: reading golden tensors and the NMSE metric.
#pragma once
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <ftw.h>

#include <cstdio>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "families/decoder/weights.h"
#include "models/safetensors.h"

namespace sc::testutil {

// A checkpoint tensor as a CPU tensor of its own dtype (integers included).
inline at::Tensor read_tensor(const Checkpoint& ck, const std::string& name) {
  const TensorInfo& ti = ck.info(name);
  at::ScalarType st = at::kFloat;
  switch (ti.dtype) {
    case DType::I64: st = at::kLong; break;
    case DType::I32: st = at::kInt; break;
    default: st = to_scalar_type(ti.dtype); break;
  }
  at::Tensor t = at::empty(ti.shape, st);
  ck.read(name, t.data_ptr(), ti.nbytes());
  return t;
}

// sum((a - ref)^2) / sum(ref^2) in fp64 on the CPU (a is reshaped to ref's shape).
inline double nmse(const at::Tensor& a, const at::Tensor& ref) {
  const at::Tensor x = a.to(at::kCPU, at::kDouble).reshape(ref.sizes()), r = ref.to(at::kCPU, at::kDouble);
  const double den = r.pow(2).sum().item<double>();
  return (x - r).pow(2).sum().item<double>() / (den > 0 ? den : 1.0);
}

// Fixture models with HF goldens (fixtures/models/<name>/golden.safetensors), sorted.
inline std::vector<std::string> golden_models(const std::filesystem::path& models_dir) {
  std::vector<std::string> v;
  if (!std::filesystem::exists(models_dir)) return v;
  for (const auto& e : std::filesystem::directory_iterator(models_dir))
    if (std::filesystem::exists(e.path() / "golden.safetensors") && std::filesystem::exists(e.path() / "config.json"))
      v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

// A parameterised test's name from its string parameter ("moe-tiny" -> "moe_tiny").
inline std::string param_name(const ::testing::TestParamInfo<std::string>& i) {
  std::string s = i.param;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

// Removes a file or directory tree, ignoring errors. Not std::filesystem::remove_all: the pip
// LibTorch 2.x libtorch.so exports its own copy of that symbol, which the dynamic linker binds
// for us and which crashes (null call) in remove_all(path, error_code&).
inline void remove_tree(const std::filesystem::path& p) {
  nftw(
      p.c_str(), [](const char* f, const struct stat*, int, struct FTW*) { std::remove(f);
        return 0; }, 16,
      FTW_DEPTH | FTW_PHYS);
}

// Writes named CPU tensors (floating, int64 or int32, as read_tensor reads them) to a .safetensors file.
inline void write_tensors(const std::string& path, std::vector<std::pair<std::string, at::Tensor>> tensors) {
  std::vector<TensorToWrite> out;
  for (auto& kv : tensors) {
    kv.second = kv.second.contiguous();
    const at::ScalarType st = kv.second.scalar_type();
    const DType dt = st == at::kLong ? DType::I64 : st == at::kInt ? DType::I32 : from_scalar_type(st);
    out.push_back(TensorToWrite{kv.first, dt, kv.second.sizes().vec(), kv.second.data_ptr()});
  }
  write_safetensors(path, out);
}

}  // namespace sc::testutil
