//! The S3 backend, for any S3-compatible engine (Garage, Ceph RGW, MinIO, AWS S3), so
//! that several machines share one store: blobs are objects `blobs/<algorithm>/<first two
//! hex>/<hex>` in a bucket, and [`S3RecordStore`]'s records objects under their own prefix
//! in the same bucket.
//!
//! Writes are staged in a local file (hashed as the bytes arrive, like the filesystem
//! backend's) and uploaded only once verified, so an object only ever holds a complete,
//! verified blob; S3 makes an object visible only when its upload completes. Two writers
//! of one digest upload identical bytes.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore};
use skiff_api::{Digest, DigestAlgorithm};

use crate::records::checked;
use crate::{BlobReader, BlobStore, RecordStore, Staged, StoreError, digest};

/// Blobs in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    bucket: Arc<dyn ObjectStore>,
    /// Where writes are staged before they are uploaded.
    staging: PathBuf,
}

/// The parts of `s3://BUCKET?endpoint=URL&region=R&access_key_id=K&secret_access_key=S`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    bucket: String,
    options: Vec<(String, String)>,
}

fn parse_url(url: &str) -> Result<Location, StoreError> {
    let usage = "use s3://BUCKET?endpoint=http://HOST:PORT[&region=R]";
    let invalid = |what: String| StoreError::Url(format!("{what}; {usage}"));
    let rest = url.strip_prefix("s3://").ok_or_else(|| invalid(format!("`{url}` is not an s3:// URL")))?;
    let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
    let bucket = bucket.trim_end_matches('/');
    if bucket.is_empty() || bucket.contains('/') {
        return Err(invalid(format!("`{url}` names no bucket")));
    }
    let mut options = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| invalid(format!("`{pair}` is not KEY=VALUE")))?;
        match key {
            "endpoint" | "region" | "access_key_id" | "secret_access_key" => {
                options.push((key.to_owned(), value.to_owned()));
            }
            _ => return Err(invalid(format!("unknown S3 option `{key}`"))),
        }
    }
    Ok(Location { bucket: bucket.to_owned(), options })
}

fn remote(error: object_store::Error) -> StoreError {
    StoreError::Io(std::io::Error::other(error))
}

fn key(digest: &Digest) -> Path {
    let algorithm = digest.as_str().split(':').next().unwrap_or("sha256");
    let hex = digest.hex();
    Path::from(format!("blobs/{algorithm}/{}/{hex}", &hex[..2]))
}

impl S3BlobStore {
    /// Opens the bucket `url` names (`s3://BUCKET?endpoint=…`; credentials and region from
    /// the URL or the usual `AWS_*` variables), staging writes under `staging`. Staged
    /// files a previous run left behind are removed.
    ///
    /// # Errors
    /// When the URL is not understood, the bucket cannot be reached, or the staging
    /// directory cannot be prepared.
    pub async fn open(url: &str, staging: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let location = parse_url(url)?;
        let mut builder =
            AmazonS3Builder::from_env().with_bucket_name(&location.bucket).with_virtual_hosted_style_request(false);
        if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
            builder = builder.with_region("us-east-1");
        }
        for (key, value) in &location.options {
            builder = match key.as_str() {
                "endpoint" => builder.with_endpoint(value).with_allow_http(value.starts_with("http://")),
                "region" => builder.with_region(value),
                "access_key_id" => builder.with_access_key_id(value),
                _ => builder.with_secret_access_key(value),
            };
        }
        let bucket = builder.build().map_err(remote)?;
        // Reach the bucket now, so that a wrong endpoint, bucket or key fails at start.
        match bucket.head(&Path::from("blobs/.probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(remote(error)),
        }
        let staging = staging.into();
        let _ = tokio::fs::remove_dir_all(&staging).await;
        tokio::fs::create_dir_all(&staging).await?;
        Ok(Self { bucket: Arc::new(bucket), staging })
    }

    /// Records in the same bucket, as objects under `prefix/`.
    pub fn records(&self, prefix: &str) -> S3RecordStore {
        S3RecordStore { bucket: self.bucket.clone(), prefix: prefix.to_owned() }
    }

    fn temp_path(&self) -> PathBuf {
        self.staging.join(format!("staged-{:032x}", rand::random::<u128>()))
    }

    /// Uploads a verified local file as the blob `digest`, then removes the file.
    async fn upload(&self, digest: &Digest, file: &std::path::Path) -> Result<(), StoreError> {
        let mut source = tokio::fs::File::open(file).await?;
        let mut sink = object_store::buffered::BufWriter::new(self.bucket.clone(), key(digest));
        let copied = tokio::io::copy(&mut source, &mut sink).await;
        let finished = match copied {
            Ok(_) => tokio::io::AsyncWriteExt::shutdown(&mut sink).await,
            Err(error) => {
                let _ = sink.abort().await;
                Err(error)
            }
        };
        let _ = tokio::fs::remove_file(file).await;
        Ok(finished?)
    }

    async fn get(&self, digest: &Digest, options: GetOptions) -> Result<Option<object_store::GetResult>, StoreError> {
        match self.bucket.get_opts(&key(digest), options).await {
            Ok(result) => Ok(Some(result)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(remote(error)),
        }
    }
}

fn reader(result: object_store::GetResult) -> BlobReader {
    let size = result.range.end - result.range.start;
    BlobReader { size, body: result.into_stream().map_err(std::io::Error::other).boxed(), region: None }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match self.bucket.head(&key(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(remote(error)),
        }
    }

    async fn open(&self, digest: &Digest) -> Result<Option<BlobReader>, StoreError> {
        Ok(self.get(digest, GetOptions::default()).await?.map(reader))
    }

    async fn open_range(&self, digest: &Digest, start: u64, end: u64) -> Result<Option<BlobReader>, StoreError> {
        if start >= end {
            // An empty range is no request S3 can answer; its bytes are known.
            return Ok(self.size(digest).await?.map(|_| BlobReader {
                size: 0,
                body: futures_util::stream::empty().boxed(),
                region: None,
            }));
        }
        let options = GetOptions { range: Some((start..end).into()), ..GetOptions::default() };
        Ok(self.get(digest, options).await?.map(reader))
    }

    async fn read(&self, digest: &Digest) -> Result<Option<Bytes>, StoreError> {
        match self.get(digest, GetOptions::default()).await? {
            Some(result) => Ok(Some(result.bytes().await.map_err(remote)?)),
            None => Ok(None),
        }
    }

    async fn put_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<(), StoreError> {
        let actual = digest::of_bytes(digest.algorithm(), &bytes);
        if &actual != digest {
            return Err(StoreError::DigestMismatch { expected: digest.clone(), actual });
        }
        self.bucket.put(&key(digest), bytes.into()).await.map_err(remote)?;
        Ok(())
    }

    async fn stage(&self, algorithm: DigestAlgorithm) -> Result<Staged, StoreError> {
        Ok(Staged::create(self.temp_path(), algorithm).await?)
    }

    async fn commit(&self, staged: Staged, digest: &Digest) -> Result<(), StoreError> {
        let path = staged.verified(digest).await?;
        self.upload(digest, &path).await
    }

    async fn list(&self) -> Result<Vec<(Digest, std::time::SystemTime)>, StoreError> {
        let mut listing = self.bucket.list(Some(&Path::from("blobs")));
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(remote)?;
            let mut parts = meta.location.parts();
            let (_, Some(algorithm), _, Some(hex)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if let Ok(digest) = format!("{}:{}", algorithm.as_ref(), hex.as_ref()).parse() {
                found.push((digest, meta.last_modified.into()));
            }
        }
        Ok(found)
    }

    async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        match self.bucket.delete(&key(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(remote(error)),
        }
    }
}

/// Records as objects under a prefix of a bucket (see [`S3BlobStore::records`]).
#[derive(Debug, Clone)]
pub struct S3RecordStore {
    bucket: Arc<dyn ObjectStore>,
    prefix: String,
}

impl S3RecordStore {
    fn key(&self, name: &str) -> std::io::Result<Path> {
        Ok(Path::from(format!("{}/{}", self.prefix, checked(name)?)))
    }
}

fn io_error(error: object_store::Error) -> std::io::Error {
    std::io::Error::other(error)
}

#[async_trait]
impl RecordStore for S3RecordStore {
    async fn put(&self, name: &str, value: Bytes) -> std::io::Result<()> {
        // S3 replaces an object whole: readers get the old value or the new.
        self.bucket.put(&self.key(name)?, value.into()).await.map_err(io_error)?;
        Ok(())
    }

    async fn get(&self, name: &str) -> std::io::Result<Option<Bytes>> {
        match self.bucket.get(&self.key(name)?).await {
            Ok(result) => Ok(Some(result.bytes().await.map_err(io_error)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(io_error(error)),
        }
    }

    async fn delete(&self, name: &str) -> std::io::Result<bool> {
        let key = self.key(name)?;
        // S3 deletes a missing object without a word: ask first.
        match self.bucket.head(&key).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(error) => return Err(io_error(error)),
        }
        match self.bucket.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(error) => Err(io_error(error)),
        }
    }

    async fn list(&self, prefix: &str) -> std::io::Result<Vec<(String, std::time::SystemTime)>> {
        let top = if prefix.is_empty() { Path::from(self.prefix.as_str()) } else { self.key(prefix)? };
        let below = top.parts().count();
        let mut listing = self.bucket.list(Some(&top));
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(io_error)?;
            let name: Vec<_> = meta.location.parts().skip(below).collect();
            let name = name.iter().map(AsRef::as_ref).collect::<Vec<&str>>().join("/");
            found.push((name, meta.last_modified.into()));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_a_bucket_and_options() {
        let location = parse_url("s3://skiff-blobs?endpoint=http://127.0.0.1:9000&region=garage").unwrap();
        assert_eq!(location.bucket, "skiff-blobs");
        assert_eq!(location.options[0], ("endpoint".into(), "http://127.0.0.1:9000".into()));
        for bad in ["file:///tmp", "s3://", "s3://a/b", "s3://a?nope=1", "s3://a?endpoint"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blobs_are_keyed_by_algorithm_and_hex() {
        let digest = digest::sha256(b"hello");
        assert_eq!(key(&digest).as_ref(), format!("blobs/sha256/{}/{}", &digest.hex()[..2], digest.hex()));
    }
}
