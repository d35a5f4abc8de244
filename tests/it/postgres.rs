//! PostgreSQL storage: the same schema, migrations and queries as SQLite, on a real server
//! started for the test (skipped, saying why, when no PostgreSQL binaries are installed;
//! `scripts/test.sh` installs them from Debian packages).

use awc::http::Method;
use phone_agent::guard::token::Scope;
use serde_json::json;

use crate::support::postgres;
use crate::support::*;

#[actix_rt::test]
async fn the_server_runs_on_postgresql() {
    let Some(postgres) = postgres::available() else {
        return;
    };
    let url = postgres.url();
    // Both servers below seal and open with the same key, as instances of one deployment do.
    let settings = [
        ("DATABASE_URL", url.as_str()),
        ("DATA_KEY", "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="),
    ];
    let server = TestServer::start(&settings).await;
    let admin = server.token(&[Scope::TokensAdmin, Scope::CallsRead]).await;
    let (status, _, created) = json(
        server
            .request(Method::POST, "/api/tokens", Some(&admin))
            .send_json(
                &json!({ "name": "reader", "scopes": ["calls:read"], "expires_in_seconds": 60 }),
            ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let reader = created["token"].as_str().unwrap().to_owned();
    let id = created["record"]["id"].as_str().unwrap();
    let (status, _, rotated) = json(
        server
            .request(
                Method::POST,
                &format!("/api/tokens/{id}/rotate"),
                Some(&admin),
            )
            .send(),
    )
    .await;
    assert_eq!(status, 201, "{rotated}");

    let (answer, mut media) = server.call(&call_sid(3)).await;
    exchange(&mut media, 3, 0, 2).await;
    media.send_stop().await.unwrap();
    let (status, _, call) = json(
        server
            .request(
                Method::GET,
                &format!("/api/calls/{}", answer.call_sid),
                Some(&reader),
            )
            .send(),
    )
    .await;
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["from"], "+1******0100");

    // The data key is rotated: `phone-agent rekey` re-seals everything under the new key (the
    // old one in DATA_KEY_PREVIOUS), after which the new key alone opens it all.
    server.server.shutdown();
    let new_key = "3q2+796tvu/erb7v3q2+796tvu/erb7v3q2+796tvu8=";
    let dir = tempfile::tempdir().unwrap();
    // Off the runtime's thread: the first server's last writes (its actors run on this thread)
    // must be able to finish and release their rows while rekey runs.
    let (url_owned, old_key, dir_path) =
        (url.clone(), settings[1].1.to_owned(), dir.path().to_owned());
    let rekey = actix_rt::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_phone-agent"))
            .arg("rekey")
            .env_clear()
            .envs([
                ("DATABASE_URL", url_owned.as_str()),
                ("DATA_KEY", new_key),
                ("DATA_KEY_PREVIOUS", old_key.as_str()),
                ("DATA_DIR", &dir_path.display().to_string()),
            ])
            .current_dir(&dir_path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&rekey.stdout);
    assert!(rekey.status.success(), "{rekey:?}");
    assert!(printed.contains("calls.from_number=1 "), "{printed}");

    // A second server on the same database finds the schema migrated and the tokens there.
    let again = TestServer::start(&[settings[0], ("DATA_KEY", new_key)]).await;
    let (status, _, list) = json(
        again
            .request(Method::GET, "/api/calls", Some(&reader))
            .send(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["calls"].as_array().unwrap().len(), 1);
    assert_eq!(
        list["calls"][0]["from"], "+1******0100",
        "opened by the new key"
    );
}

#[actix_rt::test]
async fn the_server_reaches_a_postgresql_that_takes_tls_only() {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a self-signed certificate");
    let cert = generated.cert.pem();
    let Some(postgres) =
        postgres::available_with_tls(&cert, &generated.signing_key.serialize_pem())
    else {
        return;
    };
    let root = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(root.path(), &cert).unwrap();
    let url = postgres.url();
    let data_key = ("DATA_KEY", "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=");
    // Encrypted (require), and encrypted with the server's certificate checked against the
    // operator's CA and the host name (verify-full).
    let verified = format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        root.path().display()
    );
    for url in [format!("{url}?sslmode=require"), verified] {
        let server = TestServer::start(&[("DATABASE_URL", url.as_str()), data_key]).await;
        let token = server.token(&[Scope::CallsRead]).await;
        let (status, _, _) = json(
            server
                .request(Method::GET, "/api/calls", Some(&token))
                .send(),
        )
        .await;
        assert_eq!(status, 200, "{url}");
    }
    // This server refuses cleartext, so a plain connection cannot have been what worked.
    let plain = phone_agent::store::Store::open(
        &format!("{url}?sslmode=disable"),
        phone_agent::store::crypto::DataKey::from_base64(data_key.1).unwrap(),
    )
    .await;
    assert!(plain.is_err(), "cleartext refused");
}
