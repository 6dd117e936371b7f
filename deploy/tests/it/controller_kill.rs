//! The controller killed with SIGKILL in the middle of a rollout, then started again: the
//! rollout completes, no container is left behind or started twice, and the router serves
//! the app throughout (it keeps its last route table while the controller is gone).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use crate::harness::{Platform, Skiffd, eventually, get_via_router};

/// `skiffd controller` in this platform's controller's place, draining containers for
/// `drain_seconds`.
fn start_controller(platform: &Platform, drain_seconds: u64) -> Skiffd {
    let mut env = platform.controller_env();
    env.push(("SKIFF_DRAIN_SECONDS", drain_seconds.to_string()));
    Skiffd::start("controller", env)
}

/// (release, running) of every container of the platform, sorted.
fn releases(platform: &Platform) -> Vec<(String, bool)> {
    let mut found: Vec<(String, bool)> =
        platform.containers().into_iter().map(|(_, r, running)| (r, running)).collect();
    found.sort();
    found
}

async fn serves(platform: &Platform) -> bool {
    matches!(get_via_router(platform.router(), "survivor.localhost").await, Some((200, _)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_rollout_cut_off_by_sigkill_completes_after_a_restart() {
    let (mut platform, repo, key) = Platform::with_example("survivor").await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    platform.cli_ok(&repo, &["ps:scale", "web=3", "--wait"]).await;
    assert_eq!(releases(&platform), vec![("1".to_owned(), true); 3], "--wait returns once the three run");

    // The controller moves out of process.
    let controller: SocketAddr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    platform.restart_without_controller(controller).await;
    let mut first = start_controller(&platform, 5);
    let served = eventually(Duration::from_secs(30), || async { serves(&platform).await.then_some(()) });
    assert!(served.await.is_some(), "the router follows the controller process");

    // A config change rolls out v2; the controller dies as its first containers appear.
    let out = platform.cli_ok(&repo, &["config:set", "ROUND=2"]).await;
    assert!(out.contains("released v2"), "{out}");
    let midway = eventually(Duration::from_secs(60), || async {
        releases(&platform).iter().any(|(release, _)| release == "2").then_some(())
    });
    assert!(midway.await.is_some(), "v2 starts");
    first.kill();
    let at_kill = releases(&platform);
    assert_eq!(
        at_kill.iter().filter(|(release, running)| release == "1" && *running).count(),
        3,
        "the kill came before any v1 container was stopped: {at_kill:?}"
    );
    assert!(serves(&platform).await, "v1 serves while no controller runs");

    // Started again, the controller finishes the rollout from what it finds.
    let second = start_controller(&platform, 1);
    let finished = eventually(Duration::from_secs(90), || async {
        let (status, out, _) = platform.cli(&repo, &["releases", "--json"]).await;
        let releases_listed: Vec<serde_json::Value> = serde_json::from_str(&out).ok()?;
        let deployed = status == 0 && releases_listed.iter().any(|r| r["version"] == 2 && r["state"] == "deployed");
        (deployed && releases(&platform) == vec![("2".to_owned(), true); 3]).then_some(())
    });
    assert!(
        finished.await.is_some(),
        "v2 runs 3 containers and nothing else: {:?}\nthe controller said:\n{}",
        releases(&platform),
        second.log_tail(60)
    );
    assert!(serves(&platform).await);
    let (_, out, _) = platform.cli(&repo, &["run", "--", "echo round=$ROUND"]).await;
    assert!(out.contains("round=2"), "{out}");
}
