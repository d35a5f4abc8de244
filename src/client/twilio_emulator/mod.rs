//! `phone-agent twilio-emulator`: a local stand-in for Twilio, so that an outbound call can be
//! placed end to end on one machine and integration tests can check what the server asks of
//! Twilio, as strictly as Twilio checks it. Written from Twilio's public documentation.
//!
//! It serves the calls part of Twilio's REST API ([`rest`]) and then does what Twilio does with
//! a created call: a driver per call ([`driver`]) runs the call's lifecycle, a sans-I/O state
//! machine ([`call`]): signed status callbacks ([`webhooks`]), the callee ringing and answering
//! (or busy, no answer, failing, a machine), the signed TwiML fetch, `<Connect><Stream>` with the
//! simulated person on the media socket ([`callee`]), hang-ups and transfers by update.
//!
//! Every URL it is given (the webhook, callbacks, the stream) is requested on the server's own
//! address ([`EmulatorSettings::agent`]) with its path and query, and signed as written, as the
//! client tools do.
//!
//! - [`settings`]: the account, owned numbers, the callee, callback order.
//! - [`error`], [`auth`], [`params`], [`resource`]: Twilio's answers, Basic auth, the checks of
//!   a create or update, the call resource's JSON.
//! - [`twiml`]: the TwiML the calls run.
//! - [`clock`]: the time as the machine is told it, and Twilio's dates.
//! - [`registry`], [`observe`]: the shared state, and what tests see of it.

pub mod auth;
pub mod call;
pub mod callee;
pub mod clock;
pub mod driver;
pub mod error;
pub mod observe;
pub mod params;
pub mod registry;
pub mod resource;
pub mod rest;
pub mod settings;
pub mod twiml;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

use observe::{CallView, Fault, ReceivedRequest};
use registry::Registry;
use rest::Shared;
pub use settings::EmulatorSettings;

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The emulator.
pub struct TwilioEmulator;

impl TwilioEmulator {
    /// Starts an emulator with `settings` on the current actix system (one HTTP worker; calls
    /// run on it).
    pub async fn start(settings: EmulatorSettings) -> Result<RunningEmulator, EmulatorError> {
        let address = settings.listen;
        let listener = std::net::TcpListener::bind(address)
            .map_err(|source| EmulatorError::Bind { address, source })?;
        Self::start_on(listener, settings).await
    }

    /// Starts an emulator as [`TwilioEmulator::start`] does, serving on `listener` (bound by
    /// the caller, so its port can be handed out before the emulator exists without another
    /// process taking it in between) instead of binding `settings.listen`.
    pub async fn start_on(
        listener: std::net::TcpListener,
        settings: EmulatorSettings,
    ) -> Result<RunningEmulator, EmulatorError> {
        let address = settings.listen;
        let bind = |source| EmulatorError::Bind { address, source };
        let local_addr = listener.local_addr().map_err(bind)?;
        let registry = Arc::new(Registry::default());
        let shared = web::Data::new(Shared {
            registry: registry.clone(),
            settings: Arc::new(settings),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .configure(rest::configure)
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .map_err(bind)?
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(RunningEmulator {
            base_url: format!("http://{local_addr}"),
            local_addr,
            registry,
            handle,
        })
    }
}

/// A running emulator: its address, and what it has seen.
pub struct RunningEmulator {
    /// `http://127.0.0.1:PORT`: the server's `TWILIO_API_BASE`.
    pub base_url: String,
    /// The bound address.
    pub local_addr: SocketAddr,
    registry: Arc<Registry>,
    handle: ServerHandle,
}

impl RunningEmulator {
    /// Every call, oldest first.
    pub fn calls(&self) -> Vec<CallView> {
        self.registry.calls()
    }

    /// Call `sid`.
    pub fn call(&self, sid: &str) -> Option<CallView> {
        self.calls().into_iter().find(|call| call.record.sid == sid)
    }

    /// Every request the REST API received, oldest first.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.registry.requests()
    }

    /// Answers the next requests with `fault`, whatever they ask.
    pub fn inject(&self, fault: Fault) {
        self.registry.inject(fault);
    }

    /// Waits until `check` finds what it looks for in the calls, and returns it (no time limit:
    /// tests wrap it in theirs).
    pub async fn wait_for<T>(&self, mut check: impl FnMut(&[CallView]) -> Option<T>) -> T {
        let mut changes = self.registry.subscribe();
        loop {
            changes.borrow_and_update();
            if let Some(found) = check(&self.calls()) {
                return found;
            }
            // The registry lives as long as this emulator: the sender never goes away.
            let _ = changes.changed().await;
        }
    }

    /// Waits until call `sid` satisfies `ready`, and returns it.
    pub async fn wait_for_call(&self, sid: &str, ready: impl Fn(&CallView) -> bool) -> CallView {
        self.wait_for(|calls| {
            calls
                .iter()
                .find(|call| call.record.sid == sid && ready(call))
                .cloned()
        })
        .await
    }

    /// Stops serving (calls in flight are dropped with the worker).
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
