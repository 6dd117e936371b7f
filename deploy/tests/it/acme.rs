//! Automatic certificates against a real ACME server: Debian's `pebble` (RFC 8555, with
//! its own test CA) on 127.0.0.1, resolving every name to 127.0.0.1 through
//! `pebble-challtestsrv`'s DNS server (a name can be pointed elsewhere, to fail its
//! check), validating HTTP-01 at the platform's router. Clients check what the router
//! serves against pebble's root, by SNI, over real TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use skiff_api::{AcmeChallengeKind, AutoCertificateState, AutoCertificates};

use crate::harness::{Platform, eventually};

/// A port on 127.0.0.1 free for TCP and UDP, below the kernel's ephemeral range (32768 and
/// up): no port the kernel picks for another test's listener or connection can be it, and
/// pebble's DNS server (UDP) holds none another platform's syslog port could get.
fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = 28_000 + rand::random::<u16>() % 4_000;
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port between 28000 and 32000");
}

/// pebble and its DNS server, stopped when dropped.
struct Pebble {
    dir: tempfile::TempDir,
    processes: Vec<Child>,
    directory: String,
    acme: SocketAddr,
    management: SocketAddr,
    dns_management: SocketAddr,
    /// The CA of pebble's own HTTPS listener, for the controller (`SKIFF_ACME_CA`).
    listener_ca: PathBuf,
}

impl Pebble {
    /// pebble validating HTTP-01 on `http_port` (and TLS-ALPN-01 on `tls_port`), issuing
    /// certificates valid for `validity_secs`, waiting up to `va_sleep_secs` before each check.
    async fn start(http_port: u16, tls_port: u16, validity_secs: u64, va_sleep_secs: u32) -> Self {
        for tool in ["pebble", "pebble-challtestsrv"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .output()
                    .is_ok_and(|o| o.status.success()),
                "these tests need `{tool}`; install it with `apt-get install pebble` (deploy/test.sh does)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        // pebble's HTTPS listener, with a CA of the test's own.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let listener_ca = dir.path().join("listener-ca.pem");
        std::fs::write(&listener_ca, ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
        let (acme, management, dns, dns_management) = (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_secs,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| Stdio::from(std::fs::File::create(dir.path().join(name)).unwrap());
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}"), "-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}"), "-defaultIPv4", "127.0.0.1"])
            .args(["-defaultIPv6", ""])
            .stdout(log("dns.log"))
            .stderr(log("dns.err"))
            .spawn()
            .expect("pebble-challtestsrv starts");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}"), "-strict=false"])
            .env("PEBBLE_VA_NOSLEEP", if va_sleep_secs == 0 { "1" } else { "0" })
            .env("PEBBLE_VA_SLEEPTIME", va_sleep_secs.max(1).to_string())
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("pebble starts");
        let pebble = Self {
            dir,
            processes: vec![dns_server, pebble],
            directory: format!("https://127.0.0.1:{acme}/dir"),
            acme: ([127, 0, 0, 1], acme).into(),
            management: ([127, 0, 0, 1], management).into(),
            dns_management: ([127, 0, 0, 1], dns_management).into(),
            listener_ca,
        };
        let up = eventually(Duration::from_secs(20), || async {
            let (_, directory) = pebble.get(pebble.acme, "/dir").await?;
            let dns = reqwest::Client::new().post(format!("http://{}/clear-a", pebble.dns_management));
            let dns = dns.json(&serde_json::json!({"host": "nothing.test."})).send().await.ok()?;
            (directory.starts_with("HTTP/1.1 200") && dns.status().is_success()).then_some(())
        });
        assert!(up.await.is_some(), "pebble did not start: {}", pebble.logs());
        pebble
    }

    /// A GET from one of pebble's HTTPS listeners.
    async fn get(&self, address: SocketAddr, path: &str) -> Option<(String, String)> {
        let ca = CertificateDer::from_pem_file(&self.listener_ca).unwrap();
        https_get(address, "127.0.0.1", &ca, path).await
    }

    /// The root pebble issues certificates under (made anew at each start).
    async fn root(&self) -> CertificateDer<'static> {
        let (_, answer) = self.get(self.management, "/roots/0").await.expect("pebble's management answers");
        CertificateDer::from_pem_slice(answer.as_bytes()).expect("pebble's root is PEM")
    }

    /// Has `host` resolve to `address` for pebble (and back to 127.0.0.1 with `None`).
    async fn point(&self, host: &str, address: Option<&str>) {
        let dns = reqwest::Client::new();
        let (path, body) = match address {
            Some(address) => ("add-a", serde_json::json!({"host": format!("{host}."), "addresses": [address]})),
            None => ("clear-a", serde_json::json!({"host": format!("{host}.")})),
        };
        let answer = dns.post(format!("http://{}/{path}", self.dns_management)).json(&body).send().await.unwrap();
        assert!(answer.status().is_success(), "{path} {host}: {}", answer.status());
    }

    fn logs(&self) -> String {
        ["pebble.log", "pebble.err", "dns.err"]
            .iter()
            .map(|name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// A platform whose router listens for HTTP on `http_port` and HTTPS on `tls_port` (where
/// pebble checks) and whose controller orders from `pebble` proving domains by
/// `challenge`, looking every second and retrying after a second.
async fn platform_for(pebble: &Pebble, (http_port, tls_port): (u16, u16), challenge: AcmeChallengeKind) -> Platform {
    let (directory, ca) = (pebble.directory.clone(), pebble.listener_ca.clone());
    Platform::start_with_settings(move |settings| {
        settings.router_listen = ([127, 0, 0, 1], http_port).into();
        settings.router_tls_listen = ([127, 0, 0, 1], tls_port).into();
        settings.acme_challenge = challenge;
        settings.acme_directory = directory;
        settings.acme_ca = Some(ca);
        settings.acme_email = Some("ops@example.test".into());
        settings.acme_interval = 1;
        settings.acme_retry = 1;
    })
    .await
}

/// The app's automatic certificates, as `skiff certs:auto --json` shows them.
async fn auto(platform: &Platform, repo: &Path) -> AutoCertificates {
    serde_json::from_str(&platform.cli_ok(repo, &["certs:auto", "--json"]).await).expect("JSON")
}

/// What a client that trusts only `root` is served for `host` at the router's HTTPS port:
/// the leaf's serial number and the answer. `None` when the chain does not verify or
/// nothing answers.
async fn served(platform: &Platform, root: &CertificateDer<'static>, host: &str) -> Option<(String, String)> {
    https_get(platform.addresses.router_tls?, host, root, "/").await
}

/// `GET path` over TLS to `address` with SNI and `Host` `host`, trusting only `root`: the
/// serial number of the leaf served and the whole answer.
async fn https_get(address: SocketAddr, host: &str, root: &CertificateDer<'_>, path: &str) -> Option<(String, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone().into_owned()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(address).await.ok()?;
    let name = ServerName::try_from(host.to_owned()).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.ok()?;
    let leaf = tls.get_ref().1.peer_certificates()?.first()?.clone();
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).ok()?;
    let serial = parsed.raw_serial_as_string();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    Some((serial, String::from_utf8_lossy(&answer).into_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and pebble (deploy/test.sh)"]
async fn custom_domains_get_certificates_by_themselves_renewed_and_retried() {
    let ports = (free_port(), free_port());
    // Certificates live 30 s: renewed after two thirds of that.
    let pebble = Pebble::start(ports.0, ports.1, 30, 0).await;
    let (platform, repo, key) = platform_for(&pebble, ports, AcmeChallengeKind::Http01).await.with_app("shop").await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    platform.cli_ok(&repo, &["domains:add", "www.shop.test"]).await;
    // api.shop.test points where no router listens: its check fails.
    pebble.point("api.shop.test", Some("127.0.0.2")).await;

    let out = platform.cli_ok(&repo, &["certs:auto"]).await;
    assert!(out.contains("Automatic certificates are on for shop") && out.contains("www.shop.test"), "{out}");
    // A domain added afterwards gets one too.
    platform.cli_ok(&repo, &["domains:add", "api.shop.test"]).await;
    let settled = eventually(Duration::from_secs(60), || async {
        let auto = auto(&platform, &repo).await;
        let state = |domain: &str| auto.domains.iter().find(|d| d.domain == domain).cloned();
        let (www, api) = (state("www.shop.test")?, state("api.shop.test")?);
        (www.state == AutoCertificateState::Valid && api.state == AutoCertificateState::Failed).then_some((www, api))
    });
    let Some((www, api)) = settled.await else {
        panic!("not issued: {:?}\n{}", auto(&platform, &repo).await, pebble.logs());
    };
    assert!(www.valid_until.is_some() && www.last_error.is_none(), "{www:?}");
    let error = api.last_error.clone().unwrap_or_default();
    assert!(error.contains("127.0.0.2") || error.contains("refused"), "the failure says why: {api:?}");
    assert!(api.next_attempt_at.is_some(), "{api:?}");

    // Served by SNI from the routers' next table, under pebble's root, in front of the app.
    let root = pebble.root().await;
    let www_served = eventually(Duration::from_secs(10), || served(&platform, &root, "www.shop.test"));
    let (first_serial, answer) = www_served.await.expect("a chain under pebble's root");
    assert!(answer.starts_with("HTTP/1.1 200") && answer.to_ascii_lowercase().contains("hello from skiff"), "{answer}");
    let listed = platform.cli_ok(&repo, &["certs"]).await;
    assert!(listed.contains("auto-www.shop.test") && listed.contains("LAST ERROR"), "{listed}");
    let events = platform.cli_ok(&repo, &["events"]).await;
    assert!(events.contains("certificate for www.shop.test issued"), "{events}");
    assert!(events.contains("certificate for api.shop.test not issued"), "{events}");

    // Routed again, the failed domain gets its certificate on a retry.
    pebble.point("api.shop.test", None).await;
    let api_valid = eventually(Duration::from_secs(60), || async {
        let auto = auto(&platform, &repo).await;
        auto.domains.iter().any(|d| d.domain == "api.shop.test" && d.state == AutoCertificateState::Valid).then_some(())
    });
    assert!(api_valid.await.is_some(), "{:?}", auto(&platform, &repo).await);
    let api_served = eventually(Duration::from_secs(10), || served(&platform, &root, "api.shop.test"));
    assert!(api_served.await.is_some(), "the router serves it from its next table");

    // Renewed before it expires, and the new one served without a restart.
    let renewed = eventually(Duration::from_secs(60), || async {
        let (serial, answer) = served(&platform, &root, "www.shop.test").await?;
        (serial != first_serial && answer.to_ascii_lowercase().contains("hello from skiff")).then_some(())
    });
    assert!(renewed.await.is_some(), "{:?}", auto(&platform, &repo).await);
    let events = platform.cli_ok(&repo, &["events"]).await;
    assert!(events.contains("certificate for www.shop.test renewed"), "{events}");

    // A removed domain's certificate goes with it and is not renewed.
    platform.cli_ok(&repo, &["domains:remove", "api.shop.test"]).await;
    let auto_after = auto(&platform, &repo).await;
    assert!(auto_after.domains.iter().all(|d| d.domain != "api.shop.test"), "{auto_after:?}");
    assert!(!platform.cli_ok(&repo, &["certs"]).await.contains("auto-api.shop.test"));

    // Turned off: nothing more is ordered; the certificate issued stays served.
    let out = platform.cli_ok(&repo, &["certs:auto:disable"]).await;
    assert!(out.contains("off for shop"), "{out}");
    let listed = platform.cli_ok(&repo, &["certs"]).await;
    assert!(listed.contains("auto-www.shop.test") && !listed.contains("Automatic certificates are on"), "{listed}");
    assert!(served(&platform, &root, "www.shop.test").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and pebble (deploy/test.sh)"]
async fn an_order_goes_on_after_the_controller_restarts() {
    let ports = (free_port(), free_port());
    // pebble waits up to 3 s before each check: the platform stops while it waits.
    let pebble = Pebble::start(ports.0, ports.1, 3600, 3).await;
    let (mut platform, repo, _key) =
        platform_for(&pebble, ports, AcmeChallengeKind::Http01).await.with_app("late").await;
    platform.cli_ok(&repo, &["domains:add", "late.example.test"]).await;
    platform.cli_ok(&repo, &["certs:auto"]).await;
    let ordered = eventually(Duration::from_secs(30), || async {
        auto(&platform, &repo).await.domains.first().is_some_and(|d| d.ordering).then_some(())
    });
    assert!(ordered.await.is_some(), "{:?}", auto(&platform, &repo).await);
    platform.restart().await;
    let issued = eventually(Duration::from_secs(60), || async {
        let auto = auto(&platform, &repo).await;
        auto.domains.first().is_some_and(|d| d.state == AutoCertificateState::Valid).then_some(())
    });
    assert!(issued.await.is_some(), "{:?}\n{}", auto(&platform, &repo).await, pebble.logs());
    let events = platform.cli_ok(&repo, &["events"]).await;
    assert!(events.contains("the order placed before went on"), "{events}");
    // Nothing is deployed: the router answers itself, over a chain under pebble's root.
    let root = pebble.root().await;
    let (_, answer) = served(&platform, &root, "late.example.test").await.expect("a chain under pebble's root");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and pebble (deploy/test.sh)"]
async fn a_platform_reached_on_https_only_proves_domains_by_tls_alpn() {
    let ports = (free_port(), free_port());
    // pebble checks HTTP-01 where nothing listens: only TLS-ALPN-01 can succeed.
    let pebble = Pebble::start(free_port(), ports.1, 3600, 0).await;
    let (platform, repo, _key) =
        platform_for(&pebble, ports, AcmeChallengeKind::TlsAlpn01).await.with_app("edge").await;
    platform.cli_ok(&repo, &["domains:add", "edge.example.test"]).await;
    platform.cli_ok(&repo, &["certs:auto"]).await;
    let issued = eventually(Duration::from_secs(60), || async {
        let auto = auto(&platform, &repo).await;
        auto.domains.first().is_some_and(|d| d.state == AutoCertificateState::Valid).then_some(())
    });
    assert!(issued.await.is_some(), "{:?}\n{}", auto(&platform, &repo).await, pebble.logs());
    assert!(!pebble.logs().contains("validate w/ HTTP"), "not checked over HTTP: {}", pebble.logs());
    let root = pebble.root().await;
    let served = eventually(Duration::from_secs(10), || served(&platform, &root, "edge.example.test"));
    let (_, answer) = served.await.expect("a chain under pebble's root");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
}
