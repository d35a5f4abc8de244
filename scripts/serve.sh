#!/usr/bin/env bash
# Quick start: installs the embedded engines (once) and runs the server with them, no API key.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --release -- "$@"
