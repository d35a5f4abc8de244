#!/usr/bin/env bash
# The project's one test command (README quick start; .ci/run calls exactly this).
# Formatting, lints, then every test of the workspace. Needs nothing beyond Rust and cargo-nextest
# (falls back to `cargo test` when nextest is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
