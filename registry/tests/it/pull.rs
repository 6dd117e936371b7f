//! Conformance: pull (P1–P10).

use reqwest::{Method, StatusCode};

use crate::harness::{As, OCI_MANIFEST, Registry, assert_error, header, sha256};

#[tokio::test]
async fn the_base_endpoint_answers_authenticated_clients() {
    let registry = Registry::start().await;
    let response = registry.send(registry.request(As::Service, Method::GET, "/v2/")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "docker-distribution-api-version"), "registry/2.0");
    let response = registry.send(registry.request(As::Nobody, Method::GET, "/v2/")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let host = registry.base.trim_start_matches("http://");
    let challenge = format!("Bearer realm=\"http://{host}/v2/token\",service=\"skiff\"");
    assert_eq!(header(&response, "www-authenticate"), challenge, "Docker's token flow");
}

#[tokio::test]
async fn blobs_are_served_with_length_and_digest() {
    let registry = Registry::start().await;
    let unknown = sha256(b"never pushed");
    for method in [Method::HEAD, Method::GET] {
        let response = registry.send(registry.request(As::Service, method, &format!("/v2/app/blobs/{unknown}"))).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let digest = registry.push_blob("app", b"layer bytes").await;
    let head = registry.send(registry.request(As::Service, Method::HEAD, &format!("/v2/app/blobs/{digest}"))).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "content-length"), "11");
    assert_eq!(header(&head, "docker-content-digest"), digest);
    let get = registry.send(registry.request(As::Service, Method::GET, &format!("/v2/app/blobs/{digest}"))).await;
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(sha256(&get.bytes().await.unwrap()), digest);
}

#[tokio::test]
async fn manifests_are_served_by_tag_and_digest_with_their_type() {
    let registry = Registry::start().await;
    let (digest, bytes) = registry.push_image("app", "v1", b"layer").await;
    for reference in ["v1", digest.as_str()] {
        for method in [Method::HEAD, Method::GET] {
            let head = method == Method::HEAD;
            let response =
                registry.send(registry.request(As::Service, method, &format!("/v2/app/manifests/{reference}"))).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(header(&response, "content-type"), OCI_MANIFEST);
            assert_eq!(header(&response, "docker-content-digest"), digest);
            assert_eq!(header(&response, "content-length"), bytes.len().to_string());
            let body = response.bytes().await.unwrap();
            if head {
                assert!(body.is_empty());
            } else {
                assert_eq!(body.as_ref(), bytes.as_slice(), "identical bytes come back");
            }
        }
    }
    for reference in [sha256(b"random"), "nosuchtag".into()] {
        let response =
            registry.send(registry.request(As::Service, Method::GET, &format!("/v2/app/manifests/{reference}"))).await;
        assert_error(response, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    }
    let response =
        registry.send(registry.request(As::Service, Method::GET, "/v2/app/manifests/sha256:baddigeststring")).await;
    assert_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn ranges_are_honoured() {
    let registry = Registry::start().await;
    let body: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
    let digest = registry.push_blob("app", &body).await;
    let path = format!("/v2/app/blobs/{digest}");
    let cases = [
        ("bytes=500-1499", StatusCode::PARTIAL_CONTENT, Some((500, 1499))),
        ("bytes=500-", StatusCode::PARTIAL_CONTENT, Some((500, 1999))),
        ("bytes=-500", StatusCode::PARTIAL_CONTENT, Some((1500, 1999))),
        ("bytes=1500-9999", StatusCode::PARTIAL_CONTENT, Some((1500, 1999))),
        ("bytes=500-0", StatusCode::RANGE_NOT_SATISFIABLE, None),
        ("bytes=2000-", StatusCode::RANGE_NOT_SATISFIABLE, None),
    ];
    for (range, status, expected) in cases {
        let response = registry.send(registry.request(As::Service, Method::GET, &path).header("range", range)).await;
        assert_eq!(response.status(), status, "{range}");
        if let Some((start, end)) = expected {
            assert_eq!(header(&response, "content-range"), format!("bytes {start}-{end}/2000"), "{range}");
            assert_eq!(response.bytes().await.unwrap().as_ref(), &body[start..=end], "{range}");
        }
    }
}

#[tokio::test]
async fn the_empty_blob_and_the_empty_json_push_read_and_delete() {
    let registry = Registry::start().await;
    for content in [&b""[..], b"{}"] {
        let digest = registry.push_blob("app", content).await;
        let path = format!("/v2/app/blobs/{digest}");
        let head = registry.send(registry.request(As::Service, Method::HEAD, &path)).await;
        assert_eq!(header(&head, "content-length"), content.len().to_string());
        let get = registry.send(registry.request(As::Service, Method::GET, &path)).await;
        assert_eq!(get.bytes().await.unwrap().as_ref(), content);
        let delete = registry.send(registry.request(As::Service, Method::DELETE, &path)).await;
        assert_eq!(delete.status(), StatusCode::ACCEPTED);
        let gone = registry.send(registry.request(As::Service, Method::GET, &path)).await;
        assert_error(gone, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    }
}
