#!/usr/bin/env bash
# Agentic workload (scripts/bench_agentic.py: 36 function-calling requests
# sharing one format, answered one after another, greedy): augur serve with
# each speculation mode, and llama-server plain and with its n-gram modes.
# Every server starts cold, one at a time on one port; each augur server
# gets an empty store for its global suffix tree (the models and the cached
# verify-cost curves are shared), so the tree learns only from the earlier
# requests of the same sequence. Stored as the run labelled `agentic`
# (docs/BENCHMARKS.md, "Agentic workload").
# Usage: scripts/bench-agentic.sh [THREADS] [REQUESTS]
# Environment: AGENTIC_MODEL (qwen2.5-coder-1.5b), AGENTIC_MODES ("off lookup suffix auto off+tree
# auto+tree"; MODE+tree adds --spec-tree), PEER_ARGS (bench-common.sh).
invocation="scripts/bench-agentic.sh $*"
source "$(dirname "$0")/bench-common.sh"
threads="${1:-2}"; limit="${2:-36}"
model="${AGENTIC_MODEL:-qwen2.5-coder-1.5b}"
read -r -a modes <<<"${AGENTIC_MODES:-off lookup suffix auto off+tree auto+tree}"
peers=$(peers_bin llama-server)
port=8141
rows=$(mktemp)
work=$(mktemp -d)
client() { python3 scripts/bench_agentic.py --url "http://127.0.0.1:$port" --model "$model" --limit "$limit" "$@"; }
warm() {
  curl -sf "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "{\"model\": \"$model\", \"max_tokens\": 4, \"temperature\": 0, \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}" >/dev/null || true
}
recorded=()
for mode in "${modes[@]}"; do
  home=$(fresh_home "$work")
  # MODE+tree: the same with tree verification (and the attention layout
  # it loads the model with, so compare it with off+tree).
  cmd=("$bin" serve -m "$model" -t "$threads" --port "$port" --spec "${mode%+tree}")
  name="augur-${mode%+tree}"
  [[ $mode == *+tree ]] && { cmd+=(--spec-tree); name+="-tree"; }
  AUGUR_HOME="$home" start_server "/tmp/bench-agentic-$name.log" "${cmd[@]}"
  wait_up "$port"; warm
  client --rows "$rows" --name "$name"
  stop_servers
  recorded+=(--server-command "AUGUR_HOME=EMPTY_STORE $(quoted "${cmd[@]}")")
done
for spec in none ngram-mod ngram-map-k ngram-cache; do
  cmd=("$peers/llama-server" -m "$AUGUR_HOME/models/$model.gguf" -t "$threads" --port "$port" -c 4096 "${peer_args[@]}")
  [ "$spec" = none ] || cmd+=(--spec-type "$spec")
  name=llama-server; [ "$spec" = none ] || name="llama-server-$spec"
  start_server "/tmp/bench-agentic-$name.log" "${cmd[@]}"
  wait_up "$port"; warm
  client --rows "$rows" --name "$name"
  stop_servers
  recorded+=(--server-command "$(quoted "${cmd[@]}")")
done
# The verify-cost curve the augur servers measured (or reused) for the model.
record_curve "$rows" "$model" "$threads" 16
# Tree runs load another attention layout: checked against their own plain run.
"$bin" bench import "$rows" --out "$results" --label agentic --baseline augur-off --command "$invocation" \
  --identity augur-off-tree=augur-off-tree --identity augur-auto-tree=augur-off-tree \
  --peer "$(peer_version "$peers")" "${recorded[@]}"
rm -rf "$rows" "$work"
