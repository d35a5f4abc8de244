//! The requests the emulator makes to the server, as Twilio makes them: form POSTs signed over
//! the URL as given (through [`TwilioSim::post_form`]), each noted in the registry with its
//! answer. A call's status and detection callbacks go through one queue, so they arrive in order
//! (Twilio does not retry them); shuffled, they are held until the call ends and then sent out
//! of order.

use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::observe::{Delivery, DeliveryKind};
use super::registry::Registry;
use super::settings::CallbackOrder;
use crate::client::sim::TwilioSim;

/// One callback to send.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Status or detection.
    pub kind: DeliveryKind,
    /// The URL, as given.
    pub url: String,
    /// The form.
    pub params: Vec<(String, String)>,
}

/// A call's callback queue; dropping it lets the queue finish (and, shuffled, send).
pub struct Callbacks {
    queue: mpsc::UnboundedSender<Webhook>,
}

/// Who sends, and for which call.
#[derive(Clone)]
pub struct Requester {
    /// Signs and posts.
    pub sim: Rc<TwilioSim>,
    /// Where deliveries are noted.
    pub registry: Arc<Registry>,
    /// The call.
    pub sid: String,
}

impl Callbacks {
    /// Starts the queue of `requester`'s call on the current thread.
    pub fn start(order: CallbackOrder, requester: Requester) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        actix_rt::spawn(deliver(order, pending, requester));
        Self { queue }
    }

    /// Queues `webhook`.
    pub fn send(&self, webhook: Webhook) {
        // The queue lives as long as this handle: sending cannot fail.
        let _ = self.queue.send(webhook);
    }
}

async fn deliver(
    order: CallbackOrder,
    mut pending: mpsc::UnboundedReceiver<Webhook>,
    requester: Requester,
) {
    match order {
        CallbackOrder::InOrder => {
            while let Some(webhook) = pending.recv().await {
                requester.post(webhook).await;
            }
        }
        CallbackOrder::Shuffled => {
            let mut held = Vec::new();
            while let Some(webhook) = pending.recv().await {
                held.push(webhook);
            }
            let random = ring::rand::SystemRandom::new();
            let order = out_of_order(held.len(), |bound| random_below(&random, bound));
            let mut held: Vec<Option<Webhook>> = held.into_iter().map(Some).collect();
            for index in order {
                if let Some(webhook) = held[index].take() {
                    requester.post(webhook).await;
                }
            }
        }
    }
}

impl Requester {
    /// Posts `webhook` and notes it; returns the answer, if any.
    pub async fn post(&self, webhook: Webhook) -> Option<crate::client::sim::FormAnswer> {
        let answer = self.sim.post_form(&webhook.url, &webhook.params).await;
        if let Err(error) = &answer {
            tracing::warn!(call_sid = %self.sid, %error, "webhook not delivered");
        }
        self.registry.delivered(
            &self.sid,
            Delivery {
                kind: webhook.kind,
                url: webhook.url,
                params: webhook.params,
                answer: answer
                    .as_ref()
                    .map(|answer| answer.status)
                    .map_err(ToString::to_string),
            },
        );
        answer.ok()
    }

    /// Fetches TwiML from `url`: the document, or the failure as Twilio's notification names it.
    pub async fn fetch_twiml(
        &self,
        url: String,
        params: Vec<(String, String)>,
    ) -> Result<String, String> {
        let webhook = Webhook {
            kind: DeliveryKind::Voice,
            url,
            params,
        };
        let answer = self
            .post(webhook)
            .await
            .ok_or_else(|| "11200 HTTP retrieval failure: no answer".to_owned())?;
        if !(200..300).contains(&answer.status) {
            return Err(format!("11200 HTTP retrieval failure: {}", answer.status));
        }
        let media_type = answer.content_type.split(';').next().unwrap_or_default();
        if !["text/xml", "application/xml"].contains(&media_type.trim()) {
            return Err(format!(
                "12300 Invalid Content-Type: {:?}",
                answer.content_type
            ));
        }
        Ok(answer.body)
    }
}

/// An order of `len` items that is never the original one (when there are two or more), from a
/// Fisher–Yates shuffle; `random(bound)` is a number below `bound`.
pub fn out_of_order(len: usize, mut random: impl FnMut(usize) -> usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    for i in (1..len).rev() {
        order.swap(i, random(i + 1));
    }
    if len > 1 && order.iter().enumerate().all(|(i, &j)| i == j) {
        order.rotate_left(1);
    }
    order
}

fn random_below(random: &ring::rand::SystemRandom, bound: usize) -> usize {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0_u8; 8];
    random.fill(&mut bytes).expect("system randomness");
    (u64::from_le_bytes(bytes) % bound as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shuffle_is_a_permutation_and_never_the_original_order() {
        // A "random" source that never swaps would leave the order as it was.
        assert_eq!(out_of_order(4, |bound| bound - 1), vec![1, 2, 3, 0]);
        let mut seed = 7_usize;
        for len in 0..8 {
            let mut order = out_of_order(len, |bound| {
                seed = seed.wrapping_mul(31).wrapping_add(17);
                seed % bound
            });
            if len > 1 {
                assert!(order.iter().enumerate().any(|(i, &j)| i != j));
            }
            order.sort_unstable();
            assert_eq!(order, (0..len).collect::<Vec<_>>());
        }
    }
}
