#!/usr/bin/env python3
"""Multi-turn conversations against one OpenAI-compatible server: each turn
sends the whole conversation so far (a long system prompt, then the user's
turns and the server's own earlier answers), streamed and greedy, with a
pause between turns as a user reading the answer would take. Writes one
JSON line per turn for `augur bench import`: time to first token, prompt
and cached tokens, decode speed and the SHA-256 of the answer (so the
answers of different servers, or of cache settings, can be compared).

usage: bench_prefix.py --url URL --name CONFIG --out ROWS.jsonl
           [--conversations N] [--turns T] [--max-tokens M] [--pause S]
"""

import argparse
import hashlib
import http.client
import json
import sys
import time
import urllib.parse

SYSTEM = (
    "You are a senior engineer reviewing code for a team that writes Python services and Rust libraries. "
    "Prefer small functions with clear names. Point out missing error handling, unchecked indexing, integer "
    "overflow, resource leaks, and any place where input from a user reaches a file path, a shell command or "
    "a SQL string without validation. Suggest a unit test with the smallest input that shows each bug. Keep "
    "the style of the code you are given; when you rewrite code, return the whole function. Do not invent "
    "APIs. Answer in plain Markdown with fenced code blocks, and never more than necessary. "
) * 4

CODE = [
    "def load_users(path):\n    users = []\n    f = open(path)\n    for line in f:\n        parts = line.split(',')\n"
    "        users.append({'id': int(parts[0]), 'name': parts[1]})\n    return users\n",
    "pub fn checksum(data: &[u8]) -> u16 {\n    let mut sum: u16 = 0;\n    for i in 0..data.len() {\n"
    "        sum = sum + data[i] as u16;\n    }\n    sum\n}\n",
    "def run(cmd, user_arg):\n    import os\n    return os.system(cmd + ' ' + user_arg)\n",
]

FOLLOW_UPS = ["Fix the worst bug.", "Now add a test for it.", "Anything else to change?", "Summarise in one line."]


def stream(url, model, messages, max_tokens):
    """One streamed chat completion: (text, ttft seconds, seconds, usage)."""
    u = urllib.parse.urlparse(url)
    body = json.dumps({
        "model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
        "stream": True, "stream_options": {"include_usage": True},
    })
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    start = time.monotonic()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
    text, first, usage = [], None, {}
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        usage = chunk.get("usage") or usage
        for c in chunk.get("choices", []):
            piece = (c.get("delta") or {}).get("content")
            if piece:
                first = first or time.monotonic()
                text.append(piece)
    end = time.monotonic()
    conn.close()
    return "".join(text), (first or end) - start, end - start, usage


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--conversations", type=int, default=3)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--pause", type=float, default=5.0)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b", help="the request's model (servers refuse unknown names)")
    a = ap.parse_args()
    command = " ".join(["python3", "scripts/bench_prefix.py"] + sys.argv[1:])
    with open(a.out, "a") as out:
        for c in range(a.conversations):
            messages = [{"role": "system", "content": SYSTEM},
                        {"role": "user", "content": "Review this code:\n\n" + CODE[c % len(CODE)]}]
            for t in range(a.turns):
                row = {"suite": "prefix", "prompt": f"conversation-{c + 1}-turn-{t + 1}", "config": a.name,
                       "command": command}
                try:
                    text, ttft, total, usage = stream(a.url, a.model, messages, a.max_tokens)
                    done = usage.get("completion_tokens", 0)
                    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
                    decode = total - ttft
                    row["metrics"] = {
                        "ttft_s": ttft, "prompt_tokens": usage.get("prompt_tokens", 0), "cached_tokens": cached,
                        "completion_tokens": done, "decode_tps": (done - 1) / decode if decode > 0 and done > 1 else 0.0,
                    }
                    row["output_sha256"] = hashlib.sha256(text.encode()).hexdigest()
                except Exception as e:  # a failed turn is a row with its error, never a made-up number
                    row["error"] = str(e)
                    text = ""
                out.write(json.dumps(row) + "\n")
                out.flush()
                messages.append({"role": "assistant", "content": text})
                messages.append({"role": "user", "content": FOLLOW_UPS[t % len(FOLLOW_UPS)]})
                time.sleep(a.pause)


if __name__ == "__main__":
    main()
