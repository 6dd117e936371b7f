//! The filesystem backend: `<root>/blobs/<algorithm>/<first two hex>/<hex>`.
//!
//! A write goes to a unique temporary file under `<root>/tmp`, is fsynced, then renamed
//! into place, so a reader never sees a partial blob and a crash leaves only temporary
//! files behind. Two writers of the same digest both rename complete, identical files.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use skiff_api::{Digest, DigestAlgorithm};
use tokio::io::AsyncWriteExt;

use crate::{BlobReader, BlobStore, FileRegion, Staged, StoreError, digest};

/// Blobs in a directory of the local filesystem.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) a store rooted at `root`. Temporary files a previous run
    /// left behind (uploads it never finished) are removed: no upload outlives the process.
    ///
    /// # Errors
    /// When the directories cannot be created or emptied.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        tokio::fs::create_dir_all(root.join("blobs")).await?;
        let _ = tokio::fs::remove_dir_all(root.join("tmp")).await;
        tokio::fs::create_dir_all(root.join("tmp")).await?;
        Ok(Self { root })
    }

    /// A store another process (a running registry) is using, for reading: nothing is
    /// created or removed.
    pub fn in_use(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path_of(&self, digest: &Digest) -> PathBuf {
        let algorithm = digest.as_str().split(':').next().unwrap_or("sha256");
        let hex = digest.hex();
        self.root.join("blobs").join(algorithm).join(&hex[..2]).join(hex)
    }

    fn temp_path(&self) -> PathBuf {
        // On the same filesystem as the blobs, so a rename moves a staged blob in.
        self.root.join("tmp").join(format!("staged-{:032x}", rand::random::<u128>()))
    }

    async fn place(&self, digest: &Digest, temp: &Path) -> Result<(), StoreError> {
        let target = self.path_of(digest);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(temp, &target).await?;
        Ok(())
    }
}

/// Blobs are read in pieces this large (the buffer is used again once a piece is sent).
const PIECE: usize = 1 << 20;

impl FsBlobStore {
    /// Bytes `start..end` of a blob (to its end without `end`), or `None` when absent.
    async fn open_part(&self, digest: &Digest, start: u64, end: Option<u64>) -> Result<Option<BlobReader>, StoreError> {
        use futures_util::StreamExt as _;
        use std::io::Seek as _;
        use tokio::io::AsyncReadExt as _;
        let file = match tokio::fs::File::open(self.path_of(digest)).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // Opening is the one step that may wait on the disk; the length, the second
        // descriptor and the position are asked of the open file directly.
        let mut file = file.into_std().await;
        let end = match end {
            Some(end) => end,
            None => file.metadata()?.len(),
        };
        let size = end.saturating_sub(start);
        let region = FileRegion { file: std::sync::Arc::new(file.try_clone()?), start, len: size };
        file.seek(std::io::SeekFrom::Start(start))?;
        let body =
            tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file).take(size), PIECE).boxed();
        Ok(Some(BlobReader { size, body, region: Some(region) }))
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match tokio::fs::metadata(self.path_of(digest)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn open(&self, digest: &Digest) -> Result<Option<BlobReader>, StoreError> {
        self.open_part(digest, 0, None).await
    }

    async fn open_range(&self, digest: &Digest, start: u64, end: u64) -> Result<Option<BlobReader>, StoreError> {
        self.open_part(digest, start, Some(end)).await
    }

    async fn read(&self, digest: &Digest) -> Result<Option<Bytes>, StoreError> {
        match tokio::fs::read(self.path_of(digest)).await {
            Ok(bytes) => Ok(Some(bytes.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn put_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<(), StoreError> {
        let actual = digest::of_bytes(digest.algorithm(), &bytes);
        if &actual != digest {
            return Err(StoreError::DigestMismatch { expected: digest.clone(), actual });
        }
        let temp = self.temp_path();
        let mut file = tokio::fs::File::create(&temp).await?;
        file.write_all(&bytes).await?;
        file.sync_all().await?;
        drop(file);
        self.place(digest, &temp).await
    }

    async fn stage(&self, algorithm: DigestAlgorithm) -> Result<Staged, StoreError> {
        Ok(Staged::create(self.temp_path(), algorithm).await?)
    }

    async fn commit(&self, staged: Staged, digest: &Digest) -> Result<(), StoreError> {
        let path = staged.verified(digest).await?;
        self.place(digest, &path).await
    }

    async fn list(&self) -> Result<Vec<(Digest, std::time::SystemTime)>, StoreError> {
        let mut found = Vec::new();
        for algorithm in ["sha256", "sha512"] {
            let Ok(mut prefixes) = tokio::fs::read_dir(self.root.join("blobs").join(algorithm)).await else { continue };
            while let Some(prefix) = prefixes.next_entry().await? {
                let mut blobs = tokio::fs::read_dir(prefix.path()).await?;
                while let Some(blob) = blobs.next_entry().await? {
                    let name = format!("{algorithm}:{}", blob.file_name().to_string_lossy());
                    if let Ok(digest) = name.parse() {
                        found.push((digest, blob.metadata().await?.modified()?));
                    }
                }
            }
        }
        Ok(found)
    }

    async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path_of(digest)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reopening_removes_unfinished_uploads_and_keeps_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).await.unwrap();
        let digest = digest::sha256(b"kept");
        store.put_bytes(&digest, Bytes::from_static(b"kept")).await.unwrap();
        let mut abandoned = store.stage(DigestAlgorithm::Sha256).await.unwrap();
        abandoned.write(Bytes::from_static(b"half an upload")).await.unwrap();
        std::mem::forget(abandoned);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 1);
        let store = FsBlobStore::open(dir.path()).await.unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(store.read(&digest).await.unwrap().unwrap(), "kept");
    }

    async fn collected(body: crate::BlobBody) -> std::io::Result<Vec<u8>> {
        use futures_util::TryStreamExt as _;
        body.try_fold(Vec::new(), |mut bytes, piece| async move {
            bytes.extend_from_slice(&piece);
            Ok(bytes)
        })
        .await
    }

    #[tokio::test]
    async fn blobs_and_ranges_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).await.unwrap();
        let content: Vec<u8> = (0..(5 * PIECE / 2) as u32).map(|i| (i % 253) as u8).collect();
        let digest = digest::sha256(&content);
        store.put_bytes(&digest, Bytes::from(content.clone())).await.unwrap();

        let whole = store.open(&digest).await.unwrap().unwrap();
        assert_eq!(whole.size, content.len() as u64);
        assert_eq!(collected(whole.body).await.unwrap(), content);
        let (start, end) = (PIECE - 1, 2 * PIECE + 1);
        let range = store.open_range(&digest, start as u64, end as u64).await.unwrap().unwrap();
        assert_eq!(range.size, (end - start) as u64);
        assert_eq!(collected(range.body).await.unwrap(), content[start..end]);
        // The same bytes where a server would have the kernel send them from.
        let region = range.region.unwrap();
        let mut sent = vec![0; usize::try_from(region.len).unwrap()];
        std::os::unix::fs::FileExt::read_exact_at(&*region.file, &mut sent, region.start).unwrap();
        assert_eq!(sent, content[start..end]);
        assert!(store.open(&digest::sha256(b"absent")).await.unwrap().is_none());
    }
}
