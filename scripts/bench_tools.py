#!/usr/bin/env python3
"""Tool-calling workload over an OpenAI-compatible endpoint.

Every request carries its own tools (tool_choice "required"); each answer's
calls are checked against the called tool's parameter schema with the
`jsonschema` package. Prints one JSON line per configuration: valid rate,
decode tokens/s (server-reported decode time), wall time; with --rows, also
appends it as a row for `augur bench import` (scripts/bench-tools.sh).

    scripts/bench_tools.py --url http://127.0.0.1:8080 --name augur-constrained \
        --augur '{"spec": {"mode": "auto"}}'
"""

import argparse
import json
import shlex
import sys
import time
import urllib.error
import urllib.request

import jsonschema

sys.dont_write_bytecode = True  # no scripts/__pycache__ next to the committed scripts
import bench_rows  # noqa: E402

PATH = {"type": "string", "description": "A path relative to the repository root"}
TOOLS = {
    "read_file": {"type": "object", "properties": {"path": PATH, "start_line": {"type": "integer", "minimum": 1},
                                                   "end_line": {"type": "integer", "minimum": 1}},
                  "required": ["path"]},
    "write_file": {"type": "object", "properties": {"path": PATH, "content": {"type": "string"}},
                   "required": ["path", "content"]},
    "run_tests": {"type": "object", "properties": {"filter": {"type": "string"}, "release": {"type": "boolean"}},
                  "required": ["filter"]},
    "search_code": {"type": "object", "properties": {"query": {"type": "string"},
                                                     "max_results": {"type": "integer", "minimum": 1, "maximum": 50}},
                    "required": ["query"]},
    "get_weather": {"type": "object", "properties": {"city": {"type": "string"},
                                                     "unit": {"enum": ["celsius", "fahrenheit"]}},
                    "required": ["city", "unit"]},
    "create_issue": {"type": "object", "properties": {"title": {"type": "string"}, "body": {"type": "string"},
                                                      "labels": {"type": "array", "items": {"type": "string"},
                                                                 "maxItems": 3}},
                     "required": ["title", "labels"]},
    "git_commit": {"type": "object", "properties": {"message": {"type": "string"},
                                                    "files": {"type": "array", "items": PATH, "minItems": 1}},
                   "required": ["message", "files"]},
    "http_get": {"type": "object", "properties": {"url": {"type": "string"}, "timeout_s": {"type": "number"}},
                 "required": ["url"]},
}
DESCRIPTIONS = {
    "read_file": "Read a file of the repository, optionally a line range",
    "write_file": "Replace the content of a file",
    "run_tests": "Run the test suite, filtered by test name",
    "search_code": "Search the repository for a string",
    "get_weather": "Current weather in a city",
    "create_issue": "Open an issue in the tracker",
    "git_commit": "Commit the given files",
    "http_get": "Fetch a URL",
}
# (user message, tools offered)
PROMPTS = [
    ("Show me lines 10 to 40 of src/server/router.rs.", ["read_file", "search_code", "run_tests"]),
    ("Where is the function parse_config defined?", ["search_code", "read_file"]),
    ("Run the tests whose names contain 'tokenizer', in release mode.", ["run_tests", "read_file"]),
    ("What's the weather like in Lisbon right now? Use celsius.", ["get_weather", "http_get"]),
    ("Open an issue titled 'Crash on empty prompt' labelled bug and server.", ["create_issue", "search_code"]),
    ("Commit src/lib.rs and src/main.rs with the message 'Fix off-by-one in the lexer'.", ["git_commit", "run_tests"]),
    ("Fetch https://example.com/api/status with a 5 second timeout.", ["http_get", "get_weather"]),
    ("Read the README.md file.", ["read_file", "write_file"]),
    ("Create a file docs/NOTES.md containing '# Notes'.", ["write_file", "read_file"]),
    ("Find every use of unwrap() in the code, at most 20 results.", ["search_code", "run_tests"]),
    ("Is it cold in Oslo? Answer in fahrenheit.", ["get_weather"]),
    ("Run the integration tests named 'server_openai'.", ["run_tests", "git_commit"]),
    ("Look at the first 25 lines of Cargo.toml.", ["read_file", "search_code"]),
    ("File an issue: 'Docs link is broken', labels docs.", ["create_issue"]),
    ("Search for TODO comments, 10 results max.", ["search_code", "read_file", "create_issue"]),
    ("Download https://example.org/data.json.", ["http_get", "write_file"]),
    ("Commit tests/smoke.rs with message 'Add smoke test'.", ["git_commit"]),
    ("What is the weather in Nairobi in celsius?", ["get_weather", "search_code"]),
    ("Show me src/engine/context.rs from line 100.", ["read_file"]),
    ("Run all tests with the filter 'spec'.", ["run_tests", "search_code"]),
    ("Search the code for 'fn main'.", ["search_code"]),
    ("Open an issue titled 'Add ARM support' with labels enhancement and build.", ["create_issue", "git_commit"]),
    ("Write 'hello' into the file tmp/out.txt.", ["write_file"]),
    ("Get the weather for Buenos Aires in fahrenheit.", ["get_weather", "http_get", "read_file"]),
]


def tool_list(names):
    return [{"type": "function", "function": {"name": n, "description": DESCRIPTIONS[n], "parameters": TOOLS[n]}}
            for n in names]


def check(calls, offered):
    if not calls:
        return False
    for c in calls:
        f = c.get("function", {})
        if f.get("name") not in offered:
            return False
        try:
            args = json.loads(f.get("arguments", ""))
            jsonschema.validate(args, TOOLS[f["name"]])
        except (ValueError, jsonschema.ValidationError):
            return False
    return True


def post(url, body, timeout):
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def decode_stats(resp):
    """(completion tokens, decode seconds) from augur's or llama-server's report."""
    usage = resp.get("usage", {})
    n = usage.get("completion_tokens", 0)
    if "augur" in usage:
        return n, usage["augur"]["decode_seconds"], usage["augur"].get("spec", {})
    t = resp.get("timings", {})
    return n, t.get("predicted_ms", 0.0) / 1e3, {}


def shown_command():
    """This command line as stored with the run; the rows file is a temporary path."""
    argv = ["python3", *sys.argv]
    if "--rows" in argv:
        argv[argv.index("--rows") + 1] = "ROWS"
    return shlex.join(argv)


def endpoint_args(ap):
    """The arguments every workload client takes: where, as what, and the
    request's augur extension."""
    ap.add_argument("--url", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--augur", default=None, help="JSON for the request's augur extension")


def main():
    ap = argparse.ArgumentParser()
    endpoint_args(ap)
    ap.add_argument("--tool-choice", default="required")
    ap.add_argument("--max-tokens", type=int, default=120)
    ap.add_argument("--limit", type=int, default=len(PROMPTS))
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--rows", help="append the result as an import row to this file")
    a = ap.parse_args()
    valid = tokens = errors = 0
    decode_s = grammar_ms = 0.0
    forced = forced_ok = 0
    # Drafted and accepted tokens of the other sources (lookup, suffix, draft).
    sources = {}
    started = time.time()
    rows = []
    for user, offered in PROMPTS[: a.limit]:
        body = {"model": a.model, "messages": [{"role": "user", "content": user}], "tools": tool_list(offered),
                "tool_choice": a.tool_choice, "temperature": 0, "max_tokens": a.max_tokens}
        if a.augur:
            body["augur"] = json.loads(a.augur)
        try:
            resp = post(a.url, body, a.timeout)
        except (urllib.error.URLError, OSError, ValueError) as e:
            # A failed request is counted, not fatal: the others still measure.
            errors += 1
            rows.append({"prompt": user, "valid": False, "error": str(e)})
            continue
        msg = resp["choices"][0]["message"]
        ok = check(msg.get("tool_calls") or [], offered)
        n, d, spec = decode_stats(resp)
        valid += ok
        tokens += n
        decode_s += d
        g = spec.get("grammar") or {}
        forced += g.get("drafted", 0)
        forced_ok += g.get("accepted", 0)
        for src in ("lookup", "suffix", "draft"):
            got = spec.get(src) or {}
            seen = sources.setdefault(src, [0, 0])
            seen[0] += got.get("drafted", 0)
            seen[1] += got.get("accepted", 0)
        grammar_ms += (spec.get("constraint") or {}).get("time_ms", 0.0)
        rows.append({"prompt": user, "valid": ok, "tokens": n, "decode_s": round(d, 3)})
    out = {
        "name": a.name, "requests": len(rows), "valid_rate": valid / max(len(rows), 1),
        "completion_tokens": tokens, "decode_tps": tokens / decode_s if decode_s else 0.0,
        "wall_s": round(time.time() - started, 1), "forced_drafted": forced, "forced_accepted": forced_ok,
        "grammar_share_of_decode": grammar_ms / 1e3 / decode_s if decode_s else 0.0, "errors": errors,
    }
    print(json.dumps(out), flush=True)
    if a.rows:
        metrics = {"requests": len(rows), "valid": valid, "errors": errors, "completion_tokens": tokens,
                   "decode_tps": out["decode_tps"], "decode_s": decode_s, "wall_s": out["wall_s"], "forced_drafted": forced,
                   "forced_accepted": forced_ok, "grammar_share": out["grammar_share_of_decode"]}
        for src, (drafted, accepted) in sources.items():
            metrics[src + "_drafted"] = drafted
            metrics[src + "_accepted"] = accepted
        bench_rows.append(a.rows, {"suite": "tools", "prompt": "tool_choice=" + a.tool_choice, "config": a.name,
                                   "model": a.model, "command": shown_command(),
                                   "metrics": metrics})
    json.dump(rows, sys.stderr)


if __name__ == "__main__":
    main()
