//! `phone-agent token create|list|revoke|rotate`: token management on the host, straight on the
//! configured store (the same code the API uses). A new token is printed once, on stdout alone,
//! so `TOKEN=$(phone-agent token create …)` works; everything else goes to stderr.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use crate::guard::admin::{self, ChangedBy, Issued, NewToken};
use crate::guard::token::Scopes;
use crate::store::tokens::TokenRecord;

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown once).
    Create {
        /// A name for people (`billing-service`).
        #[arg(long)]
        name: String,
        /// Comma-separated: calls:read, calls:write, calls:delete, tokens:admin, webhooks:admin.
        #[arg(long, value_parser = Scopes::parse)]
        scopes: Scopes,
        /// Lifetime (`90d`, `12h`); forever when omitted.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by id, at once.
    Revoke {
        /// `tok_…`.
        id: String,
    },
    /// Replace a token with a new one (printed); the old one keeps working for the overlap.
    Rotate {
        /// `tok_…`.
        id: String,
        /// How long both work (0s: the old one stops at once).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        overlap: Duration,
    },
}

/// Runs a token subcommand.
pub fn run(command: TokenCommand) -> ExitCode {
    super::on_store(async |store| {
        let by = ChangedBy::Cli;
        let outcome = match command {
            TokenCommand::Create {
                name,
                scopes,
                expires_in,
            } => {
                let request = NewToken {
                    name,
                    scopes,
                    expires_in,
                };
                admin::create(store, &request, &by)
                    .await
                    .map(|issued| print_issued(&issued))
            }
            TokenCommand::List => admin::list(store).await.map(|tokens| {
                for token in tokens {
                    println!("{}", describe(&token));
                }
                true
            }),
            TokenCommand::Revoke { id } => admin::revoke(store, &id, &by).await.inspect(|&done| {
                if done {
                    eprintln!("revoked {id}");
                } else {
                    eprintln!("phone-agent: no live token {id}");
                }
            }),
            TokenCommand::Rotate { id, overlap } => admin::rotate(store, &id, overlap, &by)
                .await
                .map(|issued| match issued {
                    Some(issued) => {
                        eprintln!(
                            "{id} keeps working for {}",
                            humantime::format_duration(overlap)
                        );
                        print_issued(&issued)
                    }
                    None => {
                        eprintln!("phone-agent: no live, unrotated token {id}");
                        false
                    }
                }),
        };
        match outcome {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(error) => {
                eprintln!("phone-agent: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

fn print_issued(issued: &Issued) -> bool {
    eprintln!("{}", describe(&issued.record));
    eprintln!("The token is shown once; store it now:");
    println!("{}", issued.token);
    true
}

fn describe(token: &TokenRecord) -> String {
    let time = |ms: Option<i64>| {
        ms.and_then(|ms| u64::try_from(ms).ok())
            .map(|ms| {
                humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms))
                    .to_string()
            })
            .unwrap_or_else(|| "-".into())
    };
    let state = if token.revoked_at.is_some() {
        "revoked"
    } else if token
        .expires_at
        .is_some_and(|at| at <= crate::store::now_ms())
    {
        "expired"
    } else {
        "active"
    };
    format!(
        "{}  {:<8} name={:?} scopes={} expires={} last_used={}",
        token.id,
        state,
        token.name,
        token.scopes.to_names(),
        time(token.expires_at),
        time(token.last_used_at),
    )
}
