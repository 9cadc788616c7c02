#!/usr/bin/env python3
"""Record what HF transformers' own tensor parallelism does for each model family and TP size.

For every config given, this makes a tiny random model that keeps the checkpoint's head geometry
(query / KV heads, head_dim, MLA ranks, linear-attention heads), every intermediate and expert width
and the vocabulary, with a small hidden size of the same divisibility by 2, 3, 4, 6, 8 and 16
(`head_dim` stays explicit), and as many layers as the first full-attention, sliding and sparse
layers need. It then runs `from_pretrained(..., tp_plan="auto")` and one forward on N CPU Gloo
ranks, one process per rank, exactly as
`CUDA_VISIBLE_DEVICES= torchrun --standalone --nproc-per-node N` would launch them (the same
RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT variables, without torchrun's own
process, so many launches fit the machine at once), and records per rank: the load outcome, the
forward outcome (exception type, message, the innermost module running, the HF source line), the
local shapes of the sharded parameters, and when the forward passes, the logits against the same
model on one process.

    python3 tools/hf_tp/record_hf_tp.py --out DIR [--tp 2,3,4,6,8,16] CONFIG.json ...
    python3 tools/hf_tp/record_hf_tp.py --compact DIR --out fixtures/hf_tp

The first writes DIR/<name>.json per config (name = the folder holding config.json; every rank's
outcome, traceback and local shapes) and DIR/hf_source/ (HF's tensor-parallel code and each
family's modeling file, to read). Needs torch >= 2.5 and transformers (run on the GPU machine; it
uses no GPU, 16 cores: ~15 min for 16 configs x 6 TP sizes, so split the TP sizes over two calls).
The second reduces those records to the fixtures the checker is held to (tests/core/test_hf_tp.cpp):
per TP size, each distinct outcome with its ranks, the op (which view) and the innermost module.
"""
import argparse
import concurrent.futures as cf
import copy
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback

BATCH, SEQ = 4, 13


def v_p(n, p):
    k = 0
    while n and n % p == 0:
        n //= p
        k += 1
    return k


def small_hidden(h):
    """A small hidden size with the same divisibility by 2, 3, 4, 6, 8 and 16 as h."""
    if not h:
        return h
    s = (2 ** min(v_p(h, 2), 5)) * (3 if h % 3 == 0 else 1)
    while s < 64:
        s *= 5
    return s


def text_of(cfg):
    return cfg["text_config"] if isinstance(cfg.get("text_config"), dict) else cfg


def layers_needed(t):
    """Layers to keep so that the layer pattern's first full-attention, sliding, linear and sparse
    layers (and the first dense one) all occur."""
    L = int(t.get("num_hidden_layers", 2))
    want = 2
    lt = t.get("layer_types")
    if isinstance(lt, list) and lt:
        seen = {}
        for i, k in enumerate(lt):
            seen.setdefault(k, i)
        want = max(want, max(seen.values()) + 1)
    if t.get("full_attention_interval"):
        want = max(want, int(t["full_attention_interval"]))
    if t.get("first_k_dense_replace") is not None:
        want = max(want, int(t["first_k_dense_replace"]) + 1)
    if t.get("decoder_sparse_step"):
        want = max(want, int(t["decoder_sparse_step"]))
    if t.get("mlp_only_layers"):
        want = max(want, min(int(x) for x in t["mlp_only_layers"]) + 2)
    if t.get("sliding_window_pattern"):
        want = max(want, int(t["sliding_window_pattern"]))
    if t.get("max_window_layers") and t.get("use_sliding_window"):
        want = max(want, int(t["max_window_layers"]) + 1)
    return min(L, want)


def tiny_config(cfg):
    """The recorded model's config: the real one with hidden, depth and vision tower shrunk."""
    c = copy.deepcopy(cfg)
    c.pop("quantization_config", None)
    t = text_of(c)
    t.pop("quantization_config", None)
    H = t.get("num_attention_heads")
    if "head_dim" not in t and H and t.get("hidden_size") and t.get("model_type") != "deepseek_v3":
        t["head_dim"] = t["hidden_size"] // H
    t["hidden_size"] = small_hidden(int(t["hidden_size"]))
    L = layers_needed(t)
    t["num_hidden_layers"] = L
    if isinstance(t.get("layer_types"), list):
        t["layer_types"] = t["layer_types"][:L]
    if isinstance(t.get("mlp_only_layers"), list):
        t["mlp_only_layers"] = [x for x in t["mlp_only_layers"] if x < L]
    v = c.get("vision_config")
    if isinstance(v, dict):
        for k in ("depth", "num_hidden_layers"):
            if k in v:
                v[k] = 1
        for k in ("deepstack_visual_indexes",):
            if k in v:
                v[k] = []
        for k in ("hidden_size", "intermediate_size"):
            if k in v and isinstance(v[k], int):
                v[k] = max(64, min(v[k], 128))
        if "num_heads" in v:
            v["num_heads"] = 2
        if "num_attention_heads" in v:
            v["num_attention_heads"] = 2
        if "out_hidden_size" in v:
            v["out_hidden_size"] = t["hidden_size"]
    c["torch_dtype"] = "float32"
    c["dtype"] = "float32"
    return c


def load_model_class(cfg_obj):
    import transformers as tf
    try:
        return tf.AutoModelForCausalLM.from_config(cfg_obj, dtype=__import__("torch").float32)
    except Exception:
        return tf.AutoModelForImageTextToText.from_config(cfg_obj, dtype=__import__("torch").float32)


def auto_class_name(cfg_obj):
    import transformers as tf
    try:
        tf.AutoModelForCausalLM._model_mapping[type(cfg_obj)]
        return "AutoModelForCausalLM"
    except Exception:
        return "AutoModelForImageTextToText"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ----------------------------------------------------------------------------------------- worker
def frames_of(exc):
    out = []
    for fr in traceback.extract_tb(exc.__traceback__):
        base = os.path.basename(fr.filename)
        out.append({"file": base, "func": fr.name, "line": fr.lineno, "code": (fr.line or "").strip()})
    return out


def hf_frame(frames):
    """The innermost frame inside transformers' modeling or integration code."""
    for fr in reversed(frames):
        if fr["file"].startswith("modeling_") or fr["file"] in ("tensor_parallel.py", "modeling_utils.py",
                                                                 "core_model_loading.py", "moe.py"):
            return fr
    return frames[-1] if frames else None


def worker(args):
    import datetime
    import torch
    import torch.distributed as dist
    import transformers as tf

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(1)
    res = {"rank": rank, "world": world}
    out_path = os.path.join(args.worker_out, f"rank{rank}.json")

    def dump():
        tmp = out_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(res, f)
        os.replace(tmp, out_path)

    # The group HF would create itself, with a short timeout so that ranks left waiting in a
    # collective by a failed peer report it instead of hanging (HF keeps an initialised group).
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=args.timeout))
    cls = getattr(tf, args.auto_class)
    try:
        model = cls.from_pretrained(args.worker, tp_plan="auto", dtype=torch.float32)
        res["load"] = {"ok": True}
    except Exception as e:
        fr = frames_of(e)
        res["load"] = {"ok": False, "type": type(e).__name__, "message": str(e), "where": hf_frame(fr), "frames": fr[-8:]}
        dump()
        return
    model.eval()
    try:
        res["tp_plan"] = {k: str(v) for k, v in (getattr(model, "tp_plan", None) or getattr(model, "_tp_plan", None) or {}).items()}
    except Exception as e:  # noqa
        res["tp_plan_error"] = str(e)
    shapes = {}
    import re
    for name, p in model.named_parameters():
        g = re.sub(r"\.\d+\.", ".*.", name)
        if g in shapes:
            continue
        local = p.to_local() if hasattr(p, "to_local") else p
        shapes[g] = list(local.shape)
    res["local_shapes"] = shapes

    stack = []

    def pre(name):
        def f(mod, inp):
            stack.append(name)
        return f

    def post(name):
        def f(mod, inp, out):
            if stack and stack[-1] == name:
                stack.pop()
        return f

    for name, m in model.named_modules():
        if name:
            m.register_forward_pre_hook(pre(name))
            m.register_forward_hook(post(name))
    ids = torch.load(os.path.join(args.worker, "input_ids.pt"))
    mask = torch.ones_like(ids)
    try:
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask)
        logits = out.logits
        if hasattr(logits, "full_tensor"):
            logits = logits.full_tensor()
        ref = torch.load(os.path.join(args.worker, "ref_logits.pt"))
        res["forward"] = {"ok": True, "logits_shape": list(logits.shape)}
        if list(logits.shape) == list(ref.shape):
            d = (logits.float() - ref.float()).abs()
            res["forward"]["max_abs_diff"] = float(d.max())
            res["forward"]["ref_max_abs"] = float(ref.abs().max())
    except Exception as e:
        fr = frames_of(e)
        res["forward"] = {"ok": False, "type": type(e).__name__, "message": str(e), "module": stack[-1] if stack else "",
                          "module_stack": stack[-6:], "where": hf_frame(fr), "frames": fr[-8:]}
    dump()


# ----------------------------------------------------------------------------------------- driver
def prepare(cfg_path, root):
    import torch
    import transformers as tf
    torch.set_num_threads(2)
    real = json.load(open(cfg_path))
    name = os.path.basename(os.path.dirname(os.path.abspath(cfg_path)))
    tiny = tiny_config(real)
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(tiny, f, indent=1)
    info = {"name": name, "source": cfg_path, "model_type": real.get("model_type"), "tiny_config": tiny,
            "batch": BATCH, "seq": SEQ}
    try:
        cfg_obj = tf.AutoConfig.from_pretrained(d)
        torch.manual_seed(0)
        info["auto_class"] = auto_class_name(cfg_obj)
        model = getattr(tf, info["auto_class"]).from_config(cfg_obj, dtype=torch.float32)
        model.eval()
        model.save_pretrained(d)
        t = text_of(tiny)
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(0, min(int(t.get("vocab_size", 1000)), 1000), (BATCH, SEQ), generator=g)
        torch.save(ids, os.path.join(d, "input_ids.pt"))
        with torch.no_grad():
            ref = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        torch.save(ref, os.path.join(d, "ref_logits.pt"))
        import re
        full = {}
        for pname, prm in model.named_parameters():
            full.setdefault(re.sub(r"\.\d+\.", ".*.", pname), list(prm.shape))
        info["full_shapes"] = full
        info["config_class"] = type(cfg_obj).__name__
        info["model_class"] = type(model).__name__
        tc = cfg_obj.get_text_config() if hasattr(cfg_obj, "get_text_config") else cfg_obj
        info["base_model_tp_plan"] = dict(getattr(tc, "base_model_tp_plan", None) or {})
        info["base_model_ep_plan"] = dict(getattr(tc, "base_model_ep_plan", None) or {})
        info["model_tp_plan"] = {k: str(v) for k, v in (getattr(type(model), "_tp_plan", None) or {}).items()}
        info["prepare"] = {"ok": True}
    except Exception as e:
        info["prepare"] = {"ok": False, "type": type(e).__name__, "message": str(e), "frames": frames_of(e)[-8:]}
    return info, d


def launch(info, d, tp, timeout):
    wout = os.path.join(d, f"tp{tp}")
    shutil.rmtree(wout, ignore_errors=True)
    os.makedirs(wout)
    port = free_port()
    procs = []
    t0 = time.time()
    for r in range(tp):
        env = dict(os.environ, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(tp), LOCAL_WORLD_SIZE=str(tp),
                   GROUP_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), CUDA_VISIBLE_DEVICES="",
                   OMP_NUM_THREADS="1", TRANSFORMERS_VERBOSITY="error")
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", d, "--worker-out", wout,
                                       "--auto-class", info["auto_class"], "--timeout", str(timeout)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    ranks, logs = [], []
    for r, p in enumerate(procs):
        try:
            o, _ = p.communicate(timeout=timeout * 3 + 60)
        except subprocess.TimeoutExpired:
            p.kill()
            o, _ = p.communicate()
        logs.append(o.decode(errors="replace")[-1500:])
        f = os.path.join(wout, f"rank{r}.json")
        if os.path.exists(f):
            ranks.append(json.load(open(f)))
        else:
            ranks.append({"rank": r, "world": tp, "exit_code": p.returncode, "log_tail": logs[-1]})
    return {"tp": tp, "seconds": round(time.time() - t0, 1), "ranks": ranks}


def summarise(run):
    """One line per distinct outcome: which ranks, what happened."""
    groups = {}
    for r in run["ranks"]:
        if "load" not in r:
            key = ("crash", str(r.get("exit_code")), "")
        elif not r["load"]["ok"]:
            key = ("load", r["load"]["type"], r["load"]["message"])
        elif not r["forward"]["ok"]:
            key = ("forward", r["forward"]["type"], r["forward"]["message"] + " @ " + r["forward"]["module"])
        else:
            d = r["forward"].get("max_abs_diff")
            key = ("ok", "", "max_abs_diff %.3g" % d if d is not None else "")
        groups.setdefault(key, []).append(r["rank"])
    return [{"phase": k[0], "type": k[1], "text": k[2], "ranks": v} for k, v in groups.items()]


def copy_sources(out):
    import transformers as tf
    base = os.path.dirname(tf.__file__)
    dst = os.path.join(out, "hf_source")
    os.makedirs(dst, exist_ok=True)
    for rel in ("integrations/tensor_parallel.py", "integrations/moe.py", "modeling_utils.py", "core_model_loading.py",
                "distributed/configuration_utils.py", "integrations/finegrained_fp8.py"):
        p = os.path.join(base, rel)
        if os.path.exists(p):
            shutil.copy(p, os.path.join(dst, rel.replace("/", "__")))
    for fam in ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "qwen3_next", "qwen3_5_moe",
                "qwen3_5", "qwen3_vl_moe", "gpt_oss", "phi3", "glm4_moe", "deepseek_v3", "gemma3"):
        for kind in ("modeling", "configuration"):
            p = os.path.join(base, "models", fam, f"{kind}_{fam}.py")
            if os.path.exists(p):
                shutil.copy(p, os.path.join(dst, f"{kind}_{fam}.py"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("configs", nargs="*")
    ap.add_argument("--out")
    ap.add_argument("--tp", default="2,3,4,6,8,16")
    ap.add_argument("--jobs", type=int, default=0, help="concurrent rank processes (default: 1.5 x cores)")
    ap.add_argument("--timeout", type=int, default=40, help="seconds a rank waits in a collective")
    ap.add_argument("--work", default="/tmp/sc-hf-tp")
    ap.add_argument("--worker")
    ap.add_argument("--worker-out")
    ap.add_argument("--auto-class")
    ap.add_argument("--compact")
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if args.compact:
        return compact_all(args.compact, args.out)
    import torch
    import transformers as tf
    os.makedirs(args.out, exist_ok=True)
    copy_sources(args.out)
    tps = [int(x) for x in args.tp.split(",")]
    infos = []
    # Random models for every config at once (each is a separate process: init is single-threaded).
    with cf.ProcessPoolExecutor(max_workers=min(8, len(args.configs) or 1)) as ex:
        for info, d in ex.map(prepare, args.configs, [args.work] * len(args.configs)):
            print(f"prepared {info['name']}: {info['prepare']}", flush=True)
            infos.append((info, d))
    budget = args.jobs or int((os.cpu_count() or 4) * 1.5)
    jobs = [(info, d, tp) for info, d in infos if info["prepare"]["ok"] for tp in tps]
    jobs.sort(key=lambda j: -j[2])
    results = {}
    # Fill the process budget with launches (largest first); each launch holds tp processes.
    running = {}
    with cf.ThreadPoolExecutor(max_workers=64) as ex:
        pending = list(jobs)
        used = 0
        while pending or running:
            started = True
            while started:
                started = False
                for j in list(pending):
                    if used + j[2] <= budget or (not running and used == 0):
                        fut = ex.submit(launch, j[0], j[1], j[2], args.timeout)
                        running[fut] = j
                        used += j[2]
                        pending.remove(j)
                        started = True
                        break
            done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                info, d, tp = running.pop(fut)
                used -= tp
                run = fut.result()
                run["summary"] = summarise(run)
                results.setdefault(info["name"], []).append(run)
                write_result(args.out, info, results[info["name"]])
                print(f"{info['name']} tp={tp} ({run['seconds']} s): " +
                      "; ".join(f"{s['phase']} {s['type']} {s['text'][:160]} ranks {s['ranks']}" for s in run["summary"]),
                      flush=True)
    for info, d in infos:
        write_result(args.out, info, results.get(info["name"], []))


def write_result(out, info, runs):
    import torch
    import transformers as tf
    doc = dict(info, transformers=tf.__version__, torch=torch.__version__,
               runs=sorted(runs, key=lambda r: r["tp"]), recorded_by="tools/hf_tp/record_hf_tp.py")
    tmp = os.path.join(out, info["name"] + ".json.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, os.path.join(out, info["name"] + ".json"))


def op_of(where):
    """Which step of the attention raised: the HF source line names the tensor being viewed."""
    code = (where or {}).get("code", "")
    for key, op in (("query_states", "q view"), ("key_states", "k view"), ("value_states", "v view"),
                    ("lm_head", "lm_head")):
        if key in code:
            return op
    return (where or {}).get("func", "")


def compact(doc):
    runs = []
    for run in doc["runs"]:
        outcomes = []
        for srun in run["summary"]:
            rk = next(r for r in run["ranks"] if r["rank"] == srun["ranks"][0])
            o = {"phase": srun["phase"], "ranks": srun["ranks"]}
            if srun["phase"] == "load":
                o.update(type=rk["load"]["type"], message=rk["load"]["message"], where=rk["load"]["where"])
            elif srun["phase"] == "forward":
                f = rk["forward"]
                o.update(type=f["type"], message=f["message"], module=f["module"], op=op_of(f["where"]), where=f["where"])
            elif srun["phase"] == "ok":
                o["max_abs_diff"] = rk["forward"].get("max_abs_diff")
            else:
                o["log_tail"] = rk.get("log_tail", "")[-400:]
            outcomes.append(o)
        r0 = next((r for r in run["ranks"] if r["rank"] == 0), {})
        runs.append({"tp": run["tp"], "outcomes": outcomes, "rank0_local_shapes": r0.get("local_shapes", {})})
    hf = {k: doc.get(k) for k in ("config_class", "model_class", "auto_class", "base_model_tp_plan",
                                  "base_model_ep_plan", "model_tp_plan")}
    return {"schema": "shardcheck/hf-tp-record/1", "recorded_by": doc["recorded_by"],
            "transformers": doc["transformers"], "torch": doc["torch"], "name": doc["name"],
            "model_type": doc["model_type"], "batch": doc["batch"], "seq": doc["seq"], "config": doc["tiny_config"],
            "hf": hf, "full_shapes": doc.get("full_shapes", {}), "runs": runs}


def compact_all(src, out):
    os.makedirs(out, exist_ok=True)
    for f in sorted(os.listdir(src)):
        if f.endswith(".json"):
            doc = compact(json.load(open(os.path.join(src, f))))
            with open(os.path.join(out, f), "w") as fh:
                json.dump(doc, fh, indent=1, sort_keys=True)
                fh.write("\n")


if __name__ == "__main__":
    main()
