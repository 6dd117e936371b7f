//! `/readyz` names a dependency that stops answering: the logger's Redis, on a private
//! `redis-server` that the test stops.

use std::time::Duration;

use clap::Parser as _;

use crate::harness::eventually;

/// A `redis-server` on a free loopback port, stopped when dropped.
struct PrivateRedis {
    port: u16,
    process: std::process::Child,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (deploy/test.sh installs it)");
        let up = eventually(Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
        });
        assert!(up.await.is_some(), "redis-server listens");
        Self { port, process }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[tokio::test]
#[ignore = "needs Docker and redis-server (deploy/test.sh)"]
async fn the_loggers_readiness_names_redis_once_it_stops_answering() {
    let redis = PrivateRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let mut args = vec!["skiffd", "logger", "--data-dir", data, "--redis-url", &url];
    for listen in ["--logger-listen", "--syslog-listen", "--syslog-tls-listen"] {
        args.extend([listen, "127.0.0.1:0"]);
    }
    let skiffd::Command::Logger(settings) = skiffd::Cli::try_parse_from(args).unwrap().command else { unreachable!() };
    let platform = skiffd::start(&settings, &[skiffd::Component::Logger]).await.expect("the logger starts");
    let readyz = format!("http://{}/readyz", platform.addresses.logger.unwrap());
    let answer = |url: String| async move {
        let response = reqwest::get(url).await.ok()?;
        Some((response.status().as_u16(), response.text().await.ok()?))
    };
    let ready = eventually(Duration::from_secs(30), || answer(readyz.clone())).await.expect("the logger answers");
    assert_eq!(ready, (200, "redis ok\nengine ok\n".to_owned()));

    drop(redis);
    let refused = eventually(Duration::from_secs(30), || async {
        answer(readyz.clone()).await.filter(|(status, _)| *status == 503)
    })
    .await
    .expect("the logger stops being ready");
    assert!(refused.1.starts_with("redis: "), "{}", refused.1);
    assert!(refused.1.ends_with("engine ok\n"), "{}", refused.1);
    platform.stop().await;
}
