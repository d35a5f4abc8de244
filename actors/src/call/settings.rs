//! How calls converse: turn-taking, barge-in and the lifecycle lines the agent says on its own.

use std::time::Duration;

use super::barge_in::BargeInSettings;

/// Turn-taking, barge-in and lifecycle settings, shared by every call.
#[derive(Debug, Clone)]
pub struct ConversationSettings {
    /// A final transcript with no end of turn after it ends the turn after this silence
    /// (`TURN_SILENCE_MS`; the recogniser's own endpointing uses the same value).
    pub turn_silence: Duration,
    /// Prepare the reply to a turn the recogniser says is probably over, and play it if the turn
    /// ends with those words (`SPECULATIVE_REPLIES`).
    pub speculate: bool,
    /// When the caller's speech interrupts the agent.
    pub barge_in: BargeInSettings,
    /// Silence (both sides quiet) before the agent checks in (`SILENCE_CHECKIN_S`; `None`: never).
    /// After two unanswered check-ins the agent says goodbye and hangs up.
    pub silence_checkin: Option<Duration>,
    /// The agent ends the call with a goodbye this long after it started (`MAX_CALL_DURATION`).
    pub max_duration: Option<Duration>,
    /// What the agent says on its own.
    pub lines: AgentLines,
}

impl Default for ConversationSettings {
    /// 600 ms turn silence, speculative replies, default barge-in, check-in after 8 s, 15 minutes
    /// at most.
    fn default() -> Self {
        Self {
            turn_silence: Duration::from_millis(600),
            speculate: true,
            barge_in: BargeInSettings::default(),
            silence_checkin: Some(Duration::from_secs(8)),
            max_duration: Some(Duration::from_secs(15 * 60)),
            lines: AgentLines::default(),
        }
    }
}

/// Lines the agent says on its own, outside the dialogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLines {
    /// After a silence.
    pub still_there: String,
    /// After the second unanswered check-in, before hanging up.
    pub no_answer_goodbye: String,
    /// When the call reaches its maximum duration, before hanging up.
    pub time_up_goodbye: String,
    /// When the dialogue asked to transfer the call and no transfer is possible.
    pub transfer_unavailable: String,
    /// When the call must end early (the server is shutting down), before hanging up.
    pub closing_goodbye: String,
}

impl Default for AgentLines {
    fn default() -> Self {
        Self {
            still_there: "Are you still there?".into(),
            no_answer_goodbye: "I haven't heard from you, so I'll hang up now. Goodbye!".into(),
            time_up_goodbye: "We've reached the time limit for this call. Thank you for calling. Goodbye!".into(),
            transfer_unavailable: "I'm sorry, I can't transfer calls right now. Is there anything else I can help you with?".into(),
            closing_goodbye: "I'm sorry, I have to end our call now. Please call back in a few minutes. Goodbye!".into(),
        }
    }
}

impl AgentLines {
    /// Every line, so engines can prepare their audio ahead of time.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.still_there,
            &self.no_answer_goodbye,
            &self.time_up_goodbye,
            &self.transfer_unavailable,
            &self.closing_goodbye,
        ]
    }
}
