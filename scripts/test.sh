#!/usr/bin/env bash
# The project's one test command (README quick start; .ci/run calls exactly this).
# Installs the embedded engines' packages and models (scripts/setup.sh, quick once done) and
# PostgreSQL's server binaries when missing, then
# formatting, lints and every test of the workspace. Uses cargo-nextest when installed, otherwise
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# The PostgreSQL storage test starts a throwaway server from the Debian package's binaries.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "test: installing the Debian package postgresql (for the PostgreSQL storage test)"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
