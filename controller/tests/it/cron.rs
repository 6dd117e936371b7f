//! Scheduled jobs in process: runs when the (test's) clock reaches a due time, once for a
//! due time missed while away, never two at once, by hand, from `app.json`, and bad
//! schedules refused.

use std::time::Duration;

use serde_json::{Value, json};
use skiff_controller::scheduler::ContainerRuntime as _;
use skiff_testing::eventually_true;

use crate::api::Shop;
use crate::test_app::{SERVICE_TOKEN, TestApp};

/// A platform with `alice`, whose `shop` runs release v1.
async fn shop() -> (TestApp, String) {
    let Shop { platform, alice, .. } = Shop::start().await;
    (platform, alice)
}

async fn jobs(platform: &TestApp, alice: &str) -> Vec<Value> {
    platform.call(Some(alice), "get", "/v2/apps/shop/cron", None).await.body.as_array().unwrap().clone()
}

async fn job(platform: &TestApp, alice: &str, id: i64) -> Value {
    jobs(platform, alice).await.into_iter().find(|j| j["id"] == id).expect("the job is listed")
}

async fn add(platform: &TestApp, alice: &str, schedule: &str, command: &str) -> i64 {
    let body = json!({"schedule": schedule, "command": command});
    let added = platform.call(Some(alice), "post", "/v2/apps/shop/cron", Some(body)).await;
    assert_eq!(added.status, 201, "{added:?}");
    added.body["id"].as_i64().unwrap()
}

/// Waits until job `id`'s last run is in `state`; that run.
async fn last_run_in(platform: &TestApp, alice: &str, id: i64, state: &str) -> Value {
    let reached = eventually_true(Duration::from_secs(10), || async {
        job(platform, alice, id).await["last_run"]["state"] == state
    })
    .await;
    let job = job(platform, alice, id).await;
    assert!(reached, "job {id}'s last run is {state}: {job}");
    job["last_run"].clone()
}

#[tokio::test]
async fn a_job_runs_when_its_time_comes_once_per_due_time() {
    let (platform, alice) = shop().await;
    // Hourly, so that the machine's own clock brings no run while the test runs.
    let hourly = add(&platform, &alice, "@hourly", "echo tick").await;
    let listed = job(&platform, &alice, hourly).await;
    assert_eq!((listed["timezone"].as_str(), listed["source"].as_str()), (Some("UTC"), Some("cli")));
    assert!(listed.get("last_run").is_none(), "{listed}");
    let due = listed["next_run_at"].as_str().unwrap().to_owned();
    assert!(due.ends_with(":00Z"), "on a minute: {due}");

    platform.clock.advance(Duration::from_secs(3601));
    let run = last_run_in(&platform, &alice, hourly, "succeeded").await;
    assert_eq!((run["exit_status"].as_i64(), run["release"].as_u64()), (Some(0), Some(1)), "{run}");
    assert_eq!(run["due_at"].as_str(), Some(due.as_str()), "{run}");

    // Away for ten hours: it runs once for the times it missed, then follows its schedule.
    let before = job(&platform, &alice, hourly).await["last_run"]["id"].as_i64().unwrap();
    platform.clock.advance(Duration::from_secs(36_000));
    let caught_up = eventually_true(Duration::from_secs(10), || async {
        job(&platform, &alice, hourly).await["last_run"]["id"].as_i64() > Some(before)
    })
    .await;
    assert!(caught_up);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = job(&platform, &alice, hourly).await;
    assert_eq!(after["last_run"]["id"].as_i64(), Some(before + 1), "one run, not ten: {after}");
    let next: jiff::Timestamp = after["next_run_at"].as_str().unwrap().parse().unwrap();
    assert!(next > platform.clock.now(), "the next run is to come: {after}");
}

#[tokio::test]
async fn a_failing_job_is_an_event_and_a_run_still_going_is_not_doubled() {
    let (platform, alice) = shop().await;
    let failing = add(&platform, &alice, "*/1 * * * *", "exit 3").await;
    let hanging = add(&platform, &alice, "@hourly", "hang").await;
    platform.clock.advance(Duration::from_secs(61));
    let run = last_run_in(&platform, &alice, failing, "failed").await;
    assert_eq!((run["exit_status"].as_i64(), run["reason"].as_str()), (Some(3), Some("exited with status 3")));
    let failed = eventually_true(Duration::from_secs(5), || async {
        let events = platform.call(Some(&alice), "get", "/v2/apps/shop/events", None).await.body;
        events.as_array().unwrap().iter().any(|e| {
            e["kind"] == "cron"
                && e["message"] == format!("Scheduled job {failing} (`exit 3`) failed: exited with status 3")
        })
    });
    assert!(failed.await, "a `cron` event says it failed");

    platform.clock.advance(Duration::from_secs(3600));
    last_run_in(&platform, &alice, hanging, "running").await;
    platform.clock.advance(Duration::from_secs(3600));
    let skipped = last_run_in(&platform, &alice, hanging, "skipped").await;
    assert!(skipped["reason"].as_str().unwrap().contains("is still going"), "{skipped}");
    let by_hand = platform.call(Some(&alice), "post", &format!("/v2/apps/shop/cron/{hanging}/runs"), None).await;
    assert_eq!((by_hand.status, &by_hand.body["state"]), (202, &json!("skipped")), "{by_hand:?}");

    // The run's container goes, as when the controller running it stops: the next due
    // time is not held up by it.
    let containers = platform.runtime.list().await.unwrap();
    let cron = containers.iter().find(|c| c.one_off && c.process == "cron").expect("the hanging run's container");
    platform.runtime.crash(&cron.id, 137);
    platform.clock.advance(Duration::from_secs(3600));
    let next = last_run_in(&platform, &alice, hanging, "running").await;
    assert_ne!(next["id"], skipped["id"], "a new run: {next}");

    let by_hand = platform.call(Some(&alice), "post", &format!("/v2/apps/shop/cron/{failing}/runs"), None).await;
    assert_eq!((by_hand.status, &by_hand.body["state"]), (202, &json!("running")), "{by_hand:?}");
    assert_eq!(platform.call(Some(&alice), "delete", &format!("/v2/apps/shop/cron/{failing}"), None).await.status, 204);
    assert_eq!(platform.call(Some(&alice), "delete", &format!("/v2/apps/shop/cron/{failing}"), None).await.status, 404);
}

#[tokio::test]
async fn app_json_jobs_follow_each_deploy_and_bad_schedules_are_refused() {
    let (platform, alice) = shop().await;
    add(&platform, &alice, "@daily", "echo mine").await;
    let build = |cron: Value| {
        json!({
            "app": "shop", "username": "alice", "kind": "procfile", "status": "succeeded",
            "image": format!("shop@sha256:{}", "cd".repeat(32)), "git_sha": "0123456789abcdef",
            "procfile": {"web": "serve"}, "duration_ms": 5, "log": "",
            "app_json": {"cron": cron},
        })
    };
    let cron =
        json!([{"command": "echo nightly", "schedule": "0 3 * * *"}, {"command": "echo often", "schedule": "@hourly"}]);
    let built = platform.call(Some(SERVICE_TOKEN), "post", "/v2/hooks/builds", Some(build(cron))).await;
    assert_eq!(built.status, 201, "{built:?}");
    let listed: Vec<(String, String)> = jobs(&platform, &alice)
        .await
        .iter()
        .map(|j| (j["command"].as_str().unwrap().to_owned(), j["source"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        listed,
        [("echo mine", "cli"), ("echo nightly", "app_json"), ("echo often", "app_json")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );

    let bad = json!([{"command": "echo", "schedule": "61 * * * *"}]);
    let refused = platform.call(Some(SERVICE_TOKEN), "post", "/v2/hooks/builds", Some(build(bad))).await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused.message().contains("app.json `cron`") && refused.message().contains("minute"),
        "{}",
        refused.message()
    );
    let built = platform.call(Some(SERVICE_TOKEN), "post", "/v2/hooks/builds", Some(build(json!([])))).await;
    assert_eq!(built.status, 201, "{built:?}");
    assert_eq!(jobs(&platform, &alice).await.len(), 1, "the app.json jobs went with them from app.json");

    for (body, why) in [
        (json!({"schedule": "* * *", "command": "true"}), "five fields"),
        (json!({"schedule": "0 0 30 2 *", "command": "true"}), "no time"),
        (json!({"schedule": "@daily", "command": " "}), "command"),
        (json!({"schedule": "@daily", "command": "true", "timezone": "Nowhere/Town"}), "time zone"),
    ] {
        let refused = platform.call(Some(&alice), "post", "/v2/apps/shop/cron", Some(body.clone())).await;
        assert_eq!(refused.status, 400, "{body}: {refused:?}");
        assert!(refused.message().contains(why), "{body}: {}", refused.message());
    }
    let paris = json!({"schedule": "0 9 * * *", "command": "true", "timezone": "Europe/Paris"});
    let added = platform.call(Some(&alice), "post", "/v2/apps/shop/cron", Some(paris)).await;
    assert_eq!(added.status, 201, "{added:?}");
    let at: jiff::Timestamp = added.body["next_run_at"].as_str().unwrap().parse().unwrap();
    let local = at.to_zoned(jiff::tz::TimeZone::get("Europe/Paris").unwrap());
    assert_eq!((local.hour(), local.minute()), (9, 0), "09:00 in Paris: {at}");
}
