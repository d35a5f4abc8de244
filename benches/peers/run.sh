#!/usr/bin/env bash
# The performance lab: phone-agent (ENGINES=loopback), the floor (benches/peers/floor.rs, a bare
# tokio-tungstenite Twilio echo) and pipecat (benches/peers/pipecat_echo.py, in a venv this script
# makes) each in turn pinned to one core (SCHED_FIFO when allowed), driven from the other core by
# `phone-agent loadgen --ramp` until a round misses real time. Writes target/peers/*.json, the table
# between the peers markers of docs/benchmarks.md and the plot docs/peers-latency.svg. phone-agent
# runs with admission off (ADMISSION_LAG_MS=0): the ramp measures what it carries, not what it admits.
#
# phone-agent runs twice: every 20 ms frame a turn (the whole actor path and a journal write per
# frame: loopback's default), and media-only (LOOPBACK_TURN_FRAMES=100: 2 s turns, audio streaming
# both ways between them as in a real conversation; latency is then end of turn → first frame back).
#
# Usage: benches/peers/run.sh [phone-agent|phone-agent-turns|floor|pipecat ...]   (default: all)
# Peers left out keep their last report (target/peers/NAME.json) in the table.
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

# The name a peer has in the report.
label_of() {
  case $1 in
    phone-agent) echo "phone-agent (every frame a turn)" ;;
    phone-agent-turns) echo "phone-agent, media only (2 s turns)" ;;
    floor) echo "floor (tokio-tungstenite)" ;;
    pipecat) echo "pipecat 1.14" ;;
  esac
}

# Ramps the running server with loadgen and writes $out/$name.json.
ramp() {
  local range=$1; shift
  echo "== $name: ramp $range, $duration calls (server pid $server, core $server_core ${priority[*]:+SCHED_FIFO})"
  taskset -c "$load_core" "$bin" loadgen --ramp "$range" --duration "$duration" --spread 2s \
    --server-pid "$server" --label "$(label_of "$name")" --json "$out/$name.json" "$@" || true
  stop_server
}

# Starts phone-agent with loopback turns of $1 frames and ramps it (the rest: loadgen's options).
phone_agent() {
  local turn_frames=$1; shift
  local data
  data=$(mktemp -d)
  start_server env ENGINES=loopback LOOPBACK_TURN_FRAMES="$turn_frames" ADMISSION_LAG_MS=0 \
    DATA_DIR="$data" LISTEN_ADDR=127.0.0.1:18080 HTTP_WORKERS=1 RUST_LOG=warn "$bin"
  wait_for_port 18080
  ramp "${PHONE_AGENT_RAMP:-50:50:1000}" --url http://127.0.0.1:18080 --data-dir "$data" \
    --turn-frames "$turn_frames" "$@"
  rm -rf "$data"
}

peers=("$@")
[ "${#peers[@]}" -gt 0 ] || peers=(phone-agent phone-agent-turns floor pipecat)
for name in "${peers[@]}"; do
  case $name in
    phone-agent) phone_agent 1 ;;
    phone-agent-turns) phone_agent 100 ;;
    floor)
      start_server target/release/examples/peer-floor 127.0.0.1:18766
      wait_for_port 18766
      ramp "${FLOOR_RAMP:-100:100:2000}" --ws-url ws://127.0.0.1:18766/ws ;;
    pipecat)
      start_server "$venv/bin/python" benches/peers/pipecat_echo.py --port 18765
      wait_for_port 18765
      ramp "${PIPECAT_RAMP:-10:10:300}" --ws-url ws://127.0.0.1:18765/ws ;;
    *) echo "unknown peer $name (phone-agent, phone-agent-turns, floor, pipecat)"; exit 2 ;;
  esac
done

reports=()
for name in phone-agent phone-agent-turns floor pipecat; do
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
