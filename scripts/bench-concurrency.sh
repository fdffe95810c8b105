#!/usr/bin/env bash
# Latency and throughput under 1, 4 and 8 concurrent streaming clients
# (`augur bench load`): augur serve (one request at a time, the others
# queued), then llama-server on the same model and port with its default
# slots, then with `-np 4` (continuous batching over 4 slots). Stored as the
# runs labelled `concurrency-augur`, `concurrency-llama-server` and
# `concurrency-llama-server-np4` (docs/BENCHMARKS.md, "Concurrent clients").
# Usage: scripts/bench-concurrency.sh [THREADS] [REQUESTS] [MAX_TOKENS] [CLIENTS]
# Environment: LOAD_MODEL (qwen2.5-coder-1.5b), LOAD_SUITE (code_editing),
#   LOAD_PROMPTS (4: the first N prompts of the suite, in turn).
invocation="scripts/bench-concurrency.sh $*"
source "$(dirname "$0")/bench-common.sh"
threads="${1:-2}"; requests="${2:-16}"; max_tokens="${3:-128}"; clients="${4:-1,4,8}"
model="${LOAD_MODEL:-qwen2.5-coder-1.5b}"; suite="${LOAD_SUITE:-code_editing}"; prompts="${LOAD_PROMPTS:-4}"
peers=$(peers_bin llama-server)
port=8141
gguf="$AUGUR_HOME/models/$model.gguf"

# One server at a time on $port: start it, measure every level, stop it.
measure() {
  local label=$1 name=$2; shift 2
  start_server "/tmp/bench-concurrency-$name.log" "$@"
  wait_up "$port"
  "$bin" bench load --suite "$suite" --max-prompts "$prompts" --clients "$clients" --requests "$requests" \
    --max-tokens "$max_tokens" --out "$results" --label "$label" --peer "$(peer_version "$peers")" \
    --server-command "$(quoted "$@")" --target "name=$name,model=$model,endpoint=http://127.0.0.1:$port"
  stop_servers
}
# A queue of 16 holds 8 clients' requests with room to spare: no 429 is expected.
measure concurrency-augur augur-serve "$bin" serve -m "$model" -t "$threads" --port "$port" --queue 16
measure concurrency-llama-server llama-server "$peers/llama-server" -m "$gguf" -t "$threads" --port "$port" -c 4096 "${peer_args[@]}"
measure concurrency-llama-server-np4 llama-server-np4 \
  "$peers/llama-server" -m "$gguf" -t "$threads" --port "$port" -c 8192 -np 4 "${peer_args[@]}"
echo "(run by: $invocation)" >&2
