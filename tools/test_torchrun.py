#!/usr/bin/python3
"""`shardcheck run`, `steer` and `repro` under torchrun: one job across the launched processes
(CTest `torchrun`).

Usage: /usr/bin/python3 tools/test_torchrun.py BINARY REPO_ROOT

Debian's python3-torch (1.13) brings torchrun as `python3 -m torch.distributed.run`. Each process
runs one rank over a TCPStore; rank 0 gathers every rank's observations, compares them with the
single-device reference and reports once; the others exit with its verdict. Exit 77 (CTest skip)
when the torch module is missing. Prints one line per check and `N passed, M failed`.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

# Python 3.11's IntFlag iteration drops the zero member, so torch 1.13's default redirects ("0")
# parse to None; -r 2 -t 2 (stderr redirected and teed) parse.
TORCHRUN = ["/usr/bin/python3", "-m", "torch.distributed.run", "--standalone", "-r", "2", "-t", "2", "--no_python"]


def main(argv):
    if len(argv) != 3:
        print("usage: %s BINARY REPO_ROOT" % argv[0], file=sys.stderr)
        return 2
    binary, root = argv[1], argv[2]
    probe = subprocess.run(["/usr/bin/python3", "-c", "import torch.distributed.run"], capture_output=True)
    if probe.returncode != 0:
        print("SKIP torchrun: /usr/bin/python3 cannot import torch.distributed.run (setup.sh installs python3-torch)")
        return 77
    cfg = os.path.join(root, "fixtures", "detection", "config.json")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    passed = failed = 0

    def check(name, ok, detail):
        nonlocal passed, failed
        print(("PASS  " if ok else "FAIL  ") + name + ("" if ok else "\n" + detail))
        passed += ok
        failed += not ok

    def torchrun(nproc, args):
        cmd = TORCHRUN + ["--nproc_per_node", str(nproc), binary, "run", "--config", cfg, "--seq", "8"] + args
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
        return p.returncode, p.stdout + p.stderr

    # 2 processes, TP=2: one report (rank 0's), a match, every rank compared.
    rc, out = torchrun(2, ["--tp", "2", "--batch", "2"])
    check("2 processes tp=2: exit 0", rc == 0, out)
    check("2 processes tp=2: one report", out.count("verdict: match") == 1 and out.count("run: detection") == 1, out)
    check("2 processes tp=2: 2 ranks compared",
          "[tp=2 ep=1 pp=1 plan=hf-auto, float32, backend gloo on cpu, 2 ranks]" in out and " comparisons" in out, out)

    # 4 processes, TP=2 x PP=2 with 2 micro-batches, a bug seeded on rank 3 (another process):
    # located there, reported once, every process fails.
    rc, out = torchrun(4, ["--dtype", "float64", "--tp", "2", "--pp", "2", "--micro-batches", "2", "--batch", "5",
                           "--inject-fault", "q-shard-offset,rank=3,layer=2"])
    check("4 processes tp=2 pp=2: the run fails", rc != 0, out)
    want = "first divergence: layer 2 self_attn.q_proj on rank 3 (stage 1): q_proj output differs"
    check("4 processes tp=2 pp=2: located on rank 3, reported once", out.count(want) == 1, out)
    check("4 processes tp=2 pp=2: one verdict line", out.count("verdict: mismatch") == 1, out)

    # 4 processes, an unmodified TP=2 x PP=2 plan with unequal micro-batches: match.
    rc, out = torchrun(4, ["--tp", "2", "--pp", "2", "--batch", "3", "--micro-batches", "2"])
    check("4 processes tp=2 pp=2 clean: exit 0 and one match", rc == 0 and out.count("verdict: match") == 1, out)

    # A launch whose WORLD_SIZE is not the plan's: every process refuses in one line (exit 2).
    rc, out = torchrun(2, ["--tp", "4", "--batch", "2"])
    line = ("shardcheck: plan error: key 'WORLD_SIZE' = 2: tp=4 ep=1 pp=1 plan=hf-auto needs 4 ranks (max(tp, ep) x pp);"
            " start torchrun with --nproc-per-node 4")
    check("WORLD_SIZE 2 for a 4-rank plan: refused on both processes", out.count(line) == 2 and "exitcode: 2" in out, out)

    # repro: the users' failure on 8 processes, one rank each; rank 0 reports every rank's error
    # (the others leave theirs in the store), the fixes run (TP=4 on processes 0-3) and match.
    p = subprocess.run(TORCHRUN + ["--nproc_per_node", "8", binary, "repro", "--batch", "4", "--seq", "8"],
                       capture_output=True, text=True, env=env, timeout=600)
    out = p.stdout + p.stderr
    check("repro on 8 processes: exit 0", p.returncode == 0, out)
    text = "shape '[4, 8, -1, 128]' is invalid for input of size 2048"
    check("repro on 8 processes: one report naming all 8 ranks' errors",
          out.count("=> reproduced: every rank raises the users' error") == 1 and
          all(out.count("rank %d" % r) >= 1 for r in range(8)) and out.count(text) >= 8, out)
    check("repro on 8 processes: both fixes match, reported once",
          out.count("replicate-kv at TP=8: match") == 1 and out.count("hf-auto at TP=4:      match") == 1, out)
    p = subprocess.run(TORCHRUN + ["--nproc_per_node", "2", binary, "repro"], capture_output=True, text=True, env=env,
                       timeout=120)
    out = p.stdout + p.stderr
    check("repro on 2 processes: refused in one line on both",
          out.count("shardcheck: plan error: key 'WORLD_SIZE' = 2: repro runs the 8-rank failure and its fixes: "
                    "start torchrun with --nproc-per-node 8") == 2, out)

    # steer: extraction and the sweep as one job (TP=2, then PP=2 where rank 1 holds the second half
    # of the layers and the logits); the same vectors and logit differences as one process.
    caa = os.path.join(root, "fixtures", "datasets", "metric_units_caa.json")
    tmp = tempfile.mkdtemp(prefix="sc_torchrun_steer")
    try:
        for plan in (["--tp", "2"], ["--pp", "2"]):
            name = "steer " + " ".join(plan)
            args = ["steer", "--config", cfg, "--allow-vocab-mismatch", "--dataset", caa, "--multipliers", "-1,1",
                    "--batch-size", "8"] + plan
            one, many = os.path.join(tmp, "one" + plan[0]), os.path.join(tmp, "many" + plan[0])
            p1 = subprocess.run([binary] + args + ["--out", one], capture_output=True, text=True, env=env, timeout=300)
            if p1.returncode != 0 and "tokenizer" in p1.stderr:
                print("SKIP steer: no Qwen3 tokenizer (tools/fetch_tokenizer.sh)")
                break
            p2 = subprocess.run(TORCHRUN + ["--nproc_per_node", "2", binary] + args + ["--out", many],
                                capture_output=True, text=True, env=env, timeout=300)
            out = p2.stdout + p2.stderr
            check(name + " on 2 processes: exit 0, one report", p2.returncode == 0 and p1.returncode == 0 and
                  out.count("best layer by slope") == 1 and "one job across 2 torchrun processes" in out,
                  out + p1.stderr)
            try:
                a = json.load(open(os.path.join(one, "eval.json")))
                b = json.load(open(os.path.join(many, "eval.json")))
                la = [l["logit_diff"] for l in a["evaluation"]["layers"]] if "evaluation" in a else \
                     [l["logit_diff"] for l in a["layers"]]
                lb = [l["logit_diff"] for l in b["evaluation"]["layers"]] if "evaluation" in b else \
                     [l["logit_diff"] for l in b["layers"]]
                same = len(la) == len(lb) and all(abs(x - y) <= 1e-9 * max(1.0, abs(x))
                                                  for ra, rb in zip(la, lb) for x, y in zip(ra, rb))
                vec_same = open(os.path.join(one, "vectors.safetensors"), "rb").read() == \
                    open(os.path.join(many, "vectors.safetensors"), "rb").read()
            except (OSError, ValueError, KeyError) as e:
                same, vec_same = False, False
                out += "\n" + repr(e)
            check(name + " on 2 processes: the one-process vectors and logit differences", same and vec_same, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # Inconsistent variables, no torchrun needed: one line, exit 2.
    bad = dict(env, RANK="5", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT="29999", LOCAL_RANK="0")
    p = subprocess.run([binary, "run", "--config", cfg, "--tp", "2", "--batch", "2", "--seq", "8"],
                       capture_output=True, text=True, env=bad, timeout=60)
    check("RANK outside WORLD_SIZE: one plan error line, exit 2",
          p.returncode == 2 and p.stderr.startswith("shardcheck: plan error: key 'RANK' = 5") and
          p.stderr.count("\n") == 1, "rc %d\n%s" % (p.returncode, p.stderr))

    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
