#!/usr/bin/env bash
# MoE expert reduction: decode speed per active-expert count on a synthetic
# qwen3moe model (random weights), through `augur bench run --sweep
# experts=...`, stored as the run labelled `moe`; then the same sweep inside
# the orch test (median decode-step time, no server sampling or event
# hand-off), stored as `moe-step` (docs/BENCHMARKS.md, "MoE expert reduction").
# Usage: scripts/bench-moe.sh [THREADS] [PROMPTS] [ITERATIONS]
# Environment: MOE_STEP=0 skips the test-internal sweep (it builds a test binary).
invocation="scripts/bench-moe.sh $*"
source "$(dirname "$0")/bench-common.sh"
threads="${1:-1}"; prompts="${2:-3}"; iterations="${3:-3}"
moe=/tmp/tiny-qwen3moe.gguf
make_moe=(cargo run --release -p augur-gguf --example write_tiny_moe -- "$moe")
"${make_moe[@]}" >/dev/null
few=(); [ "$iterations" -ge 3 ] || few=(--allow-fewer-iterations)
"$bin" bench run --suite code_editing --max-prompts "$prompts" --iterations "$iterations" "${few[@]}" --no-checks \
  --hash-only --out "$results" --label moe --server-command "$(quoted "${make_moe[@]}")" \
  --target "name=moe,model=$moe,threads=$threads" --sweep experts=8,4,2,1
if [ "${MOE_STEP:-1}" != 0 ]; then
  step=(cargo test --release -p augur-orch --test moe -- --nocapture decode_speed)
  rows=$(mktemp)
  "${step[@]}" 2>&1 | python3 scripts/bench_rows.py moe-step --out "$rows" --command "$(quoted "${step[@]}")"
  "$bin" bench import "$rows" --out "$results" --label moe-step --baseline experts=8 --command "$invocation"
  rm -f "$rows"
fi
