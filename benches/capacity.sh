#!/usr/bin/env bash
# Concurrent calls one core sustains with the embedded engines: the server pinned to core 0 with
# one recognition and one synthesis worker; K simulated callers (tests/data/conversation.txt, nine
# turns each) on the other cores. Prints voice-to-voice p50/p95 over every turn for each K, and the
# frames the server dropped. Usage: benches/capacity.sh [K...]   (default: 1 2 3 4)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/phone-agent
out=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$out"' EXIT
taskset -c 0 env STT_WORKERS=1 TTS_WORKERS=1 HTTP_WORKERS=1 LOG_FORMAT=json RUST_LOG=info \
  "$bin" >"$out/server.log" 2>&1 &
server=$!
until grep -q '"listening"' "$out/server.log" 2>/dev/null; do
  kill -0 "$server" 2>/dev/null || { cat "$out/server.log"; exit 1; }
  sleep 1
done
others="1-$(($(nproc) - 1))"
counts=("$@")
[ "${#counts[@]}" -gt 0 ] || counts=(1 2 3 4)
for k in "${counts[@]}"; do
  for i in $(seq "$k"); do
    taskset -c "$others" "$bin" call --script tests/data/conversation.txt >"$out/call-$k-$i.txt" 2>&1 &
  done
  wait $(jobs -p | grep -v "^$server$") 2>/dev/null || true
  cat "$out"/call-"$k"-*.txt | grep -o 'first audio [0-9]* ms' | awk '{print $3}' | sort -n >"$out/lat-$k"
  n=$(wc -l <"$out/lat-$k")
  p50=$(awk -v n="$n" 'NR==int((n-1)*0.5)+1' "$out/lat-$k")
  p95=$(awk -v n="$n" 'NR==int((n-1)*0.95+0.5)+1' "$out/lat-$k")
  dropped=$(grep '"call ended"' "$out/server.log" | grep -o '"frames_dropped":[0-9]*' | awk -F: '{s+=$2} END {print s+0}')
  replies=$(cat "$out"/call-"$k"-*.txt | grep -c '^agent' || true)
  echo "calls=$k turns=$n voice-to-voice p50=${p50}ms p95=${p95}ms no-reply=$(cat "$out"/call-"$k"-*.txt | grep -c 'no reply' || true) frames_dropped_total=$dropped"
done
