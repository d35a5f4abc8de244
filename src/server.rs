//! Running the server: bind, serve, and shut down by draining live calls.
//!
//! Shutdown has one path, in order: `/ready` turns false and new calls are refused → live calls go
//! on for up to `DRAIN_TIMEOUT` → those still up are ended (closed with 1001) → the HTTP server
//! stops. actix-web's own signal handling is disabled; SIGTERM and Ctrl-C enter this path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use phone_agent_actors::call::messages::EndReason;
use phone_agent_actors::call::registry::LiveCalls;
use phone_agent_actors::call::CallSettings;
use phone_agent_actors::engines::EngineSet;
use phone_agent_actors::metrics::CallMetrics;
use tokio::sync::watch;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::twilio::stream_token::StreamTokens;

/// How long ended calls get to close their sockets after the drain timeout.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A server that is running.
pub struct RunningServer {
    /// The address it listens on (useful with port 0).
    pub local_addr: SocketAddr,
    /// Its live calls.
    pub live_calls: LiveCalls,
    shutdown: watch::Sender<bool>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Starts the graceful shutdown: from now on `/ready` is false and new calls are refused;
    /// returns at once.
    pub fn shutdown(&self) {
        self.live_calls.start_draining();
        self.shutdown.send_replace(true);
    }

    /// A handle that can start the shutdown from elsewhere (a signal task).
    pub fn shutdown_trigger(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Resolves when the server has stopped.
    pub async fn stopped(self) -> std::io::Result<()> {
        self.done.await.map_err(std::io::Error::other)?
    }
}

/// Binds and starts serving on the current actix system, answering calls with `engines` (built
/// from the configuration by [`crate::engines::build`]; tests pass engines of their own).
pub fn start(config: &Config, engines: EngineSet) -> std::io::Result<RunningServer> {
    let live_calls = LiveCalls::new();
    let tokens = Arc::new(StreamTokens::new(config.stream_token_ttl));
    let state = web::Data::new(AppState {
        public_host: config.public_host.clone(),
        tokens: tokens.clone(),
        calls: CallSettings {
            engines,
            media: config.media,
            restart: config.restart,
            live_calls: live_calls.clone(),
            authorizer: tokens,
            conversation: Arc::new(config.conversation.clone()),
            metrics: Arc::new(CallMetrics::default()),
            call_control: None,
        },
        media_write_timeout: config.media_write_timeout,
    });
    let unacked_limit = config.media_write_timeout;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(http::configure)
    })
    .on_connect(move |connection, _| {
        if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
            tune_socket(tcp, unacked_limit);
        }
    })
    .workers(config.http_workers)
    .disable_signals()
    .shutdown_timeout(CLOSE_GRACE.as_secs())
    .bind(config.listen_addr)?;
    let local_addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let (shutdown, mut requested) = watch::channel(false);
    let drain_timeout = config.drain_timeout;
    let calls = live_calls.clone();
    actix_web::rt::spawn(async move {
        if requested.wait_for(|&yes| yes).await.is_ok() {
            drain(&calls, drain_timeout).await;
        }
        handle.stop(true).await;
    });
    let done = actix_web::rt::spawn(server);
    tracing::info!(%local_addr, "listening");
    Ok(RunningServer {
        local_addr,
        live_calls,
        shutdown,
        done,
    })
}

/// Media frames are small and latency-bound: Nagle's algorithm would hold each one back until the
/// previous is acknowledged (tens of ms with delayed ACKs). And a peer that stops acknowledging
/// (gone without a FIN) would hold the connection for the kernel's retransmission timeout, many
/// minutes; `TCP_USER_TIMEOUT` aborts it after `unacked_limit` instead.
fn tune_socket(tcp: &actix_web::rt::net::TcpStream, unacked_limit: Duration) {
    let _ = tcp.set_nodelay(true);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let _ = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(unacked_limit));
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = unacked_limit;
}

/// Refuses new calls, lets live ones finish for up to `timeout`, then ends the rest.
async fn drain(live_calls: &LiveCalls, timeout: Duration) {
    live_calls.start_draining();
    tracing::info!(live_calls = live_calls.count(), ?timeout, "draining");
    if tokio::time::timeout(timeout, live_calls.wait_until_empty())
        .await
        .is_ok()
    {
        tracing::info!("drained");
        return;
    }
    tracing::warn!(
        live_calls = live_calls.count(),
        "drain timeout: ending live calls"
    );
    live_calls.end_all(EndReason::Shutdown);
    if tokio::time::timeout(CLOSE_GRACE, live_calls.wait_until_empty())
        .await
        .is_err()
    {
        tracing::warn!(live_calls = live_calls.count(), "calls still open at exit");
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
