//! Configuration from the environment (and `.env`), validated once at start-up.
//!
//! Every variable is documented with its default in `.env.example`. An invalid value stops
//! start-up with a [`ConfigError`] naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use phone_agent_actors::call::barge_in::{Backchannels, BargeInSettings, DEFAULT_BACKCHANNELS};
use phone_agent_actors::call::settings::{AgentLines, ConversationSettings};
use phone_agent_actors::media::MediaSettings;
use phone_agent_actors::runtime::supervision::RestartPolicy;

use crate::engines::embedded::stt::{Endpointing, ModelTurns, TurnDetection};
use crate::engines::embedded::{EmbeddedSettings, VoiceChoice};
use crate::webhooks::dispatch::DispatchSettings;

mod calls;
mod outbound_webhooks;
mod providers;
mod security;
mod twilio_rest;
mod vars;

pub use calls::CallManagementSettings;
use providers::Stages;
pub use providers::{DialogueChoice, HearingChoice, SpeechChoice};
pub use security::{SecuritySettings, StorageSettings, TlsFiles, TwilioSettings};
pub use twilio_rest::{TwilioCredentials, TwilioRestSettings, DEFAULT_API_BASE, LOCAL_ACCOUNT_SID};
use vars::Vars;

/// A variable with an unusable value.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {message}")]
pub struct ConfigError {
    /// The variable's name.
    pub variable: &'static str,
    /// What is wrong and what is expected.
    pub message: String,
}

/// Which engines calls use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// An engine per stage (`STT`, `LLM`, `TTS`): the offline ones by default (Moonshine
    /// recognition, Piper or flite synthesis, the scripted agent; `scripts/setup.sh` installs their
    /// models), cloud ones where chosen, each backed by its embedded engine.
    Stages,
    /// Echo: the caller's audio passes through the Transcriber, Responder and Synthesizer and comes
    /// back. For measuring the framework itself, in tests and benchmarks.
    Loopback,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The validated configuration of `phone-agent serve`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds (`LISTEN_ADDR`).
    pub listen_addr: SocketAddr,
    /// Host (and port) Twilio reaches us at, without scheme (`PUBLIC_HOST`).
    pub public_host: String,
    /// Engine set (`ENGINES`).
    pub engines: EngineChoice,
    /// The embedded engines' models, voice, workers and endpointing (`MODELS_DIR`, `TTS_VOICE`,
    /// `STT_WORKERS`, `TTS_WORKERS`, `TURN_SILENCE_MS`, `STT_PARTIAL_INTERVAL_MS`).
    pub embedded: EmbeddedSettings,
    /// The scripted agent's definition (`AGENT_FILE`).
    pub agent_file: PathBuf,
    /// What hears the caller (`STT`, `DEEPGRAM_*`).
    pub hearing: HearingChoice,
    /// What decides what the agent says (`LLM`, `LLM_*`).
    pub dialogue: DialogueChoice,
    /// What speaks (`TTS`, `CARTESIA_*`).
    pub speech: SpeechChoice,
    /// Failed requests in a row after which a call gives a cloud stage (speech recognition,
    /// synthesis) to its embedded engine (`PROVIDER_MAX_FAILURES`).
    pub provider_max_failures: u32,
    /// First wait before a call reconnects to a cloud provider; doubles per failure, at most
    /// 5 s, with full jitter (`PROVIDER_RECONNECT_BACKOFF`).
    pub provider_reconnect_backoff: Duration,
    /// Turn-taking, barge-in and lifecycle (`TURN_SILENCE_MS`, `BARGE_IN*`, `SILENCE_CHECKIN_S`,
    /// `MAX_CALL_DURATION`).
    pub conversation: ConversationSettings,
    /// Log format (`LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Media stream timing and limits (`PLAYBACK_LEAD_MS`, `MEDIA_IDLE_TIMEOUT`,
    /// `MEDIA_PING_INTERVAL`, `MEDIA_MAX_MESSAGE_BYTES`, `MEDIA_START_TIMEOUT`).
    pub media: MediaSettings,
    /// Longest a single socket write may take before the socket counts as dead; also the
    /// kernel's limit for unacknowledged data on the connection (`MEDIA_WRITE_TIMEOUT`).
    pub media_write_timeout: Duration,
    /// How long a stream token minted by the voice webhook stays valid (`STREAM_TOKEN_TTL`).
    pub stream_token_ttl: Duration,
    /// How long an instance's claim on its calls lasts unless renewed (every third of it): an
    /// instance that stopped renewing has its calls marked interrupted this long after
    /// (`CALL_LEASE`).
    pub call_lease: Duration,
    /// How long live calls may go on after a shutdown signal (`DRAIN_TIMEOUT`).
    pub drain_timeout: Duration,
    /// HTTP worker threads; calls run on the worker that accepted them (`HTTP_WORKERS`).
    pub http_workers: usize,
    /// How long a request's body may take to arrive after its headers (`HTTP_BODY_TIMEOUT`).
    pub http_body_timeout: Duration,
    /// Most calls carried at once, streaming or about to; past it the voice webhook answers with
    /// an apology and a hang-up (`MAX_CALLS`; 0: no limit).
    pub max_calls: Option<usize>,
    /// Frames per turn of the loopback engines (`LOOPBACK_TURN_FRAMES`; 1: every frame a turn).
    pub loopback_turn_frames: usize,
    /// How far behind real time the calls' inbound audio may be handled (90th percentile, last
    /// second) before the voice webhook refuses new calls the same way (`ADMISSION_LAG_MS`; 0:
    /// never).
    pub admission_lag: Option<Duration>,
    /// How a call's failing engine sessions are restarted (`ENGINE_RESTART_BACKOFF`,
    /// `ENGINE_RESTART_MAX_BACKOFF`, `ENGINE_MAX_RESTARTS`).
    pub restart: RestartPolicy,
    /// Storage, Twilio validation, authentication, rate limits, proxy trust and TLS.
    pub security: SecuritySettings,
    /// Twilio's REST API, for placing, transferring and hanging up calls; `None` without
    /// `TWILIO_ACCOUNT_SID` (`TWILIO_API_BASE`, `TWILIO_REST_TIMEOUT`, `TWILIO_API_KEY_SID`,
    /// `TWILIO_API_KEY_SECRET`, and `TWILIO_AUTH_TOKEN` shared with the signature checks).
    pub twilio_rest: Option<TwilioRestSettings>,
    /// Placing, scheduling, transferring and keeping calls.
    pub calls: CallManagementSettings,
    /// Outbound webhooks and follow-up emails (`WEBHOOK_*`, `RESEND_*`, `FOLLOW_UP_*`).
    pub webhooks: DispatchSettings,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&lookup);
        let listen_addr: SocketAddr = vars.parse(
            "LISTEN_ADDR",
            "127.0.0.1:8080",
            "a socket address such as 0.0.0.0:8080",
        )?;
        let public_host = vars
            .get("PUBLIC_HOST")
            .unwrap_or_else(|| listen_addr.to_string());
        validate_host(&public_host)?;
        let preset = vars.get("ENGINES").unwrap_or_else(|| "embedded".into());
        let (engines, cloud) = match preset.as_str() {
            "embedded" => (EngineChoice::Stages, false),
            "cloud" => (EngineChoice::Stages, true),
            "loopback" => (EngineChoice::Loopback, false),
            other => {
                return Err(vars.invalid(
                    "ENGINES",
                    format!("unknown engine set {other:?} (expected: embedded, cloud or loopback)"),
                ))
            }
        };
        let log_format = match vars.get("LOG_FORMAT").as_deref().unwrap_or("pretty") {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(vars.invalid(
                    "LOG_FORMAT",
                    format!("{other:?} (expected: pretty or json)"),
                ))
            }
        };
        let playback_lead = vars.millis("PLAYBACK_LEAD_MS", "100", 0..=2_000)?;
        let media = MediaSettings {
            playback_lead,
            idle_timeout: vars.duration("MEDIA_IDLE_TIMEOUT", "15s")?,
            ping_interval: vars.duration("MEDIA_PING_INTERVAL", "5s")?,
            start_timeout: vars.duration("MEDIA_START_TIMEOUT", "5s")?,
            max_message_bytes: vars.bounded(
                "MEDIA_MAX_MESSAGE_BYTES",
                "65536",
                1_024..=16 << 20,
            )?,
        };
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let http_workers = vars.bounded("HTTP_WORKERS", &cpus.to_string(), 1..=256)?;
        let engine_workers = cpus.min(4).to_string();
        let mut embedded = EmbeddedSettings {
            models_dir: PathBuf::from(vars.get("MODELS_DIR").unwrap_or_else(|| "models".into())),
            voice: voice(&vars)?,
            stt_workers: vars.bounded("STT_WORKERS", &engine_workers, 1..=64)?,
            tts_workers: vars.bounded("TTS_WORKERS", &engine_workers, 1..=64)?,
            endpointing: Endpointing {
                turn_silence: vars.millis("TURN_SILENCE_MS", "600", 100..=5_000)?,
                partial_interval: vars.millis("STT_PARTIAL_INTERVAL_MS", "1000", 0..=10_000)?,
                detection: turn_detection(&vars)?,
            },
        };
        let conversation = conversation(&vars, engines, embedded.endpointing.turn_silence)?;
        let agent_file = PathBuf::from(
            vars.get("AGENT_FILE")
                .unwrap_or_else(|| "agents/default.toml".into()),
        );
        let media_write_timeout = vars.duration("MEDIA_WRITE_TIMEOUT", "5s")?;
        let stream_token_ttl = vars.duration("STREAM_TOKEN_TTL", "60s")?;
        let call_lease = vars.duration("CALL_LEASE", "30s")?;
        if call_lease < Duration::from_millis(300) {
            return Err(vars.invalid("CALL_LEASE", format!("{call_lease:?} (at least 300ms)")));
        }
        let drain_timeout = vars.duration("DRAIN_TIMEOUT", "30s")?;
        let http_body_timeout = vars.duration("HTTP_BODY_TIMEOUT", "10s")?;
        let restart = RestartPolicy {
            initial_backoff: vars.duration("ENGINE_RESTART_BACKOFF", "200ms")?,
            max_backoff: vars.duration("ENGINE_RESTART_MAX_BACKOFF", "5s")?,
            max_failures: vars.bounded("ENGINE_MAX_RESTARTS", "5", 0..=1_000)?,
            window: Duration::from_secs(60),
        };
        let security = SecuritySettings::from_vars(&vars)?;
        let twilio_rest =
            TwilioRestSettings::from_vars(&vars, security.twilio.auth_token.as_ref())?;
        // In the order of a turn, so the first missing key named is the first stage's.
        let stages = Stages { engines, cloud };
        let hearing = providers::hearing(&vars, stages)?;
        let dialogue = providers::dialogue(&vars, stages)?;
        let speech = providers::speech(&vars, stages, &mut embedded.voice)?;
        Ok(Self {
            listen_addr,
            public_host,
            hearing,
            dialogue,
            speech,
            provider_max_failures: vars.bounded("PROVIDER_MAX_FAILURES", "3", 1..=100)?,
            provider_reconnect_backoff: vars.duration("PROVIDER_RECONNECT_BACKOFF", "250ms")?,
            engines,
            embedded,
            agent_file,
            conversation,
            log_format,
            media,
            media_write_timeout,
            stream_token_ttl,
            call_lease,
            drain_timeout,
            http_workers,
            http_body_timeout,
            max_calls: Some(vars.bounded("MAX_CALLS", "0", 0..=1_000_000)?).filter(|&n| n > 0),
            loopback_turn_frames: vars.bounded("LOOPBACK_TURN_FRAMES", "1", 1..=500)?,
            admission_lag: Some(vars.millis("ADMISSION_LAG_MS", "25", 0..=10_000)?)
                .filter(|lag| !lag.is_zero()),
            restart,
            twilio_rest,
            calls: CallManagementSettings::from_vars(&vars)?,
            webhooks: outbound_webhooks::from_vars(&vars, security.production)?,
            security,
        })
    }
}

/// A host name or address with an optional port: what may follow `wss://` in the TwiML.
fn validate_host(host: &str) -> Result<(), ConfigError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    if host.is_empty() || !host.chars().all(allowed) {
        return Err(ConfigError {
            variable: "PUBLIC_HOST",
            message: format!("{host:?} is not a host[:port] (no scheme, no path)"),
        });
    }
    Ok(())
}

/// Turn-taking, barge-in and lifecycle settings. Barge-in and the lifecycle timers are on by
/// default, except with the loopback engines: they make every 20 ms frame a turn (each would
/// interrupt the last echo), and they cannot say the lifecycle lines (their "speech" is audio).
fn conversation<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
    engines: EngineChoice,
    turn_silence: Duration,
) -> Result<ConversationSettings, ConfigError> {
    let loopback = engines == EngineChoice::Loopback;
    let (barge_in_default, checkin_default, max_default) = if loopback {
        ("off", "0", "off")
    } else {
        ("on", "8", "15m")
    };
    let enabled = vars.switch("BARGE_IN", barge_in_default)?;
    let backchannels = vars
        .get("BARGE_IN_BACKCHANNELS")
        .unwrap_or_else(|| DEFAULT_BACKCHANNELS.to_owned());
    let barge_in = BargeInSettings {
        enabled,
        min_words: vars.bounded("BARGE_IN_MIN_WORDS", "2", 1..=20)?,
        min_speech: vars.millis("BARGE_IN_MIN_SPEECH_MS", "600", 100..=5_000)?,
        resume_after: vars.millis("BARGE_IN_RESUME_MS", "1000", 200..=10_000)?,
        backchannels: Backchannels::parse(&backchannels),
    };
    let checkin: u64 = vars.bounded("SILENCE_CHECKIN_S", checkin_default, 0..=600)?;
    let max_duration = match vars
        .get("MAX_CALL_DURATION")
        .as_deref()
        .unwrap_or(max_default)
    {
        "off" => None,
        _ => {
            let max = vars.duration("MAX_CALL_DURATION", max_default)?;
            if max > Duration::from_secs(4 * 3600) {
                return Err(vars.invalid(
                    "MAX_CALL_DURATION",
                    format!("{max:?} (at most 4h, Twilio's own limit, or off)"),
                ));
            }
            Some(max)
        }
    };
    Ok(ConversationSettings {
        turn_silence,
        speculate: vars.switch("SPECULATIVE_REPLIES", "on")?,
        barge_in,
        silence_checkin: (checkin > 0).then(|| Duration::from_secs(checkin)),
        max_duration,
        lines: AgentLines::default(),
    })
}

/// `TURN_DETECTION` (`smart-turn` or `silence`) and the model's `TURN_*` settings.
fn turn_detection<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
) -> Result<TurnDetection, ConfigError> {
    match vars
        .get("TURN_DETECTION")
        .as_deref()
        .unwrap_or("smart-turn")
    {
        "silence" => Ok(TurnDetection::Silence),
        "smart-turn" => {
            let defaults = ModelTurns::default();
            let first_check = vars.millis("TURN_CHECK_MS", "200", 64..=2_000)?;
            let max_silence = vars.millis("TURN_MAX_SILENCE_MS", "2000", 300..=10_000)?;
            if max_silence <= first_check {
                return Err(vars.invalid(
                    "TURN_MAX_SILENCE_MS",
                    format!("{max_silence:?} (must be longer than TURN_CHECK_MS)"),
                ));
            }
            let threshold = match vars.get("TURN_COMPLETE_THRESHOLD") {
                None => defaults.threshold,
                Some(text) => text
                    .parse::<f32>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| {
                        vars.invalid(
                            "TURN_COMPLETE_THRESHOLD",
                            format!("{text:?} (expected a probability from 0 to 1)"),
                        )
                    })?,
            };
            Ok(TurnDetection::Model(ModelTurns {
                first_check,
                recheck: vars.millis("TURN_RECHECK_MS", "0", 0..=5_000)?,
                max_silence,
                threshold,
            }))
        }
        other => Err(vars.invalid(
            "TURN_DETECTION",
            format!("{other:?} (expected smart-turn or silence)"),
        )),
    }
}

/// `TTS_VOICE`: `piper`, or `flite:<voice>` (e.g. `flite:kal`, natively 8 kHz).
fn voice<F: Fn(&str) -> Option<String>>(vars: &Vars<'_, F>) -> Result<VoiceChoice, ConfigError> {
    let value = vars.get("TTS_VOICE").unwrap_or_else(|| "piper".into());
    if value == "piper" {
        return Ok(VoiceChoice::Piper);
    }
    match value.strip_prefix("flite:") {
        Some(name)
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Ok(VoiceChoice::Flite(name.to_owned()))
        }
        _ => Err(vars.invalid(
            "TTS_VOICE",
            format!("{value:?} (expected piper or flite:<voice>, e.g. flite:kal)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn the_llm_is_chosen_with_its_key_or_start_up_fails_naming_it() {
        assert!(matches!(
            config(&[]).unwrap().dialogue,
            DialogueChoice::Script
        ));
        let missing = config(&[("LLM", "openai")]).unwrap_err();
        assert_eq!(missing.variable, "LLM_API_KEY");
        let groq = config(&[("LLM", "openai"), ("LLM_API_KEY", "gsk_x")]).unwrap();
        let DialogueChoice::Llm(settings) = groq.dialogue else {
            panic!("LLM=openai")
        };
        assert_eq!(settings.base_url, "https://api.groq.com/openai/v1");
        assert_eq!(settings.model, "llama-3.3-70b-versatile");
        assert!(!format!("{settings:?}").contains("gsk_x"));
        let local = [
            ("LLM", "openai"),
            ("LLM_BASE_URL", "http://127.0.0.1:11434/v1/"),
        ];
        let DialogueChoice::Llm(settings) = config(&local).unwrap().dialogue else {
            panic!("a local server needs no key")
        };
        assert_eq!(settings.base_url, "http://127.0.0.1:11434/v1");
        for (pairs, variable) in [
            (&[("LLM", "gpt")][..], "LLM"),
            (&[("LLM", "openai"), ("ENGINES", "loopback")][..], "LLM"),
            (
                &[("LLM", "openai"), ("LLM_BASE_URL", "api.groq.com")][..],
                "LLM_BASE_URL",
            ),
        ] {
            assert_eq!(config(pairs).unwrap_err().variable, variable, "{pairs:?}");
        }
    }

    #[test]
    fn the_voice_is_chosen_per_stage_and_a_cloud_voice_needs_its_key() {
        let piper = config(&[]).unwrap();
        assert!(matches!(piper.speech, SpeechChoice::Embedded));
        assert_eq!(piper.embedded.voice, VoiceChoice::Piper);
        let flite = config(&[("TTS", "flite")]).unwrap();
        assert_eq!(flite.embedded.voice, VoiceChoice::Flite("kal".into()));
        let slt = config(&[("TTS", "flite"), ("TTS_VOICE", "flite:slt")]).unwrap();
        assert_eq!(slt.embedded.voice, VoiceChoice::Flite("slt".into()));
        let missing = config(&[("TTS", "cartesia")]).unwrap_err();
        assert_eq!(missing.variable, "CARTESIA_API_KEY");
        let cartesia = config(&[("TTS", "cartesia"), ("CARTESIA_API_KEY", "sk_car_x")]).unwrap();
        let SpeechChoice::Cartesia(settings) = cartesia.speech else {
            panic!("TTS=cartesia")
        };
        assert_eq!(settings.base_url, "wss://api.cartesia.ai");
        assert!(!format!("{settings:?}").contains("sk_car_x"));
        assert_eq!(
            cartesia.embedded.voice,
            VoiceChoice::Piper,
            "the fallback voice"
        );
        for (pairs, variable) in [
            (&[("TTS", "polly")][..], "TTS"),
            (&[("TTS", "piper"), ("ENGINES", "loopback")][..], "TTS"),
            (
                &[
                    ("TTS", "cartesia"),
                    ("CARTESIA_API_KEY", "k"),
                    ("CARTESIA_BASE_URL", "https://x"),
                ][..],
                "CARTESIA_BASE_URL",
            ),
        ] {
            assert_eq!(config(pairs).unwrap_err().variable, variable, "{pairs:?}");
        }
    }

    #[test]
    fn deepgram_hears_with_its_key_and_the_cloud_preset_picks_every_cloud_stage() {
        assert!(matches!(
            config(&[]).unwrap().hearing,
            HearingChoice::Embedded
        ));
        assert_eq!(
            config(&[("STT", "deepgram")]).unwrap_err().variable,
            "DEEPGRAM_API_KEY"
        );
        let deepgram = config(&[("STT", "deepgram"), ("DEEPGRAM_API_KEY", "dg_x")]).unwrap();
        let HearingChoice::Deepgram(settings) = deepgram.hearing else {
            panic!("STT=deepgram")
        };
        assert_eq!(settings.model, "nova-3");
        assert!(!format!("{settings:?}").contains("dg_x"));
        let short = [
            ("STT", "deepgram"),
            ("DEEPGRAM_API_KEY", "k"),
            ("DEEPGRAM_UTTERANCE_END_MS", "500"),
        ];
        assert_eq!(
            config(&short).unwrap_err().variable,
            "DEEPGRAM_UTTERANCE_END_MS"
        );
        // ENGINES=cloud: each stage's key is required, the first missing one named.
        assert_eq!(
            config(&[("ENGINES", "cloud")]).unwrap_err().variable,
            "DEEPGRAM_API_KEY"
        );
        let keys = [
            ("ENGINES", "cloud"),
            ("DEEPGRAM_API_KEY", "dg"),
            ("LLM_API_KEY", "gsk"),
            ("CARTESIA_API_KEY", "car"),
        ];
        let cloud = config(&keys).unwrap();
        assert!(matches!(cloud.hearing, HearingChoice::Deepgram(_)));
        assert!(matches!(cloud.dialogue, DialogueChoice::Llm(_)));
        assert!(matches!(cloud.speech, SpeechChoice::Cartesia(_)));
        let mixed = config(&[
            ("ENGINES", "cloud"),
            ("STT", "embedded"),
            ("LLM", "script"),
            ("CARTESIA_API_KEY", "car"),
        ])
        .unwrap();
        assert!(matches!(mixed.hearing, HearingChoice::Embedded));
        assert!(matches!(mixed.dialogue, DialogueChoice::Script));
        assert!(matches!(mixed.speech, SpeechChoice::Cartesia(_)));
        assert_eq!(
            config(&[("ENGINES", "loopback"), ("STT", "deepgram")])
                .unwrap_err()
                .variable,
            "STT"
        );
    }

    #[test]
    fn defaults() {
        let config = config(&[]).unwrap();
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.public_host, "127.0.0.1:8080");
        assert_eq!(config.engines, EngineChoice::Stages);
        assert_eq!(config.embedded.voice, VoiceChoice::Piper);
        assert_eq!(config.embedded.models_dir, PathBuf::from("models"));
        assert_eq!(
            config.embedded.endpointing.turn_silence,
            Duration::from_millis(600)
        );
        assert_eq!(config.media.playback_lead, Duration::from_millis(100));
        assert_eq!(config.media.idle_timeout, Duration::from_secs(15));
        assert_eq!(config.media.max_message_bytes, 65_536);
        assert_eq!(config.drain_timeout, Duration::from_secs(30));
        let conversation = &config.conversation;
        assert!(conversation.barge_in.enabled);
        assert_eq!(conversation.barge_in.min_words, 2);
        assert!(conversation.barge_in.backchannels.covers("uh-huh"));
        assert_eq!(conversation.silence_checkin, Some(Duration::from_secs(8)));
        assert_eq!(conversation.max_duration, Some(Duration::from_secs(900)));
        let calls = &config.calls;
        assert!(calls.default_from.is_none() && calls.transfer_to.is_none());
        assert!(calls.calling_hours.is_none());
        assert_eq!(calls.default_timezone, jiff::tz::TimeZone::UTC);
        assert_eq!(calls.schedule_grace, Duration::from_secs(900));
        assert_eq!(calls.retention, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(calls.metadata_max_bytes, 4096);
    }

    #[test]
    fn call_management_reads_numbers_hours_and_zones() {
        let config = config(&[
            ("TWILIO_FROM", "+14155550100"),
            ("TRANSFER_TO", "+14155550199"),
            ("CALLING_HOURS", "08:00-21:00"),
            ("DEFAULT_TIMEZONE", "America/New_York"),
            ("RETENTION_DAYS", "0"),
        ])
        .unwrap();
        let calls = config.calls;
        assert_eq!(calls.default_from.unwrap().as_str(), "+14155550100");
        assert_eq!(calls.transfer_to.unwrap().as_str(), "+14155550199");
        assert!(calls.calling_hours.is_some());
        assert_eq!(calls.default_timezone.iana_name(), Some("America/New_York"));
        assert_eq!(calls.retention, None);
    }

    #[test]
    fn loopback_turns_barge_in_and_lifecycle_timers_off_and_others_can() {
        let loopback = config(&[("ENGINES", "loopback")]).unwrap().conversation;
        assert!(!loopback.barge_in.enabled);
        assert_eq!(loopback.silence_checkin, None);
        assert_eq!(loopback.max_duration, None);
        let quiet = config(&[("SILENCE_CHECKIN_S", "0"), ("MAX_CALL_DURATION", "off")]).unwrap();
        assert_eq!(quiet.conversation.silence_checkin, None);
        assert_eq!(quiet.conversation.max_duration, None);
    }

    #[test]
    fn the_turn_model_decides_by_default_and_silence_can() {
        let model = config(&[]).unwrap().embedded.endpointing.detection;
        assert_eq!(model, TurnDetection::Model(ModelTurns::default()));
        let tuned = config(&[("TURN_CHECK_MS", "250"), ("TURN_COMPLETE_THRESHOLD", "0.7")]);
        let TurnDetection::Model(tuned) = tuned.unwrap().embedded.endpointing.detection else {
            panic!("the model");
        };
        assert_eq!(tuned.first_check, Duration::from_millis(250));
        assert!((tuned.threshold - 0.7).abs() < 1e-6);
        let silence = config(&[("TURN_DETECTION", "silence")]).unwrap();
        assert_eq!(
            silence.embedded.endpointing.detection,
            TurnDetection::Silence
        );
        assert!(
            silence.conversation.speculate,
            "replies are prepared by default"
        );
        let off = config(&[("SPECULATIVE_REPLIES", "off")]).unwrap();
        assert!(!off.conversation.speculate);
    }

    #[test]
    fn errors_name_the_variable() {
        let cases = [
            ("LISTEN_ADDR", "localhost"),
            ("PUBLIC_HOST", "https://example.com/x"),
            ("ENGINES", "magic"),
            ("TTS_VOICE", "flite:../x"),
            ("TTS_VOICE", "espeak"),
            ("TURN_SILENCE_MS", "20"),
            ("TURN_DETECTION", "vibes"),
            ("TURN_COMPLETE_THRESHOLD", "1.5"),
            ("TURN_MAX_SILENCE_MS", "200"),
            ("TURN_RECHECK_MS", "-5"),
            ("LOG_FORMAT", "xml"),
            ("MEDIA_IDLE_TIMEOUT", "soon"),
            ("MEDIA_IDLE_TIMEOUT", "0s"),
            ("PLAYBACK_LEAD_MS", "-1"),
            ("MEDIA_MAX_MESSAGE_BYTES", "10"),
            ("HTTP_WORKERS", "0"),
            ("MEDIA_START_TIMEOUT", "never"),
            ("BARGE_IN", "maybe"),
            ("SPECULATIVE_REPLIES", "sometimes"),
            ("WEBHOOK_SECRET", "short"),
            ("SVIX_WEBHOOK_SECRET", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("BARGE_IN_MIN_WORDS", "0"),
            ("BARGE_IN_MIN_SPEECH_MS", "50"),
            ("SILENCE_CHECKIN_S", "-1"),
            ("MAX_CALL_DURATION", "5h"),
            ("MAX_CALL_DURATION", "never"),
            ("APP_ENV", "staging"),
            ("DATABASE_URL", "mysql://db/x"),
            ("DATA_KEY", "c2hvcnQ="),
            (
                "DATA_KEY_PREVIOUS",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,c2hvcnQ=",
            ),
            ("TWILIO_VALIDATE", "maybe"),
            ("TRUST_PROXY", "yes please"),
            ("RATE_LIMIT_API_READ", "lots"),
            ("RATE_LIMIT_TWILIO", "0/s"),
            ("RATE_LIMIT_TWILIO", "4000000000/s"),
            ("AUTH_LOCKOUT_MAX", "1000000000000s"),
            ("RATE_LIMIT_BLOCK_MAX", "31d"),
            ("WEBHOOK_RETRY_WINDOW", "100years"),
            ("IP_ALLOW_LIST", "10.0.0.0/99"),
            ("IP_DENY_LIST", "example.com"),
            ("AUTH_LOCKOUT_MAX", "1s"),
            ("AUTH_LOCKOUT_FAILURES", "0"),
            ("RATE_LIMIT_BLOCK", "never"),
            ("TWILIO_API_BASE", "api.twilio.com"),
            ("TWILIO_API_BASE", "ftp://api.twilio.com"),
            ("TWILIO_API_BASE", "https://api.twilio.com?x=1"),
            ("TWILIO_API_BASE", "https://user:secret@api.twilio.com"),
            ("TWILIO_REST_TIMEOUT", "soon"),
            ("TWILIO_REST_TIMEOUT", "10m"),
            ("TWILIO_ACCOUNT_SID", "AC123"),
            ("TWILIO_ACCOUNT_SID", "SK0123456789abcdef0123456789abcdef"),
            ("TWILIO_FROM", "4155550100"),
            ("TRANSFER_TO", "+1 415 555 0100"),
            ("CALLING_HOURS", "8am-9pm"),
            ("DEFAULT_TIMEZONE", "Mars/Olympus_Mons"),
            ("SCHEDULE_GRACE", "later"),
            ("RETENTION_DAYS", "-1"),
            ("CALL_METADATA_MAX_BYTES", "1000000"),
        ];
        for (variable, value) in cases {
            let error = config(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable, "{value}");
            assert!(error
                .to_string()
                .starts_with(&format!("invalid {variable}")));
        }
    }

    #[test]
    fn env_example_is_valid_and_states_the_defaults() {
        let example = include_str!("../../.env.example");
        let pairs: Vec<(&str, &str)> = example
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .collect();
        assert!(
            pairs.len() >= 19,
            "every defaulted variable is set in .env.example"
        );
        let from_example = config(&pairs).expect(".env.example is valid");
        assert_eq!(
            format!("{from_example:?}"),
            format!("{:?}", config(&[]).unwrap())
        );
    }

    #[test]
    fn production_needs_a_twilio_auth_token_unless_validation_is_off() {
        let error = config(&[("APP_ENV", "production")]).unwrap_err();
        assert_eq!(error.variable, "TWILIO_AUTH_TOKEN");
        let production =
            config(&[("APP_ENV", "production"), ("TWILIO_AUTH_TOKEN", "abc")]).unwrap();
        assert!(production.security.production);
        assert!(config(&[("APP_ENV", "production"), ("TWILIO_VALIDATE", "false")]).is_ok());
        assert_eq!(
            config(&[("TLS_CERT", "c.pem")]).unwrap_err().variable,
            "TLS_KEY"
        );
    }

    #[test]
    fn secrets_never_print() {
        let config = config(&[
            ("TWILIO_AUTH_TOKEN", "twilio-secret"),
            ("DATABASE_URL", "postgres://u:db-secret@h/d"),
            ("DATA_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            (
                "DATA_KEY_PREVIOUS",
                "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=",
            ),
            ("WEBHOOK_SECRET", "webhook-secret-1234"),
            (
                "SVIX_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ])
        .unwrap();
        let printed = format!("{config:?}");
        for secret in [
            "twilio-secret",
            "db-secret",
            "AAAAAAAA",
            "BBBBBBBB",
            "webhook-secret",
            "MfKQ9r8G",
        ] {
            assert!(!printed.contains(secret), "{secret}");
        }
    }

    const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
    const API_KEY_SID: &str = "SK0123456789abcdef0123456789abcdef";

    #[test]
    fn the_rest_client_is_off_without_an_account_sid() {
        let config = config(&[("TWILIO_AUTH_TOKEN", "token")]).unwrap();
        assert!(config.twilio_rest.is_none());
    }

    #[test]
    fn the_rest_client_reuses_the_auth_token_with_defaults() {
        let config = config(&[
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", "token"),
        ])
        .unwrap();
        let rest = config.twilio_rest.unwrap();
        assert_eq!(rest.account_sid, ACCOUNT_SID);
        assert_eq!(rest.api_base, "https://api.twilio.com");
        assert_eq!(rest.timeout, Duration::from_secs(10));
        let (user, password) = rest.credentials.basic(&rest.account_sid).unwrap();
        assert_eq!((user, password.expose()), (ACCOUNT_SID, "token"));
    }

    #[test]
    fn a_local_emulator_alone_gets_its_account_and_the_development_token() {
        let base = ("TWILIO_API_BASE", "http://127.0.0.1:8090");
        let rest = config(&[base]).unwrap().twilio_rest.unwrap();
        assert_eq!(rest.account_sid, LOCAL_ACCOUNT_SID);
        assert!(matches!(rest.credentials, TwilioCredentials::Generated));
        let rest = config(&[base, ("TWILIO_AUTH_TOKEN", "token")])
            .unwrap()
            .twilio_rest
            .unwrap();
        let (user, password) = rest.credentials.basic(&rest.account_sid).unwrap();
        assert_eq!((user, password.expose()), (LOCAL_ACCOUNT_SID, "token"));
        assert!(
            config(&[]).unwrap().twilio_rest.is_none(),
            "Twilio itself needs an account"
        );
    }

    #[test]
    fn an_api_key_wins_over_the_auth_token() {
        let config = config(&[
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", "token"),
            ("TWILIO_API_KEY_SID", API_KEY_SID),
            ("TWILIO_API_KEY_SECRET", "key-secret"),
            ("TWILIO_API_BASE", "http://127.0.0.1:9000/"),
            ("TWILIO_REST_TIMEOUT", "3s"),
        ])
        .unwrap();
        let rest = config.twilio_rest.unwrap();
        let (user, password) = rest.credentials.basic(&rest.account_sid).unwrap();
        assert_eq!((user, password.expose()), (API_KEY_SID, "key-secret"));
        assert_eq!(rest.api_base, "http://127.0.0.1:9000");
        assert_eq!(rest.timeout, Duration::from_secs(3));
    }

    #[test]
    fn rest_credentials_must_be_complete() {
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[("TWILIO_ACCOUNT_SID", ACCOUNT_SID)], "TWILIO_AUTH_TOKEN"),
            (
                &[
                    ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
                    ("TWILIO_API_KEY_SID", API_KEY_SID),
                ],
                "TWILIO_API_KEY_SECRET",
            ),
            (
                &[
                    ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
                    ("TWILIO_API_KEY_SECRET", "key-secret"),
                ],
                "TWILIO_API_KEY_SID",
            ),
            (
                &[
                    ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
                    ("TWILIO_API_KEY_SID", "SK123"),
                    ("TWILIO_API_KEY_SECRET", "key-secret"),
                ],
                "TWILIO_API_KEY_SID",
            ),
            (
                &[
                    ("TWILIO_API_KEY_SID", API_KEY_SID),
                    ("TWILIO_API_KEY_SECRET", "key-secret"),
                ],
                "TWILIO_ACCOUNT_SID",
            ),
        ];
        for (pairs, variable) in cases {
            assert_eq!(config(pairs).unwrap_err().variable, variable, "{pairs:?}");
        }
    }

    #[test]
    fn rest_secrets_never_print() {
        let settings = config(&[
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", "twilio-secret"),
            ("TWILIO_API_KEY_SID", API_KEY_SID),
            ("TWILIO_API_KEY_SECRET", "key-secret"),
        ])
        .unwrap();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("twilio-secret") && !printed.contains("key-secret"));
        let error = config(&[("TWILIO_ACCOUNT_SID", "my-auth-token-by-mistake")])
            .unwrap_err()
            .to_string();
        assert!(!error.contains("my-auth-token"), "{error}");
    }

    #[test]
    fn durations_accept_units() {
        let config = config(&[("DRAIN_TIMEOUT", "2m"), ("MEDIA_IDLE_TIMEOUT", "500ms")]).unwrap();
        assert_eq!(config.drain_timeout, Duration::from_secs(120));
        assert_eq!(config.media.idle_timeout, Duration::from_millis(500));
    }
}
