//! Several registries on one S3 bucket (behind one address, say): what one is given, every
//! other serves — blobs, manifests, tags, the catalog, deletions.

use reqwest::{Method, StatusCode};

use crate::harness::{As, Registry, assert_error, header, s3_bucket, with_query};

#[tokio::test]
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
async fn an_upload_session_is_continued_on_the_registry_that_opened_it() {
    let bucket = s3_bucket().await;
    let (first, second) = tokio::join!(Registry::start_on_s3(&bucket), Registry::start_on_s3(&bucket));
    let opened = first.send(first.request(As::Service, Method::POST, "/v2/shop/web/blobs/uploads/")).await;
    assert_eq!(opened.status(), StatusCode::ACCEPTED);
    let location = header(&opened, "location");
    // An upload's bytes are staged on the registry that opened it: another registry does
    // not know the session (a balancer in front keeps a client on one registry).
    let elsewhere = second.send(second.request(As::Service, Method::PATCH, &location).body(&b"chunk"[..])).await;
    assert_error(elsewhere, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let digest = crate::harness::sha256(b"chunk");
    let finished = first
        .send(
            first
                .request(As::Service, Method::PUT, &with_query(&location, &format!("digest={digest}")))
                .body(&b"chunk"[..]),
        )
        .await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    let there = second.send(second.request(As::Service, Method::HEAD, &format!("/v2/shop/web/blobs/{digest}"))).await;
    assert_eq!(there.status(), StatusCode::OK, "once committed, the blob is everyone's");
}
