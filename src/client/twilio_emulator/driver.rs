//! A call's driver: the task that carries out what its state machine asks for (callbacks, TwiML
//! fetches, the media stream) and tells it the time when a deadline comes. Results come back to
//! the machine through the registry; the driver ends once the call has ended and every action
//! asked for has been started (the callback queue finishes on its own).

use std::future::pending;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::call::{Action, Input};
use super::callee;
use super::clock::Now;
use super::observe::DeliveryKind;
use super::registry::Registry;
use super::settings::EmulatorSettings;
use super::webhooks::{Callbacks, Requester, Webhook};
use crate::client::sim::{StreamStart, TwilioSim};

/// Starts the driver of call `sid` on the current thread; it takes its actions from `actions`.
pub fn spawn(
    sid: String,
    registry: Arc<Registry>,
    settings: Arc<EmulatorSettings>,
    actions: mpsc::UnboundedReceiver<Vec<Action>>,
) {
    actix_rt::spawn(drive(sid, registry, settings, actions));
}

async fn drive(
    sid: String,
    registry: Arc<Registry>,
    settings: Arc<EmulatorSettings>,
    mut actions: mpsc::UnboundedReceiver<Vec<Action>>,
) {
    let sim = TwilioSim::new(&settings.agent).signed(settings.account.auth_token.expose());
    let requester = Requester {
        sim: Rc::new(sim),
        registry: registry.clone(),
        sid: sid.clone(),
    };
    let callbacks = Callbacks::start(settings.callback_order, requester.clone());
    // Dropping the sender stops the stream too: no stream outlives its call's driver.
    let mut stop_stream: Option<oneshot::Sender<()>> = None;
    loop {
        let deadline = registry.next_deadline(&sid);
        tokio::select! {
            batch = actions.recv() => {
                let Some(batch) = batch else { break };
                for action in batch {
                    match action {
                        Action::StatusCallback { url, params } => callbacks.send(Webhook {
                            kind: DeliveryKind::Status,
                            url,
                            params,
                        }),
                        Action::AmdCallback { url, params } => callbacks.send(Webhook {
                            kind: DeliveryKind::AsyncAmd,
                            url,
                            params,
                        }),
                        Action::Fetch { generation, url, params } => {
                            let requester = requester.clone();
                            actix_rt::spawn(async move {
                                let result = requester.fetch_twiml(url, params).await;
                                let input = Input::Fetched { generation, result };
                                requester.registry.handle(&requester.sid, input, Now::read());
                            });
                        }
                        Action::OpenStream { generation, url, parameters } => {
                            let (stop, stopped) = oneshot::channel();
                            stop_stream = Some(stop);
                            let requester = requester.clone();
                            let settings = settings.clone();
                            actix_rt::spawn(async move {
                                let start = StreamStart {
                                    account_sid: &settings.account.account_sid,
                                    call_sid: &requester.sid,
                                    custom_parameters: &parameters,
                                };
                                let (end, recording) = callee::answer(
                                    &requester.sim,
                                    &url,
                                    start,
                                    &settings.callee,
                                    stopped,
                                )
                                .await;
                                if let Some(recording) = recording {
                                    requester.registry.conversation(&requester.sid, recording);
                                }
                                let input = Input::StreamEnded { generation, end };
                                requester.registry.handle(&requester.sid, input, Now::read());
                            });
                        }
                        Action::StopStream => {
                            if let Some(stop) = stop_stream.take() {
                                let _ = stop.send(());
                            }
                        }
                    }
                }
            }
            () = sleep_until(deadline) => registry.handle(&sid, Input::Tick, Now::read()),
        }
        if registry.is_ended(&sid) && actions.is_empty() {
            break;
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => actix_rt::time::sleep_until(at.into()).await,
        None => pending().await,
    }
}
