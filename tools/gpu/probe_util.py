"""Shared by the expert-GEMM probes (probe_*.py, check_moe_gemm.py): CUDA-event timing and the
MoE problem (tokens, widths, experts, top-k) with random routing."""
import argparse

import torch


def timed(fn, reps=30, warmup=5):
    """Median milliseconds of fn over reps runs (CUDA events), after warmup runs."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


def problem_args(doc, extra=()):
    """--tokens --hidden --inter --experts --topk, defaulting to Qwen3-235B-A22B at 64 x 103 tokens, and
    the caller's own options as (flag, type, default, help) tuples."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--tokens", type=int, default=6592)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--inter", type=int, default=1536)
    ap.add_argument("--experts", type=int, default=128)
    ap.add_argument("--topk", type=int, default=8)
    for flag, kind, default, help_ in extra:
        ap.add_argument(flag, type=kind, default=default, help=help_)
    return ap.parse_args()


def random_routing(T, E, K, skew=0.0):
    """Top-K of E experts per token from random scores: ids [T, K], rows per expert, cumulative ends (int32).
    skew > 0 adds a per-expert bias (skew x a standard normal) to every token's scores: uneven loads
    such as HF's initialisation gives layer 0 (rows per expert 271 / 412 / 645 at 6592 tokens)."""
    scores = torch.randn(T, E, device="cuda")
    if skew:
        scores += skew * torch.randn(E, device="cuda")
    ids = torch.topk(scores, K, -1)[1]
    counts = torch.bincount(ids.reshape(-1), minlength=E)
    return ids, counts, torch.cumsum(counts, 0).to(torch.int32)


def padded_layout(counts, bm, pad=None):
    """fused.cu sort_pairs' layout with `pad` (default bm): every expert's rows from a multiple of pad
    on (pad 1: contiguous). Returns the row of each grouped row, the (expert, first row, end row)
    table of bm-row tiles of fused.cu moe_tiles (int32, flat) with its tile count, and the row total."""
    pad = bm if pad is None else pad
    padded = (counts + pad - 1) // pad * pad
    pstart = torch.cumsum(padded, 0) - padded
    start = torch.cumsum(counts, 0) - counts
    E = counts.numel()
    expert_of_row = torch.repeat_interleave(torch.arange(E, device=counts.device), counts)
    rows = torch.arange(int(counts.sum()), device=counts.device)
    dest = pstart[expert_of_row] + (rows - start[expert_of_row])
    table = []
    for e, (s, n) in enumerate(zip(pstart.tolist(), counts.tolist())):
        for r in range(s, s + n, bm):
            table += [e, r, s + n]
    return dest, torch.tensor(table, dtype=torch.int32, device=counts.device), len(table) // 3, int(padded.sum())
