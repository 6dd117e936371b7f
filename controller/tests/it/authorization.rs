//! Who may call what: every operation of the OpenAPI document, called by each kind of
//! caller, against a table of what each may do. An operation missing from the table, or a
//! table entry for an operation that does not exist, fails the test.

use serde_json::{Value, json};
use skiff_controller::openapi::OPERATIONS;

use crate::test_app::{PASSWORD, SERVICE_TOKEN, Scheduling, TestApp};

/// The kinds of callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Anonymous,
    /// Signed in, with no share in the app.
    Stranger,
    Collaborator,
    Owner,
    Admin,
    /// Skiff's own components, with the service token.
    Service,
}

const ROLES: [Role; 6] = [Role::Anonymous, Role::Stranger, Role::Collaborator, Role::Owner, Role::Admin, Role::Service];

/// What a caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The operation runs (whatever it then answers).
    Allowed,
    /// 401: no token, or not a user's token.
    Unauthenticated,
    /// 404: the app is not theirs to see, so it does not exist for them.
    Hidden,
    /// 403: only the app's owner (or an admin) may.
    OwnerOnly,
    /// 403: only admins may.
    AdminOnly,
    /// 403: only Skiff's own components may.
    ServiceOnly,
    /// 403: accounts are made by admins on this platform.
    RegistrationClosed,
}

/// Who may call an operation, by kind.
#[derive(Debug, Clone, Copy)]
enum Access {
    Anyone,
    /// Registration: admins only (the platform's default mode).
    Register,
    /// Any signed-in user.
    User,
    /// Whoever may see the app (or the pipeline it is in).
    App,
    /// The app's (or the pipeline's) owner, or an admin.
    Owner,
    Admin,
    Service,
}

fn verdict(access: Access, role: Role) -> Verdict {
    use Role::*;
    match (access, role) {
        (Access::Anyone, _) => Verdict::Allowed,
        (Access::Register, Admin) => Verdict::Allowed,
        (Access::Register, _) => Verdict::RegistrationClosed,
        (Access::Service, Service) => Verdict::Allowed,
        (Access::Service, _) => Verdict::ServiceOnly,
        (_, Anonymous | Service) => Verdict::Unauthenticated,
        (Access::User, _) => Verdict::Allowed,
        (Access::Admin, Admin) => Verdict::Allowed,
        (Access::Admin, _) => Verdict::AdminOnly,
        (Access::App | Access::Owner, Stranger) => Verdict::Hidden,
        (Access::Owner, Collaborator) => Verdict::OwnerOnly,
        (Access::App | Access::Owner, _) => Verdict::Allowed,
    }
}

/// The table: every operation with who may call it and a body to send.
fn table() -> Vec<(&'static str, &'static str, Access, Option<Value>)> {
    use Access::*;
    let domain = json!({"domain": "www.example.com"});
    vec![
        ("get", "/healthz", Anyone, None),
        ("get", "/readyz", Anyone, None),
        ("get", "/metrics", Anyone, None),
        ("get", "/v2/openapi.json", Anyone, None),
        ("get", "/v2/version", Anyone, None),
        ("post", "/v2/auth/register", Register, Some(json!({"username": "newcomer", "password": PASSWORD}))),
        ("post", "/v2/auth/login", Anyone, Some(json!({"username": "owner", "password": PASSWORD}))),
        ("get", "/v2/auth/whoami", User, None),
        ("delete", "/v2/auth/token", User, None),
        ("get", "/v2/keys", User, None),
        (
            "post",
            "/v2/keys",
            User,
            Some(
                json!({"public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqzHN+XzL0EbNGfx/x4yzsnMtJ5kKsUaz2HpIsviIFj alice@laptop"}),
            ),
        ),
        ("delete", "/v2/keys/{id}", User, None),
        ("get", "/v2/apps", User, None),
        ("post", "/v2/apps", User, Some(json!({}))),
        ("get", "/v2/apps/{app}", App, None),
        ("delete", "/v2/apps/{app}", App, None),
        ("get", "/v2/apps/{app}/releases", App, None),
        ("get", "/v2/apps/{app}/releases/{version}", App, None),
        ("post", "/v2/apps/{app}/releases/rollback", App, Some(json!({}))),
        ("get", "/v2/apps/{app}/config", App, None),
        ("patch", "/v2/apps/{app}/config", App, Some(json!({"GREETING": "hello"}))),
        ("get", "/v2/apps/{app}/formation", App, None),
        ("post", "/v2/apps/{app}/scale", App, Some(json!({"web": 2}))),
        ("get", "/v2/apps/{app}/ps", App, None),
        ("post", "/v2/apps/{app}/ps/restart", App, Some(json!({}))),
        ("post", "/v2/apps/{app}/run", App, Some(json!({"command": "echo hi"}))),
        ("get", "/v2/apps/{app}/perms", App, None),
        ("post", "/v2/apps/{app}/perms", Owner, Some(json!({"username": "stranger"}))),
        ("delete", "/v2/apps/{app}/perms/{username}", Owner, None),
        ("post", "/v2/apps/{app}/transfer", Owner, Some(json!({"username": "admin"}))),
        ("get", "/v2/apps/{app}/domains", App, None),
        ("post", "/v2/apps/{app}/domains", App, Some(domain.clone())),
        ("delete", "/v2/apps/{app}/domains/{domain}", App, None),
        ("get", "/v2/apps/{app}/drains", App, None),
        ("post", "/v2/apps/{app}/drains", App, Some(json!({"url": "syslog://127.0.0.1:9"}))),
        ("delete", "/v2/apps/{app}/drains/{id}", App, None),
        ("get", "/v2/drains", Admin, None),
        ("post", "/v2/drains", Admin, Some(json!({"url": "syslog://127.0.0.1:9"}))),
        ("delete", "/v2/drains/{id}", Admin, None),
        ("get", "/v2/apps/{app}/webhooks", App, None),
        ("post", "/v2/apps/{app}/webhooks", App, Some(json!({"url": "http://127.0.0.1:9/hook"}))),
        ("delete", "/v2/apps/{app}/webhooks/{id}", App, None),
        ("get", "/v2/apps/{app}/webhooks/{id}/deliveries", App, None),
        ("get", "/v2/apps/{app}/source", App, None),
        ("put", "/v2/apps/{app}/source", App, Some(json!({"repo": "https://127.0.0.1:9/shop.git"}))),
        ("delete", "/v2/apps/{app}/source", App, None),
        ("post", "/v2/apps/{app}/builds", App, Some(json!({}))),
        ("post", "/v2/hooks/scm/{app}", Anyone, Some(json!({}))),
        ("get", "/v2/apps/{app}/cron", App, None),
        ("post", "/v2/apps/{app}/cron", App, Some(json!({"schedule": "@daily", "command": "true"}))),
        ("delete", "/v2/apps/{app}/cron/{id}", App, None),
        ("post", "/v2/apps/{app}/cron/{id}/runs", App, None),
        ("get", "/v2/webhooks", Admin, None),
        ("post", "/v2/webhooks", Admin, Some(json!({"url": "http://127.0.0.1:9/hook"}))),
        ("delete", "/v2/webhooks/{id}", Admin, None),
        ("get", "/v2/webhooks/{id}/deliveries", Admin, None),
        ("get", "/v2/apps/{app}/certs", App, None),
        (
            "post",
            "/v2/apps/{app}/certs",
            App,
            Some(json!({"name": "site", "certificate_chain": "x", "private_key": "y"})),
        ),
        ("delete", "/v2/apps/{app}/certs/{name}", App, None),
        ("post", "/v2/apps/{app}/certs/{name}/domains", App, Some(domain)),
        ("delete", "/v2/apps/{app}/certs/{name}/domains/{domain}", App, None),
        ("get", "/v2/apps/{app}/acme", App, None),
        ("put", "/v2/apps/{app}/acme", App, None),
        ("delete", "/v2/apps/{app}/acme", App, None),
        ("get", "/v2/apps/{app}/access", App, None),
        ("put", "/v2/apps/{app}/access", App, Some(json!({"allow": [], "deny": ["192.0.2.1"]}))),
        ("get", "/v2/apps/{app}/tls", App, None),
        ("put", "/v2/apps/{app}/tls", App, Some(json!({"force_https": true, "hsts_max_age": 0}))),
        ("post", "/v2/apps/{app}/maintenance", App, Some(json!({"enabled": true}))),
        ("get", "/v2/apps/{app}/limits", App, None),
        ("patch", "/v2/apps/{app}/limits", App, Some(json!({"web": {"memory_mb": 256}}))),
        ("get", "/v2/apps/{app}/healthchecks", App, None),
        ("patch", "/v2/apps/{app}/healthchecks", App, Some(json!({"web": {"kind": "http", "path": "/health"}}))),
        ("get", "/v2/apps/{app}/builds", App, None),
        ("get", "/v2/apps/{app}/builds/{id}", App, None),
        ("post", "/v2/apps/{app}/deploy", App, Some(json!({"image": "registry.example.com/shop:1"}))),
        ("get", "/v2/apps/{app}/logs", App, None),
        ("get", "/v2/apps/{app}/events", App, None),
        ("get", "/v2/events", Admin, None),
        ("get", "/v2/stacks", User, None),
        ("post", "/v2/stacks/{name}", Admin, Some(json!({}))),
        ("get", "/v2/admin/status", Admin, None),
        ("post", "/v2/admin/gc", Admin, None),
        ("get", "/v2/nodes", Admin, None),
        ("get", "/v2/nodes/join", Admin, None),
        ("post", "/v2/nodes/{node}/drain", Admin, None),
        ("post", "/v2/nodes/{node}/activate", Admin, None),
        ("get", "/v2/pipelines", User, None),
        ("post", "/v2/pipelines", User, Some(json!({"name": "fresh-pipeline"}))),
        ("get", "/v2/pipelines/{pipeline}", App, None),
        ("delete", "/v2/pipelines/{pipeline}", Owner, None),
        ("put", "/v2/pipelines/{pipeline}/apps/{app}", Owner, Some(json!({"stage": "staging"}))),
        ("delete", "/v2/apps/{app}/pipeline", App, None),
        ("get", "/v2/pipelines/{pipeline}/review-apps", App, None),
        ("put", "/v2/pipelines/{pipeline}/review-apps", Owner, Some(json!({"enabled": true}))),
        ("post", "/v2/hooks/review-apps", Service, Some(json!({"app": "APP", "branch": "fix", "username": "owner"}))),
        (
            "post",
            "/v2/hooks/review-apps/close",
            Service,
            Some(json!({"app": "APP", "branch": "fix", "username": "owner"})),
        ),
        ("post", "/v2/hooks/apps/{app}/postdeploy", Service, Some(json!({"command": "echo hi"}))),
        ("post", "/v2/apps/{app}/promote", App, Some(json!({}))),
        ("get", "/v2/apps/{app}/canary", App, None),
        ("post", "/v2/apps/{app}/canary", App, Some(json!({"release": 1, "percent": 10, "duration_secs": 60}))),
        ("post", "/v2/apps/{app}/canary/promote", App, None),
        ("post", "/v2/apps/{app}/canary/abort", App, None),
        ("post", "/v2/hooks/canary-samples", Service, Some(json!({"samples": []}))),
        ("post", "/v2/hooks/traffic", Service, Some(json!({"samples": []}))),
        ("get", "/v2/routes", Service, None),
        ("get", "/v2/hooks/drains", Service, None),
        ("get", "/v2/hooks/keys/{fingerprint}", Service, None),
        ("get", "/v2/hooks/apps/{app}/access/{username}", Service, None),
        ("post", "/v2/hooks/apps/{app}/warm", Service, None),
        (
            "post",
            "/v2/hooks/builds",
            Service,
            Some(json!({
                "app": "APP", "username": "owner", "kind": "procfile", "status": "failed", "image": null,
                "git_sha": null, "procfile": {}, "duration_ms": 1, "log": "",
            })),
        ),
        ("get", "/v2/hooks/apps/{app}/releases/{version}", Service, None),
        ("post", "/v2/hooks/registry/access", Service, Some(json!({"username": "owner", "secret": PASSWORD}))),
        ("post", "/v2/hooks/images/use", Service, Some(json!({"username": "owner", "image": "stacks/busybox"}))),
    ]
}

/// Whether an answer is the refusal `verdict` stands for.
fn is_refusal(verdict: Verdict, status: u16, message: &str) -> bool {
    match verdict {
        Verdict::Allowed => false,
        Verdict::Unauthenticated => status == 401,
        Verdict::Hidden => status == 404 && message.contains("not found; see `skiff "),
        Verdict::OwnerOnly => status == 403 && message.starts_with("only the owner of"),
        Verdict::AdminOnly => status == 403 && message.starts_with("only admins"),
        Verdict::ServiceOnly => status == 403 && message.contains("for Skiff's own components"),
        Verdict::RegistrationClosed => status == 403 && message.starts_with("registration is for admins only"),
    }
}

const REFUSALS: [Verdict; 6] = [
    Verdict::Unauthenticated,
    Verdict::Hidden,
    Verdict::OwnerOnly,
    Verdict::AdminOnly,
    Verdict::ServiceOnly,
    Verdict::RegistrationClosed,
];

#[test]
fn the_table_names_every_operation_of_the_api_document_once() {
    let table = table();
    for operation in OPERATIONS {
        let entries = table.iter().filter(|(m, p, ..)| *m == operation.method && *p == operation.path).count();
        assert_eq!(entries, 1, "{} {} has {entries} entries in the table", operation.method, operation.path);
    }
    assert_eq!(table.len(), OPERATIONS.len(), "the table names an operation the document does not have");
}

#[tokio::test]
async fn every_operation_refuses_exactly_the_callers_it_should() {
    let platform = TestApp::start(Scheduling::Off).await;
    let admin = platform.register(None, "admin").await;
    let owner = platform.register(Some(&admin), "owner").await;
    let collaborator = platform.register(Some(&admin), "collaborator").await;
    let stranger = platform.register(Some(&admin), "stranger").await;
    let mut failures = Vec::new();
    for (case, (method, template, access, body)) in table().into_iter().enumerate() {
        for role in ROLES {
            // A fresh app per call, shared with the collaborator and with one release: no
            // call sees what an earlier one changed.
            let app = format!("app-{case}-{}", role as u8);
            let created = platform.call(Some(&owner), "post", "/v2/apps", Some(json!({"name": app}))).await;
            assert_eq!(created.status, 201, "{created:?}");
            let shared = json!({"username": "collaborator"});
            let perms = platform.call(Some(&owner), "post", &format!("/v2/apps/{app}/perms"), Some(shared)).await;
            assert_eq!(perms.status, 201, "{perms:?}");
            assert_eq!(platform.build(&app, "owner", &[("web", "serve")]).await.status, 201);
            // And in a pipeline of the owner's, at the first stage.
            let pipeline = format!("pipe-{case}-{}", role as u8);
            let made = platform.call(Some(&owner), "post", "/v2/pipelines", Some(json!({"name": pipeline}))).await;
            assert_eq!(made.status, 201, "{made:?}");
            let stage = Some(json!({"stage": "development"}));
            let coupled =
                platform.call(Some(&owner), "put", &format!("/v2/pipelines/{pipeline}/apps/{app}"), stage).await;
            assert_eq!(coupled.status, 200, "{coupled:?}");

            let name = match role {
                Role::Stranger => "stranger",
                Role::Collaborator => "collaborator",
                Role::Owner => "owner",
                _ => "admin",
            };
            let token = match role {
                Role::Anonymous => None,
                Role::Service => Some(SERVICE_TOKEN.to_owned()),
                // Revoking a token ends it: that call gets a token of its own.
                _ if template == "/v2/auth/token" => Some(platform.login(name).await),
                Role::Stranger => Some(stranger.clone()),
                Role::Collaborator => Some(collaborator.clone()),
                Role::Owner => Some(owner.clone()),
                Role::Admin => Some(admin.clone()),
            };
            let path = template
                .replace("{app}", &app)
                .replace("{pipeline}", &pipeline)
                .replace("{version}", "1")
                .replace("{id}", "1")
                .replace("{name}", "site")
                .replace("{domain}", "www.example.com")
                .replace("{username}", "collaborator")
                .replace("{fingerprint}", "SHA256:unknown");
            let body = body.clone().map(|b| serde_json::from_str(&b.to_string().replace("APP", &app)).unwrap());
            let answer = platform.call(token.as_deref(), method, &path, body).await;
            let expected = verdict(access, role);
            let (status, message) = (answer.status, answer.message());
            let wrong = match expected {
                // Allowed: it ran, neither refused nor failing inside, nor turned away for a
                // body the table got wrong (422).
                Verdict::Allowed => {
                    status == 422
                        || status >= 500 && status != 503
                        || REFUSALS.iter().any(|r| is_refusal(*r, status, message))
                }
                refusal => !is_refusal(refusal, status, message),
            };
            if wrong {
                failures
                    .push(format!("{method} {template} as {role:?}: expected {expected:?}, got {status} {message}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} wrong answers:\n{}", failures.len(), failures.join("\n"));
}
