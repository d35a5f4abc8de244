#!/usr/bin/env bash
# Soak: phone-agent (loopback engines, 2 s turns) under steady load for a long time, watching for
# leaks and drift. Back-to-back rounds of `phone-agent loadgen` (each call streams for the round,
# then hangs up and the next round's calls dial in); after each round, with no call up, the
# server's resident memory, file descriptors and threads are sampled from /proc, next to the
# round's latency. Writes target/soak/soak.csv and a plot (RSS and latency over time, SVG), and
# fails if a call failed or lost a frame, if descriptors or threads grew, if idle memory grew
# past 20 % (+ 2 MiB) of its level after the warm-up round, or if the last third's p99 is more
# than twice the first third's (+ 5 ms).
#
# Usage: scripts/soak.sh [--minutes M | --seconds S] [--calls N] [--round SECONDS] [--debug]
#                        [--plot FILE]
# Defaults: 30 minutes of 60 s rounds of 210 calls (70 % of the 300 real-time calls a loopback
# ramp with 2 s turns found on the 2-core development container, server on one core as here:
# `phone-agent loadgen --ramp 100:100:700 --duration 20s --turn-frames 100`; measure your
# machine's and pass --calls), release build, plot docs/soak.svg.
# scripts/test.sh runs a 60 s version on the debug build.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=1800 calls=210 round=60 profile=release plot=docs/soak.svg
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) seconds=$(($2 * 60)); shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --calls) calls=$2; shift 2 ;;
    --round) round=$2; shift 2 ;;
    --debug) profile=debug; shift ;;
    --plot) plot=$2; shift 2 ;;
    *) sed -n '2,16p' "$0" >&2; exit 2 ;;
  esac
done

if [ "$profile" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
bin=target/$profile/phone-agent
out=target/soak
mkdir -p "$out"
rm -f "$out"/round-*
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# The server on one core, the load on another, when there are two.
server_cpu=() load_cpu=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server_cpu=(taskset -c 1) load_cpu=(taskset -c 0)
fi

"${server_cpu[@]}" env ENGINES=loopback LOOPBACK_TURN_FRAMES=100 ADMISSION_LAG_MS=0 \
  DATA_DIR="$data" LISTEN_ADDR="127.0.0.1:$port" HTTP_WORKERS=1 RUST_LOG=warn \
  "$bin" >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
  kill -0 "$server" 2>/dev/null || { cat "$out/server.log"; exit 1; }
  sleep 0.2
done

# elapsed seconds, idle RSS (KiB), descriptors, threads: the server with no call up.
sample() {
  local rss threads fds
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server/status")
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$server/status")
  fds=$(find "/proc/$server/fd" -mindepth 1 -maxdepth 1 | wc -l)
  echo "$(($(date +%s) - start)),$rss,$fds,$threads"
}

start=$(date +%s)
echo "elapsed_s,idle_rss_kib,fds,threads,round,calls,failed,lost,p50_ms,p99_ms,busy_rss_kib" >"$out/soak.csv"
echo "$(sample),0,0,0,0,,," >>"$out/soak.csv"
echo "soak: $calls calls in rounds of ${round}s for ${seconds}s against $bin (pid $server)"
n=0
# A round starts only if it ends within the time given.
while [ $(($(date +%s) - start + round)) -le "$seconds" ]; do
  n=$((n + 1))
  "${load_cpu[@]}" "$bin" loadgen --url "http://127.0.0.1:$port" --data-dir "$data" \
    --calls "$calls" --duration "${round}s" --spread 2s --turn-frames 100 \
    --server-pid "$server" --json "$out/round-$n.json" >"$out/round-$n.txt" 2>&1 || true
  # The last round's calls close (and their actors stop) before the server is sampled.
  for _ in $(seq 100); do
    curl -s "http://127.0.0.1:$port/health" | grep -q '"live_calls":0' && break
    sleep 0.1
  done
  row=$(python3 - "$out/round-$n.json" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))["rounds"][0]
except (OSError, ValueError, KeyError, IndexError):
    print("0,1,0,,,"); sys.exit()
lost = r["sent"] - r["echoed"]
print(f'{r["calls"]},{r["failed"] + r.get("refused", 0)},{lost},'
      f'{r["latency_ms"]["p50"]},{r["latency_ms"]["p99"]},{r.get("rss_kib") or ""}')
EOF
  )
  line="$(sample),$n,$row"
  echo "$line" >>"$out/soak.csv"
  echo "soak: $line"
done
python3 scripts/soak_report.py "$out/soak.csv" "$plot"
