#include "models/dtype.h"

#include <algorithm>
#include <cctype>

namespace sc {

namespace {
struct Row { DType d; int64_t size; const char* st; const char* torch; };
constexpr Row kRows[] = {
    {DType::F64, 8, "F64", "float64"},   {DType::F32, 4, "F32", "float32"},
    {DType::F16, 2, "F16", "float16"},   {DType::BF16, 2, "BF16", "bfloat16"},
    {DType::I64, 8, "I64", "int64"},     {DType::I32, 4, "I32", "int32"},
    {DType::I16, 2, "I16", "int16"},     {DType::I8, 1, "I8", "int8"},
    {DType::U8, 1, "U8", "uint8"},       {DType::BOOL, 1, "BOOL", "bool"},
    {DType::F8_E4M3, 1, "F8_E4M3", "float8_e4m3fn"}, {DType::F8_E5M2, 1, "F8_E5M2", "float8_e5m2"},
};
const Row& row(DType d) {
  for (const auto& r : kRows)
    if (r.d == d) return r;
  return kRows[1];
}
}  // namespace

int64_t dtype_size(DType d) { return row(d).size; }
const char* dtype_st_name(DType d) { return row(d).st; }
const char* dtype_torch_name(DType d) { return row(d).torch; }

std::optional<DType> dtype_from_st_name(const std::string& s) {
  for (const auto& r : kRows)
    if (s == r.st) return r.d;
  return std::nullopt;
}

std::optional<DType> dtype_from_torch_name(const std::string& in) {
  std::string s = in;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s.rfind("torch.", 0) == 0) s = s.substr(6);
  for (const auto& r : kRows)
    if (s == r.torch) return r.d;
  if (s == "fp64" || s == "f64" || s == "double") return DType::F64;
  if (s == "fp32" || s == "f32" || s == "float") return DType::F32;
  if (s == "fp16" || s == "f16" || s == "half") return DType::F16;
  if (s == "bf16") return DType::BF16;
  return std::nullopt;
}

bool dtype_is_float(DType d) {
  switch (d) {
    case DType::F64: case DType::F32: case DType::F16: case DType::BF16:
    case DType::F8_E4M3: case DType::F8_E5M2: return true;
    default: return false;
  }
}

}  // namespace sc
