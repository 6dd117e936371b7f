//! Conformance: push (U1–U12).

use reqwest::{Method, StatusCode};

use crate::harness::{As, OCI_INDEX, OCI_MANIFEST, Registry, assert_error, header, hex, sha256, with_query};

async fn start_upload(registry: &Registry, repo: &str) -> String {
    let response =
        registry.send(registry.request(As::Service, Method::POST, &format!("/v2/{repo}/blobs/uploads/"))).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = header(&response, "location");
    assert!(location.starts_with(&format!("/v2/{repo}/blobs/uploads/")), "{location}");
    location
}

async fn get_ok(registry: &Registry, repo: &str, digest: &str) -> Vec<u8> {
    let response =
        registry.send(registry.request(As::Service, Method::GET, &format!("/v2/{repo}/blobs/{digest}"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn a_streamed_patch_without_length_or_range_then_an_empty_put_stores_the_blob() {
    let registry = Registry::start().await;
    let body = vec![42u8; 100_000];
    let digest = sha256(&body);
    let location = start_upload(&registry, "app").await;
    // A streamed body: chunked transfer coding, no Content-Length.
    let stream =
        futures_util::stream::iter(body.chunks(7000).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let patched = registry
        .send(registry.request(As::Service, Method::PATCH, &location).body(reqwest::Body::wrap_stream(stream)))
        .await;
    assert_eq!(patched.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&patched, "range"), "0-99999");
    let location = header(&patched, "location");
    let put = registry
        .send(registry.request(As::Service, Method::PUT, &with_query(&location, &format!("digest={digest}"))))
        .await;
    assert_eq!(put.status(), StatusCode::CREATED);
    assert_eq!(header(&put, "location"), format!("/v2/app/blobs/{digest}"));
    assert_eq!(get_ok(&registry, "app", &digest).await, body);
}

#[tokio::test]
async fn a_single_post_with_digest_stores_the_blob() {
    let registry = Registry::start().await;
    let digest = sha256(b"one shot");
    let response = registry
        .send(
            registry
                .request(As::Service, Method::POST, &format!("/v2/app/blobs/uploads/?digest={digest}"))
                .body("one shot"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(get_ok(&registry, "app", &digest).await, b"one shot");
}

#[tokio::test]
async fn chunks_must_arrive_in_order() {
    let registry = Registry::start().await;
    let body = b"0123456789abcdefghij".to_vec();
    let digest = sha256(&body);
    let location = start_upload(&registry, "app").await;
    let patch = |location: &str, range: &str, bytes: &[u8]| {
        registry
            .request(As::Service, Method::PATCH, location)
            .header("content-range", range)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
    };
    let out_of_order = registry.send(patch(&location, "5-9", &body[5..10])).await;
    assert_eq!(out_of_order.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let first = registry.send(patch(&location, "0-9", &body[..10])).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&first, "range"), "0-9");
    let location = header(&first, "location");
    let again = registry.send(patch(&location, "0-9", &body[..10])).await;
    assert_eq!(again.status(), StatusCode::RANGE_NOT_SATISFIABLE, "re-sending an accepted chunk");
    let status = registry.send(registry.request(As::Service, Method::GET, &location)).await;
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&status, "range"), "0-9");
    // The last chunk travels with the closing PUT.
    let out_of_order_put = registry
        .send(
            registry
                .request(As::Service, Method::PUT, &with_query(&location, &format!("digest={digest}")))
                .header("content-range", "12-19")
                .body(body[12..].to_vec()),
        )
        .await;
    assert_eq!(out_of_order_put.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let put = registry
        .send(
            registry
                .request(As::Service, Method::PUT, &with_query(&location, &format!("digest={digest}")))
                .header("content-range", "10-19")
                .body(body[10..].to_vec()),
        )
        .await;
    assert_eq!(put.status(), StatusCode::CREATED);
    assert_eq!(get_ok(&registry, "app", &digest).await, body);
}

#[tokio::test]
async fn a_cancelled_upload_is_gone() {
    let registry = Registry::start().await;
    let location = start_upload(&registry, "app").await;
    let cancelled = registry.send(registry.request(As::Service, Method::DELETE, &location)).await;
    assert_eq!(cancelled.status(), StatusCode::NO_CONTENT);
    let status = registry.send(registry.request(As::Service, Method::GET, &location)).await;
    assert_error(status, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn a_wrong_digest_is_rejected_in_every_flavour_and_stores_nothing() {
    let registry = Registry::start().await;
    let wrong = sha256(b"something else");
    // Single POST.
    let response = registry
        .send(
            registry.request(As::Service, Method::POST, &format!("/v2/app/blobs/uploads/?digest={wrong}")).body("data"),
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    // POST then PUT.
    let location = start_upload(&registry, "app").await;
    let response = registry
        .send(
            registry.request(As::Service, Method::PUT, &with_query(&location, &format!("digest={wrong}"))).body("data"),
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    // Streamed PATCH then empty PUT.
    let location = start_upload(&registry, "app").await;
    let patched = registry.send(registry.request(As::Service, Method::PATCH, &location).body("data")).await;
    let location = header(&patched, "location");
    let response = registry
        .send(registry.request(As::Service, Method::PUT, &with_query(&location, &format!("digest={wrong}"))))
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    let head = registry.send(registry.request(As::Service, Method::HEAD, &format!("/v2/app/blobs/{wrong}"))).await;
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    let right = sha256(b"data");
    let head = registry.send(registry.request(As::Service, Method::HEAD, &format!("/v2/app/blobs/{right}"))).await;
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sha512_blobs_are_verified_too() {
    let registry = Registry::start().await;
    use sha2::Digest as _;
    let digest = format!("sha512:{}", hex(&sha2::Sha512::digest(b"long hash")));
    let started = registry
        .send(registry.request(As::Service, Method::POST, "/v2/app/blobs/uploads/?digest-algorithm=sha512"))
        .await;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = header(&started, "location");
    let put = registry
        .send(
            registry
                .request(As::Service, Method::PUT, &with_query(&location, &format!("digest={digest}")))
                .body("long hash"),
        )
        .await;
    assert_eq!(put.status(), StatusCode::CREATED);
    assert_eq!(get_ok(&registry, "app", &digest).await, b"long hash");
}

#[tokio::test]
async fn mounts_link_a_readable_blob_and_fall_back_to_an_upload() {
    let registry = Registry::start().await;
    let digest = registry.push_blob("source", b"shared layer").await;
    let mounted = registry
        .send(registry.request(
            As::Service,
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={digest}&from=source"),
        ))
        .await;
    assert_eq!(mounted.status(), StatusCode::CREATED);
    assert_eq!(header(&mounted, "location"), format!("/v2/target/blobs/{digest}"));
    assert_eq!(get_ok(&registry, "target", &digest).await, b"shared layer");
    // Without `from`, or of an unknown blob: a normal upload session.
    for query in [format!("mount={digest}"), format!("mount={}&from=source", sha256(b"unknown"))] {
        let response = registry
            .send(registry.request(As::Service, Method::POST, &format!("/v2/third/blobs/uploads/?{query}")))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{query}");
        assert!(header(&response, "location").starts_with("/v2/third/blobs/uploads/"));
    }
}

#[tokio::test]
async fn manifests_must_name_known_blobs_but_may_name_a_missing_subject() {
    let registry = Registry::start().await;
    let config = registry.push_blob("app", b"{}").await;
    let missing = sha256(b"not pushed");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing, "size": 10}],
    }))
    .unwrap();
    let response = registry
        .send(
            registry
                .request(As::Service, Method::PUT, "/v2/app/manifests/v1")
                .header("content-type", OCI_MANIFEST)
                .body(manifest),
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;

    // No layers, a subject that does not exist: accepted, with OCI-Subject.
    let artifact = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": missing, "size": 100},
    }))
    .unwrap();
    let response = registry
        .send(
            registry
                .request(As::Service, Method::PUT, "/v2/app/manifests/sbom")
                .header("content-type", OCI_MANIFEST)
                .body(artifact),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "oci-subject"), missing);
}

#[tokio::test]
async fn manifests_pushed_by_digest_must_hash_to_it_and_type_must_match_shape() {
    let registry = Registry::start().await;
    let (_, manifest) = registry.push_image("app", "v1", b"layer").await;
    let digest = sha256(&manifest);
    let by_digest = registry.put_manifest("app", &digest, OCI_MANIFEST, &manifest).await;
    assert_eq!(by_digest, digest);
    let wrong = sha256(b"other");
    let response = registry
        .send(
            registry
                .request(As::Service, Method::PUT, &format!("/v2/app/manifests/{wrong}"))
                .header("content-type", OCI_MANIFEST)
                .body(manifest.clone()),
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    // An image manifest sent as an index is refused.
    let response = registry
        .send(
            registry
                .request(As::Service, Method::PUT, "/v2/app/manifests/confused")
                .header("content-type", OCI_INDEX)
                .body(manifest),
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
}

#[tokio::test]
async fn indexes_refer_to_manifests_in_the_repository() {
    let registry = Registry::start().await;
    let (digest, manifest) = registry.push_image("app", "amd64", b"layer").await;
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .unwrap();
    let index_digest = registry.put_manifest("app", "multi", OCI_INDEX, &index).await;
    let nested = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_INDEX, "digest": index_digest, "size": index.len()}],
    }))
    .unwrap();
    registry.put_manifest("app", "nested", OCI_INDEX, &nested).await;
    let empty = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    registry.put_manifest("app", "empty", OCI_INDEX, empty).await;
}

#[tokio::test]
async fn oversized_manifests_are_refused_and_four_megabytes_fit() {
    let registry = Registry::start().await;
    let config = registry.push_blob("app", b"{}").await;
    let manifest = |padding: usize| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [],
            "annotations": {"padding": "x".repeat(padding)},
        }))
        .unwrap()
    };
    let fits = manifest(4 * 1024 * 1024 - 400);
    assert!(fits.len() <= 4 * 1024 * 1024);
    registry.put_manifest("app", "big", OCI_MANIFEST, &fits).await;
    let response = registry
        .send(
            registry
                .request(As::Service, Method::PUT, "/v2/app/manifests/huge")
                .header("content-type", OCI_MANIFEST)
                .body(manifest(5 * 1024 * 1024)),
        )
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
