#!/usr/bin/env python3
"""Writes tests/data/smart_turn_reference.json: Smart Turn v3.2's input features and output for two
fixed clips, computed by the reference preprocessing that ships with the model (pipecat-ai 1.14.0's
`_whisper_features.py` and `local_smart_turn_v3.py`) and ONNX Runtime. The Rust implementation is
tested against these values (tests/it/smart_turn.rs).

The clips are made with integer arithmetic only (a 400 Hz triangle under a ramp envelope, plus a
linear-congruential noise), so the Rust test rebuilds them bit for bit.

Run from the repository root, after scripts/setup-models.sh, in a Python with numpy and
onnxruntime (e.g. `python3 -m venv /tmp/v && /tmp/v/bin/pip install numpy==2.1.3
onnxruntime==1.32.0`), giving the unpacked `_whisper_features.py` of the pipecat-ai 1.14.0 wheel:

    /tmp/v/bin/python scripts/smart-turn-reference.py path/to/_whisper_features.py
"""

import importlib.util
import json
import sys

import numpy as np
import onnxruntime as ort

RATE = 16_000
WINDOW = 8 * RATE
# Frames whose 80 bins are kept in the fixture: every 32nd, and the last three.
FRAMES = list(range(0, 800, 32)) + [797, 798, 799]


def clip(samples: int) -> np.ndarray:
    """The fixture clip, as int16 samples."""
    state = 12345
    out = np.empty(samples, dtype=np.int16)
    for n in range(samples):
        state = (state * 1103515245 + 12345) % 2**31
        noise = (state >> 16) % 2001 - 1000
        phase = n % 40
        triangle = (phase if phase < 20 else 40 - phase) * 800 - 8000
        envelope = min(n, samples - n, 4000)
        out[n] = triangle * envelope // 4000 + noise
    return out


def last_window(audio: np.ndarray) -> np.ndarray:
    """The last 8 s, zero-padded at the start (local_smart_turn_v3.py)."""
    if len(audio) > WINDOW:
        return audio[-WINDOW:]
    return np.pad(audio, (WINDOW - len(audio), 0), mode="constant", constant_values=0)


def main() -> None:
    spec = importlib.util.spec_from_file_location("whisper_features", sys.argv[1])
    features_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(features_module)
    session = ort.InferenceSession("models/smart-turn/smart-turn-v3.2-cpu.onnx")
    cases = []
    for samples in (24_000, 136_000):
        audio = clip(samples).astype(np.float32) / 32768.0
        features = features_module.compute_whisper_log_mel_features(
            last_window(audio), do_normalize=True
        )
        (probability,) = session.run(None, {"input_features": features[None, :, :]})
        cases.append(
            {
                "samples": samples,
                "frames": FRAMES,
                "features": [[round(float(v), 5) for v in features[:, f]] for f in FRAMES],
                "probability": round(float(probability.reshape(-1)[0]), 6),
            }
        )
    with open("tests/data/smart_turn_reference.json", "w") as out:
        json.dump({"cases": cases}, out)
        out.write("\n")


if __name__ == "__main__":
    main()
