#!/usr/bin/env bash
# augur serve against llama-server over HTTP, measured by the same streaming
# client (`augur bench run`), greedy: four servers on loopback, each with the
# same model and threads, measured one at a time. Stored as the run labelled
# `http` (docs/BENCHMARKS.md, "Over HTTP").
# Usage: scripts/bench-http.sh [THREADS] [PROMPTS] [ITERATIONS]
# Environment: HTTP_MODEL (qwen2.5-coder-1.5b), HTTP_SUITE (code_editing).
invocation="scripts/bench-http.sh $*"
source "$(dirname "$0")/bench-common.sh"
threads="${1:-2}"; prompts="${2:-3}"; iterations="${3:-3}"
model="${HTTP_MODEL:-qwen2.5-coder-1.5b}"; suite="${HTTP_SUITE:-code_editing}"
peers=$(peers_bin llama-server)
gguf="$AUGUR_HOME/models/$model.gguf"
declare -A cmd=(
  [augur-off]="$(quoted "$bin" serve -m "$model" --spec off -t "$threads" --port 8091)"
  [augur-auto]="$(quoted "$bin" serve -m "$model" --spec auto -t "$threads" --port 8092)"
  [llama-server]="$(quoted "$peers/llama-server" -m "$gguf" -t "$threads" --port 8093 -c 4096 "${peer_args[@]}")"
  [llama-server-ngram-mod]="$(quoted "$peers/llama-server" -m "$gguf" -t "$threads" --port 8094 -c 4096 --spec-type ngram-mod "${peer_args[@]}")"
)
declare -A port=([augur-off]=8091 [augur-auto]=8092 [llama-server]=8093 [llama-server-ngram-mod]=8094)
order=(augur-off augur-auto llama-server llama-server-ngram-mod)
args=(); recorded=()
work=$(mktemp -d)
for name in "${order[@]}"; do
  # Each augur server's global suffix tree starts empty (it still learns
  # within the run: the warm-up of a prompt is an earlier request).
  home="$AUGUR_HOME"; [[ $name != augur-* ]] || home=$(fresh_home "$work")
  AUGUR_HOME="$home" start_server "/tmp/bench-http-$name.log" bash -c "exec ${cmd[$name]}"
  args+=(--target "name=$name,model=$model,endpoint=http://127.0.0.1:${port[$name]}")
  recorded+=(--server-command "${cmd[$name]}")
done
for name in "${order[@]}"; do wait_up "${port[$name]}"; done
few=(); [ "$iterations" -ge 3 ] || few=(--allow-fewer-iterations)
"$bin" bench run --suite "$suite" --max-prompts "$prompts" --iterations "$iterations" "${few[@]}" --no-checks \
  --hash-only --out "$results" --label http --peer "$(peer_version "$peers")" "${recorded[@]}" "${args[@]}"
echo "(run by: $invocation)" >&2
stop_servers
rm -rf "$work"
