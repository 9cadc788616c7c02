// Writing steering results: safetensors of per-layer vectors, a llama.cpp control vector (GGUF v3)
// and the evaluation as JSON / CSV. Every file is written atomically (temp file + rename).
//
// Layer numbering. Our layers are HF decoder-layer outputs, 0-based (hidden_states[L + 1]).
// llama.cpp adds control-vector tensor `direction.N` after its decoder layer N (0-based): its loader
// puts direction.N at offset (N - 1) * n_embd of a buffer whose layer il (il >= 1) reads offset
// (il - 1) * n_embd, and build_cvec(cur, il) runs at the end of layer il. So HF layer L is written as
// direction.L, and HF layer 0 (which llama.cpp never steers) is left out of the GGUF file.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "steering/evaluate.h"
#include "steering/extract.h"

#include "reports/steering_html.h"

namespace sc {

struct ExportInfo {
  std::string model;            // model name or checkpoint path (metadata / model_hint)
  std::string dataset_sha256;   // hex digest of the dataset file's bytes ("" = unknown)
  bool use_pca = false;         // write the PCA directions instead of the mean differences
};

// Hex SHA-256 of a byte string (self-contained, for dataset provenance).
std::string sha256_hex(const std::string& bytes);

// layers.{L}.direction F32 [H] per layer (and layers.{L}.pca when PCA was computed).
void write_vectors_safetensors(const std::string& path, const SteeringResult& r, const ExportInfo& info);

// llama.cpp's architecture name of an HF model_type ("qwen3_moe" -> "qwen3moe", "qwen3" -> "qwen3"):
// what llama.cpp compares controlvector.model_hint with when it loads a control vector.
std::string gguf_architecture(const std::string& hf_model_type);

// GGUF v3, general.architecture = "controlvector", controlvector.model_hint,
// controlvector.layer_count, tensors direction.{L} f32 [H] for every extracted layer L >= 1.
// Returns the number of direction tensors written.
int64_t write_control_vector_gguf(const std::string& path, const std::map<int64_t, at::Tensor>& vectors,
                                  const std::string& model_hint);

void write_eval_json(const std::string& path, const EvalResult& r, const ExportInfo& info);
void write_eval_csv(const std::string& path, const EvalResult& r);
// The evaluation as plain chart data (reports/steering_html.h) and as the HTML page with the SVG
// charts of slope and p(match) per layer.
SteeringChart steering_chart(const EvalResult& r, const ExportInfo& info);
void write_eval_html(const std::string& path, const EvalResult& r, const ExportInfo& info);

}  // namespace sc
