// phone-agent console: the softphone. "Talk to the agent" opens a call from this browser's
// microphone to the agent through the same path as a Twilio call: `POST /api/softphone`, then a
// WebSocket speaking the Twilio Media Streams protocol (20 ms frames of 8 kHz mu-law, base64 in
// JSON; marks echoed once their audio has played; `clear` drops queued audio, so barge-in works).
// The audio runs in an 8 kHz AudioContext (the browser resamples the microphone and the
// loudspeaker) through one AudioWorklet (softphone-worklet.js). Loaded before console.js, which
// wires it to the page.
'use strict';

const FRAME_SAMPLES = 160; // 20 ms at 8 kHz

// G.711 mu-law, as Twilio sends and expects it.
function muLawEncode(sample) {
  const BIAS = 0x84;
  const CLIP = 32635;
  let pcm = Math.max(-32768, Math.min(32767, Math.round(sample * 32767)));
  const sign = pcm < 0 ? 0x80 : 0;
  if (pcm < 0) pcm = -pcm;
  pcm = Math.min(pcm, CLIP) + BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (pcm & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (pcm >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

function muLawDecode(byte) {
  const u = ~byte & 0xff;
  const exponent = (u >> 4) & 0x07;
  const magnitude = ((((u & 0x0f) << 3) + 0x84) << exponent) - 0x84;
  return ((u & 0x80) ? -magnitude : magnitude) / 32768;
}

const base64Of = (bytes) => btoa(String.fromCharCode(...bytes));
const bytesOf = (base64) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));

function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) =>
    b.toString(16).padStart(2, '0')).join('');
}

// A stereo 16-bit WAV at 8 kHz: the caller on the left, the agent on the right.
function stereoWav(left, right) {
  const frames = Math.min(left.length, right.length);
  const view = new DataView(new ArrayBuffer(44 + frames * 4));
  const ascii = (at, s) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  ascii(0, 'RIFF');
  view.setUint32(4, 36 + frames * 4, true);
  ascii(8, 'WAVEfmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 2, true);
  view.setUint32(24, 8000, true);
  view.setUint32(28, 8000 * 4, true);
  view.setUint16(32, 4, true);
  view.setUint16(34, 16, true);
  ascii(36, 'data');
  view.setUint32(40, frames * 4, true);
  const pcm = (x) => Math.max(-32768, Math.min(32767, Math.round(x * 32767)));
  for (let i = 0; i < frames; i++) {
    view.setInt16(44 + i * 4, pcm(left[i]), true);
    view.setInt16(46 + i * 4, pcm(right[i]), true);
  }
  return new Blob([view.buffer], { type: 'audio/wav' });
}

const joined = (chunks) => {
  const all = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
};

class Softphone {
  // `open` places the call (resolves to the API's answer); `onChange` is told of every change of
  // state (`connecting`, `live`, `ended`), latency figure and recording.
  constructor({ open, onChange }) {
    this.open = open;
    this.onChange = onChange;
    this.state = 'idle';
    this.latencies = [];
    this.recording = null;
  }

  set(state, detail = '') {
    this.state = state;
    this.detail = detail;
    this.onChange(this);
  }

  async start() {
    if (this.state === 'connecting' || this.state === 'live') return;
    this.latencies = [];
    this.recording = null;
    this.set('connecting');
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      this.context = new AudioContext({ sampleRate: 8000, latencyHint: 'interactive' });
      await this.context.audioWorklet.addModule('softphone-worklet.js');
      this.node = new AudioWorkletNode(this.context, 'softphone', { outputChannelCount: [1] });
      this.context.createMediaStreamSource(this.stream).connect(this.node);
      this.node.connect(this.context.destination);
      this.node.port.onmessage = ({ data }) => this.fromAudio(data);
      const call = await this.open();
      this.callId = call.call_id;
      this.connect(call);
    } catch (error) {
      this.teardown();
      this.set('ended', error.message || String(error));
    }
  }

  connect(call) {
    const url = new URL(call.media_path, location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('token', call.stream_token);
    this.streamSid = `MZ${randomHex(16)}`;
    this.sequence = 0;
    this.chunk = 0;
    this.pending = [];
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => {
      this.send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
      this.send({
        event: 'start',
        start: {
          streamSid: this.streamSid,
          callSid: call.call_sid,
          tracks: ['inbound'],
          customParameters: { token: call.stream_token },
          mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
        },
      });
      this.set('live');
    };
    socket.onmessage = ({ data }) => this.fromServer(JSON.parse(data));
    socket.onclose = ({ code }) => this.finish(code === 1000 ? '' : `closed (${code})`);
  }

  send(message) {
    if (this.socket?.readyState !== WebSocket.OPEN) return;
    this.sequence += 1;
    const stamped = { ...message, sequenceNumber: String(this.sequence) };
    if (message.event !== 'connected') stamped.streamSid = this.streamSid;
    this.socket.send(JSON.stringify(stamped));
  }

  fromServer(message) {
    switch (message.event) {
      case 'media': {
        const bytes = bytesOf(message.media.payload);
        this.node.port.postMessage({ audio: Float32Array.from(bytes, muLawDecode) });
        break;
      }
      case 'mark':
        this.node.port.postMessage({ mark: message.mark.name });
        break;
      case 'clear':
        this.node.port.postMessage({ clear: true });
        break;
      default:
        break;
    }
  }

  fromAudio(data) {
    if (data.said && this.state === 'live') {
      this.pending.push(...data.said);
      while (this.pending.length >= FRAME_SAMPLES) {
        const frame = this.pending.splice(0, FRAME_SAMPLES).map(muLawEncode);
        this.chunk += 1;
        this.send({
          event: 'media',
          media: {
            track: 'inbound',
            chunk: String(this.chunk),
            timestamp: String((this.chunk - 1) * 20),
            payload: base64Of(frame),
          },
        });
      }
    } else if (data.played !== undefined) {
      this.send({ event: 'mark', mark: { name: data.played } });
    } else if (data.cleared) {
      for (const name of data.cleared) this.send({ event: 'mark', mark: { name } });
    } else if (data.latencyMs !== undefined) {
      this.latencies.push(data.latencyMs);
      this.onChange(this);
    } else if (data.heard) {
      this.recording = stereoWav(joined(data.said), joined(data.heard));
      this.onChange(this);
      this.teardown();
    }
  }

  hangUp() {
    if (this.state !== 'live') return;
    this.send({ event: 'stop', stop: { callSid: this.callId } });
    this.socket.close(1000);
  }

  // The call is over: keep the recording, then let go of the microphone and the audio.
  finish(detail) {
    if (this.state === 'ended') return;
    this.set('ended', detail);
    if (this.node) this.node.port.postMessage({ recording: true });
    else this.teardown();
  }

  teardown() {
    this.stream?.getTracks().forEach((track) => track.stop());
    this.context?.close();
    this.stream = null;
    this.context = null;
    this.node = null;
  }

  // The p-th percentile of the measured voice-to-voice latencies (ms), or null.
  percentile(p) {
    if (this.latencies.length === 0) return null;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  }
}
