#!/usr/bin/env python3
"""Make tiny seeded random-weight checkpoints of every family with a forward, and golden activations.

The reference is HuggingFace transformers (the independent implementation that shardcheck is
checked against). For every model in MODELS this script, on CPU:

  1. builds the config and the model of the model's family (FAMILY_CLASSES: Qwen3 / Qwen3-MoE,
     Llama, Mistral, Mixtral, Qwen2, Qwen2-MoE) with attn_implementation="eager" (and
     experts_implementation="eager" for MoE where transformers knows that argument),
  2. initialises every parameter from a seeded generator: N(0, 0.02) for linears, embeddings,
     routers and experts; 1 + 0.1*N(0, 1) for every RMSNorm weight (q_norm / k_norm included),
  3. saves the checkpoint with save_pretrained in float32 (moe-tiny sharded, with
     model.safetensors.index.json), records which tensor-name layout transformers wrote and
     reloads it to check the round trip is exact,
  4. runs the forward in float32 and float64 on two fixed batches (plain, and left-padded with
     position_ids as generate() computes them) and writes golden.safetensors + golden.json.

Golden tensor names (prefix <dt>.<batch>. with dt in {f32, f64}, batch in {plain, padded}):
  logits [B,S,V]; hidden_states.{k} k=0..L (HF's output_hidden_states, [0] = embeddings);
  layer_out.{i} (raw output of decoder layer i, forward hook); router_logits.{i} [B*S, E] (raw
  router logits, token index b*S+s); topk.{i} [B*S, K] (I64, expert ids chosen the Qwen3-MoE way:
  softmax in fp32, topk, sorted by descending probability); topk_weights.{i} [B*S, K] (routing
  weights as the MoE block applies them); rope_inv_freq (HF's inv_freq buffer, for scaled ropes); plus hf_router_logits.{i} / hf_topk.{i} / final_norm
  only where HF's own outputs differ from the above (see the metadata).
Inputs: input_ids.{plain,padded}, attention_mask.{plain,padded}, position_ids.{plain,padded} (I64).

float64 notes (transformers 5.17): f64.* is HF's own model.double() forward, which keeps float32
islands (RMSNorm, RoPE cos/sin, eager attention softmax, router softmax), so it is only about
1e-7 away from a float64 computation. On the padded batch, unpatched HF gives NaN in float64
(the finfo(float64).min additive mask turns into -inf in the float32 softmax, fully masked
pad-query rows become NaN and the next layer spreads them through the pad keys). f64.padded.* is
therefore computed with the mask clamped to finfo(float32).min (see patched()), which leaves every
non-pad value as HF intends. --true-f64 also writes golden_f64x.safetensors (f64x.*: the float32
islands patched to float64); the distances f32/f64/f64x are recorded in golden.json either way.

Usage:  python3 tools/make_goldens.py --out DIR [--models moe-tiny,dense-tiny] [--true-f64]
Writes DIR/<model>/ (checkpoint, golden.safetensors, golden.json) and DIR/_report.json.
See tools/README.md for the exact command and the facts observed with transformers 5.17.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import inspect
import json
import os
import platform
import re
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from atomic_out import atomic_path  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VOCAB = 128
BATCH, SEQ = 3, 11
PAD_COUNTS = (0, 3, 6)  # left pads per row of the padded batch
PAD_ID = 0
ROPE_THETA = 1e6
SHARD_SIZES = ("300KB", "150KB", "80KB")  # tried in turn until >= 2 shard files come out

COMMON = dict(
    vocab_size=VOCAB,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    hidden_act="silu",
    attention_bias=False,
    attention_dropout=0.0,
    tie_word_embeddings=False,
)

MODELS = [
    dict(name="moe-tiny", kind="moe", seed=1001, sharded=True,
         cfg=dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=8, num_key_value_heads=2,
                  head_dim=32, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                  intermediate_size=96, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[])),
    dict(name="moe-sparse-step", kind="moe", seed=1002, sharded=False,
         cfg=dict(num_hidden_layers=4, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=16, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                  intermediate_size=96, norm_topk_prob=False, decoder_sparse_step=2, mlp_only_layers=[0])),
    dict(name="moe-kv1", kind="moe", seed=1003, sharded=False,
         cfg=dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=8, num_key_value_heads=1,
                  head_dim=32, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                  intermediate_size=96, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[])),
    dict(name="dense-tiny", kind="dense", seed=1004, sharded=False,
         cfg=dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=16, intermediate_size=96, tie_word_embeddings=True)),
    dict(name="moe-kv4-hd64", kind="moe", seed=1005, sharded=False,
         cfg=dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=8, num_key_value_heads=4,
                  head_dim=64, num_experts=16, num_experts_per_tok=4, moe_intermediate_size=32,
                  intermediate_size=96, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[])),
]

# The other families with a forward (docs/adding-a-family.md): geometry chosen so that TP 2 and 4
# split the heads and EP 2 / 4 the experts, with each family's own features switched on.
MODELS += [
    # Llama 3.1 rope (llama3 scaling; original_max_position_embeddings small enough that the
    # scaled, smoothed and unchanged frequency bands all occur at head_dim 16).
    dict(name="llama-tiny", family="llama", kind="dense", seed=1101, sharded=False,
         rope={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64},
         cfg=dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=16, intermediate_size=96, tie_word_embeddings=True)),
    # Mistral with a sliding window shorter than the sequence (every layer slides).
    dict(name="mistral-tiny", family="mistral", kind="dense", seed=1102, sharded=False,
         cfg=dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=8, num_key_value_heads=2,
                  head_dim=16, intermediate_size=96, sliding_window=5)),
    # Mixtral: experts of intermediate_size width, top-k renormalised, sliding window off.
    dict(name="mixtral-tiny", family="mixtral", kind="moe", seed=1103, sharded=False,
         cfg=dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=8, num_key_value_heads=2,
                  head_dim=16, num_local_experts=8, num_experts_per_tok=2, intermediate_size=32,
                  sliding_window=None)),
    # Qwen2-MoE: q/k/v biases, a gated shared expert, no top-k renormalisation, a dense layer.
    dict(name="qwen2-moe-tiny", family="qwen2_moe", kind="moe", seed=1104, sharded=False,
         cfg=dict(num_hidden_layers=3, hidden_size=64, num_attention_heads=8, num_key_value_heads=4,
                  num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                  shared_expert_intermediate_size=48, intermediate_size=96, norm_topk_prob=False,
                  decoder_sparse_step=1, mlp_only_layers=[1], use_sliding_window=False)),
    # Qwen2 (dense): q/k/v biases.
    dict(name="qwen2-tiny", family="qwen2", kind="dense", seed=1105, sharded=False,
         cfg=dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=96, use_sliding_window=False)),
]

# (family, kind) -> transformers config and model classes.
FAMILY_CLASSES = {
    ("qwen3", "moe"): ("Qwen3MoeConfig", "Qwen3MoeForCausalLM"),
    ("qwen3", "dense"): ("Qwen3Config", "Qwen3ForCausalLM"),
    ("llama", "dense"): ("LlamaConfig", "LlamaForCausalLM"),
    ("mistral", "dense"): ("MistralConfig", "MistralForCausalLM"),
    ("mixtral", "moe"): ("MixtralConfig", "MixtralForCausalLM"),
    ("qwen2_moe", "moe"): ("Qwen2MoeConfig", "Qwen2MoeForCausalLM"),
    ("qwen2", "dense"): ("Qwen2Config", "Qwen2ForCausalLM"),
}


def family_of(spec):
    return spec.get("family", "qwen3")


def classes(spec):
    import transformers

    cfg_name, model_name = FAMILY_CLASSES[(family_of(spec), spec["kind"])]
    return getattr(transformers, cfg_name), getattr(transformers, model_name)


def geometry(spec):
    """The model's sizes with the family's defaults filled in (head_dim, experts, top-k rule)."""
    c = dict(COMMON)
    c.update(spec["cfg"])
    c.setdefault("head_dim", c["hidden_size"] // c["num_attention_heads"])
    if "num_local_experts" in c:  # Mixtral: experts of intermediate_size width, always renormalised
        c["num_experts"] = c["num_local_experts"]
        c["moe_intermediate_size"] = c["intermediate_size"]
        c["norm_topk_prob"] = True
    c.setdefault("decoder_sparse_step", 1)
    c.setdefault("mlp_only_layers", [])
    return c


PER_EXPERT_RE = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight$")
PACKED_RE = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)(\.weight)?$")


def log(*a):
    print(*a, flush=True)


def jdump(x):
    return json.dumps(x, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- config / model


def config_rope_theta(cfg):
    rp = getattr(cfg, "rope_parameters", None)
    if isinstance(rp, dict):
        if "rope_theta" in rp:
            return float(rp["rope_theta"])
        for v in rp.values():  # per-layer-type nesting
            if isinstance(v, dict) and "rope_theta" in v:
                return float(v["rope_theta"])
    t = getattr(cfg, "rope_theta", None)
    return None if t is None else float(t)


def build_config(spec, facts):
    Cls, _ = classes(spec)
    kw = dict(COMMON)
    kw.update(spec["cfg"])
    if family_of(spec) == "qwen2_moe":
        kw.pop("attention_bias", None)  # Qwen2-MoE's q/k/v always carry biases (qkv_bias)
    rope = dict(spec.get("rope", {"rope_type": "default"}))
    attempts = [
        ("rope_parameters", {"rope_parameters": dict(rope, rope_theta=ROPE_THETA)}),
        ("rope_theta", {"rope_theta": ROPE_THETA, "rope_scaling": rope} if "rope" in spec else {"rope_theta": ROPE_THETA}),
    ]
    cfg = None
    for label, extra in attempts:
        ckw, post = dict(kw), {}
        c = None
        for _ in range(len(kw)):
            try:
                c = Cls(**ckw, **extra)
                break
            except TypeError as e:
                m = re.search(r"unexpected keyword argument '(\w+)'", str(e))
                if not m or m.group(1) not in ckw:
                    log(f"  config via {label} failed: TypeError: {e}")
                    break
                log(f"  config rejects {m.group(1)}; will set it as an attribute")
                post[m.group(1)] = ckw.pop(m.group(1))
            except Exception as e:  # noqa: BLE001
                log(f"  config via {label} failed: {type(e).__name__}: {e}")
                break
        if c is None:
            continue
        for k, v in post.items():
            setattr(c, k, v)
        if post:
            facts["config_kwargs_rejected"] = sorted(post)
        theta = config_rope_theta(c)
        if theta is not None and abs(theta - ROPE_THETA) < 1e-3:
            cfg = c
            facts["rope_config_via"] = label
            break
        log(f"  config via {label} gave rope theta {theta}; trying the next way")
    if cfg is None:
        raise RuntimeError("could not build a config with rope_theta 1e6")
    fixed = []
    for k, v in kw.items():
        got = getattr(cfg, k, "<missing>")
        if got != v:
            log(f"  config field {k}: wanted {v!r}, got {got!r}; setting it")
            try:
                setattr(cfg, k, v)
                fixed.append(k)
            except Exception as e:  # noqa: BLE001
                raise RuntimeError(f"config field {k} cannot be set: {e}") from e
    if fixed:
        facts["config_fields_set_after_init"] = fixed
    return cfg


def build_model(spec, cfg, facts):
    moe = spec["kind"] == "moe"
    _, ModelCls = classes(spec)
    tries = []
    if moe:
        tries.append({"attn_implementation": "eager", "experts_implementation": "eager"})
    tries.append({"attn_implementation": "eager"})
    model, errs = None, []
    for kw in tries:
        try:
            model = ModelCls._from_config(cfg, **kw)
            facts["model_built_with"] = jdump(kw)
            break
        except Exception as e:  # noqa: BLE001
            errs.append(f"{kw}: {type(e).__name__}: {e}")
            log(f"  _from_config{kw} failed: {type(e).__name__}: {e}")
    if model is None:
        raise RuntimeError("could not build the model: " + " | ".join(errs))
    model = model.float().eval()
    if moe:
        facts["experts_implementation_kwarg"] = "accepted" if "experts_implementation" in facts["model_built_with"] else "rejected: " + " | ".join(errs)
    ensure_eager(model, moe, facts)
    return ModelCls, model


def ensure_eager(model, moe, facts):
    c = model.config
    if getattr(c, "_attn_implementation", None) != "eager":
        try:
            if hasattr(model, "set_attn_implementation"):
                model.set_attn_implementation("eager")
            else:
                c._attn_implementation = "eager"
        except Exception as e:  # noqa: BLE001
            log(f"  could not force eager attention: {e}")
    facts["attn_implementation"] = str(getattr(c, "_attn_implementation", "n/a"))
    if moe:
        if hasattr(type(c), "_experts_implementation") or hasattr(c, "_experts_implementation"):
            if getattr(c, "_experts_implementation", None) != "eager":
                try:
                    if hasattr(model, "set_experts_implementation"):
                        model.set_experts_implementation("eager")
                    else:
                        c._experts_implementation = "eager"
                except Exception as e:  # noqa: BLE001
                    log(f"  could not force eager experts: {e}")
            facts["experts_implementation"] = str(getattr(c, "_experts_implementation", "n/a"))
        else:
            facts["experts_implementation"] = "n/a (this transformers has no experts_implementation)"


def expected_sparse_layers(spec):
    c = geometry(spec)
    if spec["kind"] != "moe":
        return []
    return [i for i in range(c["num_hidden_layers"])
            if i not in c["mlp_only_layers"] and (i + 1) % c["decoder_sparse_step"] == 0]


def check_geometry(spec, model, facts):
    c = geometry(spec)
    H, nh, nkv, hd = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    layers = model.model.layers
    assert len(layers) == c["num_hidden_layers"], f"{len(layers)} layers"
    a = layers[0].self_attn
    facts["attention_biases"] = {n: getattr(a, n).bias is not None for n in ("q_proj", "k_proj", "v_proj", "o_proj")}
    facts["qk_norm"] = hasattr(a, "q_norm")
    assert tuple(a.q_proj.weight.shape) == (nh * hd, H), f"q_proj {tuple(a.q_proj.weight.shape)} (head_dim not taken?)"
    assert tuple(a.k_proj.weight.shape) == (nkv * hd, H), f"k_proj {tuple(a.k_proj.weight.shape)}"
    assert tuple(a.o_proj.weight.shape) == (H, nh * hd), f"o_proj {tuple(a.o_proj.weight.shape)}"
    sparse = [i for i, l in enumerate(layers) if hasattr(l.mlp, "experts")]
    facts["sparse_layers"] = sparse
    assert sparse == expected_sparse_layers(spec), f"sparse layers {sparse} != {expected_sparse_layers(spec)}"
    for i, l in enumerate(layers):
        if i in sparse:
            ex = l.mlp.experts
            if hasattr(ex, "gate_up_proj"):
                E = ex.gate_up_proj.shape[0]
                facts.setdefault("in_memory_expert_layout", f"packed gate_up_proj {tuple(ex.gate_up_proj.shape)}, down_proj {tuple(ex.down_proj.shape)}")
            else:
                E = len(ex)
                facts.setdefault("in_memory_expert_layout", "nn.ModuleList of per-expert MLPs")
            assert E == c["num_experts"], f"layer {i}: {E} experts"
        else:
            assert tuple(l.mlp.gate_proj.weight.shape) == (c["intermediate_size"], H), f"dense mlp {i}"
    shared = [i for i in sparse if hasattr(layers[i].mlp, "shared_expert")]
    if shared:
        se = layers[shared[0]].mlp
        facts["shared_expert"] = {"layers": shared, "gate_proj": tuple(se.shared_expert.gate_proj.weight.shape),
                                  "shared_expert_gate": tuple(se.shared_expert_gate.weight.shape)}
    facts["sliding_window"] = getattr(model.config, "sliding_window", None)
    facts["layer_types"] = getattr(model.config, "layer_types", None)
    # RoPE: the inverse frequencies must be those of theta = 1e6 and head_dim (default rope; a
    # scaled rope's are stored as rope_inv_freq and checked by the C++ tests)
    import torch

    if "rope" in spec:
        facts["rope"] = spec["rope"]
        return

    want = 1.0 / (ROPE_THETA ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    found = []
    for n, m in model.named_modules():
        if n.endswith("rotary_emb") and hasattr(m, "inv_freq"):
            got = m.inv_freq.detach().double()
            rel = float(((got - want).abs() / want).max())
            found.append((n, rel))
            assert got.shape == want.shape and rel < 1e-5, f"{n}: inv_freq off (rel {rel})"
    assert found, "no rotary_emb with inv_freq found"
    facts["rotary_modules"] = [n for n, _ in found][:3]
    facts["rope_inv_freq_dtype"] = str(dict(model.named_modules())[found[0][0]].inv_freq.dtype)


def init_weights(model, seed, facts):
    import torch

    g = torch.Generator().manual_seed(seed)
    n_norm, n_lin, other = 0, 0, []
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied parameters appear once
            r = torch.randn(tuple(p.shape), generator=g, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_((1.0 + 0.1 * r).to(p.dtype))
                n_norm += 1
            else:
                p.copy_((0.02 * r).to(p.dtype))
                n_lin += 1
                if p.dim() < 2:
                    other.append(name)
    facts["init"] = f"seed {seed}; torch.Generator, one randn per parameter in named_parameters() order; {n_norm} norm weights = 1+0.1*randn, {n_lin} others = 0.02*randn"
    if other:
        facts["init_1d_non_norm"] = other
    if model.config.tie_word_embeddings:
        tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
        facts["lm_head_tied_to_embed_tokens"] = bool(tied)
        assert tied, "tie_word_embeddings but lm_head is not tied"


# ----------------------------------------------------------------------------- checkpoint


def list_safetensors(d):
    from safetensors import safe_open

    names = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors") and not f.startswith("golden"):
            with safe_open(os.path.join(d, f), framework="pt") as sf:
                for k in sf.keys():
                    sl = sf.get_slice(k)
                    try:
                        dt = sl.get_dtype()
                    except Exception:  # noqa: BLE001
                        dt = str(sf.get_tensor(k).dtype)
                    names[k] = (f, dt, tuple(sl.get_shape()))
    return names


def save_checkpoint(model, d, sharded, facts):
    import shutil

    sizes = SHARD_SIZES if sharded else (None,)
    for size in sizes:
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
        kw = {"safe_serialization": True}
        if size:
            kw["max_shard_size"] = size
        try:
            model.save_pretrained(d, **kw)
        except Exception as e:  # noqa: BLE001
            log(f"  save_pretrained({kw}) failed: {type(e).__name__}: {e}; retrying without safe_serialization")
            kw.pop("safe_serialization")
            model.save_pretrained(d, **kw)
        facts["save_pretrained_kwargs"] = jdump(kw)
        files = sorted(os.listdir(d))
        shards = [f for f in files if f.endswith(".safetensors")]
        if not sharded:
            break
        if "model.safetensors.index.json" in files and len(shards) >= 2:
            break
        log(f"  max_shard_size={size} gave {files}; trying smaller")
    files = sorted(os.listdir(d))
    facts["checkpoint_files"] = files
    if sharded:
        facts["sharded"] = "model.safetensors.index.json" in files
    names = list_safetensors(d)
    dtypes = sorted({v[1] for v in names.values()})
    facts["checkpoint_dtypes"] = dtypes
    per_expert = [k for k in names if PER_EXPERT_RE.match(k)]
    packed = [k for k in names if PACKED_RE.match(k)]
    if per_expert and not packed:
        layout = "per-expert: model.layers.{i}.mlp.experts.{e}.{gate,up,down}_proj.weight"
    elif packed and not per_expert:
        ex = packed[0]
        layout = "packed: model.layers.{i}.mlp.experts.{gate_up_proj,down_proj} e.g. %s %s" % (ex, names[ex][2])
    elif not per_expert and not packed:
        layout = "no experts (dense)"
    else:
        layout = "MIXED per-expert and packed"
    facts["checkpoint_expert_layout"] = layout
    facts["checkpoint_name_patterns"] = sorted({re.sub(r"\.\d+\.", ".*.", k) for k in names})
    facts["checkpoint_tensor_count"] = len(names)
    with open(os.path.join(d, "config.json")) as f:
        cj = json.load(f)
    facts["config_json"] = cj
    log(f"  checkpoint files: {files}")
    log(f"  tensor dtypes: {dtypes}; expert layout: {layout}")
    return names, cj


def reload_check(ModelCls, d, model, moe, inputs, facts):
    import torch

    tries = []
    base = {"attn_implementation": "eager"}
    if moe:
        tries.append(dict(base, experts_implementation="eager", dtype=torch.float32))
    tries += [dict(base, dtype=torch.float32), dict(base, torch_dtype=torch.float32)]
    m2 = None
    for kw in tries:
        try:
            m2 = ModelCls.from_pretrained(d, **kw).eval()
            break
        except Exception as e:  # noqa: BLE001
            log(f"  from_pretrained({list(kw)}) failed: {type(e).__name__}: {e}")
    if m2 is None:
        facts["reload"] = "FAILED"
        return
    ensure_eager(m2, moe, {})
    sd1, sd2 = model.state_dict(), m2.state_dict()
    missing = sorted(set(sd1) ^ set(sd2))
    diff = [k for k in sd1 if k in sd2 and not torch.equal(sd1[k], sd2[k].to(sd1[k].dtype))]
    with torch.no_grad():
        ids, mask, pos = inputs["plain"]
        l1 = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits
        l2 = m2(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits
    same = torch.equal(l1, l2)
    facts["reload"] = f"state_dict keys differing: {missing or 'none'}; tensors differing: {diff or 'none'}; plain f32 logits bitwise equal: {same}"
    log(f"  reload: {facts['reload']}")


# ----------------------------------------------------------------------------- forward


def make_inputs(seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g, dtype=torch.int64)
    mask = torch.ones_like(ids)
    pos = torch.arange(SEQ, dtype=torch.int64).unsqueeze(0).expand(BATCH, -1).contiguous()
    pids = torch.full_like(ids, PAD_ID)
    pmask = torch.zeros_like(ids)
    for r, p in enumerate(PAD_COUNTS):
        pids[r, p:] = ids[r, : SEQ - p]
        pmask[r, p:] = 1
    ppos = pmask.long().cumsum(-1) - 1
    ppos.masked_fill_(pmask == 0, 1)
    return {"plain": (ids, mask, pos), "padded": (pids, pmask, ppos)}


def first_tensor(x):
    import torch

    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)) and x and isinstance(x[0], torch.Tensor):
        return x[0]
    raise TypeError(f"unexpected layer output type {type(x)}")


def run_forward(model, spec, ids, mask, pos, router_dtype=None):
    """Returns (tensors dict without prefix, checks dict)."""
    import torch
    import torch.nn.functional as F

    moe = spec["kind"] == "moe"
    c = geometry(spec)
    H = c["hidden_size"]
    layers = model.model.layers
    L = len(layers)
    dt = next(model.parameters()).dtype
    layer_out, gate_raw, gate_outs = {}, {}, {}
    hooks = []

    def layer_hook(i):
        def h(mod, args, kwargs, out):
            layer_out[i] = first_tensor(out).detach().clone()
        return h

    def gate_hook(i):
        def h(mod, args, kwargs, out):
            x = args[0] if args else kwargs.get("hidden_states", next(iter(kwargs.values())))
            gate_raw[i] = F.linear(x.reshape(-1, H), mod.weight).detach().clone()
            gate_outs[i] = out
        return h

    sparse = [i for i, l in enumerate(layers) if hasattr(l.mlp, "experts")]
    try:
        for i, l in enumerate(layers):
            hooks.append(l.register_forward_hook(layer_hook(i), with_kwargs=True))
            if i in sparse:
                hooks.append(l.mlp.gate.register_forward_hook(gate_hook(i), with_kwargs=True))
        kw = dict(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True,
                  use_cache=False, return_dict=True)
        if moe:
            kw["output_router_logits"] = True
        with torch.no_grad():
            out = model(**kw)
    finally:
        for h in hooks:
            h.remove()

    T = {}
    ck = {}
    T["logits"] = out.logits
    hs = tuple(out.hidden_states or ())
    ck["n_hidden_states"] = len(hs)
    for k, h in enumerate(hs):
        T[f"hidden_states.{k}"] = h
    for i in range(L):
        T[f"layer_out.{i}"] = layer_out[i]

    with torch.no_grad():
        emb = model.model.embed_tokens(ids)
        normed = model.model.norm(layer_out[L - 1])
        relogits = model.lm_head(normed)
    ck["hidden_states[0]==embed_tokens(ids)"] = bool(torch.equal(hs[0], emb))
    ck["hidden_states[k]==layer_out[k-1] for 1<=k<L"] = all(torch.equal(hs[k], layer_out[k - 1]) for k in range(1, L))
    if len(hs) == L + 1:
        last = hs[L]
        if torch.equal(last, normed):
            conv = "post_norm: hidden_states[L] == model.norm(layer_out[L-1]) (bitwise)"
        elif torch.equal(last, layer_out[L - 1]):
            conv = "raw: hidden_states[L] == layer_out[L-1] (no final norm)"
        else:
            conv = "neither exactly: |hs[L]-norm(lo)|=%.3g |hs[L]-lo|=%.3g" % (
                float((last - normed).abs().max()), float((last - layer_out[L - 1]).abs().max()))
        ck["hidden_states_convention"] = conv
    else:
        ck["hidden_states_convention"] = f"unexpected count {len(hs)} (L={L})"
    if not ck["hidden_states_convention"].startswith("post_norm"):
        T["final_norm"] = normed
    ck["max|logits - lm_head(norm(layer_out[L-1]))|"] = float((out.logits - relogits).abs().max())

    if moe:
        K = c["num_experts_per_tok"]
        hf_rl = getattr(out, "router_logits", None)
        hf_rl = list(hf_rl) if hf_rl is not None else []
        ck["hf_router_logits_count"] = len(hf_rl)
        kinds, idx_agree, w_agree, margins = [], [], [], []
        for j, i in enumerate(sparse):
            raw = gate_raw[i]
            T[f"router_logits.{i}"] = raw
            probs = F.softmax(raw, dim=-1, dtype=router_dtype or torch.float32)
            vals, idx = torch.topk(probs, K, dim=-1)
            if c["norm_topk_prob"]:
                vals = vals / vals.sum(dim=-1, keepdim=True)
            T[f"topk.{i}"] = idx.to(torch.int64)
            T[f"topk_weights.{i}"] = vals.to(dt)
            # HF's own router output
            if j < len(hf_rl):
                r = hf_rl[j]
                if r.shape == raw.shape and torch.equal(r, raw):
                    kinds.append("raw_logits")
                elif r.shape == raw.shape and torch.allclose(r.double(), F.softmax(raw.double(), -1), atol=1e-6):
                    kinds.append("softmax_probs")
                    T[f"hf_router_logits.{i}"] = r
                else:
                    kinds.append(f"other {tuple(r.shape)} {r.dtype}")
                    T[f"hf_router_logits.{i}"] = r
            go = gate_outs[i]
            if isinstance(go, (tuple, list)):
                ints = [t for t in go if isinstance(t, torch.Tensor) and not t.is_floating_point()]
                flts = [t for t in go if isinstance(t, torch.Tensor) and t.is_floating_point() and t.shape[-1] == K]
                if ints:
                    same = torch.equal(ints[0].to(torch.int64), idx)
                    idx_agree.append(bool(same))
                    if not same:
                        T[f"hf_topk.{i}"] = ints[0].to(torch.int64)
                if flts:
                    w_agree.append(float((flts[0].double() - vals.double()).abs().max()))
            # top-k margin (plain or padded: all tokens), in float64 from the raw logits
            p64 = F.softmax(raw.double(), dim=-1)
            s = torch.sort(p64, dim=-1, descending=True).values
            if s.shape[-1] > K:
                gap = s[:, K - 1] - s[:, K]
                margins.append({"layer": i, "min_gap_kth_vs_next_prob": float(gap.min()), "token": int(gap.argmin())})
        ck["hf_router_logits_are"] = kinds
        ck["hf_gate_topk_equals_recomputed"] = idx_agree
        ck["max|hf_gate_weights - recomputed topk_weights|"] = w_agree
        ck["topk_margins"] = margins
    ck["nan_tensors"] = [k for k, v in T.items() if v.is_floating_point() and bool(torch.isnan(v).any())]
    return T, ck


@contextlib.contextmanager
def patched(model, spec, mask_clamp=False, true_f64=False):
    """Temporarily patch HF's modeling module.

    mask_clamp: wrap eager_attention_forward so a float64 additive mask is clamped to
      finfo(float32).min. HF's eager softmax runs in float32, where finfo(float64).min becomes
      -inf: fully masked (pad-query) rows give NaN, which the next layer spreads to every
      position through the pad keys. With the clamp every non-pad output is unchanged in value
      and pad rows get the uniform attention they get in float32.
    true_f64: replace the float32 islands of HF's code with float64 ones (eager attention
      softmax, RMSNorm, RoPE cos/sin incl. inv_freq, router softmax) to measure how far HF's
      "float64" forward is from a float64 one.
    Yields a dict counting the calls of each patched function.
    """
    import torch
    import torch.nn.functional as F

    mod = sys.modules[type(model).__module__]
    c = geometry(spec)
    hd = c["head_dim"]
    calls = {"attn": 0}
    saved = []

    def setp(obj, attr, new):
        saved.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, new)

    orig_eager = mod.eager_attention_forward

    def repeat_kv(x, n):
        if n == 1:
            return x
        b, h, s, d = x.shape
        return x[:, :, None].expand(b, h, n, s, d).reshape(b, h * n, s, d)

    if true_f64:
        def eager(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
            calls["attn"] += 1
            if scaling is None:
                scaling = module.scaling
            k = repeat_kv(key, module.num_key_value_groups)
            v = repeat_kv(value, module.num_key_value_groups)
            w = torch.matmul(query, k.transpose(2, 3)) * scaling
            if attention_mask is not None:
                w = w + attention_mask[:, :, :, : k.shape[-2]]
            w = torch.softmax(w, dim=-1)  # in the query dtype
            o = torch.matmul(w, v).transpose(1, 2).contiguous()
            return o, w
    else:
        def eager(module, query, key, value, attention_mask, *args, **kwargs):
            calls["attn"] += 1
            if mask_clamp and attention_mask is not None and attention_mask.dtype == torch.float64:
                attention_mask = attention_mask.clamp(min=torch.finfo(torch.float32).min)
            return orig_eager(module, query, key, value, attention_mask, *args, **kwargs)

    setp(mod, "eager_attention_forward", eager)
    if true_f64:
        calls.update(norm=0, rope=0)

        def rms_forward(self, hidden_states):
            calls["norm"] += 1
            var = hidden_states.pow(2).mean(-1, keepdim=True)
            return self.weight * (hidden_states * torch.rsqrt(var + self.variance_epsilon))

        def rope_forward(self, x, position_ids):
            calls["rope"] += 1
            inv = 1.0 / (ROPE_THETA ** (torch.arange(0, hd, 2, dtype=torch.float64, device=x.device) / hd))
            freqs = position_ids[:, :, None].to(torch.float64) * inv[None, None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            scale = getattr(self, "attention_scaling", 1.0)
            return (emb.cos() * scale).to(x.dtype), (emb.sin() * scale).to(x.dtype)

        def router_forward(self, hidden_states):
            calls["router"] += 1
            hidden_states = hidden_states.reshape(-1, self.hidden_dim)
            logits = F.linear(hidden_states, self.weight)
            probs = torch.softmax(logits, dim=-1)
            top, idx = torch.topk(probs, self.top_k, dim=-1)
            if self.norm_topk_prob:
                top = top / top.sum(dim=-1, keepdim=True)
            return logits, top.to(logits.dtype), idx

        done = set()
        for _, m in model.named_modules():
            cls = type(m)
            if cls in done:
                continue
            if cls.__name__.endswith("RMSNorm"):
                setp(cls, "forward", rms_forward)
            elif cls.__name__.endswith("RotaryEmbedding"):
                setp(cls, "forward", rope_forward)
            elif cls.__name__.endswith("TopKRouter"):
                calls["router"] = 0
                setp(cls, "forward", router_forward)
            done.add(cls)
    try:
        yield calls
    finally:
        for obj, attr, old in reversed(saved):
            setattr(obj, attr, old)


def clone_model(ModelCls, model, facts):
    try:
        return copy.deepcopy(model)
    except Exception as e:  # noqa: BLE001
        log(f"  deepcopy failed ({type(e).__name__}: {e}); rebuilding from config + state_dict")
        facts["f64_model_from"] = "rebuilt from config + state_dict"
        m = ModelCls._from_config(copy.deepcopy(model.config))
        m.load_state_dict(model.state_dict())
        return m


def _src(obj):
    try:
        return inspect.getsource(obj)
    except Exception:  # noqa: BLE001
        return ""


def compare_runs(results, a, b, inputs, facts):
    """max |logits_a - logits_b| per batch and the number of tokens whose top-k expert set differs."""
    out = {}
    for bt in inputs:
        if (a, bt) not in results or (b, bt) not in results:
            continue
        Ta, Tb = results[(a, bt)], results[(b, bt)]
        out[f"{bt}.max_abs_logits"] = float((Ta["logits"].double() - Tb["logits"].double()).abs().max())
        out[f"{bt}.max_abs_layer_out_any"] = float(max((Ta[k].double() - Tb[k].double()).abs().max() for k in Ta if k.startswith("layer_out.")))
        for i in facts.get("sparse_layers", []):
            ta, tb = Ta[f"topk.{i}"], Tb[f"topk.{i}"]
            out[f"{bt}.topk_set_mismatch_tokens.{i}"] = int((ta.sort(-1).values != tb.sort(-1).values).any(-1).sum())
    return out


def padded_vs_plain(Tp, Tq, L):
    """max |padded[r, p:] - plain[r, :S-p]| over rows, for logits and last layer_out."""
    import torch

    out = {}
    for key in ("logits", f"layer_out.{L - 1}"):
        ms = [(Tq[key][r, p:] - Tp[key][r, : SEQ - p]).abs().max() for r, p in enumerate(PAD_COUNTS)]
        out[key] = float(torch.stack(ms).max())  # NaN propagates
    return out


def numerics_notes(model):
    """Lines of HF's source that set the precision of the f64 run."""
    notes = {}
    mod = sys.modules[type(model).__module__]
    for name in ("eager_attention_forward",):
        f = getattr(mod, name, None)
        if f is not None:
            src = _src(f)
            notes[name] = [l.strip() for l in src.splitlines() if "softmax" in l]
    for n, m in model.named_modules():
        cls = type(m).__name__
        if cls.endswith("RotaryEmbedding") and "rotary" not in notes:
            src = _src(type(m).forward)
            notes["rotary"] = [l.strip() for l in src.splitlines() if "float" in l or "autocast" in l]
        if cls.endswith("TopKRouter") and "router" not in notes:
            src = _src(type(m).forward)
            notes["router"] = [l.strip() for l in src.splitlines() if l.strip() and not l.strip().startswith('"')]
        if cls.endswith("Experts") and "experts" not in notes:
            src = _src(type(m).forward)
            notes["experts_forward_head"] = [l.rstrip() for l in src.splitlines()[:6]]
            notes["experts"] = cls
        if cls.endswith("RMSNorm") and "rmsnorm" not in notes:
            src = _src(type(m).forward)
            notes["rmsnorm"] = [l.strip() for l in src.splitlines() if l.strip() and not l.strip().startswith('"')]
    return notes


# ----------------------------------------------------------------------------- per model


def make_one(spec, out_root, versions, opts):
    import torch
    from safetensors.torch import save_file

    name = spec["name"]
    moe = spec["kind"] == "moe"
    d = os.path.join(out_root, name)
    facts = {"model": name, "seed": spec["seed"], "input_seed": spec["seed"] + 100}
    t0 = time.time()
    log(f"\n=== {name} ({spec['kind']}, seed {spec['seed']}) ===")
    torch.manual_seed(spec["seed"])
    cfg = build_config(spec, facts)
    ModelCls, model = build_model(spec, cfg, facts)
    check_geometry(spec, model, facts)
    init_weights(model, spec["seed"], facts)
    log(f"  attn={facts['attn_implementation']} experts={facts.get('experts_implementation', '-')} sparse={facts['sparse_layers']} mem-layout={facts.get('in_memory_expert_layout', '-')}")

    names, cj = save_checkpoint(model, d, spec["sharded"], facts)
    if name == "moe-tiny" or not moe:
        for k, v in names.items():
            log(f"    {k:60s} {v[1]} {v[2]} [{v[0]}]")
    else:
        shown = [k for k in names if ".experts." not in k or ".experts.0." in k or k.endswith("experts.gate_up_proj") or k.endswith("experts.down_proj")]
        for k in shown:
            log(f"    {k:60s} {names[k][1]} {names[k][2]} [{names[k][0]}]")
        log(f"    ... ({len(names)} tensors)")
    log("  config.json: " + json.dumps(cj, sort_keys=True))

    inputs = make_inputs(spec["seed"] + 100)
    try:
        reload_check(ModelCls, d, model, moe, inputs, facts)
    except Exception as e:  # noqa: BLE001
        facts["reload"] = f"ERROR {type(e).__name__}: {e}"
        log(traceback.format_exc())

    try:
        facts["numerics_notes"] = numerics_notes(model)
    except Exception as e:  # noqa: BLE001
        facts["numerics_notes"] = {"error": f"{type(e).__name__}: {e}"}

    tensors = {}
    for b, (ids, mask, pos) in inputs.items():
        tensors[f"input_ids.{b}"] = ids
        tensors[f"attention_mask.{b}"] = mask
        tensors[f"position_ids.{b}"] = pos

    inv = [b for n, b in model.named_buffers() if n.endswith("rotary_emb.inv_freq")]
    if inv:
        tensors["rope_inv_freq"] = inv[0].detach().clone()

    L = len(model.model.layers)
    results = {}
    # float32
    for b, (ids, mask, pos) in inputs.items():
        T, ck = run_forward(model, spec, ids, mask, pos)
        results[("f32", b)] = T
        facts[f"checks.f32.{b}"] = ck
    facts["padded_vs_plain.f32"] = padded_vs_plain(results[("f32", "plain")], results[("f32", "padded")], L)
    # float64 (HF's own code, model.double())
    m64 = None
    try:
        m64 = clone_model(ModelCls, model, facts).double().eval()
        ensure_eager(m64, moe, {})
        bad = [n for n, p in m64.named_parameters() if p.dtype != torch.float64]
        assert not bad, f"params not f64: {bad[:3]}"
        status = []
        for b, (ids, mask, pos) in inputs.items():
            T, ck = run_forward(m64, spec, ids, mask, pos)
            if ck["nan_tensors"]:
                facts[f"fp64_unpatched_nan.{b}"] = ck["nan_tensors"]
                log(f"  f64 {b}: NaN in {len(ck['nan_tensors'])} tensors ({ck['nan_tensors'][:4]}...); rerunning with the f64 mask clamped to finfo(float32).min")
                with patched(m64, spec, mask_clamp=True) as calls:
                    T, ck = run_forward(m64, spec, ids, mask, pos)
                assert calls["attn"] > 0, "eager_attention_forward patch not used"
                assert not ck["nan_tensors"], f"still NaN: {ck['nan_tensors']}"
                facts[f"fp64_mask_clamp.{b}"] = "yes: unpatched HF gives NaN; stored tensors use the mask clamped to finfo(float32).min"
                status.append(f"{b}: NaN unpatched (finfo(float64).min mask -> -inf in the float32 eager softmax), ok with mask clamp")
            else:
                status.append(f"{b}: ok")
            results[("f64", b)] = T
            facts[f"checks.f64.{b}"] = ck
        facts["fp64"] = "model.double() runs (eager experts); " + "; ".join(status)
        facts["padded_vs_plain.f64"] = padded_vs_plain(results[("f64", "plain")], results[("f64", "padded")], L)
        bufs = [b for n, b in m64.named_buffers() if n.endswith("inv_freq")]
        facts["rope_inv_freq_dtype_after_double"] = str(bufs[0].dtype) if bufs else "no inv_freq buffer"
        facts["f32_vs_f64"] = compare_runs(results, "f32", "f64", inputs, facts)
    except Exception as e:  # noqa: BLE001
        facts["fp64"] = f"IMPOSSIBLE: {type(e).__name__}: {e}"
        log(traceback.format_exc())

    # float64 with HF's float32 islands replaced (measurement; stored only with --true-f64)
    if m64 is not None and "f64" in [k[0] for k in results]:
        try:
            for b, (ids, mask, pos) in inputs.items():
                with patched(m64, spec, true_f64=True) as calls:
                    T, ck = run_forward(m64, spec, ids, mask, pos, router_dtype=torch.float64)
                assert all(v > 0 for v in calls.values()), f"patch not used: {calls}"
                assert not ck["nan_tensors"], f"NaN: {ck['nan_tensors']}"
                results[("f64x", b)] = T
                facts[f"checks.f64x.{b}"] = ck
                facts["f64x_patch_calls"] = calls
            facts["padded_vs_plain.f64x"] = padded_vs_plain(results[("f64x", "plain")], results[("f64x", "padded")], L)
            facts["f64_vs_f64x"] = compare_runs(results, "f64", "f64x", inputs, facts)
            facts["f32_vs_f64x"] = compare_runs(results, "f32", "f64x", inputs, facts)
        except Exception as e:  # noqa: BLE001
            facts["f64x"] = f"ERROR {type(e).__name__}: {e}"
            log(traceback.format_exc())
        for b in inputs:
            if ("f64x", b) in results and not opts.true_f64:
                results.pop(("f64x", b))

    x_tensors = {}
    for (dtn, b), T in results.items():
        for k, v in T.items():
            (x_tensors if dtn == "f64x" else tensors)[f"{dtn}.{b}.{k}"] = v
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    x_tensors = {k: v.detach().contiguous().clone() for k, v in x_tensors.items()}

    meta_facts = dict(facts)
    meta_facts.pop("config_json", None)
    hs_conv = facts.get("checks.f64.plain", facts.get("checks.f32.plain", {})).get("hidden_states_convention", "?")
    metadata = {
        "format": "pt",
        "model": name,
        "model_type": cj.get("model_type", "?"),
        "seed": str(spec["seed"]),
        "input_seed": str(spec["seed"] + 100),
        "transformers_version": versions["transformers"],
        "torch_version": versions["torch"],
        "safetensors_version": versions.get("safetensors", "?"),
        "checkpoint_expert_layout": facts.get("checkpoint_expert_layout", "?"),
        "hidden_states_convention": hs_conv,
        "fp64": facts.get("fp64", "?"),
        "token_order": "router_logits/topk/topk_weights rows are tokens in order b*S+s (B=%d, S=%d)" % (BATCH, SEQ),
        "padding": "padded batch: row r has %s left pads (id %d, mask 0); its tokens are plain row r's first S-p tokens; position_ids = cumsum(mask)-1, masked_fill(mask==0, 1); outputs at pad positions are not meaningful" % (list(PAD_COUNTS), PAD_ID),
        "topk_rule": "softmax(router_logits, dtype=float32) -> topk(K) sorted descending; topk_weights renormalised to sum 1 iff norm_topk_prob, then cast to the run dtype",
        "config_json": json.dumps(cj, sort_keys=True),
        "facts": jdump(meta_facts),
    }
    if any(k.startswith("f64.padded.") for k in tensors) and "fp64_mask_clamp.padded" in facts:
        metadata["f64_padded"] = ("f64.padded.* were computed with the float64 additive attention mask clamped to "
                                  "finfo(float32).min: unpatched HF eager gives NaN there (see fp64)")
    metadata["f64_precision"] = ("f64.* is HF's model.double() forward, which keeps float32 islands: RMSNorm "
                                 "(incl. q/k norm) computes in float32, RoPE cos/sin in float32 from a float32 inv_freq, "
                                 "the eager attention softmax in float32, the router softmax in float32")
    gpath = os.path.join(d, "golden.safetensors")
    with atomic_path(gpath) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    if x_tensors:
        xmeta = dict(metadata)
        xmeta["f64x"] = ("f64x.* = float64 forward with HF's float32 islands replaced by float64 (eager attention softmax, "
                         "RMSNorm, RoPE incl. inv_freq, router softmax; topk/topk_weights from a float64 softmax)")
        with atomic_path(os.path.join(d, "golden_f64x.safetensors")) as tmp:
            save_file(x_tensors, tmp, metadata=xmeta)
    summary = {
        "metadata": {k: v for k, v in metadata.items() if k not in ("facts", "config_json")},
        "facts": facts,
        "tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in sorted(tensors.items())},
        "tensors_f64x": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in sorted(x_tensors.items())},
    }
    with atomic_path(os.path.join(d, "golden.json")) as tmp, open(tmp, "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True, default=str)
        f.write("\n")
    sizes = {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}
    facts["file_sizes"] = sizes
    log(f"  facts: {jdump({k: v for k, v in facts.items() if k not in ('config_json', 'numerics_notes')})}")
    log(f"  numerics: {jdump(facts['numerics_notes'])}")
    log(f"  files: {sizes}  total {sum(sizes.values())} bytes; {len(tensors)} golden tensors; {time.time() - t0:.1f}s")
    return facts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output root; one folder per model")
    ap.add_argument("--true-f64", action="store_true",
                    help="also write golden_f64x.safetensors (float64 with HF's float32 islands patched out)")
    ap.add_argument("--models", default="", help="comma-separated subset of: " + ",".join(m["name"] for m in MODELS))
    args = ap.parse_args()

    import torch
    import transformers

    try:
        import safetensors
        st_v = safetensors.__version__
    except Exception:  # noqa: BLE001
        st_v = "?"
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    versions = {"transformers": transformers.__version__, "torch": torch.__version__, "safetensors": st_v,
                "python": platform.python_version()}
    log(f"versions: {versions}")
    os.makedirs(args.out, exist_ok=True)
    want = [m for m in args.models.split(",") if m]
    report = {"versions": versions, "models": {}}
    ok = True
    for spec in MODELS:
        if want and spec["name"] not in want:
            continue
        try:
            report["models"][spec["name"]] = make_one(spec, args.out, versions, args)
        except Exception as e:  # noqa: BLE001
            ok = False
            report["models"][spec["name"]] = {"ERROR": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            log(f"!!! {spec['name']} FAILED: {type(e).__name__}: {e}")
            log(traceback.format_exc())
    with atomic_path(os.path.join(args.out, "_report.json")) as tmp, open(tmp, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True, default=str)
    total = 0
    log("\n=== sizes ===")
    for root, _, files in sorted(os.walk(args.out)):
        for fn in sorted(files):
            p = os.path.join(root, fn)
            total += os.path.getsize(p)
            log(f"  {os.path.getsize(p):9d}  {os.path.relpath(p, args.out)}")
    log(f"  total {total} bytes ({total / 2**20:.2f} MiB)")
    log("ALL OK" if ok else "SOME MODELS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
