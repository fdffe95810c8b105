#!/usr/bin/env bash
# Run every test: unit, property and integration tests on the real models.
# Models are cached in $AUGUR_HOME (default ~/.cache/augur) between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export AUGUR_HOME="${AUGUR_HOME:-$HOME/.cache/augur}"
scripts/deps.sh
cargo fmt --all -- --check
cargo build --release --bin augur
for m in qwen2.5-coder-1.5b qwen2.5-coder-0.5b gemma-3-270m; do
  target/release/augur pull "$m" >/dev/null
done
cargo test --release --workspace --no-fail-fast 2>&1
