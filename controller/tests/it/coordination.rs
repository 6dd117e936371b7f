//! Controller replicas meeting in a real Redis (started by deploy/test.sh; its URL comes in
//! `SKIFF_TEST_REDIS_URL`): app locks, change announcements, published events.

use std::time::Duration;

use futures_util::StreamExt as _;
use skiff_controller::coordination::{Coordination, EVENTS};
use tokio_util::sync::CancellationToken;

fn redis_url() -> String {
    std::env::var("SKIFF_TEST_REDIS_URL").expect(
        "these tests need Redis: run deploy/test.sh, which installs and starts one, \
         or set SKIFF_TEST_REDIS_URL=redis://127.0.0.1:PORT/",
    )
}

/// Held by the tests whose replicas announce changes on `skiff:changes` or count who hears
/// them: every replica on this Redis hears every announcement.
static CHANGES_CHANNEL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An app name no other test uses.
fn fresh_app() -> skiff_api::AppName {
    format!("lock-{:08x}", rand::random::<u32>()).parse().unwrap()
}

#[tokio::test]
#[ignore = "needs Redis (deploy/test.sh starts one)"]
async fn one_replica_at_a_time_acts_on_an_app() {
    let shutdown = CancellationToken::new();
    let (a, b) = (
        Coordination::redis(&redis_url(), shutdown.clone()).await.unwrap(),
        Coordination::redis(&redis_url(), shutdown.clone()).await.unwrap(),
    );
    let (app, other) = (fresh_app(), fresh_app());
    assert!(a.may_act(&app).await, "a free lock is taken");
    assert!(!b.may_act(&app).await, "and then held");
    assert!(a.may_act(&app).await, "its holder renews it");
    assert!(b.may_act(&other).await, "locks are per app");

    // The holder goes away: its lock expires and another replica takes over.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 =
        redis::cmd("PEXPIRE").arg(format!("skiff:reconcile:{app}")).arg(50).query_async(&mut connection).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(b.may_act(&app).await, "an expired lock is free");
    assert!(!a.may_act(&app).await);
    shutdown.cancel();
}

#[tokio::test]
#[ignore = "needs Redis (deploy/test.sh starts one)"]
async fn a_change_on_one_replica_wakes_the_others_and_events_are_published() {
    let _alone = CHANGES_CHANNEL.lock().await;
    let shutdown = CancellationToken::new();
    let (a, b) = (
        Coordination::redis(&redis_url(), shutdown.clone()).await.unwrap(),
        Coordination::redis(&redis_url(), shutdown.clone()).await.unwrap(),
    );
    // Each replica pokes itself once it follows the feed; let that pass.
    for replica in [&a, &b] {
        tokio::time::timeout(Duration::from_secs(5), replica.poked()).await.expect("following the feed");
    }
    a.changed().await;
    tokio::time::timeout(Duration::from_secs(5), b.poked()).await.expect("b hears of a's change");
    tokio::time::timeout(Duration::from_secs(5), a.poked()).await.expect("and a's own loop runs");
    b.announce().await;
    tokio::time::timeout(Duration::from_secs(5), a.poked()).await.expect("a hears of b's announcement");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), b.poked()).await.is_err(),
        "an announcement wakes only the others"
    );

    let client = redis::Client::open(redis_url()).unwrap();
    let mut events = client.get_async_pubsub().await.unwrap();
    events.subscribe(EVENTS).await.unwrap();
    let app = fresh_app();
    a.publish_event(Some(&app), "Release v3 is up").await;
    let mut messages = events.on_message();
    let message = tokio::time::timeout(Duration::from_secs(5), messages.next()).await.unwrap().unwrap();
    let event: serde_json::Value = serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
    assert_eq!((event["app"].as_str(), event["message"].as_str()), (Some(app.as_str()), Some("Release v3 is up")));
    shutdown.cancel();
}

#[tokio::test]
async fn a_replica_on_its_own_acts_on_everything() {
    let alone = Coordination::local();
    assert!(alone.may_act(&fresh_app()).await);
    alone.changed().await;
    tokio::time::timeout(Duration::from_secs(1), alone.poked()).await.expect("its own loop runs");
}

#[tokio::test]
#[ignore = "needs Redis (deploy/test.sh starts one)"]
async fn two_replicas_roll_out_an_app_beside_apps_in_trouble() {
    let _alone = CHANGES_CHANNEL.lock().await;
    let shutdown = CancellationToken::new();
    let fixture = crate::scheduler::Fixture::with_app(fresh_app().as_str()).await;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let coordination = Coordination::redis(&redis_url(), shutdown.clone()).await.unwrap();
        replicas.push(fixture.scheduler_with(coordination, Duration::ZERO).await);
    }
    crate::scheduler::rollouts_beside_apps_in_trouble(&fixture, replicas).await;
    shutdown.cancel();
}
