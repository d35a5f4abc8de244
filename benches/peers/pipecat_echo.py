"""Minimal pipecat echo peer speaking the Twilio Media Streams protocol.

A FastAPI app with a WebSocket route ``/ws``, wired the way pipecat's Twilio
examples are: read Twilio's ``connected`` and ``start`` messages, then run
``transport.input() -> Echo -> transport.output()`` over a
``FastAPIWebsocketTransport`` with a ``TwilioFrameSerializer``. Echo turns
every ``InputAudioRawFrame`` into an ``OutputAudioRawFrame``. Both sides run
at 8 kHz, so the mu-law -> PCM -> mu-law round trip is not resampled and the
payload bytes come back unchanged. The output transport sends
``audio_out_10ms_chunks`` x 10 ms per message; its default, 4, holds every other
frame back 20 ms waiting for the next and never sends an odd last frame, so this
peer sets 2 (20 ms, Twilio's own frame): pipecat at its best for this test.
No VAD, RTVI, metrics, idle timeout or Twilio REST calls (auto_hang_up off).

Written for pipecat-ai 1.14.0. Start it with:

    target/peers/pipecat-venv/bin/python benches/peers/pipecat_echo.py \
        [--host 127.0.0.1] [--port 8765]
"""

import argparse
import json
import sys

from loguru import logger

logger.remove()  # before importing pipecat: silences its DEBUG/INFO output
logger.add(sys.stderr, level="WARNING")

import uvicorn  # noqa: E402
from fastapi import FastAPI, WebSocket  # noqa: E402

from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.serializers.twilio import TwilioFrameSerializer  # noqa: E402
from pipecat.transports.websocket.fastapi import (  # noqa: E402
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.workers.runner import WorkerRunner  # noqa: E402

RATE = 8000


class Echo(FrameProcessor):
    """Sends input audio straight back out; passes every other frame on."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            frame = OutputAudioRawFrame(
                audio=frame.audio, sample_rate=frame.sample_rate, num_channels=frame.num_channels
            )
        await self.push_frame(frame, direction)


app = FastAPI()


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    await websocket.receive_text()  # {"event": "connected", ...}
    start = json.loads(await websocket.receive_text())["start"]

    serializer = TwilioFrameSerializer(
        stream_sid=start["streamSid"],
        call_sid=start.get("callSid"),
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            audio_in_sample_rate=RATE,
            audio_out_sample_rate=RATE,
            add_wav_header=False,
            serializer=serializer,
            allowed_origins=[],
            audio_out_10ms_chunks=2,
        ),
    )
    worker = PipelineWorker(
        Pipeline([transport.input(), Echo(), transport.output()]),
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
        enable_rtvi=False,
        idle_timeout_secs=None,
    )

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport, websocket):
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level="warning")


if __name__ == "__main__":
    main()
