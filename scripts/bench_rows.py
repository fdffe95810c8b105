#!/usr/bin/env python3
"""Rows for `augur bench import`: run one measuring command, parse what it
printed, and append one JSON line per measurement (with the exact command
line) to a rows file. The benchmark scripts call this for every peer and
`augur run` measurement, then import the file as one run.

    bench_rows.py run --out ROWS --suite S --prompt P --config C \\
        [--model M] [--as PATH=NAME ...] --parse augur-json|llama-bench|llama-bench-prompt|speed -- CMD ARG...
    bench_rows.py calibration --out ROWS --dir $AUGUR_HOME/calibration --model-id FILE.gguf \\
        --threads N --config C
    bench_rows.py moe-step --out ROWS < output of the MoE decode-speed test
    bench_rows.py sha256 < text

A command that fails, or whose output does not parse, becomes a row with
an `error` (the run records it; nothing is invented). `--as PATH=NAME`
writes NAME for PATH in the stored command (temporary prompt files).
"""

import argparse
import hashlib
import json
import re
import shlex
import subprocess
import sys


def append(path, row):
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


def sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_augur_json(out, _err):
    j = json.loads(out)
    metrics = {k: float(j[k]) for k in ("prompt_tps", "decode_tps", "prompt_tokens", "completion_tokens")}
    if j.get("time_to_first_token") is not None:
        metrics["ttft_s"] = float(j["time_to_first_token"])
    spec = j.get("spec") or {}
    for k in ("drafted", "accepted"):
        if spec.get(k) is not None:
            metrics[k] = float(spec[k])
    return [(metrics, sha256(j["text"]))]


def parse_llama_bench(out, _err):
    """One row per repetition: llama-bench's JSON has a prompt test and a
    generation test, each with per-repetition samples."""
    records = json.loads(out)
    pp = next(r for r in records if r["n_prompt"] > 0 and r["n_gen"] == 0)
    tg = next(r for r in records if r["n_gen"] > 0 and r["n_prompt"] == 0)
    pairs = zip(pp["samples_ts"], tg["samples_ts"])
    return [({"prompt_tps": float(p), "decode_tps": float(g)}, None) for p, g in pairs]


def parse_llama_bench_prompt(out, _err):
    """llama-bench -n 0: a prompt test only, a row per repetition, with the
    time it took (its time to first token)."""
    records = json.loads(out)
    pp = next(r for r in records if r["n_prompt"] > 0 and r["n_gen"] == 0)
    return [({"prompt_tps": float(t), "ttft_s": pp["n_prompt"] / float(t)}, None) for t in pp["samples_ts"]]


SPEED = re.compile(r"speed:\s*([0-9.]+)\s*t/s")


def parse_speed(out, err):
    """llama-lookup and llama-speculative-simple print `speed: N t/s`."""
    found = SPEED.findall(out + err)
    if not found:
        raise ValueError("no 'speed: N t/s' line in the output")
    return [({"decode_tps": float(found[-1])}, None)]


PARSERS = {
    "augur-json": parse_augur_json,
    "llama-bench": parse_llama_bench,
    "llama-bench-prompt": parse_llama_bench_prompt,
    "speed": parse_speed,
}


def run(a):
    shown = shlex.join(a.cmd)
    for sub in a.subst:
        path, _, name = sub.partition("=")
        shown = shown.replace(path, name)
    base = {"suite": a.suite, "prompt": a.prompt, "config": a.config, "command": shown}
    if a.model:
        base["model"] = a.model
    p = subprocess.run(a.cmd, capture_output=True, text=True, timeout=a.timeout, check=False)
    try:
        if p.returncode != 0:
            raise RuntimeError(f"exit {p.returncode}: {p.stderr.strip()[-300:]}")
        rows = PARSERS[a.parse](p.stdout, p.stderr)
    except (RuntimeError, ValueError, KeyError, StopIteration) as e:
        append(a.out, {**base, "error": str(e) or type(e).__name__})
        print(f"bench_rows: {a.config} / {a.prompt}: {e}", file=sys.stderr)
        return
    for metrics, digest in rows:
        row = {**base, "metrics": metrics}
        if digest:
            row["output_sha256"] = digest
        append(a.out, row)


def calibration(a):
    """The verify-cost curve augur measured and cached for a model: c(k)
    in seconds per batch of k tokens, and the batch-invariant chunk."""
    import glob
    import os

    for path in sorted(glob.glob(os.path.join(a.dir, "*.json"))):
        with open(path, encoding="utf-8") as f:
            curve = json.loads(json.load(f)["payload"])
        mid = curve["model_id"]
        if a.model_id not in mid or not mid.endswith("-" + a.layout) or curve["threads"] != a.threads:
            continue
        base = {"suite": a.suite, "config": a.config, "model": a.model_id, "command": f"cat {path}"}
        for k, c in enumerate(curve["costs"][: a.max_k], start=1):
            append(a.out, {**base, "prompt": f"k={k}", "metrics": {"verify_s": c}})
        append(a.out, {**base, "prompt": "invariant_batch",
                       "metrics": {"invariant_batch": curve.get("invariant_batch", 1)}})
        return
    print(f"bench_rows: no calibration for {a.model_id!r} in {a.dir}", file=sys.stderr)


STEP = re.compile(r"decode tokens/s per expert count: (\[.*\])")


def moe_step(a):
    text = sys.stdin.read()
    m = STEP.search(text)
    if not m:
        sys.exit("bench_rows: no 'decode tokens/s per expert count' line on stdin")
    pairs = re.findall(r"\((\d+),\s*([0-9.eE+-]+)\)", m.group(1))
    for n, tps in pairs:
        append(a.out, {"suite": "decode_step", "prompt": a.prompt, "config": f"experts={n}",
                       "command": a.command, "metrics": {"decode_tps": float(tps)}})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--suite", required=True)
    r.add_argument("--prompt", required=True)
    r.add_argument("--config", required=True)
    r.add_argument("--model")
    r.add_argument("--as", dest="subst", action="append", default=[], metavar="PATH=NAME")
    r.add_argument("--parse", required=True, choices=sorted(PARSERS))
    r.add_argument("--timeout", type=float, default=3600)
    r.add_argument("cmd", nargs=argparse.REMAINDER)
    c = sub.add_parser("calibration")
    c.add_argument("--out", required=True)
    c.add_argument("--dir", required=True)
    c.add_argument("--model-id", required=True)
    c.add_argument("--config", required=True)
    c.add_argument("--suite", default="calibration")
    c.add_argument("--max-k", type=int, default=8)
    c.add_argument("--threads", type=int, required=True)
    c.add_argument("--layout", default="repacked", choices=["repacked", "plain"])
    m = sub.add_parser("moe-step")
    m.add_argument("--out", required=True)
    m.add_argument("--prompt", default="tiny-qwen3moe")
    m.add_argument("--command", required=True)
    sub.add_parser("sha256")
    a = ap.parse_args()
    if a.what == "run":
        if a.cmd and a.cmd[0] == "--":
            a.cmd = a.cmd[1:]
        if not a.cmd:
            ap.error("run needs -- CMD ARG...")
        run(a)
    elif a.what == "calibration":
        calibration(a)
    elif a.what == "moe-step":
        moe_step(a)
    else:
        print(sha256(sys.stdin.read()))


if __name__ == "__main__":
    main()
