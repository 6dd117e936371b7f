//! A registry on an ephemeral port with a temporary store, and a small HTTP helper.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use skiff_api::RegistryGrant;
use skiff_registry::auth::{AuthError, Authorizer, Credentials};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub const SERVICE_TOKEN: &str = "service-token-for-tests";

/// Test users: `alice` owns repositories under `alice/`, `bob` those under `bob/`.
struct Users;

#[async_trait]
impl Authorizer for Users {
    async fn authorize(
        &self,
        credentials: &Credentials,
        repo: Option<&str>,
    ) -> Result<Option<RegistryGrant>, AuthError> {
        let user = match (credentials.username.as_deref(), credentials.secret.as_str()) {
            (Some("alice"), "alice-pass") => "alice",
            (Some("bob"), "bob-pass") => "bob",
            _ => return Ok(None),
        };
        let mine = repo.is_none_or(|r| r.starts_with(&format!("{user}/")));
        Ok(Some(RegistryGrant { pull: mine, push: mine }))
    }
}

pub struct Registry {
    pub base: String,
    _dir: TempDir,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    http: reqwest::Client,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Where a test registry keeps its data: registries on a shared bucket pass each other
/// requests for the uploads they hold.
enum Medium {
    OwnDisk,
    SharedBucket,
}

/// Who a request is from.
#[derive(Debug, Clone, Copy)]
pub enum As {
    Service,
    Alice,
    Bob,
    Nobody,
}

/// A new, empty bucket on the test S3 server (`SKIFF_TEST_S3_ENDPOINT`), as a store URL.
pub async fn s3_bucket() -> String {
    let endpoint = std::env::var("SKIFF_TEST_S3_ENDPOINT").expect(
        "this test needs an S3 server: run deploy/test.sh, which installs and starts one (moto), \
         or set SKIFF_TEST_S3_ENDPOINT=http://127.0.0.1:PORT",
    );
    let bucket = format!("skiff-registry-{:08x}", rand::random::<u32>());
    let created = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.expect("S3 answers");
    assert!(created.status().is_success(), "creating bucket {bucket}: {}", created.status());
    format!("s3://{bucket}?endpoint={endpoint}&access_key_id=skiff&secret_access_key=skiff-secret")
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Registry {
    /// A registry on a filesystem store in a temporary directory.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = skiff_store::FsBlobStore::open(dir.path().join("store")).await.unwrap();
        let records = skiff_store::FsRecordStore::new(dir.path().join("registry/repositories"));
        Self::start_on(dir, Arc::new(store), Arc::new(records), Medium::OwnDisk).await
    }

    /// A registry on an S3 bucket of the test server (see [`s3_bucket`]); several started
    /// on one bucket share every blob, repository and upload session.
    pub async fn start_on_s3(bucket: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = skiff_store::S3BlobStore::open(bucket, dir.path().join("staging")).await.unwrap();
        let records = store.records("repositories");
        Self::start_on(dir, Arc::new(store), Arc::new(records), Medium::SharedBucket).await
    }

    /// A registry on an S3 store at `url` (any server that speaks enough of S3).
    pub async fn start_on_s3_url(url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = skiff_store::S3BlobStore::open(url, dir.path().join("staging")).await.unwrap();
        let records = store.records("repositories");
        Self::start_on(dir, Arc::new(store), Arc::new(records), Medium::OwnDisk).await
    }

    async fn start_on(
        dir: TempDir,
        store: Arc<dyn skiff_store::BlobStore>,
        records: Arc<dyn skiff_store::RecordStore>,
        medium: Medium,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = skiff_registry::Config {
            service_token: SERVICE_TOKEN.into(),
            peer_url: matches!(medium, Medium::SharedBucket).then(|| base.clone()),
        };
        let registry = skiff_registry::Registry::new(config, store, records, Arc::new(Users));
        let shutdown = CancellationToken::new();
        let server = Some(tokio::spawn(skiff_registry::serve(listener, None, registry, shutdown.clone())));
        Self { base, _dir: dir, shutdown, server, http: reqwest::Client::new() }
    }

    /// Stops the registry and waits until it has closed every connection.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("the registry's task ends").expect("the registry stops cleanly");
        }
    }

    /// The directory holding the store (`store`) and the registry's data (`registry`).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// A request to `path` (absolute URL or path) as `who`.
    pub fn request(&self, who: As, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) };
        let request = self.http.request(method, url);
        match who {
            As::Service => request.basic_auth("skiff", Some(SERVICE_TOKEN)),
            As::Alice => request.basic_auth("alice", Some("alice-pass")),
            As::Bob => request.basic_auth("bob", Some("bob-pass")),
            As::Nobody => request,
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        request.send().await.expect("registry answers")
    }

    /// POST then PUT a blob into `repo`; returns its digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let started = self.send(self.request(As::Service, Method::POST, &format!("/v2/{repo}/blobs/uploads/"))).await;
        assert_eq!(started.status(), StatusCode::ACCEPTED);
        let digest = sha256(bytes);
        let finished = self.finish_upload(&header(&started, "location"), bytes, &digest).await;
        assert_eq!(finished.status(), StatusCode::CREATED, "{}", finished.text().await.unwrap());
        digest
    }

    /// Ends the upload at `location` with its last bytes, naming the whole blob's `digest`.
    pub async fn finish_upload(&self, location: &str, last: &[u8], digest: &str) -> reqwest::Response {
        let target = with_query(location, &format!("digest={digest}"));
        self.send(self.request(As::Service, Method::PUT, &target).body(last.to_vec())).await
    }

    /// Pushes a one-layer image manifest under `reference`; returns (manifest digest, bytes).
    pub async fn push_image(&self, repo: &str, reference: &str, layer: &[u8]) -> (String, Vec<u8>) {
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config_digest = self.push_blob(repo, config).await;
        let layer_digest = self.push_blob(repo, layer).await;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
        }))
        .unwrap();
        let digest = self.put_manifest(repo, reference, OCI_MANIFEST, &manifest).await;
        (digest, manifest)
    }

    pub async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> String {
        let response = self
            .send(
                self.request(As::Service, Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
                    .header("content-type", media_type)
                    .body(bytes.to_vec()),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap());
        header(&response, "docker-content-digest")
    }
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

pub fn with_query(location: &str, query: &str) -> String {
    format!("{location}{}{query}", if location.contains('?') { '&' } else { '?' })
}

/// Checks that a 4xx body is the OCI error envelope with `code`.
pub async fn assert_error(response: reqwest::Response, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status);
    let body: serde_json::Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    assert!(body["errors"][0]["message"].is_string(), "{body}");
}
