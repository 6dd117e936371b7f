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
