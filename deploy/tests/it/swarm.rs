//! The platform on a real multi-node Docker Swarm (`SKIFF_RUNTIME=swarm`): this host's
//! engine is the manager, and the workers are `dockerd`s in network namespaces of their
//! own that deploy/swarm.sh makes (deploy/test.sh runs it). The registry serves HTTPS on
//! the host's address on the nodes' bridge, where every node pulls from it, trusting the
//! platform's CA through `/etc/docker/certs.d` as an operator would set it up.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::harness::{Platform, Skiffd, eventually};

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

/// The directory deploy/swarm.sh made the worker nodes in (their pid files and sockets).
fn swarm_dir() -> PathBuf {
    std::env::var_os("SKIFF_TEST_SWARM_DIR").map(PathBuf::from).expect(
        "this test needs the swarm deploy/swarm.sh makes, and its directory in SKIFF_TEST_SWARM_DIR \
         (deploy/test.sh sets both up)",
    )
}

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

/// The ids of the app's web services.
fn web_services(platform: &Platform, app: &str) -> HashSet<String> {
    let out = Command::new("docker")
        .args(["service", "ls", "-q", "--filter", &format!("label=skiff.platform={}", platform.platform_id)])
        .args(["--filter", &format!("label=skiff.app={app}"), "--filter", "label=skiff.process=web"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// The nodes (by id: every node here has the same host name) that the app's running web
/// tasks are on.
fn web_task_nodes(platform: &Platform, app: &str) -> Vec<String> {
    web_services(platform, app)
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

/// Requests through the router, a few at a time, until stopped: how many got a 2xx
/// and how many did not (an error status, a refused or broken connection, a timeout).
struct Load {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: tokio_util::sync::CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(router: SocketAddr, host: &'static str) -> Self {
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stop = tokio_util::sync::CancellationToken::new();
        let client = reqwest::Client::new();
        let tasks = (0..4)
            .map(|_| {
                let (ok, failed, stop, client) = (ok.clone(), failed.clone(), stop.clone(), client.clone());
                tokio::spawn(async move {
                    while !stop.is_cancelled() {
                        let answer = client
                            .get(format!("http://{router}/who.txt"))
                            .header("Host", host)
                            .timeout(Duration::from_secs(10))
                            .send()
                            .await;
                        match answer {
                            Ok(response) if response.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        Self { ok, failed, stop, tasks }
    }

    /// (answered, failed).
    async fn stop(self) -> (u64, u64) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

/// The name of the replica of `spread` that answered `/who.txt` through the router at
/// `router`, if one did.
async fn who_answers(client: &reqwest::Client, router: SocketAddr) -> Option<String> {
    let response = client
        .get(format!("http://{router}/who.txt"))
        .header("Host", "spread.localhost")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    Some(response.text().await.ok()?.trim().to_owned())
}

/// `skiff ps` of the app: each running web container's node address.
async fn web_nodes_in_ps(platform: &Platform, repo: &Path) -> Vec<String> {
    let out = platform.cli_ok(repo, &["ps"]).await;
    out.lines()
        .filter(|line| line.starts_with("web") && line.contains("running"))
        .filter_map(|line| Some(line.rsplit_once('(')?.1.trim_end_matches(')').to_owned()))
        .collect()
}

/// A logger for the app containers of one node: `skiffd logger` following that node's
/// engine, sharing its lines with the platform's logger through Redis.
fn node_logger(platform: &Platform, redis: &str, node_socket: &Path, dir: &Path) -> Skiffd {
    let token = std::fs::read_to_string(platform.dir.path().join("data/service-token")).expect("the token is kept");
    Skiffd::start(
        "logger",
        [
            ("DOCKER_HOST", format!("unix://{}", node_socket.display())),
            ("SKIFF_DATA_DIR", dir.display().to_string()),
            ("SKIFF_PLATFORM_ID", platform.platform_id.clone()),
            ("SKIFF_SERVICE_TOKEN", token.trim().to_owned()),
            ("SKIFF_REDIS_URL", redis.to_owned()),
            ("SKIFF_CONTROLLER_URL", platform.controller_url()),
            ("SKIFF_LOGGER_LISTEN", "127.0.0.1:0".into()),
            ("SKIFF_LOGGER_SYSLOG_LISTEN", "127.0.0.1:0".into()),
            ("SKIFF_LOGGER_SYSLOG_TLS_LISTEN", "127.0.0.1:0".into()),
        ],
    )
}

/// A worker's numbered lines: `numbered <host> <n>`, n from 0 to [`NUMBERED`].
const NUMBERED: u32 = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a Docker Swarm (deploy/test.sh)"]
async fn an_app_spreads_over_the_swarm_moves_off_drained_and_lost_nodes_and_logs_from_every_node() {
    require_swarm();
    let swarm = swarm_dir();
    let redis = std::env::var("SKIFF_TEST_REDIS_URL").expect("this test needs Redis: run deploy/test.sh");
    let registry = format!("{HOST_ON_BRIDGE}:{}", free_port(HOST_ON_BRIDGE));
    let (mut platform, repo, key) = Platform::start_with_settings(|settings| {
        settings.runtime = skiffd::Runtime::Swarm;
        settings.registry_tls_listen = Some(registry.parse().unwrap());
        settings.registry_address = Some(registry.clone());
        settings.redis_url = Some(redis.clone());
        // Reached by the router of another node.
        settings.controller_listen = format!("{HOST_ON_BRIDGE}:0").parse().unwrap();
    })
    .await
    .with_app("spread")
    .await;
    let _trusted = TrustedRegistry::install(&platform, &registry);
    // Each replica names itself, so that the test can tell who answered; workers print
    // numbered lines.
    let procfile = format!(
        "web: echo \"$HOSTNAME\" > /app/public/who.txt; exec httpd -f -p \"$PORT\" -h /app/public\n\
         worker: i=0; while [ $i -lt {NUMBERED} ]; do echo \"numbered $HOSTNAME $i\"; i=$((i+1)); done; exec sleep 3600\n"
    );
    std::fs::write(repo.join("Procfile"), procfile).unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "replicas name themselves");
    assert!(pushed, "{out}");
    platform.cli_ok(&repo, &["ps:scale", "web=4", "--wait"]).await;

    // Four tasks, on three nodes, as `skiff ps` and `skiff nodes` say.
    let nodes = eventually(Duration::from_secs(60), || async {
        let nodes = web_task_nodes(&platform, "spread");
        (nodes.len() == 4).then_some(nodes)
    })
    .await
    .expect("four web tasks running");
    let distinct: HashSet<_> = nodes.iter().collect();
    assert_eq!(distinct.len(), 3, "four replicas spread over three nodes, none left out: {nodes:?}");
    let placed: HashSet<String> = web_nodes_in_ps(&platform, &repo).await.into_iter().collect();
    assert_eq!(placed.len(), 3, "skiff ps names three nodes: {placed:?}");
    let listed = platform.cli_ok(&repo, &["nodes"]).await;
    for node in ["10.250.0.1", "10.250.0.2", "10.250.0.3"] {
        let line = listed.lines().find(|l| l.contains(node)).unwrap_or_else(|| panic!("{node} listed: {listed}"));
        assert!(line.contains("ready") && line.contains("active") && line.contains("spread/web v1"), "{line}");
    }
    let join = platform.cli_ok(&repo, &["nodes:join"]).await;
    assert!(join.contains("docker swarm join --token SWMTKN-") && join.contains("10.250.0.1:2377"), "{join}");
    assert!(join.contains(&format!("/etc/docker/certs.d/{registry}/ca.crt")) && join.contains("BEGIN CERTIFICATE"));

    // Every replica answers through the router.
    let router = platform.router();
    let client = reqwest::Client::new();
    let answered = eventually(Duration::from_secs(30), || async {
        let mut seen = HashSet::new();
        for _ in 0..40 {
            seen.extend(who_answers(&client, router).await);
        }
        (seen.len() == 4).then_some(seen)
    })
    .await;
    assert!(answered.is_some(), "every one of the four replicas answers through the router");

    // The limits an app sets reach its tasks, on whichever node they run.
    platform.cli_ok(&repo, &["limits:set", "web", "memory=256m", "cpu=0.5"]).await;
    let limited = eventually(Duration::from_secs(60), || async {
        let services = web_services(&platform, "spread");
        let memory: Vec<String> = services
            .iter()
            .map(|service| {
                let format = "{{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}} {{.Spec.TaskTemplate.Resources.Limits.NanoCPUs}}";
                let out = Command::new("docker").args(["service", "inspect", "--format", format, service]).output();
                out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
            })
            .collect();
        (memory.len() == 4 && memory.iter().all(|m| m == "268435456 500000000")).then_some(())
    });
    assert!(limited.await.is_some(), "four web services limited to 256 MiB and half a core");

    // A controller started again adopts the services it finds: none doubled, none left
    // behind, and the app is served throughout.
    let before = web_services(&platform, "spread");
    let controller = SocketAddr::new(HOST_ON_BRIDGE.parse().unwrap(), free_port(HOST_ON_BRIDGE));
    platform.restart_without_controller(controller).await;
    let _controller = Skiffd::start("controller", platform.controller_env());
    let adopted = eventually(Duration::from_secs(60), || async {
        let (status, _, _) = platform.cli(&repo, &["ps"]).await;
        let served = who_answers(&client, router).await;
        (status == 0 && served.is_some()).then_some(())
    });
    assert!(adopted.await.is_some(), "the new controller answers and the router follows it");
    // A few of its reconcile passes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(web_services(&platform, "spread"), before, "the same four services, adopted");
    assert_eq!(web_nodes_in_ps(&platform, &repo).await.len(), 4, "skiff ps lists the four");

    // A second router, on another node, serves the same app.
    let token = std::fs::read_to_string(platform.dir.path().join("data/service-token")).unwrap();
    let second = tempfile::tempdir().unwrap();
    let mut second_router = Command::new("nsenter")
        .arg("--net=/var/run/netns/skn2")
        .arg(env!("CARGO_BIN_EXE_skiffd"))
        .arg("router")
        .env("SKIFF_DATA_DIR", second.path())
        .env("SKIFF_CONTROLLER_URL", platform.controller_url())
        .env("SKIFF_SERVICE_TOKEN", token.trim())
        .env("SKIFF_ROUTER_LISTEN", "10.250.0.2:18480")
        .env("SKIFF_ROUTER_TLS_LISTEN", "10.250.0.2:18443")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nsenter runs skiffd");
    let second_address: SocketAddr = "10.250.0.2:18480".parse().unwrap();
    let served = eventually(Duration::from_secs(30), || who_answers(&client, second_address));
    let served = served.await;
    let _ = second_router.kill();
    let _ = second_router.wait();
    assert!(served.is_some(), "the router on another node serves the app");

    // A one-off runs somewhere in the swarm; its output and status come back.
    let (status, out, err) = platform.cli(&repo, &["run", "-a", "spread", "echo from-the-swarm; exit 3"]).await;
    assert_eq!(status, 3, "{out}{err}");
    assert!(out.contains("from-the-swarm"), "{out}{err}");

    // A Dockerfile app is published on the port its image EXPOSEs, which its command
    // listens on whatever PORT says.
    let boxed = platform.dir.path().join("boxed");
    std::fs::create_dir_all(&boxed).unwrap();
    let dockerfile = format!(
        "FROM {registry}/stacks/busybox\nRUN mkdir /www && echo exposed > /www/index.html\nEXPOSE 8080\n\
         CMD exec httpd -f -p 8080 -h /www\n"
    );
    std::fs::write(boxed.join("Dockerfile"), dockerfile).unwrap();
    for args in [&["init", "-q", "-b", "main"][..], &["add", "-A"], &["commit", "-qm", "exposes 8080"]] {
        let (ok, out) = platform.git(&boxed, &key, args);
        assert!(ok, "{out}");
    }
    platform.cli_ok(&boxed, &["apps:create", "boxed"]).await;
    let (pushed, out) = platform.git(&boxed, &key, &["push", "skiff", "main"]);
    assert!(pushed && out.contains("Released v1"), "{out}");
    let exposed = eventually(Duration::from_secs(60), || async {
        let response = client.get(format!("http://{router}/")).header("Host", "boxed.localhost").send().await.ok()?;
        (response.status() == 200 && response.text().await.ok()?.contains("exposed")).then_some(())
    });
    assert!(exposed.await.is_some(), "the Dockerfile app answers through the router on its EXPOSEd port");
    platform.cli_ok(&boxed, &["apps:destroy", "--confirm", "boxed"]).await;

    // Lines from every node reach `skiff logs`, each worker's whole: the platform's logger
    // follows this host's engine, one more logger follows each other node's.
    let logger_dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let _loggers: Vec<Skiffd> = [2, 3]
        .iter()
        .zip(&logger_dirs)
        .map(|(n, dir)| node_logger(&platform, &redis, &swarm.join(format!("n{n}.sock")), dir.path()))
        .collect();
    platform.cli_ok(&repo, &["ps:scale", "worker=3", "--wait"]).await;
    let complete = eventually(Duration::from_secs(60), || async {
        let out = platform.cli_ok(&repo, &["logs", "-p", "worker", "--source", "app", "-n", "1000"]).await;
        let mut numbers: HashMap<String, HashSet<u32>> = HashMap::new();
        for line in out.lines() {
            let Some(rest) = line.split("numbered ").nth(1) else { continue };
            let Some((host, n)) = rest.trim().split_once(' ') else { continue };
            numbers.entry(host.to_owned()).or_default().extend(n.parse::<u32>().ok());
        }
        let whole = numbers.values().filter(|n| n.len() == NUMBERED as usize).count();
        (numbers.len() == 3 && whole == 3).then_some(numbers.len())
    })
    .await;
    assert!(complete.is_some(), "every worker's {NUMBERED} numbered lines arrive, from every node");
    platform.cli_ok(&repo, &["ps:scale", "worker=0", "--wait"]).await;

    // Draining two nodes one after the other under constant load: their containers move
    // to the third (a replacement placed on the second just before it drained moves again),
    // and no request fails.
    let load = Load::start(router, "spread.localhost");
    for address in ["10.250.0.2", "10.250.0.3"] {
        let drained = platform.cli_ok(&repo, &["nodes:drain", &nodes_id_at(&platform, &repo, address).await]).await;
        assert!(drained.contains("Draining"), "{drained}");
    }
    let moved = eventually(Duration::from_secs(90), || async {
        let listed = platform.cli_ok(&repo, &["nodes"]).await;
        let emptied = ["10.250.0.2", "10.250.0.3"]
            .iter()
            .all(|address| listed.lines().any(|l| l.contains(address) && l.contains(" drain ") && l.ends_with(" -")));
        let placed = web_nodes_in_ps(&platform, &repo).await;
        (emptied && placed.len() == 4 && placed.iter().all(|n| n == "10.250.0.1")).then_some(())
    })
    .await;
    let (answered, failed) = load.stop().await;
    assert!(moved.is_some(), "the drained nodes' containers moved");
    eprintln!("nodes:drain of two nodes under load: {failed} of {} requests failed", answered + failed);
    assert!(answered > 0 && failed == 0, "{failed} of {} requests failed while nodes drained", answered + failed);
    for address in ["10.250.0.2", "10.250.0.3"] {
        platform.cli_ok(&repo, &["nodes:activate", &nodes_id_at(&platform, &repo, address).await]).await;
    }

    // Rollouts under constant load lose no request on the cluster either, and each
    // leaves the replicas spread.
    let load = Load::start(router, "spread.localhost");
    for n in 0..20 {
        platform.cli_ok(&repo, &["config:set", &format!("ROUND={n}"), "--wait"]).await;
    }
    let (answered, failed) = load.stop().await;
    eprintln!("20 rollouts of web=4 under load: {failed} of {} requests failed", answered + failed);
    let settled = eventually(Duration::from_secs(30), || async {
        let placed = web_nodes_in_ps(&platform, &repo).await;
        (placed.len() == 4).then_some(placed)
    });
    let placed = settled.await.expect("four web containers once the older releases' have drained");
    assert_eq!(placed.iter().collect::<HashSet<_>>().len(), 3, "still spread over three nodes: {placed:?}");
    assert!(answered > 0 && failed == 0, "{failed} of {} requests failed during rollouts", answered + failed);

    // A node lost under load (its engine killed, its link cut): its containers start
    // elsewhere, and the failed requests are counted.
    let load = Load::start(router, "spread.localhost");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = std::fs::read_to_string(swarm.join("n3.pid")).expect("node 3's pid file");
    Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
    Command::new("ip").args(["link", "set", "skv3", "down"]).status().unwrap();
    let recovered = eventually(Duration::from_secs(90), || async {
        let placed = web_nodes_in_ps(&platform, &repo).await;
        (placed.len() == 4 && !placed.iter().any(|n| n == "10.250.0.3")).then_some(())
    })
    .await;
    let (answered, failed) = load.stop().await;
    eprintln!("a node lost under load: {failed} of {} requests failed", answered + failed);
    assert!(recovered.is_some(), "the lost node's containers run on the others");
    assert!(answered > 0, "requests were served while the node was lost");
    // Requests in flight to the lost node go to another backend once the kernel gives up on
    // the silent connection (a few seconds): at most a stray one fails.
    assert!(failed * 100 <= answered + failed, "{failed} of {} requests failed", answered + failed);

    // Once the app is gone, no service is left behind.
    platform.cli_ok(&repo, &["apps:destroy", "--confirm", "spread"]).await;
    let gone =
        eventually(Duration::from_secs(60), || async { web_task_nodes(&platform, "spread").is_empty().then_some(()) });
    assert!(gone.await.is_some(), "the destroyed app's services are removed");
    let network = platform.app_network("spread");
    let network_gone = eventually(Duration::from_secs(60), || async {
        let out = Command::new("docker").args(["network", "ls", "-q", "--filter", &format!("name={network}")]).output();
        out.is_ok_and(|o| o.status.success() && o.stdout.is_empty()).then_some(())
    });
    assert!(network_gone.await.is_some(), "and so is its overlay network");
}

/// The id of the node at `address`, as `skiff nodes` lists it.
async fn nodes_id_at(platform: &Platform, repo: &Path, address: &str) -> String {
    let listed = platform.cli_ok(repo, &["nodes"]).await;
    let line = listed.lines().find(|l| l.contains(address)).unwrap_or_else(|| panic!("{address} in {listed}"));
    line.split_whitespace().next().unwrap().to_owned()
}
