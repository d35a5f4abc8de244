#!/usr/bin/env bash
# Checks the container deployment (README.md, "Deployment: container"):
#   - compose.yaml is valid (`docker compose config -q`, with placeholder secrets), when the
#     Compose plugin is installed;
#   - the image builds (`docker build -t phone-agent .`), runs with a read-only root filesystem and
#     a data volume as the non-root user, answers /health with 200, turns healthy by its own
#     HEALTHCHECK, loaded the models' folded copies baked into it, and exits 0 on `docker stop`.
# The container, its volume and its published port are removed afterwards (the image stays).
# Without Docker, or without a daemon to talk to, it says SKIPPED and exits 0.
#   IMAGE=phone-agent:dev scripts/container.sh     # another tag
set -euo pipefail
cd "$(dirname "$0")/.."

image="${IMAGE:-phone-agent}"

if ! command -v docker >/dev/null 2>&1; then
  echo "SKIPPED: docker is not installed"
  exit 0
fi

if docker compose version >/dev/null 2>&1; then
  # Placeholders for the variables compose.yaml requires; nothing is started.
  DATA_KEY="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" POSTGRES_PASSWORD=placeholder \
    TWILIO_AUTH_TOKEN=placeholder docker compose -f compose.yaml config -q
  echo "container: compose.yaml is valid"
else
  echo "container: compose.yaml not checked (no docker compose plugin)"
fi

if ! docker info >/dev/null 2>&1; then
  echo "SKIPPED: no Docker daemon (docker info failed); the image was not built"
  exit 0
fi

# BuildKit (the Dockerfile uses heredocs and cache mounts): the default since Docker 23, and an
# error naming the missing buildx plugin rather than a confusing legacy-builder failure otherwise.
DOCKER_BUILDKIT=1 docker build -t "$image" .

name="phone-agent-check-$$"
volume="phone-agent-check-data-$$"
cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker volume rm "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT

fail() {
  echo "container: $*" >&2
  docker logs "$name" 2>&1 | tail -n 40 >&2 || true
  exit 1
}

# The status code of GET /health at $1 (host:port), or nothing when nothing answers.
health_status() {
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$1/health" || true
  else
    (
      exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || exit 0
      printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
      read -r -t 5 _ status _ <&3 && echo "$status"
    ) 2>/dev/null || true
  fi
}

docker volume create "$volume" >/dev/null
# As compose.yaml runs it: read-only root, /data on a volume, /tmp in memory. Port 8080 is
# published on a free loopback port.
docker run -d --name "$name" --read-only --tmpfs /tmp -v "$volume:/data" \
  -p 127.0.0.1::8080 "$image" >/dev/null
address=$(docker port "$name" 8080/tcp | head -n 1)
[ -n "$address" ] || fail "port 8080 is not published"

# Loading and warming up the models takes seconds to a minute or two, depending on the machine.
status=""
for _ in $(seq 300); do
  [ "$(docker inspect -f '{{.State.Running}}' "$name")" = true ] || fail "the server exited while starting"
  status=$(health_status "$address")
  [ "$status" = 200 ] && break
  sleep 1
done
[ "$status" = 200 ] || fail "GET /health did not answer 200 (last: ${status:-nothing})"
echo "container: GET /health answered 200 on $address"

# The image's own HEALTHCHECK (its first probe runs 10 s after start).
health=""
for _ in $(seq 60); do
  health=$(docker inspect -f '{{.State.Health.Status}}' "$name")
  [ "$health" = healthy ] && break
  sleep 1
done
[ "$health" = healthy ] || fail "HEALTHCHECK status is ${health:-unknown}, not healthy"
echo "container: HEALTHCHECK healthy"

[ "$(docker exec "$name" id -u)" = 10001 ] || fail "the server does not run as uid 10001"
docker exec "$name" test -s /data/data.key || fail "nothing written to the /data volume"
if docker logs "$name" 2>&1 | grep -q "no folded copy"; then
  fail "the models' folded copies baked into the image were not used"
fi
echo "container: runs as uid 10001, writes /data, uses the baked-in folded models"

# SIGTERM drains (no calls here) and exits 0, well within DRAIN_TIMEOUT.
docker stop -t 40 "$name" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || fail "exit code $code after docker stop"
echo "container: stopped cleanly (exit 0)"
echo "container: ok"
