#!/usr/bin/env bash
# Prompt length: prefill tokens/s and time to first token for augur run
# (default prefill chunk, and -b 512) against llama-bench -p N -n 0 with flash
# attention and repacking on and off, on the same machine and threads, in one
# run, stored as the run labelled `prefill` (docs/BENCHMARKS.md, "Prompt
# length"). Each prompt is "MODEL N", N the length asked for; augur's row
# records the tokens its tokenizer made of the text.
# Usage: scripts/bench-prefill.sh [THREADS] [REPS] [MODEL...]
#   (default models: qwen2.5-coder-1.5b qwen2.5-coder-0.5b)
# Environment: PREFILL_LENGTHS ("512 2048 4096"; up to the model's context),
#   PREFILL_TOOLS ("llama-bench augur": which to run), PREFILL_LABEL (prefill).
invocation="scripts/bench-prefill.sh $*"
source "$(dirname "$0")/bench-common.sh"
threads="${1:-2}"; reps="${2:-1}"
models=("${@:3}"); [ ${#models[@]} -gt 0 ] || models=(qwen2.5-coder-1.5b qwen2.5-coder-0.5b)
read -r -a lengths <<<"${PREFILL_LENGTHS:-512 2048 4096}"
tools="${PREFILL_TOOLS:-llama-bench augur}"
peers=$(peers_bin llama-bench)
rows=$(mktemp); dir=$(mktemp -d)
row() { python3 scripts/bench_rows.py run --out "$rows" --suite prefill "$@"; }
for n in "${lengths[@]}"; do
  # About n tokens of code-like text (12.6 tokens per line with Qwen's tokenizer).
  python3 -c "import sys; n=int(sys.argv[1]); print('\n'.join(f'    total += values[{i}] * {i % 97}' for i in range(n * 10 // 126)))" "$n" \
    > "$dir/prompt-$n.txt"
done
for m in "${models[@]}"; do
  path="$AUGUR_HOME/models/$m.gguf"
  for n in "${lengths[@]}"; do
    for cfg in "0 0" "0 1" "1 0" "1 1"; do
      [[ $tools == *llama-bench* ]] || continue
      read -r repack fa <<<"$cfg"
      row --prompt "$m $n" --model "$m" --config "llama-bench --repack $repack -fa $fa" --parse llama-bench-prompt -- \
        "$peers/llama-bench" -m "$path" -t "$threads" -p "$n" -n 0 -r "$reps" --repack "$repack" -fa "$fa" -o json
    done
    for flags in "" "-b 512"; do
      [[ $tools == *augur* ]] || continue
      for _ in $(seq "$reps"); do
        row --prompt "$m $n" --model "$m" --config "augur run${flags:+ $flags}" --parse augur-json \
          --as "$dir/prompt-$n.txt=PROMPT-$n" -- \
          "$bin" run -m "$m" -t "$threads" -c $((n * 3 / 2)) -f "$dir/prompt-$n.txt" -n 1 --json --prefix-cache off $flags
      done
    done
  done
done
"$bin" bench import "$rows" --out "$results" --label "${PREFILL_LABEL:-prefill}" --command "$invocation" \
  --peer "$(peer_version "$peers")" \
  --server-command "python3 -c \"...print N*10//126 lines of code-like text...\" N > PROMPT-N"
rm -rf "$rows" "$dir"
