#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo fuzz, nightly toolchain): `scripts/fuzz.sh 30` for 30
# seconds each (what scripts/test.sh runs when a nightly toolchain is there), `scripts/fuzz.sh
# --runs 10000000` for a number of executions each. Prints each target's executions; a crash
# stops the run with the input saved under fuzz/artifacts/<target>/ (make it a regression test in
# the normal suite). Builds without a sanitizer (the targets are safe Rust; what is hunted is
# panics, with debug assertions on, so overflows count) to keep the build to minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

# A timed run (what CI does) builds the dev profile, at opt-level 1 (fuzz/Cargo.toml): about 4.7
# minutes cold on 2 cores instead of 8 to 9 for release, for about three quarters of release's
# executions a second. A run of a number of executions builds release.
limit=(-max_total_time="${1:-30}")
profile=(--dev)
if [ "${1:-}" = "--runs" ]; then
  limit=(-runs="${2:?--runs needs a number}")
  profile=()
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (once)"
  cargo install cargo-fuzz --locked --quiet
fi
flags=(+nightly fuzz run "${profile[@]}" --sanitizer none --debug-assertions)
cargo +nightly fuzz build "${profile[@]}" --sanitizer none --debug-assertions
for target in $(cargo +nightly fuzz list); do
  log=$(mktemp)
  if ! cargo "${flags[@]}" "$target" -- "${limit[@]}" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $target failed (input in fuzz/artifacts/$target/)"
    exit 1
  fi
  echo "fuzz: $target: $(grep -E '^Done [0-9]+ runs' "$log" | tail -1)"
  rm -f "$log"
done
