#!/usr/bin/env bash
# The performance lab: phone-agent (ENGINES=loopback), the floor (benches/peers/floor.rs, a bare
# tokio-tungstenite Twilio echo) and pipecat (benches/peers/pipecat_echo.py, in a venv this script
# makes) each in turn pinned to one core (SCHED_FIFO when allowed), driven from the other core by
# `phone-agent loadgen --ramp` until a round misses real time. Writes target/peers/*.json, the table
# between the peers markers of docs/benchmarks.md and the plot docs/peers-latency.svg.
#
# Usage: benches/peers/run.sh [phone-agent|floor|pipecat ...]   (default: all three)
# Settings (environment): DURATION (20s), PHONE_AGENT_RAMP (50:50:1000), FLOOR_RAMP
# (100:100:2000), PIPECAT_RAMP (10:10:300), SERVER_CORE (1), LOAD_CORE (0).
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${DURATION:-20s}
server_core=${SERVER_CORE:-1}
load_core=${LOAD_CORE:-0}
out=target/peers
mkdir -p "$out"

cargo build --release --quiet --bin phone-agent --example peer-floor --example peers-report
bin=target/release/phone-agent
venv=$out/pipecat-venv
if [ ! -x "$venv/bin/python" ] || ! cmp -s benches/peers/requirements.txt "$venv/requirements.txt"; then
  echo "making the pipecat venv ($venv)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r benches/peers/requirements.txt
  cp benches/peers/requirements.txt "$venv/requirements.txt"
fi

# Real-time priority for the server when this user may have it; plain pinning otherwise.
priority=()
if chrt -f 10 true 2>/dev/null; then priority=(chrt -f 10); fi

server=""
stop_server() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  server=""
}
trap stop_server EXIT

# Waits until 127.0.0.1:$1 accepts connections (at most 30 s).
wait_for_port() {
  for _ in $(seq 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$server" 2>/dev/null || { echo "the server exited"; return 1; }
    sleep 0.1
  done
  echo "nothing listens on port $1"; return 1
}

# Starts a server (the rest of the arguments) pinned to the server core, in the background.
start_server() {
  taskset -c "$server_core" "${priority[@]}" "$@" >"$out/$name.log" 2>&1 &
  server=$!
}

# Ramps the running server with loadgen and writes $out/$name.json.
ramp() {
  local range=$1; shift
  echo "== $name: ramp $range, $duration calls (server pid $server, core $server_core ${priority[*]:+SCHED_FIFO})"
  taskset -c "$load_core" "$bin" loadgen --ramp "$range" --duration "$duration" --spread 2s \
    --server-pid "$server" --label "$name" --json "$out/$name.json" "$@" || true
  stop_server
}

peers=("$@")
[ "${#peers[@]}" -gt 0 ] || peers=(phone-agent floor pipecat)
for name in "${peers[@]}"; do
  case $name in
    phone-agent)
      data=$(mktemp -d)
      start_server env ENGINES=loopback DATA_DIR="$data" PORT=18080 HTTP_WORKERS=1 RUST_LOG=warn "$bin"
      wait_for_port 18080
      ramp "${PHONE_AGENT_RAMP:-50:50:1000}" --url http://127.0.0.1:18080 --data-dir "$data"
      rm -rf "$data" ;;
    floor)
      start_server target/release/examples/peer-floor 127.0.0.1:18766
      wait_for_port 18766
      ramp "${FLOOR_RAMP:-100:100:2000}" --ws-url ws://127.0.0.1:18766/ws ;;
    pipecat)
      start_server "$venv/bin/python" benches/peers/pipecat_echo.py --port 18765
      wait_for_port 18765
      ramp "${PIPECAT_RAMP:-10:10:300}" --ws-url ws://127.0.0.1:18765/ws ;;
    *) echo "unknown peer $name (phone-agent, floor, pipecat)"; exit 2 ;;
  esac
done

reports=()
for name in phone-agent floor pipecat; do
  [ -f "$out/$name.json" ] && reports+=("$out/$name.json")
done
target/release/examples/peers-report "$out/table.md" docs/peers-latency.svg "${reports[@]}"
python3 - "$out/table.md" docs/benchmarks.md <<'PY'
import re, sys
table, doc = open(sys.argv[1]).read(), open(sys.argv[2]).read()
begin, end = "<!-- peers:begin -->", "<!-- peers:end -->"
spliced = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{table}{end}", doc, flags=re.S)
open(sys.argv[2], "w").write(spliced)
PY
cat "$out/table.md"
