//! Skiff's blob storage: content-addressed blobs behind the [`BlobStore`] seam, used by the
//! registry (layers, configs, manifests) and later by the builder's caches.
//!
//! Layout:
//! - [`fs`]: the default backend, a directory on the local filesystem.
//! - [`s3`]: any S3-compatible engine, for a store several machines share.
//! - [`digest`]: hashing files and bytes into [`Digest`]s.
//! - [`staged`]: blobs being written, hashed as they arrive.
//! - [`records`]: small named values beside the blobs (a registry's tags and links).
//!
//! Writes are verified: a blob is stored under a digest only after its bytes hashed to it.

pub mod digest;
pub mod fs;
pub mod records;
pub mod s3;
pub mod staged;

use async_trait::async_trait;
use bytes::Bytes;
pub use skiff_api::{Digest, DigestAlgorithm};

pub use fs::FsBlobStore;
pub use records::{FsRecordStore, RecordStore};
pub use s3::{S3BlobStore, S3RecordStore};
pub use staged::Staged;

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bytes did not hash to the digest they were stored under.
    #[error("content does not match digest {expected} (it hashes to {actual})")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("storage i/o failed: {0}")]
    Io(#[from] std::io::Error),
    /// A store URL that says nothing usable.
    #[error("{0}")]
    Url(String),
}

/// A blob's bytes in pieces, as they are read.
pub type BlobBody = futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>;

/// A readable blob and its length in bytes.
pub struct BlobReader {
    pub size: u64,
    pub body: BlobBody,
    /// Where the same bytes lie in a local file, when they do: a server may have the
    /// kernel send them from there (`sendfile(2)`) instead of reading `body`.
    pub region: Option<FileRegion>,
}

/// Bytes `start..start + len` of an open file.
#[derive(Debug, Clone)]
pub struct FileRegion {
    pub file: std::sync::Arc<std::fs::File>,
    pub start: u64,
    pub len: u64,
}

/// Content-addressed blob storage. Every write verifies the digest; a blob is visible only
/// once complete; writing the same digest twice, even concurrently, is harmless.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// The size of a stored blob, or `None` when absent.
    async fn size(&self, digest: &Digest) -> Result<Option<u64>, StoreError>;

    /// Opens a stored blob for reading, or `None` when absent.
    async fn open(&self, digest: &Digest) -> Result<Option<BlobReader>, StoreError>;

    /// Opens bytes `start..end` of a stored blob (`end` within its size), or `None` when
    /// absent. [`BlobReader::size`] is the length of the range.
    async fn open_range(&self, digest: &Digest, start: u64, end: u64) -> Result<Option<BlobReader>, StoreError>;

    /// Reads a whole (small) blob into memory, or `None` when absent.
    async fn read(&self, digest: &Digest) -> Result<Option<Bytes>, StoreError>;

    /// Stores `bytes` under `digest`.
    ///
    /// # Errors
    /// [`StoreError::DigestMismatch`] when the bytes do not hash to `digest`.
    async fn put_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<(), StoreError>;

    /// Starts writing a blob whose content will be hashed with `algorithm`.
    ///
    /// # Errors
    /// When the staging file cannot be created.
    async fn stage(&self, algorithm: DigestAlgorithm) -> Result<Staged, StoreError>;

    /// Stores a staged blob under `digest`; the staged blob is consumed either way.
    ///
    /// # Errors
    /// [`StoreError::DigestMismatch`] when the content does not hash to `digest` (nothing
    /// is stored).
    async fn commit(&self, staged: Staged, digest: &Digest) -> Result<(), StoreError>;

    /// Every stored blob with the time it was last written.
    async fn list(&self) -> Result<Vec<(Digest, std::time::SystemTime)>, StoreError>;

    /// Removes a blob; removing an absent blob is not an error.
    async fn delete(&self, digest: &Digest) -> Result<(), StoreError>;
}
