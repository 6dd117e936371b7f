//! The OpenAPI document against the running controller: every operation it lists is
//! served, and every answer (errors included) matches what the document says of it.

use serde_json::{Value, json};

use crate::harness::Platform;

/// Checks `value` against a JSON Schema as OpenAPI 3.0 documents write them (`$ref` into
/// the document's components, `nullable`, `type`, `enum`, `properties`, `required`,
/// `additionalProperties`, `items`, `oneOf`/`anyOf`/`allOf`, `minimum`). Says where it
/// differs.
fn conforms(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.strip_prefix("#/components/schemas/").ok_or(format!("{at}: foreign $ref {reference}"))?;
        let target = &document["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: $ref {reference} is not in the document"));
        }
        return conforms(document, target, value, at);
    }
    if value.is_null() && schema["nullable"] == true {
        return Ok(());
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            conforms(document, part, value, at)?;
        }
    }
    for any in ["anyOf", "oneOf"] {
        if let Some(choices) = schema.get(any).and_then(Value::as_array)
            && !choices.iter().any(|choice| conforms(document, choice, value, at).is_ok())
        {
            return Err(format!("{at}: {value} matches none of {any} {choices:?}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let fits = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            other => return Err(format!("{at}: the document uses type {other}")),
        };
        if !fits {
            return Err(format!("{at}: {value} is not of type {kind}"));
        }
    }
    if let (Some(minimum), Some(number)) = (schema.get("minimum").and_then(Value::as_f64), value.as_f64())
        && number < minimum
    {
        return Err(format!("{at}: {number} is below {minimum}"));
    }
    if let Some(object) = value.as_object() {
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                return Err(format!("{at}: `{name}` is required but missing from {value}"));
            }
        }
        for (name, field) in object {
            let at = format!("{at}.{name}");
            match (schema.get("properties").and_then(|p| p.get(name)), schema.get("additionalProperties")) {
                (Some(property), _) => conforms(document, property, field, &at)?,
                (None, Some(Value::Bool(false))) => return Err(format!("{at}: not in the document")),
                (None, Some(additional)) if additional.is_object() => conforms(document, additional, field, &at)?,
                // Objects with named properties say what they hold.
                (None, _) if schema.get("properties").is_some() => {
                    return Err(format!("{at}: not in the document"));
                }
                (None, _) => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            conforms(document, items, item, &format!("{at}[{index}]"))?;
        }
    }
    Ok(())
}

/// Checks an answer of `method path` against the document: a success has the documented
/// status and body; anything else is a documented error.
fn check_answer(document: &Value, path: &str, method: &str, status: u16, body: &str) {
    let responses = &document["paths"][path][method]["responses"];
    let at = format!("{} {path} ({status})", method.to_uppercase());
    let (schema, value) = if status < 400 {
        let documented = responses.as_object().unwrap().keys().find(|k| *k != "default").unwrap().clone();
        assert_eq!(status.to_string(), documented, "{at}: the document says {documented}: {body}");
        let content = &responses[&documented]["content"];
        match (content.get("application/json"), content.get("application/x-ndjson")) {
            (Some(json), _) => (json["schema"].clone(), serde_json::from_str(body).expect("a JSON body")),
            (None, Some(lines)) => {
                for line in body.lines() {
                    let value = serde_json::from_str(line).expect("JSON lines");
                    conforms(document, &lines["schema"], &value, &at).unwrap_or_else(|e| panic!("{e}"));
                }
                return;
            }
            (None, None) => return,
        }
    } else {
        let schema = responses["default"]["content"]["application/json"]["schema"].clone();
        (schema, serde_json::from_str(body).unwrap_or_else(|_| panic!("{at}: an error is JSON: {body}")))
    };
    conforms(document, &schema, &value, &at).unwrap_or_else(|e| panic!("{e}"));
}

struct Caller {
    http: reqwest::Client,
    base: String,
    document: Value,
}

impl Caller {
    /// Calls a documented operation (`path` as the document writes it, `concrete` as
    /// sent), checks the answer against the document and returns it.
    async fn call(&self, method: &str, path: &str, concrete: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        assert!(!self.document["paths"][path][method].is_null(), "{method} {path} is not in the document");
        let verb = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let mut request = self.http.request(verb, format!("{}{concrete}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        check_answer(&self.document, path, method, status, &text);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// [`Caller::call`] that must succeed.
    async fn ok(&self, method: &str, path: &str, concrete: &str, token: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(method, path, concrete, token, body).await;
        assert!(status < 300, "{method} {concrete}: {status} {answer}");
        answer
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn every_documented_operation_is_served_as_documented() {
    // App containers in process: releases start at once, one-off commands echo.
    let mut platform = Platform::start_with_settings(|s| s.runtime = skiffd::Runtime::Memory).await;
    let home = platform.dir.path().to_owned();
    platform.cli_ok(&home, &["auth:register", "-u", "admin", "-p", "correct-horse"]).await;
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("config/skiff/config.json")).unwrap()).unwrap();
    let user_token = stored["token"].as_str().unwrap().to_owned();
    let service_token = std::fs::read_to_string(home.join("data/service-token")).unwrap();
    let base = platform.controller_url();
    let http = reqwest::Client::new();
    let document: Value = http.get(format!("{base}/v2/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(document["openapi"], "3.0.3");
    let caller = Caller { http, base, document: document.clone() };

    // The day-to-day operations, with real bodies: each succeeds as documented.
    let (user, service) = (user_token.as_str(), service_token.as_str());
    let c = &caller;
    c.ok("get", "/v2/auth/whoami", "/v2/auth/whoami", user, None).await;
    let login = json!({"username": "admin", "password": "correct-horse"});
    c.ok("post", "/v2/auth/login", "/v2/auth/login", "", Some(login)).await;
    let bob = json!({"username": "bob", "password": "bob-password"});
    c.ok("post", "/v2/auth/register", "/v2/auth/register", user, Some(bob)).await;
    let key_path = home.join("api_key");
    let generated = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "api@skiff", "-f"])
        .arg(&key_path)
        .status()
        .unwrap();
    assert!(generated.success());
    let public_key = std::fs::read_to_string(key_path.with_extension("pub")).unwrap();
    let key = c.ok("post", "/v2/keys", "/v2/keys", user, Some(json!({"public_key": public_key}))).await;
    c.ok("get", "/v2/keys", "/v2/keys", user, None).await;
    // Base64 has `/` and `+`: escaped, as the builder sends it.
    let fingerprint = key["fingerprint"].as_str().unwrap().replace('/', "%2F").replace('+', "%2B");
    c.ok("get", "/v2/hooks/keys/{fingerprint}", &format!("/v2/hooks/keys/{fingerprint}"), service, None).await;
    c.ok("post", "/v2/apps", "/v2/apps", user, Some(json!({"name": "shape"}))).await;
    c.ok("get", "/v2/apps", "/v2/apps", user, None).await;
    let app = |rest: &str| format!("/v2/apps/shape{rest}");
    let ok = |method: &'static str, rest: &'static str, body: Option<Value>| {
        let (path, concrete) = (format!("/v2/apps/{{app}}{rest}"), app(rest));
        async move { c.ok(method, &path, &concrete, user, body).await }
    };
    ok("get", "", None).await;
    ok("patch", "/config", Some(json!({"GREETING": "hello", "GONE": null}))).await;
    ok("get", "/config", None).await;
    let image = format!("{}/shape:1", platform.addresses.registry.unwrap());
    ok("post", "/deploy", Some(json!({"image": image}))).await;
    ok("patch", "/config", Some(json!({"SECOND": "2"}))).await;
    ok("post", "/run", Some(json!({"command": "echo hello", "timeout_secs": 10}))).await;
    ok("get", "/releases", None).await;
    let newest = c.ok("get", "/v2/apps/{app}/releases", &app("/releases?limit=1"), user, None).await;
    assert_eq!(newest.as_array().unwrap().len(), 1, "{newest}");
    let v1 = c.ok("get", "/v2/apps/{app}/releases/{version}", &app("/releases/v1"), user, None).await;
    assert_eq!(v1["version"], 1);
    ok("post", "/releases/rollback", Some(json!({"version": 1}))).await;
    ok("get", "/builds", None).await;
    c.ok("get", "/v2/apps/{app}/builds/{id}", &app("/builds/1"), user, None).await;
    ok("get", "/formation", None).await;
    ok("post", "/scale", Some(json!({"web": 0}))).await;
    ok("get", "/ps", None).await;
    ok("post", "/ps/restart", Some(json!({}))).await;
    ok("post", "/domains", Some(json!({"domain": "shape.example.test"}))).await;
    ok("get", "/domains", None).await;
    ok("post", "/perms", Some(json!({"username": "bob"}))).await;
    ok("get", "/perms", None).await;
    c.ok("delete", "/v2/apps/{app}/perms/{username}", &app("/perms/bob"), user, None).await;
    ok("get", "/access", None).await;
    ok("put", "/access", Some(json!({"max_body_bytes": 1024, "allow": ["10.0.0.0/8"], "deny": []}))).await;
    ok("get", "/tls", None).await;
    ok("put", "/tls", Some(json!({"force_https": true, "hsts_max_age": 60}))).await;
    ok("post", "/maintenance", Some(json!({"enabled": true}))).await;
    ok("patch", "/limits", Some(json!({"web": {"memory_mb": 256, "cpu": 0.5}}))).await;
    ok("get", "/limits", None).await;
    ok("patch", "/healthchecks", Some(json!({"web": {"kind": "http", "path": "/health", "timeout_secs": 10}}))).await;
    ok("get", "/healthchecks", None).await;
    let drain = ok("post", "/drains", Some(json!({"url": "syslog://127.0.0.1:9"}))).await;
    ok("get", "/drains", None).await;
    let drain_path = app(&format!("/drains/{}", drain["id"]));
    c.ok("delete", "/v2/apps/{app}/drains/{id}", &drain_path, user, None).await;
    ok("get", "/certs", None).await;
    ok("get", "/events", None).await;
    ok("get", "/logs", None).await;
    let platform_drain =
        c.ok("post", "/v2/drains", "/v2/drains", user, Some(json!({"url": "syslog://127.0.0.1:9"}))).await;
    c.ok("get", "/v2/drains", "/v2/drains", user, None).await;
    c.ok("get", "/v2/hooks/drains", "/v2/hooks/drains", service, None).await;
    let platform_drain_path = format!("/v2/drains/{}", platform_drain["id"]);
    c.ok("delete", "/v2/drains/{id}", &platform_drain_path, user, None).await;
    c.ok("get", "/v2/events", "/v2/events", user, None).await;
    c.ok("get", "/v2/stacks", "/v2/stacks", user, None).await;
    c.ok("get", "/v2/routes", "/v2/routes", service, None).await;
    let grant_path = "/v2/hooks/apps/{app}/access/{username}";
    c.ok("get", grant_path, "/v2/hooks/apps/shape/access/admin", service, None).await;
    c.ok("get", "/v2/hooks/apps/{app}/releases/{version}", "/v2/hooks/apps/shape/releases/1", service, None).await;
    let access = json!({"username": "admin", "secret": user_token, "repository": "shape"});
    c.ok("post", "/v2/hooks/registry/access", "/v2/hooks/registry/access", service, Some(access)).await;
    let image =
        json!({"username": "admin", "image": format!("{}/stacks/busybox", platform.addresses.registry.unwrap())});
    c.ok("post", "/v2/hooks/images/use", "/v2/hooks/images/use", service, Some(image)).await;
    c.ok("delete", "/v2/apps/{app}/domains/{domain}", &app("/domains/shape.example.test"), user, None).await;
    c.ok("post", "/v2/apps/{app}/transfer", &app("/transfer"), user, Some(json!({"username": "bob"}))).await;
    c.ok("delete", "/v2/apps/{app}", &app(""), user, None).await;

    // Then every documented operation, with made-up parameters and an empty body: none is
    // missing, and each answer (mostly errors) is one the document describes.
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
        let verb = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let mut request = caller.http.request(verb.clone(), format!("{}{concrete}", caller.base));
        let service = operation["description"].as_str().is_some_and(|d| d.contains("service token"));
        if service {
            request = request.bearer_auth(&service_token);
        } else if !operation["security"].as_array().unwrap().is_empty() {
            request = request.bearer_auth(&user_token);
        }
        if verb != reqwest::Method::GET && verb != reqwest::Method::DELETE {
            request = request.header("content-type", "application/json").body("{}");
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = response.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{verb} {path} is documented but not served");
        assert!(!(status == 404 && body.is_empty()), "{verb} {path} is documented but not routed");
        // Bodies axum refuses before a handler runs (unparseable JSON) are plain text.
        if status.as_u16() < 400 || content_type.starts_with("application/json") {
            check_answer(&document, &path, &method, status.as_u16(), &body);
        }
    }
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
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
