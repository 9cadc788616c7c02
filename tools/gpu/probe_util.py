"""Shared by the GPU scripts (bench_vs_hf.py, check_moe_gemm.py, probe_*.py): CUDA-event timing, the
MoE problem (tokens, widths, experts, top-k) with random routing, the GPU clocks sampled while a
phase runs, and a layer's GEMMs alone."""
import argparse
import subprocess
import tempfile

import torch


def timed(fn, reps=30, warmup=5):
    """Median milliseconds of fn over reps runs (CUDA events), after warmup runs."""
    for _ in range(warmup):
        fn()
    return med([fn], reps)[0]


def med(fns, reps=25):
    """Median milliseconds of each function (CUDA events), called in alternation after one warm-up call
    each: drift of the clocks during the run lands on all of them alike."""
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


def layer_gemms(T, H, heads, kv_heads, head_dim, E, K, I):
    """One Qwen3-MoE layer's GEMMs at their useful sizes and nothing else, as cuBLAS runs them: q, k,
    v, o, router, then the expert FLOPs as two dense GEMMs of all T x K token-expert pairs against one
    expert's weights (no routing, no padding rows, fewer weight bytes than E experts). Returns a
    function running them in order and their TFLOP: a floor for the layer's time on this GPU, since
    the layer adds attention and its memory-bound kernels to exactly these GEMMs."""
    d = dict(device="cuda", dtype=torch.bfloat16)
    g = torch.Generator(device="cuda").manual_seed(0)
    rand = lambda *s: torch.randn(*s, generator=g, **d)
    P = T * K
    x, attn, xs, hid = rand(T, H), rand(T, heads * head_dim), rand(P, H), rand(P, I)
    ops = [(x, rand(heads * head_dim, H) * 0.02), (x, rand(kv_heads * head_dim, H) * 0.02),
           (x, rand(kv_heads * head_dim, H) * 0.02), (attn, rand(H, heads * head_dim) * 0.02),
           (x, rand(E, H) * 0.02), (xs, rand(2 * I, H) * 0.02), (hid, rand(H, I) * 0.02)]
    outs = [torch.empty(a.shape[0], w.shape[0], **d) for a, w in ops]

    def run():
        for (a, w), o in zip(ops, outs):
            torch.mm(a, w.t(), out=o)

    return run, sum(2.0 * a.shape[0] * w.shape[0] * w.shape[1] for a, w in ops) / 1e12


class Clocks:
    """nvidia-smi sampled every 50 ms while a phase runs: the SM clock and power of the samples with
    the GPU busy, and how many of them ran at the software power cap (clocks event reason 0x4). Under
    sustained dense GEMMs an H100 / H200 reaches its power limit and lowers its clock, so timings of
    long back-to-back runs are slower than short ones; this records it next to the numbers."""
    FIELDS = "utilization.gpu,clocks.sm,power.draw,{}"
    REASONS = ("clocks_event_reasons.active", "clocks_throttle_reasons.active")  # the latter before driver 535

    def __enter__(self):
        self.proc, self.log = None, tempfile.TemporaryFile(mode="w+")
        # nvidia-smi numbers the GPUs by PCI bus, torch by CUDA_VISIBLE_DEVICES: name the GPU by its UUID.
        gpu = f"GPU-{torch.cuda.get_device_properties(torch.cuda.current_device()).uuid}"
        for reasons in self.REASONS:
            query = self.FIELDS.format(reasons)
            try:
                ok = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits", "-i", gpu],
                                    capture_output=True, text=True).returncode == 0
            except OSError:
                return self
            if ok:
                # Written to a file, not a pipe: an unread pipe fills (64 KB, ~85 s of samples) and stops nvidia-smi.
                self.proc = subprocess.Popen(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits",
                                              "-lms", "50", "-i", gpu], stdout=self.log, stderr=subprocess.DEVNULL, text=True)
                break
        return self

    def __exit__(self, *exc):
        self.summary = None
        if not self.proc:
            self.log.close()
            return False
        self.proc.terminate()
        self.proc.wait()
        self.log.seek(0)
        out = self.log.read()
        self.log.close()
        busy = []
        for line in out.splitlines():
            f = [v.strip() for v in line.split(",")]
            try:
                util, clock, power, reasons = float(f[0]), float(f[1]), float(f[2]), int(f[3], 16)
            except (ValueError, IndexError):
                continue
            if util >= 50:
                busy.append((clock, power, reasons))
        if busy:
            clocks = sorted(c for c, _, _ in busy)
            self.summary = {"busy_samples": len(busy), "sm_clock_median_mhz": clocks[len(clocks) // 2],
                            "sm_clock_min_mhz": clocks[0], "power_max_w": max(p for _, p, _ in busy),
                            "power_capped_pct": 100.0 * sum(1 for _, _, r in busy if r & 0x4) / len(busy)}
        return False


def clocks_text(c):
    if not c:
        return "-"
    return (f"median SM clock {c['sm_clock_median_mhz']:.0f} MHz (min {c['sm_clock_min_mhz']:.0f}), "
            f"{c['power_capped_pct']:.0f} % of {c['busy_samples']} busy samples at the power cap, max {c['power_max_w']:.0f} W")


def runs(label, fn, width=300):
    """Run a probe variant once (and synchronise); a variant this Triton / GPU refuses (compile
    failure, shared memory) is reported under its label and gives False, so the probe goes on."""
    try:
        fn()
        torch.cuda.synchronize()
        return True
    except Exception as ex:  # noqa: BLE001 - any refusal of a variant is a result, not an error
        print(f"  {label}: {type(ex).__name__}: {str(ex)[:width]}", flush=True)
        return False
