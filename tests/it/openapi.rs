//! The OpenAPI document against the running server: the served document is the one checked into
//! `docs/`, and every operation it names is routed, at its method, guarded by exactly the scope
//! it documents.

use awc::http::Method;
use phone_agent::guard::token::Scope;
use serde_json::Value;

use crate::support::*;

/// The served document.
async fn served(server: &TestServer) -> Value {
    let token = server.token(&[Scope::CallsRead]).await;
    let (status, headers, document) = json(
        server
            .request(Method::GET, "/api/openapi.json", Some(&token))
            .send(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    document
}

#[actix_rt::test]
async fn the_served_document_is_the_one_in_docs() {
    let server = TestServer::start(&[]).await;
    let document = served(&server).await;
    assert_eq!(document["openapi"], "3.1.0");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(
        document == checked_in,
        "docs/openapi.json is stale: cargo run -- openapi > docs/openapi.json"
    );
    let (status, _, _) = json(
        server
            .request(Method::GET, "/api/openapi.json", None)
            .send(),
    )
    .await;
    assert_eq!(status, 401, "the document is for clients with a token");
}

/// `path` with its parameters filled in with values that name nothing.
fn concrete(path: &str) -> String {
    path.replace("{id}", "call_none")
        .replace("{number}", "%2B14155550100")
}

/// The scope an operation documents (`None` for any token).
fn documented_scope(operation: &Value) -> Option<Scope> {
    let scopes = operation["security"][0]["bearer"]
        .as_array()
        .expect("security");
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str().unwrap()).collect();
    match names[..] {
        [] => None,
        [name] => Some(
            Scope::ALL
                .into_iter()
                .find(|s| s.name() == name)
                .expect(name),
        ),
        _ => panic!("one scope per operation: {names:?}"),
    }
}

#[actix_rt::test]
async fn every_documented_operation_is_routed_and_needs_the_scope_it_names() {
    let server = TestServer::start(&[]).await;
    let document = served(&server).await;
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 13, "{:?}", paths.keys());
    for (path, item) in paths {
        let url = concrete(path);
        let methods: Vec<&String> = item.as_object().unwrap().keys().collect();
        for (method, operation) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let scope = documented_scope(operation);
            if let Some(scope) = scope {
                let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != scope).collect();
                let without = server.token(&others).await;
                let response = server.request(method.clone(), &url, Some(&without)).send();
                let (status, _, body) = json(response).await;
                assert_eq!(status, 403, "{method} {path} without {scope:?}: {body}");
            }
            let with = server
                .token(&scope.map_or(vec![Scope::CallsRead], |s| vec![s]))
                .await;
            // The status only: an event stream's body never ends.
            let response = server.request(method.clone(), &url, Some(&with)).send();
            let status = within(response).await.expect("server answers").status();
            assert!(
                ![403, 405].contains(&status.as_u16()),
                "{method} {path} with {scope:?}: {status}"
            );
        }
        let unserved = [Method::GET, Method::POST, Method::DELETE, Method::PATCH]
            .into_iter()
            .find(|m| !methods.contains(&&m.as_str().to_lowercase()))
            .unwrap();
        let token = server.token(&Scope::ALL).await;
        let (status, _, _) =
            json(server.request(unserved.clone(), &url, Some(&token)).send()).await;
        assert_eq!(status, 405, "{unserved} {path} is not documented");
    }
}

/// `url` with the first letter of each path segment percent-encoded: `/api/calls` →
/// `/%61pi/%63alls`. The router decodes it and reaches the same operation.
fn letters_encoded(url: &str) -> String {
    url.split('/')
        .map(|segment| match segment.chars().next() {
            Some(first) if first.is_ascii_alphabetic() => {
                format!("%{:02X}{}", first as u8, &segment[1..])
            }
            _ => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[actix_rt::test]
async fn an_encoded_path_is_guarded_as_the_operation_it_reaches() {
    let server = TestServer::start(&[
        ("RATE_LIMIT_API_READ", "450/min"),
        ("RATE_LIMIT_API_WRITE", "45/min"),
    ])
    .await;
    let document = served(&server).await;
    let all = server.token(&Scope::ALL).await;
    for (path, item) in document["paths"].as_object().unwrap() {
        let url = letters_encoded(&concrete(path));
        assert!(url.starts_with("/%61pi/"), "{url}");
        for (method, operation) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            if let Some(scope) = documented_scope(operation) {
                let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != scope).collect();
                let without = server.token(&others).await;
                let response = server.request(method.clone(), &url, Some(&without)).send();
                let (status, _, body) = json(response).await;
                assert_eq!(status, 403, "{method} {url} without {scope:?}: {body}");
            }
            let response = server.request(method.clone(), &url, Some(&all)).send();
            let response = within(response).await.expect("server answers");
            assert!(
                ![401, 403, 405].contains(&response.status().as_u16()),
                "{method} {url}: {}",
                response.status()
            );
            let limit = if [Method::GET, Method::HEAD].contains(&method) {
                "450"
            } else {
                "45"
            };
            assert_eq!(
                response.headers().get("ratelimit-limit").unwrap(),
                limit,
                "{method} {url} is limited as its class"
            );
        }
    }
}
