//! Blob and manifest calls. Uploads are POST then PUT, the flavour every registry takes.

use bytes::Bytes;
use reqwest::StatusCode;
use skiff_api::Digest;

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry unreachable at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("registry answered {status} to {what}: {body}")]
    Status { what: String, status: StatusCode, body: String },
    #[error("registry sent an invalid answer to {what}: {reason}")]
    Invalid { what: String, reason: String },
}

/// A registry at a base URL, with push credentials.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    username: String,
    password: String,
}

impl RegistryClient {
    /// `base` is like `http://127.0.0.1:7701`.
    pub fn new(base: &str, username: &str, password: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }

    async fn send(&self, what: &str, request: reqwest::RequestBuilder) -> Result<reqwest::Response, RegistryError> {
        request
            .basic_auth(&self.username, Some(&self.password))
            .send()
            .await
            .map_err(|source| RegistryError::Unreachable { url: format!("{} ({what})", self.base), source })
    }

    async fn expect(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
        ok: &[StatusCode],
    ) -> Result<reqwest::Response, RegistryError> {
        let response = self.send(what, request).await?;
        if ok.contains(&response.status()) {
            Ok(response)
        } else {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            Err(RegistryError::Status { what: what.to_owned(), status, body })
        }
    }

    /// Whether `repo` can serve the blob.
    pub async fn has_blob(&self, repo: &str, digest: &Digest) -> Result<bool, RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let response = self.send("blob HEAD", self.http.head(url)).await?;
        Ok(response.status() == StatusCode::OK)
    }

    /// Fetches a whole blob.
    pub async fn blob(&self, repo: &str, digest: &Digest) -> Result<Bytes, RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let response = self.expect("blob GET", self.http.get(url), &[StatusCode::OK]).await?;
        response.bytes().await.map_err(|source| RegistryError::Unreachable { url: self.base.clone(), source })
    }

    /// Asks the registry to mount a blob from another repository; `false` when it could not.
    pub async fn mount(&self, repo: &str, digest: &Digest, from: &str) -> Result<bool, RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}", self.base);
        let response = self.send("blob mount", self.http.post(url)).await?;
        if response.status() == StatusCode::ACCEPTED {
            // An upload session was opened instead; cancel it.
            if let Some(location) = location(&response) {
                let _ = self.send("upload cancel", self.http.delete(self.absolute(&location))).await;
            }
        }
        Ok(response.status() == StatusCode::CREATED)
    }

    /// Uploads a blob (POST, then PUT with the whole body), unless the registry has it.
    pub async fn push_blob(&self, repo: &str, digest: &Digest, bytes: Bytes) -> Result<(), RegistryError> {
        if self.has_blob(repo, digest).await? {
            return Ok(());
        }
        let url = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let response = self.expect("upload start", self.http.post(url), &[StatusCode::ACCEPTED]).await?;
        let location = location(&response).ok_or_else(|| RegistryError::Invalid {
            what: "upload start".into(),
            reason: "no Location header".into(),
        })?;
        let mut url = self.absolute(&location);
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={digest}"));
        let request = self.http.put(url).header(reqwest::header::CONTENT_TYPE, "application/octet-stream").body(bytes);
        self.expect("upload finish", request, &[StatusCode::CREATED]).await?;
        Ok(())
    }

    /// The digest of the manifest a tag names.
    pub async fn manifest_digest(&self, repo: &str, reference: &str) -> Result<Digest, RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let request = self.http.head(url).header(reqwest::header::ACCEPT, manifest_types());
        let response = self.expect("manifest HEAD", request, &[StatusCode::OK]).await?;
        content_digest(&response, "manifest HEAD")
    }

    /// Unlinks every manifest of `repo` but `keep` (service token).
    pub async fn retain(&self, repo: &str, keep: &[Digest]) -> Result<(), RegistryError> {
        let url = format!("{}/_skiff/retain/{repo}", self.base);
        let body = serde_json::json!({ "manifests": keep });
        self.expect("retain", self.http.post(url).json(&body), &[StatusCode::OK]).await.map(drop)
    }

    /// A token that lets `subject` pull `repositories` and nothing else, for a short while
    /// (service token): what a build's engine pulls its base images with.
    pub async fn pull_token(&self, subject: &str, repositories: &[String]) -> Result<String, RegistryError> {
        let url = format!("{}/_skiff/tokens", self.base);
        let body = serde_json::json!({ "subject": subject, "repositories": repositories });
        let response = self.expect("pull token", self.http.post(url).json(&body), &[StatusCode::OK]).await?;
        let answer: serde_json::Value = response
            .json()
            .await
            .map_err(|e| RegistryError::Invalid { what: "pull token".into(), reason: e.to_string() })?;
        answer["token"].as_str().map(str::to_owned).ok_or_else(|| RegistryError::Invalid {
            what: "pull token".into(),
            reason: "no token in the answer".into(),
        })
    }

    /// Forgets a repository (service token).
    pub async fn forget(&self, repo: &str) -> Result<(), RegistryError> {
        let url = format!("{}/_skiff/repositories/{repo}", self.base);
        self.expect("forget", self.http.delete(url), &[StatusCode::NO_CONTENT]).await.map(drop)
    }

    /// Runs a garbage collection; returns the registry's report (service token).
    pub async fn collect_garbage(&self, dry_run: bool, grace: Option<u64>) -> Result<serde_json::Value, RegistryError> {
        let grace = grace.map_or_else(String::new, |secs| format!("&grace_secs={secs}"));
        let url = format!("{}/_skiff/gc?dry_run={dry_run}{grace}", self.base);
        let response = self.expect("gc", self.http.post(url), &[StatusCode::OK]).await?;
        response.json().await.map_err(|e| RegistryError::Invalid { what: "gc".into(), reason: e.to_string() })
    }

    /// Fetches a manifest: its media type, bytes and digest.
    pub async fn manifest(&self, repo: &str, reference: &str) -> Result<(String, Bytes), RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let request = self.http.get(url).header(reqwest::header::ACCEPT, manifest_types());
        let response = self.expect("manifest GET", request, &[StatusCode::OK]).await?;
        let media_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes =
            response.bytes().await.map_err(|source| RegistryError::Unreachable { url: self.base.clone(), source })?;
        Ok((media_type, bytes))
    }

    /// Pushes a manifest under a tag; returns the digest the registry reports.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let request = self.http.put(url).header(reqwest::header::CONTENT_TYPE, media_type).body(bytes);
        let response = self.expect("manifest PUT", request, &[StatusCode::CREATED]).await?;
        content_digest(&response, "manifest PUT")
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        }
    }
}

/// Every manifest type this client reads.
fn manifest_types() -> String {
    [
        crate::image::DOCKER_MANIFEST,
        crate::image::OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ]
    .join(", ")
}

/// The `Docker-Content-Digest` a registry answered with.
fn content_digest(response: &reqwest::Response, what: &str) -> Result<Digest, RegistryError> {
    response
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| RegistryError::Invalid { what: what.into(), reason: "no valid Docker-Content-Digest".into() })
}

fn location(response: &reqwest::Response) -> Option<String> {
    response.headers().get(reqwest::header::LOCATION)?.to_str().ok().map(str::to_owned)
}
