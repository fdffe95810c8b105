#!/usr/bin/env python3
"""Agentic workload over an OpenAI-compatible endpoint: a sequence of
function-calling requests that share one format (the same tool list in the
system prompt, one JSON call as the whole answer), sent one after another,
so a server that learns from earlier answers (augur's global suffix tree)
can draft later ones. Greedy, no `tools` field: the format lives in the
prompt, so every server sees the same text.

Prints one JSON line per phase (all, first 10, last 10); with --rows, also
appends a row per request (suite `agentic`, with the answer's hash for the
greedy-identity check) and a row per phase (suite `agentic_phases`) for
`augur bench import` (scripts/bench-agentic.sh).

    scripts/bench_agentic.py --url http://127.0.0.1:8080 --name augur-suffix
"""

import argparse
import hashlib
import json
import sys
import time
import urllib.error

import jsonschema

sys.dont_write_bytecode = True  # no scripts/__pycache__ next to the committed scripts
import bench_rows  # noqa: E402
from bench_tools import DESCRIPTIONS, TOOLS, endpoint_args, post, shown_command  # noqa: E402

SYSTEM = (
    "You are the tool-calling core of a coding agent. Tools:\n"
    + "\n".join(json.dumps({"name": n, "description": DESCRIPTIONS[n], "parameters": TOOLS[n]}) for n in TOOLS)
    + '\n\nAnswer every request with exactly one JSON object and nothing else: '
    '{"name": <tool name>, "arguments": <object valid against that tool\'s parameters>}.'
)

FILES = ["src/server/router.rs", "crates/engine/src/context.rs", "README.md", "Cargo.toml", "src/lexer.rs",
         "tests/smoke.rs", "docs/ARCHITECTURE.md", "src/main.rs", "crates/spec/src/lookup.rs"]
CITIES = ["Lisbon", "Oslo", "Nairobi", "Buenos Aires", "Kyoto", "Reykjavik", "Lima", "Cairo"]
QUERIES = ["parse_config", "unwrap()", "TODO", "fn main", "unsafe", "panic!", "Mutex", "serde_json"]
FILTERS = ["tokenizer", "server_openai", "spec", "prefix_reuse", "grammar", "kv_consistency"]
ISSUES = [("Crash on empty prompt", ["bug", "server"]), ("Docs link is broken", ["docs"]),
          ("Add ARM support", ["enhancement", "build"]), ("Slow prefill on long prompts", ["performance"])]
URLS = ["https://example.com/api/status", "https://example.org/data.json", "https://example.net/health"]


def requests():
    """36 user messages over the eight tools, in a fixed interleaved order."""
    out = []
    for i in range(6):
        f, g = FILES[i % len(FILES)], FILES[(i + 4) % len(FILES)]
        out += [
            f"Show me lines {10 * (i + 1)} to {10 * (i + 1) + 30} of {f}.",
            f"What is the weather in {CITIES[i]}? Use {'celsius' if i % 2 == 0 else 'fahrenheit'}.",
            f"Search the code for '{QUERIES[i]}', at most {5 * (i + 1)} results.",
            f"Run the tests whose names contain '{FILTERS[i]}'{', in release mode' if i % 2 else ''}.",
            f"Open an issue titled '{ISSUES[i % len(ISSUES)][0]}' with labels "
            + " and ".join(ISSUES[i % len(ISSUES)][1]) + ".",
            f"Commit {f} and {g} with the message 'Update {f.rsplit('/', 1)[-1]}'."
            if i % 2 == 0 else f"Fetch {URLS[i % len(URLS)]} with a {i + 2} second timeout.",
        ]
    return out


def unfence(text):
    """The text inside one surrounding Markdown code fence, if any (small
    models fence JSON answers; clients commonly strip the fence)."""
    t = text.strip()
    if t.startswith("```") and t.endswith("```") and len(t) >= 6:
        t = t[3:-3]
        t = t[t.index("\n") + 1:] if "\n" in t else t
    return t.strip()


def check(text):
    """The answer is one JSON call of a listed tool, valid against its
    schema (inside a code fence or bare)."""
    try:
        call = json.loads(unfence(text))
        jsonschema.validate(call["arguments"], TOOLS[call["name"]])
        return True
    except (ValueError, KeyError, TypeError, jsonschema.ValidationError):
        return False


def measure(resp):
    """Completion tokens, decode seconds and draft counts per source, from
    augur's usage extension or llama-server's timings."""
    usage = resp.get("usage", {})
    n = usage.get("completion_tokens", 0)
    drafts = {}
    if "augur" in usage:
        spec = usage["augur"].get("spec") or {}
        for src in ("lookup", "suffix", "draft", "grammar"):
            s = spec.get(src) or {}
            if s.get("drafted"):
                drafts[src] = (s["drafted"], s.get("accepted", 0))
        return n, usage["augur"]["decode_seconds"], drafts
    t = resp.get("timings", {})
    if "draft_n" in t:
        drafts["ngram"] = (t.get("draft_n", 0), t.get("draft_n_accepted", 0))
    return n, t.get("predicted_ms", 0.0) / 1e3, drafts


def phase(name, results):
    tokens = sum(r["tokens"] for r in results)
    secs = sum(r["decode_s"] for r in results)
    out = {"phase": name, "requests": len(results), "valid": sum(r["valid"] for r in results),
           "completion_tokens": tokens, "decode_s": secs, "decode_tps": tokens / secs if secs else 0.0}
    drafted = accepted = 0
    for src in sorted({s for r in results for s in r["drafts"]}):
        d = sum(r["drafts"].get(src, (0, 0))[0] for r in results)
        a = sum(r["drafts"].get(src, (0, 0))[1] for r in results)
        out[f"{src}_drafted"], out[f"{src}_accepted"] = d, a
        drafted, accepted = drafted + d, accepted + a
    out["drafted"], out["accepted"] = drafted, accepted
    return out


def main():
    ap = argparse.ArgumentParser()
    endpoint_args(ap)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--limit", type=int, default=len(requests()))
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--rows", help="append import rows to this file")
    a = ap.parse_args()
    results = []
    for i, user in enumerate(requests()[: a.limit]):
        body = {"model": a.model, "temperature": 0, "max_tokens": a.max_tokens,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]}
        if a.augur:
            body["augur"] = json.loads(a.augur)
        row = {"suite": "agentic", "prompt": f"call-{i + 1:02}", "config": a.name, "model": a.model,
               "command": shown_command()}
        try:
            resp = post(a.url, body, a.timeout)
        except (urllib.error.URLError, OSError, ValueError) as e:
            # Counted, not fatal: the other requests still measure.
            row["error"] = str(e)
            if a.rows:
                bench_rows.append(a.rows, row)
            continue
        text = resp["choices"][0]["message"].get("content") or ""
        n, secs, drafts = measure(resp)
        r = {"tokens": n, "decode_s": secs, "valid": check(text), "drafts": drafts}
        results.append(r)
        if a.rows:
            metrics = {"completion_tokens": n, "decode_s": secs, "decode_tps": n / secs if secs else 0.0,
                       "valid": float(r["valid"]), "drafted": float(sum(d for d, _ in drafts.values())),
                       "accepted": float(sum(x for _, x in drafts.values()))}
            row.update(metrics=metrics, output_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
            bench_rows.append(a.rows, row)
    for name, part in (("all", results), ("first 10", results[:10]), ("last 10", results[-10:])):
        p = phase(name, part)
        print(json.dumps({"name": a.name, **p}), flush=True)
        if a.rows:
            metrics = {k: float(v) for k, v in p.items() if k != "phase"}
            bench_rows.append(a.rows, {"suite": "agentic_phases", "prompt": name, "config": a.name,
                                       "model": a.model, "command": shown_command(), "metrics": metrics})


if __name__ == "__main__":
    main()
