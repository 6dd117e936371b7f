//! Two controller replicas on one database, one engine and one Redis: a change made through
//! either is carried out once, never by both.

use std::time::{Duration, Instant};

use crate::harness::{Platform, eventually, get_via_router};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn two_controller_replicas_never_double_an_apps_containers() {
    let (mut platform, repo, key) = Platform::start_on_redis().await.with_app("twice").await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    let replica = platform.controller_replica().await;
    let replica_url = format!("http://{}", replica.addresses.controller.unwrap());

    // Scaled through the replica; both replicas reconcile every second.
    let mut context = platform.cli_context(&repo);
    context.url = Some(replica_url);
    let mut out = Vec::new();
    let status = skiff_cli::run(["skiff", "ps:scale", "web=3"], &context, &mut out, &mut std::io::sink()).await;
    assert_eq!(status, 0, "{}", String::from_utf8_lossy(&out));
    // The example app runs only `web`.
    let web = || platform.containers().iter().filter(|(_, _, running)| *running).count();
    let started = Instant::now();
    let mut most = 0;
    let mut reached = None;
    while started.elapsed() < Duration::from_secs(45) {
        let now = web();
        most = most.max(now);
        if now == 3 && reached.is_none() {
            reached = Some(Instant::now());
        }
        // Watch a few more passes of both replicas after reaching the scale.
        if reached.is_some_and(|at| at.elapsed() > Duration::from_secs(4)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reached.is_some(), "three web containers run: {:?}", platform.containers());
    assert_eq!(most, 3, "never more than asked for: {:?}", platform.containers());
    let serving = eventually(Duration::from_secs(30), || async {
        matches!(get_via_router(platform.router(), "twice.localhost").await, Some((200, _))).then_some(())
    });
    assert!(serving.await.is_some());
    replica.stop().await;
    platform.stop().await;
}
