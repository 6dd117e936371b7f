//! Build paths beyond the Procfile app: Dockerfile apps built by the engine, images
//! deployed as they are, and failed builds that leave the running release alone.

use std::os::unix::process::CommandExt as _;
use std::time::Duration;

use crate::harness::{Platform, eventually, get_via_router, inspect, logged, namespace_owner};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn buildpack_apps_compile_on_the_stack_with_a_cache_that_survives() {
    let mut platform = Platform::start().await;
    let home = platform.dir.path().to_owned();
    platform.cli_ok(&home, &["auth:register", "-u", "admin", "-p", "correct-horse"]).await;
    platform.import_busybox_stack().await;
    let key = platform.add_ssh_key().await;
    let buildpack = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/greeting-buildpack");

    let repo = home.join("greeting-app");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("greeting.txt"), "Hello from a buildpack").unwrap();
    std::fs::write(repo.join("Procfile"), "web: exec httpd -f -p \"$PORT\" -h /app/public\n").unwrap();
    for args in [&["init", "-q", "-b", "main"][..], &["add", "-A"], &["commit", "-qm", "greeting app"]] {
        let (ok, out) = platform.git(&repo, &key, args);
        assert!(ok, "git {args:?}: {out}");
    }
    platform.cli_ok(&repo, &["apps:create", "greeter"]).await;
    platform
        .cli_ok(&repo, &["config:set", &format!("BUILDPACK_URL={}", buildpack.display()), "GREETING_SUFFIX=!"])
        .await;

    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    assert!(out.contains("remote: -----> Buildpack"), "{out}");
    assert!(out.contains("cache: 0 earlier builds") && out.contains("rendered public/index.html"), "{out}");
    let served = eventually(Duration::from_secs(60), || async {
        match get_via_router(platform.router(), "greeter.localhost").await {
            Some((200, body)) if body.contains("Hello from a buildpack!") => Some(()),
            _ => None,
        }
    });
    assert!(served.await.is_some(), "the compiled page is served, with the config the buildpack saw");

    std::fs::write(repo.join("greeting.txt"), "Hello again").unwrap();
    let (ok, out) = platform.git(&repo, &key, &["commit", "-qam", "again"]);
    assert!(ok, "{out}");
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    assert!(out.contains("cache: 1 earlier builds"), "the cache survives between builds: {out}");
    let builds = platform.cli_ok(&repo, &["builds"]).await;
    assert!(builds.contains("buildpack"), "{builds}");

    // One push per app at a time: while a slow build runs, another push is told so.
    platform.cli_ok(&repo, &["config:set", "COMPILE_SECONDS=4"]).await;
    std::fs::write(repo.join("greeting.txt"), "Hello, slowly").unwrap();
    let (ok, out) = platform.git(&repo, &key, &["commit", "-qam", "slow"]);
    assert!(ok, "{out}");
    let slow = {
        let git = platform.git_command(&repo, &key);
        tokio::task::spawn_blocking(move || git(&["push", "skiff", "main"]))
    };
    // Whichever push takes the lock first builds; the other hears about it.
    let (second_pushed, second) = platform.git(&repo, &key, &["push", "skiff", "HEAD:main"]);
    let (first_pushed, first) = slow.await.unwrap();
    let busy = "another push to `greeter` is being built";
    let (winner, loser) = if first_pushed { (first, second) } else { (second, first) };
    assert!(first_pushed != second_pushed, "exactly one push builds:\n{winner}\n{loser}");
    assert!(winner.contains("is up"), "{winner}");
    assert!(winner.contains("remote:        ... still working (2s)"), "a silent compile shows signs of life: {winner}");
    assert!(loser.contains(busy), "{loser}");
    // A pusher that hangs up mid-build leaves no release behind and frees the app.
    std::fs::write(repo.join("greeting.txt"), "Hello, abandoned").unwrap();
    let (ok, out) = platform.git(&repo, &key, &["commit", "-qam", "abandoned"]);
    assert!(ok, "{out}");
    let releases = |text: String| serde_json::from_str::<Vec<serde_json::Value>>(&text).unwrap().len();
    let before = releases(platform.cli_ok(&repo, &["releases", "--json"]).await);
    // In its own process group, so that git and its ssh go together, as when a laptop
    // drops off the network.
    let mut abandoned = crate::harness::git_process(&repo, &key, &["push", "-q", "skiff", "main"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    // Its bin/compile runs in a build container while it sleeps.
    let building = eventually(Duration::from_secs(30), || async {
        let listed = std::process::Command::new("docker")
            .args(["ps", "-q", "--filter", "label=skiff.build=greeter"])
            .output()
            .ok()?;
        (!listed.stdout.is_empty()).then_some(())
    });
    assert!(building.await.is_some(), "the abandoned push got as far as building");
    let group = format!("-{}", abandoned.id());
    let killed = std::process::Command::new("kill").args(["-9", "--", &group]).status().unwrap();
    assert!(killed.success());
    abandoned.wait().unwrap();
    platform.cli_ok(&repo, &["config:unset", "COMPILE_SECONDS"]).await;
    let freed = eventually(Duration::from_secs(30), || async {
        let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
        (pushed && out.contains("is up")).then_some(())
    });
    assert!(freed.await.is_some(), "the lock went with the pusher");
    let after = releases(platform.cli_ok(&repo, &["releases", "--json"]).await);
    assert_eq!(after, before + 2, "the config change and the last push made releases; the abandoned push none");
    let leftovers = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=skiff.build=greeter"])
        .output()
        .unwrap();
    assert!(leftovers.stdout.is_empty(), "the abandoned build's container is gone");

    // The app's repository can be cloned back.
    let clone = home.join("cloned");
    let url = platform.git(&repo, &key, &["remote", "get-url", "skiff"]).1;
    let (cloned, out) = platform.git(&home, &key, &["clone", "-q", url.trim(), clone.to_str().unwrap()]);
    assert!(cloned, "{out}");
    assert_eq!(std::fs::read_to_string(clone.join("greeting.txt")).unwrap(), "Hello, abandoned");

    // Without a Procfile the buildpack's bin/release names the process types, and its
    // config_vars are defaults that the app's config overrides.
    std::fs::remove_file(repo.join("Procfile")).unwrap();
    let (ok, out) = platform.git(&repo, &key, &["commit", "-qam", "no Procfile"]);
    assert!(ok, "{out}");
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed && out.contains("Default types from bin/release -> web") && out.contains("is up"), "{out}");
    let (status, out, err) = platform.cli(&repo, &["run", "echo \"by $GREETED_BY, $GREETING_SUFFIX\""]).await;
    assert!(status == 0 && out.contains("by the greeting buildpack, !"), "{out}{err}");
    platform.cli_ok(&repo, &["config:set", "GREETED_BY=its owner"]).await;
    let (status, out, err) = platform.cli(&repo, &["run", "echo \"by $GREETED_BY\""]).await;
    assert!(status == 0 && out.contains("by its owner"), "the app's config wins: {out}{err}");
    let served = eventually(Duration::from_secs(60), || async {
        match get_via_router(platform.router(), "greeter.localhost").await {
            Some((200, body)) if body.contains("Hello, abandoned!") => Some(()),
            _ => None,
        }
    });
    assert!(served.await.is_some(), "web runs as bin/release says");

    // A buildpack that does not accept the app rejects the push.
    std::fs::remove_file(repo.join("greeting.txt")).unwrap();
    let (ok, out) = platform.git(&repo, &key, &["commit", "-qam", "no greeting"]);
    assert!(ok, "{out}");
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(!pushed && out.contains("does not support this app"), "{out}");
    // Stop before the harness removes the containers, so no new one starts after.
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn dockerfile_apps_build_on_the_engine_and_failures_keep_the_release() {
    let mut platform = Platform::start().await;
    let home = platform.dir.path().to_owned();
    platform.cli_ok(&home, &["auth:register", "-u", "admin", "-p", "correct-horse"]).await;
    platform.import_busybox_stack().await;
    let key = platform.add_ssh_key().await;
    let registry = platform.addresses.registry.unwrap();

    let repo = home.join("docker-app");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("Dockerfile"),
        format!(
            "FROM {registry}/stacks/busybox\nCOPY index.html /www/index.html\nEXPOSE 8080\n\
             CMD echo \"dockerfile app on $PORT\"; exec httpd -f -p 8080 -h /www\n"
        ),
    )
    .unwrap();
    std::fs::write(repo.join("index.html"), "<h1>built from a Dockerfile</h1>\n").unwrap();
    for args in [&["init", "-q", "-b", "main"][..], &["add", "-A"], &["commit", "-qm", "dockerfile app"]] {
        let (ok, out) = platform.git(&repo, &key, args);
        assert!(ok, "git {args:?}: {out}");
    }
    let spares = eventually(Duration::from_secs(30), || async {
        let pauses = platform.pause_containers();
        (pauses.len() == 2 && pauses.iter().all(|(_, _, running)| *running)).then_some(())
    });
    assert!(spares.await.is_some(), "two spares run: {:?}", platform.pause_containers());
    platform.cli_ok(&repo, &["apps:create", "boxed"]).await;
    // A container of the stack waits for the app's first release, in case it is a Procfile
    // app's, in a pause container's network namespace.
    let waiting = eventually(Duration::from_secs(30), || async {
        let warm = unadopted_warm_containers(&platform);
        (warm.len() == 1 && warm[0].starts_with("skiff-warm-boxed-v1-")).then(|| warm[0].clone())
    });
    let waiting = waiting.await.unwrap_or_else(|| panic!("{:?}", unadopted_warm_containers(&platform)));
    let pause = namespace_owner(&waiting).unwrap_or_else(|| {
        panic!(
            "it runs in a pause container's namespace: {}, {:?}; logged:\n{}",
            networks_of(&waiting),
            platform.pause_containers(),
            logged(&["controller.pause", "controller.warm", "controller.container", "boxed"])
        )
    });

    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    assert!(out.contains("remote: -----> Dockerfile app detected"), "{out}");
    assert!(out.contains("remote: -----> Released v1"), "{out}");
    let served = eventually(Duration::from_secs(60), || async {
        match get_via_router(platform.router(), "boxed.localhost").await {
            Some((200, body)) if body.contains("built from a Dockerfile") => Some(()),
            _ => None,
        }
    })
    .await;
    assert!(served.is_some(), "the Dockerfile app serves on the port it EXPOSEs, through the router");
    // The waiting container had joined the app's network as `web`; the release started
    // from its own image, so it goes, and the app's containers reach the app alone as `web`.
    let forgone =
        eventually(Duration::from_secs(30), || async { unadopted_warm_containers(&platform).is_empty().then_some(()) });
    assert!(forgone.await.is_some(), "{:?}", unadopted_warm_containers(&platform));
    let namespace_gone = eventually(Duration::from_secs(30), || async {
        platform.pause_containers().iter().all(|(id, _, _)| *id != pause).then_some(())
    });
    assert!(namespace_gone.await.is_some(), "its namespace goes with it: {:?}", platform.pause_containers());
    for _ in 0..3 {
        let (status, out, err) = platform.cli(&repo, &["run", "wget -qO- http://web:8080/"]).await;
        assert!(status == 0 && out.contains("built from a Dockerfile"), "web reaches the app: {out}{err}");
    }
    let builds = platform.cli_ok(&repo, &["builds"]).await;
    assert!(builds.contains("dockerfile") && builds.contains("succeeded"), "{builds}");
    let info = platform.cli_ok(&repo, &["builds:info", "1"]).await;
    assert!(info.contains("Step 1/4 : FROM"), "the engine's output is in the build log: {info}");

    // The same image, deployed by reference, becomes v2.
    let image = out
        .lines()
        .find_map(|l| l.split("Pushed image boxed@").nth(1))
        .map(|digest| format!("{registry}/boxed@{}", digest.trim()))
        .expect("the push names its image");
    let deployed = platform.cli_ok(&repo, &["deploy", "--image", &image]).await;
    assert!(deployed.contains("as v2"), "{deployed}");

    // A Dockerfile that fails rejects the push; the app keeps serving.
    let dockerfile = std::fs::read_to_string(repo.join("Dockerfile")).unwrap();
    std::fs::write(repo.join("Dockerfile"), dockerfile.replace("COPY", "RUN exit 3\nCOPY")).unwrap();
    let (ok, out) = platform.git(&repo, &key, &["commit", "-qam", "broken"]);
    assert!(ok, "{out}");
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(!pushed, "{out}");
    assert!(out.contains("docker build failed"), "{out}");
    assert!(out.contains("the running release is unchanged"), "{out}");
    let releases = platform.cli_ok(&repo, &["releases", "--json"]).await;
    let releases: serde_json::Value = serde_json::from_str(&releases).unwrap();
    assert_eq!(releases.as_array().unwrap().len(), 2, "no release for the failed build");
    let still = eventually(Duration::from_secs(30), || async {
        match get_via_router(platform.router(), "boxed.localhost").await {
            Some((200, body)) if body.contains("built from a Dockerfile") => Some(()),
            _ => None,
        }
    })
    .await;
    assert!(still.is_some(), "the running release keeps serving");
    // Stop before the harness removes the containers, so no new one starts after.
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn pushes_to_different_apps_build_at_the_same_time() {
    let (mut platform, repo, key) = Platform::with_example("north").await;
    let other = platform.dir.path().join("south");
    let copied = std::process::Command::new("cp").arg("-r").arg(&repo).arg(&other).status().unwrap();
    assert!(copied.success());
    platform.cli_ok(&other, &["apps:create", "south"]).await;
    let pushes: Vec<_> = [repo.clone(), other.clone()]
        .into_iter()
        .map(|dir| {
            let git = platform.git_command(&dir, &key);
            tokio::task::spawn_blocking(move || git(&["push", "skiff", "main"]))
        })
        .collect();
    for push in pushes {
        let (pushed, out) = push.await.unwrap();
        assert!(pushed && out.contains("is up"), "{out}");
    }
    for app in ["north", "south"] {
        let served = eventually(Duration::from_secs(60), || async {
            matches!(get_via_router(platform.router(), &format!("{app}.localhost")).await, Some((200, _))).then_some(())
        });
        assert!(served.await.is_some(), "{app} serves");
    }
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn an_imported_stack_is_on_the_engine_before_an_app_needs_it() {
    let (platform, repo, _key) = Platform::with_example("early").await;
    // A stack no engine can hold yet: the busybox root with a file of its own.
    let rootfs = platform.dir.path().join("fresh-rootfs");
    let copied =
        std::process::Command::new("cp").arg("-a").arg(platform.dir.path().join("rootfs")).arg(&rootfs).status();
    assert!(copied.unwrap().success());
    std::fs::write(rootfs.join("etc/stack-id"), format!("{:032x}\n", rand::random::<u128>())).unwrap();
    let out = platform.cli_ok(&repo, &["stacks:import", "fresh", rootfs.to_str().unwrap()]).await;
    let image =
        out.split_whitespace().find(|word| word.starts_with("stacks/fresh@sha256:")).expect("the stack's image");
    let reference = format!("{}/{image}", platform.addresses.registry.unwrap());
    let held = eventually(Duration::from_secs(30), || async {
        let inspected = std::process::Command::new("docker").args(["image", "inspect", &reference]).output().unwrap();
        inspected.status.success().then_some(())
    });
    assert!(held.await.is_some(), "the engine pulled {reference} once it was imported, before any app is made on it");
    let _ = std::process::Command::new("docker").args(["image", "rm", &reference]).output();
}

/// This platform's warm containers not yet adopted (`skiff-warm-…`), by name.
fn unadopted_warm_containers(platform: &Platform) -> Vec<String> {
    let listed = std::process::Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter", "name=skiff-warm-"])
        .args(["--filter", &format!("label=skiff.platform={}", platform.platform_id)])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&listed.stdout).lines().map(str::to_owned).collect()
}

/// The networks a container is on, each with its aliases there (the engine adds the
/// container's short id): `NETWORK:ALIAS,… …`; for one in another container's network
/// namespace (a pause container's), that container's.
fn networks_of(container: &str) -> String {
    match namespace_owner(container) {
        Some(owner) => networks_of(&owner),
        None => inspect(
            container,
            "{{range $name, $on := .NetworkSettings.Networks}}{{$name}}:{{join $on.Aliases \",\"}} {{end}}",
        ),
    }
}

/// The ids of `platform`'s pause containers waiting for an app: running, on no network.
fn waiting_pauses(platform: &Platform) -> Vec<String> {
    let pauses = platform.pause_containers().into_iter();
    pauses.filter(|(id, _, running)| *running && networks_of(id).is_empty()).map(|(id, ..)| id).collect()
}

/// The running web container of `release`: its name and image, as the engine says.
fn web_container_of(platform: &Platform, release: &str) -> (String, String) {
    let (id, _, _) = platform
        .containers()
        .into_iter()
        .find(|(_, r, running)| r == release && *running)
        .unwrap_or_else(|| panic!("no running container of v{release}: {:?}", platform.containers()));
    let inspected = inspect(&id, "{{.Name}} {{.Config.Image}}");
    let (name, image) = inspected.split_once(' ').expect("name and image");
    (name.to_owned(), image.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_push_runs_in_a_container_started_while_it_was_built() {
    let (mut platform, repo, key) = Platform::with_example("warmed").await;
    // The container made for the app's first release joins the app's network as `web` as
    // soon as it runs (nothing else of the app answers there yet).
    let joined = eventually(Duration::from_secs(30), || async {
        let warm = unadopted_warm_containers(&platform);
        let [name] = &warm[..] else { return None };
        let on = networks_of(name);
        let (network, aliases) = on.split_once(':')?;
        (network == platform.app_network("warmed") && aliases.split(',').any(|alias| alias == "web")).then_some(())
    });
    let joined = joined.await.is_some();
    let warm = unadopted_warm_containers(&platform);
    assert!(joined, "{:?}", warm.iter().map(|name| networks_of(name)).collect::<Vec<_>>());
    // A file that barely compresses, more than two of the chunks the layer is sent in (and
    // within the test builder's 1 MB push limit): the page says how much of it arrived, and
    // its last bytes.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut bulk: Vec<u8> = (0..600_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    bulk.extend(b"end-of-bulk");
    std::fs::write(repo.join("bulk"), &bulk).unwrap();
    std::fs::write(
        repo.join("Procfile"),
        "web: mkdir -p /tmp/www && echo \"$GREETING from $SKIFF_RELEASE in $PWD on $PORT, $(wc -c < bulk) bytes \
         ending $(tail -c 11 bulk)\" > /tmp/www/index.html && exec httpd -f -p \"$PORT\" -h /tmp/www\n",
    )
    .unwrap();
    platform.cli_ok(&repo, &["config:set", "GREETING=it's $HOME"]).await;
    let (pushed, out) = platform.commit_and_push(&repo, &key, "env page");
    assert!(pushed, "{out}");
    let version = platform.cli_ok(&repo, &["releases"]).await;
    let version = version.split_whitespace().find_map(|w| w.strip_prefix('v')?.parse::<u32>().ok()).unwrap();
    let serves = |expected: String| {
        let router = platform.router();
        eventually(Duration::from_secs(30), move || {
            let expected = expected.clone();
            async move {
                match get_via_router(router, "warmed.localhost").await {
                    Some((200, body)) if body.trim() == expected => Some(()),
                    _ => None,
                }
            }
        })
    };
    let page = format!("it's $HOME from v{version} in /app on 5000, {} bytes ending end-of-bulk", bulk.len());
    assert!(serves(page).await.is_some(), "the app got the release's env and working directory");
    // The release ran in the warm container: the stack's image, renamed as a web container.
    let (name, image) = web_container_of(&platform, &version.to_string());
    assert!(name.starts_with(&format!("/skiff-warmed-web-v{version}-")), "{name}");
    assert!(image.contains("/stacks/busybox@sha256:"), "adopted, not made from the release's image: {image}");
    // One waits for the next release.
    let next = version + 1;
    let waiting = eventually(Duration::from_secs(30), || async {
        let warm = unadopted_warm_containers(&platform);
        (warm.len() == 1 && warm[0].starts_with(&format!("skiff-warm-warmed-v{next}-"))).then_some(())
    });
    assert!(waiting.await.is_some(), "{:?}", unadopted_warm_containers(&platform));
    // It waits on no network: nothing reaches it (nor does it reach anything) before it is
    // adopted.
    assert_eq!(networks_of(&unadopted_warm_containers(&platform)[0]), "none:");
    // The app's containers reach the adopted one by its process type, never the waiting one.
    for _ in 0..3 {
        let (status, out, err) = platform.cli(&repo, &["run", "wget -qO- http://web:5000/"]).await;
        assert!(
            status == 0 && out.contains(&format!("from v{version}")),
            "web reaches the adopted container: {out}{err}"
        );
    }

    // The next push too, and the release it replaces goes as any other.
    std::fs::write(
        repo.join("Procfile"),
        "web: echo \"second $SKIFF_RELEASE\" > /tmp/index.html && exec httpd -f -p \"$PORT\" -h /tmp\n",
    )
    .unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "second page");
    assert!(pushed, "{out}");
    assert!(serves(format!("second v{next}")).await.is_some());
    let (name, image) = web_container_of(&platform, &next.to_string());
    assert!(
        name.starts_with(&format!("/skiff-warmed-web-v{next}-")) && image.contains("/stacks/busybox@"),
        "{name} {image}"
    );
    let gone = eventually(Duration::from_secs(30), || async {
        platform.containers().iter().all(|(_, release, _)| release == &next.to_string()).then_some(())
    });
    assert!(gone.await.is_some(), "the previous release's container goes: {:?}", platform.containers());

    // A push that fails to build leaves the release serving, and the warm container for
    // the next one; destroying the app removes it.
    std::fs::remove_file(repo.join("Procfile")).unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "no procfile");
    assert!(!pushed && out.contains("no Procfile"), "{out}");
    assert!(serves(format!("second v{next}")).await.is_some());
    let warm = unadopted_warm_containers(&platform);
    assert!(warm.len() == 1 && warm[0].starts_with(&format!("skiff-warm-warmed-v{}-", next + 1)), "{warm:?}");
    platform.cli_ok(&repo, &["apps:destroy", "--confirm", "warmed"]).await;
    assert!(unadopted_warm_containers(&platform).is_empty(), "{:?}", unadopted_warm_containers(&platform));
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn an_apps_first_container_starts_in_a_network_namespace_started_ahead() {
    let (mut platform, repo, key) = Platform::start().await.with_example_repo().await;
    // The stack's import was answered once a first pause container waited: an app made at
    // once starts in it.
    assert!(!waiting_pauses(&platform).is_empty(), "no spare as the import ends: {:?}", platform.pause_containers());
    // Then two pause containers wait on no network (loopback only).
    let spares = || async {
        let waiting = waiting_pauses(&platform);
        (waiting.len() == 2 && platform.pause_containers().len() == 2).then_some(waiting)
    };
    let before = eventually(Duration::from_secs(30), spares)
        .await
        .unwrap_or_else(|| panic!("two spare pause containers: {:?}", platform.pause_containers()));
    // Each joined the platform's pauses' network once and left it (which left the engine's
    // DNS resolver running in its namespace): internal, its containers unable to reach each
    // other, and empty.
    let pauses_network = format!("skiff-apps-{}.pauses", platform.platform_id);
    let inspected = std::process::Command::new("docker")
        .args(["network", "inspect", "--format"])
        .arg("{{.Internal}} {{index .Options \"com.docker.network.bridge.enable_icc\"}} {{len .Containers}}")
        .arg(&pauses_network)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&inspected.stdout).trim(), "true false 0", "{pauses_network}");

    // The app's first warm container starts in its namespace, which joins the app's network
    // as `web`; a push at once runs in it.
    platform.cli_ok(&repo, &["apps:create", "pod"]).await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed && out.contains("v1 is up"), "{out}");
    let (name, image) = web_container_of(&platform, "1");
    assert!(name.starts_with("/skiff-pod-web-v1-") && image.contains("/stacks/busybox@"), "adopted: {name} {image}");
    let web = platform.containers().into_iter().find(|(_, release, _)| release == "1").expect("v1's container").0;
    let spare = namespace_owner(&web).expect("v1 runs in another container's namespace");
    assert!(before.contains(&spare), "v1 runs in a spare's namespace: {spare} {before:?}");
    let on = networks_of(&spare);
    assert!(on.starts_with(&format!("{}:", platform.app_network("pod"))) && on.contains("web"), "{on}");
    let served = eventually(Duration::from_secs(30), || async {
        matches!(get_via_router(platform.router(), "pod.localhost").await, Some((200, body)) if body.contains("Hello from Skiff"))
            .then_some(())
    });
    assert!(served.await.is_some(), "the router reaches it at its namespace's address");
    let (status, out, err) = platform.cli(&repo, &["run", "wget -qO- http://web:5000/"]).await;
    assert!(status == 0 && out.contains("Hello from Skiff"), "the app's containers reach it as web: {out}{err}");
    // The taken one is named after its app, and two wait for the next apps again.
    let replenished = eventually(Duration::from_secs(30), || async {
        let pauses = platform.pause_containers();
        let taken =
            pauses.iter().any(|(id, name, running)| *id == spare && name.starts_with("skiff-pause-pod-") && *running);
        (taken && waiting_pauses(&platform).len() == 2).then_some(())
    });
    assert!(replenished.await.is_some(), "{:?}", platform.pause_containers());

    // When v1's container goes (replaced by v2's), its namespace goes with it.
    std::fs::write(repo.join("NOTES"), "v2\n").unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "second");
    assert!(pushed && out.contains("v2 is up"), "{out}");
    let gone = eventually(Duration::from_secs(30), || async {
        platform.pause_containers().iter().all(|(id, _, _)| *id != spare).then_some(())
    });
    assert!(gone.await.is_some(), "{:?}", platform.pause_containers());
    let (status, out, err) = platform.cli(&repo, &["run", "wget -qO- http://web:5000/"]).await;
    assert!(status == 0 && out.contains("Hello from Skiff"), "web reaches v2: {out}{err}");

    // Destroying the app leaves the spares alone.
    platform.cli_ok(&repo, &["apps:destroy", "--confirm", "pod"]).await;
    assert!(spares().await.is_some(), "{:?}", platform.pause_containers());

    // Spares removed behind the platform's back are found out as they are taken: the app's
    // first container is made on no network then, and the push serves all the same.
    for (id, _, _) in platform.pause_containers() {
        let removed = std::process::Command::new("docker").args(["rm", "-f", &id]).output().unwrap();
        assert!(removed.status.success());
    }
    platform.cli_ok(&repo, &["apps:create", "pod"]).await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed && out.contains("v1 is up"), "{out}");
    let web = platform.containers().into_iter().find(|(_, release, _)| release == "1").expect("v1's container").0;
    assert_eq!(namespace_owner(&web), None, "v1 runs in a namespace of its own");
    assert!(networks_of(&web).starts_with(&format!("{}:", platform.app_network("pod"))));
    let served = eventually(Duration::from_secs(30), || async {
        matches!(get_via_router(platform.router(), "pod.localhost").await, Some((200, _))).then_some(())
    });
    assert!(served.await.is_some(), "served without a pause container");
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn the_minutes_sweep_removes_stopped_spares_and_warm_containers_and_makes_spares_again() {
    let (mut platform, repo, _key) = Platform::start().await.with_example_repo().await;
    let running_spares = || async {
        let spares = waiting_pauses(&platform);
        (spares.len() == 2).then_some(spares)
    };
    let spares = eventually(Duration::from_secs(30), running_spares)
        .await
        .unwrap_or_else(|| panic!("two spares: {:?}", platform.pause_containers()));

    // An app's first warm container waits in one spare's namespace; it is killed, and so is
    // the other spare, behind the platform's back.
    platform.cli_ok(&repo, &["apps:create", "idle"]).await;
    let warm = eventually(Duration::from_secs(30), || async {
        let warm = unadopted_warm_containers(&platform);
        (warm.len() == 1).then(|| warm[0].clone())
    })
    .await
    .expect("a warm container for idle");
    let taken = namespace_owner(&warm).expect("it runs in a spare's namespace");
    let other = spares.iter().find(|id| **id != taken).expect("the other spare").clone();
    let killed = std::process::Command::new("docker").args(["kill", &warm, &other]).output().unwrap();
    assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));

    // The controller's sweep, once a minute, removes both, the killed one's namespace with
    // it, and two spares wait again.
    let swept = eventually(Duration::from_secs(100), || async {
        let pauses = platform.pause_containers();
        let gone = pauses.iter().all(|(id, _, _)| *id != other && *id != taken);
        (gone && unadopted_warm_containers(&platform).is_empty()).then_some(())
    });
    assert!(swept.await.is_some(), "{:?} {:?}", platform.pause_containers(), unadopted_warm_containers(&platform));
    let again = eventually(Duration::from_secs(30), running_spares).await;
    assert!(
        again.is_some_and(|again| again.iter().all(|id| !spares.contains(id))),
        "{:?}",
        platform.pause_containers()
    );
    platform.stop().await;
}
