//! Hostile and mistaken input: tenants, names, digests, broken uploads.

use reqwest::{Method, StatusCode};

use crate::harness::{As, Registry, assert_error, header, sha256, with_query};

#[tokio::test]
async fn users_reach_only_their_own_repositories() {
    let registry = Registry::start().await;
    let digest = registry.push_blob("alice/app", b"private layer").await;
    let mine = registry.send(registry.request(As::Alice, Method::GET, &format!("/v2/alice/app/blobs/{digest}"))).await;
    assert_eq!(mine.status(), StatusCode::OK);
    let theirs = registry.send(registry.request(As::Bob, Method::GET, &format!("/v2/alice/app/blobs/{digest}"))).await;
    assert_error(theirs, StatusCode::FORBIDDEN, "DENIED").await;
    let push = registry.send(registry.request(As::Bob, Method::POST, "/v2/alice/app/blobs/uploads/")).await;
    assert_error(push, StatusCode::FORBIDDEN, "DENIED").await;
    let anonymous =
        registry.send(registry.request(As::Nobody, Method::GET, &format!("/v2/alice/app/blobs/{digest}"))).await;
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    let wrong_password =
        registry.send(registry.request(As::Nobody, Method::GET, "/v2/").basic_auth("alice", Some("guess")));
    assert_eq!(wrong_password.await.status(), StatusCode::UNAUTHORIZED);

    // A blob in Bob's repository is not reachable through a mount from Alice's.
    let mount = registry
        .send(registry.request(
            As::Bob,
            Method::POST,
            &format!("/v2/bob/app/blobs/uploads/?mount={digest}&from=alice/app"),
        ))
        .await;
    assert_eq!(mount.status(), StatusCode::ACCEPTED, "no mount without read access to `from`");
    let head = registry.send(registry.request(As::Bob, Method::HEAD, &format!("/v2/bob/app/blobs/{digest}"))).await;
    assert_eq!(head.status(), StatusCode::NOT_FOUND);

    // The catalog shows each user their own repositories.
    registry.push_blob("bob/app", b"x").await;
    registry.push_image("bob/app", "v1", b"bob layer").await;
    registry.push_image("alice/app", "v1", b"alice layer").await;
    let catalog = registry.send(registry.request(As::Bob, Method::GET, "/v2/_catalog")).await;
    let body: serde_json::Value = catalog.json().await.unwrap();
    assert_eq!(body["repositories"], serde_json::json!(["bob/app"]));
}

#[tokio::test]
async fn an_upload_cannot_be_continued_from_another_repository_or_user() {
    let registry = Registry::start().await;
    let started = registry.send(registry.request(As::Alice, Method::POST, "/v2/alice/one/blobs/uploads/")).await;
    let location = header(&started, "location");
    let id = location.rsplit('/').next().unwrap().to_owned();
    let elsewhere = registry
        .send(registry.request(As::Alice, Method::PATCH, &format!("/v2/alice/two/blobs/uploads/{id}")).body("x"))
        .await;
    assert_error(elsewhere, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let by_service = registry.send(registry.request(As::Service, Method::PATCH, &location).body("x")).await;
    assert_error(by_service, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn invalid_names_digests_and_references_are_refused_before_storage() {
    let registry = Registry::start().await;
    let cases = [
        ("/v2/UPPER/tags/list", StatusCode::BAD_REQUEST, "NAME_INVALID"),
        ("/v2/a..b/tags/list", StatusCode::BAD_REQUEST, "NAME_INVALID"),
        ("/v2/a//b/tags/list", StatusCode::BAD_REQUEST, "NAME_INVALID"),
        ("/v2/-a/tags/list", StatusCode::BAD_REQUEST, "NAME_INVALID"),
        ("/v2/app/blobs/sha256:../../etc/passwd", StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        ("/v2/app/blobs/md5:abc", StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        // A tag that cannot exist is not there to read (distribution answers the same).
        ("/v2/app/manifests/bad%20tag", StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        ("/v2/app/manifests/.INVALID_MANIFEST_NAME", StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
    ];
    for (path, status, code) in cases {
        let response = registry.send(registry.request(As::Service, Method::GET, path)).await;
        assert_eq!(response.status(), status, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], code, "{path}");
    }
    let response = registry
        .send(registry.request(As::Service, Method::POST, "/v2/app/blobs/uploads/?digest=sha256:short").body("x"))
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    // Writing such a tag is refused as what it is.
    let response = registry
        .send(registry.request(As::Service, Method::PUT, "/v2/app/manifests/.INVALID_MANIFEST_NAME").body("{}"))
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "TAG_INVALID").await;
    // Dot segments that HTTP clients would normalise away, sent as they are.
    for path in ["/v2/a/../b/tags/list", "/v2/a/%2e%2e/b/tags/list", "/v2/../../etc/tags/list"] {
        assert!(raw_status(&registry, path).await.starts_with("HTTP/1.1 400"), "{path}");
    }
}

/// Sends `GET path` byte for byte (no client normalisation); returns the status line.
async fn raw_status(registry: &Registry, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = registry.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {}\r\nConnection: close\r\n\r\n",
        base64_service()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_client_that_disconnects_mid_upload_leaves_no_blob() {
    let registry = Registry::start().await;
    let started = registry.send(registry.request(As::Service, Method::POST, "/v2/app/blobs/uploads/")).await;
    let location = header(&started, "location");
    let body = vec![1u8; 64 * 1024];
    let digest = sha256(&body);
    // Announce 64 KiB, send 1 KiB, hang up.
    let address = registry.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {}\r\nContent-Length: {}\r\n\r\n",
        with_query(&location, &format!("digest={digest}")),
        base64_service(),
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, &body[..1024]).await.unwrap();
    drop(stream);
    // The blob never appears; the session is still there and holds no partial bytes.
    skiff_testing::eventually_true(std::time::Duration::from_secs(1), || async {
        let status = registry.send(registry.request(As::Service, Method::GET, &location)).await;
        status.status() == StatusCode::NO_CONTENT && header(&status, "range") == "0-0"
    })
    .await;
    let head = registry.send(registry.request(As::Service, Method::HEAD, &format!("/v2/app/blobs/{digest}"))).await;
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    // Finishing the upload properly still works.
    let put = registry
        .send(
            registry
                .request(As::Service, Method::PUT, &with_query(&location, &format!("digest={digest}")))
                .body(body.clone()),
        )
        .await;
    assert_eq!(put.status(), StatusCode::CREATED);
}

fn base64_service() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("skiff:{}", crate::harness::SERVICE_TOKEN))
}

#[tokio::test]
async fn a_builds_pull_token_pulls_what_it_names_and_nothing_else() {
    let registry = Registry::start().await;
    registry.push_blob("alice/base", b"base layer").await;
    registry.push_blob("bob/private", b"bob's layer").await;
    let body = serde_json::json!({"subject": "alice", "repositories": ["alice/base"]});
    let stranger = registry.request(As::Alice, Method::POST, "/_skiff/tokens").json(&body);
    assert_eq!(registry.send(stranger).await.status(), StatusCode::UNAUTHORIZED, "the platform's alone to ask");
    let issued = registry.send(registry.request(As::Service, Method::POST, "/_skiff/tokens").json(&body)).await;
    assert_eq!(issued.status(), StatusCode::OK);
    let token = issued.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let with_token = |path: &str| registry.request(As::Nobody, Method::GET, path).bearer_auth(&token);
    let listed = registry.send(with_token("/v2/alice/base/tags/list")).await;
    assert!(listed.status() == StatusCode::OK || listed.status() == StatusCode::NOT_FOUND, "{}", listed.status());
    let elsewhere = registry.send(with_token("/v2/bob/private/tags/list")).await.status();
    assert!(elsewhere == StatusCode::UNAUTHORIZED || elsewhere == StatusCode::FORBIDDEN, "{elsewhere}");
    let upload = registry.request(As::Nobody, Method::POST, "/v2/alice/base/blobs/uploads/").bearer_auth(&token);
    let pushed = registry.send(upload).await.status();
    assert!(pushed == StatusCode::UNAUTHORIZED || pushed == StatusCode::FORBIDDEN, "pull only: {pushed}");
}
