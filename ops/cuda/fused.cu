// Fused CUDA kernels of the fast path; contracts in fused.h.
#include "ops/cuda/fused.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

namespace sc::cuda {
namespace {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(bf16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float v) { return __float2bfloat16_rn(v); }

// The widest word that tiles B bytes (B a multiple of 4): uint4, uint2 or uint32_t.
template <int B>
using Word = typename std::conditional<B % 16 == 0, uint4,
                                       typename std::conditional<B % 8 == 0, uint2, uint32_t>::type>::type;

// V consecutive elements of T (V * sizeof(T) a multiple of 4 bytes, the pointer aligned to it),
// moved as whole words and converted to / from fp32.
template <typename T, int V> __device__ __forceinline__ void load_n(const T* p, float* out) {
  constexpr int B = V * int(sizeof(T));
  static_assert(B % 4 == 0, "whole 32-bit words");
  using W = Word<B>;
  W raw[B / int(sizeof(W))];
#pragma unroll
  for (int k = 0; k < B / int(sizeof(W)); ++k) raw[k] = reinterpret_cast<const W*>(p)[k];
  const T* e = reinterpret_cast<const T*>(raw);
#pragma unroll
  for (int i = 0; i < V; ++i) out[i] = to_f(e[i]);
}

template <typename T, int V> __device__ __forceinline__ void store_n(T* p, const float* in) {
  constexpr int B = V * int(sizeof(T));
  static_assert(B % 4 == 0, "whole 32-bit words");
  using W = Word<B>;
  W raw[B / int(sizeof(W))];
  T* e = reinterpret_cast<T*>(raw);
#pragma unroll
  for (int i = 0; i < V; ++i) e[i] = from_f<T>(in[i]);
#pragma unroll
  for (int k = 0; k < B / int(sizeof(W)); ++k) reinterpret_cast<W*>(p)[k] = raw[k];
}

// V elements of T in one 16-byte access.
template <typename T> struct Pack {
  static constexpr int V = 16 / sizeof(T);
  __device__ __forceinline__ static void load(const T* p, float* out) { load_n<T, V>(p, out); }
  __device__ __forceinline__ static void store(T* p, const float* in) { store_n<T, V>(p, in); }
};

// v rounded up to a multiple of m (the first row of an expert in sort_pairs' layout with pad m).
template <typename I>
__host__ __device__ __forceinline__ I round_up(I v, I m) {
  return (v + m - 1) / m * m;
}

// Sum over aligned groups of L lanes (L a power of two <= 32; the whole warp by default).
template <int L = 32>
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = L / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
__device__ float block_sum(float v) {
  __shared__ float part[32];
  __shared__ float total;
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < int(blockDim.x >> 5) ? part[lane] : 0.f;
    s = warp_sum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

int launch_status() { return int(cudaGetLastError()); }

// ---- q/k RMSNorm + RoPE, one warp per (token, head) ----------------------------------------
constexpr int kMaxHalf = 512 / 32;  // D / 2 values per lane for D <= 1024

// ---- counter-hash random values (random_fill) ---------------------------------------------
__global__ void random_fill_kernel(float* out, int64_t n, int64_t mid, int64_t inner, int64_t extent, int64_t begin,
                                   uint64_t key, float scale, float offset) {
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = j / inner, i = j % inner;
    const uint64_t index = uint64_t(((r / mid) * extent + begin + r % mid) * inner + i);
    uint64_t x = key + index * 0x9e3779b97f4a7c15ULL + 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x = x ^ (x >> 31);
    const float u = __fmul_rn(float(int64_t(x >> 40) - (int64_t(1) << 23)), 1.0f / float(1 << 23));
    out[j] = __fadd_rn(offset, __fmul_rn(scale, u));  // no FMA: the host rounds the product, then the sum
  }
}

template <typename T>
__global__ void head_norm_rope_kernel(T* x, int64_t T_, int64_t S, int64_t row_stride, int heads, int D,
                                      const T* weight, const T* cos, const T* sin, int64_t cos_batches, float eps) {
  const int64_t wid = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (wid >= T_ * heads) return;
  const int64_t t = wid / heads;
  const int head = int(wid % heads);
  T* h = x + t * row_stride + int64_t(head) * D;
  const int half = D / 2;
  const int64_t b = t / S, s = t % S;
  const int64_t crow = ((cos_batches == 1 ? 0 : b) * S + s) * D;
  float lo[kMaxHalf], hi[kMaxHalf];
  float ss = 0.f;
  int n = 0;
  for (int j = lane; j < half; j += 32, ++n) {
    lo[n] = to_f(h[j]);
    hi[n] = to_f(h[j + half]);
    ss += lo[n] * lo[n] + hi[n] * hi[n];
  }
  const float r = rsqrtf(warp_sum(ss) / float(D) + eps);
  n = 0;
  for (int j = lane; j < half; j += 32, ++n) {
    const float a = lo[n] * r * to_f(weight[j]);
    const float c = hi[n] * r * to_f(weight[j + half]);
    // rotate_half(x) = [-x2, x1]: out1 = x1 cos1 - x2 sin1, out2 = x2 cos2 + x1 sin2.
    h[j] = from_f<T>(a * to_f(cos[crow + j]) - c * to_f(sin[crow + j]));
    h[j + half] = from_f<T>(c * to_f(cos[crow + j + half]) + a * to_f(sin[crow + j + half]));
  }
}

// The same with D = L V for L lanes per head (L = 8, 16 or 32; 32 / L heads per warp): lane l of
// a head holds elements [l V, l V + V); its rotary partner (j + D/2) is in lane l ^ (L/2). One
// vector access per lane for x, weight, cos and sin (16 bytes where the widths allow).
template <typename T, int V, int L>
__global__ void head_norm_rope_vec_kernel(T* x, int64_t T_, int64_t S, int64_t row_stride, int heads,
                                          const T* weight, const T* cos, const T* sin, int64_t cos_batches,
                                          float eps) {
  static_assert(L == 8 || L == 16 || L == 32, "lanes per head divide a warp");
  constexpr int D = L * V;
  const int64_t gid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t unit = gid / L;  // (token, head); the shuffles below need every lane, so lanes past
  const int lane = int(gid % L);  // the last unit compute on unit 0 and store nothing
  const bool active = unit < T_ * heads;
  const int64_t u = active ? unit : 0;
  const int64_t t = u / heads;
  const int head = int(u % heads);
  T* h = x + t * row_stride + int64_t(head) * D + lane * V;
  const int64_t b = t / S, s = t % S;
  const int64_t crow = ((cos_batches == 1 ? 0 : b) * S + s) * D + lane * V;
  float v[V], w[V], c[V], sn[V];
  load_n<T, V>(h, v);
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < V; ++i) ss += v[i] * v[i];
  const float r = rsqrtf(warp_sum<L>(ss) / float(D) + eps);
  load_n<T, V>(weight + lane * V, w);
  load_n<T, V>(cos + crow, c);
  load_n<T, V>(sin + crow, sn);
  const float sign = lane < L / 2 ? -1.f : 1.f;  // first half: x1 cos - x2 sin; second: x2 cos + x1 sin
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const float a = v[i] * r * w[i];
    const float other = __shfl_xor_sync(0xffffffffu, a, L / 2);
    v[i] = a * c[i] + sign * other * sn[i];
  }
  if (active) store_n<T, V>(h, v);
}

// ---- residual add + RMSNorm, one block per row ------------------------------------------------
template <typename T, bool kVec>
__global__ void add_rms_norm_kernel(const T* a, const T* b, const T* w, T* h, T* n, int64_t H, float eps) {
  const int64_t row = blockIdx.x;
  const T* ar = a + row * H;
  const T* br = b + row * H;
  T* hr = h + row * H;
  T* nr = n + row * H;
  float ss = 0.f;
  if constexpr (kVec) {
    constexpr int V = Pack<T>::V;
    for (int64_t i = int64_t(threadIdx.x) * V; i < H; i += int64_t(blockDim.x) * V) {
      float av[V], bv[V];
      Pack<T>::load(ar + i, av);
      Pack<T>::load(br + i, bv);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        av[j] = to_f(from_f<T>(av[j] + bv[j]));  // h as stored
        ss += av[j] * av[j];
      }
      Pack<T>::store(hr + i, av);
    }
  } else {
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
      const float v = to_f(from_f<T>(to_f(ar[i]) + to_f(br[i])));
      hr[i] = from_f<T>(v);
      ss += v * v;
    }
  }
  const float r = rsqrtf(block_sum(ss) / float(H) + eps);
  if constexpr (kVec) {
    constexpr int V = Pack<T>::V;
    for (int64_t i = int64_t(threadIdx.x) * V; i < H; i += int64_t(blockDim.x) * V) {
      float hv[V], wv[V];
      Pack<T>::load(hr + i, hv);  // this thread's own store, still in L1 / L2
      Pack<T>::load(w + i, wv);
#pragma unroll
      for (int j = 0; j < V; ++j) hv[j] = hv[j] * r * wv[j];
      Pack<T>::store(nr + i, hv);
    }
  } else {
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) nr[i] = from_f<T>(to_f(hr[i]) * r * to_f(w[i]));
  }
}

// ---- router softmax + top-k, one warp per token ----------------------------------------------
constexpr int kMaxExpertsPerLane = 1024 / 32;

template <typename T>
__global__ void route_topk_kernel(const T* logits, int64_t T_, int E, int K, bool norm, int64_t* ids, T* weights) {
  const int64_t t = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (t >= T_) return;
  const T* l = logits + t * E;
  float p[kMaxExpertsPerLane];
  float mx = -INFINITY;
  int n = 0;
  for (int e = lane; e < E; e += 32, ++n) {
    p[n] = to_f(l[e]);
    mx = fmaxf(mx, p[n]);
  }
  mx = warp_max(mx);
  float sum = 0.f;
  for (int i = 0; i < n; ++i) {
    p[i] = expf(p[i] - mx);
    sum += p[i];
  }
  sum = warp_sum(sum);
  for (int i = 0; i < n; ++i) p[i] /= sum;
  float picked = 0.f;  // the chosen weights' sum (the same in every lane)
  float my_w = 0.f;    // lane k keeps the k-th choice (K <= 32)
  int my_id = 0;
  for (int k = 0; k < K; ++k) {
    float best = -1.f;
    int best_id = 0x7fffffff;
    for (int i = 0; i < n; ++i) {
      if (p[i] > best) {  // i ascending: the lower id wins ties within the lane
        best = p[i];
        best_id = lane + 32 * i;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, best_id, o);
      if (ov > best || (ov == best && oi < best_id)) {
        best = ov;
        best_id = oi;
      }
    }
    if ((best_id & 31) == lane) p[best_id >> 5] = -2.f;  // taken
    if (lane == k) {
      my_w = best;
      my_id = best_id;
    }
    picked += best;
  }
  if (lane < K) {
    ids[t * K + lane] = my_id;
    weights[t * K + lane] = from_f<T>(norm ? my_w / picked : my_w);
  }
}

// ---- grouping the pairs by expert: count, scan, place ---------------------------------------------
// ws[0 .. El) holds the counts, then the next free row of each expert; ws[El] the local row total.
__global__ void count_pairs_kernel(const int64_t* ids, int64_t P, int64_t first, int El, int32_t* ws) {
  extern __shared__ int32_t local[];  // [El]
  for (int e = threadIdx.x; e < El; e += blockDim.x) local[e] = 0;
  __syncthreads();
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < P; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = ids[p] - first;
    if (e >= 0 && e < El) atomicAdd(&local[e], 1);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < El; e += blockDim.x)
    if (local[e]) atomicAdd(&ws[e], local[e]);
}

// One block of 1024 threads: exclusive scan of the counts rounded up to `pad`, in chunks of 1024,
// carried over: expert e's first row (ws[e]) and end row (offs[e]); ws[El] the padded row total.
__global__ void scan_pairs_kernel(int El, int pad, int32_t* ws, int32_t* offs) {
  __shared__ int32_t buf[1024];
  __shared__ int32_t carry;
  const int tid = threadIdx.x;
  if (tid == 0) carry = 0;
  __syncthreads();
  for (int base = 0; base < El; base += 1024) {
    const int e = base + tid;
    const int32_t v = e < El ? ws[e] : 0;
    const int32_t padded = round_up<int32_t>(v, pad);
    buf[tid] = padded;
    __syncthreads();
    for (int o = 1; o < 1024; o <<= 1) {
      const int32_t add = tid >= o ? buf[tid - o] : 0;
      __syncthreads();
      buf[tid] += add;
      __syncthreads();
    }
    const int32_t incl = carry + buf[tid];
    if (e < El) {
      offs[e] = incl - padded + v;
      ws[e] = incl - padded;
    }
    __syncthreads();
    if (tid == 1023) carry = incl;
    __syncthreads();
  }
  if (tid == 0) ws[El] = carry;
}

__global__ void place_pairs_kernel(const int64_t* ids, int64_t P, int64_t first, int El, int32_t* ws,
                                   int32_t* row_of_pair, int32_t* pair_of_row) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < P; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = ids[p] - first;
    int32_t r = -1;
    if (e >= 0 && e < El) {
      r = atomicAdd(&ws[e], 1);
      pair_of_row[r] = int32_t(p);
    }
    row_of_pair[p] = r;
  }
}

// Zeros of each expert's padding rows [offs[e], offs[e] rounded up to pad): blockIdx.y is the
// expert, blockIdx.x a slice of its padding bytes.
__global__ void zero_padding_rows_kernel(const int32_t* offs, int pad, int64_t row_bytes, char* buf, bool vec) {
  const int64_t end = offs[blockIdx.y], padded_end = round_up<int64_t>(end, pad);
  char* base = buf + end * row_bytes;
  const int64_t n = (padded_end - end) * row_bytes;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  if (vec) {
    for (int64_t i = first * 16; i < n; i += step * 16) *reinterpret_cast<uint4*>(base + i) = make_uint4(0, 0, 0, 0);
  } else {
    for (int64_t i = first; i < n; i += step) base[i] = 0;
  }
}

// ---- gather, one block per token: its row read once, written to each of its local rows -----------
__global__ void gather_rows_kernel(const char* x, int64_t row_bytes, const int32_t* row_of_pair, int K, char* xs,
                                   bool vec) {
  const int64_t t = blockIdx.x;
  __shared__ int32_t rows[64];  // K <= 64
  if (threadIdx.x < K) rows[threadIdx.x] = row_of_pair[t * K + threadIdx.x];
  __syncthreads();
  const char* src = x + t * row_bytes;
  if (vec) {
    constexpr int U = 2;  // 16-byte loads per thread held while they are stored K times
    const int64_t step = int64_t(blockDim.x) * 16;
    for (int64_t base = int64_t(threadIdx.x) * 16; base < row_bytes; base += step * U) {
      uint4 v[U];
#pragma unroll
      for (int u = 0; u < U; ++u)
        if (base + u * step < row_bytes) v[u] = *reinterpret_cast<const uint4*>(src + base + u * step);
      for (int k = 0; k < K; ++k) {
        if (rows[k] < 0) continue;
        char* dst = xs + int64_t(rows[k]) * row_bytes;
#pragma unroll
        for (int u = 0; u < U; ++u)
          if (base + u * step < row_bytes) *reinterpret_cast<uint4*>(dst + base + u * step) = v[u];
      }
    }
  } else {
    for (int64_t i = threadIdx.x; i < row_bytes; i += blockDim.x) {
      const char b = src[i];
      for (int k = 0; k < K; ++k)
        if (rows[k] >= 0) xs[int64_t(rows[k]) * row_bytes + i] = b;
    }
  }
}

// ---- SiLU(gate) * up * routing weight, one block per row ---------------------------------------
template <typename T, bool kVec>
__global__ void silu_mul_weight_kernel(const T* gu, int64_t I, const int32_t* pair_of_row, const T* weights, T* out) {
  const int64_t r = blockIdx.x;
  const int32_t p = pair_of_row[r];
  if (p < 0) return;
  const float w = to_f(weights[p]);
  const T* g = gu + r * 2 * I;
  const T* u = g + I;
  T* o = out + r * I;
  auto f = [w](float gv, float uv) { return gv / (1.f + expf(-gv)) * uv * w; };
  if constexpr (kVec) {
    constexpr int V = Pack<T>::V;
    for (int64_t i = int64_t(threadIdx.x) * V; i < I; i += int64_t(blockDim.x) * V) {
      float gv[V], uv[V];
      Pack<T>::load(g + i, gv);
      Pack<T>::load(u + i, uv);
#pragma unroll
      for (int j = 0; j < V; ++j) gv[j] = f(gv[j], uv[j]);
      Pack<T>::store(o + i, gv);
    }
  } else {
    for (int64_t i = threadIdx.x; i < I; i += blockDim.x) o[i] = from_f<T>(f(to_f(g[i]), to_f(u[i])));
  }
}

// ---- combine: each token's K rows summed in fp32, one block per token ---------------------------
template <typename T, bool kVec>
__global__ void combine_rows_kernel(const T* y, int K, int64_t H, const int32_t* row_of_pair, T* out) {
  const int64_t t = blockIdx.x;
  __shared__ int32_t rows[64];  // K <= 64
  if (threadIdx.x < K) rows[threadIdx.x] = row_of_pair[t * K + threadIdx.x];
  __syncthreads();
  T* o = out + t * H;
  if constexpr (kVec) {
    constexpr int V = Pack<T>::V;
    for (int64_t i = int64_t(threadIdx.x) * V; i < H; i += int64_t(blockDim.x) * V) {
      float acc[V] = {};
      for (int k = 0; k < K; ++k) {
        if (rows[k] < 0) continue;
        float v[V];
        Pack<T>::load(y + int64_t(rows[k]) * H + i, v);
#pragma unroll
        for (int j = 0; j < V; ++j) acc[j] += v[j];
      }
      Pack<T>::store(o + i, acc);
    }
  } else {
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
      float acc = 0.f;
      for (int k = 0; k < K; ++k)
        if (rows[k] >= 0) acc += to_f(y[int64_t(rows[k]) * H + i]);
      o[i] = from_f<T>(acc);
    }
  }
}

// ---- tile table of the grouped expert GEMMs, one block of 1024 threads ---------------------------
// Thread t owns a contiguous run of experts: counts its tiles, a block scan gives its first tile.
__global__ void moe_tiles_kernel(const int32_t* offs, int El, int pad, int bm, int64_t max_tiles, int32_t* tiles,
                                 int32_t* n_tiles) {
  auto start_of = [&](int e) { return e ? round_up<int>(offs[e - 1], pad) : 0; };
  __shared__ int32_t scan[1024];
  const int per = (El + int(blockDim.x) - 1) / int(blockDim.x);
  const int e0 = int(threadIdx.x) * per, e1 = min(El, e0 + per);
  int mine = 0;
  for (int e = e0; e < e1; ++e) mine += (offs[e] - start_of(e) + bm - 1) / bm;
  scan[threadIdx.x] = mine;
  __syncthreads();
  for (int d = 1; d < int(blockDim.x); d <<= 1) {
    const int v = int(threadIdx.x) >= d ? scan[threadIdx.x - d] : 0;
    __syncthreads();
    scan[threadIdx.x] += v;
    __syncthreads();
  }
  int64_t pos = scan[threadIdx.x] - mine;
  for (int e = e0; e < e1; ++e) {
    const int start = start_of(e), end = offs[e];
    for (int r = start; r < end && pos < max_tiles; r += bm, ++pos) {
      tiles[3 * pos] = e;
      tiles[3 * pos + 1] = r;
      tiles[3 * pos + 2] = end;
    }
  }
  if (threadIdx.x == blockDim.x - 1) *n_tiles = int32_t(int64_t(scan[threadIdx.x]) < max_tiles ? int64_t(scan[threadIdx.x]) : max_tiles);
}

int64_t blocks_for(int64_t threads, int per_block) { return (threads + per_block - 1) / per_block; }

constexpr int kInvalid = int(cudaErrorInvalidValue);

}  // namespace

namespace {

template <typename T>
void launch_head_norm_rope(T* x, int64_t T_, int64_t S, int64_t row_stride, int heads, int D, const T* w,
                           const T* cos, const T* sin, int64_t cos_batches, float eps, cudaStream_t st) {
  const int per = 256;
  auto aligned_to = [&](size_t align) {
    return (reinterpret_cast<uintptr_t>(x) % align) == 0 && (row_stride * sizeof(T)) % align == 0 &&
           (reinterpret_cast<uintptr_t>(w) % align) == 0 && (reinterpret_cast<uintptr_t>(cos) % align) == 0 &&
           (reinterpret_cast<uintptr_t>(sin) % align) == 0;
  };
  const int64_t units = T_ * heads;
  // 16-byte lanes: D = L * (16 / sizeof(T)) with L = 8, 16 or 32 (bf16: D = 64, 128, 256).
  constexpr int P = 16 / int(sizeof(T));
  if (aligned_to(16) && (D == 8 * P || D == 16 * P || D == 32 * P)) {
    const int L = D / P;
    const int64_t grid = blocks_for(units * L, per);
    if (L == 8)
      head_norm_rope_vec_kernel<T, P, 8><<<grid, per, 0, st>>>(x, T_, S, row_stride, heads, w, cos, sin, cos_batches, eps);
    else if (L == 16)
      head_norm_rope_vec_kernel<T, P, 16><<<grid, per, 0, st>>>(x, T_, S, row_stride, heads, w, cos, sin, cos_batches, eps);
    else
      head_norm_rope_vec_kernel<T, P, 32><<<grid, per, 0, st>>>(x, T_, S, row_stride, heads, w, cos, sin, cos_batches, eps);
    return;
  }
  // Narrower vectors, one warp per head: D = 32 V and every head's start aligned to V elements.
  const int64_t grid = blocks_for(units * 32, per);
  const int V = D / 32;
  const bool aligned = D % 32 == 0 && aligned_to(size_t(V) * sizeof(T)) && (V * sizeof(T)) % 4 == 0;
  if (aligned && V == 2)
    head_norm_rope_vec_kernel<T, 2, 32><<<grid, per, 0, st>>>(x, T_, S, row_stride, heads, w, cos, sin, cos_batches, eps);
  else if (aligned && V == 4)
    head_norm_rope_vec_kernel<T, 4, 32><<<grid, per, 0, st>>>(x, T_, S, row_stride, heads, w, cos, sin, cos_batches, eps);
  else if (aligned && V == 8)
    head_norm_rope_vec_kernel<T, 8, 32><<<grid, per, 0, st>>>(x, T_, S, row_stride, heads, w, cos, sin, cos_batches, eps);
  else
    head_norm_rope_kernel<T><<<grid, per, 0, st>>>(x, T_, S, row_stride, heads, D, w, cos, sin, cos_batches, eps);
}

template <typename T>
void launch_add_rms_norm(const T* a, const T* b, const T* w, T* h, T* n, int64_t rows, int64_t H, float eps,
                         cudaStream_t st) {
  constexpr int V = Pack<T>::V;
  const bool vec = H % V == 0 && aligned16(a) && aligned16(b) && aligned16(w) && aligned16(h) && aligned16(n);
  const int64_t want = ((vec ? (H + V - 1) / V : H) + 31) / 32 * 32;  // one element (pack) per thread
  const int per = int(want < 64 ? 64 : want > 1024 ? 1024 : want);
  if (vec) add_rms_norm_kernel<T, true><<<rows, per, 0, st>>>(a, b, w, h, n, H, eps);
  else add_rms_norm_kernel<T, false><<<rows, per, 0, st>>>(a, b, w, h, n, H, eps);
}

// Runs f(E{}) with E the element type of e, then reports the launch status.
template <typename F>
int with_elem(Elem e, F&& f) {
  if (e == Elem::bf16) f(bf16{});
  else f(float{});
  return launch_status();
}

}  // namespace

int head_norm_rope(Elem e, void* x, int64_t T, int64_t S, int64_t row_stride, int heads, int D, const void* weight,
                   const void* cos, const void* sin, int64_t cos_batches, float eps, void* stream) {
  if (D % 2 != 0 || D > 1024 || D <= 0 || S <= 0 || heads <= 0) return kInvalid;
  if (T == 0) return 0;
  return with_elem(e, [&](auto tag) {
    using E = decltype(tag);
    launch_head_norm_rope(static_cast<E*>(x), T, S, row_stride, heads, D, static_cast<const E*>(weight),
                          static_cast<const E*>(cos), static_cast<const E*>(sin), cos_batches, eps,
                          static_cast<cudaStream_t>(stream));
  });
}

int add_rms_norm(Elem e, const void* a, const void* b, const void* w, void* h, void* n, int64_t rows, int64_t H,
                 float eps, void* stream) {
  if (rows == 0) return 0;
  return with_elem(e, [&](auto tag) {
    using E = decltype(tag);
    launch_add_rms_norm(static_cast<const E*>(a), static_cast<const E*>(b), static_cast<const E*>(w),
                        static_cast<E*>(h), static_cast<E*>(n), rows, H, eps, static_cast<cudaStream_t>(stream));
  });
}

int route_topk(Elem e, const void* logits, int64_t T, int E, int K, bool norm, int64_t* ids, void* weights,
               void* stream) {
  if (E <= 0 || E > 1024 || K <= 0 || K > 32 || K > E) return kInvalid;
  if (T == 0) return 0;
  const int per = 128;
  const int64_t grid = blocks_for(T * 32, per);
  return with_elem(e, [&](auto tag) {
    using V = decltype(tag);
    route_topk_kernel<V><<<grid, per, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const V*>(logits), T, E, K, norm, ids, static_cast<V*>(weights));
  });
}

int sort_pairs(const int64_t* ids, int64_t P, int64_t first, int El, int pad, int32_t* offs, int32_t* row_of_pair,
               int32_t* pair_of_row, int32_t* workspace, void* stream) {
  if (El <= 0 || El > 8192 || pad < 1 || padded_rows(P, El, pad) > INT32_MAX) return kInvalid;
  auto st = static_cast<cudaStream_t>(stream);
  cudaError_t err = cudaMemsetAsync(workspace, 0, (size_t(El) + 1) * sizeof(int32_t), st);
  if (err == cudaSuccess && P > 0)  // -1 everywhere, then place_pairs writes the rows that hold a pair
    err = cudaMemsetAsync(pair_of_row, 0xff, size_t(padded_rows(P, El, pad)) * sizeof(int32_t), st);
  if (err != cudaSuccess) return int(err);
  if (P == 0) {
    scan_pairs_kernel<<<1, 1024, 0, st>>>(El, pad, workspace, offs);
    return launch_status();
  }
  const int per = 256;
  const int64_t grid = blocks_for(P, per) < 1024 ? blocks_for(P, per) : 1024;
  count_pairs_kernel<<<grid, per, size_t(El) * sizeof(int32_t), st>>>(ids, P, first, El, workspace);
  scan_pairs_kernel<<<1, 1024, 0, st>>>(El, pad, workspace, offs);
  place_pairs_kernel<<<grid, per, 0, st>>>(ids, P, first, El, workspace, row_of_pair, pair_of_row);
  return launch_status();
}

int moe_tiles(const int32_t* offs, int El, int pad, int block_m, int64_t max_tiles, int32_t* tiles, int32_t* n_tiles,
              void* stream) {
  if (El <= 0 || El > 8192 || pad < 1 || block_m <= 0 || max_tiles < 0) return kInvalid;
  moe_tiles_kernel<<<1, 1024, 0, static_cast<cudaStream_t>(stream)>>>(offs, El, pad, block_m, max_tiles, tiles,
                                                                      n_tiles);
  return launch_status();
}

int zero_padding_rows(const int32_t* offs, int El, int pad, int64_t row_bytes, void* buf, void* stream) {
  if (El <= 0 || El > 8192 || pad < 1 || row_bytes < 0) return kInvalid;
  if (pad == 1 || row_bytes == 0) return 0;
  const bool vec = (row_bytes & 15) == 0 && aligned16(buf);
  // Enough blocks to fill the GPU: at most pad - 1 rows an expert, 4 KB a block and pass.
  const int64_t slices = blocks_for((pad - 1) * row_bytes, 256 * 16);
  const dim3 grid(unsigned(slices < 16 ? slices : 16), unsigned(El));
  zero_padding_rows_kernel<<<grid, 256, 0, static_cast<cudaStream_t>(stream)>>>(offs, pad, row_bytes,
                                                                               static_cast<char*>(buf), vec);
  return launch_status();
}

int gather_rows(Elem e, const void* x, int64_t H, const int32_t* row_of_pair, int64_t T, int K, void* xs,
                void* stream) {
  if (K <= 0 || K > 64) return kInvalid;
  if (T == 0) return 0;
  const int64_t row_bytes = H * (e == Elem::bf16 ? 2 : 4);
  const bool vec = (row_bytes & 15) == 0 && aligned16(x) && aligned16(xs);
  gather_rows_kernel<<<T, 256, 0, static_cast<cudaStream_t>(stream)>>>(
      static_cast<const char*>(x), row_bytes, row_of_pair, K, static_cast<char*>(xs), vec);
  return launch_status();
}

int silu_mul_weight(Elem e, const void* gu, int64_t rows, int64_t I, const int32_t* pair_of_row, const void* weights,
                    void* hidden, void* stream) {
  if (rows == 0) return 0;
  return with_elem(e, [&](auto tag) {
    using E = decltype(tag);
    auto g = static_cast<const E*>(gu);
    auto w = static_cast<const E*>(weights);
    auto o = static_cast<E*>(hidden);
    auto st = static_cast<cudaStream_t>(stream);
    if (I % Pack<E>::V == 0 && aligned16(gu) && aligned16(hidden))
      silu_mul_weight_kernel<E, true><<<rows, 256, 0, st>>>(g, I, pair_of_row, w, o);
    else
      silu_mul_weight_kernel<E, false><<<rows, 256, 0, st>>>(g, I, pair_of_row, w, o);
  });
}

int combine_rows(Elem e, const void* y, int64_t T, int K, int64_t H, const int32_t* row_of_pair, void* out,
                 void* stream) {
  if (K <= 0 || K > 64) return kInvalid;
  if (T == 0) return 0;
  return with_elem(e, [&](auto tag) {
    using E = decltype(tag);
    auto yy = static_cast<const E*>(y);
    auto o = static_cast<E*>(out);
    auto st = static_cast<cudaStream_t>(stream);
    if (H % Pack<E>::V == 0 && aligned16(y) && aligned16(out))
      combine_rows_kernel<E, true><<<T, 256, 0, st>>>(yy, K, H, row_of_pair, o);
    else
      combine_rows_kernel<E, false><<<T, 256, 0, st>>>(yy, K, H, row_of_pair, o);
  });
}

const char* error_string(int code) { return cudaGetErrorString(cudaError_t(code)); }

int random_fill(float* out, int64_t outer, int64_t mid, int64_t inner, int64_t extent, int64_t begin, uint64_t key,
                float scale, float offset, void* stream) {
  const int64_t n = outer * mid * inner;
  if (n == 0) return 0;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, 65535 * 8);
  random_fill_kernel<<<unsigned(blocks), threads, 0, static_cast<cudaStream_t>(stream)>>>(out, n, mid, inner, extent,
                                                                                        begin, key, scale, offset);
  return int(cudaGetLastError());
}

}  // namespace sc::cuda
