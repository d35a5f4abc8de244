//! The command line: `phone-agent [serve]` runs the server; `call` and `loadgen` act as Twilio;
//! `token` manages API tokens.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::caller::{self, CallArgs};
use crate::config::{Config, EngineChoice};
use crate::loadgen::{self, LoadgenArgs};
use crate::token_cli::{self, TokenCommand};
use crate::{engines, logging, server};

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
    /// Manage API tokens (the way to the first admin token: no token exists at first).
    #[command(subcommand)]
    Token(TokenCommand),
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
        Command::Serve => serve(),
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
        Command::Token(command) => token_cli::run(command),
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

fn serve() -> ExitCode {
    let config = match configure() {
        Ok(config) => config,
        Err(code) => return code,
    };
    if config.engines == EngineChoice::Loopback {
        tracing::warn!(
            "ENGINES=loopback: callers hear their own audio back (a diagnostic engine set)"
        );
    }
    let engines = match engines::build(&config) {
        Ok(engines) => engines,
        Err(error) => {
            tracing::error!(%error, "engines unavailable");
            eprintln!("phone-agent: {error}");
            return ExitCode::from(2);
        }
    };
    let result = actix_web::rt::System::new().block_on(async move {
        let server = server::start(&config, engines)
            .await
            .map_err(std::io::Error::other)?;
        let trigger = server.shutdown_trigger();
        actix_web::rt::spawn(async move {
            server::shutdown_signal().await;
            tracing::info!("shutdown signal received");
            trigger.send_replace(true);
        });
        server.stopped().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            eprintln!("phone-agent: {error}");
            ExitCode::FAILURE
        }
    }
}
