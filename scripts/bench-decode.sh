#!/usr/bin/env bash
# augur run vs llama.cpp's llama-bench: decode and prompt tokens/s on the same
# machine, same thread count, in one run. Prints a Markdown table and the
# commands it ran. Usage: scripts/bench-decode.sh [THREADS] [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"; reps="${2:-3}"
export AUGUR_HOME="${AUGUR_HOME:-$HOME/.cache/augur}"
bin=target/release/augur
peers=$(../shared/peers/build-llama-cpp.sh llama-bench | tail -1)
prompt_file=$(mktemp)
# ~64 prompt tokens, 64 generated: the llama-bench defaults scaled down.
python3 -c "print(' '.join(['The quick brown fox jumps over the lazy dog.']*6))" > "$prompt_file"
median() { python3 -c "import sys,statistics; print(round(statistics.median(float(x) for x in sys.argv[1:]),2))" "$@"; }
echo "| model | tool | prompt t/s | decode t/s |"
echo "|---|---|---|---|"
for m in qwen2.5-coder-1.5b qwen2.5-coder-0.5b; do
  path="$AUGUR_HOME/models/$m.gguf"
  for cfg in "0 1" "1 1" "1 0"; do
    set -- $cfg; repack=$1; fa=$2
    out=$("$peers/llama-bench" -m "$path" -t "$threads" -p 64 -n 64 -r "$reps" --repack "$repack" -fa "$fa" -o json 2>/dev/null)
    pp=$(echo "$out" | python3 -c "import json,sys; r=json.load(sys.stdin); print(round([x for x in r if x['n_prompt']>0][0]['avg_ts'],2))")
    tg=$(echo "$out" | python3 -c "import json,sys; r=json.load(sys.stdin); print(round([x for x in r if x['n_gen']>0][0]['avg_ts'],2))")
    echo "| $m | llama-bench --repack $repack -fa $fa | $pp | $tg |"
  done
  for flags in "" "--no-repack"; do
    pts=(); dts=()
    for _ in $(seq "$reps"); do
      j=$("$bin" run -m "$m" -t "$threads" -f "$prompt_file" -n 64 --json $flags 2>/dev/null)
      pts+=("$(echo "$j" | python3 -c "import json,sys; print(json.load(sys.stdin)['prompt_tps'])")")
      dts+=("$(echo "$j" | python3 -c "import json,sys; print(json.load(sys.stdin)['decode_tps'])")")
    done
    echo "| $m | augur run ${flags:-(default: repack)} | $(median "${pts[@]}") | $(median "${dts[@]}") |"
  done
done
echo
echo "Commands: \`$peers/llama-bench -m MODEL -t $threads -p 64 -n 64 -r $reps --repack R -fa F -o json\`; \`augur run -m MODEL -t $threads -f PROMPT -n 64 --json [--no-repack]\` ($reps runs, median)."
rm -f "$prompt_file"
