//! Skiff's registry with the real clients people use: `docker login`, `docker push` and
//! `docker pull` through the engine, and skopeo in both directions.

use std::path::Path;
use std::process::Command;

use crate::harness::Platform;

/// Runs a command; returns (success, stdout + stderr).
fn run(command: &mut Command) -> (bool, String) {
    let output = command.output().expect("command runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn docker(config: &Path) -> Command {
    let mut command = Command::new("docker");
    command.env("DOCKER_CONFIG", config).env("DOCKER_BUILDKIT", "0");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn docker_and_skopeo_push_and_pull_through_the_registry() {
    let (found, _) = run(Command::new("skopeo").arg("--version"));
    assert!(found, "this test needs skopeo; install it with `apt-get install skopeo` (deploy/test.sh does)");
    let mut platform = Platform::start().await;
    let home = platform.dir.path().to_owned();
    platform.cli_ok(&home, &["auth:register", "-u", "admin", "-p", "correct-horse"]).await;
    platform.cli_ok(&home, &["auth:register", "-u", "eve", "-p", "eve-password"]).await;
    platform.cli_ok(&home, &["auth:login", "-u", "admin", "-p", "correct-horse"]).await;
    platform.cli_ok(&home, &["apps:create", "img", "--no-remote"]).await;
    let registry = platform.addresses.registry.unwrap().to_string();
    let config = home.join("docker");

    // `docker login` with the account's password.
    let mut login = docker(&config);
    login.args(["login", &registry, "-u", "admin", "-p", "correct-horse"]);
    let (ok, out) = run(&mut login);
    assert!(ok && out.contains("Login Succeeded"), "{out}");
    let (ok, out) = run(docker(&config).args(["login", &registry, "-u", "admin", "-p", "wrong-password"]));
    assert!(!ok, "a wrong password is refused: {out}");

    // A three-layer image: an imported busybox base, then a RUN and a COPY.
    let rootfs = home.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    let base = format!("local/skiff-test-base:{}", platform.platform_id);
    let (ok, out) = run(Command::new("sh").arg("-c").arg(format!(
        "tar -C '{}' -c . | DOCKER_CONFIG='{}' docker import -c 'ENV PATH=/bin' - {base}",
        rootfs.display(),
        config.display()
    )));
    assert!(ok, "{out}");
    let context = home.join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), format!("FROM {base}\nRUN echo one > /one\nCOPY f /f\n")).unwrap();
    std::fs::write(context.join("f"), "file\n").unwrap();
    let image = format!("{registry}/img:multi");
    let (ok, out) = run(docker(&config).args(["build", "-q", "-t", &image]).arg(&context));
    assert!(ok, "{out}");

    let (ok, out) = run(docker(&config).args(["push", &image]));
    assert!(ok, "docker push: {out}");
    let (ok, out) = run(docker(&config).args(["rmi", &image]));
    assert!(ok, "{out}");
    let (ok, out) = run(docker(&config).args(["pull", &image]));
    assert!(ok, "docker pull: {out}");
    let (ok, out) =
        run(docker(&config).args(["run", "--rm", &image, "sh", "-c", "read a < /one; read b < /f; echo $a $b"]));
    assert!(ok && out.contains("one file"), "{out}");

    // Another user may neither pull nor push the app's repository, and is told at once
    // (the engine gives up on `insufficient_scope` instead of retrying for a minute).
    let (ok, out) = run(docker(&config).args(["login", &registry, "-u", "eve", "-p", "eve-password"]));
    assert!(ok, "{out}");
    let (ok, out) = run(docker(&config).args(["pull", &image]));
    assert!(!ok && out.contains("denied"), "{out}");
    let (ok, out) = run(docker(&config).args(["push", &image]));
    assert!(!ok && out.contains("denied"), "{out}");
    assert!(!out.contains("Retrying"), "the engine does not retry a denial: {out}");
    let (ok, out) = run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", "--dest-creds", "eve:eve-password"])
        .arg(format!("docker-daemon:{base}"))
        .arg(format!("docker://{registry}/img:eve")));
    assert!(!ok && (out.contains("denied") || out.contains("403")), "{out}");

    // skopeo both ways, list-tags and delete, as admin.
    let creds = "admin:correct-horse";
    let oci = format!("oci:{}:multi", home.join("oci").display());
    let (ok, out) = run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--src-creds", creds])
        .arg(format!("docker://{image}"))
        .arg(&oci));
    assert!(ok, "skopeo copy from the registry: {out}");
    let (ok, out) = run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", "--dest-creds", creds])
        .arg(&oci)
        .arg(format!("docker://{registry}/img:oci")));
    assert!(ok, "skopeo copy to the registry: {out}");
    let (ok, out) = run(Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false", "--creds", creds])
        .arg(format!("docker://{registry}/img")));
    assert!(ok && out.contains("\"multi\"") && out.contains("\"oci\""), "{out}");
    let (ok, out) = run(Command::new("skopeo")
        .args(["delete", "--tls-verify=false", "--creds", creds])
        .arg(format!("docker://{registry}/img:oci")));
    assert!(ok, "{out}");
    let (_, out) = run(Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false", "--creds", creds])
        .arg(format!("docker://{registry}/img")));
    assert!(!out.contains("\"oci\""), "{out}");

    let _ = run(docker(&config).args(["rmi", "-f", &image, &base]));
    // Stop before the harness removes the containers, so no new one starts after.
    platform.stop().await;
}
