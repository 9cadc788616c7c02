#!/usr/bin/env python3
"""The seed's steering job end to end on one GPU: HF transformers and shardcheck in one run, on the
same weights and the same token ids.

The job (compute_logit_diff_all.py of the users' seed): extract a steering vector at every layer
from contrastive A/B pairs (mean over pairs of positive - negative layer output at the answer
letter), then the evaluation sweep over every layer x multiplier: the vector times the multiplier
added to the layer's output from the instruction end onward, and the logit difference between the
matching and the non-matching answer letter at the last prompt position.

Same weights: shardcheck's random weights are a pure function of (seed, tensor name, element
index) (families/decoder/weights.h: splitmix64 of the index, uniform with std 1/sqrt(in) for
Linear weights, std 1 for the embedding, 1 + U(-0.1, 0.1) for RMSNorm weights). This script makes
the same values with the same integer arithmetic on the GPU for HF's parameters (HF 5.17 packs the
experts: gate_up_proj[e] = [gate_e; up_e], down_proj[e] = down_e), so neither side reads a
checkpoint and both generate their weights on the GPU.

Same inputs: shardcheck runs first with --dump-tokens and this script feeds HF exactly those token
ids (left padding, attention mask, generate-style positions: cumsum(mask) - 1, as both do).

HF side, at HF's fastest settings for the seed's approach: bf16, sdpa attention, HF's default
(grouped_mm) experts, extraction with batched output_hidden_states (the last layer through a hook:
HF's last hidden state is after the final norm), the sweep with a forward hook on the layer adding
the vector, all multipliers of a layer in one batched forward (rows multiplier-major).

shardcheck side: `shardcheck steer --config ... --device cuda --dtype bfloat16` (random weights
made on the GPU, best kernels, the cached sweep), timed per phase from its JSON summary.

Both sides: wall time per phase (weights, extraction, sweep), tokens/s, peak GPU memory (nvidia-smi
samples of the process, every 0.1 s). Agreement: cosine of the two vectors per layer, and the
per-layer mean logit differences.

Usage (GPU machine, after tools/gpu/run.sh OUT build):
  python3 tools/gpu/steer_vs_hf.py --out OUT [--layers 48] [--pairs 256] [--batch 64] [--prompts 64]
Writes OUT/steer_vs_hf.json and OUT/steer_vs_hf.md (commit them to bench/results/).
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def s64(v):
    v &= M64
    return v - (1 << 64) if v >= 1 << 63 else v


def splitmix64(x):
    x = (x + GOLDEN) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def fnv1a(s):
    h = 0xCBF29CE484222325
    for ch in s.encode():
        h = ((h ^ ch) * 0x100000001B3) & M64
    return h


def lsr(x, k):
    return (x >> k) & ((1 << (64 - k)) - 1)


def random_tensor(name, shape, seed, scale, offset, device="cuda"):
    """shardcheck's random_tensor(name) (float32), on the GPU, in chunks of rows."""
    key = splitmix64(seed ^ fnv1a(name))
    n = 1
    for d in shape:
        n *= d
    out = torch.empty(n, dtype=torch.float32, device=device)
    chunk = 1 << 26
    for b in range(0, n, chunk):
        idx = torch.arange(b, min(n, b + chunk), dtype=torch.int64, device=device)
        x = idx * s64(GOLDEN) + s64(key) + s64(GOLDEN)
        x = (x ^ lsr(x, 30)) * s64(0xBF58476D1CE4E5B9)
        x = (x ^ lsr(x, 27)) * s64(0x94D049BB133111EB)
        x = x ^ lsr(x, 31)
        v = (lsr(x, 40) - (1 << 23)).to(torch.float32) * (1.0 / (1 << 23))
        out[b:b + v.numel()] = v.mul_(scale).add_(offset)
    return out.view(shape)


def weight(name, shape, seed):
    if name.endswith("norm.weight"):
        return random_tensor(name, shape, seed, 0.1, 1.0)
    if name.endswith("embed_tokens.weight"):
        return random_tensor(name, shape, seed, 3.0 ** 0.5, 0.0)
    return random_tensor(name, shape, seed, (3.0 / shape[1]) ** 0.5, 0.0)


class PeakMemory:
    """Peak GPU memory of a process (MiB), sampled with nvidia-smi every 0.1 s."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                for line in out.splitlines():
                    p, m = [x.strip() for x in line.split(",")]
                    if int(p) == self.pid:
                        self.peak = max(self.peak, int(m))
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.1)

    def done(self):
        self.stop = True
        self.t.join()
        return self.peak


def caa_dataset(path, n):
    """n A/B items (distinct questions, alternating answer letters)."""
    topics = ["meters", "feet", "kilograms", "pounds", "litres", "gallons", "kilometres", "miles"]
    items = []
    for i in range(n):
        a, b = topics[i % len(topics)], topics[(i * 3 + 1) % len(topics)]
        q = (f"Question {i}: a listener asks how far, heavy or large thing number {i} is. Which answer uses the "
             f"unit system you prefer?\n\nChoices:\n (A) About {i + 2} {a}.\n (B) About {2 * i + 5} {b}.")
        m, nm = ("(A)", "(B)") if i % 2 == 0 else ("(B)", "(A)")
        items.append({"question": q, "answer_matching_behavior": m, "answer_not_matching_behavior": nm})
    with open(path, "w") as f:
        json.dump(items, f)


def left_pad(seqs, pad):
    S = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), S), pad, dtype=torch.int64)
    mask = torch.zeros((len(seqs), S), dtype=torch.int64)
    for r, s in enumerate(seqs):
        ids[r, S - len(s):] = torch.tensor(s)
        mask[r, S - len(s):] = 1
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    return ids.cuda(), mask.cuda(), pos.cuda(), S


def hf_build(cfg_path, seed, dtype):
    """HF's model on the GPU (from_config, sdpa) with shardcheck's weight values copied in."""
    from transformers import AutoModelForCausalLM, AutoConfig

    cfg = AutoConfig.from_pretrained(os.path.dirname(cfg_path))
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    model.eval()
    E, I = cfg.num_experts, cfg.moe_intermediate_size
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("mlp.experts.gate_up_proj") or name.endswith("mlp.experts.down_proj"):
                pre = name.rsplit(".", 1)[0]  # model.layers.L.mlp.experts
                for e in range(E):
                    if name.endswith("gate_up_proj"):
                        g = weight(f"{pre}.{e}.gate_proj.weight", (I, cfg.hidden_size), seed)
                        u = weight(f"{pre}.{e}.up_proj.weight", (I, cfg.hidden_size), seed)
                        blk = torch.cat([g, u], 0)
                    else:
                        blk = weight(f"{pre}.{e}.down_proj.weight", (cfg.hidden_size, I), seed)
                    p[e].copy_(blk if tuple(p[e].shape) == tuple(blk.shape) else blk.t())
            else:
                p.copy_(weight(name, tuple(p.shape), seed))
    torch.cuda.synchronize()
    return model, cfg


def hf_extract(model, cfg, tokens, batch):
    """Vectors [L, H] (fp64 sums of positive - negative at the read column), seconds, tokens."""
    layers = model.model.layers
    L = len(layers)
    pad = tokens["pad_id"]
    t0 = time.perf_counter()
    ex = tokens["extract"]
    sums = torch.zeros(L, cfg.hidden_size, dtype=torch.float64, device="cuda")
    last = {}
    h = layers[L - 1].register_forward_hook(lambda m, a, o: last.__setitem__("x", o[0] if isinstance(o, tuple) else o))
    n_tok = 0
    with torch.no_grad():
        for b in range(0, len(ex), batch):
            part = ex[b:b + batch]
            outs = []
            for side in ("positive", "negative"):
                ids, mask, pos, S = left_pad([e[side] for e in part], pad)
                n_tok += ids.numel()
                out = model.model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True)
                hs = list(out.hidden_states[1:L]) + [last["x"]]
                rows = torch.arange(len(part), device="cuda")
                read = torch.tensor([S - len(e[side]) + e[side + "_read"] for e in part], device="cuda")
                outs.append(torch.stack([x[rows, read] for x in hs], 0).double())  # [L, b, H]
            sums += (outs[0] - outs[1]).sum(1)
    vecs = (sums / len(ex)).float()
    torch.cuda.synchronize()
    h.remove()
    return vecs.cpu(), time.perf_counter() - t0, n_tok


def hf_sweep(model, tokens, vecs, mults):
    """Per layer one forward of every multiplier x prompt (rows multiplier-major), a hook adding
    the vector: mean logit differences [L, M], seconds, tokens."""
    layers = model.model.layers
    L = len(layers)
    pad = tokens["pad_id"]
    dtype = next(model.parameters()).dtype
    t0 = time.perf_counter()
    ev = tokens["eval"]
    ids, mask, pos, S = left_pad([e["prompt"] for e in ev], pad)
    starts = torch.tensor([S - len(e["prompt"]) + e["instruction_end"] for e in ev], device="cuda")
    M = len(mults)
    ids_m, mask_m, pos_m = ids.repeat(M, 1), mask.repeat(M, 1), pos.repeat(M, 1)
    steer_cols = (torch.arange(S, device="cuda")[None, :] >= starts[:, None]).repeat(M, 1)  # [M b, S]
    mcol = torch.tensor(mults, device="cuda", dtype=dtype).repeat_interleave(len(ev))[:, None, None]
    match = torch.tensor([e["match"] for e in ev], device="cuda").repeat(M)
    nonmatch = torch.tensor([e["nonmatch"] for e in ev], device="cuda").repeat(M)
    diffs = torch.zeros(L, M, dtype=torch.float64)
    per_example = torch.zeros(L, M, len(ev), dtype=torch.float64)
    n_tok = 0
    with torch.no_grad():
        for l in range(L):
            v = vecs[l].to("cuda", dtype)

            def add(m, a, o, v=v):
                x = o[0] if isinstance(o, tuple) else o
                x = x + steer_cols[..., None].to(x.dtype) * mcol * v
                return (x,) + tuple(o[1:]) if isinstance(o, tuple) else x

            hk = layers[l].register_forward_hook(add)
            logits = model(input_ids=ids_m, attention_mask=mask_m, position_ids=pos_m, logits_to_keep=1).logits[:, -1]
            hk.remove()
            n_tok += ids_m.numel()
            d = (logits.gather(1, match[:, None]).double() - logits.gather(1, nonmatch[:, None]).double()).view(M, len(ev))
            diffs[l] = d.mean(1).cpu()
            per_example[l] = d.cpu()
    torch.cuda.synchronize()
    hf_sweep.per_example = per_example  # [L, M, E], for the per-example agreement
    return diffs, time.perf_counter() - t0, n_tok


def cosines(a, b):
    return [float(torch.nn.functional.cosine_similarity(a[l].double().flatten(), b[l].double().flatten(), dim=0))
            for l in range(min(len(a), len(b)))]


def warm_page_cache(binary, paths):
    """Reads the shared libraries once, untimed: every library the binary maps (ldd: LibTorch,
    cuBLAS(Lt), NCCL, ...) and `paths`. CUDA loads kernels lazily from the mapped libraries, so the
    first process on a fresh machine reads them from disk (measured: its first two extraction
    batches 1.2-1.8 s instead of 0.15 s). Both sides map the same libraries (the build links the
    Python package's LibTorch), so whichever ran first paid for it."""
    import glob

    libs = []
    try:
        for line in subprocess.run(["ldd", binary], capture_output=True, text=True).stdout.splitlines():
            parts = line.split("=>")
            if len(parts) == 2 and parts[1].strip().startswith("/"):
                libs.append(parts[1].split("(")[0].strip())
    except OSError:
        pass
    n = 0
    for pat in [binary] + libs + paths:
        for f in glob.glob(pat):
            if os.path.isfile(f):
                with open(f, "rb") as fh:
                    while True:
                        b = fh.read(1 << 24)
                        if not b:
                            break
                        n += len(b)
    return n


def checkpoint_round_trip(args, cfg_path, work, ds, n_layers):
    """HF writes our weights as a sharded safetensors checkpoint (model.safetensors.index.json);
    shardcheck extracts from it and from the same weights generated: the vectors must be equal, and
    the load is timed (bytes, seconds, the progress line)."""
    cfg = json.load(open(cfg_path))
    cfg["num_hidden_layers"] = n_layers
    ck = os.path.join(work, f"ckpt-{n_layers}")
    os.makedirs(ck, exist_ok=True)
    ck_cfg = os.path.join(ck, "config.json")
    json.dump(cfg, open(ck_cfg, "w"), indent=1)
    t0 = time.perf_counter()
    model, _ = hf_build(ck_cfg, args.seed, getattr(torch, args.dtype))
    model.save_pretrained(ck, max_shard_size="4GB")
    t_save = time.perf_counter() - t0
    del model
    torch.cuda.empty_cache()
    files = sorted(os.listdir(ck))
    size = sum(os.path.getsize(os.path.join(ck, f)) for f in files)
    out = {"layers": n_layers, "files": files, "bytes": size, "hf_build_and_save_seconds": t_save}
    runs = {}
    for name, src in (("checkpoint", ["--model", ck]), ("generated", ["--config", ck_cfg])):
        cmd = [args.shardcheck, "steer", *src, "--dataset", ds, "--device", "cuda", "--dtype", args.dtype,
               "--batch-size", str(args.batch), "--seed", str(args.seed), "--no-eval", "--json",
               "--out", os.path.join(work, "ckpt-" + name)]
        t1 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t1
        if proc.returncode != 0:
            out[name] = {"error": proc.stderr[-2000:]}
            return out
        j = json.loads(proc.stdout)
        lines = [ln for ln in proc.stderr.replace("\r", "\n").splitlines() if "weights" in ln or "ETA" in ln]
        runs[name] = {"wall_seconds": wall, "load_seconds": j.get("load_seconds"), "extract_seconds": j["extract_seconds"],
                      "progress_lines": lines[:3] + lines[-3:]}
    from safetensors.torch import load_file

    a = load_file(os.path.join(work, "ckpt-checkpoint", "vectors.safetensors"))
    b = load_file(os.path.join(work, "ckpt-generated", "vectors.safetensors"))
    diffs = [float((a[f"layers.{l}.direction"].double() - b[f"layers.{l}.direction"].double()).abs().max())
             for l in range(n_layers)]
    out.update(runs)
    out["max_abs_vector_difference"] = max(diffs)
    ls = runs["checkpoint"]["load_seconds"] or 0
    out["load_gb_per_s"] = size / 1e9 / ls if ls > 0 else None
    return out


def gib(mib):
    return f"{mib / 1024:.1f} GiB"


def write_markdown(res, path):
    """The results table (bench/results/steer_vs_hf.md) from the run's JSON."""
    c, sc, hf = res["config"], res["shardcheck"], res.get("hf")
    sm = sc["summary"]
    sw = sm.get("sweep", {})
    batches = sm.get("extract_batch_seconds", [])
    sc_batches = sum(batches)
    sc_sweep = sw.get("seconds", 0.0)
    sc_setup = sm["extract_seconds"] - sc_batches
    sc_rest = sc["wall_seconds"] - sm["extract_seconds"] - sc_sweep
    L = []
    L.append("# The seed's steering job end to end: shardcheck vs HF transformers (one GPU)\n")
    L.append(f"`tools/gpu/steer_vs_hf.py`, one run, both sides on the same weights (shardcheck's counter-hash random "
             f"weights, made on the GPU by both) and the same token ids (`steer --dump-tokens`): "
             f"{c['geometry']} geometry, {c['layers']} layers, {c['dtype']}, {c['pairs']} contrastive A/B pairs in "
             f"batches of {c['batch']}, a vector at every layer, then the sweep over every layer x "
             f"{len(c['multipliers'])} multipliers on {c['prompts']} prompts. shardcheck kernels `{c['kernels']}`. "
             f"Before anything is timed, the shared libraries both sides map (LibTorch, cuBLAS, NCCL, ...) are read "
             f"once into the page cache ({c.get('page_cache_warmed_bytes', 0) / 1e9:.1f} GB), so neither side pays the first read from disk.")
    if "versions" in res:
        v = res["versions"]
        L.append(f"{v['gpu']}, torch {v['torch']}, transformers {v['transformers']}.\n")
    if hf:
        hs, ht = hf["seconds"], hf["tokens"]
        L.append("| phase | HF transformers | shardcheck | speed-up |")
        L.append("|---|---|---|---|")
        L.append(f"| model build + weights | {hs['weights']:.1f} s (from_config on the GPU, our values copied in) | "
                 f"{sc_setup:.1f} s (start-up, weights generated on the GPU: {sm.get('load_seconds', 0):.1f} s) | "
                 f"{hs['weights'] / max(sc_setup, 1e-9):.1f}x |")
        L.append(f"| extraction, every layer ({ht['extract']} padded tokens) | {hs['extract']:.2f} s, "
                 f"{ht['extract'] / hs['extract']:.0f} tokens/s | {sc_batches:.2f} s, {ht['extract'] / sc_batches:.0f} "
                 f"tokens/s (batches: {', '.join(f'{b:.2f}' for b in batches)} s) | {hs['extract'] / sc_batches:.1f}x |")
        L.append(f"| sweep, {c['layers']} layers x {len(c['multipliers'])} multipliers x {c['prompts']} prompts | "
                 f"{hs['sweep']:.1f} s, {ht['sweep'] / hs['sweep']:.0f} tokens/s (one hooked forward of every "
                 f"multiplier x prompt per layer) | {sc_sweep:.2f} s, {ht['sweep'] / sc_sweep:.0f} HF-equivalent tokens/s "
                 f"(cached wavefront sweep: {sw.get('work_ratio', 0):.1f}x less token-layer work) | "
                 f"{hs['sweep'] / sc_sweep:.1f}x |")
        L.append(f"| rest (process start, tokenizer, outputs) | | {sc_rest:.1f} s | |")
        L.append(f"| **end to end** | **{hf['wall_seconds']:.1f} s** | **{sc['wall_seconds']:.1f} s** | "
                 f"**{hf['wall_seconds'] / sc['wall_seconds']:.1f}x** |")
        hf_work, sc_work = hs["extract"] + hs["sweep"], sc_batches + sc_sweep
        L.append(f"| extraction + sweep (the weights phase left out) | {hf_work:.1f} s | {sc_work:.1f} s | "
                 f"{hf_work / sc_work:.1f}x |")
        mem = sm.get("gpu_memory", {})
        alloc = "; ".join(f"{ph}: tensors {m['peak_allocated_bytes'] / 2**30:.1f} GiB, held "
                          f"{m['peak_reserved_bytes'] / 2**30:.1f} GiB" for ph, m in mem.items() if isinstance(m, dict))
        L.append(f"| peak GPU memory (nvidia-smi) | {gib(hf['peak_gpu_mib'])} (tensors "
                 f"{hf['torch_max_allocated_mib'] / 1024:.1f} GiB) | {gib(sc['peak_gpu_mib'])} ({alloc}) | |\n")
        a = res["agreement"]
        cos = a["cosine_per_layer"]
        L.append(f"Agreement ({c['dtype']} on both sides): cosine of the two steering vectors per layer "
                 f"{cos[0]:.5f} (layer 0) to {cos[-1]:.5f} (layer {len(cos) - 1}), lowest {min(cos):.5f}; largest gap "
                 f"between the per-layer mean logit differences {a['max_abs_logit_diff_gap']:.4f} (HF's range "
                 f"{a['hf_logit_diff_range'][0]:.4f} .. {a['hf_logit_diff_range'][1]:.4f}).")
        pe = a.get("per_example_gap")
        if pe and pe["count"]:
            L.append(f"Per example (layer x multiplier x prompt, {pe['count']} logit differences, HF's median "
                     f"|difference| {pe['hf_abs_median']:.3f}): gap median {pe['median']:.2g}, 99th percentile "
                     f"{pe['p99']:.2g}, largest {pe['max']:.2g}.")
        L.append("")
        nf = res.get("noise_floor", {})
        if nf:
            L.append("HF against itself in the same run (cosine per layer, first / last / lowest):\n")
            L.append("| pair | layer 0 | last layer | lowest |")
            L.append("|---|---|---|---|")
            rows = [("shardcheck vs HF (sdpa)", cos)]
            names = {"hf_sdpa_vs_hf_eager": "HF sdpa vs HF eager attention",
                     "shardcheck_vs_hf_eager": "shardcheck vs HF eager attention",
                     "hf_vs_hf_float32": "HF bf16 vs HF float32",
                     "shardcheck_vs_hf_float32": "shardcheck bf16 vs HF float32"}
            rows += [(names.get(k, k), v) for k, v in nf.items() if isinstance(v, list)]
            for r in res.get("shardcheck_other_runs", []):
                if "cosine_per_layer" in r:
                    rows.append((f"shardcheck `{r['kernels']}` {r['env'] or ''} vs HF", r["cosine_per_layer"]))
            for name, v in rows:
                L.append(f"| {name} | {v[0]:.5f} | {v[-1]:.5f} | {min(v):.5f} |")
            L.append("")
            g = nf.get("hf_sdpa_vs_hf_eager_max_abs_logit_diff_gap")
            if g is not None:
                L.append(f"Largest gap between the per-layer mean logit differences of HF (sdpa) and HF (eager "
                         f"attention), each with its own vectors: {g:.4f} (shardcheck vs HF: "
                         f"{a['max_abs_logit_diff_gap']:.4f}).\n")
    ck = res.get("checkpoint")
    if ck:
        L.append(f"Checkpoint round trip ({ck['layers']} layers): HF `save_pretrained` wrote our weights as "
                 f"{len([f for f in ck['files'] if f.endswith('.safetensors')])} safetensors shards with "
                 f"`model.safetensors.index.json` ({ck['bytes'] / 1e9:.1f} GB, {ck['hf_build_and_save_seconds']:.0f} s). ")
        if "error" in ck.get("checkpoint", {}) or "error" in ck.get("generated", {}):
            L.append(f"shardcheck failed: {ck.get('checkpoint', {}).get('error') or ck.get('generated', {}).get('error')}\n")
        else:
            c1, g1 = ck["checkpoint"], ck["generated"]
            L.append(f"`shardcheck steer --model` loaded it to the GPU in {c1['load_seconds']:.1f} s "
                     f"({ck['load_gb_per_s']:.1f} GB/s; generating the same weights: {g1['load_seconds']:.1f} s); "
                     f"largest difference between the vectors from the checkpoint and from the generated weights: "
                     f"{ck['max_abs_vector_difference']:.3g}. Progress lines: `{' | '.join(c1['progress_lines'][-2:])}`.\n")
    for r in res.get("shardcheck_other_runs", []):
        m = r["summary"].get("gpu_memory", {})
        L.append(f"Other shardcheck run: kernels `{r['kernels']}` {r['env'] or ''}: {r['wall_seconds']:.1f} s end to end, "
                 f"peak {gib(r['peak_gpu_mib'])} (nvidia-smi); "
                 + "; ".join(f"{ph}: tensors {x['peak_allocated_bytes'] / 2**30:.1f} GiB, held "
                             f"{x['peak_reserved_bytes'] / 2**30:.1f} GiB" for ph, x in m.items() if isinstance(x, dict)))
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shardcheck", default=os.path.join(ROOT, "build-gpu", "shardcheck"))
    ap.add_argument("--config", default=os.path.join(ROOT, "fixtures", "configs", "qwen3-30b-a3b", "config.json"))
    ap.add_argument("--layers", type=int, default=48)
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--multipliers", default="-2,-1,0,1,2")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--kernels", default="auto",
                    help="shardcheck's kernel set (steer --kernels); a comma list runs each after the first, timed "
                         "but untimed in the table, its vectors compared with HF's too")
    ap.add_argument("--checkpoint-layers", type=int, default=0,
                    help="also: HF saves our weights (this many layers) as a sharded checkpoint that shardcheck loads")
    ap.add_argument("--compare-alloc", action="store_true",
                    help="also run shardcheck with LibTorch's fixed-size CUDA segments (expandable_segments:False)")
    ap.add_argument("--noise-floor", action="store_true",
                    help="also HF against itself: its extraction with eager attention, and in float32 where it fits")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    work = os.path.join(args.out, "work")
    os.makedirs(os.path.join(work, "model"), exist_ok=True)
    cfg = json.load(open(args.config))
    cfg["num_hidden_layers"] = args.layers
    cfg["torch_dtype"] = cfg["dtype"] = args.dtype
    cfg_path = os.path.join(work, "model", "config.json")
    json.dump(cfg, open(cfg_path, "w"), indent=1)
    ds = os.path.join(work, "pairs.json")
    caa_dataset(ds, args.pairs)
    mults = [float(x) for x in args.multipliers.split(",")]
    tokens_path = os.path.join(work, "tokens.json")

    # shardcheck first (it also writes the token ids HF then uses).
    def shardcheck(kernels, tag, env_extra=None, dump=False):
        out = os.path.join(work, "sc-" + tag)
        cmd = [args.shardcheck, "steer", "--config", cfg_path, "--dataset", ds, "--device", "cuda", "--dtype",
               args.dtype, "--kernels", kernels, "--batch-size", str(args.batch), "--multipliers", args.multipliers,
               "--eval-limit", str(args.prompts), "--seed", str(args.seed), "--out", out, "--json"]
        if dump:
            cmd += ["--dump-tokens", tokens_path]
        env = dict(os.environ, **(env_extra or {}))
        print(" ".join(cmd), env_extra or "", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        mon = PeakMemory(proc.pid)
        so, se = proc.communicate()
        wall = time.perf_counter() - t0
        peak = mon.done()
        if proc.returncode != 0:
            print(se[-4000:])
            sys.exit(f"shardcheck steer failed ({proc.returncode})")
        print(se[-800:], flush=True)
        from safetensors.torch import load_file

        vecs = load_file(os.path.join(out, "vectors.safetensors"))
        summary = json.loads(so)
        for le in summary.get("evaluation", {}).get("layers", []):  # per example: in eval.json, compared below
            le.pop("example_logit_diff", None)
        return {"kernels": kernels, "env": env_extra or {}, "wall_seconds": wall, "peak_gpu_mib": peak,
                "summary": summary,
                "vectors": torch.stack([vecs[f"layers.{l}.direction"].double().flatten().cpu()
                                        for l in range(args.layers)]),
                "eval": json.load(open(os.path.join(out, "eval.json")))}

    site = os.path.dirname(os.path.dirname(torch.__file__))
    warmed = warm_page_cache(args.shardcheck, [os.path.join(site, "torch", "lib", "*"),
                                               os.path.join(site, "nvidia", "*", "lib", "*")])
    kernel_sets = args.kernels.split(",")
    main_run = shardcheck(kernel_sets[0], "main", dump=True)
    extra_runs = [shardcheck(k, f"k{i}") for i, k in enumerate(kernel_sets[1:], 1)]
    if args.compare_alloc:  # LibTorch's default fixed-size segments, against our expandable ones
        extra_runs.append(shardcheck(kernel_sets[0], "fixed-segments",
                                     {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:False"}))
    tokens = json.load(open(tokens_path))
    sc_wall, sc_peak, summ = main_run["wall_seconds"], main_run["peak_gpu_mib"], main_run["summary"]
    sc_v, sc_eval = main_run["vectors"], main_run["eval"]

    res = {"config": {"geometry": os.path.basename(os.path.dirname(args.config)), "layers": args.layers,
                      "pairs": args.pairs, "batch": args.batch, "prompts": args.prompts, "multipliers": mults,
                      "dtype": args.dtype, "kernels": kernel_sets[0], "page_cache_warmed_bytes": warmed},
           "shardcheck": {"wall_seconds": sc_wall, "peak_gpu_mib": sc_peak, "summary": summ},
           "shardcheck_other_runs": [{k: v for k, v in r.items() if k not in ("vectors", "eval")} for r in extra_runs]}
    if not args.skip_hf:
        dtype = getattr(torch, args.dtype)
        torch.cuda.reset_peak_memory_stats()
        mon = PeakMemory(os.getpid())
        t0 = time.perf_counter()
        model, hcfg = hf_build(cfg_path, args.seed, dtype)
        t_load = time.perf_counter() - t0
        hf_vecs, t_extract, tok_extract = hf_extract(model, hcfg, tokens, args.batch)
        hf_diffs, t_sweep, tok_sweep = hf_sweep(model, tokens, hf_vecs, mults)
        hf_examples = hf_sweep.per_example
        hf_wall = time.perf_counter() - t0
        hf_peak = mon.done()
        res["hf"] = {"wall_seconds": hf_wall, "peak_gpu_mib": hf_peak,
                     "seconds": {"weights": t_load, "extract": t_extract, "sweep": t_sweep},
                     "tokens": {"extract": tok_extract, "sweep": tok_sweep},
                     "torch_max_allocated_mib": torch.cuda.max_memory_allocated() / 2**20}
        import transformers

        res["versions"] = {"transformers": transformers.__version__, "torch": torch.__version__,
                           "gpu": torch.cuda.get_device_name(0)}
        # Agreement per layer.
        cos = cosines(sc_v, hf_vecs)
        for r, rr in zip(extra_runs, res["shardcheck_other_runs"]):
            rr["cosine_per_layer"] = cosines(r["vectors"], hf_vecs)
        gaps, ex_gaps = [], []
        for le in sc_eval.get("layers", []):
            l = le["layer"]
            for k, m in enumerate(mults):
                gaps.append(abs(le["logit_diff"][k] - float(hf_diffs[l][k])))
                ex_gaps += [abs(x - float(y)) for x, y in zip(le["example_logit_diff"][k], hf_examples[l][k])]
        ex_gaps.sort()
        q = lambda f: ex_gaps[min(len(ex_gaps) - 1, int(f * len(ex_gaps)))] if ex_gaps else None  # noqa: E731
        res["agreement"] = {"min_cosine": min(cos), "cosine_per_layer": cos,
                            "max_abs_logit_diff_gap": max(gaps) if gaps else None,
                            "hf_logit_diff_range": [float(hf_diffs.min()), float(hf_diffs.max())],
                            "per_example_gap": {"median": q(0.5), "p99": q(0.99), "max": ex_gaps[-1] if ex_gaps else None,
                                                "count": len(ex_gaps),
                                                "hf_abs_median": float(hf_examples.abs().median())}}
        res["speedup_end_to_end"] = hf_wall / sc_wall
        if args.noise_floor:
            # HF against itself: the same extraction with eager attention instead of sdpa (one
            # kernel choice, same weights and tokens); then, where it fits, HF in float32 as the
            # reference both bf16 runs are measured against.
            nf = {}
            try:
                model.set_attn_implementation("eager")
                eager_vecs, _, _ = hf_extract(model, hcfg, tokens, args.batch)
                nf["hf_sdpa_vs_hf_eager"] = cosines(hf_vecs, eager_vecs)
                nf["shardcheck_vs_hf_eager"] = cosines(sc_v, eager_vecs)
                eager_diffs, _, _ = hf_sweep(model, tokens, eager_vecs, mults)
                nf["hf_sdpa_vs_hf_eager_max_abs_logit_diff_gap"] = float((eager_diffs - hf_diffs).abs().max())
                model.set_attn_implementation("sdpa")
            except Exception as e:  # noqa: BLE001
                nf["eager"] = f"failed: {e}"
            if dtype != torch.float32:
                try:
                    model.float()
                    torch.cuda.empty_cache()
                    f32_vecs, _, _ = hf_extract(model, hcfg, tokens, args.batch)
                    nf["hf_vs_hf_float32"] = cosines(hf_vecs, f32_vecs)
                    nf["shardcheck_vs_hf_float32"] = cosines(sc_v, f32_vecs)
                except torch.OutOfMemoryError as e:  # noqa: F841
                    nf["float32"] = "did not fit on this GPU"
            res["noise_floor"] = nf
        del model
        torch.cuda.empty_cache()
    if args.checkpoint_layers > 0:
        res["checkpoint"] = checkpoint_round_trip(args, cfg_path, work, ds, args.checkpoint_layers)
    with open(os.path.join(args.out, "steer_vs_hf.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    write_markdown(res, os.path.join(args.out, "steer_vs_hf.md"))
    print(json.dumps({k: v for k, v in res.items() if k != "shardcheck"}, indent=1, default=str)[:6000])
    print("shardcheck wall", sc_wall, "peak MiB", sc_peak)


if __name__ == "__main__":
    main()
