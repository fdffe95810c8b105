#!/usr/bin/env bash
# Speculation modes against plain decoding, in process, over several suites:
# one worker serves every mode, alternating request by request (the order
# rotating each iteration, each prompt warmed first), so drift in the
# machine's speed falls on all modes alike. Greedy; every mode's text is
# checked against `off`. Stored as the run labelled `modes`
# (docs/BENCHMARKS.md, "Speculation modes, repeated").
# Usage: scripts/bench-modes.sh [THREADS] [ITERATIONS]
# Environment: MODES_MODEL (qwen2.5-coder-1.5b), MODES (off,lookup,auto),
#   MODES_SUITES (code_editing,code_generation,multi_turn), MODES_PROMPTS (all).
invocation="scripts/bench-modes.sh $*"
source "$(dirname "$0")/bench-common.sh"
threads="${1:-2}"; iterations="${2:-5}"
model="${MODES_MODEL:-qwen2.5-coder-1.5b}"
IFS=, read -r -a modes <<<"${MODES:-off,lookup,auto}"
args=()
for m in "${modes[@]}"; do args+=(--target "name=$m,model=$model,spec=$m,threads=$threads"); done
limit=(); [ -z "${MODES_PROMPTS:-}" ] || limit=(--max-prompts "$MODES_PROMPTS")
few=(); [ "$iterations" -ge 3 ] || few=(--allow-fewer-iterations)
"$bin" bench run --suite "${MODES_SUITES:-code_editing,code_generation,multi_turn}" --iterations "$iterations" \
  "${few[@]}" "${limit[@]}" --no-checks --hash-only --strict --out "$results" --label modes "${args[@]}"
echo "(run by: $invocation)" >&2
