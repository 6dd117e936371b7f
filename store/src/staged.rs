//! Blobs being written: a local file and a running hash of everything appended, so a
//! finished upload is verified without reading it again.
//!
//! The bytes a request body arrives in are handed to the file as they are (no copy into a
//! buffer of our own), a batch at a time on the blocking pool while the next batch is
//! received and hashed. Every [`WRITEBACK_EVERY`] bytes a sync is started in the
//! background, so that the disk writes while the upload goes on and the sync that makes a
//! finished blob durable waits only for its tail.

use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use skiff_api::{Digest, DigestAlgorithm};
use tokio::task::JoinHandle;

use crate::digest::{self, Hasher};

/// Received bytes are handed to the file in batches at least this large.
const WRITE_BATCH: usize = 1 << 20;
/// Bytes handed to the file after which a background sync is started.
const WRITEBACK_EVERY: u64 = 16 << 20;

/// Work on the file running on the blocking pool.
type FileJob = JoinHandle<std::io::Result<()>>;

/// A blob being written.
pub struct Staged {
    path: PathBuf,
    file: Arc<std::fs::File>,
    /// Received bytes not yet handed to the file, and how many there are.
    gathered: Vec<Bytes>,
    gathered_len: usize,
    /// The write of the batch handed over last.
    writing: Option<FileJob>,
    /// The background sync started last, and how many bytes had been handed over then.
    syncing: Option<FileJob>,
    synced_at: u64,
    algorithm: DigestAlgorithm,
    /// `None` after the content was cut back: the hash is then recomputed from the file.
    hasher: Option<Hasher>,
    size: u64,
}

/// Waits for a job on the file, if one runs; a job that panicked is an I/O error. The job
/// stays in `job` until it has finished, so that a request dropped meanwhile leaves it to
/// be waited for by the next.
async fn finished(job: &mut Option<FileJob>) -> std::io::Result<()> {
    let Some(running) = job else { return Ok(()) };
    let result = running.await;
    *job = None;
    result.map_err(std::io::Error::other)?
}

/// Writes `batch` to `file` from `offset` on.
fn write_batch(file: &std::fs::File, batch: &[Bytes], mut offset: u64) -> std::io::Result<()> {
    for bytes in batch {
        file.write_all_at(bytes, offset)?;
        offset += bytes.len() as u64;
    }
    Ok(())
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
            file: Arc::new(file.into_std().await),
            gathered: Vec::new(),
            gathered_len: 0,
            writing: None,
            syncing: None,
            synced_at: 0,
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
    pub async fn write(&mut self, bytes: Bytes) -> std::io::Result<()> {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&bytes);
        }
        self.size += bytes.len() as u64;
        self.gathered_len += bytes.len();
        self.gathered.push(bytes);
        if self.gathered_len >= WRITE_BATCH {
            self.hand_over().await?;
        }
        Ok(())
    }

    /// Starts `job` on the file on the blocking pool.
    fn start(&self, job: impl FnOnce(&std::fs::File) -> std::io::Result<()> + Send + 'static) -> FileJob {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || job(&file))
    }

    /// Hands the gathered bytes to the file (once the previous batch is written), and
    /// starts a background sync when enough was written since the last one finished.
    async fn hand_over(&mut self) -> std::io::Result<()> {
        finished(&mut self.writing).await?;
        let offset = self.size - self.gathered_len as u64;
        let batch = std::mem::take(&mut self.gathered);
        self.gathered_len = 0;
        self.writing = Some(self.start(move |file| write_batch(file, &batch, offset)));
        if offset - self.synced_at >= WRITEBACK_EVERY && self.syncing.as_ref().is_none_or(JoinHandle::is_finished) {
            finished(&mut self.syncing).await?;
            self.syncing = Some(self.start(std::fs::File::sync_data));
            self.synced_at = offset;
        }
        Ok(())
    }

    /// Writes everything received to the file and waits for the background work on it.
    async fn settle(&mut self) -> std::io::Result<()> {
        if !self.gathered.is_empty() {
            self.hand_over().await?;
        }
        finished(&mut self.writing).await?;
        finished(&mut self.syncing).await
    }

    /// Cuts the blob back to its first `size` bytes (after a request body broke off).
    ///
    /// # Errors
    /// When the file cannot be truncated.
    pub async fn truncate(&mut self, size: u64) -> std::io::Result<()> {
        self.settle().await?;
        finished(&mut Some(self.start(move |file| file.set_len(size)))).await?;
        self.hasher = None;
        self.size = size;
        self.synced_at = self.synced_at.min(size);
        Ok(())
    }

    /// Removes the file.
    pub async fn discard(mut self) {
        let _ = self.settle().await;
        let _ = tokio::fs::remove_file(&self.path).await;
    }

    /// Writes and syncs the file and checks that its content hashes to `digest`: its path,
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

    /// Writes and syncs the file; returns its path and the digest of its content in
    /// `algorithm` (from the running hash when it is still whole and of that algorithm).
    async fn finish(mut self, algorithm: DigestAlgorithm) -> std::io::Result<(PathBuf, Digest)> {
        self.settle().await?;
        finished(&mut Some(self.start(std::fs::File::sync_all))).await?;
        let digest = match self.hasher {
            Some(hasher) if self.algorithm == algorithm => hasher.finish(),
            _ => digest::of_file(algorithm, &self.path).await?.0,
        };
        Ok((self.path, digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request dropped while its bytes wait for the previous batch's write (its client
    /// went away) leaves the blob whole: what it had received is kept, in place.
    #[tokio::test]
    async fn a_write_dropped_midway_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut staged = Staged::create(dir.path().join("blob"), DigestAlgorithm::Sha256).await.unwrap();
        let parts: Vec<Bytes> = (0..4u8).map(|i| Bytes::from(vec![i; WRITE_BATCH])).collect();
        staged.write(parts[0].clone()).await.unwrap();
        for part in &parts[1..3] {
            // Polled once, then dropped: it is waiting for the batch before it.
            let _ = tokio::time::timeout(std::time::Duration::ZERO, staged.write(part.clone())).await;
        }
        staged.write(parts[3].clone()).await.unwrap();
        let whole = parts.concat();
        let path = staged.verified(&digest::of_bytes(DigestAlgorithm::Sha256, &whole)).await.unwrap();
        assert_eq!(std::fs::read(path).unwrap(), whole);
    }
}
