//! Repository metadata, as records beside the blobs ([`RecordStore`]):
//! `<repo>/_manifests/<algorithm>/<hex>` holds a manifest's media type,
//! `<repo>/_tags/<tag>` the digest a tag points at, `<repo>/_layers/<algorithm>/<hex>`
//! links a blob into the repository, and `<repo>/_referrers/<subject>/<manifest>` holds
//! the descriptor of a manifest that refers to `subject`; `_uploads/<id>` names the registry
//! holding an upload session's bytes. The manifest bytes live in the blob store. With the
//! S3 store the records share its bucket, so every registry on it sees the same
//! repositories and finds where each upload is staged.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use skiff_api::Digest;
use skiff_store::RecordStore;

use crate::endpoint::RepoName;

/// The kinds of record a repository holds, each under `<repo>/<part>/`.
const PARTS: [&str; 4] = ["_manifests", "_tags", "_layers", "_referrers"];

/// Metadata of every repository.
#[derive(Clone)]
pub struct Meta {
    records: Arc<dyn RecordStore>,
}

/// `<algorithm>/<hex>`: where a digest's record goes under a part.
fn digest_name(digest: &Digest) -> String {
    let algorithm = digest.as_str().split(':').next().unwrap_or("sha256");
    format!("{algorithm}/{}", digest.hex())
}

impl Meta {
    pub fn new(records: Arc<dyn RecordStore>) -> Self {
        Self { records }
    }

    fn manifest_name(repo: &RepoName, digest: &Digest) -> String {
        format!("{}/_manifests/{}", repo.as_str(), digest_name(digest))
    }

    fn tag_name(repo: &RepoName, tag: &str) -> String {
        format!("{}/_tags/{tag}", repo.as_str())
    }

    fn blob_name(repo: &RepoName, digest: &Digest) -> String {
        format!("{}/_layers/{}", repo.as_str(), digest_name(digest))
    }

    fn referrers_prefix(repo: &RepoName, subject: &Digest) -> String {
        format!("{}/_referrers/{}", repo.as_str(), subject.as_str().replace(':', "-"))
    }

    fn referrer_name(repo: &RepoName, subject: &Digest, manifest: &Digest) -> String {
        format!("{}/{}", Self::referrers_prefix(repo, subject), manifest.as_str().replace(':', "-"))
    }

    async fn text(&self, name: &str) -> std::io::Result<Option<String>> {
        Ok(self.records.get(name).await?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Links a manifest into a repository with its media type.
    pub async fn link_manifest(&self, repo: &RepoName, digest: &Digest, media_type: &str) -> std::io::Result<()> {
        self.records.put(&Self::manifest_name(repo, digest), Bytes::copy_from_slice(media_type.as_bytes())).await
    }

    /// The media type of a manifest linked into `repo`, or `None`.
    pub async fn manifest_type(&self, repo: &RepoName, digest: &Digest) -> std::io::Result<Option<String>> {
        self.text(&Self::manifest_name(repo, digest)).await
    }

    /// Removes a manifest link and every tag that points at it.
    pub async fn unlink_manifest(&self, repo: &RepoName, digest: &Digest) -> std::io::Result<bool> {
        let existed = self.records.delete(&Self::manifest_name(repo, digest)).await?;
        for tag in self.tag_names(repo).await? {
            if self.tag(repo, &tag).await?.as_ref() == Some(digest) {
                self.records.delete(&Self::tag_name(repo, &tag)).await?;
            }
        }
        Ok(existed)
    }

    /// Makes a stored blob readable through `repo`.
    pub async fn link_blob(&self, repo: &RepoName, digest: &Digest) -> std::io::Result<()> {
        self.records.put(&Self::blob_name(repo, digest), Bytes::new()).await
    }

    /// Whether `repo` may serve the blob.
    pub async fn has_blob(&self, repo: &RepoName, digest: &Digest) -> std::io::Result<bool> {
        Ok(self.records.get(&Self::blob_name(repo, digest)).await?.is_some())
    }

    /// Removes a blob from `repo` (the bytes stay until garbage collection); `false` when
    /// it was not there.
    pub async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> std::io::Result<bool> {
        self.records.delete(&Self::blob_name(repo, digest)).await
    }

    /// Records that `manifest` (described by `descriptor`, JSON) refers to `subject`.
    pub async fn add_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        manifest: &Digest,
        descriptor: &[u8],
    ) -> std::io::Result<()> {
        let name = Self::referrer_name(repo, subject, manifest);
        self.records.put(&name, Bytes::copy_from_slice(descriptor)).await
    }

    /// Forgets that `manifest` refers to `subject`.
    pub async fn remove_referrer(&self, repo: &RepoName, subject: &Digest, manifest: &Digest) -> std::io::Result<()> {
        self.records.delete(&Self::referrer_name(repo, subject, manifest)).await.map(drop)
    }

    /// The descriptors (JSON) of every manifest in `repo` that refers to `subject`, in
    /// the order of the referring manifests' digests.
    pub async fn referrers(&self, repo: &RepoName, subject: &Digest) -> std::io::Result<Vec<Vec<u8>>> {
        let prefix = Self::referrers_prefix(repo, subject);
        let mut names: Vec<String> = self.records.list(&prefix).await?.into_iter().map(|(name, _)| name).collect();
        names.sort();
        let mut found = Vec::new();
        for name in names {
            if let Some(bytes) = self.records.get(&format!("{prefix}/{name}")).await? {
                found.push(bytes.to_vec());
            }
        }
        Ok(found)
    }

    /// Points `tag` at `digest`.
    pub async fn set_tag(&self, repo: &RepoName, tag: &str, digest: &Digest) -> std::io::Result<()> {
        self.records.put(&Self::tag_name(repo, tag), Bytes::copy_from_slice(digest.as_str().as_bytes())).await
    }

    /// The digest a tag points at, or `None`.
    pub async fn tag(&self, repo: &RepoName, tag: &str) -> std::io::Result<Option<Digest>> {
        Ok(self.text(&Self::tag_name(repo, tag)).await?.and_then(|s| s.parse().ok()))
    }

    /// Removes a tag; `false` when it did not exist.
    pub async fn remove_tag(&self, repo: &RepoName, tag: &str) -> std::io::Result<bool> {
        self.records.delete(&Self::tag_name(repo, tag)).await
    }

    async fn tag_names(&self, repo: &RepoName) -> std::io::Result<Vec<String>> {
        let listed = self.records.list(&format!("{}/_tags", repo.as_str())).await?;
        Ok(listed.into_iter().map(|(name, _)| name).collect())
    }

    /// The repository's tags in byte order, or `None` when the repository is unknown (it
    /// holds no manifest, blob or tag).
    pub async fn tags(&self, repo: &RepoName) -> std::io::Result<Option<Vec<String>>> {
        let mut tags = self.tag_names(repo).await?;
        if tags.is_empty() && self.manifests(repo).await?.is_empty() && self.blob_links(repo).await?.is_empty() {
            return Ok(None);
        }
        tags.sort();
        Ok(Some(tags))
    }

    /// The manifests linked into a repository.
    pub async fn manifests(&self, repo: &RepoName) -> std::io::Result<Vec<Digest>> {
        Ok(self.linked(repo, "_manifests").await?.into_iter().map(|(d, _)| d).collect())
    }

    /// The blobs linked into a repository, with when each link was made.
    pub async fn blob_links(&self, repo: &RepoName) -> std::io::Result<Vec<(Digest, SystemTime)>> {
        self.linked(repo, "_layers").await
    }

    /// The digests recorded under `<repo>/<part>/<algorithm>/<hex>`, each with when it
    /// was written.
    async fn linked(&self, repo: &RepoName, part: &str) -> std::io::Result<Vec<(Digest, SystemTime)>> {
        let listed = self.records.list(&format!("{}/{part}", repo.as_str())).await?;
        Ok(listed.into_iter().filter_map(|(name, at)| Some((name.replacen('/', ":", 1).parse().ok()?, at))).collect())
    }

    /// Forgets a repository: its manifests, tags, blob links and referrers.
    pub async fn remove_repository(&self, repo: &RepoName) -> std::io::Result<()> {
        for part in PARTS {
            let prefix = format!("{}/{part}", repo.as_str());
            for (name, _) in self.records.list(&prefix).await? {
                self.records.delete(&format!("{prefix}/{name}")).await?;
            }
        }
        Ok(())
    }

    fn upload_name(id: &str) -> String {
        format!("_uploads/{id}")
    }

    /// Records that the upload session `id` is held by the registry at `owner`.
    pub async fn record_upload(&self, id: &str, owner: &str) -> std::io::Result<()> {
        self.records.put(&Self::upload_name(id), Bytes::copy_from_slice(owner.as_bytes())).await
    }

    /// The registry holding the upload session `id`, if one recorded it.
    pub async fn upload_owner(&self, id: &str) -> std::io::Result<Option<String>> {
        self.text(&Self::upload_name(id)).await
    }

    /// Forgets where the upload session `id` is held.
    pub async fn forget_upload(&self, id: &str) -> std::io::Result<()> {
        self.records.delete(&Self::upload_name(id)).await.map(drop)
    }

    /// Forgets upload sessions recorded before `cutoff` (their registries have abandoned
    /// them, or were stopped).
    pub async fn forget_uploads_before(&self, cutoff: SystemTime) -> std::io::Result<()> {
        for (id, recorded) in self.records.list("_uploads").await? {
            if recorded < cutoff {
                self.forget_upload(&id).await?;
            }
        }
        Ok(())
    }

    /// Every repository holding at least one manifest or blob, sorted.
    pub async fn repositories(&self) -> std::io::Result<Vec<String>> {
        let mut found: Vec<String> = self
            .records
            .list("")
            .await?
            .into_iter()
            .filter_map(|(name, _)| {
                // A repository's name never has a segment starting with `_`; its records do.
                let (repo, rest) = name.split_once("/_")?;
                (rest.starts_with("manifests/") || rest.starts_with("layers/")).then(|| repo.to_owned())
            })
            .collect();
        found.sort();
        found.dedup();
        Ok(found)
    }
}
