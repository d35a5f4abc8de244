//! The dispatcher: delivers the outbox's messages (see [`crate::store::outbox`]) to the clients'
//! endpoints, signed per Standard Webhooks, and sends follow-up emails.
//!
//! The dispatcher runs on a thread of its own at a lower priority than the calls' (see [`start`]).
//! A pass reads the due messages, leaving out receivers already at their concurrency limit, claims
//! as many as there is room for in one statement, with a lease, and sends each on a task of its
//! own; it runs every [`DISPATCH_TICK`] and again whenever a delivery finishes (then from the
//! messages already read), so a fast endpoint is fed as fast as it answers while a slow or failing
//! one holds at most [`DispatchSettings::per_receiver`] messages at a time and never delays the
//! others, nor any call: the dispatcher only reads and writes the outbox.
//!
//! Each attempt checks the target again: the URL, then every address its name resolves to (no
//! loopback, private, link-local or metadata address unless `WEBHOOK_ALLOW_PRIVATE`), and the
//! request goes to the addresses checked (the next when one refuses the connection), so a second
//! lookup cannot swap them. No redirect is followed. A 2xx answer delivers the message; anything else is retried with backoff until its
//! window ends, when it is dead.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::error::SendRequestError;
use ring::rand::SystemRandom;
use tokio::sync::{watch, Notify};

use super::backoff::Backoff;
use super::follow_up;
use super::signature::{sign_standard, standard_key};
use super::target::{check_url, resolve, TargetPolicy};
use crate::email::resend::Resend;
use crate::store::outbox::{Attempt, Channel, ClaimedDelivery, DueDelivery};
use crate::store::webhook_endpoints::{SigningSecrets, ACCOUNT_SECRET};
use crate::store::{now_ms, Store, StoreError};
use phone_agent_actors::runtime::metrics::CallMetrics;

/// How often due messages are looked for when nothing else wakes the dispatcher.
pub const DISPATCH_TICK: Duration = Duration::from_millis(200);

/// The dispatcher's own database connections.
const DISPATCH_CONNECTIONS: u32 = 2;

/// Due messages read per pass.
const PASS_BATCH: i64 = 256;

/// How a server delivers the outbox.
#[derive(Clone, Debug)]
pub struct DispatchSettings {
    /// Which targets are allowed.
    pub policy: TargetPolicy,
    /// The longest an attempt may take, connecting and answering (`WEBHOOK_TIMEOUT`).
    pub timeout: Duration,
    /// When failed attempts are retried (`WEBHOOK_RETRY_BASE`, `WEBHOOK_RETRY_WINDOW`).
    pub backoff: Backoff,
    /// Messages in flight at once to one receiver (`WEBHOOK_CONCURRENCY`).
    pub per_receiver: usize,
    /// Messages in flight at once in all.
    pub total: usize,
    /// The follow-up email's sender, if configured (`RESEND_API_KEY`, …).
    pub email: Option<Resend>,
    /// Where follow-up emails go when the call names no address (`FOLLOW_UP_TO`).
    pub follow_up_to: Option<String>,
}

/// How much less CPU the dispatcher's thread gets than the calls' when both want it (a nice
/// value: +10 weighs about a tenth of a default thread).
const NICENESS: i32 = 10;

/// Starts the dispatcher on a thread of its own, named `instance` in its claims; it runs until
/// `stop` says `true` (attempts under way then finish on their own, or are made again by the next
/// server once their claims' leases run out). The thread runs at a lower priority than the calls:
/// on a busy machine deliveries wait, frames do not.
pub fn start(
    store: Store,
    settings: DispatchSettings,
    instance: String,
    metrics: Arc<CallMetrics>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("webhook-dispatch".into())
        .spawn(move || {
            // On Linux a nice value is per thread: this one only.
            if let Err(error) = rustix::process::setpriority_process(None, NICENESS) {
                tracing::warn!(%error, "webhook dispatcher runs at the calls' priority");
            }
            actix_rt::System::new().block_on(run(store, settings, instance, metrics, stop));
        })
        .map(drop)
}

/// The dispatcher's loop: a pass per tick, per finished delivery, until stopped.
async fn run(
    store: Store,
    settings: DispatchSettings,
    instance: String,
    metrics: Arc<CallMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    // Connections of its own, opened from this thread: SQLite's then run at its priority too.
    let store = loop {
        match store.own_pool(DISPATCH_CONNECTIONS).await {
            Ok(store) => break store,
            Err(error) => {
                tracing::error!(%error, "webhook dispatcher cannot connect: messages wait in the outbox");
                tokio::select! {
                    _ = actix_rt::time::sleep(Duration::from_secs(1)) => {}
                    changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
                }
            }
        }
    };
    tracing::info!(%instance, "webhook dispatcher started");
    let dispatcher = Rc::new(Dispatcher {
        store,
        settings,
        instance,
        in_flight: RefCell::new(HashMap::new()),
        candidates: RefCell::new((VecDeque::new(), None)),
        secrets: RefCell::new(HashMap::new()),
        finished: Notify::new(),
        metrics,
    });
    while !*stop.borrow() {
        if let Err(error) = dispatcher.pass(now_ms()).await {
            tracing::error!(%error, "webhook dispatch pass failed");
        }
        tokio::select! {
            _ = actix_rt::time::sleep(DISPATCH_TICK) => {}
            _ = dispatcher.finished.notified() => {}
            // The server is gone without saying so: stop too.
            changed = stop.changed() => if changed.is_err() { break },
        }
    }
    tracing::info!("webhook dispatcher stopped");
}

struct Dispatcher {
    store: Store,
    settings: DispatchSettings,
    instance: String,
    /// Messages in flight, by receiver.
    in_flight: RefCell<HashMap<String, usize>>,
    /// Due messages read and not yet claimed, and when they were read: a delivery that finishes
    /// starts the next of its receiver from here, without reading the outbox again.
    candidates: RefCell<(VecDeque<DueDelivery>, Option<Instant>)>,
    /// Signing secrets by owner, read at most every [`DISPATCH_TICK`].
    secrets: RefCell<HashMap<String, (Instant, Option<SigningSecrets>)>>,
    /// Signalled when a delivery finishes (there may be room for the next).
    finished: Notify,
    /// Where attempts are counted, by outcome.
    metrics: Arc<CallMetrics>,
}

impl Dispatcher {
    /// Claims what is due and has room, and starts sending it.
    async fn pass(self: &Rc<Self>, now_ms: i64) -> Result<(), StoreError> {
        let stale = self
            .candidates
            .borrow()
            .1
            .is_none_or(|read| read.elapsed() >= DISPATCH_TICK);
        if stale || self.candidates.borrow().0.is_empty() {
            let busy: Vec<String> = self
                .in_flight
                .borrow()
                .iter()
                .filter(|(_, n)| **n >= self.settings.per_receiver)
                .map(|(receiver, _)| receiver.clone())
                .collect();
            let due = self.store.due_deliveries(now_ms, PASS_BATCH, &busy).await?;
            *self.candidates.borrow_mut() = (due.into(), Some(Instant::now()));
        }
        let picked = self.pick();
        if picked.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = picked.iter().map(|due| due.id.as_str()).collect();
        let claimed = self
            .store
            .claim_deliveries(&ids, &self.instance, now_ms, self.lease_ms())
            .await?;
        let receivers: HashMap<String, String> = picked
            .into_iter()
            .map(|due| (due.id, due.receiver))
            .collect();
        for claimed in claimed {
            let receiver = receivers[&claimed.delivery.id].clone();
            *self
                .in_flight
                .borrow_mut()
                .entry(receiver.clone())
                .or_default() += 1;
            let dispatcher = self.clone();
            actix_rt::spawn(async move {
                dispatcher.deliver(claimed).await;
                let mut in_flight = dispatcher.in_flight.borrow_mut();
                if let Some(n) = in_flight.get_mut(&receiver) {
                    *n -= 1;
                    if *n == 0 {
                        in_flight.remove(&receiver);
                    }
                }
                dispatcher.finished.notify_one();
            });
        }
        Ok(())
    }

    /// Takes from the candidates as many as the receivers' and the total limits leave room for.
    fn pick(&self) -> Vec<DueDelivery> {
        let in_flight = self.in_flight.borrow();
        let mut room: HashMap<String, usize> = HashMap::new();
        let mut total: usize = in_flight.values().sum();
        let mut candidates = self.candidates.borrow_mut();
        let mut picked = Vec::new();
        candidates.0.retain(|due| {
            let here = room
                .entry(due.receiver.clone())
                .or_insert_with(|| in_flight.get(&due.receiver).copied().unwrap_or(0));
            if total >= self.settings.total || *here >= self.settings.per_receiver {
                return true;
            }
            *here += 1;
            total += 1;
            picked.push(due.clone());
            false
        });
        picked
    }

    /// The secrets signing `owner`'s messages now (read again once [`DISPATCH_TICK`] old).
    async fn secrets(
        &self,
        owner: &str,
        now_ms: i64,
    ) -> Result<Option<SigningSecrets>, StoreError> {
        if let Some((read, secrets)) = self.secrets.borrow().get(owner) {
            if read.elapsed() < DISPATCH_TICK {
                return Ok(secrets.clone());
            }
        }
        let secrets = if owner == ACCOUNT_SECRET {
            Some(self.store.account_secret(now_ms).await?)
        } else {
            self.store.signing_secrets(owner, now_ms).await?
        };
        self.secrets
            .borrow_mut()
            .insert(owner.to_owned(), (Instant::now(), secrets.clone()));
        Ok(secrets)
    }

    /// The longest one attempt may take, whatever its channel: the longer of the webhook and
    /// the email timeouts, and a second for reading secrets and the rest.
    fn attempt_limit(&self) -> Duration {
        let email = self
            .settings
            .email
            .as_ref()
            .map_or(Duration::ZERO, Resend::timeout);
        self.settings.timeout.max(email) + Duration::from_secs(1)
    }

    /// A claim outlives the attempt by as much again, so a live server never loses one, while a
    /// dead server's claims are free soon after.
    fn lease_ms(&self) -> i64 {
        i64::try_from((self.attempt_limit() * 2).as_millis()).unwrap_or(i64::MAX)
    }

    /// Makes one attempt and records how it ended.
    async fn deliver(&self, claimed: ClaimedDelivery) {
        let id = claimed.delivery.id.clone();
        let attempt = async {
            match claimed.delivery.channel {
                Channel::Webhook => self.post(&claimed).await,
                Channel::Email => self.email(&claimed).await,
            }
        };
        let attempt = match actix_rt::time::timeout(self.attempt_limit(), attempt).await {
            Err(_) => Outcome::failed(None, "timed out".into()),
            Ok(Ok(attempt)) => attempt,
            Ok(Err(error)) => {
                tracing::error!(delivery = %id, %error, "webhook delivery failed on storage");
                return;
            }
        };
        let now = now_ms();
        let attempt = match attempt {
            Outcome::Done(attempt) => attempt,
            Outcome::Failed { status, error } => {
                let attempts = u32::try_from(claimed.delivery.attempts + 1).unwrap_or(u32::MAX);
                let retry_at = self.settings.backoff.next_attempt(
                    attempts,
                    claimed.window_start,
                    now,
                    &SystemRandom::new(),
                );
                Attempt::Failed {
                    status,
                    error,
                    retry_at,
                }
            }
        };
        self.metrics.webhook(
            "out",
            match &attempt {
                Attempt::Delivered { .. } => "delivered",
                Attempt::Failed { retry_at: None, .. } => "dead",
                Attempt::Failed { .. } => "failed",
                Attempt::Skipped { .. } => "skipped",
            },
        );
        match &attempt {
            Attempt::Delivered { .. } => {
                tracing::debug!(delivery = %id, kind = %claimed.delivery.event_type, "delivered")
            }
            Attempt::Failed {
                retry_at: None,
                error,
                ..
            } => {
                tracing::warn!(delivery = %id, kind = %claimed.delivery.event_type, %error, "delivery dead: its retry window ended")
            }
            Attempt::Failed { error, .. } => {
                tracing::info!(delivery = %id, kind = %claimed.delivery.event_type, %error, "delivery failed: retried later")
            }
            Attempt::Skipped { reason } => {
                tracing::info!(delivery = %id, kind = %claimed.delivery.event_type, %reason, "delivery skipped")
            }
        }
        match self
            .store
            .finish_attempt(&id, &self.instance, claimed.claimed_until, &attempt, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(delivery = %id, "delivery claim lost before the attempt was recorded")
            }
            Err(error) => {
                tracing::error!(delivery = %id, %error, "cannot record a delivery attempt")
            }
        }
    }

    /// Posts a webhook, signed.
    async fn post(&self, claimed: &ClaimedDelivery) -> Result<Outcome, StoreError> {
        let (Some(url), Some(payload)) = (&claimed.url, &claimed.payload) else {
            return Ok(Outcome::Done(Attempt::Skipped {
                reason: "nothing to send".into(),
            }));
        };
        let delivery = &claimed.delivery;
        let now = now_ms();
        let owner = delivery.endpoint_id.as_deref().unwrap_or(ACCOUNT_SECRET);
        let Some(secrets) = self.secrets(owner, now).await? else {
            return Ok(Outcome::Done(Attempt::Skipped {
                reason: "the endpoint is gone".into(),
            }));
        };
        let target = match check_url(url, self.settings.policy) {
            Ok(target) => target,
            Err(error) => return Ok(Outcome::failed(None, format!("target refused: {error}"))),
        };
        let timestamp = now / 1000;
        let signatures: Vec<String> = std::iter::once(&secrets.current)
            .chain(secrets.previous.as_ref())
            .filter_map(|secret| standard_key(secret).ok())
            .map(|key| sign_standard(&key, &delivery.id, timestamp, payload.as_bytes()))
            .collect();
        let send = async {
            let addresses = resolve(&target, self.settings.policy)
                .await
                .map_err(|error| format!("target refused: {error}"))?;
            let mut refused = String::new();
            for address in addresses {
                let sent = crate::outbound::client(self.settings.timeout)
                    .post(target.as_str())
                    .address(address)
                    .insert_header(("content-type", "application/json"))
                    .insert_header(("webhook-id", delivery.id.as_str()))
                    .insert_header(("webhook-timestamp", timestamp.to_string()))
                    .insert_header(("webhook-signature", signatures.join(" ")))
                    .send_body(payload.clone())
                    .await;
                let mut response = match sent {
                    // Nothing was sent: the next address may answer.
                    Err(SendRequestError::Connect(error)) => {
                        refused = format!("cannot connect: {error}");
                        continue;
                    }
                    Err(error) => return Err(format!("request failed: {error}")),
                    Ok(response) => response,
                };
                // The body is read (a little of it) so the connection can be used again.
                let _ = response.body().limit(4096).await;
                return Ok(response.status().as_u16());
            }
            Err(refused)
        };
        Ok(
            match actix_rt::time::timeout(self.settings.timeout, send).await {
                Err(_) => Outcome::failed(None, "timed out".into()),
                Ok(Err(error)) => Outcome::failed(None, error),
                Ok(Ok(status)) if (200..300).contains(&status) => {
                    Outcome::Done(Attempt::Delivered {
                        status: i64::from(status),
                    })
                }
                Ok(Ok(status)) => {
                    Outcome::failed(Some(i64::from(status)), format!("HTTP {status}"))
                }
            },
        )
    }

    /// Sends a call's follow-up email and records its id on the call.
    async fn email(&self, claimed: &ClaimedDelivery) -> Result<Outcome, StoreError> {
        let skipped = |reason: String| Ok(Outcome::Done(Attempt::Skipped { reason }));
        let Some(resend) = &self.settings.email else {
            return skipped("no email provider configured (RESEND_API_KEY)".into());
        };
        let message = claimed
            .payload
            .as_deref()
            .and_then(|payload| serde_json::from_str(payload).ok())
            .unwrap_or_default();
        let email = match follow_up::compose(&message, self.settings.follow_up_to.as_deref()) {
            Ok(email) => email,
            Err(reason) => return skipped(reason.to_string()),
        };
        let key = format!("follow-up/{}", claimed.delivery.id);
        match resend.send(&email, &key).await {
            Ok(email_id) => {
                let call = &claimed.delivery.call_id;
                self.store
                    .set_follow_up_email(call, &email_id, now_ms())
                    .await?;
                tracing::info!(call_id = %call, %email_id, "follow-up email sent");
                Ok(Outcome::Done(Attempt::Delivered { status: 200 }))
            }
            Err(error) if error.is_transient() => Ok(Outcome::failed(None, error.to_string())),
            Err(error) => Ok(Outcome::Done(Attempt::Failed {
                status: None,
                error: error.to_string(),
                retry_at: None,
            })),
        }
    }
}

/// How an attempt went, before the backoff decides a failure's next attempt.
enum Outcome {
    /// Final for this attempt.
    Done(Attempt),
    /// Failed; retried if the window allows.
    Failed { status: Option<i64>, error: String },
}

impl Outcome {
    fn failed(status: Option<i64>, error: String) -> Self {
        Self::Failed { status, error }
    }
}
