//! The command line: `phone-agent [serve]` runs the server ([`serve`]); `call` and `loadgen` act
//! as Twilio ([`crate::client::caller`], [`crate::client::loadgen`]); `twilio-emulator` stands in
//! for Twilio's REST API and calls ([`twilio_emulator`]); `token` manages API tokens ([`token`]);
//! `rekey` re-seals stored data under a new data key ([`rekey`]).

pub mod rekey;
pub mod serve;
pub mod token;
pub mod twilio_emulator;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::client::caller::{self, CallArgs};
use crate::client::eval::{self, EvalArgs};
use crate::client::loadgen::{self, LoadgenArgs};
use crate::config::Config;
use crate::logging;
use crate::server::open_store;
use crate::store::Store;
use token::TokenCommand;
use twilio_emulator::EmulatorArgs;

/// phone-agent: answers phone calls with an AI voice agent over Twilio Media Streams.
#[derive(Debug, Parser)]
#[command(name = "phone-agent", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (configured by the environment and `.env`; see `.env.example`).
    Serve,
    /// Call a running server as Twilio would, say things, and print what the agent answers.
    Call(CallArgs),
    /// Place many simulated Twilio calls against a running server and report latency.
    Loadgen(LoadgenArgs),
    /// Score turn-taking: replay the labelled caller recordings through a server started here,
    /// per turn-detection mode, and print the figures side by side.
    Eval(EvalArgs),
    /// Stand in for Twilio: its REST API for calls, then the calls themselves (signed webhooks,
    /// status callbacks, a callee on the media stream), against a local server.
    TwilioEmulator(EmulatorArgs),
    /// Manage API tokens (the way to the first admin token: no token exists at first).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Re-seal every sealed value under DATA_KEY (values sealed by older keys open with
    /// DATA_KEY_PREVIOUS); safe to run while servers run, and to run again.
    Rekey,
    /// Print the call-management API's OpenAPI 3.1 document (as `GET /api/openapi.json` serves it).
    Openapi,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // `.env` first: the simulator's options read the server's variables too.
    if let Err(error) = dotenvy::dotenv() {
        if !error.not_found() {
            eprintln!("phone-agent: cannot read .env: {error}");
            return ExitCode::from(2);
        }
    }
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => serve::run(),
        Command::Call(args) => {
            if caller::run(args) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Loadgen(args) => {
            if loadgen::run(args) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Eval(args) => {
            if eval::run(args) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::TwilioEmulator(args) => twilio_emulator::run(args),
        Command::Token(command) => token::run(command),
        Command::Rekey => rekey::run(),
        Command::Openapi => {
            print!("{}", crate::http::api::openapi::json());
            ExitCode::SUCCESS
        }
    }
}

/// Reads the environment (with `.env`) into a validated configuration and starts logging; the
/// error is the exit code, its message already printed.
pub fn configure() -> Result<Config, ExitCode> {
    let config = Config::from_env().map_err(|error| {
        eprintln!("phone-agent: {error}");
        ExitCode::from(2)
    })?;
    logging::init(config.log_format).map_err(|error| {
        eprintln!("phone-agent: {error}");
        ExitCode::from(2)
    })?;
    Ok(config)
}

/// Runs a command on the configured store: configures, opens the store, runs `command` on it
/// and closes it; a failure to open is printed and fails the command.
pub fn on_store(command: impl AsyncFnOnce(&Store) -> ExitCode) -> ExitCode {
    let config = match configure() {
        Ok(config) => config,
        Err(code) => return code,
    };
    actix_web::rt::System::new().block_on(async move {
        let store = match open_store(&config.security).await {
            Ok(store) => store,
            Err(error) => {
                eprintln!("phone-agent: {error}");
                return ExitCode::FAILURE;
            }
        };
        let code = command(&store).await;
        store.close().await;
        code
    })
}
