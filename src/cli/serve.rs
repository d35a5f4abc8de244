//! `phone-agent [serve]`: configuration, engines, then the server until a shutdown signal.

use std::process::ExitCode;
use std::sync::Arc;

use phone_agent_actors::runtime::metrics::CallMetrics;

use crate::config::EngineChoice;
use crate::{engines, server};

/// Runs the server until a shutdown signal, then drains it.
pub fn run() -> ExitCode {
    let config = match super::configure() {
        Ok(config) => config,
        Err(code) => return code,
    };
    if config.engines == EngineChoice::Loopback {
        tracing::warn!(
            "ENGINES=loopback: callers hear their own audio back (a diagnostic engine set)"
        );
    }
    let mut config = config;
    let metrics = Arc::new(CallMetrics::default());
    let engines = match engines::build(&config, &metrics) {
        Ok(built) => {
            config.calls.transfer_to = built.transfer_to;
            built.set
        }
        Err(error) => {
            tracing::error!(%error, "engines unavailable");
            eprintln!("phone-agent: {error}");
            return ExitCode::from(2);
        }
    };
    let result = actix_web::rt::System::new().block_on(async move {
        let server = server::start(&config, engines, metrics)
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
