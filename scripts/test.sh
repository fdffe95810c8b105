#!/usr/bin/env bash
# Run every test: unit, property and integration tests on the real models.
# Models are cached in $AUGUR_HOME (default ~/.cache/augur) between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export AUGUR_HOME="${AUGUR_HOME:-$HOME/.cache/augur}"
scripts/deps.sh
cargo fmt --all -- --check
# Only the engine crate may hold `unsafe`: every other crate root forbids it.
for root in crates/*/src/lib.rs crates/*/src/main.rs; do
  case "$root" in crates/engine/*) continue ;; esac
  grep -q '^#!\[forbid(unsafe_code)\]' "$root" || { echo "$root lacks #![forbid(unsafe_code)]" >&2; exit 1; }
done
# Layering: no crate above the runtime reaches the engine directly, and no
# crate depends on one above it.
forbid_dep() { # CRATE DEP...
  local c=$1 d; shift
  for d in "$@"; do
    if cargo tree -p "$c" -e normal --depth 1 --prefix none | grep -q "^$d v"; then
      echo "layering: $c must not depend on $d" >&2; exit 1
    fi
  done
}
forbid_dep augur-server augur-engine
forbid_dep augur-bench augur-engine augur-server
forbid_dep augur-orch augur-engine augur-server
forbid_dep augur-spec augur-runtime augur-server augur-engine
forbid_dep augur-runtime augur-server augur-orch
forbid_dep augur-engine augur-spec augur-runtime augur-store augur-orch augur-server
# Release, so clippy reuses the release build of llama.cpp instead of a debug one.
cargo clippy --release --workspace --all-targets -- -D warnings
cargo build --release --bin augur
for m in qwen2.5-coder-1.5b qwen2.5-coder-0.5b gemma-3-270m; do
  "${CARGO_TARGET_DIR:-target}/release/augur" pull "$m" >/dev/null
done
cargo test --release --workspace --no-fail-fast 2>&1
