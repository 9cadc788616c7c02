"""Runs the Triton expert GEMMs of models/qwen3/cuda/moe_gemm.py through Triton's own launcher
(JIT) and compares them with _grouped_mm + SiLU * up * weight: separates a kernel bug from a
launcher bug of the C++ path (models/qwen3/cuda/moe_gemm.cpp). With --time, also times each
variant against _grouped_mm at 6592 tokens (235B widths), in alternation (medians):
  gate_up: _grouped_mm + SiLU*up*w (torch ops)  |  ours with the SwiGLU epilogue  |  ours plain
  down:    _grouped_mm                          |  ours

    python3 tools/gpu/check_moe_gemm.py [--time] [--skew S]

--skew S gives the experts uneven loads (probe_util.random_routing).
"""
import os
import sys

import torch
from triton.tools.tensor_descriptor import TensorDescriptor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_util import random_routing  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "qwen3", "cuda"))
from moe_gemm import moe_gemm  # noqa: E402


def tiles(counts, bm):
    ends = torch.cumsum(counts, 0).tolist()
    out, start = [], 0
    for e, end in enumerate(ends):
        for r in range(start, end, bm):
            out += [e, r, end]
        start = end
    return torch.tensor(out, dtype=torch.int32, device="cuda"), len(out) // 3


def med(fns, reps=25):
    """Median ms of each function, called in alternation."""
    for f in fns:
        f()
    torch.cuda.synchronize()
    ts = [[] for _ in fns]
    for _ in range(reps):
        for i, f in enumerate(fns):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            f()
            b.record()
            torch.cuda.synchronize()
            ts[i].append(a.elapsed_time(b))
    return [sorted(t)[len(t) // 2] for t in ts]


def main():
    timing = "--time" in sys.argv
    torch.manual_seed(0)
    T, H, I, E, K = (6592 if timing else 1000), 4096, 1536, 128, 8
    P = T * K
    skew = float(sys.argv[sys.argv.index("--skew") + 1]) if "--skew" in sys.argv else 0.0
    ids, counts, offs = random_routing(T, E, K, skew)
    print(f"{T} tokens, skew {skew}: rows per expert min {int(counts.min())} mean {P / E:.0f} max {int(counts.max())}")
    w = torch.rand(T, K, device="cuda").to(torch.bfloat16)
    flat = ids.reshape(-1)
    order = torch.argsort(flat, stable=True)  # row r holds pair order[r]
    xs = torch.randn(P, H, device="cuda", dtype=torch.bfloat16)
    gu = torch.randn(E, 2 * I, H, device="cuda", dtype=torch.bfloat16) * 0.02
    dn = torch.randn(E, H, I, device="cuda", dtype=torch.bfloat16) * 0.02
    pair_of_row = order.to(torch.int32)
    g = torch._grouped_mm(xs, gu.transpose(1, 2), offs).float()
    wr = w.reshape(-1)[order].float()[:, None]
    ref_h = (g[:, :I] / (1 + torch.exp(-g[:, :I])) * g[:, I:] * wr).to(torch.bfloat16)
    ref_y = torch._grouped_mm(ref_h, dn.transpose(1, 2), offs)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    t, n = tiles(counts, 128)
    nt = torch.tensor([n], dtype=torch.int32, device="cuda")
    h = torch.empty(P, I, device="cuda", dtype=torch.bfloat16)
    moe_gemm[(sms,)](TensorDescriptor.from_tensor(xs, [128, 64]), TensorDescriptor.from_tensor(gu.view(E * 2 * I, H), [128, 64]),
                     h, t, nt, pair_of_row, w.reshape(-1), I, I, 2 * I, I, H, sms,
                     BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, SWIGLU=True, num_warps=8, num_stages=3)
    y = torch.empty(P, H, device="cuda", dtype=torch.bfloat16)
    moe_gemm[(sms,)](TensorDescriptor.from_tensor(h, [128, 64]), TensorDescriptor.from_tensor(dn.view(E * H, I), [256, 64]),
                     y, t, nt, pair_of_row, w.reshape(-1), H, H, H, 0, I, sms,
                     BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, SWIGLU=False, num_warps=8, num_stages=4)
    torch.cuda.synchronize()
    if timing:
        a_x = TensorDescriptor.from_tensor(xs, [128, 64])
        b_gu = TensorDescriptor.from_tensor(gu.view(E * 2 * I, H), [128, 64])
        b_gu256 = TensorDescriptor.from_tensor(gu.view(E * 2 * I, H), [256, 64])
        a_h = TensorDescriptor.from_tensor(h, [128, 64])
        b_dn = TensorDescriptor.from_tensor(dn.view(E * H, I), [256, 64])
        gout = torch.empty(P, 2 * I, device="cuda", dtype=torch.bfloat16)
        wf = w.reshape(-1)

        def ref_gate_up():
            g2 = torch._grouped_mm(xs, gu.transpose(1, 2), offs)
            return torch.nn.functional.silu(g2[:, :I]) * g2[:, I:]

        def ours_swiglu(stages):
            return lambda: moe_gemm[(sms,)](a_x, b_gu, h, t, nt, pair_of_row, wf, I, I, 2 * I, I, H, sms, BLOCK_M=128,
                                            BLOCK_N=128, BLOCK_K=64, SWIGLU=True, num_warps=8, num_stages=stages)

        def ours_plain(stages):
            return lambda: moe_gemm[(sms,)](a_x, b_gu256, gout, t, nt, pair_of_row, wf, 2 * I, 2 * I, 2 * I, 0, H, sms,
                                            BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, SWIGLU=False, num_warps=8,
                                            num_stages=stages)

        def ours_down(stages, ws=False):
            return lambda: moe_gemm[(sms,)](a_h, b_dn, y, t, nt, pair_of_row, wf, H, H, H, 0, I, sms, BLOCK_M=128,
                                            BLOCK_N=256, BLOCK_K=64, SWIGLU=False, WS=ws, num_warps=8, num_stages=stages)

        def ours_plain_ws(stages):
            return lambda: moe_gemm[(sms,)](a_x, b_gu256, gout, t, nt, pair_of_row, wf, 2 * I, 2 * I, 2 * I, 0, H, sms,
                                            BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, SWIGLU=False, WS=True, num_warps=8,
                                            num_stages=stages)
        names = ["_grouped_mm gate_up", "_grouped_mm gate_up + silu*up (torch)", "ours swiglu s3", "ours swiglu s4",
                 "ours plain gate_up s3", "ours plain gate_up s4", "_grouped_mm down", "ours down s3", "ours down s4",
                 "ours plain gate_up s3 warp-specialised", "ours down s4 warp-specialised"]
        fns = [lambda: torch._grouped_mm(xs, gu.transpose(1, 2), offs), ref_gate_up, ours_swiglu(3), ours_swiglu(4),
               ours_plain(3), ours_plain(4), lambda: torch._grouped_mm(h, dn.transpose(1, 2), offs), ours_down(3),
               ours_down(4)]
        try:  # warp specialisation of the k loop (Triton >= 3.4; may be refused on this GPU / version)
            ours_plain_ws(3)()
            ours_down(4, True)()
            fns += [ours_plain_ws(3), ours_down(4, True)]
        except Exception as ex:
            print(f"  warp specialisation: {type(ex).__name__}: {str(ex)[:200]}")
            names = names[:len(fns)]
        for name, ms in zip(names, med(fns)):
            print(f"  {name:40s} {ms:.3f} ms")
    nm = lambda a, b: (((a.float() - b.float()) ** 2).sum() / (b.float() ** 2).sum()).item()
    print(f"check_moe_gemm: gate_up+swiglu NMSE {nm(h, ref_h):.2e} equal {torch.equal(h, ref_h)}; "
          f"down NMSE {nm(y, ref_y):.2e} equal {torch.equal(y, ref_y)}")


if __name__ == "__main__":
    main()
