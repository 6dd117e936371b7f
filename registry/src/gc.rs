//! Garbage collection, online: mark every blob that a manifest linked in any repository
//! refers to, and every blob younger than a grace period (an upload whose manifest is not
//! pushed yet, a blob just mounted); sweep the rest from the store. Blobs being uploaded
//! are staged outside the store and never at risk. One collection runs at a time; a
//! collection cut short is simply run again.
//!
//! What stays is decided by the controller beforehand: it unlinks the manifests of
//! releases it no longer keeps ([`retain`]) and forgets destroyed apps' repositories.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use skiff_api::Digest;
use skiff_store::BlobStore;

use crate::endpoint::RepoName;
use crate::meta::Meta;
use crate::oci::Document;

/// What a collection removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub deleted: Vec<Digest>,
    pub bytes: u64,
    pub kept: usize,
}

/// The digests a stored manifest's bytes refer to: config, layers, manifests of an index,
/// subject (see [`Document::references`]).
pub fn references(manifest: &[u8]) -> Vec<Digest> {
    Document::read(manifest)
        .map_or_else(Vec::new, |document| document.references().map(|r| r.digest().clone()).collect())
}

/// Unlinks every manifest of `repo` but `keep` (and the tags pointing at them).
///
/// # Errors
/// When the metadata cannot be read or written.
pub async fn retain(meta: &Meta, repo: &RepoName, keep: &HashSet<Digest>) -> std::io::Result<usize> {
    let mut unlinked = 0;
    for manifest in meta.manifests(repo).await? {
        if !keep.contains(&manifest) {
            meta.unlink_manifest(repo, &manifest).await?;
            unlinked += 1;
        }
    }
    Ok(unlinked)
}

/// Marks and sweeps.
///
/// # Errors
/// When the metadata or the store fails; what was swept so far stays swept.
pub async fn collect(
    meta: &Meta,
    store: &dyn BlobStore,
    grace: Duration,
    dry_run: bool,
) -> Result<Report, skiff_store::StoreError> {
    let now = SystemTime::now();
    let young = |at: SystemTime| now.duration_since(at).unwrap_or_default() < grace;
    let mut marked: HashSet<Digest> = HashSet::new();
    let repositories: Vec<RepoName> = meta.repositories().await?.iter().filter_map(|r| RepoName::parse(r)).collect();
    for repo in &repositories {
        for manifest in meta.manifests(repo).await? {
            if let Some(bytes) = store.read(&manifest).await? {
                marked.extend(references(&bytes));
            }
            marked.insert(manifest);
        }
        for (blob, linked_at) in meta.blob_links(repo).await? {
            if young(linked_at) {
                marked.insert(blob);
            }
        }
    }
    let mut report = Report { dry_run, ..Default::default() };
    for (blob, written_at) in store.list().await? {
        if marked.contains(&blob) || young(written_at) {
            report.kept += 1;
            continue;
        }
        report.bytes += store.size(&blob).await?.unwrap_or(0);
        if !dry_run {
            store.delete(&blob).await?;
        }
        report.deleted.push(blob);
    }
    if !dry_run {
        // Records of upload sessions idle past their limit point at bytes long discarded.
        meta.forget_uploads_before(now - crate::upload::IDLE_LIMIT).await?;
        // Links to swept blobs would answer "exists" for bytes that are gone.
        let deleted: HashSet<&Digest> = report.deleted.iter().collect();
        for repo in &repositories {
            for (blob, _) in meta.blob_links(repo).await? {
                if deleted.contains(&blob) {
                    meta.unlink_blob(repo, &blob).await?;
                }
            }
        }
    }
    report.deleted.sort();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_and_indexes_name_what_they_use() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let manifest = format!(r#"{{"config":{{"digest":"{a}"}},"layers":[{{"digest":"{b}"}}]}}"#);
        let found: Vec<String> = references(manifest.as_bytes()).iter().map(|d| d.to_string()).collect();
        assert_eq!(found, [a.clone(), b]);
        let index = format!(r#"{{"manifests":[{{"digest":"{a}"}}]}}"#);
        assert_eq!(references(index.as_bytes()).len(), 1);
        assert!(references(b"not json").is_empty());
    }
}
