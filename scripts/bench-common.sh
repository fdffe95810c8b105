# Shared by the scripts/bench-*.sh measurement scripts (sourced, not run).
# Each script measures one section of docs/BENCHMARKS.md and stores it as a
# labelled run in $BENCH_RESULTS (default bench/results, the committed
# store the document is rendered from); then:
#   target/release/augur bench report --template docs/BENCHMARKS.in.md \
#     --runs bench/results --out docs/BENCHMARKS.md
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export AUGUR_HOME="${AUGUR_HOME:-$HOME/.cache/augur}"
bin=target/release/augur
results="${BENCH_RESULTS:-bench/results}"
mkdir -p "$results"
[ -x "$bin" ] || { echo "build augur first: cargo build --release --bin augur" >&2; exit 1; }

# Extra arguments for every llama.cpp peer command, from PEER_ARGS (e.g.
# "--no-repack" on a machine where the peer's repacked weights crash); they
# are part of the command lines stored with each run.
read -r -a peer_args <<<"${PEER_ARGS:-}"
[ -z "${PEER_ARGS:-}" ] || invocation="PEER_ARGS=\"$PEER_ARGS\" ${invocation:-}"

# llama.cpp's tools (built once by the shared script); prints their bin dir.
peers_bin() { ../shared/peers/build-llama-cpp.sh "$@" | tail -1; }

# The llama.cpp the tools were built from, for the run's metadata.
peer_version() {
  local d; d=$(basename "$(dirname "$(dirname "$1")")")
  echo "llama.cpp=vendored in llama-cpp-python ${d#llama.cpp-py}"
}

# Append to ROWS the verify-cost curve augur measured (or reused) for MODEL
# at THREADS, as configuration `target`: c(1..MAX_K) and the invariant chunk.
# Usage: record_curve ROWS MODEL THREADS [MAX_K]
record_curve() {
  python3 scripts/bench_rows.py calibration --out "$1" --dir "$AUGUR_HOME/calibration" \
    --model-id "$2.gguf" --threads "$3" --config target --max-k "${4:-8}"
}

# Wait until a server on 127.0.0.1:PORT answers /health (model loaded).
wait_up() {
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "no server on port $1" >&2
  return 1
}

# Start a server in the background, remembering its pid for stop_servers.
servers=()
start_server() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  servers+=($!)
}

stop_servers() {
  local p
  for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${servers[@]}"; do wait "$p" 2>/dev/null || true; done
  servers=()
}
trap stop_servers EXIT

# A command line as one shell-quoted string, for --server-command.
quoted() { local s; printf -v s '%q ' "$@"; echo "${s% }"; }

# A fresh augur home under DIR sharing the models and the cached verify-cost
# curves but with an empty suffix store, so a server's global suffix tree
# learns only from this run's requests. Prints its path.
fresh_home() {
  local home; home=$(mktemp -d "${1:-/tmp}/augur-home.XXXXXX")
  mkdir -p "$AUGUR_HOME/calibration"
  ln -s "$AUGUR_HOME/models" "$home/models"
  ln -s "$AUGUR_HOME/calibration" "$home/calibration"
  echo "$home"
}
