#!/usr/bin/env bash
# Speculation modes against plain decoding, and against llama.cpp's own
# speculative tools, on the same prompts, machine and threads, in one run.
# Greedy (temperature 0). Prints a Markdown table and the commands.
# Usage: scripts/bench-spec.sh [THREADS] [MAX_TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"; n="${2:-128}"
export AUGUR_HOME="${AUGUR_HOME:-$HOME/.cache/augur}"
bin=target/release/augur
peers=$(../shared/peers/build-llama-cpp.sh llama-speculative-simple llama-lookup | tail -1)
target="$AUGUR_HOME/models/qwen2.5-coder-1.5b.gguf"
draft="$AUGUR_HOME/models/qwen2.5-coder-0.5b.gguf"
dir=$(mktemp -d)
python3 scripts/spec_prompts.py "$dir"
speed() { sed -n 's/.*speed: *\([0-9.]*\) t\/s.*/\1/p' | tail -1; }
echo "| prompt | off t/s | lookup | draft | auto | llama-lookup | llama.cpp draft-simple | llama.cpp ngram-mod | identical to off |"
echo "|---|---|---|---|---|---|---|---|---|"
for f in "$dir"/*.txt; do
  id=$(basename "$f" .txt)
  declare -A tps=(); declare -A text=()
  for mode in off lookup draft auto; do
    j=$("$bin" run -m qwen2.5-coder-1.5b -t "$threads" -f "$f" -n "$n" --spec "$mode" --json 2>/dev/null)
    tps[$mode]=$(echo "$j" | python3 -c "import json,sys; print(round(json.load(sys.stdin)['decode_tps'],2))")
    text[$mode]=$(echo "$j" | python3 -c "import json,sys,hashlib; print(hashlib.sha256(json.load(sys.stdin)['text'].encode()).hexdigest())")
  done
  lk=$("$peers/llama-lookup" -m "$target" -f "$f" -n "$n" -t "$threads" --temp 0 2>&1 | speed || true)
  ss=$("$peers/llama-speculative-simple" -m "$target" -md "$draft" --spec-type draft-simple -f "$f" -n "$n" -t "$threads" -td "$threads" --temp 0 2>&1 | speed || true)
  nm=$("$peers/llama-speculative-simple" -m "$target" --spec-type ngram-mod -f "$f" -n "$n" -t "$threads" --temp 0 2>&1 | speed || true)
  same=yes
  for mode in lookup draft auto; do [ "${text[$mode]}" = "${text[off]}" ] || same="NO ($mode)"; done
  r() { python3 -c "import sys; a,b=float(sys.argv[1] or 0),float(sys.argv[2]); print(f'{a:.2f} ({a/b:.2f}x)' if b else a)" "$1" "${tps[off]}"; }
  echo "| $id | ${tps[off]} | $(r "${tps[lookup]}") | $(r "${tps[draft]}") | $(r "${tps[auto]}") | $(r "${lk:-0}") | $(r "${ss:-0}") | $(r "${nm:-0}") | $same |"
done
echo
echo "Commands: \`augur run -m qwen2.5-coder-1.5b -t $threads -f PROMPT -n $n --spec MODE --json\` (decode_tps); \`llama-lookup -m TARGET -f PROMPT -n $n -t $threads --temp 0\`; \`llama-speculative-simple -m TARGET -md DRAFT --spec-type draft-simple -f PROMPT -n $n -t $threads -td $threads --temp 0\` and \`llama-speculative-simple -m TARGET --spec-type ngram-mod -f PROMPT -n $n -t $threads --temp 0\` (their 'speed' line; llama.cpp's defaults: repacking and flash attention on). Prompts: \`python3 scripts/spec_prompts.py DIR\`."
rm -rf "$dir"
