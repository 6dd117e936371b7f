//! Docker's token flow: a challenge that names the realm and scope, tokens traded for
//! Basic credentials and limited to what those may do, refused when forged.

use reqwest::{Method, StatusCode};

use crate::harness::{As, Registry, assert_error, sha256};

/// A token from the realm for `scopes`, as `who`: (status, token).
async fn token(registry: &Registry, who: As, scopes: &[&str]) -> (StatusCode, String) {
    let query: Vec<String> = scopes.iter().map(|s| format!("scope={s}")).collect();
    let path = format!("/v2/token?service=skiff&{}", query.join("&"));
    let response = registry.send(registry.request(who, Method::GET, &path)).await;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    if status == StatusCode::OK {
        assert_eq!(body["token"], body["access_token"]);
        assert_eq!(body["expires_in"], 300);
        assert!(body["issued_at"].as_str().unwrap().ends_with('Z'), "{body}");
    }
    (status, body["token"].as_str().unwrap_or_default().to_owned())
}

fn bearer(registry: &Registry, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
    registry.request(As::Nobody, method, path).bearer_auth(token)
}

#[tokio::test]
async fn clients_are_sent_to_the_token_realm_and_get_what_they_may_do() {
    let registry = Registry::start().await;
    let host = registry.base.trim_start_matches("http://").to_owned();
    let digest = registry.push_blob("alice/app", b"layer").await;
    registry.push_blob("bob/app", b"layer").await;

    let anonymous = registry.send(registry.request(As::Nobody, Method::POST, "/v2/alice/app/blobs/uploads/")).await;
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert_eq!(
        challenge,
        format!("Bearer realm=\"http://{host}/v2/token\",service=\"skiff\",scope=\"repository:alice/app:pull,push\"")
    );
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    // `docker login`: no scope, and the credentials must be right.
    assert_eq!(token(&registry, As::Alice, &[]).await.0, StatusCode::OK);
    let wrong = registry.request(As::Nobody, Method::GET, "/v2/token?service=skiff").basic_auth("alice", Some("guess"));
    assert_eq!(registry.send(wrong).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(token(&registry, As::Nobody, &[]).await.0, StatusCode::UNAUTHORIZED);

    // Alice asks for her repository and Bob's: she gets hers.
    let (status, alice) =
        token(&registry, As::Alice, &["repository:alice/app:pull,push", "repository:bob/app:pull,push"]).await;
    assert_eq!(status, StatusCode::OK);
    let base = registry.send(bearer(&registry, Method::GET, "/v2/", &alice)).await;
    assert_eq!(base.status(), StatusCode::OK);
    let pull = registry.send(bearer(&registry, Method::GET, &format!("/v2/alice/app/blobs/{digest}"), &alice)).await;
    assert_eq!(pull.status(), StatusCode::OK);
    assert_eq!(pull.bytes().await.unwrap().as_ref(), b"layer");
    let push = registry.send(bearer(&registry, Method::POST, "/v2/alice/app/blobs/uploads/", &alice)).await;
    assert_eq!(push.status(), StatusCode::ACCEPTED);
    let theirs = registry.send(bearer(&registry, Method::GET, &format!("/v2/bob/app/blobs/{digest}"), &alice)).await;
    let refused = theirs.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(refused.ends_with(",error=\"insufficient_scope\""), "{refused}");
    assert_error(theirs, StatusCode::UNAUTHORIZED, "DENIED").await;
    let elsewhere = registry.send(bearer(&registry, Method::GET, "/v2/alice/other/tags/list", &alice)).await;
    assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED, "a repository the token does not name is challenged");
    let wanted = elsewhere.headers()["www-authenticate"].to_str().unwrap();
    assert!(wanted.contains("scope=\"repository:alice/other:pull\""), "{wanted}");

    // A pull-only token is challenged for push; the platform's service token gets all.
    let (_, pull_only) = token(&registry, As::Alice, &["repository:alice/app:pull"]).await;
    let push = registry.send(bearer(&registry, Method::POST, "/v2/alice/app/blobs/uploads/", &pull_only)).await;
    assert_eq!(push.status(), StatusCode::UNAUTHORIZED);
    let (_, service) = token(&registry, As::Service, &["repository:bob/app:pull,push"]).await;
    let push = registry.send(bearer(&registry, Method::POST, "/v2/bob/app/blobs/uploads/", &service)).await;
    assert_eq!(push.status(), StatusCode::ACCEPTED);

    // A token altered by its holder is refused.
    let (payload, signature) = alice.rsplit_once('.').unwrap();
    let tampered = format!("{payload}x.{signature}");
    let refused = registry.send(bearer(&registry, Method::GET, "/v2/", &tampered)).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let catalog = registry.send(bearer(&registry, Method::GET, "/v2/_catalog", &alice)).await;
    assert_eq!(catalog.status(), StatusCode::OK);
    assert_eq!(sha256(b"layer"), digest);
}
