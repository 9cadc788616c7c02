#include "steering/export.h"

#include <array>
#include <cstring>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "models/atomic_file.h"
#include "models/safetensors.h"

namespace sc {

// ---- SHA-256 (FIPS 180-4), small and self-contained ----
std::string sha256_hex(const std::string& bytes) {
  static const uint32_t K[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
      0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
      0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
      0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
      0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
      0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
      0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  std::string msg = bytes;
  const uint64_t bit_len = uint64_t(bytes.size()) * 8;
  msg.push_back(char(0x80));
  while (msg.size() % 64 != 56) msg.push_back(0);
  for (int i = 7; i >= 0; --i) msg.push_back(char((bit_len >> (8 * i)) & 0xff));
  for (size_t off = 0; off < msg.size(); off += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const unsigned char*>(msg.data() + off + 4 * i);
      w[i] = uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
    }
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const uint32_t ch = (e & f) ^ (~e & g);
      const uint32_t t1 = hh + S1 + ch + K[i] + w[i];
      const uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
      const uint32_t t2 = S0 + mj;
      hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (uint32_t v : h)
    for (int i = 7; i >= 0; --i) out.push_back(hex[(v >> (4 * i)) & 0xf]);
  return out;
}

namespace {

std::vector<float> to_f32(const at::Tensor& t) {
  const at::Tensor f = t.to(at::kCPU, at::kFloat).contiguous().reshape({-1});
  return std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
}

// Little-endian GGUF byte writer.
struct GgufBytes {
  std::string b;
  template <typename T>
  void put(T v) {
    char raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));  // x86-64 / aarch64 are little-endian, as GGUF is
    b.append(raw, sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b += s;
  }
  void pad_to(size_t align) {
    while (b.size() % align) b.push_back(0);
  }
};

// GGUF value types and ggml tensor type used here.
constexpr uint32_t kGgufInt32 = 5, kGgufString = 8;
constexpr uint32_t kGgmlF32 = 0;
constexpr size_t kGgufAlignment = 32;  // general.alignment default

}  // namespace

void write_vectors_safetensors(const std::string& path, const SteeringResult& r, const ExportInfo& info) {
  std::vector<std::vector<float>> storage;  // keeps the data alive until written
  std::vector<std::pair<std::string, int64_t>> names;
  for (int64_t L : r.layers) {
    storage.push_back(to_f32(info.use_pca ? r.direction(L, true) : r.mean_diff.at(L)));
    names.emplace_back("layers." + std::to_string(L) + ".direction", int64_t(storage.back().size()));
    if (r.pca.count(L)) {
      storage.push_back(to_f32(r.pca.at(L)));
      names.emplace_back("layers." + std::to_string(L) + ".pca", int64_t(storage.back().size()));
    }
  }
  std::vector<TensorToWrite> t;
  for (size_t i = 0; i < names.size(); ++i) t.push_back({names[i].first, DType::F32, {names[i].second}, storage[i].data()});
  std::map<std::string, std::string> meta{
      {"model", info.model},
      {"dataset_sha256", info.dataset_sha256},
      {"layer_indexing", "HF decoder layer output, 0-based"},
      {"method", info.use_pca ? "pca (scaled by the mean difference's projection)" : "mean difference (positive - negative)"},
      {"num_examples", std::to_string(r.num_examples)},
  };
  write_safetensors(path, t, meta);
}

std::string gguf_architecture(const std::string& hf_model_type) {
  // llama.cpp's LLM_ARCH names (src/llama-arch.cpp) for the model types shardcheck reads.
  if (hf_model_type == "qwen3_moe") return "qwen3moe";
  if (hf_model_type == "qwen2_moe") return "qwen2moe";
  return hf_model_type;  // qwen3, qwen2, llama, ...: the same spelling
}

int64_t write_control_vector_gguf(const std::string& path, const std::map<int64_t, at::Tensor>& vectors,
                                  const std::string& model_hint) {
  std::vector<std::pair<int64_t, std::vector<float>>> dirs;
  for (const auto& [L, v] : vectors)
    if (L >= 1) dirs.emplace_back(L, to_f32(v));  // llama.cpp cannot steer HF layer 0 (see export.h)
  int64_t max_layer = 0;
  for (const auto& d : dirs) max_layer = std::max(max_layer, d.first);

  GgufBytes g;
  g.b = "GGUF";
  g.put<uint32_t>(3);                    // version
  g.put<uint64_t>(dirs.size());          // tensor count
  g.put<uint64_t>(3);                    // metadata key-value count
  g.str("general.architecture");
  g.put<uint32_t>(kGgufString);
  g.str("controlvector");
  g.str("controlvector.model_hint");
  g.put<uint32_t>(kGgufString);
  g.str(model_hint);
  g.str("controlvector.layer_count");   // highest direction index written (as cvector-generator's count)
  g.put<uint32_t>(kGgufInt32);
  g.put<int32_t>(int32_t(max_layer));
  // Tensor infos: name, n_dims, dims, type, offset into the (aligned) data section.
  uint64_t offset = 0;
  for (const auto& [L, v] : dirs) {
    g.str("direction." + std::to_string(L));
    g.put<uint32_t>(1);
    g.put<uint64_t>(v.size());
    g.put<uint32_t>(kGgmlF32);
    g.put<uint64_t>(offset);
    offset += (v.size() * sizeof(float) + kGgufAlignment - 1) / kGgufAlignment * kGgufAlignment;
  }
  g.pad_to(kGgufAlignment);
  for (const auto& [L, v] : dirs) {
    g.b.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
    g.pad_to(kGgufAlignment);
  }
  write_file_atomic(path, g.b);
  return int64_t(dirs.size());
}

void write_eval_json(const std::string& path, const EvalResult& r, const ExportInfo& info) {
  nlohmann::json j = r;
  j["schema"] = "shardcheck.steer-eval/1";  // docs/json-schemas.md
  j["model"] = info.model;
  j["dataset_sha256"] = info.dataset_sha256;
  write_file_atomic(path, j.dump(2) + "\n");
}

void write_eval_csv(const std::string& path, const EvalResult& r) { write_file_atomic(path, eval_csv(r)); }

SteeringChart steering_chart(const EvalResult& r, const ExportInfo& info) {
  SteeringChart c;
  c.title = "Steering evaluation: " + (info.model.empty() ? std::string("model") : info.model);
  c.best_layer = r.best_layer;
  for (const LayerEval& e : r.layers) {
    if (c.multipliers.empty()) c.multipliers = e.multipliers;
    c.layers.push_back({e.layer, e.slope, e.logit_diff, e.p_match});
  }
  std::ostringstream n;
  n << r.num_examples << " examples, " << r.layers.size() << " layers x " << c.multipliers.size() << " multipliers; "
    << (r.cached ? "cached sweep (prefix KV computed once)" : "naive sweep (full forwards)");
  if (r.cached && r.work_ratio() > 0) n << ", " << std::setprecision(3) << r.work_ratio() << "x less work than full forwards";
  if (!info.dataset_sha256.empty()) n << "; dataset sha256 " << info.dataset_sha256.substr(0, 12);
  c.notes = n.str();
  return c;
}

void write_eval_html(const std::string& path, const EvalResult& r, const ExportInfo& info) {
  write_file_atomic(path, render_steering_html(steering_chart(r, info)));
}

}  // namespace sc
