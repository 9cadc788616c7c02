"""Probe: the expert GEMM (ops/cuda/moe_gemm.py) against variants that lay each expert's
rows out from a BLOCK_M-aligned row (a padded layout: every tile holds rows of one expert only), so
that the epilogue can store whole tiles through a TMA descriptor (no row mask), and that Triton may
flatten the persistent tile loop into the k loop (the next tile's loads issued during this tile's
epilogue: tl.range(flatten=True)), optionally storing the tile in two column halves (epilogue
subtiling, as Triton's persistent-matmul tutorial does) and warp-specialised.

Times each variant against _grouped_mm at the Qwen3-235B-A22B expert widths (6592 tokens, top-8 of
128), for even and uneven routing, in alternation (medians), and checks each against _grouped_mm.

    python3 experiments/gpu/probe_padded_tma_store.py [--skew S] [--hidden 4096] [--inter 1536]
"""
import os
import sys

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice
from triton.tools.tensor_descriptor import TensorDescriptor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "gpu"))
from probe_util import med, padded_layout, problem_args, random_routing, runs  # noqa: E402


@triton.jit
def moe_gemm(a_desc, b_desc, out_ptr, tiles_ptr, n_tiles_ptr, pair_of_row_ptr, weights_ptr,
             N, stride_out, b_rows_per_expert, up_offset, K, programs,
             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SWIGLU: tl.constexpr):
    """The expert GEMM as it was before this probe (unpadded rows, masked pointer stores); SWIGLU unused."""
    num_n = N // BLOCK_N
    total = tl.load(n_tiles_ptr) * num_n
    for tile in range(tl.program_id(0), total, programs):
        mt = tile // num_n
        nt = tile % num_n
        e = tl.load(tiles_ptr + 3 * mt)
        r0 = tl.load(tiles_ptr + 3 * mt + 1)
        rend = tl.load(tiles_ptr + 3 * mt + 2)
        brow = e * b_rows_per_expert + nt * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in tl.range(0, K, BLOCK_K):
            acc = tl.dot(a_desc.load([r0, k]), b_desc.load([brow, k]).T, acc)
        rows = r0 + tl.arange(0, BLOCK_M)
        cols = nt * BLOCK_N + tl.arange(0, BLOCK_N)
        tl.store(out_ptr + rows[:, None].to(tl.int64) * stride_out + cols[None, :], acc.to(tl.bfloat16),
                 mask=(rows < rend)[:, None])


@triton.jit
def padded_gemm(a_desc, b_desc, c_desc, tile_expert_ptr, n_tiles_ptr, N, b_rows_per_expert, K, programs,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, FLATTEN: tl.constexpr,
                SUBTILE: tl.constexpr, WS: tl.constexpr):
    num_n = N // BLOCK_N
    total = tl.load(n_tiles_ptr) * num_n
    k_tiles = tl.cdiv(K, BLOCK_K)
    for tile in tl.range(tl.program_id(0), total, programs, flatten=FLATTEN, warp_specialize=WS):
        mt = tile // num_n
        nt = tile % num_n
        e = tl.load(tile_expert_ptr + mt)
        r0 = mt * BLOCK_M
        brow = e * b_rows_per_expert + nt * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for ki in range(k_tiles):
            k = ki * BLOCK_K
            acc = tl.dot(a_desc.load([r0, k]), b_desc.load([brow, k]).T, acc)
        if SUBTILE:
            acc = tl.permute(tl.reshape(acc, (BLOCK_M, 2, BLOCK_N // 2)), (0, 2, 1))
            acc0, acc1 = tl.split(acc)
            c_desc.store([r0, nt * BLOCK_N], acc0.to(tl.bfloat16))
            c_desc.store([r0, nt * BLOCK_N + BLOCK_N // 2], acc1.to(tl.bfloat16))
        else:
            c_desc.store([r0, nt * BLOCK_N], acc.to(tl.bfloat16))


@triton.jit
def padded_swiglu(a_desc, b_desc, c_desc, tile_expert_ptr, n_tiles_ptr, pair_of_row_ptr, weights_ptr, I, K, programs,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, STRIDED: tl.constexpr,
                  FAST: tl.constexpr = False):
    """gate_up with the SwiGLU epilogue: one [BLOCK_M, BLOCK_N] tile = BLOCK_N / 2 gate columns and the same
    up columns (one dot), h = silu(gate) * up * routing weight stored [BLOCK_M, BLOCK_N / 2]. STRIDED: B is
    the usual [El, 2I, K] layout read through a 4D descriptor [El * 2I / H2, 2, H2, K] whose gate / up
    dimension strides by I rows; else B's rows are interleaved in memory in blocks of BLOCK_N / 2."""
    H2: tl.constexpr = BLOCK_N // 2
    num_n = I // H2
    total = tl.load(n_tiles_ptr) * num_n
    k_tiles = tl.cdiv(K, BLOCK_K)
    for tile in tl.range(tl.program_id(0), total, programs, flatten=True):
        mt = tile // num_n
        nt = tile % num_n
        e = tl.load(tile_expert_ptr + mt)
        r0 = mt * BLOCK_M
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for ki in range(k_tiles):
            k = ki * BLOCK_K
            if STRIDED:
                b = b_desc.load([e * (2 * I // H2) + nt, 0, 0, k]).reshape(BLOCK_N, BLOCK_K)
            else:
                b = b_desc.load([e * 2 * I + nt * BLOCK_N, k])
            acc = tl.dot(a_desc.load([r0, k]), b.T, acc)
        acc = tl.permute(tl.reshape(acc, (BLOCK_M, 2, H2)), (0, 2, 1))
        g, u = tl.split(acc)
        g = g.to(tl.bfloat16).to(tl.float32)
        u = u.to(tl.bfloat16).to(tl.float32)
        rows = r0 + tl.arange(0, BLOCK_M)
        pair = tl.load(pair_of_row_ptr + rows)
        w = tl.load(weights_ptr + pair, mask=pair >= 0, other=0.0).to(tl.float32)
        if FAST:  # approximate exp and division: not bit-identical to fused.cu silu_mul_weight
            h = tl.fdiv(g, 1.0 + tl.exp(-g)) * u * w[:, None]
        else:
            h = tl.math.div_rn(g, 1.0 + libdevice.exp(-g)) * u * w[:, None]
        c_desc.store([r0, nt * H2], h.to(tl.bfloat16))


def main():
    a = problem_args(__doc__, [("--skew", float, 0.0, "uneven expert loads (probe_util.random_routing)"),
                                  ("--part", str, "all", "all | plain | swiglu")])
    T, H, I, E, K = a.tokens, a.hidden, a.inter, a.experts, a.topk
    P = T * K
    torch.manual_seed(0)
    ids, counts, offs = random_routing(T, E, K, a.skew)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    bm, bn, bk = 128, 256, 64
    dest, table, n_pad, Pp = padded_layout(counts, bm)
    tile_expert = table.view(-1, 3)[:, 0].contiguous()
    n_tiles = torch.tensor([n_pad], dtype=torch.int32, device="cuda")
    _, t_cur, n_cur, _ = padded_layout(counts, bm, pad=1)  # the unpadded rows of the masked-store kernel
    nt_cur = torch.tensor([n_cur], dtype=torch.int32, device="cuda")
    print(f"{T} tokens, skew {a.skew}: rows per expert min {int(counts.min())} mean {P / E:.0f} max {int(counts.max())}; "
          f"padded rows {Pp} (+{100.0 * (Pp - P) / P:.1f} %)", flush=True)
    dummy_i = torch.zeros(1, dtype=torch.int32, device="cuda")
    dummy_w = torch.zeros(1, dtype=torch.bfloat16, device="cuda")
    for name, n, k in (("gate_up", 2 * I, H), ("down", H, I)) if a.part in ("all", "plain") else ():
        w = torch.randn(E, n, k, device="cuda", dtype=torch.bfloat16) * 0.02
        xs = torch.randn(P, k, device="cuda", dtype=torch.bfloat16)
        xp = torch.zeros(Pp, k, device="cuda", dtype=torch.bfloat16)
        xp[dest] = xs
        flops = 2.0 * P * n * k
        ref = torch._grouped_mm(xs, w.transpose(1, 2), offs)
        w2 = w.view(E * n, k)
        a_cur, b_desc = TensorDescriptor.from_tensor(xs, [bm, bk]), TensorDescriptor.from_tensor(w2, [bn, bk])
        a_pad = TensorDescriptor.from_tensor(xp, [bm, bk])
        y_cur = torch.empty(P, n, device="cuda", dtype=torch.bfloat16)
        y_pad = torch.empty(Pp, n, device="cuda", dtype=torch.bfloat16)
        c_full = TensorDescriptor.from_tensor(y_pad, [bm, bn])
        c_half = TensorDescriptor.from_tensor(y_pad, [bm, bn // 2])
        names = ["_grouped_mm", "current (masked store) s4"]
        fns = [lambda: torch._grouped_mm(xs, w.transpose(1, 2), offs),
               lambda: moe_gemm[(sms,)](a_cur, b_desc, y_cur, t_cur, nt_cur, dummy_i, dummy_w, n, n, n, 0, k, sms,
                                        BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, SWIGLU=False, num_warps=8, num_stages=4)]
        checks = [None, lambda: y_cur]
        for flatten, subtile, ws, stages in ((False, False, False, 4), (True, False, False, 4), (True, True, False, 4),
                                             (True, True, False, 3), (False, True, False, 4), (True, True, True, 3),
                                             (False, False, True, 3)):
            c = c_half if subtile else c_full

            def f(c=c, flatten=flatten, subtile=subtile, ws=ws, stages=stages):
                padded_gemm[(sms,)](a_pad, b_desc, c, tile_expert, n_tiles, n, n, k, sms, BLOCK_M=bm, BLOCK_N=bn,
                                    BLOCK_K=bk, FLATTEN=flatten, SUBTILE=subtile, WS=ws, num_warps=8, num_stages=stages)
            label = f"padded TMA store{' flatten' if flatten else ''}{' subtile' if subtile else ''}{' ws' if ws else ''} s{stages}"
            if not runs(label, f, 160):
                continue
            names.append(label)
            fns.append(f)
            checks.append(lambda: y_pad[dest])
        times = med(fns)
        for nm, ms, chk in zip(names, times, checks):
            ok = ""
            if chk is not None:
                # each variant writes its own output: rerun it alone before reading
                fns[names.index(nm)]()
                torch.cuda.synchronize()
                ok = " equal" if torch.equal(chk(), ref) else f" DIFFERS (max {(chk().float() - ref.float()).abs().max().item():.3g})"
            print(f"  {name:8s} {nm:42s} {ms:.3f} ms = {flops / ms / 1e9:4.0f} TFLOP/s{ok}", flush=True)

    if a.part in ("all", "swiglu"):
        swiglu_probe(counts=counts, offs=offs, dest=dest, tile_expert=tile_expert, n_tiles=n_tiles, Pp=Pp,
                     t_cur=t_cur, nt_cur=nt_cur, sms=sms, H=H, I=I, E=E, P=P, T=T, K=K)


def swiglu_probe(counts, offs, dest, tile_expert, n_tiles, Pp, t_cur, nt_cur, sms, H, I, E, P, T, K):
    """gate_up + SiLU * up * w: current plain GEMM (the SiLU kernel comes on top, ~0.13 ms at 235B) against
    the padded SwiGLU epilogue over interleaved weights and over the 4D strided descriptor."""
    bm, bn, bk = 128, 256, 64
    h2 = bn // 2
    gu = torch.randn(E, 2 * I, H, device="cuda", dtype=torch.bfloat16) * 0.02
    inter = gu.view(E, 2, I // h2, h2, H).transpose(1, 2).contiguous().view(E * 2 * I, H)
    xs = torch.randn(P, H, device="cuda", dtype=torch.bfloat16)
    xp = torch.zeros(Pp, H, device="cuda", dtype=torch.bfloat16)
    xp[dest] = xs
    wts = torch.rand(P, device="cuda").to(torch.bfloat16)  # routing weight per row (pair = row here)
    pair_of_row = torch.full((Pp,), -1, dtype=torch.int32, device="cuda")
    pair_of_row[dest] = torch.arange(P, dtype=torch.int32, device="cuda")
    g = torch._grouped_mm(xs, gu.transpose(1, 2), offs).float()
    ref = (g[:, :I] / (1 + torch.exp(-g[:, :I])) * g[:, I:] * wts.float()[:, None]).to(torch.bfloat16)
    a_cur = TensorDescriptor.from_tensor(xs, [bm, bk])
    a_pad = TensorDescriptor.from_tensor(xp, [bm, bk])
    b_plain = TensorDescriptor.from_tensor(gu.view(E * 2 * I, H), [bn, bk])
    b_inter = TensorDescriptor.from_tensor(inter, [bn, bk])
    b_strided = TensorDescriptor(gu, [E * 2 * I // h2, 2, h2, H], [h2 * H, I * H, H, 1], [1, 2, h2, bk])
    gout = torch.empty(P, 2 * I, device="cuda", dtype=torch.bfloat16)
    hp = torch.empty(Pp, I, device="cuda", dtype=torch.bfloat16)
    c_h = TensorDescriptor.from_tensor(hp, [bm, h2])
    dummy_i = torch.zeros(1, dtype=torch.int32, device="cuda")
    flops = 2.0 * P * 2 * I * H
    names = ["current plain gate_up (+ SiLU kernel)"]
    fns = [lambda: moe_gemm[(sms,)](a_cur, b_plain, gout, t_cur, nt_cur, dummy_i, wts, 2 * I, 2 * I, 2 * I, 0, H, sms,
                                    BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, SWIGLU=False, num_warps=8, num_stages=4)]
    for strided, stages, fast in ((False, 4, False), (True, 4, False), (True, 4, True), (False, 4, True)):
        b = b_strided if strided else b_inter

        def f(b=b, strided=strided, stages=stages, fast=fast):
            padded_swiglu[(sms,)](a_pad, b, c_h, tile_expert, n_tiles, pair_of_row, wts, I, H, sms, BLOCK_M=bm,
                                  BLOCK_N=bn, BLOCK_K=bk, STRIDED=strided, FAST=fast, num_warps=8, num_stages=stages)
        label = (f"padded swiglu {'strided 4D desc' if strided else 'interleaved weights'} s{stages}"
                 f"{' fast exp/div' if fast else ''}")
        if not runs(label, f):
            continue
        ok = torch.equal(hp[dest], ref)
        err = "" if ok else f" DIFFERS (max {(hp[dest].float() - ref.float()).abs().max().item():.3g})"
        names.append(label + (" equal" if ok else err))
        fns.append(f)
    for nm, ms in zip(names, med(fns)):
        print(f"  gate_up+swiglu {nm:60s} {ms:.3f} ms = {flops / ms / 1e9:4.0f} TFLOP/s", flush=True)


if __name__ == "__main__":
    main()
