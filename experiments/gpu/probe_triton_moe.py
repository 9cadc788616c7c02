"""Probe: can a Triton grouped GEMM with the row gather fused in (expert-sorted token ids read
inside the kernel, in the manner of vLLM's fused_moe) beat at::_grouped_mm + our gather kernel at
the Qwen3-235B-A22B expert widths? Informs whether an AOT-compiled Triton kernel is worth wiring
into the C++ fast path (the 235B per-layer goal needs the expert GEMMs faster than _grouped_mm).

    python3 experiments/gpu/probe_triton_moe.py [--tokens 6592] [--hidden 4096] [--inter 1536]

Prints the time of each variant and its TFLOP/s; checks the Triton output against _grouped_mm.
"""
import os
import sys

import torch
import triton
import triton.language as tl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "gpu"))
from probe_util import problem_args, random_routing, timed  # noqa: E402


@triton.jit
def moe_gemm(a_ptr, b_ptr, c_ptr, sorted_ids_ptr, expert_ids_ptr, n_pairs, N, K, topk,
             stride_am, stride_be, stride_bn, stride_bk, stride_cm,
             GATHER: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
             GROUP_M: tl.constexpr, num_m_blocks):
    pid = tl.program_id(0)
    num_n = tl.cdiv(N, BLOCK_N)
    in_group = GROUP_M * num_n  # blocks of GROUP_M row tiles share their B tiles in L2
    first_m = (pid // in_group) * GROUP_M
    size_m = tl.minimum(num_m_blocks - first_m, GROUP_M)
    pid_m = first_m + (pid % in_group) % size_m
    pid_n = (pid % in_group) // size_m
    rows = tl.load(sorted_ids_ptr + pid_m * BLOCK_M + tl.arange(0, BLOCK_M))
    valid = rows < n_pairs
    expert = tl.load(expert_ids_ptr + pid_m)
    src = rows // topk if GATHER else rows
    offs_n = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N
    offs_k = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + src[:, None].to(tl.int64) * stride_am + offs_k[None, :]
    b_ptrs = b_ptr + expert.to(tl.int64) * stride_be + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        a = tl.load(a_ptrs, mask=valid[:, None], other=0.0)
        b = tl.load(b_ptrs)
        acc = tl.dot(a, b, acc)
        a_ptrs += BLOCK_K
        b_ptrs += BLOCK_K * stride_bk
    out_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    c_ptrs = c_ptr + rows[:, None].to(tl.int64) * stride_cm + out_n[None, :]
    tl.store(c_ptrs, acc.to(tl.bfloat16), mask=valid[:, None] & (out_n[None, :] < N))


def align(ids, E, block_m):
    """Pairs sorted by expert, each expert's run padded to block_m with n_pairs (invalid)."""
    flat = ids.reshape(-1)
    n_pairs = flat.numel()
    counts = torch.bincount(flat, minlength=E)
    padded = (counts + block_m - 1) // block_m * block_m
    order = torch.argsort(flat, stable=True)
    total = int(padded.sum())
    sorted_ids = torch.full((total,), n_pairs, dtype=torch.int32, device=ids.device)
    starts = torch.cumsum(padded, 0) - padded
    cstarts = torch.cumsum(counts, 0) - counts
    e_of = flat[order]
    pos = starts[e_of] + (torch.arange(n_pairs, device=ids.device) - cstarts[e_of])
    sorted_ids[pos] = order.to(torch.int32)
    expert_ids = torch.repeat_interleave(torch.arange(E, device=ids.device, dtype=torch.int32), padded // block_m)
    return sorted_ids, expert_ids, counts




def main():
    a = problem_args(__doc__)
    T, H, I, E, K = a.tokens, a.hidden, a.inter, a.experts, a.topk
    dev = "cuda"
    torch.manual_seed(0)
    x = torch.randn(T, H, device=dev, dtype=torch.bfloat16)
    w = torch.randn(E, 2 * I, H, device=dev, dtype=torch.bfloat16) * 0.02  # [E, N, K] like gate_up
    ids, _, offs = random_routing(T, E, K)
    flops = 2.0 * T * K * H * 2 * I
    # Reference: gather + _grouped_mm (what the C++ fast path runs).
    flat = ids.reshape(-1)
    order = torch.argsort(flat, stable=True)
    tok = order // K
    xs = x.index_select(0, tok)
    ref = torch._grouped_mm(xs, w.transpose(1, 2), offs)
    t_gather = timed(lambda: x.index_select(0, tok))
    t_gmm = timed(lambda: torch._grouped_mm(xs, w.transpose(1, 2), offs))
    print(f"gather (index_select) {t_gather:.3f} ms; _grouped_mm {t_gmm:.3f} ms = {flops / t_gmm / 1e9:.0f} TFLOP/s")
    inv = torch.empty_like(order)
    inv[order] = torch.arange(order.numel(), device=dev)
    best = None
    configs = [(64, 128, 64, 8, 4, 4), (128, 128, 64, 8, 8, 4), (128, 256, 64, 8, 8, 3), (64, 256, 64, 8, 8, 4),
               (128, 128, 128, 8, 8, 3), (128, 256, 64, 8, 8, 4), (256, 128, 64, 8, 8, 3), (128, 256, 64, 4, 8, 3),
               (128, 256, 64, 16, 8, 3), (256, 128, 64, 8, 8, 4)]
    for bm, bn, bk, gm, warps, stages in configs:
        sorted_ids, expert_ids, _ = align(ids, E, bm)
        nmb = expert_ids.numel()
        out = torch.empty(T * K, 2 * I, device=dev, dtype=torch.bfloat16)
        grid = (nmb * triton.cdiv(2 * I, bn),)

        def run():
            moe_gemm[grid](x, w, out, sorted_ids, expert_ids, T * K, 2 * I, H, K,
                           x.stride(0), w.stride(0), w.stride(1), w.stride(2), out.stride(0),
                           GATHER=True, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=gm, num_m_blocks=nmb,
                           num_warps=warps, num_stages=stages)
        try:
            t = timed(run)
        except Exception as e:  # e.g. out of shared memory for this config
            print(f"  config {bm}x{bn}x{bk} w{warps} s{stages}: {type(e).__name__}")
            continue
        err = ((out.float() - ref.float()[inv]) ** 2).sum() / (ref.float() ** 2).sum()
        print(f"  triton gather-fused {bm}x{bn}x{bk} g{gm} w{warps} s{stages}: {t:.3f} ms = {flops / t / 1e9:.0f} TFLOP/s, "
              f"NMSE vs _grouped_mm {err.item():.1e}")
        if best is None or t < best[0]:
            best = (t, (bm, bn, bk, gm, warps, stages))
    if best:
        print(f"best triton {best[0]:.3f} ms {best[1]} vs gather + _grouped_mm {t_gather + t_gmm:.3f} ms")


if __name__ == "__main__":
    main()
