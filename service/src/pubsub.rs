//! Following a Redis channel for as long as a component runs (the `redis` feature): the
//! subscription is made again, with backoff, whenever the connection drops.

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;

/// Subscribes to `channel`.
///
/// # Errors
/// When Redis cannot be reached.
pub async fn subscribe(client: &redis::Client, channel: &str) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// Hands every message published on `channel` to `on_message` until `shutdown`, and calls
/// `on_subscribed` whenever a subscription starts (messages published while there was
/// none are lost, so that is the moment to catch up). `subscribed`, when given, is a
/// subscription already made, used first. `what` names the follower in warnings.
pub async fn follow(
    client: redis::Client,
    channel: &str,
    subscribed: Option<redis::aio::PubSub>,
    mut on_subscribed: impl FnMut(),
    mut on_message: impl FnMut(redis::Msg),
    shutdown: CancellationToken,
    what: &str,
) {
    let mut backoff = Duration::from_millis(200);
    let mut subscribed = subscribed;
    loop {
        let pubsub = match subscribed.take() {
            Some(pubsub) => Ok(pubsub),
            None => subscribe(&client, channel).await,
        };
        match pubsub {
            Ok(pubsub) => {
                backoff = Duration::from_millis(200);
                on_subscribed();
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        () = shutdown.cancelled() => return,
                    };
                    let Some(message) = message else { break };
                    on_message(message);
                }
                tracing::warn!(what, channel, "lost the subscription; subscribing again");
            }
            Err(error) => tracing::warn!(what, channel, %error, "cannot subscribe; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
