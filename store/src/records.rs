//! Records: small named values kept beside the blobs, in the same medium (a registry's
//! tags and links), so that several registries on one S3 bucket see the same
//! repositories. A record's name is a `/`-separated path; the filesystem backend keeps
//! `<root>/<name>`, the S3 one an object `<prefix>/<name>`.
//!
//! A record is replaced whole: a reader sees the old value or the new, never part of one.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

/// Small named values.
#[async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// Writes (or replaces) the record `name`.
    async fn put(&self, name: &str, value: Bytes) -> io::Result<()>;

    /// The record's value, or `None` when there is none.
    async fn get(&self, name: &str) -> io::Result<Option<Bytes>>;

    /// Removes a record; `false` when there was none.
    async fn delete(&self, name: &str) -> io::Result<bool>;

    /// Every record under `prefix/`, each as its name below the prefix and when it was
    /// written, in no particular order.
    async fn list(&self, prefix: &str) -> io::Result<Vec<(String, SystemTime)>>;
}

/// Refuses names that are empty, absolute, or that step out of their root (`..`, `.`,
/// empty segments) or collide with temporary files (a segment starting with `.`).
pub(crate) fn checked(name: &str) -> io::Result<&str> {
    if name.split('/').any(|segment| segment.is_empty() || segment.starts_with('.')) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("`{name}` is not a record name")));
    }
    Ok(name)
}

/// Records as files under a directory of the local filesystem.
#[derive(Debug, Clone)]
pub struct FsRecordStore {
    root: PathBuf,
}

impl FsRecordStore {
    /// Records under `root` (created as they are written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        Ok(self.root.join(checked(name)?))
    }
}

#[async_trait]
impl RecordStore for FsRecordStore {
    async fn put(&self, name: &str, value: Bytes) -> io::Result<()> {
        let path = self.path(name)?;
        let dir = path.parent().expect("a record's path has its root above it");
        tokio::fs::create_dir_all(dir).await?;
        // Renamed into place, so readers see the old file or the new one.
        let temp = dir.join(format!(".tmp-{:016x}", rand::random::<u64>()));
        tokio::fs::write(&temp, &value).await?;
        tokio::fs::rename(&temp, &path).await
    }

    async fn get(&self, name: &str) -> io::Result<Option<Bytes>> {
        match tokio::fs::read(self.path(name)?).await {
            Ok(bytes) => Ok(Some(bytes.into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, name: &str) -> io::Result<bool> {
        let path = self.path(name)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        // Directories the record leaves empty go too, as they would not exist on S3.
        let mut dir = path.parent();
        while let Some(parent) = dir.filter(|parent| *parent != self.root) {
            if tokio::fs::remove_dir(parent).await.is_err() {
                break;
            }
            dir = parent.parent();
        }
        Ok(true)
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<(String, SystemTime)>> {
        let top = if prefix.is_empty() { self.root.clone() } else { self.path(prefix)? };
        let mut found = Vec::new();
        let mut pending = vec![top.clone()];
        while let Some(dir) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            while let Some(entry) = entries.next_entry().await? {
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let file_type = entry.file_type().await?;
                if file_type.is_dir() {
                    pending.push(entry.path());
                } else if let Some(name) = relative_name(&top, &entry.path()) {
                    match entry.metadata().await {
                        Ok(metadata) => found.push((name, metadata.modified()?)),
                        // Deleted since its directory was read.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(found)
    }
}

/// `path` below `top`, with `/` between its segments.
fn relative_name(top: &Path, path: &Path) -> Option<String> {
    let segments: Option<Vec<&str>> = path.strip_prefix(top).ok()?.iter().map(|s| s.to_str()).collect();
    Some(segments?.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_leave_their_root() {
        for bad in ["", "/etc/passwd", "a//b", "a/../../b", "..", "a/./b", "a/.tmp-1", "a/"] {
            assert!(checked(bad).is_err(), "{bad}");
        }
        assert!(checked("shop/web/_tags/v1.0").is_ok());
    }
}
