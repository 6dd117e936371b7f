//! The OpenAPI document against the running controller: every operation it lists is served.

use crate::harness::Platform;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() {
    let mut platform = Platform::start().await;
    let home = platform.dir.path().to_owned();
    platform.cli_ok(&home, &["auth:register", "-u", "admin", "-p", "correct-horse"]).await;
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("config/skiff/config.json")).unwrap()).unwrap();
    let user_token = stored["token"].as_str().unwrap().to_owned();
    let service_token = std::fs::read_to_string(home.join("data/service-token")).unwrap();
    let base = platform.controller_url();
    let http = reqwest::Client::new();

    let document: serde_json::Value =
        http.get(format!("{base}/v2/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(document["openapi"], "3.0.3");
    let mut operations = Vec::new();
    for (path, methods) in document["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            operations.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    // Revoking the token goes last.
    operations.sort_by_key(|(path, method, _)| (path == "/v2/auth/token" && method == "delete", path.clone()));
    assert!(operations.len() >= 40, "{}", operations.len());
    for (path, method, operation) in operations {
        let concrete = path
            .replace("{app}", "nosuchapp")
            .replace("{id}", "1")
            .replace("{username}", "nobody")
            .replace("{domain}", "x.example.test")
            .replace("{name}", "nosuchstack")
            .replace("{fingerprint}", "SHA256:none")
            .replace("{version}", "1");
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let mut request = http.request(method.clone(), format!("{base}{concrete}"));
        let service = operation["description"].as_str().is_some_and(|d| d.contains("service token"));
        if service {
            request = request.bearer_auth(&service_token);
        } else if !operation["security"].as_array().unwrap().is_empty() {
            request = request.bearer_auth(&user_token);
        }
        if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
            request = request.header("content-type", "application/json").body("{}");
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path} is documented but not served");
        assert!(!(status == 404 && body.is_empty()), "{method} {path} is documented but not routed");
    }
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_config_changes_make_fifty_consecutive_releases() {
    let (mut platform, repo, key) = Platform::with_example("busy").await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(platform.dir.path().join("config/skiff/config.json")).unwrap())
            .unwrap();
    let token = stored["token"].as_str().unwrap().to_owned();
    let url = format!("{}/v2/apps/busy/config", platform.controller_url());
    let changes = (0..50).map(|n| {
        let (url, token) = (url.clone(), token.clone());
        tokio::spawn(async move {
            let change = serde_json::json!({ format!("KEY_{n}"): format!("value-{n}") });
            let response = reqwest::Client::new().patch(url).bearer_auth(token).json(&change).send().await.unwrap();
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status.as_u16(), body["release"]["version"].as_u64())
        })
    });
    let mut versions = Vec::new();
    for change in changes.collect::<Vec<_>>() {
        let (status, version) = change.await.unwrap();
        assert_eq!(status, 200, "every change is taken");
        versions.push(version.expect("each makes a release"));
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=51).collect::<Vec<_>>(), "distinct and consecutive after v1");
    let config: serde_json::Value = serde_json::from_str(&platform.cli_ok(&repo, &["config", "--json"]).await).unwrap();
    assert_eq!(config.as_object().unwrap().len(), 50, "no change is lost: {config}");
    let releases: Vec<serde_json::Value> =
        serde_json::from_str(&platform.cli_ok(&repo, &["releases", "--json"]).await).unwrap();
    assert_eq!(releases[0]["version"], 51);
    assert_eq!(releases[0]["config"].as_object().unwrap().len(), 50, "the last release has every key");
    // Keys are named in the trail and the platform's log lines; values never are.
    let trail = platform.cli_ok(&repo, &["events", "-n", "200"]).await;
    let platform_lines = platform.cli_ok(&repo, &["logs", "--source", "platform", "-n", "500"]).await;
    assert!(trail.contains("set KEY_7"), "{trail}");
    assert!(!trail.contains("value-") && !platform_lines.contains("value-"), "{trail}{platform_lines}");
    platform.stop().await;
}
