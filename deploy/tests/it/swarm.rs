//! The platform on a real multi-node Docker Swarm (`SKIFF_RUNTIME=swarm`): this host's
//! engine is the manager, and the workers are `dockerd`s in network namespaces of their
//! own that deploy/swarm.sh makes (deploy/test.sh runs it). The registry serves HTTPS on
//! the host's address on the nodes' bridge, where every node pulls from it, trusting the
//! platform's CA through `/etc/docker/certs.d` as an operator would set it up.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Platform, eventually};

/// Where Docker engines look for the CA of a registry at an address.
const CERTS_D: &str = "/etc/docker/certs.d";

/// The platform's CA, trusted by every engine of the machine for pulls from `registry`
/// until dropped.
struct TrustedRegistry(std::path::PathBuf);

impl TrustedRegistry {
    fn install(platform: &Platform, registry: &str) -> Self {
        let dir = std::path::Path::new(CERTS_D).join(registry);
        std::fs::create_dir_all(&dir).expect("certs.d is writable (the cluster tests run as root)");
        std::fs::copy(platform.dir.path().join("data/router/ca.crt"), dir.join("ca.crt")).expect("the CA is kept");
        Self(dir)
    }
}

impl Drop for TrustedRegistry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port free on `host` now.
fn free_port(host: &str) -> u16 {
    let listener = std::net::TcpListener::bind((host, 0)).expect("the host's bridge address exists");
    listener.local_addr().unwrap().port()
}

/// The host's address on the swarm nodes' bridge.
const HOST_ON_BRIDGE: &str = "10.250.0.1";

/// Fails with what to do when this host's engine is not the manager of a swarm with
/// workers.
fn require_swarm() {
    let out = Command::new("docker").args(["node", "ls", "--format", "{{.Status}}"]).output().expect("docker runs");
    let ready = String::from_utf8_lossy(&out.stdout).lines().filter(|l| *l == "Ready").count();
    assert!(
        ready >= 3,
        "this test needs this host's engine to manage a swarm of at least three ready nodes \
         (deploy/test.sh makes one with deploy/swarm.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The nodes (by id: every node here has the same host name) that the app's running web
/// tasks are on.
fn web_task_nodes(platform: &Platform, app: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["service", "ls", "-q", "--filter", &format!("label=skiff.platform={}", platform.platform_id)])
        .args(["--filter", &format!("label=skiff.app={app}"), "--filter", "label=skiff.process=web"])
        .output()
        .unwrap();
    let services: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    services
        .iter()
        .filter_map(|service| {
            let out = Command::new("docker")
                .args(["service", "ps", "--filter", "desired-state=running", "--no-trunc", "-q", service])
                .output()
                .ok()?;
            let ids = String::from_utf8_lossy(&out.stdout).lines().next()?.to_owned();
            let node = Command::new("docker")
                .args(["inspect", "--format", "{{.NodeID}} {{.Status.State}}", &ids])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&node.stdout).trim().to_owned();
            let (node, state) = text.split_once(' ')?;
            (state == "running").then(|| node.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker Swarm (deploy/test.sh)"]
async fn a_push_runs_web_replicas_across_the_swarm_and_every_one_answers_through_the_router() {
    require_swarm();
    let registry = format!("{HOST_ON_BRIDGE}:{}", free_port(HOST_ON_BRIDGE));
    let (platform, repo, key) = Platform::start_with_settings(|settings| {
        settings.runtime = skiffd::Runtime::Swarm;
        settings.registry_tls_listen = Some(registry.parse().unwrap());
        settings.registry_address = Some(registry.clone());
    })
    .await
    .with_app("spread")
    .await;
    let _trusted = TrustedRegistry::install(&platform, &registry);
    // Each replica names itself, so that the test can tell who answered.
    std::fs::write(
        repo.join("Procfile"),
        "web: echo \"$HOSTNAME\" > /app/public/who.txt; exec httpd -f -p \"$PORT\" -h /app/public\n",
    )
    .unwrap();
    for args in [&["add", "-A"][..], &["commit", "-qm", "replicas name themselves"]] {
        let (ok, out) = platform.git(&repo, &key, args);
        assert!(ok, "{out}");
    }
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    platform.cli_ok(&repo, &["ps:scale", "web=4", "--wait"]).await;

    // Four tasks, on three nodes.
    let nodes = eventually(Duration::from_secs(60), || async {
        let nodes = web_task_nodes(&platform, "spread");
        (nodes.len() == 4).then_some(nodes)
    })
    .await
    .expect("four web tasks running");
    let distinct: HashSet<_> = nodes.iter().collect();
    assert_eq!(distinct.len(), 3, "four replicas spread over three nodes: {nodes:?}");

    // Every replica answers through the router.
    let router = platform.router();
    let client = reqwest::Client::new();
    let answered = eventually(Duration::from_secs(30), || async {
        let mut seen = HashSet::new();
        for _ in 0..40 {
            let response = client
                .get(format!("http://{router}/who.txt"))
                .header("Host", "spread.localhost")
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .ok()?;
            if response.status() == 200 {
                seen.insert(response.text().await.ok()?.trim().to_owned());
            }
        }
        (seen.len() == 4).then_some(seen)
    })
    .await;
    assert!(answered.is_some(), "every one of the four replicas answers through the router");

    // A one-off runs somewhere in the swarm; its output and status come back.
    let (status, out, err) = platform.cli(&repo, &["run", "-a", "spread", "echo from-the-swarm; exit 3"]).await;
    assert_eq!(status, 3, "{out}{err}");
    assert!(out.contains("from-the-swarm"), "{out}{err}");

    // Scaling down removes services; none is left behind once the app is gone.
    platform.cli_ok(&repo, &["apps:destroy", "--confirm", "spread"]).await;
    let gone =
        eventually(Duration::from_secs(60), || async { web_task_nodes(&platform, "spread").is_empty().then_some(()) });
    assert!(gone.await.is_some(), "the destroyed app's services are removed");
}
