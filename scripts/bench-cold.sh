#!/usr/bin/env bash
# Speculation from a cold start: every request in a fresh `augur run`
# process (`bench run` targets with cold=...), as a user of the CLI, a
# freshly started server or a reloaded model meets it: nothing learnt in
# memory. Modes alternate request by request, the order rotating each
# iteration; greedy, every mode's text checked against `off`.
#   cold:       code editing, code generation, multi-turn; each process on
#               an empty suffix store.
#   cold-tools: function calls, each prompt with its own function list; the
#               store holds the earlier prompts' answers (never this one's).
# Usage: scripts/bench-cold.sh [THREADS] [ITERATIONS]
# Environment: COLD_MODEL (qwen2.5-coder-1.5b), COLD_PROMPTS (prompts per
#   code suite, 3), COLD_TOOL_PROMPTS (12), COLD_MODES (off,lookup,suffix,draft,auto),
#   COLD_TOOL_MODES (off,lookup,suffix,auto).
invocation="scripts/bench-cold.sh $*"
source "$(dirname "$0")/bench-common.sh"
threads="${1:-2}"; iterations="${2:-3}"
model="${COLD_MODEL:-qwen2.5-coder-1.5b}"
few=(); [ "$iterations" -ge 3 ] || few=(--allow-fewer-iterations)
targets() { # STORE MODES
  local m; IFS=, read -r -a ms <<<"$2"
  for m in "${ms[@]}"; do printf -- '--target\nname=%s,model=%s,spec=%s,threads=%s,cold=%s\n' "$m" "$model" "$m" "$threads" "$1"; done
}
mapfile -t code < <(targets fresh "${COLD_MODES:-off,lookup,suffix,draft,auto}")
"$bin" bench run --suite code_editing,code_generation,multi_turn --iterations "$iterations" "${few[@]}" \
  --max-prompts "${COLD_PROMPTS:-3}" --no-checks --hash-only --strict --out "$results" --label cold "${code[@]}"
mapfile -t tools < <(targets sequence "${COLD_TOOL_MODES:-off,lookup,suffix,auto}")
"$bin" bench run --suite tool_calls --iterations "$iterations" "${few[@]}" \
  --max-prompts "${COLD_TOOL_PROMPTS:-12}" --no-checks --hash-only --strict --out "$results" --label cold-tools "${tools[@]}"
echo "(run by: $invocation)" >&2
