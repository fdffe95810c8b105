#!/usr/bin/env bash
# One command from a fresh Debian machine with Rust: install what is missing,
# build augur in release mode, fetch the default models, run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --bin augur
bin=target/release/augur
"$bin" pull qwen2.5-coder-1.5b
"$bin" pull qwen2.5-coder-0.5b
"$bin" models
"$bin" run --chat -n 64 -p "Write a Python function that checks whether a string is a palindrome."
exec "$bin" serve
