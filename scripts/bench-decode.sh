#!/usr/bin/env bash
# augur run vs llama.cpp's llama-bench: decode and prompt tokens/s on the same
# machine, same thread count, in one run, stored as the run labelled `decode`
# (docs/BENCHMARKS.md, "Decode and prompt speed").
# Usage: scripts/bench-decode.sh [THREADS] [REPS] [MODEL...]
#   (default models: qwen2.5-coder-1.5b qwen2.5-coder-0.5b)
# Environment: DECODE_TOKENS (64): prompt and generated tokens.
invocation="scripts/bench-decode.sh $*"
source "$(dirname "$0")/bench-common.sh"
threads="${1:-2}"; reps="${2:-3}"; tokens="${DECODE_TOKENS:-64}"
models=("${@:3}"); [ ${#models[@]} -gt 0 ] || models=(qwen2.5-coder-1.5b qwen2.5-coder-0.5b)
peers=$(peers_bin llama-bench)
rows=$(mktemp); prompt_file=$(mktemp)
# ~64 prompt tokens (10 per sentence), 64 generated: the llama-bench defaults scaled down.
make_prompt="python3 -c \"print(' '.join(['The quick brown fox jumps over the lazy dog.']*$(( (tokens + 9) / 10 ))))\""
eval "$make_prompt" > "$prompt_file"
row() { python3 scripts/bench_rows.py run --out "$rows" --suite decode --as "$prompt_file=PROMPT" "$@"; }
for m in "${models[@]}"; do
  path="$AUGUR_HOME/models/$m.gguf"
  for cfg in "0 1" "1 1" "1 0"; do
    read -r repack fa <<<"$cfg"
    row --prompt "$m" --model "$m" --config "llama-bench --repack $repack -fa $fa" --parse llama-bench -- \
      "$peers/llama-bench" -m "$path" -t "$threads" -p "$tokens" -n "$tokens" -r "$reps" --repack "$repack" -fa "$fa" -o json
  done
  for flags in "" "--no-repack"; do
    for _ in $(seq "$reps"); do
      row --prompt "$m" --model "$m" --config "augur run ${flags:-(default: repack)}" --parse augur-json -- \
        "$bin" run -m "$m" -t "$threads" -f "$prompt_file" -n "$tokens" --json $flags
    done
  done
done
"$bin" bench import "$rows" --out "$results" --label decode --command "$invocation" \
  --peer "$(peer_version "$peers")" --server-command "$make_prompt > PROMPT"
rm -f "$rows" "$prompt_file"
