//! Garbage collection: what goes, what stays, and uploads in flight.

use reqwest::{Method, StatusCode};

use crate::harness::{As, Registry, header, with_query};

async fn gc(registry: &Registry, query: &str) -> serde_json::Value {
    let response = registry.send(registry.request(As::Service, Method::POST, &format!("/_skiff/gc?{query}"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn blob_status(registry: &Registry, repo: &str, digest: &str) -> StatusCode {
    registry.send(registry.request(As::Service, Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"))).await.status()
}

#[tokio::test]
async fn unreferenced_blobs_go_once_past_the_grace_period() {
    let registry = Registry::start().await;
    let loose = registry.push_blob("app", b"pushed, never referenced").await;
    let (manifest, _) = registry.push_image("app", "v1", b"referenced layer").await;

    let report = gc(&registry, "grace_secs=3600").await;
    assert_eq!(report["deleted"].as_array().unwrap().len(), 0, "young blobs stay: {report}");

    let dry = gc(&registry, "grace_secs=0&dry_run=true").await;
    assert_eq!(dry["deleted"], serde_json::json!([loose]), "{dry}");
    assert_eq!(blob_status(&registry, "app", &loose).await, StatusCode::OK, "a dry run deletes nothing");

    let report = gc(&registry, "grace_secs=0").await;
    assert_eq!(report["deleted"], serde_json::json!([loose]), "{report}");
    assert_eq!(blob_status(&registry, "app", &loose).await, StatusCode::NOT_FOUND);
    let pulled =
        registry.send(registry.request(As::Service, Method::GET, &format!("/v2/app/manifests/{manifest}"))).await;
    assert_eq!(pulled.status(), StatusCode::OK, "what a manifest uses stays");
}

#[tokio::test]
async fn retained_releases_keep_their_layers_and_dropped_ones_free_theirs() {
    let registry = Registry::start().await;
    let (v1, v1_bytes) = registry.push_image("app", "v1", b"layer of v1").await;
    let (v2, _) = registry.push_image("app", "v2", b"layer of v2").await;
    let v1_layer = serde_json::from_slice::<serde_json::Value>(&v1_bytes).unwrap()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    let retained = registry
        .send(
            registry
                .request(As::Service, Method::POST, "/_skiff/retain/app")
                .json(&serde_json::json!({"manifests": [v2]})),
        )
        .await;
    assert_eq!(retained.status(), StatusCode::OK);
    let gone = registry.send(registry.request(As::Service, Method::GET, "/v2/app/manifests/v1")).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND, "the dropped release's tag goes with it");

    let report = gc(&registry, "grace_secs=0").await;
    let deleted: Vec<&str> = report["deleted"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(deleted.contains(&v1.as_str()) && deleted.contains(&v1_layer.as_str()), "{report}");
    assert!(!deleted.contains(&v2.as_str()), "{report}");
    let kept = registry.send(registry.request(As::Service, Method::GET, "/v2/app/manifests/v2")).await;
    assert_eq!(kept.status(), StatusCode::OK);
    assert_eq!(blob_status(&registry, "app", &v1_layer).await, StatusCode::NOT_FOUND, "no stale link answers for it");
}

#[tokio::test]
async fn an_upload_in_flight_survives_a_collection() {
    let registry = Registry::start().await;
    let started = registry.send(registry.request(As::Service, Method::POST, "/v2/app/blobs/uploads/")).await;
    let location = header(&started, "location");
    let patched = registry.send(registry.request(As::Service, Method::PATCH, &location).body("half of it")).await;
    assert_eq!(patched.status(), StatusCode::ACCEPTED);

    gc(&registry, "grace_secs=0").await;

    let digest = crate::harness::sha256(b"half of it and the rest");
    let location = header(&patched, "location");
    let finished = registry
        .send(
            registry
                .request(As::Service, Method::PUT, &with_query(&location, &format!("digest={digest}")))
                .body(" and the rest"),
        )
        .await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_eq!(blob_status(&registry, "app", &digest).await, StatusCode::OK);
}

#[tokio::test]
async fn a_forgotten_repository_frees_only_its_own_blobs() {
    let registry = Registry::start().await;
    let shared = registry.push_blob("gone", b"shared layer").await;
    registry.push_blob("kept", b"shared layer").await;
    registry.push_image("kept", "v1", b"shared layer").await;
    let (own, _) = registry.push_image("gone", "v1", b"only in gone").await;
    let forgotten = registry.send(registry.request(As::Service, Method::DELETE, "/_skiff/repositories/gone")).await;
    assert_eq!(forgotten.status(), StatusCode::NO_CONTENT);
    let report = gc(&registry, "grace_secs=0").await;
    let deleted: Vec<&str> = report["deleted"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(deleted.contains(&own.as_str()), "{report}");
    assert!(!deleted.contains(&shared.as_str()), "{report}");
    assert_eq!(blob_status(&registry, "kept", &shared).await, StatusCode::OK);
}

#[tokio::test]
async fn only_the_platform_collects() {
    let registry = Registry::start().await;
    let response = registry.send(registry.request(As::Alice, Method::POST, "/_skiff/gc")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The token is checked before a body is read: a malformed one from a stranger gets 401,
    // not a parse error.
    for (method, path) in [(Method::POST, "/_skiff/retain/app"), (Method::DELETE, "/_skiff/repositories/app")] {
        let request =
            registry.request(As::Alice, method, path).header("content-type", "application/json").body("{not json");
        assert_eq!(registry.send(request).await.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
}

/// The store under a collection that dies after `deletes` deletions, as a registry killed
/// mid-sweep would.
struct DyingStore {
    inner: skiff_store::FsBlobStore,
    deletes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl skiff_store::BlobStore for DyingStore {
    async fn size(&self, digest: &skiff_store::Digest) -> Result<Option<u64>, skiff_store::StoreError> {
        self.inner.size(digest).await
    }
    async fn open(&self, d: &skiff_store::Digest) -> Result<Option<skiff_store::BlobReader>, skiff_store::StoreError> {
        self.inner.open(d).await
    }
    async fn open_range(
        &self,
        digest: &skiff_store::Digest,
        start: u64,
        end: u64,
    ) -> Result<Option<skiff_store::BlobReader>, skiff_store::StoreError> {
        self.inner.open_range(digest, start, end).await
    }
    async fn read(&self, digest: &skiff_store::Digest) -> Result<Option<bytes::Bytes>, skiff_store::StoreError> {
        self.inner.read(digest).await
    }
    async fn put_bytes(
        &self,
        digest: &skiff_store::Digest,
        bytes: bytes::Bytes,
    ) -> Result<(), skiff_store::StoreError> {
        self.inner.put_bytes(digest, bytes).await
    }
    async fn stage(
        &self,
        algorithm: skiff_store::DigestAlgorithm,
    ) -> Result<skiff_store::Staged, skiff_store::StoreError> {
        self.inner.stage(algorithm).await
    }
    async fn commit(
        &self,
        staged: skiff_store::Staged,
        digest: &skiff_store::Digest,
    ) -> Result<(), skiff_store::StoreError> {
        self.inner.commit(staged, digest).await
    }
    async fn list(&self) -> Result<Vec<(skiff_store::Digest, std::time::SystemTime)>, skiff_store::StoreError> {
        self.inner.list().await
    }
    async fn delete(&self, digest: &skiff_store::Digest) -> Result<(), skiff_store::StoreError> {
        use std::sync::atomic::Ordering;
        if self.deletes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err() {
            return Err(skiff_store::StoreError::Io(std::io::Error::other("killed mid-sweep")));
        }
        self.inner.delete(digest).await
    }
}

#[tokio::test]
#[ignore = "needs skopeo and Debian's docker-registry (deploy/test.sh installs them)"]
async fn a_collection_cut_short_is_finished_by_the_next_and_spares_what_is_used() {
    let registry = Registry::start().await;
    let loose = [
        registry.push_blob("app", b"loose one").await,
        registry.push_blob("app", b"loose two").await,
        registry.push_blob("app", b"loose three").await,
    ];
    let (manifest, bytes) = registry.push_image("app", "v1", b"a layer in use").await;
    let layer = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    // A collection over the same data that dies after its first deletion.
    let records = skiff_store::FsRecordStore::new(registry.dir().join("registry/repositories"));
    let meta = skiff_registry::meta::Meta::new(std::sync::Arc::new(records));
    let dying = DyingStore {
        inner: skiff_store::FsBlobStore::open(registry.dir().join("store")).await.unwrap(),
        deletes: std::sync::atomic::AtomicUsize::new(1),
    };
    let cut = skiff_registry::gc::collect(&meta, &dying, std::time::Duration::ZERO, false).await;
    assert!(cut.is_err(), "the first collection dies mid-sweep");
    let gone = futures_util::future::join_all(loose.iter().map(|d| blob_status(&registry, "app", d))).await;
    assert_eq!(
        gone.iter().filter(|s| **s == StatusCode::OK).count(),
        2,
        "one loose blob went before it died: {gone:?}"
    );

    // The next collection finishes the job, and what the image uses stays.
    let report = gc(&registry, "grace_secs=0").await;
    assert_eq!(report["deleted"].as_array().unwrap().len(), 2, "{report}");
    for digest in &loose {
        assert_eq!(blob_status(&registry, "app", digest).await, StatusCode::NOT_FOUND);
    }
    assert_eq!(blob_status(&registry, "app", &layer).await, StatusCode::OK);
    let pulled =
        registry.send(registry.request(As::Service, Method::GET, &format!("/v2/app/manifests/{manifest}"))).await;
    assert_eq!(pulled.status(), StatusCode::OK);
}

/// Runs a command to completion; panics with its output when it fails.
fn run(command: &mut std::process::Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?} runs: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{command:?}: {text}");
    text
}

/// Debian's docker-registry (distribution 2.8), deletes allowed, stopped when dropped.
struct Distribution {
    child: std::process::Child,
    config: std::path::PathBuf,
    address: String,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Distribution {
    async fn start(dir: &std::path::Path) -> Self {
        let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let config = dir.join("distribution.yml");
        let yaml = format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: {address}}}\n",
            dir.join("distribution").display()
        );
        std::fs::write(&config, yaml).unwrap();
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .env_remove("AWS_CA_BUNDLE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry runs (apt-get install docker-registry; deploy/test.sh installs it)");
        for _ in 0..100 {
            if reqwest::get(format!("http://{address}/v2/")).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Self { child, config, address }
    }

    /// What `docker-registry garbage-collect --dry-run` would delete.
    fn eligible(&self) -> std::collections::BTreeSet<String> {
        let out =
            run(std::process::Command::new("docker-registry").args(["garbage-collect", "--dry-run"]).arg(&self.config));
        out.lines().filter_map(|l| l.trim().strip_prefix("blob eligible for deletion: ")).map(str::to_owned).collect()
    }
}

// Two threads: the registry serves while the test waits for skopeo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs skopeo and Debian's docker-registry (deploy/test.sh installs them)"]
async fn a_dry_run_lists_what_docker_registry_garbage_collect_would_delete() {
    let registry = Registry::start().await;
    let dir = tempfile::tempdir().unwrap();
    let distribution = Distribution::start(dir.path()).await;
    let layouts = dir.path().join("layouts");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/bench/oci_layouts.py");
    run(std::process::Command::new("python3").arg(script).arg("small").arg(&layouts).arg("3"));
    let skiff = registry.base.trim_start_matches("http://").to_owned();
    let credentials = format!("skiff:{}", crate::harness::SERVICE_TOKEN);
    // The same three images in both, as the same repository.
    for n in 0..3 {
        let source = format!("oci:{}:latest", layouts.join(n.to_string()).display());
        for (host, creds) in [(&skiff, Some(&credentials)), (&distribution.address, None)] {
            let mut copy = std::process::Command::new("skopeo");
            copy.args(["copy", "-q", "--dest-tls-verify=false"]);
            if let Some(creds) = creds {
                copy.args(["--dest-creds", creds]);
            }
            run(copy.arg(&source).arg(format!("docker://{host}/app:v{n}")));
        }
    }
    // Both forget the second image.
    let manifest = registry.send(registry.request(As::Service, Method::HEAD, "/v2/app/manifests/v1")).await;
    let digest = header(&manifest, "docker-content-digest");
    let deleted = registry.send(registry.request(As::Service, Method::DELETE, &format!("/v2/app/manifests/{digest}")));
    assert_eq!(deleted.await.status(), StatusCode::ACCEPTED);
    let url = format!("http://{}/v2/app/manifests/{digest}", distribution.address);
    let deleted = reqwest::Client::new().delete(url).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);

    let theirs = distribution.eligible();
    let ours = gc(&registry, "grace_secs=0&dry_run=true").await;
    let ours: std::collections::BTreeSet<String> =
        ours["deleted"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect();
    assert_eq!(theirs.len(), 3, "the manifest, its config and its layer: {theirs:?}");
    assert_eq!(ours, theirs);
}
