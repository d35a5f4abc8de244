// phone-agent console: the softphone's audio processor (an AudioWorklet, in an 8 kHz context).
// One node, so one clock: its input is the microphone, its output the loudspeaker. It hands the
// microphone's samples to the page (which frames, encodes and sends them), plays the agent's
// audio queued by the page, reports each mark once the audio before it has been played (the
// server learns what the caller heard), drops the queue on `clear`, records both sides
// sample-aligned, and measures voice-to-voice latency: from the caller's last loud sample to the
// first audible sample of the agent's answer (the agent speaking again after a pause in which the
// caller started speaking and stopped; answers to a caller who talked over the agent, or who is
// still talking, are not measured).
'use strict';

// Loudness (absolute sample value) above which audio counts as voice.
const LOUD = 0.02;
// An answer starts after at least this much quiet output, and speech after this much quiet input
// (samples at 8 kHz: 300 ms).
const ANSWER_GAP = 2400;
// The caller's voice counts for an answer only if it ended at most this long before (10 s).
const VOICE_WINDOW = 80000;

class SoftphoneProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = []; // Float32Array chunks and {mark} entries, in order
    this.offset = 0; // read position in queue[0] when it is audio
    this.clock = 0; // samples processed
    this.lastVoice = -Infinity; // clock of the caller's last loud sample
    this.speechStart = -Infinity; // clock of the first loud sample after a pause of the caller's
    this.lastOutput = -Infinity; // clock of the agent's last audible sample
    this.quietOutput = ANSWER_GAP; // samples of quiet output so far
    this.said = []; // recorded microphone chunks
    this.heard = []; // recorded loudspeaker chunks
    this.port.onmessage = ({ data }) => this.command(data);
  }

  command(data) {
    if (data.audio) this.queue.push(data.audio);
    else if (data.mark !== undefined) this.queue.push({ mark: data.mark });
    else if (data.clear) {
      // Twilio answers a `clear` with the marks it dropped: so does the softphone.
      const dropped = this.queue.filter((entry) => entry.mark !== undefined).map((e) => e.mark);
      this.queue = [];
      this.offset = 0;
      this.port.postMessage({ cleared: dropped });
    } else if (data.recording) {
      this.port.postMessage({ said: this.said, heard: this.heard });
    }
  }

  // Fills `out` from the queue, reporting marks as playback reaches them.
  play(out) {
    let written = 0;
    while (this.queue.length > 0) {
      const head = this.queue[0];
      if (head.mark !== undefined) {
        this.port.postMessage({ played: head.mark });
        this.queue.shift();
        continue;
      }
      if (written === out.length) break;
      const count = Math.min(out.length - written, head.length - this.offset);
      out.set(head.subarray(this.offset, this.offset + count), written);
      written += count;
      this.offset += count;
      if (this.offset === head.length) {
        this.queue.shift();
        this.offset = 0;
      }
    }
  }

  process(inputs, outputs) {
    const input = inputs[0]?.[0];
    const output = outputs[0][0];
    const said = input ? Float32Array.from(input) : new Float32Array(output.length);
    this.play(output);
    for (let i = 0; i < said.length; i++) {
      if (Math.abs(said[i]) <= LOUD) continue;
      const at = this.clock + i;
      if (at - this.lastVoice >= ANSWER_GAP) this.speechStart = at;
      this.lastVoice = at;
    }
    for (let i = 0; i < output.length; i++) {
      if (Math.abs(output[i]) <= LOUD) {
        this.quietOutput++;
        continue;
      }
      // An answer: the agent speaks again after a pause in which the caller started speaking (not
      // the agent resuming after the caller talked over it).
      const at = this.clock + i;
      const quiet = at - this.lastVoice;
      const answered = this.speechStart > this.lastOutput && quiet > 0 && quiet <= VOICE_WINDOW;
      if (this.quietOutput >= ANSWER_GAP && answered) {
        this.port.postMessage({ latencyMs: (quiet * 1000) / sampleRate });
      }
      this.quietOutput = 0;
      this.lastOutput = at;
    }
    this.said.push(said);
    this.heard.push(Float32Array.from(output));
    this.port.postMessage({ said });
    this.clock += output.length;
    return true;
  }
}

registerProcessor('softphone', SoftphoneProcessor);
