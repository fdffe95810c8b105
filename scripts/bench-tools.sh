#!/usr/bin/env bash
# Tool-calling workload (scripts/bench_tools.py: 24 requests, each with its
# own tools, tool_choice "required", greedy): augur constrained against
# unconstrained, with and without fast-forward and speculation, and
# llama-server --jinja on the same machine, one after the other.
# Prints one JSON line per configuration and the commands.
# Usage: scripts/bench-tools.sh [THREADS] [LIMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"; limit="${2:-24}"
export AUGUR_HOME="${AUGUR_HOME:-$HOME/.cache/augur}"
bin=target/release/augur
peers=$(../shared/peers/build-llama-cpp.sh llama-server | tail -1)
target="$AUGUR_HOME/models/qwen2.5-coder-1.5b.gguf"
port=8131
wait_up() { for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0; sleep 1; done; return 1; }
run() { python3 scripts/bench_tools.py --url "http://127.0.0.1:$port" --limit "$limit" "$@" 2>/dev/null; }

"$bin" serve -m qwen2.5-coder-1.5b -t "$threads" --port "$port" --spec auto >/tmp/augur-bench-tools.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_up "$port"
run --name warmup --limit 2 >/dev/null
run --name augur-unconstrained-plain --augur '{"spec": {"mode": "off"}, "constrain": false}'
run --name augur-unconstrained-auto --augur '{"spec": {"mode": "auto"}, "constrain": false}'
run --name augur-constrained-plain --augur '{"spec": {"mode": "off", "fast_forward": false}}'
run --name augur-constrained-ff --augur '{"spec": {"mode": "off", "fast_forward": true}}'
run --name augur-constrained-auto-ff --augur '{"spec": {"mode": "auto", "fast_forward": true}}'
kill $pid; wait $pid 2>/dev/null || true

"$peers/llama-server" -m "$target" -t "$threads" --port "$port" -c 4096 --jinja >/tmp/llama-bench-tools.log 2>&1 &
pid=$!
wait_up "$port"
run --name warmup --limit 2 >/dev/null
run --name llama-server-jinja
kill $pid; wait $pid 2>/dev/null || true

echo
echo "Commands: \`augur serve -m qwen2.5-coder-1.5b -t $threads --spec auto\` (default draft qwen2.5-coder-0.5b) and \`llama-server -m qwen2.5-coder-1.5b.gguf -t $threads -c 4096 --jinja\`; client \`python3 scripts/bench_tools.py --url URL --limit $limit [--augur JSON]\` (decode_tps = completion tokens / server-reported decode time; valid = every call names an offered tool and its arguments validate with jsonschema)."
