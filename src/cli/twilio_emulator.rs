//! `phone-agent twilio-emulator`: runs the local Twilio ([`crate::client::twilio_emulator`])
//! until a shutdown signal, and prints each call once it has ended: its statuses, its transfer,
//! Twilio's notices, and (when the callee speaks) the conversation as the embedded recogniser
//! heard the agent.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::client::caller::session::TimingArgs;
use crate::client::caller::turns::{CallerTurn, TurnArgs};
use crate::client::caller::{self, CallError, CallerEngines};
use crate::client::sim::{AuthTokenArgs, DEFAULT_ACCOUNT_SID};
use crate::client::twilio_emulator::observe::{CallView, Fault};
use crate::client::twilio_emulator::settings::{
    Account, Answer, ApiKey, CallbackOrder, Callee, Voice,
};
use crate::client::twilio_emulator::{EmulatorSettings, TwilioEmulator};
use crate::config::LogFormat;
use crate::redact::{mask_phone, Secret};
use crate::twilio::signature::DEV_TWILIO_AUTH_TOKEN_FILE;
use crate::{logging, server};

/// Options of `phone-agent twilio-emulator`.
#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    /// Where the emulated REST API listens (the server's TWILIO_API_BASE is http://this).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// The server's own address: webhooks, callbacks and streams go there, signed as written.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub agent: String,
    /// The account the REST API accepts (Basic auth user and the paths' AccountSid).
    #[arg(long, env = "TWILIO_ACCOUNT_SID", default_value = DEFAULT_ACCOUNT_SID)]
    pub account_sid: String,
    /// The auth token: the Basic auth password, and the key of the signatures sent.
    #[command(flatten)]
    pub auth: AuthTokenArgs,
    /// An API key sid (`SK…`) accepted in place of the account's credentials.
    #[arg(long, env = "TWILIO_API_KEY_SID", requires = "api_key_secret")]
    pub api_key_sid: Option<String>,
    /// The API key's secret.
    #[arg(long, env = "TWILIO_API_KEY_SECRET", hide_env_values = true)]
    pub api_key_secret: Option<String>,
    /// A number calls may come from (repeatable); any E.164 number when none is given.
    #[arg(long = "owned-number", value_name = "E164")]
    pub owned_numbers: Vec<String>,
    /// How the callee's phone answers.
    #[arg(long, value_enum, default_value = "human")]
    pub answer: Answer,
    /// How long the phone rings before it is answered.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub ring: Duration,
    /// What the callee says, one turn per agent reply.
    #[command(flatten)]
    pub turns: TurnArgs,
    /// A callee who says nothing (silence every 20 ms, marks echoed; needs no speech models).
    #[arg(long, conflicts_with_all = ["say", "wav", "script"])]
    pub silent: bool,
    /// When the callee speaks.
    #[command(flatten)]
    pub timing: TimingArgs,
    /// The callee hangs up this long after answering; otherwise they wait for the agent.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub hang_up_after: Option<Duration>,
    /// The order of status callbacks.
    #[arg(long, value_enum, default_value = "in-order")]
    pub callbacks: CallbackOrder,
    /// Answer the next request with this status (429, 500 or 503; repeatable, in order).
    #[arg(long = "fault", value_name = "STATUS")]
    pub faults: Vec<u16>,
    /// Where the embedded models are (the callee's voice, and the transcript of the agent).
    #[arg(long, env = "MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("the callee has nothing to say: give --say, --wav or --script, or --silent")]
    NoTurns,
    #[error(transparent)]
    Callee(#[from] CallError),
    #[error(transparent)]
    Emulator(#[from] crate::client::twilio_emulator::EmulatorError),
}

/// Runs the emulator until a shutdown signal.
pub fn run(args: EmulatorArgs) -> ExitCode {
    if let Err(error) = logging::init(LogFormat::Pretty) {
        eprintln!("phone-agent: {error}");
        return ExitCode::from(2);
    }
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("phone-agent twilio-emulator: {error}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: EmulatorArgs) -> Result<(), StartError> {
    let turns = if args.silent {
        Vec::new()
    } else {
        caller::turns_of(&args.turns).map_err(|error| match error {
            CallError::NoTurns => StartError::NoTurns,
            other => other.into(),
        })?
    };
    let mut engines = if args.silent {
        None
    } else {
        Some(CallerEngines::load(args.models_dir.clone()).map_err(CallError::from)?)
    };
    let voice = match &mut engines {
        None => Voice::Silent,
        Some(engines) => Voice::Turns(Arc::new(
            turns
                .iter()
                .map(|turn| engines.audio(turn))
                .collect::<Result<_, _>>()?,
        )),
    };
    let settings = settings(&args, voice);
    actix_rt::System::new().block_on(async move {
        let emulator = TwilioEmulator::start(settings).await?;
        for status in &args.faults {
            emulator.inject(Fault {
                status: *status,
                count: 1,
                retry_after: matches!(status, 429 | 503).then_some(1),
            });
        }
        eprintln!(
            "Twilio emulator on {url}: start the server with TWILIO_API_BASE={url}",
            url = emulator.base_url
        );
        let mut printed = HashSet::new();
        let shutdown = server::shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            let ended = emulator.wait_for(|calls| {
                let ended: Vec<CallView> = calls
                    .iter()
                    .filter(|call| call.is_ended() && !printed.contains(&call.record.sid))
                    .cloned()
                    .collect();
                (!ended.is_empty()).then_some(ended)
            });
            tokio::select! {
                () = &mut shutdown => break,
                ended = ended => for call in ended {
                    printed.insert(call.record.sid.clone());
                    print_call(&call, &turns, engines.as_mut());
                },
            }
        }
        emulator.stop().await;
        Ok(())
    })
}

/// The auth token given, or the server's development token, waited for if the server has not
/// written it yet (the emulator may well start first).
fn auth_token(auth: &AuthTokenArgs) -> String {
    let mut told = false;
    loop {
        if let Some(token) = auth.token() {
            return token;
        }
        if !told {
            eprintln!(
                "no TWILIO_AUTH_TOKEN: waiting for the server to write {} (or give --auth-token)",
                auth.data_dir.join(DEV_TWILIO_AUTH_TOKEN_FILE).display()
            );
            told = true;
        }
        std::thread::sleep(TOKEN_POLL_PERIOD);
    }
}

/// How often the development token's file is looked for.
const TOKEN_POLL_PERIOD: Duration = Duration::from_millis(500);

fn settings(args: &EmulatorArgs, voice: Voice) -> EmulatorSettings {
    let token = auth_token(&args.auth);
    let mut settings = EmulatorSettings::new(args.agent.clone(), &token);
    settings.listen = args.listen;
    settings.account = Account {
        account_sid: args.account_sid.clone(),
        auth_token: Secret::new(token),
        api_key: args
            .api_key_sid
            .clone()
            .zip(args.api_key_secret.clone())
            .map(|(sid, secret)| ApiKey {
                sid,
                secret: Secret::new(secret),
            }),
    };
    settings.owned_numbers = (!args.owned_numbers.is_empty()).then(|| args.owned_numbers.clone());
    let default = Callee::default();
    settings.callee = Callee {
        answer: args.answer,
        voice,
        timing: crate::client::caller::session::Timing {
            stay_on_line: true,
            hang_up_after: args.hang_up_after,
            ..args.timing.timing()
        },
        ring: args.ring,
        detection: default.detection,
    };
    settings.callback_order = args.callbacks;
    settings
}

/// Prints an ended call: its statuses, transfer and notices, then what was said.
fn print_call(call: &CallView, turns: &[CallerTurn], engines: Option<&mut CallerEngines>) {
    let record = &call.record;
    let statuses: Vec<&str> = call
        .statuses()
        .iter()
        .map(|status| status.as_str())
        .collect();
    println!(
        "call {} to {}: {} ({} s)",
        record.sid,
        mask_phone(&record.to),
        statuses.join(" → "),
        record.duration.unwrap_or(0)
    );
    if let Some(answered_by) = &record.answered_by {
        println!("  answered by: {answered_by}");
    }
    if let Some(number) = &record.transfer_to {
        println!("  transferred to {}", mask_phone(number));
    }
    for notice in &record.notices {
        println!("  notice: {notice}");
    }
    for delivery in &call.deliveries {
        match &delivery.answer {
            Ok(status) if (200..300).contains(status) => {}
            Ok(status) => println!("  {} answered {status}", delivery.url),
            Err(error) => println!("  {} not reached: {error}", delivery.url),
        }
    }
    if let (Some(engines), Some(recording)) = (engines, &call.conversation) {
        caller::print(&caller::report(turns, recording, engines));
    }
}
