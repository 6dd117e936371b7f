//! Skiff attacked as a hostile tenant would attack it: a second user, with his own app, key
//! and token, goes after another tenant's images through git, the CLI and the API. Each
//! attack, and the answer it gets.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Platform, inspect, namespace_owner};

/// A second user, `mallory`, logged in under his own CLI profile with his own SSH key and
/// an app `evil`; returns the key.
async fn mallory(platform: &Platform, home: &Path) -> PathBuf {
    platform.cli_ok(home, &["auth:register", "-u", "mallory", "-p", "mallory-password"]).await;
    let (status, out, err) =
        platform.cli_as("mallory", home, &["auth:login", "-u", "mallory", "-p", "mallory-password"]).await;
    assert_eq!(status, 0, "{out}{err}");
    let key = home.join("mallory_ed25519");
    let made = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status().unwrap();
    assert!(made.success());
    let public = format!("{}.pub", key.display());
    let (status, out, err) = platform.cli_as("mallory", home, &["keys:add", &public]).await;
    assert_eq!(status, 0, "{out}{err}");
    let (status, out, err) = platform.cli_as("mallory", home, &["apps:create", "evil"]).await;
    assert_eq!(status, 0, "{out}{err}");
    key
}

/// Mallory's repository holding `dockerfile`, with the `skiff` remote of his app.
fn evil_repo(platform: &Platform, key: &Path, home: &Path, name: &str, dockerfile: &str) -> PathBuf {
    let repo = home.join(name);
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("Dockerfile"), dockerfile).unwrap();
    let builder = platform.addresses.builder.unwrap();
    let remote = format!("ssh://git@{builder}/evil.git");
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["commit", "-qm", "evil"],
        &["remote", "add", "skiff", &remote],
    ] {
        let (ok, out) = platform.git(&repo, key, args);
        assert!(ok, "git {args:?}: {out}");
    }
    repo
}

/// A platform with the default outbound guard (the other tests let drains reach their
/// receivers on loopback), an admin's app `victim`, and mallory.
async fn platform_with_mallory() -> (Platform, PathBuf, PathBuf, PathBuf) {
    let default_guard = |settings: &mut skiffd::Settings| settings.outbound_allow = Default::default();
    let (platform, repo, key) = Platform::start_with_settings(default_guard).await.with_app("victim").await;
    let home = platform.dir.path().to_owned();
    let mallory_key = mallory(&platform, &home).await;
    (platform, repo, key, mallory_key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_tenant_aims_neither_drains_inside_the_platform_nor_domains_at_others_names() {
    let (mut platform, repo, _, _) = platform_with_mallory().await;
    let home = platform.dir.path().to_owned();
    let syslog = platform.addresses.syslog.unwrap().port();
    let attacks = [
        format!("syslog://127.0.0.1:{syslog}"),
        format!("syslog://127.1:{syslog}"),
        format!("syslog://2130706433:{syslog}"),
        format!("syslog://0.0.0.0:{syslog}"),
        format!("syslog://[::1]:{syslog}"),
        format!("syslog://localhost:{syslog}"),
        "syslog://172.17.0.1:514".to_owned(),
        "syslog://10.0.0.1:514".to_owned(),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        format!("https://127.0.0.1:{}/", platform.addresses.controller.unwrap().port()),
    ];
    for url in &attacks {
        let (status, _, err) = platform.cli_as("mallory", &home, &["drains:add", "-a", "evil", url]).await;
        assert!(status == 1 && err.contains("drains may not reach"), "{url}: {err}");
    }
    assert_eq!(platform.cli_as("mallory", &home, &["drains", "-a", "evil", "--json"]).await.1.trim(), "[]");
    // Domains: another owner's names, wildcards over them, IP literals, the platform's own.
    platform.cli_ok(&repo, &["domains:add", "www.victim.test"]).await;
    platform.cli_ok(&repo, &["domains:add", "*.shop.victim.test"]).await;
    let taken = [
        ("*.victim.test", "already in use by another app"),
        ("www.victim.test", "already in use"),
        ("a.shop.victim.test", "already in use by another app"),
        ("*.b.shop.victim.test", "already in use by another app"),
        ("127.0.0.1", "is an IP address"),
        ("*.localhost", "belong to apps by name"),
    ];
    for (domain, answer) in taken {
        let (status, _, err) = platform.cli_as("mallory", &home, &["domains:add", "-a", "evil", domain]).await;
        assert!(status == 1 && err.contains(answer), "{domain}: {err}");
    }
    let (status, out, err) = platform.cli_as("mallory", &home, &["domains:add", "-a", "evil", "www.evil.test"]).await;
    assert_eq!(status, 0, "a name nobody holds is free: {out}{err}");

    // An admin's platform-wide drain may point anywhere.
    let out = platform.cli_ok(&home, &["drains:add", "--platform", &format!("syslog://127.0.0.1:{syslog}")]).await;
    assert!(out.contains("every app's logs"), "{out}");
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_tenant_cannot_build_from_or_deploy_another_tenants_image() {
    let (mut platform, repo, key, mallory_key) = platform_with_mallory().await;
    let home = platform.dir.path().to_owned();
    let registry = platform.addresses.registry.unwrap();
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    let digest = out.lines().find_map(|l| l.split("Pushed image victim@").nth(1)).expect("the push names its image");
    let victim = format!("{registry}/victim@{}", digest.trim());
    let port = registry.port();

    // Building from the victim's image: FROM, COPY --from, an ARG default, the app's config
    // as a build argument, and other names of the same registry. Each push is refused
    // before the engine sees the Dockerfile, and says why.
    let attacks = [
        format!("FROM {victim}\n"),
        format!("FROM {registry}/stacks/busybox\nCOPY --from={victim} /app /stolen\n"),
        format!("ARG BASE={victim}\nFROM ${{BASE}}\n"),
        format!("ARG BASE={registry}/stacks/busybox\nFROM $BASE\n"),
        format!("FROM 127.1:{port}/victim@{}\n", digest.trim()),
        format!("FROM localhost:{port}/victim@{}\n", digest.trim()),
        format!("FROM {registry}/stacks/busybox AS base\nFROM base\nCOPY --from={victim} /app /stolen\n"),
    ];
    for (n, dockerfile) in attacks.iter().enumerate() {
        let evil = evil_repo(&platform, &mallory_key, &home, &format!("evil{n}"), dockerfile);
        // The app's config is passed as build arguments: it must not pick another image.
        let by_config = dockerfile.ends_with("FROM $BASE\n");
        if by_config {
            let (status, out, err) =
                platform.cli_as("mallory", &evil, &["config:set", "-a", "evil", &format!("BASE={victim}")]).await;
            assert_eq!(status, 0, "{out}{err}");
        }
        let (pushed, out) = platform.git(&evil, &mallory_key, &["push", "skiff", "main"]);
        assert!(!pushed, "attack {n} was built:\n{dockerfile}\n{out}");
        assert!(
            out.contains("you may not use `victim`: it belongs to an app you cannot access"),
            "{dockerfile}\n{out}"
        );
        if by_config {
            let (status, out, err) = platform.cli_as("mallory", &evil, &["config:unset", "-a", "evil", "BASE"]).await;
            assert_eq!(status, 0, "{out}{err}");
        }
    }
    let releases = platform.cli_as("mallory", &home, &["releases", "-a", "evil", "--json"]).await.1;
    assert_eq!(releases.trim(), "[]", "no attack made a release");

    // The engine holds the victim's image; its ID names it without a registry.
    let id = Command::new("docker").args(["inspect", "--format", "{{.Id}}", &victim]).output().unwrap();
    let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
    assert!(id.starts_with("sha256:"), "{id}");
    for reference in [id.clone(), id.trim_start_matches("sha256:")[..12].to_owned()] {
        let evil = evil_repo(
            &platform,
            &mallory_key,
            &home,
            &format!("evil-{}", &reference[..16.min(reference.len())].replace(':', "-")),
            &format!("FROM {reference}\n"),
        );
        let (pushed, out) = platform.git(&evil, &mallory_key, &["push", "skiff", "main"]);
        assert!(!pushed && out.contains("is an image ID"), "{reference}: {out}");
    }

    // A trigger: an image of mallory's own, built and pushed with docker outside Skiff,
    // whose ONBUILD copies from the victim's image, then built upon through Skiff.
    let docker_config = home.join("mallory-docker");
    let docker = |args: &[&str]| {
        let output = Command::new("docker").arg("--config").arg(&docker_config).args(args).output().unwrap();
        assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    let trap_dir = home.join("trap");
    std::fs::create_dir_all(&trap_dir).unwrap();
    let trap_dockerfile = format!("FROM {registry}/stacks/busybox\nONBUILD COPY --from={victim} /app /stolen\n");
    std::fs::write(trap_dir.join("Dockerfile"), trap_dockerfile).unwrap();
    let trap = format!("{registry}/evil:trap");
    docker(&["login", "-u", "mallory", "-p", "mallory-password", &registry.to_string()]);
    docker(&["build", "-q", "-t", &trap, trap_dir.to_str().unwrap()]);
    docker(&["push", &trap]);
    let evil = evil_repo(&platform, &mallory_key, &home, "evil-trap", &format!("FROM {trap}\n"));
    let (pushed, out) = platform.git(&evil, &mallory_key, &["push", "skiff", "main"]);
    assert!(!pushed && out.contains("you may not use `victim`"), "the trigger was let through: {out}");

    // Deploying the victim's image by reference, under any of its names.
    for image in [victim.clone(), format!("localhost:{port}/victim@{}", digest.trim())] {
        let (status, _, err) = platform.cli_as("mallory", &home, &["deploy", "-a", "evil", "--image", &image]).await;
        assert!(status == 1 && err.contains("you may not use `victim`"), "{image}: {err}");
    }
    // Images of other registries are refused unless the operator allows them.
    let (status, _, err) =
        platform.cli_as("mallory", &home, &["deploy", "-a", "evil", "--image", "10.9.8.7:5000/anything:v1"]).await;
    assert!(status == 1 && err.contains("images from 10.9.8.7:5000 are not allowed here"), "{err}");

    // What a tenant may use still works: a stack, and his own app's images.
    let own = evil_repo(
        &platform,
        &mallory_key,
        &home,
        "own",
        &format!(
            "FROM {registry}/stacks/busybox\nRUN mkdir -p /www && echo mine > /www/index.html\n\
             CMD exec httpd -f -p 5000 -h /www\n"
        ),
    );
    let (pushed, out) = platform.git(&own, &mallory_key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    let own_digest = out.lines().find_map(|l| l.split("Pushed image evil@").nth(1)).expect("named");
    let own_image = format!("{registry}/evil@{}", own_digest.trim());
    let (status, out, err) = platform.cli_as("mallory", &home, &["deploy", "-a", "evil", "--image", &own_image]).await;
    assert_eq!(status, 0, "{out}{err}");

    // From inside his own container, the victim's container is out of reach: access
    // rules, maintenance mode and HTTPS-only cannot be bypassed by going around the router.
    let victim_ip = container_address(&platform, "victim");
    let probe = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {victim_ip} 5000; echo probe done");
    let (status, out, err) = platform.cli_as("mallory", &home, &["run", "-a", "evil", &probe]).await;
    assert!(status == 0 && out.contains("probe done"), "{out}{err}");
    assert!(!out.contains("HTTP/1."), "the victim's container answered mallory's: {out}");
    // The victim's own containers reach its web containers by their process type.
    let (status, out, err) = platform.cli(&home, &["run", "-a", "victim", "wget -qO- http://web:5000/"]).await;
    assert_eq!(status, 0, "the app's own one-off reaches its web by name: {out}{err}");
    assert!(!out.is_empty(), "{out}{err}");
    // And it runs confined: no raw sockets, no new privileges, the default limits.
    let confinement = "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; \
        cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null \
        || cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max";
    let (status, out, err) = platform.cli_as("mallory", &home, &["run", "-a", "evil", confinement]).await;
    assert_eq!(status, 0, "{out}{err}");
    let effective = out.lines().find_map(|l| l.strip_prefix("CapEff:")).expect("capabilities listed").trim();
    let effective = u64::from_str_radix(effective, 16).unwrap();
    assert_eq!(effective & (1 << 13), 0, "no NET_RAW: {out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("\n512\n") && out.contains("536870912"), "512 processes and 512 MiB by default: {out}");
    platform.stop().await;
}

/// The address on its app's network of `app`'s running web container, which publishes
/// no port: the router reaches it there. Found by its name: the warm container waiting
/// for the app's next release has the same labels and network, but runs no app yet. A web
/// container started in a pause container's network namespace has the pause container's
/// networks and address.
fn container_address(platform: &Platform, app: &str) -> String {
    let listed = Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("name=^skiff-{app}-web-")])
        .args(["--filter", &format!("label=skiff.platform={}", platform.platform_id)])
        .output()
        .unwrap();
    let web = String::from_utf8_lossy(&listed.stdout).lines().next().expect("a running web container").to_owned();
    let id = namespace_owner(&web).unwrap_or(web);
    let inspect = |format: &str| inspect(&id, format);
    let ports = inspect("{{json .NetworkSettings.Ports}}");
    assert!(!ports.contains("HostPort"), "{app} published a port: {ports}");
    let networks = inspect("{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}");
    assert_eq!(networks, platform.app_network(app), "{app} sits on its own network");
    inspect("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_process_over_its_memory_is_killed_and_says_so() {
    let (mut platform, repo, key) = Platform::with_example("hungry").await;
    std::fs::write(
        repo.join("Procfile"),
        "web: exec httpd -f -p \"$PORT\" -h /app/public\nworker: awk 'BEGIN { s = \"x\"; while (1) s = s s }'\n",
    )
    .unwrap();
    let (ok, out) = platform.git(&repo, &key, &["commit", "-qam", "a hungry worker"]);
    assert!(ok, "{out}");
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    platform.cli_ok(&repo, &["limits:set", "worker", "memory=16m"]).await;
    platform.cli_ok(&repo, &["ps:scale", "worker=1"]).await;
    let killed = crate::harness::eventually(std::time::Duration::from_secs(60), || async {
        let ps = platform.cli_ok(&repo, &["ps"]).await;
        ps.contains("crashed: worker was killed for using more than its memory limit").then_some(ps)
    });
    assert!(killed.await.is_some(), "{}", platform.cli_ok(&repo, &["ps"]).await);
    let events = platform.cli_ok(&repo, &["events", "-n", "50"]).await;
    assert!(events.contains("worker was killed for using more than its memory limit"), "{events}");
    let (status, _, err) = platform.cli(&repo, &["limits:set", "worker", "memory=9000m"]).await;
    assert!(status == 1 && err.contains("this platform's most"), "{err}");
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn guessing_passwords_is_refused_for_a_while_on_the_api_and_the_registry() {
    let (mut platform, _, _, _) = platform_with_mallory().await;
    let http = reqwest::Client::new();
    let login = |password: &'static str| {
        let (http, url) = (http.clone(), format!("{}/v2/auth/login", platform.controller_url()));
        async move {
            let body = serde_json::json!({"username": "admin", "password": password});
            http.post(url).json(&body).send().await.unwrap()
        }
    };
    for guess in 0..skiff_controller::throttle::PER_USER {
        assert_eq!(login("guess").await.status(), 403, "guess {guess} is simply wrong");
    }
    let refused = login("guess").await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
    assert!(refused.text().await.unwrap().contains("too many failed sign-ins"));
    assert_eq!(login("correct-horse").await.status(), 429, "held, whatever the password, until the window passes");
    // Another user from the same address signs in as usual.
    let body = serde_json::json!({"username": "mallory", "password": "mallory-password"});
    let other = http.post(format!("{}/v2/auth/login", platform.controller_url())).json(&body).send().await.unwrap();
    assert_eq!(other.status(), 200);

    // The registry's Basic auth and token endpoint count against the same user.
    let registry = platform.addresses.registry.unwrap();
    for path in ["/v2/", "/v2/token?service=skiff"] {
        let answer =
            http.get(format!("http://{registry}{path}")).basic_auth("admin", Some("guess")).send().await.unwrap();
        assert_eq!(answer.status(), 429, "{path}");
        assert!(answer.headers().contains_key("retry-after"), "{path}");
        assert!(answer.text().await.unwrap().contains("TOOMANYREQUESTS"), "{path}");
    }
    // Wrong passwords for one user from many tries through the registry are counted too.
    for n in 0..skiff_controller::throttle::PER_USER {
        let answer = http
            .get(format!("http://{registry}/v2/"))
            .basic_auth("mallory", Some(format!("guess{n}")))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401, "try {n}");
    }
    let answer =
        http.get(format!("http://{registry}/v2/")).basic_auth("mallory", Some("guess-again")).send().await.unwrap();
    assert_eq!(answer.status(), 429);
    platform.stop().await;
}
