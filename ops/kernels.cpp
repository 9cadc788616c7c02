// Kernel selection and preparation (kernels.h). The ops themselves are called in model.cpp.
#include "ops/kernels.h"

#include <sstream>
#include <stdexcept>

#include "ops/fused_ops.h"

namespace sc {

bool sdpa_compiled() {
#if __has_include(<ATen/ops/scaled_dot_product_attention.h>)
  return true;
#else
  return false;
#endif
}

bool grouped_mm_compiled() {
#if __has_include(<ATen/ops/_grouped_mm.h>)
  return true;
#else
  return false;
#endif
}

bool fused_norm_compiled() {
#if __has_include(<ATen/ops/rms_norm.h>)
  return true;
#else
  return false;
#endif
}

bool fused_compiled() { return fused::compiled(); }
bool moe_gemm_compiled() { return fused::moe_gemm_compiled(); }

Kernels best_kernels(at::Device device, at::ScalarType dtype) {
  Kernels k;
  if (!device.is_cuda()) return k;
  k.sdpa = sdpa_compiled() && (dtype == at::kBFloat16 || dtype == at::kHalf || dtype == at::kFloat);
  k.grouped_experts = grouped_mm_compiled() && dtype == at::kBFloat16;
  k.fused_norm = fused_norm_compiled() && dtype == at::kBFloat16;
  k.fused = fused_compiled() && (dtype == at::kBFloat16 || dtype == at::kFloat);
  k.moe_gemm = k.fused && k.grouped_experts && moe_gemm_compiled() && fused::moe_gemm_usable(device);
  return k;
}

void require_kernels(const Kernels& k, at::Device device, at::ScalarType dtype) {
  const Kernels best = best_kernels(device, dtype);
  auto fail = [&](const char* name, const char* why) {
    std::ostringstream os;
    os << "kernel '" << name << "' is not available for " << c10::toString(dtype) << " on " << device.str()
       << ": " << why;
    throw std::invalid_argument(os.str());
  };
  if (k.sdpa && !best.sdpa)
    fail("sdpa", sdpa_compiled() ? "needs a CUDA device" : "this LibTorch has no scaled_dot_product_attention (torch >= 2.0)");
  if (k.grouped_experts && !best.grouped_experts)
    fail("grouped_experts", grouped_mm_compiled() ? "needs bfloat16 weights on a CUDA device"
                                                  : "this LibTorch has no _grouped_mm (torch >= 2.8)");
  if (k.fused_norm && !best.fused_norm)
    fail("fused_norm", fused_norm_compiled() ? "needs bfloat16 on a CUDA device" : "this LibTorch has no rms_norm (torch >= 2.4)");
  if (k.fused && !best.fused)
    fail("fused", fused_compiled() ? "needs bfloat16 or float on a CUDA device"
                                   : "this build has no CUDA kernels (needs nvcc and a CUDA LibTorch at configure time)");
  if (k.moe_gemm && !best.moe_gemm)
    fail("moe_gemm", !moe_gemm_compiled()
                         ? "this build has no Triton expert GEMMs (needs Triton importable by python3 at configure time)"
                     : !best.fused || !best.grouped_experts ? "needs bfloat16 on a CUDA device and _grouped_mm (torch >= 2.8)"
                                                            : "needs a compute capability 9.0 GPU (the cubins are sm_90a)");
  if (k.moe_gemm && !(k.fused && k.grouped_experts))
    throw std::invalid_argument("kernel 'moe_gemm' runs inside the fused grouped experts: add grouped_experts and fused");
}

std::string describe(const Kernels& k) {
  std::string s;
  auto add = [&](bool on, const char* n) {
    if (!on) return;
    if (!s.empty()) s += "+";
    s += n;
  };
  add(k.sdpa, "sdpa");
  add(k.grouped_experts, "grouped_experts");
  add(k.fused_norm, "fused_norm");
  add(k.fused, "fused");
  add(k.moe_gemm, "moe_gemm");
  return s.empty() ? "eager" : s;
}

Kernels parse_kernels(const std::string& s, at::Device device, at::ScalarType dtype) {
  if (s == "eager" || s.empty()) return {};
  if (s == "best") return best_kernels(device, dtype);
  if (s == "auto") return device.is_cuda() ? best_kernels(device, dtype) : Kernels{};
  Kernels k;
  std::string item;
  std::istringstream is(s);
  while (std::getline(is, item, s.find('+') != std::string::npos ? '+' : ',')) {
    if (item == "sdpa") k.sdpa = true;
    else if (item == "grouped_experts") k.grouped_experts = true;
    else if (item == "fused_norm") k.fused_norm = true;
    else if (item == "fused") k.fused = true;
    else if (item == "moe_gemm") k.moe_gemm = true;
    else
      throw std::invalid_argument("unknown kernel '" + item +
                                  "' (expected auto, eager, best, or a '+'-joined subset of sdpa, grouped_experts, fused_norm, "
                                  "fused, moe_gemm)");
  }
  require_kernels(k, device, dtype);
  return k;
}

}  // namespace sc
