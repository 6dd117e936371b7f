//! Several registries on one S3 bucket (behind one address, say): what one is given, every
//! other serves — blobs, manifests, tags, the catalog, deletions — and an upload opened on
//! one is continued through any other.

use reqwest::{Method, StatusCode};

use crate::harness::{As, Registry, assert_error, header, s3_bucket, sha256};

#[tokio::test]
#[ignore = "needs an S3 server (deploy/test.sh starts one)"]
async fn registries_on_one_bucket_serve_each_others_repositories() {
    let bucket = s3_bucket().await;
    let (first, second) = tokio::join!(Registry::start_on_s3(&bucket), Registry::start_on_s3(&bucket));

    let (digest, manifest) = first.push_image("shop/web", "v1", b"a layer pushed to the first registry").await;
    let by_tag = second.send(second.request(As::Service, Method::GET, "/v2/shop/web/manifests/v1")).await;
    assert_eq!(by_tag.status(), StatusCode::OK);
    assert_eq!(header(&by_tag, "docker-content-digest"), digest);
    assert_eq!(by_tag.bytes().await.unwrap(), manifest);
    let layer = serde_json::from_slice::<serde_json::Value>(&manifest).unwrap()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let blob = second.send(second.request(As::Service, Method::GET, &format!("/v2/shop/web/blobs/{layer}"))).await;
    assert_eq!(blob.bytes().await.unwrap().as_ref(), b"a layer pushed to the first registry");
    let tags: serde_json::Value =
        second.send(second.request(As::Service, Method::GET, "/v2/shop/web/tags/list")).await.json().await.unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
    let catalog: serde_json::Value =
        second.send(second.request(As::Service, Method::GET, "/v2/_catalog")).await.json().await.unwrap();
    assert_eq!(catalog["repositories"], serde_json::json!(["shop/web"]));

    // A tag moved on the second registry moves for the first; a blob mounted there from the
    // first's repository is readable through the first.
    let (moved, _) = second.push_image("shop/web", "v1", b"a layer pushed to the second registry").await;
    let by_tag = first.send(first.request(As::Service, Method::HEAD, "/v2/shop/web/manifests/v1")).await;
    assert_eq!(header(&by_tag, "docker-content-digest"), moved);
    let mount = second
        .send(second.request(
            As::Service,
            Method::POST,
            &format!("/v2/shop/api/blobs/uploads/?mount={layer}&from=shop/web"),
        ))
        .await;
    assert_eq!(mount.status(), StatusCode::CREATED);
    let mounted = first.send(first.request(As::Service, Method::HEAD, &format!("/v2/shop/api/blobs/{layer}"))).await;
    assert_eq!(mounted.status(), StatusCode::OK);

    // Deleted on one, gone on both.
    let deleted =
        first.send(first.request(As::Service, Method::DELETE, &format!("/v2/shop/web/manifests/{moved}"))).await;
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let gone = second.send(second.request(As::Service, Method::GET, "/v2/shop/web/manifests/v1")).await;
    assert_error(gone, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    let kept = second.send(second.request(As::Service, Method::GET, &format!("/v2/shop/web/manifests/{digest}"))).await;
    assert_eq!(kept.status(), StatusCode::OK, "the first manifest is still there by digest");
}

#[tokio::test]
#[ignore = "needs an S3 server (deploy/test.sh starts one)"]
async fn an_upload_opened_on_one_registry_is_continued_through_another() {
    let bucket = s3_bucket().await;
    let (first, second) = tokio::join!(Registry::start_on_s3(&bucket), Registry::start_on_s3(&bucket));
    let opened = first.send(first.request(As::Service, Method::POST, "/v2/shop/web/blobs/uploads/")).await;
    assert_eq!(opened.status(), StatusCode::ACCEPTED);
    let location = header(&opened, "location");

    // The bytes are staged on the first registry; the second passes every request for the
    // session there, so a balancer in front need not keep a client on one registry.
    let patched = second
        .send(
            second
                .request(As::Service, Method::PATCH, &location)
                .header("content-type", "application/octet-stream")
                .header("content-range", "0-5")
                .body(&b"first "[..]),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&patched, "range"), "0-5");
    let status = first.send(first.request(As::Service, Method::GET, &location)).await;
    assert_eq!(header(&status, "range"), "0-5", "the chunk landed where the session is held");
    let status = second.send(second.request(As::Service, Method::GET, &location)).await;
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&status, "range"), "0-5");

    // Out of order through the second registry: the first's 416 comes back.
    let out_of_order = second
        .send(second.request(As::Service, Method::PATCH, &location).header("content-range", "9-12").body(&b"late"[..]))
        .await;
    assert_eq!(out_of_order.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Someone without rights is refused by the second registry before anything is passed.
    let stranger = second.send(second.request(As::Bob, Method::PATCH, &location).body(&b"x"[..])).await;
    assert_eq!(stranger.status(), StatusCode::FORBIDDEN);

    let digest = sha256(b"first second");
    let finished = second.finish_upload(&location, b"second", &digest).await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_eq!(header(&finished, "docker-content-digest"), digest);
    for registry in [&first, &second] {
        let blob =
            registry.send(registry.request(As::Service, Method::GET, &format!("/v2/shop/web/blobs/{digest}"))).await;
        assert_eq!(blob.bytes().await.unwrap().as_ref(), b"first second", "once committed, the blob is everyone's");
    }
    let closed = second.send(second.request(As::Service, Method::GET, &location)).await;
    assert_error(closed, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
#[ignore = "needs an S3 server (deploy/test.sh starts one)"]
async fn an_upload_whose_registry_stopped_is_unknown_elsewhere() {
    let bucket = s3_bucket().await;
    let (first, second) = tokio::join!(Registry::start_on_s3(&bucket), Registry::start_on_s3(&bucket));
    let opened = first.send(first.request(As::Service, Method::POST, "/v2/shop/web/blobs/uploads/")).await;
    let location = header(&opened, "location");
    let cancelled = second.send(second.request(As::Service, Method::DELETE, &location)).await;
    assert_eq!(cancelled.status(), StatusCode::NO_CONTENT, "cancelled through the other registry");
    let gone = first.send(first.request(As::Service, Method::GET, &location)).await;
    assert_error(gone, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;

    // A session whose registry went away (its staged bytes with it): the client is told to
    // start again, and nothing of it is visible.
    let opened = first.send(first.request(As::Service, Method::POST, "/v2/shop/web/blobs/uploads/")).await;
    let location = header(&opened, "location");
    first.stop().await;
    let digest = sha256(b"orphan");
    let orphaned = second.finish_upload(&location, b"orphan", &digest).await;
    assert_error(orphaned, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let absent = second.send(second.request(As::Service, Method::HEAD, &format!("/v2/shop/web/blobs/{digest}"))).await;
    assert_eq!(absent.status(), StatusCode::NOT_FOUND);
}
