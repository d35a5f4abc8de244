//! The dispatcher: delivers the outbox's messages (see [`crate::store::outbox`]) to the clients'
//! endpoints, signed per Standard Webhooks, and sends follow-up emails.
//!
//! A pass takes the due messages, leaving out receivers already at their concurrency limit, claims
//! each with a lease and sends it on a task of its own; it runs every [`DISPATCH_TICK`] and again
//! whenever a delivery finishes, so a fast endpoint is fed as fast as it answers while a slow or
//! failing one holds at most [`DispatchSettings::per_receiver`] messages at a time and never
//! delays the others (or any call: the dispatcher only reads and writes the outbox).
//!
//! Each attempt checks the target again: the URL, then every address its name resolves to (no
//! loopback, private, link-local or metadata address unless `WEBHOOK_ALLOW_PRIVATE`), and the
//! request goes to the address checked, so a second lookup cannot swap it. No redirect is
//! followed. A 2xx answer delivers the message; anything else is retried with backoff until its
//! window ends, when it is dead.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use awc::error::SendRequestError;
use ring::rand::SystemRandom;
use tokio::sync::{watch, Notify};

use super::backoff::Backoff;
use super::follow_up;
use super::signature::{sign_standard, standard_key};
use super::target::{check_url, resolve, TargetPolicy};
use crate::email::resend::Resend;
use crate::store::outbox::{Attempt, Channel, ClaimedDelivery};
use crate::store::webhook_endpoints::ACCOUNT_SECRET;
use crate::store::{now_ms, Store, StoreError};

/// How often due messages are looked for when nothing else wakes the dispatcher.
pub const DISPATCH_TICK: Duration = Duration::from_millis(200);

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

/// Starts the dispatcher on the current arbiter, named `instance` in its claims; it runs until
/// `stop` says `true` (attempts under way then finish on their own, or are made again by the next
/// server once their claims' leases run out).
pub fn start(
    store: Store,
    settings: DispatchSettings,
    instance: String,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(%instance, "webhook dispatcher started");
    let dispatcher = Rc::new(Dispatcher {
        store,
        settings,
        instance,
        in_flight: RefCell::new(HashMap::new()),
        finished: Notify::new(),
    });
    actix_rt::spawn(async move {
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
    });
}

struct Dispatcher {
    store: Store,
    settings: DispatchSettings,
    instance: String,
    /// Messages in flight, by receiver.
    in_flight: RefCell<HashMap<String, usize>>,
    /// Signalled when a delivery finishes (there may be room for the next).
    finished: Notify,
}

impl Dispatcher {
    /// Claims what is due and has room, and starts sending it.
    async fn pass(self: &Rc<Self>, now_ms: i64) -> Result<(), StoreError> {
        let busy: Vec<String> = self
            .in_flight
            .borrow()
            .iter()
            .filter(|(_, n)| **n >= self.settings.per_receiver)
            .map(|(receiver, _)| receiver.clone())
            .collect();
        for due in self.store.due_deliveries(now_ms, PASS_BATCH, &busy).await? {
            let total: usize = self.in_flight.borrow().values().sum();
            let here = self.in_flight.borrow().get(&due.receiver).copied();
            if total >= self.settings.total || here.unwrap_or(0) >= self.settings.per_receiver {
                continue;
            }
            let lease = self.lease_ms();
            let Some(claimed) = self
                .store
                .claim_delivery(&due.id, &self.instance, now_ms, lease)
                .await?
            else {
                continue;
            };
            *self
                .in_flight
                .borrow_mut()
                .entry(due.receiver.clone())
                .or_default() += 1;
            let dispatcher = self.clone();
            actix_rt::spawn(async move {
                dispatcher.deliver(claimed).await;
                let mut in_flight = dispatcher.in_flight.borrow_mut();
                if let Some(n) = in_flight.get_mut(&due.receiver) {
                    *n -= 1;
                    if *n == 0 {
                        in_flight.remove(&due.receiver);
                    }
                }
                dispatcher.finished.notify_one();
            });
        }
        Ok(())
    }

    /// A claim outlives the attempt (bounded by its timeout) by as much again and a second, so
    /// a live server never loses one, while a dead server's claims are free soon after.
    fn lease_ms(&self) -> i64 {
        i64::try_from((self.settings.timeout * 2 + Duration::from_secs(1)).as_millis())
            .unwrap_or(i64::MAX)
    }

    /// Makes one attempt and records how it ended.
    async fn deliver(&self, claimed: ClaimedDelivery) {
        let id = claimed.delivery.id.clone();
        let attempt = match claimed.delivery.channel {
            Channel::Webhook => self.post(&claimed).await,
            Channel::Email => self.email(&claimed).await,
        };
        let attempt = match attempt {
            Ok(attempt) => attempt,
            Err(error) => {
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
            .finish_attempt(&id, &self.instance, &attempt, now)
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
        let secrets = if owner == ACCOUNT_SECRET {
            Some(self.store.account_secret(now).await?)
        } else {
            self.store.signing_secrets(owner, now).await?
        };
        let Some(secrets) = secrets else {
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
