//! How controller replicas work together. On its own (the embedded default) a controller
//! pokes its own reconcile loop when something changes and acts on every app. With Redis
//! (`SKIFF_REDIS_URL`) several replicas share the work:
//!
//! - a change made through any replica's API, and a change of any replica's route table,
//!   is published on `skiff:changes`, and every replica's reconcile loop runs at once;
//! - platform events (releases created, up or failed, scaling, …) are published as JSON on
//!   `skiff:events` for whoever listens;
//! - a replica starts and stops an app's containers only while it holds that app's lock
//!   (`skiff:reconcile:<app>`, taken or renewed on every pass, expiring after
//!   [`LOCK_TTL`] when its holder goes away). While Redis is unreachable no replica starts
//!   or stops anything; running containers keep running.

use std::sync::Arc;
use std::time::Duration;

use skiff_api::AppName;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long an app's lock outlives its last renewal.
pub const LOCK_TTL: Duration = Duration::from_secs(30);
/// The channel that wakes every replica's reconcile loop.
pub const CHANGES: &str = "skiff:changes";
/// The channel platform events are published on.
pub const EVENTS: &str = "skiff:events";

/// Takes the lock when it is free or already ours, and renews it.
const TAKE_OR_RENEW: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0";

struct Shared {
    connection: redis::aio::ConnectionManager,
    take_or_renew: redis::Script,
}

/// This replica's view of the others.
pub struct Coordination {
    /// Wakes this replica's reconcile loop.
    poke: Notify,
    /// Names this replica in locks and messages.
    replica: String,
    shared: Option<Shared>,
}

impl std::fmt::Debug for Coordination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordination").field("replica", &self.replica).field("redis", &self.shared.is_some()).finish()
    }
}

impl Coordination {
    /// A controller on its own.
    pub fn local() -> Arc<Self> {
        Arc::new(Self { poke: Notify::new(), replica: Self::new_replica_name(), shared: None })
    }

    fn new_replica_name() -> String {
        format!("{:016x}", rand::random::<u64>())
    }

    /// A replica among others that meet in Redis at `url`; follows `skiff:changes` until
    /// `shutdown`, reconnecting when the connection drops.
    ///
    /// # Errors
    /// When Redis cannot be reached at start.
    pub async fn redis(url: &str, shutdown: CancellationToken) -> Result<Arc<Self>, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let connection = client.get_connection_manager().await?;
        let shared = Shared { connection, take_or_renew: redis::Script::new(TAKE_OR_RENEW) };
        let coordination =
            Arc::new(Self { poke: Notify::new(), replica: Self::new_replica_name(), shared: Some(shared) });
        tokio::spawn(follow_changes(client, coordination.clone(), shutdown));
        Ok(coordination)
    }

    /// Whether replicas share work through Redis.
    pub fn shares(&self) -> bool {
        self.shared.is_some()
    }

    /// Whether Redis answers (always, for a replica on its own).
    ///
    /// # Errors
    /// Redis' error.
    pub async fn ping(&self) -> Result<(), redis::RedisError> {
        match &self.shared {
            Some(shared) => redis::cmd("PING").query_async(&mut shared.connection.clone()).await,
            None => Ok(()),
        }
    }

    /// Something changed: this replica's reconcile loop runs soon, and every other's.
    pub async fn changed(&self) {
        self.poke.notify_one();
        self.announce().await;
    }

    /// Tells the other replicas (with Redis) that something changed here, without running
    /// this replica's loop again.
    pub async fn announce(&self) {
        let Some(shared) = &self.shared else { return };
        let mut connection = shared.connection.clone();
        let sent: Result<i64, _> =
            redis::cmd("PUBLISH").arg(CHANGES).arg(&self.replica).query_async(&mut connection).await;
        if let Err(error) = sent {
            tracing::warn!(%error, "controller.coordination: the other replicas were not told of a change");
        }
    }

    /// Runs this replica's reconcile loop soon.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Waits until something changed (here or, with Redis, on another replica).
    pub async fn poked(&self) {
        self.poke.notified().await;
    }

    /// Whether this replica may start and stop `app`'s containers now: always on its own;
    /// with Redis, while it holds the app's lock (taken or renewed here).
    pub async fn may_act(&self, app: &AppName) -> bool {
        let Some(shared) = &self.shared else { return true };
        let mut connection = shared.connection.clone();
        let taken: Result<i64, _> = shared
            .take_or_renew
            .key(format!("skiff:reconcile:{app}"))
            .arg(&self.replica)
            .arg(LOCK_TTL.as_millis() as u64)
            .invoke_async(&mut connection)
            .await;
        match taken {
            Ok(taken) => taken == 1,
            Err(error) => {
                tracing::warn!(%error, %app, "controller.coordination: no lock, so no action");
                false
            }
        }
    }

    /// Publishes an event for other listeners (with Redis; nothing without).
    pub async fn publish_event(&self, app: Option<&AppName>, message: &str) {
        let Some(shared) = &self.shared else { return };
        let event = serde_json::json!({ "app": app, "message": message, "replica": self.replica });
        let mut connection = shared.connection.clone();
        let sent: Result<i64, _> =
            redis::cmd("PUBLISH").arg(EVENTS).arg(event.to_string()).query_async(&mut connection).await;
        if let Err(error) = sent {
            tracing::warn!(%error, "controller.coordination: an event was not published");
        }
    }
}

/// Pokes the reconcile loop for every change another replica announces, and whenever the
/// feed is (re)joined: changes missed while away are caught by a pass then.
async fn follow_changes(client: redis::Client, coordination: Arc<Coordination>, shutdown: CancellationToken) {
    let on_message = |message: redis::Msg| {
        let from: String = message.get_payload().unwrap_or_default();
        if from != coordination.replica {
            coordination.poke.notify_one();
        }
    };
    let on_subscribed = || coordination.poke.notify_one();
    skiff_service::pubsub::follow(
        client,
        CHANGES,
        None,
        on_subscribed,
        on_message,
        shutdown,
        "controller.coordination",
    )
    .await;
}
