//! In-process TLS (`TLS_CERT`/`TLS_KEY`) end to end with a certificate generated for the test:
//! the API over HTTPS and a call's webhook and media over `https://`/`wss://`, with TLS 1.3 and
//! with TLS 1.2 alone; a TLS 1.1 ClientHello, written out byte by byte from RFC 4346, is refused
//! with a `protocol_version` alert.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use awc::http::Method;
use phone_agent::client::sim::TwilioSim;
use phone_agent::guard::token::Scope;

use crate::support::*;

/// A server speaking TLS with a certificate for `127.0.0.1`, and a root store trusting it.
async fn tls_server() -> (TestServer, rustls::RootCertStore, tempfile::TempDir) {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a self-signed certificate");
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let server = TestServer::start(&[
        ("TLS_CERT", cert.to_str().unwrap()),
        ("TLS_KEY", key.to_str().unwrap()),
    ])
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(generated.cert.der().clone()).unwrap();
    (server, roots, files)
}

/// A client configuration trusting `roots` and speaking only `versions`.
fn client_config(
    roots: &rustls::RootCertStore,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    Arc::new(config)
}

#[actix_rt::test]
async fn the_api_and_a_call_work_over_tls_1_3_and_1_2() {
    let (server, roots, _files) = tls_server().await;
    let base = format!("https://{}", server.server.local_addr);
    let token = server.token(&[Scope::CallsRead]).await;
    let versions: [&[&'static rustls::SupportedProtocolVersion]; 2] =
        [&[&rustls::version::TLS13], &[&rustls::version::TLS12]];
    for (n, versions) in (1..).zip(versions) {
        let config = client_config(&roots, versions);
        let https = awc::Client::builder()
            .connector(awc::Connector::new().rustls_0_23(config.clone()))
            .finish();
        let (status, _, _) = json(
            https
                .request(Method::GET, format!("{base}/api/calls"))
                .bearer_auth(&token)
                .send(),
        )
        .await;
        assert_eq!(status, 200, "{versions:?}");

        let sim = TwilioSim::new(base.clone())
            .with_tls(config)
            .signing(TWILIO_AUTH_TOKEN, PUBLIC_HOST);
        let answer = sim
            .place_call(&call_sid(n))
            .await
            .expect("webhook over HTTPS");
        let mut media = sim.connect(&answer).await.expect("media over wss");
        exchange(&mut media, 7, 0, 3).await;
        media.send_stop().await.unwrap();
    }
    // Plain HTTP on the TLS port gets nothing.
    let plain = awc::Client::new()
        .get(format!("http://{}/health", server.server.local_addr))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

/// A TLS 1.1 ClientHello (RFC 4346 §7.4.1.2), no `supported_versions` extension, with what the
/// server needs before it looks at the version (AES-GCM suites it has and a
/// `signature_algorithms` extension), so the version alone is what fails.
fn tls_1_1_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend([0x11; 32]); // random
    body.push(0); // session_id, empty
                  // ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256, AES128-SHA
    body.extend([0x00, 0x06, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x2f]);
    // compression: null
    body.extend([0x01, 0x00]);
    // extensions: signature_algorithms (13) = [ecdsa_secp256r1_sha256]
    body.extend([0x00, 0x08, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]);
    let mut handshake = vec![0x01, 0x00, 0x00, body.len() as u8]; // client_hello
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8]; // handshake record
    record.extend(handshake);
    record
}

#[actix_rt::test]
async fn tls_below_1_2_is_refused_with_a_protocol_version_alert() {
    let (server, _roots, _files) = tls_server().await;
    let addr = server.server.local_addr;
    let answer = actix_rt::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket.write_all(&tls_1_1_client_hello()).unwrap();
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer);
        answer
    })
    .await
    .unwrap();
    // An alert record (21) whose description is protocol_version (70), and nothing more.
    assert_eq!(answer.first(), Some(&0x15), "{answer:02x?}");
    assert_eq!(answer.get(6), Some(&70), "{answer:02x?}");
    assert_eq!(answer.len(), 7, "{answer:02x?}");
}
