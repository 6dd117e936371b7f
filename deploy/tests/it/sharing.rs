//! Sharing an app, custom domains and maintenance mode.

use std::time::Duration;

use crate::harness::{Platform, eventually, example_repo, get_via_router};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn collaborators_domains_and_maintenance() {
    let mut platform = Platform::start().await;
    let home = platform.dir.path().to_owned();
    platform.cli_ok(&home, &["auth:register", "-u", "admin", "-p", "correct-horse"]).await;
    // After the first account, only an admin creates accounts (the default mode).
    let (status, _, err) =
        platform.cli_as("mallory", &home, &["auth:register", "-u", "mallory", "-p", "mallory-pw"]).await;
    assert!(status == 1 && err.contains("registration is for admins only"), "{err}");
    let out = platform.cli_ok(&home, &["auth:register", "-u", "bob", "-p", "bob-password"]).await;
    assert!(out.contains("Created user bob"), "{out}");
    assert!(platform.cli_ok(&home, &["auth:whoami"]).await.contains("admin"), "the admin stays logged in");
    let (status, out, err) = platform.cli_as("bob", &home, &["auth:login", "-u", "bob", "-p", "bob-password"]).await;
    assert_eq!(status, 0, "{out}{err}");
    assert!(!out.contains("(admin)"), "only the first user is admin: {out}");
    // A non-admin's stack import is refused before the directory is even read.
    let (status, _, err) =
        platform.cli_as("bob", &home, &["stacks:import", "mine", "/nonexistent-root-filesystem"]).await;
    assert!(status == 1 && err.contains("only admins import stacks"), "{err}");
    // A token that is set but not valid is said to be rejected, not missing.
    let bogus = skiff_cli::Context { token: Some("not-a-token".into()), ..platform.cli_context(&home) };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = skiff_cli::run(["skiff", "apps"], &bogus, &mut out, &mut err).await;
    let err = String::from_utf8_lossy(&err);
    assert!(status == 1 && err.contains("the token was rejected"), "{err}");
    platform.import_busybox_stack().await;
    let key = platform.add_ssh_key().await;
    let repo = example_repo(&platform, &key);
    platform.cli_ok(&repo, &["apps:create", "shared"]).await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");

    // Bob sees nothing of it until he is a collaborator; then he may run it but not share it.
    let (status, _, err) = platform.cli_as("bob", &home, &["apps:info", "-a", "shared"]).await;
    assert!(status == 1 && err.contains("app `shared` not found"), "{err}");
    platform.cli_ok(&repo, &["perms:add", "bob"]).await;
    assert_eq!(platform.cli_ok(&repo, &["perms"]).await.trim(), "bob");
    let (status, out, err) = platform.cli_as("bob", &home, &["config:set", "-a", "shared", "BY=bob"]).await;
    assert_eq!(status, 0, "{out}{err}");
    let (status, _, err) = platform.cli_as("bob", &home, &["perms:add", "-a", "shared", "admin"]).await;
    assert!(status == 1 && err.contains("only the owner"), "{err}");
    platform.cli_ok(&repo, &["perms:remove", "bob"]).await;
    let (status, _, _) = platform.cli_as("bob", &home, &["apps:info", "-a", "shared"]).await;
    assert_eq!(status, 1, "bob lost access");

    // Custom domains, exact and wildcard, reach the app through the router.
    platform.cli_ok(&repo, &["domains:add", "www.example.test"]).await;
    platform.cli_ok(&repo, &["domains:add", "*.apps.example.test"]).await;
    let (status, _, err) = platform.cli(&repo, &["domains:add", "other.localhost"]).await;
    assert!(status == 1 && err.contains("belong to apps by name"), "{err}");
    let (status, _, err) = platform.cli(&repo, &["domains:add", "bad domain"]).await;
    assert!(status == 1 && err.contains("not a domain name"), "{err}");
    for host in ["www.example.test", "blog.apps.example.test"] {
        let served = eventually(Duration::from_secs(60), || async {
            match get_via_router(platform.router(), host).await {
                Some((200, body)) if body.contains("Hello from Skiff") => Some(()),
                _ => None,
            }
        });
        assert!(served.await.is_some(), "{host} serves the app");
    }
    platform.cli_ok(&repo, &["domains:remove", "www.example.test"]).await;
    let gone = eventually(Duration::from_secs(30), || async {
        matches!(get_via_router(platform.router(), "www.example.test").await, Some((404, _))).then_some(())
    });
    assert!(gone.await.is_some(), "a removed domain is no longer routed");

    // Maintenance mode answers 503 with a page, and goes away again.
    platform.cli_ok(&repo, &["maintenance:on"]).await;
    assert_eq!(platform.cli_ok(&repo, &["maintenance"]).await.trim(), "on");
    let status: serde_json::Value =
        serde_json::from_str(&platform.cli_ok(&repo, &["maintenance", "--json"]).await).unwrap();
    assert_eq!(status["enabled"], true);
    let closed = eventually(Duration::from_secs(30), || async {
        match get_via_router(platform.router(), "shared.localhost").await {
            Some((503, body)) if body.contains("down for maintenance") => Some(()),
            _ => None,
        }
    });
    assert!(closed.await.is_some(), "maintenance page");
    platform.cli_ok(&repo, &["maintenance:off"]).await;
    let open = eventually(Duration::from_secs(30), || async {
        matches!(get_via_router(platform.router(), "shared.localhost").await, Some((200, _))).then_some(())
    });
    assert!(open.await.is_some(), "serving again");

    // The router refuses denied addresses and bodies over the app's limit.
    platform.cli_ok(&repo, &["access:deny", "127.0.0.1", "::1"]).await;
    let refused = eventually(Duration::from_secs(30), || async {
        matches!(get_via_router(platform.router(), "shared.localhost").await, Some((403, _))).then_some(())
    });
    assert!(refused.await.is_some(), "a denied address gets 403");
    platform.cli_ok(&repo, &["access:remove", "127.0.0.1", "::1"]).await;
    let out = platform.cli_ok(&repo, &["access:max-body", "1k"]).await;
    assert!(out.contains("Max body: 1024 bytes"), "{out}");
    let router = platform.router();
    let post = move |size: usize| async move {
        let response = reqwest::Client::new()
            .post(format!("http://{router}/"))
            .header("Host", "shared.localhost")
            .body(vec![b'x'; size])
            .send()
            .await
            .ok()?;
        Some(response.status().as_u16())
    };
    let limited = eventually(Duration::from_secs(30), || async move { (post(4096).await == Some(413)).then_some(()) });
    assert!(limited.await.is_some(), "a body over the limit gets 413");
    assert_ne!(post(100).await, Some(413), "a small body passes");
    platform.cli_ok(&repo, &["access:max-body", "off"]).await;

    // Logging out revokes the token on the controller.
    let token = std::fs::read_to_string(home.join("bob/skiff/config.json")).unwrap();
    let token: serde_json::Value = serde_json::from_str(&token).unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    platform.cli_as("bob", &home, &["auth:logout"]).await;
    let whoami = reqwest::Client::new()
        .get(format!("{}/v2/auth/whoami", platform.controller_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 401, "a revoked token no longer works");
    platform.cli_as("bob", &home, &["auth:login", "-u", "bob", "-p", "bob-password"]).await;

    // The owner can hand the app over.
    let out = platform.cli_ok(&repo, &["apps:transfer", "bob"]).await;
    assert!(out.contains("Transferred shared to bob"), "{out}");
    let (status, out, _) = platform.cli_as("bob", &home, &["apps"]).await;
    assert!(status == 0 && out.contains("shared"), "{out}");

    // The audit trail says who did what: the app's to whoever may see the app, the
    // platform's to admins.
    let (status, trail, err) = platform.cli_as("bob", &home, &["events", "-a", "shared"]).await;
    assert_eq!(status, 0, "{err}");
    for entry in [
        "admin created the app",
        "admin added bob as a collaborator",
        "Release v2 created",
        "admin added domain *.apps.example.test",
        "admin turned maintenance mode on",
        "admin transferred the app to bob",
    ] {
        assert!(trail.contains(entry), "{entry}: {trail}");
    }
    let platform_trail = platform.cli_ok(&home, &["events", "--platform"]).await;
    assert!(platform_trail.contains("admin registered as admin"), "{platform_trail}");
    assert!(platform_trail.contains("admin created user bob"), "{platform_trail}");
    assert!(platform_trail.contains("admin imported stack busybox"), "{platform_trail}");
    let (status, _, err) = platform.cli_as("bob", &home, &["events", "--platform"]).await;
    assert!(status == 1 && err.contains("only admins"), "{err}");
    // Stop before the harness removes the containers, so no new one starts after.
    platform.stop().await;
}
