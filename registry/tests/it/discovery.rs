//! Conformance: content discovery (D1–D9).

use reqwest::{Method, StatusCode};

use crate::harness::{As, OCI_INDEX, OCI_MANIFEST, Registry, assert_error, header, sha256};

async fn tags(registry: &Registry, query: &str) -> (Vec<String>, String) {
    let response =
        registry.send(registry.request(As::Service, Method::GET, &format!("/v2/app/tags/list{query}"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let link = header(&response, "link");
    let body: serde_json::Value = response.json().await.unwrap();
    let tags = body["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect();
    (tags, link)
}

#[tokio::test]
async fn tags_list_sorts_and_paginates_with_link() {
    let registry = Registry::start().await;
    let (digest, manifest) = registry.push_image("app", "v1", b"layer").await;
    for tag in ["b", "a", "d", "c"] {
        registry.put_manifest("app", tag, OCI_MANIFEST, &manifest).await;
    }
    let _ = digest;
    let (all, link) = tags(&registry, "").await;
    assert_eq!(all, ["a", "b", "c", "d", "v1"]);
    assert!(link.is_empty());
    let (page, link) = tags(&registry, "?n=2").await;
    assert_eq!(page, ["a", "b"]);
    assert_eq!(link, "</v2/app/tags/list?n=2&last=b>; rel=\"next\"");
    let (page, _) = tags(&registry, "?n=2&last=b").await;
    assert_eq!(page, ["c", "d"]);
    let (page, link) = tags(&registry, "?last=c").await;
    assert_eq!(page, ["d", "v1"]);
    assert!(link.is_empty());
    let (page, link) = tags(&registry, "?n=0").await;
    assert!(page.is_empty() && link.is_empty());
    // Following Link reaches every tag.
    let mut seen = Vec::new();
    let mut query = "?n=2".to_owned();
    for _ in 0..10 {
        let (page, link) = tags(&registry, &query).await;
        seen.extend(page);
        match link.split_once("tags/list").and_then(|(_, rest)| rest.split_once('>')) {
            Some((next, _)) => query = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "v1"]);
    let unknown = registry.send(registry.request(As::Service, Method::GET, "/v2/nothing/tags/list")).await;
    assert_error(unknown, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn referrers_list_manifests_that_name_a_subject_and_filter_by_type() {
    let registry = Registry::start().await;
    let (subject, manifest) = registry.push_image("app", "v1", b"layer").await;
    let config = registry.push_blob("app", b"{}").await;
    let mut referrers = Vec::new();
    for (n, artifact_type) in ["application/vnd.a", "application/vnd.b", "application/vnd.a"].iter().enumerate() {
        let body = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": manifest.len()},
            "annotations": {"n": n.to_string()},
        }))
        .unwrap();
        referrers.push(registry.put_manifest("app", &sha256(&body), OCI_MANIFEST, &body).await);
    }
    let response =
        registry.send(registry.request(As::Service, Method::GET, &format!("/v2/app/referrers/{subject}"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), OCI_INDEX);
    let index: serde_json::Value = response.json().await.unwrap();
    let listed = index["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for descriptor in listed {
        assert!(referrers.contains(&descriptor["digest"].as_str().unwrap().to_owned()));
        assert!(descriptor["artifactType"].as_str().unwrap().starts_with("application/vnd."));
        assert!(descriptor["annotations"]["n"].is_string());
    }
    let filtered = registry
        .send(registry.request(
            As::Service,
            Method::GET,
            &format!("/v2/app/referrers/{subject}?artifactType=application/vnd.a"),
        ))
        .await;
    assert_eq!(header(&filtered, "oci-filters-applied"), "artifactType");
    let index: serde_json::Value = filtered.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

    // An unknown subject has an empty list; a bad digest is a 400.
    let none =
        registry.send(registry.request(As::Service, Method::GET, &format!("/v2/app/referrers/{}", sha256(b"x")))).await;
    assert_eq!(none.status(), StatusCode::OK);
    let index: serde_json::Value = none.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 0);
    let bad = registry.send(registry.request(As::Service, Method::GET, "/v2/app/referrers/sha256:nope")).await;
    assert_error(bad, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;

    // Deleting a referrer drops it from the list.
    let deleted = registry
        .send(registry.request(As::Service, Method::DELETE, &format!("/v2/app/manifests/{}", referrers[0])))
        .await;
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let response =
        registry.send(registry.request(As::Service, Method::GET, &format!("/v2/app/referrers/{subject}"))).await;
    let index: serde_json::Value = response.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_catalog_pages_and_caps_n() {
    let registry = Registry::start().await;
    for repo in ["a/one", "b", "c"] {
        registry.push_image(repo, "latest", b"layer").await;
    }
    let response = registry.send(registry.request(As::Service, Method::GET, "/v2/_catalog?n=2")).await;
    assert_eq!(header(&response, "link"), "</v2/_catalog?n=2&last=b>; rel=\"next\"");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["repositories"], serde_json::json!(["a/one", "b"]));
    let response = registry.send(registry.request(As::Service, Method::GET, "/v2/_catalog?n=99999999999")).await;
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["repositories"].as_array().unwrap().len(), 3);
}
