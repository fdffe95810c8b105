#!/usr/bin/env bash
# Speculation modes against plain decoding, and against llama.cpp's own
# speculative tools, on the same prompts, machine and threads, in one run.
# Greedy (temperature 0). Stored as the run labelled `spec`, with the
# target's cached verify-cost curve (docs/BENCHMARKS.md, "Speculation").
# Usage: scripts/bench-spec.sh [THREADS] [MAX_TOKENS]
# Environment: SPEC_TARGET (qwen2.5-coder-1.5b), SPEC_DRAFT (qwen2.5-coder-0.5b),
#   SPEC_MODES ("off lookup draft auto"), SPEC_PROMPTS (all: a count keeps the first N).
invocation="scripts/bench-spec.sh $*"
source "$(dirname "$0")/bench-common.sh"
threads="${1:-2}"; n="${2:-128}"
target_name="${SPEC_TARGET:-qwen2.5-coder-1.5b}"; draft_name="${SPEC_DRAFT:-qwen2.5-coder-0.5b}"
read -r -a modes <<<"${SPEC_MODES:-off lookup draft auto}"
peers=$(peers_bin llama-speculative-simple llama-lookup)
target="$AUGUR_HOME/models/$target_name.gguf"
draft="$AUGUR_HOME/models/$draft_name.gguf"
dir=$(mktemp -d); rows="$dir/rows.jsonl"
# augur run's global suffix tree starts empty: it learns from this run's
# earlier prompts only, never from earlier runs of the same prompt.
home=$(fresh_home "$dir")
python3 scripts/spec_prompts.py "$dir"
prompts=("$dir"/*.txt)
[ -z "${SPEC_PROMPTS:-}" ] || prompts=("${prompts[@]:0:$SPEC_PROMPTS}")
for f in "${prompts[@]}"; do
  id=$(basename "$f" .txt)
  row() { python3 scripts/bench_rows.py run --out "$rows" --suite spec --prompt "$id" --as "$f=PROMPT" "$@"; }
  for mode in "${modes[@]}"; do
    extra=(); [[ $mode == draft || $mode == auto ]] && extra=(--draft-model "$draft_name")
    AUGUR_HOME="$home" row --config "$mode" --model "$target_name" --parse augur-json -- \
      "$bin" run -m "$target_name" -t "$threads" -f "$f" -n "$n" --spec "$mode" "${extra[@]}" --json
  done
  row --config llama-lookup --parse speed -- \
    "$peers/llama-lookup" -m "$target" -f "$f" -n "$n" -t "$threads" --temp 0 "${peer_args[@]}"
  row --config "llama.cpp draft-simple" --parse speed -- \
    "$peers/llama-speculative-simple" -m "$target" -md "$draft" --spec-type draft-simple -f "$f" -n "$n" \
    -t "$threads" -td "$threads" --temp 0 "${peer_args[@]}"
  row --config "llama.cpp ngram-mod" --parse speed -- \
    "$peers/llama-speculative-simple" -m "$target" --spec-type ngram-mod -f "$f" -n "$n" -t "$threads" --temp 0 "${peer_args[@]}"
done
# The verify-cost curve the runs above measured (or reused) for the target.
record_curve "$rows" "$target_name" "$threads"
"$bin" bench import "$rows" --out "$results" --label spec --baseline off --command "$invocation" \
  --peer "$(peer_version "$peers")" --server-command "python3 scripts/spec_prompts.py DIR"
rm -rf "$dir"
