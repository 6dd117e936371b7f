//! The logger killed with SIGKILL while a container writes a numbered stream: after it
//! starts again, every number is in the app's log.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Skiffd, eventually, require_tools};

/// Lines the container writes.
const NUMBERS: u32 = 400;
/// The service token the logger's API requires.
const SERVICE_TOKEN: &str = "logger-restart-test-token";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `skiffd logger` on its own, with its data in `data`, its API on `api`.
fn start_logger(data: &Path, platform: &str, api: u16) -> Skiffd {
    let data = data.display().to_string();
    Skiffd::start(
        "logger",
        [
            ("SKIFF_DATA_DIR", data),
            ("SKIFF_PLATFORM_ID", platform.to_owned()),
            ("SKIFF_LOGGER_LISTEN", format!("127.0.0.1:{api}")),
            ("SKIFF_LOGGER_SYSLOG_LISTEN", format!("127.0.0.1:{}", free_port())),
            ("SKIFF_LOGGER_SYSLOG_TLS_LISTEN", format!("127.0.0.1:{}", free_port())),
            ("SKIFF_CONTROLLER_URL", "http://127.0.0.1:9".to_owned()),
            ("SKIFF_SERVICE_TOKEN", SERVICE_TOKEN.to_owned()),
        ],
    )
}

/// The numbers the logger holds for the app.
async fn numbers(api: u16) -> BTreeSet<u32> {
    let url = format!("http://127.0.0.1:{api}/v2/apps/numbers/logs?n=10000");
    let Ok(response) = reqwest::Client::new().get(url).bearer_auth(SERVICE_TOKEN).send().await else {
        return BTreeSet::new();
    };
    let lines: Vec<skiff_api::LogLine> = response.json().await.unwrap_or_default();
    lines.iter().filter_map(|l| l.message.strip_prefix("n=")?.parse().ok()).collect()
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("docker runs");
    assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_logger_killed_mid_stream_loses_no_number() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let platform = format!("kill{:08x}", rand::random::<u32>());
    let image = format!("skiff-test-{platform}:latest");
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    let imported = Command::new("sh")
        .arg("-c")
        .arg(format!("tar -C {} -c . | docker import - {image}", rootfs.display()))
        .output()
        .unwrap();
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));

    let api = free_port();
    let mut logger = start_logger(&dir.path().join("data"), &platform, api);
    let script = format!(
        "i=0; while [ $i -lt {NUMBERS} ]; do echo n=$i; i=$((i+1)); busybox usleep 20000; done; exec busybox sleep 3600"
    );
    let container = docker(&[
        "run",
        "-d",
        "--label",
        &format!("skiff.platform={platform}"),
        "--label",
        "skiff.app=numbers",
        "--label",
        "skiff.process=web",
        &image,
        "/bin/sh",
        "-c",
        &script,
    ]);
    let cleanup = Cleanup(container, image);

    // Killed two seconds in, after its read positions were saved at least once.
    let some = eventually(Duration::from_secs(30), || async { (numbers(api).await.len() >= 100).then_some(()) });
    assert!(some.await.is_some(), "the logger follows the container");
    logger.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _logger = start_logger(&dir.path().join("data"), &platform, api);
    let all = eventually(Duration::from_secs(60), || async {
        let seen = numbers(api).await;
        (seen.len() == NUMBERS as usize).then_some(seen)
    })
    .await;
    let seen = numbers(api).await;
    let missing: Vec<u32> = (0..NUMBERS).filter(|n| !seen.contains(n)).collect();
    assert!(all.is_some(), "missing after the restart: {missing:?}");
    // The lines read before the last saved position are known again, not taken in twice
    // (so drains do not get them again).
    let metrics = reqwest::get(format!("http://127.0.0.1:{api}/metrics")).await.unwrap().text().await.unwrap();
    let counter = |name: &str| -> u64 {
        metrics.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or_default()
    };
    let (kept, replayed) = (counter("skiff_logger_lines_total "), counter("skiff_logger_replayed_total "));
    assert_eq!(kept + replayed, u64::from(NUMBERS), "{metrics}");
    assert!(replayed >= 50, "{metrics}");
    drop(cleanup);
}

/// Removes the container and the image when the test ends, passed or not.
struct Cleanup(String, String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        let _ = Command::new("docker").args(["rmi", "-f", &self.1]).output();
    }
}
