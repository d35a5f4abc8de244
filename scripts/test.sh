#!/usr/bin/env bash
# The project's one test command (README quick start; .ci/run calls exactly this).
# Installs the embedded engines' packages and models (scripts/setup.sh, quick once done), then
# formatting, lints and every test of the workspace. Uses cargo-nextest when installed, otherwise
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
