#!/usr/bin/env bash
# Tool-calling workload (scripts/bench_tools.py: 24 requests, each with its
# own tools, tool_choice "required", greedy): augur constrained against
# unconstrained, with and without fast-forward and speculation, and
# llama-server --jinja on the same machine, one after the other on one port.
# Stored as the run labelled `tools` (docs/BENCHMARKS.md, "Tool calls").
# Usage: scripts/bench-tools.sh [THREADS] [LIMIT]
# Environment: TOOLS_MODEL (qwen2.5-coder-1.5b).
invocation="scripts/bench-tools.sh $*"
source "$(dirname "$0")/bench-common.sh"
threads="${1:-2}"; limit="${2:-24}"
model="${TOOLS_MODEL:-qwen2.5-coder-1.5b}"
peers=$(peers_bin llama-server)
port=8131
rows=$(mktemp)
client() { python3 scripts/bench_tools.py --url "http://127.0.0.1:$port" --model "$model" --limit "$limit" "$@" 2>/dev/null; }

# Requests in `auto` add their answers to the server's global suffix tree,
# so each `auto` configuration gets its own server with an empty store: it
# learns from the earlier requests of its own sequence, never from another
# configuration's answers to the same prompts.
work=$(mktemp -d)
augur_cmd=("$bin" serve -m "$model" -t "$threads" --port "$port" --spec auto)
augur_server() {
  AUGUR_HOME=$(fresh_home "$work") start_server "/tmp/augur-bench-tools-$1.log" "${augur_cmd[@]}"
  wait_up "$port"
  client --name warmup --limit 2 --augur '{"spec": {"mode": "off"}}' >/dev/null
}
augur_server plain
client --rows "$rows" --name augur-unconstrained-plain --augur '{"spec": {"mode": "off"}, "constrain": false}'
client --rows "$rows" --name augur-constrained-plain --augur '{"spec": {"mode": "off", "fast_forward": false}}'
client --rows "$rows" --name augur-constrained-ff --augur '{"spec": {"mode": "off", "fast_forward": true}}'
stop_servers
augur_server unconstrained-auto
client --rows "$rows" --name augur-unconstrained-auto --augur '{"spec": {"mode": "auto"}, "constrain": false}'
stop_servers
augur_server constrained-auto
client --rows "$rows" --name augur-constrained-auto-ff --augur '{"spec": {"mode": "auto", "fast_forward": true}}'
stop_servers
rm -rf "$work"

llama_cmd=("$peers/llama-server" -m "$AUGUR_HOME/models/$model.gguf" -t "$threads" --port "$port" -c 4096 --jinja "${peer_args[@]}")
start_server /tmp/llama-bench-tools.log "${llama_cmd[@]}"
wait_up "$port"
client --name warmup --limit 2 >/dev/null
client --rows "$rows" --name llama-server-jinja
stop_servers

# The verify-cost curve the augur servers measured (or reused) for the model.
record_curve "$rows" "$model" "$threads" 16
"$bin" bench import "$rows" --out "$results" --label tools --command "$invocation" --peer "$(peer_version "$peers")" \
  --server-command "$(quoted "${augur_cmd[@]}")" --server-command "$(quoted "${llama_cmd[@]}")"
rm -f "$rows"
