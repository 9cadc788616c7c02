"""Runs the Triton expert GEMM of ops/cuda/moe_gemm.py through Triton's own launcher (JIT)
on the padded row layout (probe_util.padded_layout, as fused.cu sort_pairs lays the rows out) and
compares both projections with _grouped_mm on the unpadded rows: separates a kernel bug from a bug
of the C++ launcher (ops/cuda/moe_gemm.cpp). With --time, also times each projection
against _grouped_mm at 6592 tokens (235B widths), in alternation (medians).

    python3 tools/gpu/check_moe_gemm.py [--time] [--skew S] [--sustained]

--skew S gives the experts uneven loads (probe_util.random_routing). --sustained: gate_up run 300
times back to back (long enough for the GPU to reach its power cap) with the padding rows zero, as
fused.cu zero_padding_rows leaves them, against random padding rows, in alternation: whether zeros
(which draw less power in the tensor cores) make the capped GPU faster.
"""
import os
import sys

import torch
from triton.tools.tensor_descriptor import TensorDescriptor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_util import med, padded_layout, random_routing  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "qwen3", "cuda"))
from moe_gemm import moe_gemm  # noqa: E402

BM, BN, BK, WARPS, STAGES = 128, 256, 64, 8, 4  # as moe_gemm_aot.py VARIANTS


def main():
    timing = "--time" in sys.argv
    torch.manual_seed(0)
    T, H, I, E, K = (6592 if timing else 1000), 4096, 1536, 128, 8
    P = T * K
    skew = float(sys.argv[sys.argv.index("--skew") + 1]) if "--skew" in sys.argv else 0.0
    ids, counts, offs = random_routing(T, E, K, skew)
    dest, table, n, rows = padded_layout(counts, BM)
    print(f"{T} tokens, skew {skew}: rows per expert min {int(counts.min())} mean {P / E:.0f} max {int(counts.max())}; "
          f"{rows} padded rows (+{100.0 * (rows - P) / P:.1f} %)")
    n_tiles = torch.tensor([n], dtype=torch.int32, device="cuda")
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    ok = True
    for name, N, Kd in (("gate_up", 2 * I, H), ("down", H, I)):
        w = torch.randn(E, N, Kd, device="cuda", dtype=torch.bfloat16) * 0.02
        a = torch.randn(P, Kd, device="cuda", dtype=torch.bfloat16)
        ap = torch.zeros(rows, Kd, device="cuda", dtype=torch.bfloat16)
        ap[dest] = a
        out = torch.empty(rows, N, device="cuda", dtype=torch.bfloat16)
        descs = (TensorDescriptor.from_tensor(ap, [BM, BK]), TensorDescriptor.from_tensor(w.view(E * N, Kd), [BN, BK]),
                 TensorDescriptor.from_tensor(out, [BM, BN // 2]))

        def ours():
            moe_gemm[(sms,)](*descs, table, n_tiles, N, N, Kd, sms, BLOCK_M=BM, BLOCK_N=BN, BLOCK_K=BK,
                             num_warps=WARPS, num_stages=STAGES)

        def ref():
            return torch._grouped_mm(a, w.transpose(1, 2), offs)
        ours()
        r = ref()
        got = out[dest]
        equal = torch.equal(got, r)
        ok &= equal
        nmse = (((got.float() - r.float()) ** 2).sum() / (r.float() ** 2).sum()).item()
        print(f"check_moe_gemm: {name} NMSE {nmse:.2e} equal {equal}")
        if "--sustained" in sys.argv and name == "gate_up":
            pad_rows = torch.ones(rows, dtype=torch.bool, device="cuda")
            pad_rows[dest] = False
            noise = torch.randn(int(pad_rows.sum()), Kd, device="cuda", dtype=torch.bfloat16)

            def run(zero, n=300):
                ap[pad_rows] = 0 if zero else noise
                a0, b0 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a0.record()
                for _ in range(n):
                    ours()
                b0.record()
                torch.cuda.synchronize()
                return a0.elapsed_time(b0) / n
            res = {True: [], False: []}
            for _ in range(3):
                for zero in (True, False):
                    res[zero].append(run(zero))
            print(f"  gate_up sustained (300 back to back), ms per call: zero padding {res[True]}, random padding {res[False]}")
            ap[pad_rows] = 0
        if timing:
            flops = 2.0 * P * N * Kd
            for label, ms in zip(("_grouped_mm", "ours"), med([ref, ours])):
                print(f"  {name:8s} {label:12s} {ms:.3f} ms = {flops / ms / 1e9:4.0f} TFLOP/s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
