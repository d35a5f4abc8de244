//! One streaming chat completion over awc: the request sent, the answer's event stream read as it
//! arrives, text and tool calls handed on through a channel.
//!
//! awc is `!Send`, so the exchange runs as a task on the calling arbiter (the call's) and the
//! reply travels through a channel the (`Send`) reply stream reads. Dropping that reader cancels
//! the exchange at once: the task sees the channel close and drops the response, which closes the
//! connection, so the provider generates (and bills) no more tokens.
//!
//! Each wait is bounded by the stall timeout: for the answer's head, then between any two pieces
//! of its body.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use super::sse::{SseDecoder, SseError};
use super::wire::{Chunk, ErrorBody, ToolCall, ToolCallError, ToolCalls};
use super::LlmSettings;
use crate::outbound;

/// The largest error body read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What a completion yields, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// More of the reply's text.
    Text(String),
    /// The tool calls of the reply, once complete.
    ToolCalls(Vec<ToolCall>),
}

/// Why a completion failed. Never carries the key or the conversation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// No connection could be made.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The API refused the request.
    #[error("HTTP {status}{}", kind.as_deref().map(|k| format!(" ({k})")).unwrap_or_default())]
    Refused {
        /// The status.
        status: u16,
        /// The error body's `type` or `code`, when it had one.
        kind: Option<String>,
        /// `Retry-After`, when the API said when to come back.
        retry_after: Option<Duration>,
    },
    /// Nothing arrived for the stall timeout.
    #[error("no data for {0:?}")]
    Stalled(Duration),
    /// The connection broke, or the stream ended before the reply did.
    #[error("connection lost: {0}")]
    Lost(String),
    /// The stream is not what the API documents.
    #[error("malformed stream: {0}")]
    Malformed(String),
    /// The tool calls cannot be used.
    #[error(transparent)]
    ToolCall(#[from] ToolCallError),
}

impl LlmError {
    /// A short, fixed name of the kind of fault, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Refused { status: 401, .. } | Self::Refused { status: 403, .. } => "auth",
            Self::Refused { status: 429, .. } => "rate_limited",
            Self::Refused { status, .. } if *status >= 500 => "server_error",
            Self::Refused { .. } => "refused",
            Self::Stalled(_) => "stall",
            Self::Lost(_) => "lost",
            Self::Malformed(_) | Self::ToolCall(_) => "malformed",
        }
    }
}

impl From<SseError> for LlmError {
    fn from(error: SseError) -> Self {
        Self::Malformed(error.to_string())
    }
}

/// Starts a completion of `body` (a serialized [`super::wire::ChatRequest`]) on the current
/// arbiter; its output arrives on the receiver, which ends after the reply or the first error.
pub fn start(
    settings: Arc<LlmSettings>,
    body: Bytes,
) -> mpsc::Receiver<Result<Completion, LlmError>> {
    let (sender, receiver) = mpsc::channel(64);
    actix_rt::spawn(async move {
        let cancelled = sender.clone();
        tokio::select! {
            () = cancelled.closed() => {}
            result = run(&settings, body, &sender) => {
                if let Err(error) = result {
                    let _ = sender.send(Err(error)).await;
                }
            }
        }
    });
    receiver
}

/// The exchange; `Ok` once the reply ended (or nobody listens any more).
async fn run(
    settings: &LlmSettings,
    body: Bytes,
    out: &mpsc::Sender<Result<Completion, LlmError>>,
) -> Result<(), LlmError> {
    let stall = settings.stall_timeout;
    let mut request = outbound::client(settings.connect_timeout)
        .post(format!("{}/chat/completions", settings.base_url));
    if !settings.api_key.expose().is_empty() {
        request = request.bearer_auth(settings.api_key.expose());
    }
    let request = request
        .insert_header(("content-type", "application/json"))
        .insert_header(("accept", "text/event-stream"))
        .send_body(body);
    let mut response = tokio::time::timeout(stall, request)
        .await
        .map_err(|_| LlmError::Stalled(stall))?
        .map_err(|error| match error {
            awc::error::SendRequestError::Connect(error) => LlmError::Connect(error.to_string()),
            other => LlmError::Lost(other.to_string()),
        })?;
    let status = response.status().as_u16();
    if status != 200 {
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok()?.trim().parse().ok())
            .map(Duration::from_secs);
        let body = tokio::time::timeout(stall, response.body().limit(MAX_ERROR_BODY)).await;
        let kind = body
            .ok()
            .and_then(Result::ok)
            .and_then(|body| serde_json::from_slice::<ErrorBody>(&body).ok())
            .and_then(|body| {
                let code = body.error.code.map(|code| match code {
                    serde_json::Value::String(code) => code,
                    other => other.to_string(),
                });
                body.error.kind.or(code)
            });
        return Err(LlmError::Refused {
            status,
            kind,
            retry_after,
        });
    }
    let mut decoder = SseDecoder::default();
    let mut calls = ToolCalls::default();
    let mut finished = false;
    loop {
        let piece = tokio::time::timeout(stall, response.next())
            .await
            .map_err(|_| LlmError::Stalled(stall))?;
        let bytes = match piece {
            None if finished => break,
            None => return Err(LlmError::Lost("the stream ended before the reply".into())),
            Some(Err(error)) => return Err(LlmError::Lost(error.to_string())),
            Some(Ok(bytes)) => bytes,
        };
        for data in decoder.push(&bytes)? {
            if data == "[DONE]" {
                return send_calls(calls, out).await;
            }
            let chunk: Chunk = serde_json::from_str(&data)
                .map_err(|error| LlmError::Malformed(format!("chunk: {error}")))?;
            for choice in chunk.choices {
                if let Some(text) = choice.delta.content.filter(|text| !text.is_empty()) {
                    if out.send(Ok(Completion::Text(text))).await.is_err() {
                        return Ok(());
                    }
                }
                for delta in choice.delta.tool_calls.into_iter().flatten() {
                    calls.push(delta);
                }
                finished |= choice.finish_reason.is_some();
            }
        }
    }
    send_calls(calls, out).await
}

async fn send_calls(
    calls: ToolCalls,
    out: &mpsc::Sender<Result<Completion, LlmError>>,
) -> Result<(), LlmError> {
    if !calls.is_empty() {
        let _ = out.send(Ok(Completion::ToolCalls(calls.finish()?))).await;
    }
    Ok(())
}
