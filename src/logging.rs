//! Tracing set-up: `RUST_LOG` filters (default `info`), `LOG_FORMAT` picks pretty or JSON lines,
//! written to stderr.

use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, LogFormat};

/// Installs the global subscriber. Fails if `RUST_LOG` does not parse.
pub fn init(format: LogFormat) -> Result<(), ConfigError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => {
            EnvFilter::try_new(&value).map_err(|error| ConfigError {
                variable: "RUST_LOG",
                message: error.to_string(),
            })?
        }
        _ => EnvFilter::new("info"),
    };
    // Logs go to stderr: stdout carries command output (`phone-agent token create` prints the
    // token there alone).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A subscriber already installed (a test harness) is fine: logs go there.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    Ok(())
}
