// Element types as safetensors and HF config.json name them (torch-free).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace sc {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2 };

// Bytes per element.
int64_t dtype_size(DType d);
// safetensors spelling: "F32", "BF16", ...
const char* dtype_st_name(DType d);
std::optional<DType> dtype_from_st_name(const std::string& s);
// HF / torch spelling: "float32", "bfloat16", ... (also accepts "fp32", "bf16", "f32", "float", "half").
const char* dtype_torch_name(DType d);
std::optional<DType> dtype_from_torch_name(const std::string& s);
bool dtype_is_float(DType d);

}  // namespace sc
