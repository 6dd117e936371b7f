//! Logger replicas sharing their buffers through a real Redis (started by deploy/test.sh;
//! its URL comes in `SKIFF_TEST_REDIS_URL`).

use std::sync::Arc;
use std::time::Duration;

use skiff_api::Drain;
use skiff_logger::Buffers;
use skiff_logger::drain::{Drains, tls_config};
use skiff_logger::shared::{QUEUE, Sharing};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::drains::{line, loopback_drains};

fn redis_url() -> String {
    std::env::var("SKIFF_TEST_REDIS_URL").expect(
        "these tests need Redis: run deploy/test.sh, which installs and starts one, \
         or set SKIFF_TEST_REDIS_URL=redis://127.0.0.1:PORT/",
    )
}

/// A replica: buffers of `capacity` lines sharing through Redis, after loading what is there.
async fn replica(capacity: usize, drains: Option<Arc<Drains>>, shutdown: &CancellationToken) -> Arc<Buffers> {
    let sharing = Sharing::connect(&redis_url()).await.expect("Redis answers");
    let (share, taken) = tokio::sync::mpsc::channel(QUEUE);
    let buffers = Arc::new(Buffers::with_drains(capacity, drains).sharing(share));
    sharing.load(&buffers).await.unwrap();
    tokio::spawn(sharing.run(buffers.clone(), taken, shutdown.clone()));
    buffers
}

fn messages(buffers: &Buffers, app: &str) -> Vec<String> {
    buffers.tail_and_follow(&app.parse().unwrap(), 1000).0.into_iter().map(|l| l.message).collect()
}

/// The app's messages once `done` holds of them (or after 5 s).
async fn wait_until(buffers: &Buffers, app: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    skiff_testing::eventually_true(Duration::from_secs(5), || async { done(&messages(buffers, app)) }).await;
    messages(buffers, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis (deploy/test.sh starts one)"]
async fn replicas_see_each_others_lines_and_a_new_replica_loads_them() {
    let shutdown = CancellationToken::new();
    let app = format!("shared-{:08x}", rand::random::<u32>());
    // B drains every app's lines to a receiver; lines A took in must not reach it.
    let receiver = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let drains = loopback_drains(tls_config(None).unwrap(), 100, &shutdown);
    let url = format!("syslog://{}", receiver.local_addr().unwrap());
    drains.set(vec![Drain { id: 1, url, app: None, created_at: String::new(), status: None }]);
    let a = replica(5, None, &shutdown).await;
    let b = replica(5, Some(drains.clone()), &shutdown).await;

    for n in 0..8 {
        a.push(line(&app, &format!("line {n}")));
    }
    // Five lines may be there before the last three: wait for the newest.
    let seen = wait_until(&b, &app, |m| m.last().is_some_and(|l| l == "line 7")).await;
    assert_eq!(seen, ["line 3", "line 4", "line 5", "line 6", "line 7"], "B keeps A's newest lines");
    b.push(line(&app, "from b"));
    let seen = wait_until(&a, &app, |m| m.last().is_some_and(|l| l == "from b")).await;
    assert_eq!(seen.last().map(String::as_str), Some("from b"), "and A keeps B's");

    // A replica started now loads the shared buffer, trimmed to the capacity.
    let c = replica(5, None, &shutdown).await;
    assert_eq!(messages(&c, &app), ["line 4", "line 5", "line 6", "line 7", "from b"]);

    // A line is drained once, by the replica that took it in.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = &drains.status()[0];
    assert_eq!(status.delivered + status.queued, 1, "only B's own line: {status:?}");
    shutdown.cancel();
}
