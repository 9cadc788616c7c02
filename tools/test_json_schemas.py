#!/usr/bin/python3
"""Validates every JSON output of the CLI against its schema under docs/schemas/ (CTest: json_schemas).

Usage: /usr/bin/python3 tools/test_json_schemas.py BINARY REPO_ROOT [--with-repro]

Runs each command with small sizes and temporary output folders, parses its JSON and validates it
with Debian's python3-jsonschema (Draft202012Validator), then proves that every schema can fail:
mutated copies of the real output (the `schema` id changed, a required key removed, a nested type
or value changed) must be rejected, and a copy with an unknown key added to every object must still
pass (additionalProperties stays open: within a major version keys are only added). The schema
files themselves are checked too (well-formed draft 2020-12, nothing closed, each one exercised).

`repro` runs at batch 2 x seq 8 (1-2 s; --with-repro: the users' 64 x 103, ~25 s); `steer` needs the fetched Qwen3 tokenizer
(bash tools/fetch_tokenizer.sh) and is skipped, saying so, without it. One line per check, then
"N passed, M failed"; the exit status is 1 when anything failed (2: bad usage).
"""
import copy
import json
import os
import subprocess
import sys
import tempfile
import time

try:
    import jsonschema
    from jsonschema import Draft202012Validator
except ImportError as e:  # pragma: no cover
    print("test_json_schemas: the jsonschema module is missing (%s): apt-get install -y python3-jsonschema" % e)
    print("0 passed, 1 failed")
    sys.exit(1)

SCHEMAS = ["check", "matrix", "gate", "report", "run", "repro", "fuzz", "steer", "bench", "steer-eval"]
DRAFT = "https://json-schema.org/draft/2020-12/schema"
UNKNOWN_KEY = "x_key_added_later"
CMD_TIMEOUT_S = 240


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name, what):
        self.passed += 1
        print("PASS  %-22s %s" % (name, what), flush=True)

    def fail(self, name, what):
        self.failed += 1
        print("FAIL  %-22s %s" % (name, what), flush=True)

    def skip(self, name, why):
        print("SKIP  %-22s %s" % (name, why), flush=True)

    def check(self, cond, name, what, why=""):
        if cond:
            self.ok(name, what)
        else:
            self.fail(name, what + (": " + why if why else ""))
        return cond


# ---- mutations: each returns (description, the path where the validation error must be) ----------

def get(doc, path):
    for k in path:
        doc = doc[k]
    return doc


def set_id(doc, schema):
    doc["schema"] = "shardcheck.%s/2" % schema
    return "schema id changed to shardcheck.%s/2" % schema, ["schema"]


def drop_required(doc, schema_json):
    key = sorted(k for k in schema_json["required"] if k != "schema")[0]
    del doc[key]
    return "required key '%s' removed" % key, []


def drop(path):
    def m(doc):
        del get(doc, path[:-1])[path[-1]]
        return "required key %s removed" % fmt(path), path[:-1]
    return m


def put(path, value):
    def m(doc):
        get(doc, path[:-1])[path[-1]] = value
        return "%s set to %s" % (fmt(path), json.dumps(value)), path
    return m


def fmt(path):
    return "".join("[%d]" % p if isinstance(p, int) else "." + p for p in path).lstrip(".")


def add_unknown_keys(doc):
    """An unknown key in every object, at every level."""
    n = 0
    if isinstance(doc, dict):
        for v in list(doc.values()):
            n += add_unknown_keys(v)
        doc[UNKNOWN_KEY] = {"added": True}
        n += 1
    elif isinstance(doc, list):
        for v in doc:
            n += add_unknown_keys(v)
    return n


def error_paths(errors):
    """Paths of the errors and of the errors under them (anyOf, if/then, $ref)."""
    out = []
    for e in errors:
        out.append(list(e.absolute_path))
        out.extend(error_paths(e.context or []))
    return out


# ---- the cases ---------------------------------------------------------------------------------------

def cases(tmp, tok_dir, with_repro):
    """(name, argv, expected exit codes, [(document label, schema, 'stdout' or a file)], targeted
    mutations, a coverage check on the parsed stdout document, skip reason or None, prepare)."""
    q235 = "fixtures/configs/qwen3-235b-a22b/config.json"
    q30 = "fixtures/configs/qwen3-30b-a3b/config.json"
    det = "fixtures/detection/config.json"
    tiny = "fixtures/models/moe-tiny"
    runs_file = os.path.join(tmp, "runs.json")
    bad_dir = os.path.join(tmp, "bad")
    baseline = os.path.join(tmp, "baseline.json")

    def prepare_gate(outputs):
        os.makedirs(bad_dir, exist_ok=True)
        with open(os.path.join(bad_dir, "config.json"), "w") as f:
            f.write('{"model_type": "qwen3_moe", "hidden_size": 8')  # invalid JSON: an error case
        with open(baseline, "w") as f:
            json.dump([{"config": "qwen3-235b-a22b", "tp": 8, "ep": 1, "pp": 1, "plan": "hf-auto",
                        "finding": "kv-heads-split", "reason": "known"},
                       {"config": "qwen3-235b-a22b", "tp": 4, "ep": 1, "pp": 1, "plan": "hf-auto",
                        "finding": "kv-heads-split"}], f)  # the second is stale

    def prepare_report_runs(outputs):
        runs = [outputs[k] for k in ("run-error", "run-fault") if k in outputs]
        if len(runs) != 2:
            raise RuntimeError("needs the outputs of run-error and run-fault")
        with open(runs_file, "w") as f:
            json.dump(runs, f)

    statuses = {"pass", "fail", "known-failure", "skipped", "error"}
    v = [
        ("check", ["check", q235, "--tp", "8", "--json"], {1},
         [("check", "check", "stdout")],
         [drop(["findings", 0, "error_text"]), put(["findings", 0, "severity"], "fatal")],
         lambda d: d["findings"] and not d["ok"], None, None),
        ("check-explain", ["check", q235, "--tp", "8", "--json", "--explain"], {1},
         [("check-explain", "check", "stdout")],
         [put(["explain"], ["a", "list"]), put(["plan", "tp"], 0)],
         lambda d: "explain" in d, None, None),
        ("matrix", ["matrix", q235, "--tp", "1,2,4,8", "--json"], {1},
         [("matrix", "matrix", "stdout")],
         [put(["rows", 0, "plan", "tp"], "8"), drop(["rows", 3, "first_error_id"])],
         lambda d: len(d["rows"]) == 4, None, None),
        ("gate", ["gate", q235, q30, "--json"], {1},
         [("gate", "gate", "stdout")],
         [put(["cases", 0, "status"], "passed"), put(["exit_code"], 2)],
         lambda d: d["failures"] > 0, None, None),
        ("gate-all-statuses",
         ["gate", q235, q30, tiny + "/generation_config.json", os.path.join(bad_dir, "config.json"),
          "--tp", "4,8", "--ep", "1,3", "--baseline", baseline, "--json"], {3},
         [("gate-all-statuses", "gate", "stdout")],
         [put(["not_model_configs", 0, "path"], None), drop(["stale_baseline", 0, "finding"])],
         lambda d: {c["status"] for c in d["cases"]} == statuses and d["stale_baseline"] and d["not_model_configs"],
         None, prepare_gate),
        ("report", ["report", q235, "--gpus", "2,8", "--json"], {0},
         [("report", "report", "stdout")],
         [put(["strategies", 0, "outcome", "source"], "guessed"),
          drop(["strategies", 0, "first_failing_invariant"]),
          put(["strategies", 0, "memory", "per_rank", 0, "weight_bytes"], 1.5)],
         lambda d: d["strategies"] and d["summaries"], None, None),
        ("report-run",
         ["report", tiny + "/config.json", "--gpus", "1,2", "--checkpoint", tiny, "--run", "--run-batch", "2",
          "--run-seq", "8", "--timing", "1", "--json", "--out-json", os.path.join(tmp, "report.json")], {0},
         [("report-run", "report", "stdout"), ("report-run --out-json", "report", os.path.join(tmp, "report.json"))],
         [drop(["strategies", 0, "run", "localisation", "ranks"]), put(["checkpoint", "consistent"], "yes"),
          drop(["strategies", 0, "correctness", "observed_errors"])],
         lambda d: d["checkpoint"] and d["runs_launched"] and d["strategies"][0]["run"]
         and d["strategies"][0]["throughput"], None, None),
        ("run-error", ["run", "--config", det, "--tp", "4", "--batch", "2", "--seq", "8", "--json"], {1},
         [("run-error", "run", "stdout")],
         [drop(["run", "errors", 0, "what"]), put(["run", "verdict"], "failed")],
         lambda d: d["run"]["verdict"] == "error" and d["run"]["errors"], None, None),
        ("run-fault",
         ["run", "--config", det, "--tp", "2", "--batch", "2", "--seq", "8", "--json",
          "--inject-fault", "q-shard-offset,rank=1,layer=0"], {1},
         [("run-fault", "run", "stdout")],
         [put(["run", "localisation", "ranks"], "1"), drop(["run", "localisation", "module"]),
          put(["run", "ok"], True)],
         lambda d: d["run"]["verdict"] == "mismatch" and d["run"]["localisation"]["module"] == "self_attn.q_proj"
         and d["run"]["localisation"]["ranks"] == [1] and "injected_fault" in d, None, None),
        ("report-runs", ["report", det, "--gpus", "1,4", "--runs", runs_file, "--json"], {0},
         [("report-runs", "report", "stdout")],
         [put(["unmatched_runs", 0, "plan"], None), put(["strategies", 2, "correctness", "source"], "predicted")],
         lambda d: d["unmatched_runs"] and d["strategies"][2]["correctness"]["observed_errors"], None,
         prepare_report_runs),
        ("run", ["run", "--config", det, "--tp", "2", "--batch", "2", "--seq", "8", "--json"], {0},
         [("run", "run", "stdout")],
         [put(["run", "comparisons", 0, "tokens"], -1), put(["predicted", "findings"], {})],
         lambda d: d["run"]["verdict"] == "match", None, None),
        ("run-model", ["run", "--model", tiny, "--tp", "2", "--json"], {0},
         [("run-model", "run", "stdout")],
         [put(["run", "plan", "plan"], "auto"), drop(["run", "bytes_read"])],
         lambda d: d["run"]["ok"], None, None),
        ("repro", ["repro", "--hidden", "64"] + ([] if with_repro else ["--batch", "2", "--seq", "8"]) + ["--json"], {0},
         [("repro", "repro", "stdout")],
         [drop(["hf_auto_tp8", "localisation"]), put(["reproduced"], "true")],
         lambda d: d["reproduced"] and d["fixes_match"],
         None, None),
        ("fuzz", ["fuzz", "--cases", "5", "--json", "--out", os.path.join(tmp, "fuzz")], {0},
         [("fuzz", "fuzz", "stdout")],
         [put(["properties", 0, "passed"], "yes"), drop(["totals", "static"])],
         lambda d: d["ok"], None, None),
        ("fuzz-failing",
         ["fuzz", "--property", "sharded-equals-reference", "--cases", "10", "--inject-fault", "final-norm-sliced",
          "--json", "--out", os.path.join(tmp, "fuzz-failing")], {1},
         [("fuzz-failing", "fuzz", "stdout")],
         [drop(["properties", 0, "replay"]), put(["properties", 0, "failure"], "")],
         lambda d: not d["ok"] and not d["properties"][0]["passed"] and d["properties"][0]["minimal"], None, None),
        ("steer",
         ["steer", "--model", tiny, "--allow-vocab-mismatch", "--dataset", "fixtures/datasets/metric_units_caa.json",
          "--multipliers", "-1,1", "--compare-sweeps", "--tokenizer", tok_dir or "", "--json",
          "--out", os.path.join(tmp, "steer")], {0},
         [("steer", "steer", "stdout"), ("steer eval.json", "steer-eval", os.path.join(tmp, "steer", "eval.json"))],
         [drop(["sweep"]), put(["dataset_sha256"], "abc"), put(["evaluation", "layers", 0, "p_match"], [1.5])],
         lambda d: d["evaluation"]["layers"] and "measured" in d["sweep"],
         None if tok_dir else "the Qwen3 tokenizer is not fetched (bash tools/fetch_tokenizer.sh)", None),
        ("bench",
         ["bench", "--config", tiny + "/config.json", "--batch", "2", "--seq", "8", "--repeats", "2", "--warmup", "0",
          "--breakdown", "--json"], {0},
         [("bench", "bench", "stdout")],
         [put(["results", 0], {"kernels": "eager"}), put(["results", 0, "breakdown", "router_ms"], "fast")],
         lambda d: "layer_ms" in d["results"][0], None, None),
        ("bench-capture",
         ["bench", "--config", tiny + "/config.json", "--batch", "2", "--seq", "8", "--repeats", "2", "--warmup", "0",
          "--capture", "--json"], {0},
         [("bench-capture", "bench", "stdout")],
         [drop(["results", 0, "forward_capture_ms"]), put(["batch"], 0)],
         lambda d: "forward_capture_ms" in d["results"][0], None, None),
    ]
    return v


# eval.json's own targeted mutations (it has no stdout case of its own).
EVAL_MUTATIONS = [put(["layers", 0, "multipliers"], "-1,1"), drop(["layers", 0, "slope"]), put(["sweep"], "fast")]


def walk_schema(node, path=""):
    """Places where a schema closes an object (it must not: keys are only added within a major)."""
    bad = []
    if isinstance(node, dict):
        for k in ("additionalProperties", "unevaluatedProperties"):
            if node.get(k) is False:
                bad.append(path + "/" + k)
        for k, v in node.items():
            bad += walk_schema(v, path + "/" + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            bad += walk_schema(v, "%s/%d" % (path, i))
    return bad


def load_schemas(root, res):
    d = os.path.join(root, "docs", "schemas")
    validators = {}
    present = sorted(f for f in os.listdir(d) if f.endswith(".json")) if os.path.isdir(d) else []
    expected = sorted(s + ".schema.json" for s in SCHEMAS)
    res.check(present == expected, "schemas", "docs/schemas/ holds one schema per output",
              "found %s, expected %s" % (present, expected))
    for s in SCHEMAS:
        path = os.path.join(d, s + ".schema.json")
        name = "schema " + s
        try:
            with open(path) as f:
                schema = json.load(f)
            Draft202012Validator.check_schema(schema)
        except (OSError, ValueError, jsonschema.exceptions.SchemaError) as e:
            res.fail(name, "%s is not a valid schema: %s" % (os.path.relpath(path, root), str(e).splitlines()[0]))
            continue
        problems = []
        if schema.get("$schema") != DRAFT:
            problems.append("$schema is not %s" % DRAFT)
        if schema.get("properties", {}).get("schema") != {"const": "shardcheck.%s/1" % s}:
            problems.append('properties.schema is not {"const": "shardcheck.%s/1"}' % s)
        if "schema" not in schema.get("required", []):
            problems.append("schema is not required")
        closed = walk_schema(schema)
        if closed:
            problems.append("closes objects at " + ", ".join(closed))
        if res.check(not problems, name, "well-formed draft 2020-12, id const, objects open", "; ".join(problems)):
            validators[s] = (schema, Draft202012Validator(schema))
    return validators


def expect_invalid(res, label, validator, doc, mutate):
    bad = copy.deepcopy(doc)
    try:
        what, where = mutate(bad)
    except (KeyError, IndexError, TypeError) as e:
        res.fail(label, "mutation not applicable to this output (%s: %s)" % (type(e).__name__, e))
        return
    errors = list(validator.iter_errors(bad))
    if not errors:
        res.fail(label, "rejects: %s (it validated)" % what)
        return
    paths = error_paths(errors)
    if any(p[:len(where)] == where for p in paths):
        res.ok(label, "rejects: %s" % what)
    else:
        res.fail(label, "rejects %s only elsewhere: %s" % (what, [fmt(p) for p in paths]))


def run_case(res, binary, root, case, outputs, validators, exercised):
    name, argv, codes, docs, mutations, coverage, skip, prepare = case
    if skip:
        res.skip(name, skip)
        return
    try:
        if prepare:
            prepare(outputs)
    except Exception as e:  # noqa: BLE001
        res.fail(name, "cannot prepare: %s" % e)
        return
    t0 = time.monotonic()
    try:
        p = subprocess.run([binary] + argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=CMD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        res.fail(name, "timed out after %d s: %s" % (CMD_TIMEOUT_S, " ".join(argv)))
        return
    except OSError as e:
        res.fail(name, "cannot run %s: %s" % (binary, e))
        return
    secs = time.monotonic() - t0
    err_tail = p.stderr.decode(errors="replace").strip().splitlines()[-3:]
    if not res.check(p.returncode in codes, name, "exit %d in %.1f s: shardcheck %s" % (p.returncode, secs, " ".join(argv)),
                     "expected exit %s; stderr: %s" % (sorted(codes), " | ".join(err_tail))):
        return
    for i, (label, schema, source) in enumerate(docs):
        try:
            if source == "stdout":
                doc = json.loads(p.stdout.decode())
            else:
                with open(source) as f:
                    doc = json.load(f)
        except (OSError, ValueError) as e:
            res.fail(label, "no JSON document (%s)" % e)
            continue
        if i == 0:
            outputs[name] = doc
            try:
                covered = bool(coverage(doc))
            except (KeyError, IndexError, TypeError) as e:
                covered, why = False, "%s: %s" % (type(e).__name__, e)
            else:
                why = "the output lacks what this case is meant to exercise"
            res.check(covered, label, "output exercises what the case is for", why)
        if schema not in validators:
            res.fail(label, "no usable schema %s.schema.json" % schema)
            continue
        schema_json, validator = validators[schema]
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        if not res.check(not errors, label, "valid against %s.schema.json" % schema,
                         "; ".join("%s: %s" % (fmt(list(e.absolute_path)) or "(top)", e.message[:200])
                                   for e in errors[:5])):
            continue
        exercised.add(schema)
        extended = copy.deepcopy(doc)
        n = add_unknown_keys(extended)
        errors = list(validator.iter_errors(extended))
        res.check(not errors, label, "accepts an unknown key in each of its %d objects" % n,
                  "; ".join(e.message[:200] for e in errors[:3]))
        expect_invalid(res, label, validator, doc, lambda d, s=schema: set_id(d, s))
        expect_invalid(res, label, validator, doc, lambda d, sj=schema_json: drop_required(d, sj))
        for m in (mutations if i == 0 else EVAL_MUTATIONS if schema == "steer-eval" else []):
            expect_invalid(res, label, validator, doc, m)


def tokenizer_dir(root):
    d = os.environ.get("SC_QWEN3_TOKENIZER_DIR") or os.path.join(root, ".deps", "qwen3-tokenizer")
    return d if os.path.isfile(os.path.join(d, "tokenizer.json")) else None


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = [a for a in argv[1:] if a.startswith("--")]
    if len(args) != 2 or any(f != "--with-repro" for f in flags):
        print("usage: %s BINARY REPO_ROOT [--with-repro]" % argv[0], file=sys.stderr)
        return 2
    binary, root = os.path.abspath(args[0]), os.path.abspath(args[1])
    if not os.access(binary, os.X_OK):
        print("test_json_schemas: %s is not an executable" % binary, file=sys.stderr)
        return 2
    res = Results()
    t0 = time.monotonic()
    validators = load_schemas(root, res)
    tok = tokenizer_dir(root)
    outputs, exercised = {}, set()
    with tempfile.TemporaryDirectory(prefix="sc-json-schemas-") as tmp:
        for case in cases(tmp, tok, "--with-repro" in flags):
            run_case(res, binary, root, case, outputs, validators, exercised)
    for s in SCHEMAS:
        if s not in exercised:
            res.skip("schema " + s, "no output was validated against it in this run")
    print("json schemas: %.1f s (jsonschema %s, python %s)" % (time.monotonic() - t0, jsonschema_version(),
                                                               sys.version.split()[0]))
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed or not res.passed else 0


def jsonschema_version():
    try:
        from importlib.metadata import version
        return version("jsonschema")
    except Exception:  # noqa: BLE001
        return "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
