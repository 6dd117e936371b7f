//! Log buffers shared by logger replicas through Redis (`SKIFF_REDIS_URL`): every line a
//! replica takes in is appended to the app's list `skiff:logs:<app>` (trimmed to the
//! buffer capacity) and published on `skiff:logs`; every replica keeps the lines the
//! others publish, so `logs` and `logs -f` on any replica show every replica's lines, and
//! a replica that starts loads the lists first. A line is drained once, by the replica
//! that took it in. When Redis is slow or away, ingestion goes on and the lines not shared
//! are counted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use skiff_api::LogLine;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::buffer::Buffers;

/// The channel lines are published on.
pub const CHANNEL: &str = "skiff:logs";
/// Lines waiting to be shared at most; more are counted as unshared.
pub const QUEUE: usize = 65_536;
/// Lines sent to Redis in one round trip at most.
const BATCH: usize = 1000;

/// A batch of lines as published.
#[derive(Serialize, Deserialize)]
struct Published {
    replica: String,
    lines: Vec<LogLine>,
}

fn key(line: &LogLine) -> String {
    format!("skiff:logs:{}", line.app)
}

/// A replica's link to the others.
pub struct Sharing {
    client: redis::Client,
    connection: redis::aio::ConnectionManager,
    /// Subscribed at connect, before [`Sharing::load`], so that no line published
    /// meanwhile is missed (one may arrive twice instead).
    subscribed: redis::aio::PubSub,
    replica: String,
}

impl Sharing {
    /// Connects to Redis at `url` and subscribes to the other replicas' lines.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let connection = client.get_connection_manager().await?;
        let subscribed = skiff_service::pubsub::subscribe(&client, CHANNEL).await?;
        Ok(Self { client, connection, subscribed, replica: format!("{:016x}", rand::random::<u64>()) })
    }

    /// A connection for other uses (readiness checks).
    pub fn connection(&self) -> redis::aio::ConnectionManager {
        self.connection.clone()
    }

    /// Loads every app's shared lines into `buffers` (before this replica takes lines in).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn load(&self, buffers: &Buffers) -> Result<usize, redis::RedisError> {
        let mut connection = self.connection.clone();
        let keys: Vec<String> = {
            use redis::AsyncCommands as _;
            let mut scan: redis::AsyncIter<'_, String> = connection.scan_match("skiff:logs:*").await?;
            let mut keys = Vec::new();
            while let Some(key) = scan.next_item().await {
                keys.push(key?);
            }
            keys
        };
        let mut loaded = 0;
        for key in keys {
            let lines: Vec<String> = redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query_async(&mut connection).await?;
            for line in lines.iter().filter_map(|l| serde_json::from_str::<LogLine>(l).ok()) {
                buffers.push_shared(line);
                loaded += 1;
            }
        }
        Ok(loaded)
    }

    /// Runs until `shutdown`: sends the lines taken in here (from `taken`) to Redis, and
    /// keeps the lines other replicas publish.
    pub async fn run(self, buffers: Arc<Buffers>, taken: mpsc::Receiver<LogLine>, shutdown: CancellationToken) {
        let Self { client, connection, subscribed, replica } = self;
        let publishing = publish(connection, replica.clone(), buffers.clone(), taken, shutdown.clone());
        let following = follow(client, subscribed, replica, buffers, shutdown);
        tokio::join!(publishing, following);
    }
}

/// Appends batches of local lines to their apps' lists and publishes them.
async fn publish(
    mut connection: redis::aio::ConnectionManager,
    replica: String,
    buffers: Arc<Buffers>,
    mut taken: mpsc::Receiver<LogLine>,
    shutdown: CancellationToken,
) {
    let capacity = buffers.capacity() as isize;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = tokio::select! {
            received = taken.recv_many(&mut batch, BATCH) => received,
            () = shutdown.cancelled() => return,
        };
        if received == 0 {
            return;
        }
        let mut pipe = redis::pipe();
        let mut keys = BTreeSet::new();
        for line in &batch {
            let key = key(line);
            pipe.cmd("RPUSH").arg(&key).arg(serde_json::to_string(line).unwrap_or_default()).ignore();
            keys.insert(key);
        }
        for key in &keys {
            pipe.cmd("LTRIM").arg(key).arg(-capacity).arg(-1).ignore();
        }
        let message = serde_json::to_string(&Published { replica: replica.clone(), lines: std::mem::take(&mut batch) })
            .unwrap_or_default();
        pipe.cmd("PUBLISH").arg(CHANNEL).arg(message).ignore();
        if let Err(error) = pipe.query_async::<()>(&mut connection).await {
            buffers.stats.unshared.fetch_add(received as u64, Ordering::Relaxed);
            tracing::warn!(%error, lines = received, "logger.shared: lines not shared");
        }
    }
}

/// Keeps the lines other replicas publish.
async fn follow(
    client: redis::Client,
    subscribed: redis::aio::PubSub,
    replica: String,
    buffers: Arc<Buffers>,
    shutdown: CancellationToken,
) {
    let on_message = |message: redis::Msg| {
        let Ok(payload) = message.get_payload::<String>() else { return };
        match serde_json::from_str::<Published>(&payload) {
            Ok(published) if published.replica != replica => {
                published.lines.into_iter().for_each(|line| buffers.push_shared(line));
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "logger.shared: not a batch of lines"),
        }
    };
    skiff_service::pubsub::follow(client, CHANNEL, Some(subscribed), || {}, on_message, shutdown, "logger.shared")
        .await;
}
