//! The simulated call in real time: caller audio out at one 20 ms frame per 20 ms (line silence
//! between turns, as a real stream carries), agent audio in, played out on a modelled playhead so
//! marks are echoed when Twilio would echo them, and both sides recorded on one timeline. The same
//! loop is the Twilio emulator's callee: with no turns it is a silent phone that echoes marks.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use phone_agent_actors::audio::{mulaw, FRAME_BYTES};
use tokio::time::{self, Instant, MissedTickBehavior};

use crate::client::sim::{MediaConnection, Received, SimError};

const FRAME_PERIOD: Duration = Duration::from_millis(20);
const RATE_HZ: u64 = 8_000;
/// WebSocket close code of a call ended on purpose.
const NORMAL_CLOSE: u16 = 1000;

/// When the caller speaks next.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Agent silence (after its audio has played) that counts as the end of its reply.
    pub reply_gap: Duration,
    /// Longest wait for a reply before the caller goes on.
    pub reply_timeout: Duration,
    /// Speak the next turn this long after the agent's reply starts, interrupting it (not in the
    /// greeting: the agent plays it whole).
    pub barge_in_after: Option<Duration>,
    /// After the last turn's reply, stay on the line (silent) until the agent ends the call,
    /// instead of hanging up.
    pub stay_on_line: bool,
    /// Hang up this long after the call started, whatever is left to say.
    pub hang_up_after: Option<Duration>,
}

/// The caller's timing options (flattened into the client tools' options).
#[derive(Debug, Clone, clap::Args)]
pub struct TimingArgs {
    /// Start the next turn this many ms after the agent's reply starts, interrupting it (replies
    /// only: the greeting, which carries the AI disclosure, plays whole).
    #[arg(long, value_name = "MS")]
    pub barge_in_after: Option<u64>,
    /// Agent silence that ends its reply.
    #[arg(long, default_value = "1500ms", value_parser = humantime::parse_duration)]
    pub reply_gap: Duration,
    /// Longest wait for a reply.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub reply_timeout: Duration,
}

impl TimingArgs {
    /// The timing of a caller who hangs up after the last reply.
    pub fn timing(&self) -> Timing {
        Timing {
            reply_gap: self.reply_gap,
            reply_timeout: self.reply_timeout,
            barge_in_after: self.barge_in_after.map(Duration::from_millis),
            stay_on_line: false,
            hang_up_after: None,
        }
    }
}

/// What the agent said after one caller turn (or at the start of the call).
#[derive(Debug, Clone, Default)]
pub struct AgentReply {
    /// Call time at which its first audio arrived.
    pub first_audio_at: Option<Duration>,
    /// Its audio, 8 kHz mu-law, as far as it played.
    pub audio: Vec<u8>,
    /// `clear` messages received while it played (barge-in).
    pub cleared: usize,
}

/// One caller turn and the agent's answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Call time at which the caller's audio ended.
    pub ended_at: Duration,
    /// What followed.
    pub reply: AgentReply,
}

impl Exchange {
    /// End of the caller's audio → first audio of the agent's reply.
    pub fn latency(&self) -> Option<Duration> {
        self.reply
            .first_audio_at
            .map(|first| first.saturating_sub(self.ended_at))
    }
}

/// The whole call.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// What the agent said before the caller's first turn.
    pub greeting: AgentReply,
    /// The caller's turns, in order.
    pub exchanges: Vec<Exchange>,
    /// Caller side, 8 kHz mu-law from the call's start.
    pub caller_track: Vec<u8>,
    /// Agent side, as played, on the same timeline.
    pub agent_track: Vec<u8>,
    /// Whether the agent ended the call (the server closed the stream normally).
    pub agent_hung_up: bool,
}

enum Phase {
    /// Waiting for the agent's reply to finish (or for the moment to barge in).
    Listening { since: Instant },
    /// Sending turn `index` from byte `at`.
    Speaking { index: usize, at: usize },
}

/// Talks through `turns` (8 kHz mu-law each) on an open, started connection, until the last
/// reply is over (or, staying on the line, until the agent ends the call), the time to hang up
/// comes, or `hang_up` completes; hanging up sends `stop` and closes the socket, as Twilio does.
pub async fn talk(
    connection: &mut MediaConnection,
    turns: &[Vec<u8>],
    timing: Timing,
    hang_up: impl Future<Output = ()>,
) -> Result<Recording, SimError> {
    let start = Instant::now();
    let hang_up_at = timing.hang_up_after.map(|after| start + after);
    tokio::pin!(hang_up);
    let mut recording = Recording::default();
    let mut player = Player::new(start);
    let mut phase = Phase::Listening { since: start };
    let mut next_turn = 0;
    let mut ticks = time::interval(FRAME_PERIOD);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    loop {
        let mark_due = player.next_mark_due();
        tokio::select! {
            _ = &mut hang_up => break,
            _ = ticks.tick() => {
                let now = Instant::now();
                if hang_up_at.is_some_and(|at| now >= at) {
                    break;
                }
                if let Phase::Listening { since } = phase {
                    let reply = recording.exchanges.last().map_or(&recording.greeting, |e| &e.reply);
                    // Staying on the line, the last reply is never over: the agent ends the call.
                    let more = next_turn < turns.len() || !timing.stay_on_line;
                    let greeting = recording.exchanges.is_empty();
                    if more && reply_is_over(reply, greeting, &player, since, now, start, timing) {
                        if next_turn == turns.len() {
                            break;
                        }
                        phase = Phase::Speaking { index: next_turn, at: 0 };
                        next_turn += 1;
                    }
                }
                let frame = match &mut phase {
                    Phase::Speaking { index, at } => {
                        let audio = &turns[*index];
                        let end = (*at + FRAME_BYTES).min(audio.len());
                        let mut frame = audio[*at..end].to_vec();
                        frame.resize(FRAME_BYTES, mulaw::SILENCE);
                        *at = end;
                        if end == audio.len() {
                            recording.exchanges.push(Exchange {
                                ended_at: offset(start, now) + FRAME_PERIOD,
                                reply: AgentReply::default(),
                            });
                            phase = Phase::Listening { since: now };
                        }
                        frame
                    }
                    Phase::Listening { .. } => vec![mulaw::SILENCE; FRAME_BYTES],
                };
                recording.caller_track.extend_from_slice(&frame);
                connection.send_media(&frame).await?;
            }
            received = connection.recv() => {
                let reply = match recording.exchanges.last_mut() {
                    Some(exchange) => &mut exchange.reply,
                    None => &mut recording.greeting,
                };
                match received {
                    Some(Received::Media(audio)) => {
                        reply.first_audio_at.get_or_insert(offset(start, Instant::now()));
                        reply.audio.extend_from_slice(&audio);
                        player.play(&audio, &mut recording.agent_track);
                    }
                    Some(Received::Mark(name)) => player.mark(name),
                    Some(Received::Clear) => {
                        reply.cleared += 1;
                        for name in player.clear(&mut recording.agent_track) {
                            connection.send_mark(&name).await?;
                        }
                    }
                    Some(Received::Close { code: Some(NORMAL_CLOSE), .. }) => {
                        recording.agent_hung_up = true;
                        break;
                    }
                    Some(Received::Close { code, reason }) => {
                        return Err(SimError::WebSocket(format!("server closed the call: {code:?} {reason}")));
                    }
                    Some(Received::Other(_)) => {}
                    None => return Err(SimError::WebSocket("connection lost".into())),
                }
            }
            _ = time::sleep_until(mark_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))), if mark_due.is_some() => {
                if let Some(name) = player.take_due_mark(Instant::now()) {
                    connection.send_mark(&name).await?;
                }
            }
        }
    }
    if !recording.agent_hung_up {
        connection.send_stop().await?;
        let _ = connection.close().await;
    }
    let len = recording
        .caller_track
        .len()
        .max(recording.agent_track.len());
    recording.caller_track.resize(len, mulaw::SILENCE);
    recording.agent_track.resize(len, mulaw::SILENCE);
    Ok(recording)
}

/// Whether the caller may speak again: the reply has played and the line stayed quiet for the
/// gap, or the barge-in moment came (never in the `greeting`, which the agent plays whole: it
/// carries the AI disclosure), or nothing came at all.
fn reply_is_over(
    reply: &AgentReply,
    greeting: bool,
    player: &Player,
    since: Instant,
    now: Instant,
    start: Instant,
    timing: Timing,
) -> bool {
    match reply.first_audio_at {
        None => now.duration_since(since) >= timing.reply_timeout,
        Some(first) => {
            let barge_in = !greeting
                && timing
                    .barge_in_after
                    .is_some_and(|after| offset(start, now) >= first + after);
            barge_in || now >= player.playhead + timing.reply_gap
        }
    }
}

fn offset(start: Instant, at: Instant) -> Duration {
    at.duration_since(start)
}

/// The caller's phone: plays agent audio on a playhead, echoes marks when it passes them.
struct Player {
    start: Instant,
    playhead: Instant,
    marks: VecDeque<(Instant, String)>,
}

impl Player {
    fn new(start: Instant) -> Self {
        Self {
            start,
            playhead: start,
            marks: VecDeque::new(),
        }
    }

    fn play(&mut self, audio: &[u8], track: &mut Vec<u8>) {
        let begin = self.playhead.max(Instant::now());
        let at = (offset(self.start, begin).as_micros() as u64 * RATE_HZ / 1_000_000) as usize;
        if track.len() < at {
            track.resize(at, mulaw::SILENCE);
        }
        track.truncate(at);
        track.extend_from_slice(audio);
        self.playhead = begin + Duration::from_micros(audio.len() as u64 * 1_000_000 / RATE_HZ);
    }

    fn mark(&mut self, name: String) {
        self.marks.push_back((self.playhead, name));
    }

    fn next_mark_due(&self) -> Option<Instant> {
        self.marks.front().map(|(due, _)| *due)
    }

    fn take_due_mark(&mut self, now: Instant) -> Option<String> {
        if self.marks.front().is_some_and(|(due, _)| *due <= now) {
            self.marks.pop_front().map(|(_, name)| name)
        } else {
            None
        }
    }

    /// `clear`: unplayed audio is dropped and every pending mark is echoed at once, as Twilio does.
    fn clear(&mut self, track: &mut Vec<u8>) -> Vec<String> {
        let now = Instant::now();
        let at = (offset(self.start, now).as_micros() as u64 * RATE_HZ / 1_000_000) as usize;
        track.truncate(at);
        self.playhead = now;
        self.marks.drain(..).map(|(_, name)| name).collect()
    }
}
