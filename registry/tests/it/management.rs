//! Conformance: content management (M1–M3).

use reqwest::{Method, StatusCode};

use crate::harness::{As, OCI_MANIFEST, Registry, assert_error, sha256};

#[tokio::test]
async fn deleting_a_tag_leaves_the_manifest() {
    let registry = Registry::start().await;
    let (digest, manifest) = registry.push_image("app", "v1", b"layer").await;
    registry.put_manifest("app", "v2", OCI_MANIFEST, &manifest).await;
    let deleted = registry.send(registry.request(As::Service, Method::DELETE, "/v2/app/manifests/v1")).await;
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let gone = registry.send(registry.request(As::Service, Method::GET, "/v2/app/manifests/v1")).await;
    assert_error(gone, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    let kept = registry.send(registry.request(As::Service, Method::GET, &format!("/v2/app/manifests/{digest}"))).await;
    assert_eq!(kept.status(), StatusCode::OK);
}

#[tokio::test]
async fn deleting_a_manifest_by_digest_removes_its_tags() {
    let registry = Registry::start().await;
    let (digest, manifest) = registry.push_image("app", "v1", b"layer").await;
    registry.put_manifest("app", "latest", OCI_MANIFEST, &manifest).await;
    let deleted =
        registry.send(registry.request(As::Service, Method::DELETE, &format!("/v2/app/manifests/{digest}"))).await;
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    for reference in [digest.as_str(), "v1", "latest"] {
        let gone =
            registry.send(registry.request(As::Service, Method::GET, &format!("/v2/app/manifests/{reference}"))).await;
        assert_error(gone, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    }
    let tags = registry.send(registry.request(As::Service, Method::GET, "/v2/app/tags/list")).await;
    let body: serde_json::Value = tags.json().await.unwrap();
    assert_eq!(body["tags"], serde_json::json!([]));
    let again =
        registry.send(registry.request(As::Service, Method::DELETE, &format!("/v2/app/manifests/{digest}"))).await;
    assert_error(again, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn deleting_a_blob_in_one_repository_leaves_others_alone() {
    let registry = Registry::start().await;
    let digest = registry.push_blob("one", b"shared").await;
    registry.push_blob("two", b"shared").await;
    let deleted =
        registry.send(registry.request(As::Service, Method::DELETE, &format!("/v2/one/blobs/{digest}"))).await;
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let gone = registry.send(registry.request(As::Service, Method::GET, &format!("/v2/one/blobs/{digest}"))).await;
    assert_error(gone, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    let kept = registry.send(registry.request(As::Service, Method::GET, &format!("/v2/two/blobs/{digest}"))).await;
    assert_eq!(kept.status(), StatusCode::OK);
    let unknown =
        registry.send(registry.request(As::Service, Method::DELETE, &format!("/v2/one/blobs/{}", sha256(b"?")))).await;
    assert_error(unknown, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
}
