#!/usr/bin/env bash
# The project's one test command (README quick start; .ci/run calls exactly this).
# Installs the embedded engines' packages and models (scripts/setup.sh, quick once done) and
# PostgreSQL's server binaries, Chromium and cargo-deny when missing, then formatting, the
# supply-chain check (deny.toml), lints and every test of the workspace (cargo-nextest when
# installed, otherwise `cargo test`), a one-minute soak, then a bounded fuzzing run when a nightly
# toolchain is there.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# The PostgreSQL storage test starts a throwaway server from the Debian package's binaries; the
# console tests drive the Debian package's headless Chromium; the rolling drain runs behind the
# Debian package's nginx with compose.yaml's load-balancer configuration.
packages=()
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  packages+=(postgresql)
fi
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || packages+=(nginx-light)
if [ ${#packages[@]} -gt 0 ]; then
  echo "test: installing the Debian packages ${packages[*]} (for the PostgreSQL, console and load-balancer tests)"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

cargo fmt --all -- --check

# Supply chain (deny.toml): licenses, bans and sources always; advisories when the RustSec
# database can be fetched (it lives on GitHub, which an offline machine cannot reach: said, not
# hidden).
if ! cargo deny --version >/dev/null 2>&1; then
  echo "test: installing cargo-deny (once; about 3 minutes on 2 cores)"
  cargo install cargo-deny --locked --quiet
fi
cargo deny --log-level error check bans licenses sources
if cargo deny fetch >/dev/null 2>&1; then
  cargo deny --log-level error check advisories
else
  echo "test: advisories not checked: the RustSec advisory database could not be fetched"
fi
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

# A one-minute soak of the debug build under 20 calls (scripts/soak.sh; the 30-minute soak at 70 %
# of the ramp's maximum is run by hand): no call failed, no frame lost, no growth in memory,
# descriptors or threads, no latency drift. SOAK_SECONDS=0 skips it.
if [ "${SOAK_SECONDS:-60}" != 0 ]; then
  scripts/soak.sh --seconds "${SOAK_SECONDS:-60}" --round 15 --calls 20 --debug --plot target/soak/soak.svg
fi

# Fuzzing, bounded (FUZZ_SECONDS per target, 5 by default, 0 to skip), when a nightly toolchain
# is installed: scripts/fuzz.sh builds the targets in fuzz/ (about 5 minutes cold on 2 cores) and
# runs each; a crash fails the run.
if [ "${FUZZ_SECONDS:-5}" != 0 ] && cargo +nightly --version >/dev/null 2>&1; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-5}"
else
  echo "test: fuzzing skipped (no nightly toolchain, or FUZZ_SECONDS=0)"
fi
