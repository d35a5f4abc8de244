//! Running the server: bind, serve, and shut down by draining live calls.
//!
//! Shutdown has one path, in order: `/ready` turns false and new calls are refused → live calls go
//! on for up to `DRAIN_TIMEOUT`; shortly before it the agent of each call still up says a closing
//! goodbye and hangs up once it is heard → those still up at the timeout are ended (closed with
//! 1001) → the HTTP server stops. actix-web's own signal handling is disabled; SIGTERM and Ctrl-C enter this path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor as _, Addr};
use actix_rt::Arbiter;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use phone_agent_actors::call::CallSettings;
use phone_agent_actors::engines::{CallControl, EngineSet};
use phone_agent_actors::events::EndReason;
use phone_agent_actors::runtime::metrics::CallMetrics;
use phone_agent_actors::runtime::registry::LiveCalls;
use tokio::sync::{mpsc, watch};

use crate::calls::control::TwilioTransfer;
use crate::calls::feed::CallFeed;
use crate::calls::journal::StoreJournal;
use crate::calls::ownership::{CallOwnership, StreamGate};
use crate::calls::placing::Placer;
use crate::calls::records::CallRecords;
use crate::calls::relay;
use crate::calls::{retention, scheduler};
use crate::config::{Config, SecuritySettings, TwilioCredentials};
use crate::guard::audit::AuditLog;
use crate::guard::auth::{reload, AuthActor, Authenticator, FlushAudit};
use crate::guard::client_ip::ProxyTrust;
use crate::guard::rate_limit::{RateLimitActor, RateLimits};
use crate::guard::Guard;
use crate::http::guarded::TwilioValidation;
use crate::http::webhooks::InboundWebhooks;
use crate::http::{self, AppState};
use crate::redact::Secret;
use crate::store::audit::AuditEvent;
use crate::store::calls::INTERRUPTED;
use crate::store::crypto::{load_or_create_secret, CryptoError, DataKey, KeySource, Keyring};
use crate::store::{now_ms, sqlite_path, Store, StoreError};
use crate::tls::{self, TlsError};
use crate::twilio::rest::TwilioRest;
use crate::twilio::signature::{TwilioSigner, DEV_TWILIO_AUTH_TOKEN_FILE};
use crate::twilio::stream_token::StreamTokens;
use crate::webhooks::dispatch;

/// How long ended calls get to close their sockets after the drain timeout.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How long before the drain timeout the calls still up are wound down with the agent's closing
/// goodbye (at most half the timeout): time for a sentence to be synthesized and heard.
const GOODBYE_TIME: Duration = Duration::from_secs(10);

/// A server that is running.
pub struct RunningServer {
    /// The address it listens on (useful with port 0).
    pub local_addr: SocketAddr,
    /// Its live calls.
    pub live_calls: LiveCalls,
    /// Its storage.
    pub store: Store,
    /// Its token-state owner.
    pub auth: Addr<AuthActor>,
    /// The media streams' tokens it minted and that are not yet used.
    pub stream_tokens: Arc<StreamTokens>,
    shutdown: watch::Sender<bool>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The shutdown: drain, stop, then the journal flushed and the audit log written.
    closing: tokio::task::JoinHandle<()>,
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

    /// Resolves when the server has stopped and its last call events and audit rows are
    /// written (so the runtime may end: nothing of the server is left running on it).
    pub async fn stopped(self) -> std::io::Result<()> {
        let Self {
            shutdown,
            done,
            closing,
            ..
        } = self;
        // A server that failed by itself reports it at once (a signal task may still hold a
        // shutdown sender, so the closing task could wait forever).
        done.await.map_err(std::io::Error::other)??;
        // Without a shutdown requested, dropping its sender lets the closing task go on.
        drop(shutdown);
        closing.await.map_err(std::io::Error::other)
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The database could not be opened or migrated.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The data key or the generated Twilio auth token could not be read or created.
    #[error("{0}")]
    Key(#[from] CryptoError),
    /// `TLS_CERT`/`TLS_KEY` are unusable.
    #[error("{0}")]
    Tls(#[from] TlsError),
}

/// Opens storage, loads the token state, binds and starts serving on the current actix system,
/// answering calls with `engines` (built from the configuration by [`crate::engines::build`];
/// tests pass engines of their own).
pub async fn start(
    config: &Config,
    engines: EngineSet,
    metrics: Arc<CallMetrics>,
) -> Result<RunningServer, StartError> {
    let security = &config.security;
    let store = open_store(security).await?;
    let signer = twilio_signer(security)?;
    let audit = Arc::new(AuditLog::default());
    audit.record(config_event(config, signer.is_some()));
    let authenticator = Arc::new(Authenticator::new(
        security.auth.lockout,
        security.client_networks,
        audit.clone(),
    ));
    reload(&store, &authenticator).await?;
    interrupt_unended_calls(&store, security).await?;
    let inbound = web::Data::new(InboundWebhooks {
        keys: security.webhooks.clone(),
        audit: audit.clone(),
        metrics: metrics.clone(),
    });
    let auth_actor =
        AuthActor::new(store.clone(), authenticator.clone(), audit, security.auth).start();
    let rate_limits = Arc::new(RateLimits::new(
        &security.rate_limits,
        security.client_networks,
    ));
    RateLimitActor::new(rate_limits.clone()).start();
    let guard = web::Data::new(Guard {
        authenticator: authenticator.clone(),
        auth_actor: auth_actor.clone(),
        rate_limits: rate_limits.clone(),
        proxy_trust: security.proxy_trust,
    });
    let validation = web::Data::new(TwilioValidation {
        signer,
        public_host: config.public_host.clone(),
        body_limit: http::WEBHOOK_BODY_LIMIT,
    });
    let live_calls = LiveCalls::new();
    let tokens = Arc::new(StreamTokens::shared(
        config.stream_token_ttl,
        store.stream_token_keys(),
    ));
    let records = CallRecords::new(store.clone(), Arc::new(CallFeed::default()));
    let instance = store.instance().to_owned();
    let ownership = Arc::new(CallOwnership::new(
        records.clone(),
        instance.clone(),
        config.call_lease,
    ));
    // The system's arbiter: calls run on the HTTP workers' threads, never here.
    let journal = Arc::new(StoreJournal::start(records.clone(), &Arbiter::current()));
    let rest = twilio_rest(config)?;
    let placer = Placer::new(
        records.clone(),
        rest.clone(),
        config.calls.clone(),
        config.public_host.clone(),
        live_calls.clone(),
    );
    let (stop_background, background_stopped) = watch::channel(false);
    let mut passes = vec![scheduler::start(
        records.clone(),
        placer.clone(),
        config.calls.schedule_grace,
        background_stopped.clone(),
    )];
    passes.extend(retention::start(
        records.clone(),
        config.calls.retention,
        background_stopped.clone(),
    ));
    if store.is_shared() {
        passes.push(ownership.clone().start(background_stopped.clone()));
        let (news, heard) = mpsc::channel(relay::NEWS_QUEUE);
        authenticator.share_failures(news.clone());
        rate_limits.share_blocks(news);
        let relayed = relay::Relayed {
            records: records.clone(),
            live_calls: live_calls.clone(),
            authenticator: authenticator.clone(),
            rate_limits: rate_limits.clone(),
            news: heard,
        };
        let url = security.storage.database_url.expose().to_owned();
        relay::start(url, relayed, background_stopped.clone())?;
    }
    dispatch::start(
        store.clone(),
        config.webhooks.clone(),
        instance,
        metrics.clone(),
        background_stopped,
    )?;
    let state = web::Data::new(AppState {
        public_host: config.public_host.clone(),
        tokens: tokens.clone(),
        calls: CallSettings {
            engines,
            media: config.media,
            restart: config.restart,
            live_calls: live_calls.clone(),
            authorizer: Arc::new(StreamGate::new(tokens.clone(), ownership)),
            conversation: Arc::new(config.conversation.clone()),
            metrics,
            call_control: call_control(config, rest, records.clone()),
            journal: Some(journal.clone()),
        },
        media_write_timeout: config.media_write_timeout,
        records,
        placer,
        agents: agent_name(config).into_iter().collect(),
        call_metadata_max_bytes: config.calls.metadata_max_bytes,
        webhook_policy: config.webhooks.policy,
        max_calls: config.max_calls,
        admission_lag: config.admission_lag,
    });
    let store_data = web::Data::new(store.clone());
    let actor_data = web::Data::new(auth_actor.clone());
    let unacked_limit = config.media_write_timeout;
    let body_timeout = config.http_body_timeout;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(move |request, next| {
                http::body_deadline::body_deadline(request, next, body_timeout)
            }))
            .wrap(from_fn(http::frame::frame))
            .app_data(state.clone())
            .app_data(guard.clone())
            .app_data(validation.clone())
            .app_data(store_data.clone())
            .app_data(actor_data.clone())
            .app_data(inbound.clone())
            .configure(http::configure)
    })
    .on_connect(move |connection, _| {
        if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
            tune_socket(tcp, unacked_limit);
        }
    })
    .workers(config.http_workers)
    .disable_signals()
    .shutdown_timeout(CLOSE_GRACE.as_secs());
    let server = match &security.tls {
        Some(files) => server.bind_rustls_0_23(config.listen_addr, tls::server_config(files)?)?,
        None => server.bind(config.listen_addr)?,
    };
    let local_addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let (shutdown, mut requested) = watch::channel(false);
    let drain_timeout = config.drain_timeout;
    let calls = live_calls.clone();
    let flush = auth_actor.clone();
    let closing = actix_web::rt::spawn(async move {
        // Err: the server was dropped without a shutdown; it still stops and flushes.
        if requested.wait_for(|&yes| yes).await.is_ok() {
            drain(&calls, drain_timeout).await;
        }
        // What is left to write is written while the HTTP workers still run: a pooled
        // PostgreSQL connection that a worker's request opened lives on that worker's runtime
        // and dies with it. First the calls' last events (their ends), then the audit rows, then
        // the background passes end (the last one finished).
        if !journal.flushed_unless_stalled(CLOSE_GRACE).await {
            tracing::error!("call journal stalled: the last call events are lost");
        }
        let _ = flush.send(FlushAudit).await;
        stop_background.send_replace(true);
        if actix_web::rt::time::timeout(CLOSE_GRACE, futures_util::future::join_all(passes))
            .await
            .is_err()
        {
            tracing::warn!("a background pass was still running at exit");
        }
        handle.stop(true).await;
    });
    let done = actix_web::rt::spawn(server);
    tracing::info!(%local_addr, tls = security.tls.is_some(), "listening");
    Ok(RunningServer {
        local_addr,
        live_calls,
        store,
        auth: auth_actor,
        stream_tokens: tokens,
        shutdown,
        done,
        closing,
    })
}

/// Transfers through Twilio's REST API, when it is configured and there is a number to
/// transfer to.
fn call_control(
    config: &Config,
    rest: Option<TwilioRest>,
    records: CallRecords,
) -> Option<Arc<dyn CallControl>> {
    let to = config.calls.transfer_to.clone()?;
    Some(Arc::new(TwilioTransfer::new(rest?, to, records)))
}

/// The name calls ask for the configured agent by: its file's name (`default` for
/// `agents/default.toml`).
fn agent_name(config: &Config) -> Option<String> {
    Some(
        config
            .agent_file
            .file_stem()?
            .to_string_lossy()
            .into_owned(),
    )
}

/// Ends the calls a previous run left in progress (it was killed, not drained), with reason
/// [`INTERRUPTED`]. On SQLite only: its database is this process's alone, so a call in progress
/// there at start-up can belong to no live server. On PostgreSQL other instances may be carrying
/// their calls: a call is ended once its owner's lease runs out ([`CallOwnership::upkeep`]).
async fn interrupt_unended_calls(
    store: &Store,
    security: &SecuritySettings,
) -> Result<(), StoreError> {
    if sqlite_path(security.storage.database_url.expose()).is_none() {
        return Ok(());
    }
    let interrupted = store.interrupt_unended_calls(now_ms()).await?;
    if !interrupted.is_empty() {
        tracing::warn!(
            calls = interrupted.len(),
            reason = INTERRUPTED,
            "calls in progress when the server last stopped are marked interrupted"
        );
    }
    Ok(())
}

/// Opens (creating and migrating) the configured store with its data key.
pub async fn open_store(security: &SecuritySettings) -> Result<Store, StartError> {
    let keys = data_keys(security)?;
    Ok(Store::open(security.storage.database_url.expose(), keys).await?)
}

/// The data keys: `DATA_KEY` (or its file, created on first run) sealing, and
/// `DATA_KEY_PREVIOUS` still opening.
fn data_keys(security: &SecuritySettings) -> Result<Keyring, CryptoError> {
    let previous = security
        .storage
        .previous_data_keys
        .iter()
        .map(|key| DataKey::from_base64(key.expose()))
        .collect::<Result<_, _>>()?;
    Ok(Keyring::new(data_key(security)?, previous))
}

/// The current data key: `DATA_KEY`, or its file (created on first run).
fn data_key(security: &SecuritySettings) -> Result<DataKey, CryptoError> {
    if let Some(key) = &security.storage.data_key {
        return DataKey::from_base64(key.expose());
    }
    let path = &security.storage.data_key_file;
    let (key, source) = DataKey::load_or_create(path)?;
    if source == KeySource::Generated {
        if security.production {
            tracing::error!(
                path = %path.display(),
                "DATA_KEY is not set: GENERATED A NEW DATA KEY in production. Sealed data \
                 (phone numbers, transcripts) is unreadable without it: back it up, or set \
                 DATA_KEY from a secret store"
            );
        } else {
            tracing::warn!(path = %path.display(), "DATA_KEY is not set: generated a data key");
        }
    }
    Ok(key)
}

/// The Twilio signature checker, or none when validation is explicitly off.
fn twilio_signer(security: &SecuritySettings) -> Result<Option<TwilioSigner>, CryptoError> {
    if !security.twilio.validate {
        tracing::warn!(
            "TWILIO_VALIDATE=false: Twilio request signatures are NOT checked; anyone who can \
             reach /twilio/ can start calls"
        );
        return Ok(None);
    }
    let token = twilio_auth_token(security)?;
    Ok(Some(TwilioSigner::new(token.expose())))
}

/// `TWILIO_AUTH_TOKEN`, or in development a generated one (configuration refuses production
/// without a token): the simulator, `phone-agent call` and the local Twilio emulator use it.
fn twilio_auth_token(security: &SecuritySettings) -> Result<Secret, CryptoError> {
    if let Some(token) = &security.twilio.auth_token {
        return Ok(token.clone());
    }
    let path = security.storage.data_dir.join(DEV_TWILIO_AUTH_TOKEN_FILE);
    let (token, _) = load_or_create_secret(&path)?;
    tracing::warn!(
        path = %path.display(),
        "TWILIO_AUTH_TOKEN is not set: Twilio requests are checked against a generated \
         development token (phone-agent call and the Twilio emulator use it); set your \
         account's auth token to take real calls"
    );
    Ok(token)
}

/// The REST client, with a generated development token resolved.
fn twilio_rest(config: &Config) -> Result<Option<TwilioRest>, CryptoError> {
    let Some(mut settings) = config.twilio_rest.clone() else {
        return Ok(None);
    };
    if matches!(settings.credentials, TwilioCredentials::Generated) {
        let token = twilio_auth_token(&config.security)?;
        settings.credentials = TwilioCredentials::AuthToken(token);
    }
    Ok(Some(TwilioRest::new(settings)))
}

/// The security-relevant configuration as an audit event (never a secret).
fn config_event(config: &Config, validating: bool) -> AuditEvent {
    let security = &config.security;
    let limits = &security.rate_limits;
    let detail = format!(
        "app_env={} database={} twilio_validate={validating} trust_proxy={} tls={} \
         allow_list={} deny_list={} limits={:?}",
        if security.production {
            "production"
        } else {
            "development"
        },
        if sqlite_path(security.storage.database_url.expose()).is_some() {
            "sqlite"
        } else {
            "postgres"
        },
        match security.proxy_trust {
            ProxyTrust::None => 0,
            ProxyTrust::Proxies(proxies) => proxies,
        },
        security.tls.is_some(),
        !limits.allow.is_empty(),
        !limits.deny.is_empty(),
        limits
            .limits
            .map(|l| format!("{}/{}s", l.requests, l.per.as_secs())),
    );
    AuditEvent {
        at: now_ms(),
        kind: "config.loaded".into(),
        token_id: None,
        client: None,
        detail,
        count: 1,
    }
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

/// Refuses new calls and lets live ones finish; near the end of `timeout` the agent of every
/// call still up says the closing goodbye and hangs up once it is heard; at `timeout` the rest are
/// ended.
async fn drain(live_calls: &LiveCalls, timeout: Duration) {
    live_calls.start_draining();
    tracing::info!(live_calls = live_calls.count(), ?timeout, "draining");
    let goodbye_time = GOODBYE_TIME.min(timeout / 2);
    let drained = async {
        let on_their_own =
            tokio::time::timeout(timeout - goodbye_time, live_calls.wait_until_empty());
        if on_their_own.await.is_ok() {
            return;
        }
        tracing::info!(
            live_calls = live_calls.count(),
            "drain: the agents say goodbye"
        );
        live_calls.wind_down_all(EndReason::Shutdown);
        live_calls.wait_until_empty().await;
    };
    if tokio::time::timeout(timeout, drained).await.is_ok() {
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
