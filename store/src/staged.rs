//! Blobs being written: a local file and a running hash of everything appended, so a
//! finished upload is verified without reading it again.

use std::path::PathBuf;

use skiff_api::{Digest, DigestAlgorithm};
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};

use crate::digest::{self, Hasher};

/// Writes are gathered into buffers this large before they reach the file.
const WRITE_BUFFER: usize = 1 << 20;

/// A blob being written.
pub struct Staged {
    path: PathBuf,
    file: BufWriter<tokio::fs::File>,
    algorithm: DigestAlgorithm,
    /// `None` after the content was cut back: the hash is then recomputed from the file.
    hasher: Option<Hasher>,
    size: u64,
}

impl Staged {
    /// Starts an empty blob at `path`, hashing with `algorithm`.
    ///
    /// # Errors
    /// When the file cannot be created.
    pub async fn create(path: PathBuf, algorithm: DigestAlgorithm) -> std::io::Result<Self> {
        let file = tokio::fs::OpenOptions::new().create_new(true).read(true).write(true).open(&path).await?;
        Ok(Self {
            path,
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            algorithm,
            hasher: Some(Hasher::new(algorithm)),
            size: 0,
        })
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends bytes.
    ///
    /// # Errors
    /// When the file cannot be written (the blob should then be cut back or discarded).
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes).await?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(bytes);
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Cuts the blob back to its first `size` bytes (after a request body broke off).
    ///
    /// # Errors
    /// When the file cannot be truncated.
    pub async fn truncate(&mut self, size: u64) -> std::io::Result<()> {
        self.file.flush().await?;
        let file = self.file.get_mut();
        file.set_len(size).await?;
        file.seek(std::io::SeekFrom::Start(size)).await?;
        self.hasher = None;
        self.size = size;
        Ok(())
    }

    /// Removes the file.
    pub async fn discard(self) {
        drop(self.file);
        let _ = tokio::fs::remove_file(&self.path).await;
    }

    /// Flushes and syncs the file and checks that its content hashes to `digest`: its path,
    /// or a mismatch (and the file is removed).
    pub(crate) async fn verified(self, digest: &Digest) -> Result<PathBuf, crate::StoreError> {
        let (path, actual) = self.finish(digest.algorithm()).await?;
        if &actual == digest {
            Ok(path)
        } else {
            let _ = tokio::fs::remove_file(&path).await;
            Err(crate::StoreError::DigestMismatch { expected: digest.clone(), actual })
        }
    }

    /// Flushes and syncs the file; returns its path and the digest of its content in
    /// `algorithm` (from the running hash when it is still whole and of that algorithm).
    async fn finish(mut self, algorithm: DigestAlgorithm) -> std::io::Result<(PathBuf, Digest)> {
        self.file.flush().await?;
        self.file.get_ref().sync_all().await?;
        drop(self.file);
        let digest = match self.hasher {
            Some(hasher) if self.algorithm == algorithm => hasher.finish(),
            _ => digest::of_file(algorithm, &self.path).await?.0,
        };
        Ok((self.path, digest))
    }
}
