#!/usr/bin/python3
"""`shardcheck run` under torchrun: one job across the launched processes (CTest `torchrun`).

Usage: /usr/bin/python3 tools/test_torchrun.py BINARY REPO_ROOT

Debian's python3-torch (1.13) brings torchrun as `python3 -m torch.distributed.run`. Each process
runs one rank over a TCPStore; rank 0 gathers every rank's observations, compares them with the
single-device reference and reports once; the others exit with its verdict. Exit 77 (CTest skip)
when the torch module is missing. Prints one line per check and `N passed, M failed`.
"""
import os
import subprocess
import sys

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

    # steer and repro do not span processes yet: one line each, exit 2, on every process.
    for cmd in (["repro"], ["steer", "--config", cfg, "--dataset", os.path.join(root, "fixtures", "datasets",
                                                                               "metric_units_caa.json")]):
        p = subprocess.run(TORCHRUN + ["--nproc_per_node", "2", binary] + cmd, capture_output=True, text=True, env=env,
                           timeout=120)
        out = p.stdout + p.stderr
        check(cmd[0] + " under torchrun: refused on both processes",
              out.count("shardcheck: plan error: key 'RANK' = ") == 2 and "does not span torchrun processes yet" in out,
              out)

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
