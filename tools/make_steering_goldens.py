#!/usr/bin/env python3
"""HF transformers reference for shardcheck's steering extraction and evaluation (goldens).

Runs on the fixture model fixtures/models/moe-tiny (vocab 128) in float64 with the same hand-made
token dataset as tests/torch/test_steering.cpp (toy_dataset / toy_eval) and writes
fixtures/steering/moe-tiny.goldens.safetensors:

  layers.{L}.mean_diff     [H] f64  mean over examples of (positive - negative) decoder-layer-L output
                                    at the read position (HF layer L's output, 0-based), batched with
                                    left padding, attention mask and generate-style position ids
  eval.layer{L}.m{k}       [E] f64  logit(match) - logit(nonmatch) at the last position, with
                                    multipliers[k] * v_L added to layer L's output at positions
                                    >= the row's instruction end (v_L = layers.{L}.mean_diff)
  metadata: multipliers, batch_size, transformers/torch versions

Layer outputs are taken with forward hooks on model.model.layers[L], not from output_hidden_states:
HF's last hidden_states entry is after the final norm, while shardcheck's layer_out is the raw
residual stream for every layer.

Numerics note: HF (and shardcheck, which follows it) casts to fp32 inside RMSNorm and the attention
softmax even in float64, so padded-batch results match a C++ run of the same batch layout to ~1e-10
but differ from unpadded runs at fp32 rounding (~1e-9). Compare with the same batch_size (4).

Usage (CPU is enough; it is not meant for the GPU machines):
  python tools/make_steering_goldens.py [--model fixtures/models/moe-tiny] [--out fixtures/steering]
On a GPU, HF's own CUDA numerics in a working dtype (HF's defaults there: sdpa attention, the
default experts implementation), for the GPU tests (GpuSteer.*):
  python tools/make_steering_goldens.py --device cuda --dtype bfloat16   (and float32)
writes fixtures/steering/moe-tiny.cuda-bfloat16.goldens.safetensors (-float32). Positive minus
negative and the logit differences are taken in float64 from the working-dtype values, as shardcheck
does.
Requires: torch, transformers >= 5 (Qwen3-MoE), safetensors.
Generated on the GPU machine (CPU tensors) with torch 2.11, transformers 5.17; the output is
committed as fixtures/steering/moe-tiny.goldens.safetensors.

Padded float64: unpatched HF turns the finfo(float64).min additive mask into -inf in its float32
softmax, so fully masked (left-padding query) rows become NaN and the next layer spreads NaN to
every position (the first generated file had NaN in layers.1.mean_diff and most eval entries).
As make_goldens.py's f64.padded goldens (patched(mask_clamp=True)) and shardcheck's model
(families/decoder/model.h), the float64 mask is clamped to finfo(float32).min (clamp_f64_mask below):
every non-pad output keeps its value and pad rows attend uniformly. The script refuses to write a
file containing NaN.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from atomic_out import atomic_path  # noqa: E402

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

# Same data as tests/torch/test_steering.cpp.
BODIES = [[3, 17, 42, 8], [5, 9], [11, 12, 13, 14, 15, 16, 99], [7, 77, 70], [100, 2, 64, 31, 30], [1]]
EVAL_PROMPTS = [[3, 17, 42, 8, 20, 21, 39], [5, 9, 20, 21, 39], [7, 77, 70, 20, 21, 39]]
MULTIPLIERS = [-2.0, -1.0, 0.0, 1.0, 2.0]
BATCH = 4
PAD = 0


def toy_dataset():
    out = []
    for i, body in enumerate(BODIES):
        pos = body + [40]
        neg = body + [41] + ([50 + i] if i % 2 else [])
        out.append((pos, len(pos) - 1, neg, len(body)))
    return out


def left_pad(seqs):
    S = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), S), PAD, dtype=torch.long)
    mask = torch.zeros((len(seqs), S), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, S - len(s):] = torch.tensor(s)
        mask[r, S - len(s):] = 1
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # as HF generate
    return ids, mask, pos, [S - len(s) for s in seqs]


def clamp_f64_mask(model):
    """Wraps HF's eager_attention_forward: a float64 additive mask is clamped to finfo(float32).min."""
    mod = sys.modules[type(model).__module__]
    orig = mod.eager_attention_forward

    def eager(module, query, key, value, attention_mask, *args, **kwargs):
        if attention_mask is not None and attention_mask.dtype == torch.float64:
            attention_mask = attention_mask.clamp(min=torch.finfo(torch.float32).min)
        return orig(module, query, key, value, attention_mask, *args, **kwargs)

    mod.eager_attention_forward = eager


class LayerTap:
    """Forward hooks on every decoder layer: record outputs, optionally add a steering delta."""

    def __init__(self, model):
        self.outputs = {}
        self.delta = None  # (layer, tensor [B, S, H])
        self.handles = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(model.model.layers)]

    def _hook(self, idx):
        def hook(module, inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            if self.delta is not None and self.delta[0] == idx:
                hidden = hidden + self.delta[1].to(hidden.dtype)
            self.outputs[idx] = hidden.detach()
            if isinstance(output, tuple):
                return (hidden,) + tuple(output[1:])
            return hidden
        return hook


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="fixtures/models/moe-tiny")
    ap.add_argument("--out", default="fixtures/steering")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32", "bfloat16"])
    args = ap.parse_args()
    torch.manual_seed(0)
    dtype, dev = getattr(torch, args.dtype), torch.device(args.device)
    if dtype == torch.float64:
        # HF's default grouped_mm experts reject float64 (reference.md): eager experts, as make_goldens.py.
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, attn_implementation="eager",
                                                     experts_implementation="eager").to(dev).eval()
        clamp_f64_mask(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, attn_implementation="sdpa").to(dev).eval()
    n_layers = model.config.num_hidden_layers
    tap = LayerTap(model)
    data = toy_dataset()

    # ---- extraction: batched, left padded, both sides, all layers ----
    sums = {L: torch.zeros(model.config.hidden_size, dtype=torch.float64) for L in range(n_layers)}
    with torch.no_grad():
        for b0 in range(0, len(data), BATCH):
            chunk = data[b0:b0 + BATCH]
            reads = {}
            for side in (0, 1):
                seqs = [ex[2 * side] for ex in chunk]
                ids, mask, pos, pads = left_pad(seqs)
                model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev))
                cols = torch.tensor([pads[r] + ex[2 * side + 1] for r, ex in enumerate(chunk)])
                reads[side] = {L: tap.outputs[L][torch.arange(len(chunk)), cols].cpu().double() for L in range(n_layers)}
            for L in range(n_layers):
                sums[L] += (reads[0][L] - reads[1][L]).sum(0)
    tensors = {f"layers.{L}.mean_diff": (sums[L] / len(data)).contiguous() for L in range(n_layers)}

    # ---- evaluation: one padded batch of all eval prompts per (layer, multiplier) ----
    ids, mask, pos, pads = left_pad(EVAL_PROMPTS)
    B, S = ids.shape
    match = [6 if i % 2 else 5 for i in range(B)]
    nonmatch = [5 if i % 2 else 6 for i in range(B)]
    with torch.no_grad():
        for L in range(n_layers):
            v = tensors[f"layers.{L}.mean_diff"]
            for k, m in enumerate(MULTIPLIERS):
                coef = torch.zeros(B, S, 1, dtype=torch.float64)
                for r, p in enumerate(EVAL_PROMPTS):
                    coef[r, pads[r] + len(p) - 3:] = m  # instruction end = len - 3, as in the test
                tap.delta = (L, (coef * v).to(dev))
                logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev)).logits[:, -1]
                logits = logits.double().cpu()
                tap.delta = None
                tensors[f"eval.layer{L}.m{k}"] = torch.tensor(
                    [float(logits[r, match[r]] - logits[r, nonmatch[r]]) for r in range(B)], dtype=torch.float64)

    bad = sorted(k for k, t in tensors.items() if bool(torch.isnan(t).any()))
    if bad:
        sys.exit("NaN in " + ", ".join(bad))
    import transformers
    os.makedirs(args.out, exist_ok=True)
    name = "moe-tiny" if args.device == "cpu" and dtype == torch.float64 else f"moe-tiny.{args.device}-{args.dtype}"
    path = os.path.join(args.out, name + ".goldens.safetensors")
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={
            "multipliers": ",".join(str(m) for m in MULTIPLIERS),
            "batch_size": str(BATCH),
            "layer_indexing": "HF decoder layer output, 0-based",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
            "dtype": args.dtype,
            "attention": "eager" if dtype == torch.float64 else "sdpa",
        })
    print("wrote", path)


if __name__ == "__main__":
    main()
