// LibTorch wrappers of the fused CUDA kernels (fused_ops.h). Shape and dtype checks name the
// values; the kernels run on the tensors' device and LibTorch's current stream.
#include "ops/fused_ops.h"

#include <stdexcept>
#include <string>

#ifdef SC_HAVE_CUDA_KERNELS
#include <ATen/ops/_grouped_mm.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "ops/cuda/fused.h"
#ifdef SC_HAVE_MOE_GEMM
#include "ops/cuda/moe_gemm.h"
#endif
#endif

namespace sc::fused {

#ifdef SC_HAVE_CUDA_KERNELS

bool compiled() { return true; }

#ifdef SC_HAVE_MOE_GEMM
bool moe_gemm_compiled() { return true; }
bool moe_gemm_usable(at::Device d) { return d.is_cuda() && cuda::moe_gemm_usable(d.has_index() ? d.index() : -1); }
bool moe_gemm_fits(int64_t H, int64_t I) { return cuda::moe_gemm_fits(H, I); }
#else
bool moe_gemm_compiled() { return false; }
bool moe_gemm_usable(at::Device) { return false; }
bool moe_gemm_fits(int64_t, int64_t) { return false; }
#endif

namespace {

std::string shape(const at::Tensor& t) {  // "[64, 2048]"
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

void fail(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string("fused::") + op + ": " + what);
}

cuda::Elem elem_of(const char* op, const at::Tensor& t) {
  if (!t.is_cuda()) fail(op, "needs a CUDA tensor, got one on " + t.device().str());
  if (t.scalar_type() == at::kBFloat16) return cuda::Elem::bf16;
  if (t.scalar_type() == at::kFloat) return cuda::Elem::f32;
  fail(op, std::string("needs bfloat16 or float, got ") + c10::toString(t.scalar_type()));
  return cuda::Elem::f32;
}

void same_dtype(const char* op, const at::Tensor& ref, const at::Tensor& t, const char* name) {
  if (t.scalar_type() != ref.scalar_type() || t.device() != ref.device())
    fail(op, std::string(name) + " is " + c10::toString(t.scalar_type()) + " on " + t.device().str() + ", expected " +
                 c10::toString(ref.scalar_type()) + " on " + ref.device().str());
}

void* stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

void check(const char* op, int code) {
  if (code != 0) fail(op, std::string("kernel launch failed: ") + cuda::error_string(code));
}

}  // namespace

void head_norm_rope_(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos, const at::Tensor& sin,
                     double eps) {
  const char* op = "head_norm_rope_";
  const cuda::Elem e = elem_of(op, x);
  if (x.dim() != 4 || x.stride(3) != 1 || x.stride(2) != x.size(3) || x.stride(0) != x.size(1) * x.stride(1))
    fail(op, "x must be [B, S, heads, D] with contiguous heads and uniformly strided rows, got " + shape(x));
  const int64_t B = x.size(0), S = x.size(1), heads = x.size(2), D = x.size(3);
  same_dtype(op, x, weight, "weight");
  same_dtype(op, x, cos, "cos");
  same_dtype(op, x, sin, "sin");
  if (weight.numel() != D) fail(op, "weight has " + std::to_string(weight.numel()) + " elements, head_dim is " + std::to_string(D));
  if (cos.dim() != 3 || cos.size(1) != S || cos.size(2) != D || (cos.size(0) != 1 && cos.size(0) != B) ||
      cos.sizes() != sin.sizes())
    fail(op, "cos / sin must be [1 or " + std::to_string(B) + ", " + std::to_string(S) + ", " + std::to_string(D) +
                 "], got " + shape(cos) + " / " + shape(sin));
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor w = weight.contiguous(), c = cos.contiguous(), s = sin.contiguous();
  check(op, cuda::head_norm_rope(e, x.data_ptr(), B * S, S, x.stride(1), int(heads), int(D), w.data_ptr(), c.data_ptr(),
                                 s.data_ptr(), c.size(0), float(eps), stream()));
}

std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& a, const at::Tensor& b, const at::Tensor& w,
                                               double eps) {
  const char* op = "add_rms_norm";
  const cuda::Elem e = elem_of(op, a);
  same_dtype(op, a, b, "b");
  same_dtype(op, a, w, "weight");
  if (a.sizes() != b.sizes()) fail(op, "a is " + shape(a) + ", b is " + shape(b));
  const int64_t H = a.size(-1);
  if (w.numel() != H) fail(op, "weight has " + std::to_string(w.numel()) + " elements, rows have " + std::to_string(H));
  const c10::cuda::CUDAGuard guard(a.device());
  const at::Tensor ac = a.contiguous(), bc = b.contiguous(), wc = w.contiguous();
  at::Tensor h = at::empty_like(ac), n = at::empty_like(ac);
  check(op, cuda::add_rms_norm(e, ac.data_ptr(), bc.data_ptr(), wc.data_ptr(), h.data_ptr(), n.data_ptr(),
                               H ? ac.numel() / H : 0, H, float(eps), stream()));
  return {h, n};
}

std::pair<at::Tensor, at::Tensor> route_topk(const at::Tensor& logits, int64_t K, bool norm_topk_prob) {
  const char* op = "route_topk";
  const cuda::Elem e = elem_of(op, logits);
  if (logits.dim() != 2) fail(op, "logits must be [T, E], got " + shape(logits));
  const int64_t T = logits.size(0), E = logits.size(1);
  if (E > kMaxRouterExperts || K < 1 || K > kMaxTopK || K > E)
    fail(op, "supports E <= " + std::to_string(kMaxRouterExperts) + " experts and 1 <= K <= min(" +
                 std::to_string(kMaxTopK) + ", E) per token, got E = " + std::to_string(E) + ", K = " + std::to_string(K));
  const c10::cuda::CUDAGuard guard(logits.device());
  const at::Tensor l = logits.contiguous();
  at::Tensor ids = at::empty({T, K}, l.options().dtype(at::kLong));
  at::Tensor weights = at::empty({T, K}, l.options());
  check(op, cuda::route_topk(e, l.data_ptr(), T, int(E), int(K), norm_topk_prob, ids.data_ptr<int64_t>(),
                             weights.data_ptr(), stream()));
  return {ids, weights};
}

PairLayout group_pairs(const at::Tensor& ids, int64_t El, int64_t first_expert, int pad) {
  const char* op = "group_pairs";
  if (!ids.is_cuda()) fail(op, "needs a CUDA tensor, got one on " + ids.device().str());
  if (ids.dim() != 2) fail(op, "ids must be [T, K], got " + shape(ids));
  if (El < 1 || El > 8192 || pad < 1)
    fail(op, "supports 1 <= local experts <= 8192 and pad >= 1, got " + std::to_string(El) + " experts, pad " +
                 std::to_string(pad));
  const int64_t P = ids.numel();
  PairLayout l;
  l.rows = cuda::padded_rows(P, int(El), pad);
  if (l.rows > INT32_MAX)
    fail(op, std::to_string(P) + " pairs over " + std::to_string(El) + " experts padded to " + std::to_string(pad) +
                 " rows need " + std::to_string(l.rows) + " rows, more than int32 row indices address");
  const c10::cuda::CUDAGuard guard(ids.device());
  const at::Tensor idc = ids.to(at::kLong).contiguous();
  const auto iopt = idc.options().dtype(at::kInt);
  l.offs = at::empty({El}, iopt);
  l.row_of_pair = at::empty({P}, iopt);
  l.pair_of_row = at::empty({l.rows}, iopt);
  at::Tensor ws = at::empty({El + 1}, iopt);
  check(op, cuda::sort_pairs(idc.data_ptr<int64_t>(), P, first_expert, int(El), pad, l.offs.data_ptr<int32_t>(),
                             l.row_of_pair.data_ptr<int32_t>(), l.pair_of_row.data_ptr<int32_t>(), ws.data_ptr<int32_t>(),
                             stream()));
  return l;
}

at::Tensor experts(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& weights, const at::Tensor& gate_up,
                   const at::Tensor& down, int64_t first_expert, bool moe_gemm) {
  const char* op = "experts";
  const cuda::Elem e = elem_of(op, x);
  same_dtype(op, x, weights, "weights");
  same_dtype(op, x, gate_up, "gate_up");
  same_dtype(op, x, down, "down");
  if (x.dim() != 2 || ids.dim() != 2 || ids.size(0) != x.size(0) || weights.sizes() != ids.sizes())
    fail(op, "x must be [T, H] and ids / weights [T, K], got " + shape(x) + ", " + shape(ids) + ", " + shape(weights));
  const int64_t T = x.size(0), H = x.size(1), K = ids.size(1), P = T * K;
  if (gate_up.dim() != 3 || down.dim() != 3 || gate_up.size(2) != H || down.size(1) != H ||
      gate_up.size(0) != down.size(0) || gate_up.size(1) != 2 * down.size(2))
    fail(op, "stacked experts must be gate_up [El, 2I, " + std::to_string(H) + "] and down [El, " + std::to_string(H) +
                 ", I], got " + shape(gate_up) + " and " + shape(down));
  const int64_t El = gate_up.size(0), I = down.size(2);
  if (K > kMaxTopK || El > kMaxLocalExperts)
    fail(op, "supports K <= " + std::to_string(kMaxTopK) + " experts per token and " + std::to_string(kMaxLocalExperts) +
                 " local experts, got K = " + std::to_string(K) + ", " + std::to_string(El) + " local experts");
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous(), wc = weights.contiguous();
  const auto iopt = xc.options().dtype(at::kInt);
#ifdef SC_HAVE_MOE_GEMM
  auto aligned = [](const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; };
  const bool triton = moe_gemm && P > 0 && e == cuda::Elem::bf16 && cuda::moe_gemm_fits(H, I) &&
                      gate_up.is_contiguous() && down.is_contiguous() && aligned(gate_up) && aligned(down);
  // The Triton GEMM's tiles hold one expert's rows each: every expert's rows start at a multiple of
  // its tile height (sort_pairs' padded layout), with zeroed padding rows.
  const int pad = triton ? cuda::moe_gemm_block_m() : 1;
#else
  (void)moe_gemm;
  const bool triton = false;
  const int pad = 1;
#endif
  const PairLayout layout = group_pairs(ids, El, first_expert, pad);  // ids as int64 there
  const int64_t rows = layout.rows;
  const at::Tensor &offs = layout.offs, &row_of_pair = layout.row_of_pair, &pair_of_row = layout.pair_of_row;
  // Rows past the last local row (pairs of other ranks' experts, and the spare rows of the padded
  // layout) are read by nothing below, so they are left as they are; the padding rows between
  // experts, which the Triton GEMM's tiles read, are zeroed below.
  at::Tensor xs = at::empty({rows, H}, xc.options());
  check(op, cuda::gather_rows(e, xc.data_ptr(), H, row_of_pair.data_ptr<int32_t>(), T, int(K), xs.data_ptr(), stream()));
  at::Tensor hidden = at::empty({rows, I}, xc.options()), y;
#ifdef SC_HAVE_MOE_GEMM
  if (triton) {
    const int bm = cuda::moe_gemm_block_m();
    const int64_t max_tiles = (P + bm - 1) / bm + El;
    at::Tensor tiles = at::empty({max_tiles * 3 + 1}, iopt);  // the count last
    int32_t* n_tiles = tiles.data_ptr<int32_t>() + max_tiles * 3;
    check(op, cuda::moe_tiles(offs.data_ptr<int32_t>(), int(El), pad, bm, max_tiles, tiles.data_ptr<int32_t>(), n_tiles,
                              stream()));
    // Padding rows are computed with the tile but never read: zeros, which also draw the least power.
    const int64_t elem = xc.element_size();
    check(op, cuda::zero_padding_rows(offs.data_ptr<int32_t>(), int(El), pad, H * elem, xs.data_ptr(), stream()));
    check(op, cuda::zero_padding_rows(offs.data_ptr<int32_t>(), int(El), pad, I * elem, hidden.data_ptr(), stream()));
    const at::Tensor gu = at::empty({rows, 2 * I}, xc.options());
    y = at::empty({rows, H}, xc.options());
    try {
      cuda::moe_gemm_gate_up(xs.data_ptr(), rows, H, gate_up.data_ptr(), El, I, tiles.data_ptr<int32_t>(), n_tiles,
                             gu.data_ptr(), stream());
      check(op, cuda::silu_mul_weight(e, gu.data_ptr(), rows, I, pair_of_row.data_ptr<int32_t>(), wc.data_ptr(),
                                      hidden.data_ptr(), stream()));
      cuda::moe_gemm_down(hidden.data_ptr(), rows, I, down.data_ptr(), El, H, tiles.data_ptr<int32_t>(), n_tiles,
                          y.data_ptr(), stream());
    } catch (const std::runtime_error& ex) {  // the Triton launches' errors; check()'s name the op already
      throw std::runtime_error(std::string("fused::experts: ") + ex.what() + " (x " + shape(x) + ", gate_up " +
                               shape(gate_up) + ", down " + shape(down) + ")");
    }
  }
#endif
  if (!triton) {
    const at::Tensor gu = at::_grouped_mm(xs, gate_up.transpose(1, 2), offs);  // [P, 2I]
    check(op, cuda::silu_mul_weight(e, gu.data_ptr(), P, I, pair_of_row.data_ptr<int32_t>(), wc.data_ptr(),
                                    hidden.data_ptr(), stream()));
    y = at::_grouped_mm(hidden, down.transpose(1, 2), offs);  // [P, H]
  }
  at::Tensor out = at::empty({T, H}, xc.options());
  check(op, cuda::combine_rows(e, y.data_ptr(), T, int(K), H, row_of_pair.data_ptr<int32_t>(), out.data_ptr(), stream()));
  return out;
}

at::Tensor random_fill(const std::vector<int64_t>& dims, int64_t outer, int64_t mid, int64_t inner, int64_t extent,
                       int64_t begin, uint64_t key, float scale, float offset, at::Device device) {
  at::Tensor out = at::empty(dims, at::TensorOptions().dtype(at::kFloat).device(device));
  if (out.numel() != outer * mid * inner) fail("random_fill", "shape " + shape(out) + " is not outer x mid x inner");
  c10::cuda::CUDAGuard guard(device);
  check("random_fill", cuda::random_fill(out.data_ptr<float>(), outer, mid, inner, extent, begin, key, scale, offset,
                                         stream()));
  return out;
}

#else  // no CUDA kernels in this build

bool compiled() { return false; }
bool moe_gemm_compiled() { return false; }
bool moe_gemm_usable(at::Device) { return false; }
bool moe_gemm_fits(int64_t, int64_t) { return false; }

namespace {
[[noreturn]] void absent(const char* op) {
  throw std::logic_error(std::string("fused::") + op +
                         ": this build has no CUDA kernels (needs nvcc and a CUDA LibTorch at configure time)");
}
}  // namespace

void head_norm_rope_(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, double) {
  absent("head_norm_rope_");
}
std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor&, const at::Tensor&, const at::Tensor&, double) {
  absent("add_rms_norm");
}
std::pair<at::Tensor, at::Tensor> route_topk(const at::Tensor&, int64_t, bool) { absent("route_topk"); }
at::Tensor random_fill(const std::vector<int64_t>&, int64_t, int64_t, int64_t, int64_t, int64_t, uint64_t, float, float,
                       at::Device) {
  absent("random_fill");
}
PairLayout group_pairs(const at::Tensor&, int64_t, int64_t, int) { absent("group_pairs"); }
at::Tensor experts(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                   int64_t, bool) {
  absent("experts");
}

#endif

}  // namespace sc::fused
