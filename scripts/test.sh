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
# Release, so clippy reuses the release build of llama.cpp instead of a debug one.
cargo clippy --release --workspace --all-targets -- -D warnings
cargo build --release --bin augur
for m in qwen2.5-coder-1.5b qwen2.5-coder-0.5b gemma-3-270m; do
  "${CARGO_TARGET_DIR:-target}/release/augur" pull "$m" >/dev/null
done
cargo test --release --workspace --no-fail-fast 2>&1
