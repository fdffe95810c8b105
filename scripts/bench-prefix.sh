#!/usr/bin/env bash
# Prefix reuse over HTTP: the same multi-turn conversations (a long system
# prompt, then each turn sending the conversation so far, with a pause
# between turns) against augur serve with `--prefix-cache off`, `prompt`
# and `conversation`, and against llama-server (which keeps each slot's
# prompt cache), one server at a time on the same port. Greedy; each
# answer's hash is checked against `augur-off`'s. Stored as the run
# labelled `prefix` (docs/BENCHMARKS.md, "Prefix reuse").
# Usage: scripts/bench-prefix.sh [THREADS] [CONVERSATIONS] [TURNS]
# Environment: PREFIX_MODEL (qwen2.5-coder-1.5b), PREFIX_PAUSE (5 seconds).
invocation="scripts/bench-prefix.sh $*"
source "$(dirname "$0")/bench-common.sh"
threads="${1:-2}"; conversations="${2:-3}"; turns="${3:-4}"
model="${PREFIX_MODEL:-qwen2.5-coder-1.5b}"; pause="${PREFIX_PAUSE:-5}"
peers=$(peers_bin llama-server)
gguf="$AUGUR_HOME/models/$model.gguf"
port=8151
dir=$(mktemp -d); rows="$dir/rows.jsonl"
recorded=()
measure() {
  local name=$1; shift
  start_server "/tmp/bench-prefix-$name.log" "$@"
  wait_up "$port"
  recorded+=(--server-command "$(quoted "$@")")
  python3 scripts/bench_prefix.py --url "http://127.0.0.1:$port" --model "$model" --name "$name" --out "$rows" \
    --conversations "$conversations" --turns "$turns" --pause "$pause"
  stop_servers
}
for cache in off prompt conversation; do
  measure "augur-$cache" "$bin" serve -m "$model" -t "$threads" --port "$port" --spec off --prefix-cache "$cache"
done
measure llama-server "$peers/llama-server" -m "$gguf" -t "$threads" --port "$port" -c 4096 "${peer_args[@]}"
"$bin" bench import "$rows" --out "$results" --label prefix --baseline augur-off --command "$invocation" \
  --peer "$(peer_version "$peers")" "${recorded[@]}"
rm -rf "$dir"
