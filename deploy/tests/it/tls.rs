//! HTTPS on the whole platform with curl: the local CA's certificates for apps' own
//! names, an uploaded certificate for a custom domain, force-HTTPS and HSTS.

use std::path::Path;
use std::time::Duration;

use crate::harness::{Platform, eventually, get_via_router};

/// `curl -i` of `url`, with the URL's host resolved to 127.0.0.1 and `ca` trusted: the
/// status (0 when curl failed) and what curl printed, lowercase.
async fn curl(ca: &Path, host: &str, port: u16, url: &str) -> (u16, String) {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "-i", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1"), url])
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text.to_ascii_lowercase())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn apps_are_served_over_https_with_their_certificates() {
    let (mut platform, repo, key) = Platform::start().await.with_app("secure").await;
    let home = platform.dir.path().to_owned();
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    let serving = eventually(Duration::from_secs(60), || async {
        matches!(get_via_router(platform.router(), "secure.localhost").await, Some((200, _))).then_some(())
    });
    assert!(serving.await.is_some());
    let port = platform.addresses.router_tls.unwrap().port();
    let http_port = platform.router().port();

    // The app's own name, with a certificate from the platform's local CA.
    let local_ca = home.join("data/router/ca.crt");
    let (status, text) = curl(&local_ca, "secure.localhost", port, &format!("https://secure.localhost:{port}/")).await;
    assert!(status == 200 && text.contains("hello from skiff"), "{text}");

    // A custom domain with an uploaded certificate, served once attached.
    let made = rcgen::generate_simple_self_signed(vec!["www.secure.test".to_owned()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["www.secure.test".to_owned()]).unwrap();
    let (cert, key_file, wrong_key) = (home.join("cert.pem"), home.join("key.pem"), home.join("wrong.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key_file, made.signing_key.serialize_pem()).unwrap();
    std::fs::write(&wrong_key, other.signing_key.serialize_pem()).unwrap();
    let (status, _, err) =
        platform.cli(&repo, &["certs:add", "main", cert.to_str().unwrap(), wrong_key.to_str().unwrap()]).await;
    assert!(status == 1 && err.contains("does not belong to the certificate"), "{err}");
    let out = platform.cli_ok(&repo, &["certs:add", "main", cert.to_str().unwrap(), key_file.to_str().unwrap()]).await;
    assert!(out.contains("covers www.secure.test"), "{out}");
    let (status, _, err) = platform.cli(&repo, &["certs:attach", "main", "www.secure.test"]).await;
    assert!(status == 1 && err.contains("skiff domains:add www.secure.test"), "{err}");
    platform.cli_ok(&repo, &["domains:add", "www.secure.test"]).await;
    platform.cli_ok(&repo, &["domains:add", "api.secure.test"]).await;
    let (status, _, err) = platform.cli(&repo, &["certs:attach", "main", "api.secure.test"]).await;
    assert!(status == 1 && err.contains("does not cover api.secure.test"), "{err}");
    platform.cli_ok(&repo, &["certs:attach", "main", "www.secure.test"]).await;
    let listed = platform.cli_ok(&repo, &["certs"]).await;
    assert!(listed.contains("SERVED FOR") && listed.contains("www.secure.test"), "{listed}");
    let url = format!("https://www.secure.test:{port}/");
    let custom = eventually(Duration::from_secs(30), || async {
        let (status, text) = curl(&cert, "www.secure.test", port, &url).await;
        (status == 200 && text.contains("hello from skiff")).then_some(())
    });
    assert!(custom.await.is_some(), "{:?}", curl(&cert, "www.secure.test", port, &url).await);

    // HTTPS only, with HSTS: plain HTTP is redirected.
    let out = platform.cli_ok(&repo, &["tls:enable", "--hsts", "600"]).await;
    assert!(out.contains("HTTPS only") && out.contains("max-age=600"), "{out}");
    let plain = format!("http://secure.localhost:{http_port}/page?x=1");
    let redirected = eventually(Duration::from_secs(30), || async {
        let (status, text) = curl(&local_ca, "secure.localhost", http_port, &plain).await;
        (status == 308).then_some(text)
    })
    .await
    .expect("plain HTTP is redirected");
    assert!(redirected.contains(&format!("location: https://secure.localhost:{port}/page?x=1")), "{redirected}");
    let (_, text) = curl(&local_ca, "secure.localhost", port, &format!("https://secure.localhost:{port}/")).await;
    assert!(text.contains("strict-transport-security: max-age=600"), "{text}");
    platform.cli_ok(&repo, &["tls:disable"]).await;
    let home_page = format!("http://secure.localhost:{http_port}/");
    let plain_again = eventually(Duration::from_secs(30), || async {
        (curl(&local_ca, "secure.localhost", http_port, &home_page).await.0 == 200).then_some(())
    });
    assert!(plain_again.await.is_some());
    platform.cli_ok(&repo, &["certs:remove", "main"]).await;
    assert_eq!(platform.cli_ok(&repo, &["certs", "--json"]).await.trim(), "[]");
    platform.stop().await;
}
