//! A failing engine is restarted with backoff; one that keeps failing ends only its own call.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use futures_util::stream;
use phone_agent::client::sim::Received;
use phone_agent::engines;
use phone_agent_actors::engines::{CallContext, EngineError, SpeechToText, SttSession};
use tokio::sync::mpsc;

use crate::support::*;

/// Recognition whose first `failures` sessions of call `victim` drop their connection at once;
/// other calls get working sessions.
struct FlakyStt {
    /// The loopback recogniser the working sessions come from.
    working: Arc<dyn SpeechToText>,
    victim: String,
    failures: u32,
    opened: Arc<AtomicU32>,
}

impl SpeechToText for FlakyStt {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn open(&self, call: &CallContext) -> Result<SttSession, EngineError> {
        if call.call_sid.as_str() != self.victim {
            return self.working.open(call);
        }
        let attempt = self.opened.fetch_add(1, Ordering::SeqCst);
        if attempt >= self.failures {
            return self.working.open(call);
        }
        let (audio, _) = mpsc::channel(1);
        let error = EngineError::Connection {
            engine: "flaky",
            message: "connection reset".into(),
        };
        Ok(SttSession {
            audio,
            events: Box::pin(stream::iter([Err(error)])),
        })
    }
}

async fn server_with_flaky_stt(
    victim: String,
    failures: u32,
    opened: Arc<AtomicU32>,
) -> TestServer {
    let config = test_config(&[
        ("ENGINE_RESTART_BACKOFF", "10ms"),
        ("ENGINE_RESTART_MAX_BACKOFF", "40ms"),
        ("ENGINE_MAX_RESTARTS", "3"),
    ]);
    let mut engines = engines::loopback_set();
    engines.stt = Arc::new(FlakyStt {
        working: engines.stt.clone(),
        victim,
        failures,
        opened,
    });
    TestServer::start_with(&config, engines).await
}

#[actix_rt::test]
async fn a_failing_recogniser_is_restarted_and_no_audio_is_lost() {
    let opened = Arc::new(AtomicU32::new(0));
    let server = server_with_flaky_stt(call_sid(1), 2, opened.clone()).await;
    let (_, mut media) = server.call(&call_sid(1)).await;

    // Frames sent while the recogniser restarts are held for the next session; keep talking, as a
    // caller would, until audio comes back.
    let mut sent = 0;
    let first = within(async {
        loop {
            media.send_media(&frame(3, sent)).await.unwrap();
            sent += 1;
            let wait = actix_rt::time::timeout(std::time::Duration::from_millis(20), media.recv());
            if let Ok(Some(Received::Media(audio))) = wait.await {
                break audio;
            }
        }
    })
    .await;
    assert_eq!(
        opened.load(Ordering::SeqCst),
        3,
        "two failed sessions, then a good one"
    );
    // Every frame comes back, in order, from the very first.
    assert_eq!(first, frame(3, 0));
    for n in 1..sent {
        match next_non_mark(&mut media).await {
            Received::Media(audio) => assert_eq!(audio, frame(3, n), "frame {n} of {sent}"),
            other => panic!("expected media, got {other:?}"),
        }
    }
    media.send_stop().await.unwrap();
    assert_eq!(expect_close(&mut media).await.0, Some(1000));
    server.until_no_live_calls().await;
}

#[actix_rt::test]
async fn a_recogniser_that_keeps_failing_ends_only_its_call() {
    let opened = Arc::new(AtomicU32::new(0));
    let server = server_with_flaky_stt(call_sid(1), u32::MAX, opened.clone()).await;
    let (_, mut healthy) = server.call(&call_sid(2)).await;
    exchange(&mut healthy, 2, 0, 5).await;

    let (_, mut doomed) = server.call(&call_sid(1)).await;
    assert_eq!(
        expect_close(&mut doomed).await,
        (Some(1011), "engine failure".to_owned())
    );
    assert_eq!(
        opened.load(Ordering::SeqCst),
        4,
        "first session and three restarts"
    );

    // The other call streamed on, untouched.
    exchange(&mut healthy, 2, 5, 5).await;
    healthy.send_stop().await.unwrap();
    assert_eq!(expect_close(&mut healthy).await.0, Some(1000));
    server.until_no_live_calls().await;
}
