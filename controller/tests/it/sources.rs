//! Builds from a source repository in process: push events of each host verified with the
//! app's secret, replays and forgeries refused, only the connected branch built, builds by
//! hand, and repositories a tenant may not name (the builder is a stand-in that keeps what
//! it is asked; the real one builds in the whole-platform tests).

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::api::Shop;
use crate::test_app::TestApp;

const SECRET: &str = "the-shops-hook-secret";
const AFTER: &str = "7c4a1e3b9d2f08a65e1b3c7d9f0a2b4c6d8e0f1a";

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn push(reference: &str, after: &str) -> Vec<u8> {
    json!({"ref": reference, "before": "0".repeat(40), "after": after, "repository": {"full_name": "alice/shop"}})
        .to_string()
        .into_bytes()
}

/// Posts an event to the app's hook with `headers`; the status and the answer.
async fn send(platform: &TestApp, app: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(format!("{}/v2/hooks/scm/{app}", platform.url)).body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

fn github(event: &str, delivery: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("x-github-event", event.to_owned()),
        ("x-github-delivery", delivery.to_owned()),
        ("x-hub-signature-256", format!("sha256={}", hmac_hex(body))),
    ]
}

#[tokio::test]
async fn signed_pushes_of_each_host_are_built_and_everything_else_is_refused_or_ignored() {
    let shop = Shop::start().await;
    let (platform, alice) = (&shop.platform, shop.alice.as_str());
    let (status, _) = send(platform, "shop", &github("push", "d-0", b"{}"), b"{}".to_vec()).await;
    assert_eq!(status, 404, "not connected yet");
    let body = json!({"repo": "https://127.0.0.1:9/alice/shop.git", "secret": SECRET});
    let connected = platform.call(Some(alice), "put", "/v2/apps/shop/source", Some(body)).await;
    assert_eq!(connected.status, 200, "{connected:?}");
    assert_eq!(
        (connected.body["branch"].as_str(), connected.body["hook_path"].as_str()),
        (Some("main"), Some("/v2/hooks/scm/shop"))
    );
    let shown = platform.call(Some(alice), "get", "/v2/apps/shop/source", None).await.body;
    assert!(shown.get("secret").is_none(), "{shown}");

    let main = push("refs/heads/main", AFTER);
    let (status, answer) = send(platform, "shop", &github("push", "d-1", &main), main.clone()).await;
    assert_eq!((status, answer["building"].as_bool()), (202, Some(true)), "{answer}");
    let asked = platform.builds_asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        (&asked[0]["app"], &asked[0]["reference"], &asked[0]["commit"], &asked[0]["username"], &asked[0]["repo"]),
        (
            &json!("shop"),
            &json!("refs/heads/main"),
            &json!(AFTER),
            &json!("alice"),
            &json!("https://127.0.0.1:9/alice/shop.git")
        )
    );
    let (status, answer) = send(platform, "shop", &github("push", "d-1", &main), main.clone()).await;
    assert_eq!(status, 409, "a replay: {answer}");

    // Gitea's and GitLab's ways of proving the secret.
    let gitea = vec![
        ("x-gitea-event", "push".to_owned()),
        ("x-gitea-delivery", "g-1".to_owned()),
        ("x-gitea-signature", hmac_hex(&main)),
    ];
    assert_eq!(send(platform, "shop", &gitea, main.clone()).await.0, 202);
    let gitlab = vec![("x-gitlab-event", "Push Hook".to_owned()), ("x-gitlab-token", SECRET.to_owned())];
    assert_eq!(send(platform, "shop", &gitlab, main.clone()).await.0, 202);
    assert_eq!(platform.builds_asked.lock().unwrap().len(), 3);

    // Refused: forged, unsigned, from nowhere known, malformed, too large, unknown app.
    let forged =
        vec![("x-github-event", "push".to_owned()), ("x-hub-signature-256", format!("sha256={}", "00".repeat(32)))];
    assert_eq!(send(platform, "shop", &forged, main.clone()).await.0, 403);
    assert_eq!(send(platform, "shop", &[("x-github-event", "push".to_owned())], main.clone()).await.0, 403);
    let wrong_token =
        vec![("x-gitlab-event", "Push Hook".to_owned()), ("x-gitlab-token", "guessed-it-right?".to_owned())];
    assert_eq!(send(platform, "shop", &wrong_token, main.clone()).await.0, 403);
    assert_eq!(send(platform, "shop", &[], main.clone()).await.0, 400);
    let garbage = b"not json".to_vec();
    assert_eq!(send(platform, "shop", &github("push", "d-2", &garbage), garbage).await.0, 400);
    let huge = vec![b' '; 2 << 20];
    assert_eq!(send(platform, "shop", &github("push", "d-3", &huge), huge).await.0, 413);
    assert_eq!(send(platform, "nope", &github("push", "d-4", &main), main.clone()).await.0, 404);
    assert_eq!(send(platform, "../etc", &github("push", "d-5", &main), main.clone()).await.0, 404);

    // Ignored with a 2xx that says why.
    let other = push("refs/heads/feature", AFTER);
    let (status, answer) = send(platform, "shop", &github("push", "d-6", &other), other).await;
    assert_eq!((status, answer["building"].as_bool()), (200, Some(false)));
    assert!(answer["message"].as_str().unwrap().contains("not the connected branch"), "{answer}");
    let deleted = push("refs/heads/main", &"0".repeat(40));
    let (status, answer) = send(platform, "shop", &github("push", "d-7", &deleted), deleted).await;
    assert!(status == 200 && answer["message"].as_str().unwrap().contains("deleted"), "{answer}");
    let (status, answer) = send(platform, "shop", &github("ping", "d-8", b"{}"), b"{}".to_vec()).await;
    assert!(status == 200 && answer["message"].as_str().unwrap().starts_with("pong"), "{answer}");
    let (status, answer) = send(platform, "shop", &github("issues", "d-9", b"{}"), b"{}".to_vec()).await;
    assert!(status == 200 && answer["message"].as_str().unwrap().contains("issues events build nothing"), "{answer}");
    assert_eq!(platform.builds_asked.lock().unwrap().len(), 3, "none of those built");

    // By hand: the branch's newest commit, a commit (fetched with its branch), a tag.
    for (reference, wanted, commit) in [
        (json!({}), "main", Value::Null),
        (json!({"ref": AFTER}), "refs/heads/main", json!(AFTER)),
        (json!({"ref": "v1.2"}), "v1.2", Value::Null),
    ] {
        let built = platform.call(Some(alice), "post", "/v2/apps/shop/builds", Some(reference.clone())).await;
        assert_eq!(built.status, 202, "{reference}: {built:?}");
        let asked = platform.builds_asked.lock().unwrap().last().cloned().unwrap();
        assert_eq!((&asked["reference"], &asked["commit"]), (&json!(wanted), &commit), "{reference}");
    }
    let refused = platform
        .call(Some(alice), "post", "/v2/apps/shop/builds", Some(json!({"ref": "--upload-pack=touch /tmp/x"})))
        .await;
    assert_eq!(refused.status, 400, "{refused:?}");

    assert_eq!(platform.call(Some(alice), "delete", "/v2/apps/shop/source", None).await.status, 204);
    assert_eq!(send(platform, "shop", &github("push", "d-10", &main), main).await.0, 404, "disconnected");
    let events = platform.call(Some(alice), "get", "/v2/apps/shop/events", None).await.body;
    let built: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "build")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(built.iter().any(|m| m.starts_with("github push of 7c4a1e3 to main: building")), "{built:?}");
}

#[tokio::test]
async fn repositories_a_tenant_may_not_name_are_refused() {
    let shop = Shop::start().await;
    let (platform, alice) = (&shop.platform, shop.alice.as_str());
    for (repo, status, why) in [
        ("/srv/skiff/repos/other.git", 403, "only admins"),
        ("file:///etc", 403, "only admins"),
        ("ssh://git@10.0.0.7/shop.git", 400, "SKIFF_OUTBOUND_ALLOW"),
        ("git@10.0.0.7:team/shop.git", 400, "SKIFF_OUTBOUND_ALLOW"),
        ("https://10.1.2.3/shop.git", 400, "SKIFF_OUTBOUND_ALLOW"),
        ("https://169.254.169.254/latest", 400, "SKIFF_OUTBOUND_ALLOW"),
        ("ftp://127.0.0.1/shop.git", 400, "not supported"),
        ("--upload-pack=touch /tmp/x", 400, "not a repository URL"),
    ] {
        let refused = platform.call(Some(alice), "put", "/v2/apps/shop/source", Some(json!({"repo": repo}))).await;
        assert_eq!(refused.status, status, "{repo}: {refused:?}");
        assert!(refused.message().contains(why), "{repo}: {}", refused.message());
    }
    for (body, why) in [
        (json!({"repo": "https://127.0.0.1:9/shop.git", "branch": "-x"}), "not a branch name"),
        (json!({"repo": "https://127.0.0.1:9/shop.git", "branch": "a..b"}), "not a branch name"),
        (json!({"repo": "https://127.0.0.1:9/shop.git", "secret": "short"}), "16 characters"),
    ] {
        let refused = platform.call(Some(alice), "put", "/v2/apps/shop/source", Some(body.clone())).await;
        assert_eq!(refused.status, 400, "{body}: {refused:?}");
        assert!(refused.message().contains(why), "{body}: {}", refused.message());
    }
    let admin =
        platform.call(Some(&shop.admin), "put", "/v2/apps/shop/source", Some(json!({"repo": "/srv/git/shop.git"})));
    assert_eq!(admin.await.status, 200, "admins may name a path on the builder's machine");
}
