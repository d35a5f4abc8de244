//! A request's body must arrive within `HTTP_BODY_TIMEOUT` of its headers: a client dripping a
//! body (or announcing more than it sends) holds a worker's connection for that long at most, not
//! for ever. WebSocket upgrades (a `GET` with `Upgrade`) are left alone: their "body" is the
//! socket. Any other request claiming an upgrade gets the deadline like the rest.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage as _};
use futures_util::{stream, Stream, StreamExt as _};

/// Gives the request's body until `timeout` from now; past it, reading the body fails.
pub async fn body_deadline<B: MessageBody + 'static>(
    mut request: ServiceRequest,
    next: Next<B>,
    timeout: Duration,
) -> Result<ServiceResponse<B>, Error> {
    let upgrade =
        request.method() == Method::GET && request.headers().contains_key(header::UPGRADE);
    if !upgrade {
        let body = within(request.take_payload(), timeout);
        request.set_payload(Payload::Stream {
            payload: Box::pin(body),
        });
    }
    next.call(request).await
}

/// `payload`'s chunks until `timeout` has passed; then one error, and the end.
fn within(payload: Payload, timeout: Duration) -> impl Stream<Item = Result<Bytes, PayloadError>> {
    let deadline: Pin<Box<actix_rt::time::Sleep>> = Box::pin(actix_rt::time::sleep(timeout));
    stream::unfold(Some((payload, deadline)), move |state| async move {
        let (mut payload, mut deadline) = state?;
        tokio::select! {
            chunk = payload.next() => chunk.map(|chunk| (chunk, Some((payload, deadline)))),
            () = &mut deadline => {
                let late = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("request body not received within {timeout:?}"),
                );
                Some((Err(PayloadError::Io(late)), None))
            }
        }
    })
}
