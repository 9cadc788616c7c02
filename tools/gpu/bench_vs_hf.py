#!/usr/bin/env python3
"""Per-layer time of real-width Qwen3-MoE layers: HF transformers vs shardcheck, side by side in
one run on the same GPU, same weights, same input (batch 64 x seq 103, bf16, random weights).

For each model (Qwen3-30B-A3B, Qwen3-235B-A22B geometry from fixtures/configs):
  1. HF baseline, the method of ../shared/reference.md: a Qwen3MoeForCausalLM with 2 and with 4
     layers (random init, bf16, HF's defaults: sdpa attention, grouped_mm experts), forward of
     64 x 103 random token ids; per layer = (T(4) - T(2)) / 2 (median of timed runs).
  2. HF layer 0 alone, replayed with the arguments it received inside the model (hook), timed the
     same way: the like-for-like number for shardcheck's single-layer timing.
  3. shardcheck: the same layer-0 weights (saved as an HF checkpoint of one layer), the same input
     and HF's layer-0 output as the reference, through `shardcheck bench` with each kernel set:
     per-layer time, NMSE against HF's output, fraction of the bf16 roofline.
  4. Optionally (--capture-model), all-layer capture overhead: `shardcheck bench --capture` on a
     4-layer checkpoint saved from the HF model.
Writes OUT/gpu_layer.json and OUT/gpu_layer.md (the README table).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, Qwen3MoeConfig

from probe_util import Clocks, clocks_text, layer_gemms

MODELS = {"qwen3-30b-a3b": 2.0, "qwen3-235b-a22b": 5.0}  # name -> goal ms per layer
HF_MEASURED = {"qwen3-30b-a3b": 5.23, "qwen3-235b-a22b": 11.86}  # reference.md, one H100


def timed(fn, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeats):
        a = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - a)
    ts.sort()
    return ts[len(ts) // 2]


def timed_back_to_back(fn, n=10, repeats=5):
    """Per-call seconds of n calls launched back to back with one synchronisation (median of runs):
    a layer's time inside a model's forward, the like-for-like method for HF's (T4 - T2) / 2."""
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeats):
        a = time.perf_counter()
        for _ in range(n):
            fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - a) / n)
    ts.sort()
    return ts[len(ts) // 2]


def micro(cfg, T):
    """Building blocks of one layer alone (ms), to see where a layer's time goes."""
    H, E, K, I = cfg.hidden_size, cfg.num_experts, cfg.num_experts_per_tok, cfg.moe_intermediate_size
    nq, nkv, D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    bf = dict(device="cuda", dtype=torch.bfloat16)
    x = torch.randn(T, H, **bf)
    ids = torch.rand(T, E, device="cuda").topk(K, -1).indices
    order = ids.reshape(-1).sort().indices
    counts = torch.zeros(E, dtype=torch.long, device="cuda").scatter_add_(0, ids.reshape(-1), torch.ones_like(ids.reshape(-1)))
    offs = counts.cumsum(0).to(torch.int32)
    gu = torch.randn(E, 2 * I, H, **bf) * 0.02
    dn = torch.randn(E, H, I, **bf) * 0.02
    xs = x.index_select(0, order // K)
    h = torch.randn(T * K, I, **bf)
    y = torch.randn(T * K, H, **bf)
    wq = torch.randn(nq * D, H, **bf)
    wkv = torch.randn(2 * nkv * D, H, **bf)
    wo = torch.randn(H, nq * D, **bf)
    ao = torch.randn(T, nq * D, **bf)
    B, S = 64, T // 64
    q = torch.randn(B, nq, S, D, **bf)
    kk = torch.randn(B, nkv, S, D, **bf)
    m = {}
    m["gather_x"] = timed(lambda: x.index_select(0, order // K))
    m["grouped_gate_up"] = timed(lambda: torch._grouped_mm(xs, gu.transpose(1, 2), offs=offs))
    m["grouped_down"] = timed(lambda: torch._grouped_mm(h, dn.transpose(1, 2), offs=offs))
    m["unsort_sum"] = timed(lambda: torch.empty_like(y).index_copy_(0, order, y).view(T, K, H).sum(1, dtype=torch.float32))
    m["sort"] = timed(lambda: ids.reshape(-1).sort())
    m["qkv_o_linear"] = timed(lambda: (torch.nn.functional.linear(x, wq), torch.nn.functional.linear(x, wkv),
                                       torch.nn.functional.linear(ao, wo)))
    m["sdpa_flash_gqa"] = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, kk, kk, is_causal=True, enable_gqa=True))
    m["rms_norm_q"] = timed(lambda: torch.rms_norm(q, (D,), torch.ones(D, **bf), 1e-6))
    # Alternatives under study.
    gu_rm = gu.transpose(1, 2).contiguous()  # [E, H, 2I] row-major
    dn_rm = dn.transpose(1, 2).contiguous()
    m["grouped_gate_up_rowmajor_b"] = timed(lambda: torch._grouped_mm(xs, gu_rm, offs=offs))
    m["grouped_down_rowmajor_b"] = timed(lambda: torch._grouped_mm(h, dn_rm, offs=offs))
    inv = torch.empty_like(order)
    inv[order] = torch.arange(order.numel(), device="cuda")
    wts = torch.rand(T * K, device="cuda").to(torch.bfloat16)
    crow = torch.arange(0, T * K + 1, K, device="cuda")
    try:
        P = torch.sparse_csr_tensor(crow, inv, wts, (T, T * K))
        m["combine_sparse_csr_mm"] = timed(lambda: P @ y)
    except Exception as e:  # noqa: BLE001
        m["combine_sparse_csr_mm_error"] = str(e)[:200]
    m["combine_index_add_bf16"] = timed(lambda: torch.zeros(T, H, **bf).index_add_(0, order // K, y))
    m["combine_gather_sum"] = timed(lambda: y.index_select(0, inv).view(T, K, H).sum(1, dtype=torch.float32))
    wD = torch.ones(D, **bf)
    qs = q.transpose(1, 2).contiguous()  # [B, S, nq, D]
    m["qnorm_vector_norm_mulout"] = timed(lambda: torch.mul(
        torch.mul(qs, torch.rsqrt(torch.linalg.vector_norm(qs, 2, -1, True, dtype=torch.float32).square() / D + 1e-6)).to(torch.bfloat16), wD))
    m["qnorm_manual_hf"] = timed(lambda: wD * (qs.float() * torch.rsqrt(qs.float().pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16))
    m["qnorm_rms_norm_contig"] = timed(lambda: torch.rms_norm(qs, (D,), wD, 1e-6))
    if hasattr(torch, "_fused_rms_norm"):
        try:
            m["qnorm_fused_rms_norm"] = timed(lambda: torch._fused_rms_norm(qs, [D], wD, 1e-6))
        except Exception as e:  # noqa: BLE001
            m["qnorm_fused_rms_norm_error"] = str(e)[:200]
    m = {k: (round(v * 1e3, 4) if isinstance(v, float) else v) for k, v in m.items()}
    fl = 2 * T * K * 3 * H * I
    m["experts_tflops_at_measured"] = round(fl / ((m["grouped_gate_up"] + m["grouped_down"]) * 1e-3) / 1e12, 1)
    print(f"micro {cfg.hidden_size}: {m}", flush=True)
    return m


def build(cfg, layers):
    c = Qwen3MoeConfig.from_dict({**cfg.to_dict(), "num_hidden_layers": layers})
    with torch.device("cuda"):
        torch.manual_seed(0)
        m = AutoModelForCausalLM.from_config(c, dtype=torch.bfloat16)
    return m.eval()


def nmse_text(row):
    if not row or "nmse_vs_ref" not in row:
        return "-"
    t = f"{row['nmse_vs_ref']:.1e}"
    if "tokens_routed_differently" in row:
        t += (f" ({row['tokens_routed_differently']} of {row['tokens']} tokens routed to other experts;"
              f" the rest {row['nmse_vs_ref_routed_alike']:.1e})")
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build-gpu/shardcheck")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/sc-gpu-bench")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=103)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--kernels", default="eager,sdpa+grouped_experts+fused_norm,best")
    ap.add_argument("--capture-model", default="qwen3-30b-a3b")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--micro", action="store_true", help="also time the MoE/attention building blocks alone")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    dev = torch.cuda.get_device_name(0)
    results = {"device": dev, "torch": torch.__version__, "batch": args.batch, "seq": args.seq, "models": {}}
    import transformers
    results["transformers"] = transformers.__version__
    torch.manual_seed(1)
    for name in args.models.split(","):
        cfg = Qwen3MoeConfig.from_json_file(f"fixtures/configs/{name}/config.json")
        if args.micro:
            results.setdefault("micro", {})[name] = micro(cfg, args.batch * args.seq)
        ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), device="cuda")
        r = {"goal_ms": MODELS[name], "hf_reference_md_ms": HF_MEASURED[name]}
        t = {}
        with torch.no_grad(), Clocks() as hf_clocks:
            for L in (2, 4):
                m = build(cfg, L)
                print(f"[{name}] HF {L} layers: experts={getattr(m.config, '_experts_implementation', None)} "
                      f"attn={m.config._attn_implementation}", flush=True)
                r["hf_experts_implementation"] = str(getattr(m.config, "_experts_implementation", None))
                r["hf_attn_implementation"] = str(m.config._attn_implementation)
                t[L] = timed(lambda: m(input_ids=ids, use_cache=False), repeats=args.repeats)
                if L == 2:
                    # Layer 0's arguments and output inside the model, then the layer alone.
                    layer = m.model.layers[0]
                    seen = {}

                    def pre(mod, a, kw):
                        seen["args"], seen["kwargs"] = a, kw

                    def post(mod, a, kw, out):
                        seen["out"] = out[0] if isinstance(out, tuple) else out

                    def gate_out(mod, a, out):
                        # HF's router: a module returning (logits, weights, ids) or the logits alone.
                        if isinstance(out, tuple):
                            seen["topk"] = next(t for t in out if torch.is_tensor(t) and not t.is_floating_point())
                        else:
                            seen["topk"] = torch.topk(torch.softmax(out.float(), -1), cfg.num_experts_per_tok, -1)[1]

                    h1 = layer.register_forward_pre_hook(pre, with_kwargs=True)
                    h2 = layer.register_forward_hook(post, with_kwargs=True)
                    h3 = layer.mlp.gate.register_forward_hook(gate_out)
                    m(input_ids=ids, use_cache=False)
                    h1.remove()
                    h2.remove()
                    h3.remove()
                    r["hf_layer_alone_ms"] = 1e3 * timed(lambda: layer(*seen["args"], **seen["kwargs"]),
                                                         repeats=args.repeats)
                    r["hf_layer_alone_back_to_back_ms"] = 1e3 * timed_back_to_back(
                        lambda: layer(*seen["args"], **seen["kwargs"]))
                    x = seen["args"][0] if seen["args"] else seen["kwargs"]["hidden_states"]
                    d = os.path.join(args.work, name)
                    os.makedirs(d, exist_ok=True)
                    sd = {f"model.layers.0.{k}": v.detach().contiguous() for k, v in layer.state_dict().items()}
                    save_file(sd, os.path.join(d, "model.safetensors"))
                    c1 = cfg.to_dict()
                    c1["num_hidden_layers"] = 1
                    c1["mlp_only_layers"] = []
                    with open(os.path.join(d, "config.json"), "w") as f:
                        json.dump(c1, f)
                    saved = {"x": x.detach().contiguous(), "ref": seen["out"].detach().contiguous()}
                    if "topk" in seen:
                        saved["ref_topk"] = seen["topk"].detach().to(torch.int64).reshape(-1, cfg.num_experts_per_tok).contiguous()
                    save_file(saved, os.path.join(d, "input.safetensors"))
                    if name == args.capture_model:
                        cd = os.path.join(args.work, name + "-2layers")
                        m.save_pretrained(cd)
                del m
                torch.cuda.empty_cache()
        r["clocks"] = {"hf": hf_clocks.summary}
        r["hf_per_layer_ms"] = 1e3 * (t[4] - t[2]) / 2
        print(f"[{name}] HF per layer (T4-T2)/2 = {r['hf_per_layer_ms']:.2f} ms, layer alone {r['hf_layer_alone_ms']:.2f} ms "
              f"(back to back {r['hf_layer_alone_back_to_back_ms']:.2f} ms)", flush=True)
        d = os.path.join(args.work, name)
        cmd = [args.bin, "bench", "--model", d, "--input", os.path.join(d, "input.safetensors"), "--device", "cuda",
               "--dtype", "bfloat16", "--repeats", str(args.repeats * 2), "--peak-tflops", str(args.peak_tflops), "--breakdown",
               "--json"]
        for k in args.kernels.split(","):
            cmd += ["--kernels", k]
        with Clocks() as sc_clocks:
            p = subprocess.run(cmd, capture_output=True, text=True)
        r["clocks"]["shardcheck"] = sc_clocks.summary
        # The same layer's GEMMs alone at their useful sizes (cuBLAS, no routing, no expert padding),
        # timed the same ways right after: what this GPU gives for the layer's FLOPs, a floor under
        # any implementation of the layer (which adds attention and memory-bound kernels to them).
        gemms, r["gemm_floor_tflop"] = layer_gemms(args.batch * args.seq, cfg.hidden_size, cfg.num_attention_heads,
                                                   cfg.num_key_value_heads, cfg.head_dim, cfg.num_experts,
                                                   cfg.num_experts_per_tok, cfg.moe_intermediate_size)
        with Clocks() as floor_clocks:
            r["gemm_floor_ms"] = 1e3 * timed(gemms, repeats=args.repeats * 2)
            r["gemm_floor_back_to_back_ms"] = 1e3 * timed_back_to_back(gemms)
        r["clocks"]["gemm_floor"] = floor_clocks.summary
        del gemms
        torch.cuda.empty_cache()
        print(f"[{name}] cuBLAS GEMMs of the layer alone: {r['gemm_floor_ms']:.2f} ms "
              f"(back to back {r['gemm_floor_back_to_back_ms']:.2f} ms)", flush=True)
        if p.returncode != 0:
            print(p.stdout, p.stderr, file=sys.stderr)
            r["shardcheck_error"] = p.stderr.strip()[-2000:]
        else:
            r["shardcheck"] = json.loads(p.stdout)
            for row in r["shardcheck"]["results"]:
                print(f"[{name}] shardcheck {row['kernels']:34s} {row['layer_ms']:.2f} ms "
                      f"(back to back {row.get('layer_ms_back_to_back', float('nan')):.2f} ms)  "
                      f"NMSE vs HF {nmse_text(row)}  roofline {100 * row['roofline_fraction']:.0f} %  "
                      f"parts {row.get('breakdown')}", flush=True)
        results["models"][name] = r
        if name == args.capture_model:
            cd = os.path.join(args.work, name + "-2layers")
            cmd = [args.bin, "bench", "--model", cd, "--capture", "--device", "cuda", "--dtype", "bfloat16",
                   "--batch", str(args.batch), "--seq", str(args.seq), "--repeats", str(args.repeats * 2), "--json"]
            for k in args.kernels.split(","):
                cmd += ["--kernels", k]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print(p.stdout, p.stderr, file=sys.stderr)
                results["capture_error"] = p.stderr.strip()[-2000:]
            else:
                results["capture"] = json.loads(p.stdout)
                for row in results["capture"]["results"]:
                    print(f"[{name}] capture overhead {row['kernels']}: {row['capture_overhead_pct']:+.2f} %", flush=True)
    with open(os.path.join(args.out, "gpu_layer.json"), "w") as f:
        json.dump(results, f, indent=2)
    lines = [f"Device: {dev}; torch {torch.__version__}, transformers {results['transformers']}; bf16, batch {args.batch} x seq {args.seq}, random weights; medians.", "",
             "Two timings of one layer: *per call* synchronises after every call (adds the launch latency and the host "
             "work before the first kernel to each call); *back to back* times 10 calls with one synchronisation, the "
             "layer's time inside a model's forward and the like-for-like method for HF's per-layer number "
             "(T(4 layers) - T(2 layers)) / 2. \"vs HF\" and the roofline use back to back. \"cuBLAS GEMMs alone\" "
             "runs only the layer's GEMMs at their useful sizes (q, k, v, o, router, and the expert FLOPs as two "
             "dense GEMMs of all token-expert pairs: no routing, no padding rows), timed the same ways in the same "
             "run: a floor for the layer on this GPU, to which any implementation adds attention and its "
             "memory-bound kernels.", "",
             "| layer | HF per layer (T4-T2)/2 | HF layer alone: per call / back to back | shardcheck eager, per call | LibTorch fast ops: per call / back to back | shardcheck fastest: per call / back to back | cuBLAS GEMMs alone: per call / back to back | kernels | fastest vs HF | roofline | NMSE vs HF | goal |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["models"].items():
        rows = r.get("shardcheck", {}).get("results", [])
        eager = next((x for x in rows if x["kernels"] == "eager"), None)
        unfused = next((x for x in rows if x["kernels"] == "sdpa+grouped_experts+fused_norm"), None)
        b2b = lambda x: x.get("layer_ms_back_to_back", x["layer_ms"])
        fast = min(rows, key=b2b) if rows else None
        fmt = lambda v: f"{v:.2f} ms" if v is not None else "-"
        pair = lambda x: f"{x['layer_ms']:.2f} / {b2b(x):.2f} ms" if x else "-"
        flops = r.get("shardcheck", {}).get("layer_tflop", 0) * 1e12
        lines.append(
            f"| {name} | {fmt(r['hf_per_layer_ms'])} | {fmt(r.get('hf_layer_alone_ms'))[:-3]} / {fmt(r.get('hf_layer_alone_back_to_back_ms'))} | "
            f"{fmt(eager and eager['layer_ms'])} | {pair(unfused)} | {pair(fast)} | "
            f"{fmt(r.get('gemm_floor_ms'))[:-3]} / {fmt(r.get('gemm_floor_back_to_back_ms'))} | {fast['kernels'] if fast else '-'} | "
            f"{(r['hf_per_layer_ms'] / b2b(fast)) if fast else 0:.2f}x | "
            f"{100 * flops / (b2b(fast) * 1e-3) / (args.peak_tflops * 1e12) if fast else 0:.0f} % | "
            f"{nmse_text(fast)} | <= {r['goal_ms']} ms |")
    for name, r in results["models"].items():
        rows = [x for x in r.get("shardcheck", {}).get("results", []) if "expert_rows" in x]
        if rows:
            er = rows[-1]["expert_rows"]
            lines.append("")
            lines.append(f"Expert load of the timed {name} call (HF's layer-0 weights and input, {rows[-1]['kernels']}): "
                         f"rows per expert min {er['min']} / mean {er['mean']:.0f} / max {er['max']}.")
    for name, r in results["models"].items():
        c = r.get("clocks", {})
        if c.get("hf") or c.get("shardcheck"):
            lines.append("")
            lines.append(f"GPU clocks while {name} was timed: HF {clocks_text(c.get('hf'))}; shardcheck {clocks_text(c.get('shardcheck'))}; "
                         f"cuBLAS GEMMs alone {clocks_text(c.get('gemm_floor'))}.")
    if "capture" in results:
        for row in results["capture"]["results"]:
            lines.append("")
            lines.append(f"All-layer read-position capture, {args.capture_model} 2 layers + embedding + head, {row['kernels']}: "
                         f"{row['forward_ms']:.2f} ms plain, {row['forward_capture_ms']:.2f} ms with capture ({row['capture_overhead_pct']:+.2f} %).")
    with open(os.path.join(args.out, "gpu_layer.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
