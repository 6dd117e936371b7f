//! Repository metadata on the filesystem:
//! `<root>/<repo>/_manifests/<algorithm>/<hex>` holds a manifest's media type, and
//! `<root>/<repo>/_tags/<tag>` the digest a tag points at. The manifest bytes live in the
//! blob store. Files are replaced by rename, so readers see old or new, never half.

use std::path::{Path, PathBuf};

use skiff_api::Digest;

use crate::endpoint::RepoName;

/// Metadata of every repository, under one directory.
#[derive(Debug, Clone)]
pub struct Meta {
    root: PathBuf,
}

impl Meta {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn repo_dir(&self, repo: &RepoName) -> PathBuf {
        self.root.join(repo.as_str())
    }

    fn manifest_path(&self, repo: &RepoName, digest: &Digest) -> PathBuf {
        let algorithm = digest.as_str().split(':').next().unwrap_or("sha256");
        self.repo_dir(repo).join("_manifests").join(algorithm).join(digest.hex())
    }

    fn tag_path(&self, repo: &RepoName, tag: &str) -> PathBuf {
        self.repo_dir(repo).join("_tags").join(tag)
    }

    /// Links a manifest into a repository with its media type.
    pub async fn link_manifest(&self, repo: &RepoName, digest: &Digest, media_type: &str) -> std::io::Result<()> {
        write_atomic(&self.manifest_path(repo, digest), media_type.as_bytes()).await
    }

    /// The media type of a manifest linked into `repo`, or `None`.
    pub async fn manifest_type(&self, repo: &RepoName, digest: &Digest) -> std::io::Result<Option<String>> {
        read_optional(&self.manifest_path(repo, digest)).await
    }

    /// Removes a manifest link and every tag that points at it.
    pub async fn unlink_manifest(&self, repo: &RepoName, digest: &Digest) -> std::io::Result<bool> {
        let existed = remove_optional(&self.manifest_path(repo, digest)).await?;
        for tag in self.tags(repo).await?.unwrap_or_default() {
            if self.tag(repo, &tag).await?.as_ref() == Some(digest) {
                remove_optional(&self.tag_path(repo, &tag)).await?;
            }
        }
        Ok(existed)
    }

    fn blob_path(&self, repo: &RepoName, digest: &Digest) -> PathBuf {
        let algorithm = digest.as_str().split(':').next().unwrap_or("sha256");
        self.repo_dir(repo).join("_layers").join(algorithm).join(digest.hex())
    }

    /// Makes a stored blob readable through `repo`.
    pub async fn link_blob(&self, repo: &RepoName, digest: &Digest) -> std::io::Result<()> {
        write_atomic(&self.blob_path(repo, digest), b"").await
    }

    /// Whether `repo` may serve the blob.
    pub async fn has_blob(&self, repo: &RepoName, digest: &Digest) -> bool {
        tokio::fs::metadata(self.blob_path(repo, digest)).await.is_ok()
    }

    /// Removes a blob from `repo` (the bytes stay until garbage collection); `false` when
    /// it was not there.
    pub async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> std::io::Result<bool> {
        remove_optional(&self.blob_path(repo, digest)).await
    }

    fn referrers_dir(&self, repo: &RepoName, subject: &Digest) -> PathBuf {
        self.repo_dir(repo).join("_referrers").join(subject.as_str().replace(':', "-"))
    }

    /// Records that `manifest` (described by `descriptor`, JSON) refers to `subject`.
    pub async fn add_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        manifest: &Digest,
        descriptor: &[u8],
    ) -> std::io::Result<()> {
        let path = self.referrers_dir(repo, subject).join(manifest.as_str().replace(':', "-"));
        write_atomic(&path, descriptor).await
    }

    /// Forgets that `manifest` refers to `subject`.
    pub async fn remove_referrer(&self, repo: &RepoName, subject: &Digest, manifest: &Digest) -> std::io::Result<()> {
        remove_optional(&self.referrers_dir(repo, subject).join(manifest.as_str().replace(':', "-"))).await.map(drop)
    }

    /// The descriptors (JSON) of every manifest in `repo` that refers to `subject`.
    pub async fn referrers(&self, repo: &RepoName, subject: &Digest) -> std::io::Result<Vec<Vec<u8>>> {
        let mut found = Vec::new();
        let mut entries = match tokio::fs::read_dir(self.referrers_dir(repo, subject)).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            if !entry.file_name().to_string_lossy().starts_with('.') {
                names.push(entry.path());
            }
        }
        names.sort();
        for path in names {
            if let Some(bytes) = read_optional(&path).await? {
                found.push(bytes.into_bytes());
            }
        }
        Ok(found)
    }

    /// Points `tag` at `digest`.
    pub async fn set_tag(&self, repo: &RepoName, tag: &str, digest: &Digest) -> std::io::Result<()> {
        write_atomic(&self.tag_path(repo, tag), digest.as_str().as_bytes()).await
    }

    /// The digest a tag points at, or `None`.
    pub async fn tag(&self, repo: &RepoName, tag: &str) -> std::io::Result<Option<Digest>> {
        Ok(read_optional(&self.tag_path(repo, tag)).await?.and_then(|s| s.parse().ok()))
    }

    /// Removes a tag; `false` when it did not exist.
    pub async fn remove_tag(&self, repo: &RepoName, tag: &str) -> std::io::Result<bool> {
        remove_optional(&self.tag_path(repo, tag)).await
    }

    /// The repository's tags in byte order, or `None` when the repository is unknown.
    pub async fn tags(&self, repo: &RepoName) -> std::io::Result<Option<Vec<String>>> {
        if tokio::fs::metadata(self.repo_dir(repo)).await.is_err() {
            return Ok(None);
        }
        let mut tags = Vec::new();
        match tokio::fs::read_dir(self.repo_dir(repo).join("_tags")).await {
            Ok(mut entries) => {
                while let Some(entry) = entries.next_entry().await? {
                    if let Some(name) = entry.file_name().to_str().filter(|n| !n.starts_with('.')) {
                        tags.push(name.to_owned());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        tags.sort();
        Ok(Some(tags))
    }

    /// The manifests linked into a repository.
    pub async fn manifests(&self, repo: &RepoName) -> std::io::Result<Vec<Digest>> {
        Ok(linked(&self.repo_dir(repo).join("_manifests")).await?.into_iter().map(|(d, _)| d).collect())
    }

    /// The blobs linked into a repository, with when each link was made.
    pub async fn blob_links(&self, repo: &RepoName) -> std::io::Result<Vec<(Digest, std::time::SystemTime)>> {
        linked(&self.repo_dir(repo).join("_layers")).await
    }

    /// Forgets a repository: its manifests, tags, blob links and referrers.
    pub async fn remove_repository(&self, repo: &RepoName) -> std::io::Result<()> {
        for part in ["_manifests", "_tags", "_layers", "_referrers"] {
            match tokio::fs::remove_dir_all(self.repo_dir(repo).join(part)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Every repository holding at least one manifest or blob, sorted.
    pub async fn repositories(&self) -> std::io::Result<Vec<String>> {
        let mut found = Vec::new();
        let mut pending = vec![self.root.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
                continue;
            };
            while let Some(entry) = entries.next_entry().await? {
                let name = entry.file_name();
                if name == "_manifests" || name == "_layers" {
                    if let Ok(relative) = dir.strip_prefix(&self.root) {
                        found.push(relative.to_string_lossy().into_owned());
                    }
                } else if !name.to_string_lossy().starts_with('_') && entry.file_type().await?.is_dir() {
                    pending.push(entry.path());
                }
            }
        }
        found.sort();
        found.dedup();
        Ok(found)
    }
}

/// The digests under `<dir>/<algorithm>/<hex>`, with each file's modification time.
async fn linked(dir: &Path) -> std::io::Result<Vec<(Digest, std::time::SystemTime)>> {
    let mut found = Vec::new();
    for algorithm in ["sha256", "sha512"] {
        let mut entries = match tokio::fs::read_dir(dir.join(algorithm)).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        while let Some(entry) = entries.next_entry().await? {
            if let Ok(digest) = format!("{algorithm}:{}", entry.file_name().to_string_lossy()).parse() {
                found.push((digest, entry.metadata().await?.modified()?));
            }
        }
    }
    Ok(found)
}

async fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("metadata path has no parent"))?;
    tokio::fs::create_dir_all(dir).await?;
    let temp = dir.join(format!(".tmp-{:016x}", rand::random::<u64>()));
    tokio::fs::write(&temp, bytes).await?;
    tokio::fs::rename(&temp, path).await
}

async fn read_optional(path: &Path) -> std::io::Result<Option<String>> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

async fn remove_optional(path: &Path) -> std::io::Result<bool> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
