// Loads the ahead-of-time compiled Triton expert GEMMs (moe_gemm.h) into the current CUDA context
// and launches them with the parameter layout Triton's own launcher uses (checked when generated).
#include "ops/cuda/moe_gemm.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sc::cuda {
namespace {

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw std::runtime_error("moe_gemm " + where + ": " + what);
}

// The driver functions, found through the runtime (cudaGetDriverEntryPointByVersion, ABI of CUDA
// 12.0) rather than linked: binaries of this build still start where no driver is installed.
struct Driver {
  PFN_cuGetErrorString_v6000 getErrorString;
  PFN_cuCtxGetCurrent_v4000 ctxGetCurrent;
  PFN_cuCtxGetDevice_v2000 ctxGetDevice;
  PFN_cuDeviceGetAttribute_v2000 deviceGetAttribute;
  PFN_cuModuleLoadData_v2000 moduleLoadData;
  PFN_cuModuleGetFunction_v2000 moduleGetFunction;
  PFN_cuFuncSetCacheConfig_v3000 funcSetCacheConfig;
  PFN_cuFuncGetAttribute_v2020 funcGetAttribute;
  PFN_cuFuncSetAttribute_v9000 funcSetAttribute;
  PFN_cuTensorMapEncodeTiled_v12000 tensorMapEncodeTiled;
  PFN_cuLaunchKernel_v4000 launchKernel;
};

template <class F>
void entry(const char* name, F& fn) {
  void* p = nullptr;
  cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
  const cudaError_t e = cudaGetDriverEntryPointByVersion(name, &p, 12000, cudaEnableDefault, &q);
  if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || !p)
    fail("driver", std::string("no ") + name + " in the CUDA driver (" + cudaGetErrorString(e) + ")");
  fn = reinterpret_cast<F>(p);
}

const Driver& driver() {
  static const Driver d = [] {
    Driver v{};
    entry("cuGetErrorString", v.getErrorString);
    entry("cuCtxGetCurrent", v.ctxGetCurrent);
    entry("cuCtxGetDevice", v.ctxGetDevice);
    entry("cuDeviceGetAttribute", v.deviceGetAttribute);
    entry("cuModuleLoadData", v.moduleLoadData);
    entry("cuModuleGetFunction", v.moduleGetFunction);
    entry("cuFuncSetCacheConfig", v.funcSetCacheConfig);
    entry("cuFuncGetAttribute", v.funcGetAttribute);
    entry("cuFuncSetAttribute", v.funcSetAttribute);
    entry("cuTensorMapEncodeTiled", v.tensorMapEncodeTiled);
    entry("cuLaunchKernel", v.launchKernel);
    return v;
  }();
  return d;
}

void check(CUresult r, const std::string& where, const char* call) {
  if (r == CUDA_SUCCESS) return;
  const char* s = nullptr;
  driver().getErrorString(r, &s);
  fail(where, std::string(call) + " failed: " + (s ? s : "unknown error") + " (" + std::to_string(int(r)) + ")");
}

const MoeGemmImage& image(const char* variant) {
  for (int i = 0; i < kNumMoeGemmImages; ++i)
    if (std::string(kMoeGemmImages[i].variant) == variant) return kMoeGemmImages[i];
  fail(variant, "not among the compiled kernels");
}

// The kernel in the current context, loaded on first use: one module per (context, variant), as
// every variant is its own cubin (with the same entry name).
CUfunction function(const MoeGemmImage& im) {
  static std::mutex mu;
  static std::map<std::pair<CUcontext, std::string>, CUfunction> loaded;
  CUcontext ctx = nullptr;
  check(driver().ctxGetCurrent(&ctx), im.variant, "cuCtxGetCurrent");
  if (!ctx) fail(im.variant, "no current CUDA context");
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(ctx, std::string(im.variant));
  auto it = loaded.find(key);
  if (it != loaded.end()) return it->second;
  CUmodule module = nullptr;
  check(driver().moduleLoadData(&module, im.cubin), im.variant, "cuModuleLoadData");
  CUfunction f = nullptr;
  check(driver().moduleGetFunction(&f, module, im.kernel), im.variant, "cuModuleGetFunction");
  if (im.shared > 48 * 1024) {  // as Triton's loader: opt in to the device's shared memory
    CUdevice dev;
    check(driver().ctxGetDevice(&dev), im.variant, "cuCtxGetDevice");
    int optin = 0, static_shared = 0;
    check(driver().deviceGetAttribute(&optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev), im.variant,
          "cuDeviceGetAttribute");
    if (optin < im.shared)
      fail(im.variant, "needs " + std::to_string(im.shared) + " B of shared memory, the device has " +
                           std::to_string(optin));
    check(driver().funcSetCacheConfig(f, CU_FUNC_CACHE_PREFER_SHARED), im.variant, "cuFuncSetCacheConfig");
    check(driver().funcGetAttribute(&static_shared, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, f), im.variant, "cuFuncGetAttribute");
    check(driver().funcSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, optin - static_shared), im.variant,
          "cuFuncSetAttribute");
  }
  loaded[key] = f;
  return f;
}

// A row-major [rows, cols] bf16 matrix as a TMA descriptor with the box and swizzle Triton chose.
struct Desc {
  CUtensorMap map;
  int32_t rows, cols;
  int64_t row_stride, col_stride;
};

Desc describe(const MoeGemmTma& t, const void* base, int64_t rows, int64_t cols, const std::string& where) {
  if (t.elem_size != 2) fail(where, "descriptor element size " + std::to_string(t.elem_size) + " is not bf16's");
  if (rows <= 0 || cols <= 0 || rows > INT32_MAX || cols > INT32_MAX)
    fail(where, "a [" + std::to_string(rows) + ", " + std::to_string(cols) + "] operand is outside the TMA range");
  if (reinterpret_cast<uintptr_t>(base) % 16 != 0) fail(where, "an operand is not 16-byte aligned");
  Desc d{};
  d.rows = int32_t(rows);
  d.cols = int32_t(cols);
  d.row_stride = cols;
  d.col_stride = 1;
  const cuuint64_t dims[2] = {cuuint64_t(cols), cuuint64_t(rows)};
  const cuuint64_t strides[1] = {cuuint64_t(cols) * 2};
  const cuuint32_t box[2] = {cuuint32_t(t.box[1]), cuuint32_t(t.box[0])};
  const cuuint32_t elem_strides[2] = {1, 1};
  check(driver().tensorMapEncodeTiled(&d.map, CUtensorMapDataType(t.elem_type), 2, const_cast<void*>(base), dims, strides, box,
                               elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CUtensorMapSwizzle(t.swizzle),
                               CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
        where, "cuTensorMapEncodeTiled");
  return d;
}

// Kernel parameters in Triton's launch order; `kinds` records what was pushed, compared with the image's.
class Params {
 public:
  // Copied: the arguments point into this object, not at the caller's descriptors.
  void desc(const Desc& src) {
    if (n_desc_ == kMaxDescs) fail("launch", "more than " + std::to_string(kMaxDescs) + " descriptors");
    Desc& d = descs_[n_desc_++] = src;
    ptrs_.push_back(&d.map);
    ptrs_.push_back(&d.rows);
    ptrs_.push_back(&d.cols);
    ptrs_.push_back(&d.row_stride);
    ptrs_.push_back(&d.col_stride);
    kinds_ += kinds_.empty() ? "T,i32,i32,i64,i64" : ",T,i32,i32,i64,i64";
  }
  void ptr(const void* p) {
    vals_.push_back(reinterpret_cast<uintptr_t>(p));
    add("p");
  }
  void i32(int64_t v, const std::string& where, const char* name) {
    if (v < INT32_MIN || v > INT32_MAX) fail(where, std::string(name) + " = " + std::to_string(v) + " exceeds int32");
    vals_.push_back(uint64_t(uint32_t(int32_t(v))));
    add("i32");
  }
  // Null scratch pointers at the end, then the argument array (valid while this object lives).
  void** finish(const MoeGemmImage& im) {
    std::string expect = im.params;
    size_t n_null = 0;
    while (expect.size() >= 2 && expect.compare(expect.size() - 2, 2, ",0") == 0) {
      expect.resize(expect.size() - 2);
      ++n_null;
    }
    if (expect != kinds_)
      fail(im.variant, std::string("the compiled kernel takes ") + im.params + ", the launcher passes " + kinds_);
    for (size_t i = 0; i < n_null; ++i) vals_.push_back(0);
    // vals_ is complete (it no longer grows): point at its elements and at the descriptors' fields.
    args_.clear();
    size_t di = 0, v = 0;
    const std::vector<std::string> ks = split(im.params);
    for (size_t i = 0; i < ks.size();) {
      if (ks[i] == "T") {
        for (int j = 0; j < 5; ++j) args_.push_back(const_cast<void*>(ptrs_[di++]));
        i += 5;
      } else {
        args_.push_back(&vals_[v++]);
        ++i;
      }
    }
    return args_.data();
  }

 private:
  static std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    size_t a = 0;
    while (a <= s.size()) {
      const size_t b = s.find(',', a);
      out.push_back(s.substr(a, b == std::string::npos ? std::string::npos : b - a));
      if (b == std::string::npos) break;
      a = b + 1;
    }
    return out;
  }
  void add(const char* k) {
    if (!kinds_.empty()) kinds_ += ",";
    kinds_ += k;
  }
  static constexpr int kMaxDescs = 3;
  Desc descs_[kMaxDescs];
  int n_desc_ = 0;
  std::vector<const void*> ptrs_;
  std::vector<uint64_t> vals_;
  std::vector<void*> args_;
  std::string kinds_;
};

int sm_count() {
  int dev = 0, n = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
  return n > 0 ? n : 1;
}

// One program per SM (`programs`, also the kernel's loop stride).
void launch(const MoeGemmImage& im, Params& p, int programs, void* stream) {
  CUfunction f = function(im);
  void** args = p.finish(im);
  check(driver().launchKernel(f, unsigned(programs), 1, 1, unsigned(32 * im.num_warps), 1, 1, unsigned(im.shared),
                       static_cast<CUstream>(stream), args, nullptr),
        im.variant, "cuLaunchKernel");
}

}  // namespace

bool moe_gemm_usable(int dev) {
  int major = 0, minor = 0;
  if (dev < 0 && cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  return major == 9 && minor == 0;
}

int moe_gemm_block_m() { return image("gemm").block_m; }

bool moe_gemm_fits(int64_t H, int64_t I) {
  const MoeGemmImage& g = image("gemm");
  return (2 * I) % g.block_n == 0 && H % g.block_n == 0 && H % g.block_k == 0 && I % g.block_k == 0 && H % 16 == 0 &&
         I % 16 == 0;
}

namespace {

// out [rows, N] = A [rows, K] B^T over the tiles, B [El * b_rows_per_expert, K] (moe_gemm.py's
// arguments, in its order).
struct Gemm {
  const void* a;
  const void* b;
  int64_t rows, K, b_rows;
  void* out;
  const int32_t *tiles, *n_tiles;
  int64_t N, b_rows_per_expert;
};

void run(const Gemm& g, int64_t H, int64_t I, void* stream) {
  const MoeGemmImage& im = image("gemm");
  const std::string w = im.variant;
  static const char* kArgs = "a_desc,b_desc,c_desc,tiles_ptr,n_tiles_ptr,N,b_rows_per_expert,K,programs";
  if (std::string(im.args) != kArgs) fail(w, std::string("the kernel takes ") + im.args + ", the launcher passes " + kArgs);
  if (!moe_gemm_fits(H, I)) fail(w, "H = " + std::to_string(H) + ", I = " + std::to_string(I) + " do not fit the tiles");
  Params p;
  p.desc(describe(im.tma[0], g.a, g.rows, g.K, w + " A"));
  p.desc(describe(im.tma[1], g.b, g.b_rows, g.K, w + " B"));
  p.desc(describe(im.tma[2], g.out, g.rows, g.N, w + " out"));
  p.ptr(g.tiles);
  p.ptr(g.n_tiles);
  p.i32(g.N, w, "N");
  p.i32(g.b_rows_per_expert, w, "b_rows_per_expert");
  p.i32(g.K, w, "K");
  const int programs = sm_count();
  p.i32(programs, w, "programs");
  launch(im, p, programs, stream);
}

}  // namespace

void moe_gemm_gate_up(const void* xs, int64_t rows, int64_t H, const void* gate_up, int64_t El, int64_t I,
                      const int32_t* tiles, const int32_t* n_tiles, void* gu, void* stream) {
  run(Gemm{xs, gate_up, rows, H, El * 2 * I, gu, tiles, n_tiles, 2 * I, 2 * I}, H, I, stream);
}

void moe_gemm_down(const void* hidden, int64_t rows, int64_t I, const void* down, int64_t El, int64_t H,
                   const int32_t* tiles, const int32_t* n_tiles, void* y, void* stream) {
  run(Gemm{hidden, down, rows, I, El * H, y, tiles, n_tiles, H, H}, H, I, stream);
}

}  // namespace sc::cuda
