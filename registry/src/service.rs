//! The registry as a service: what it needs to run, and [`run`].

use std::path::PathBuf;
use std::sync::Arc;

use skiff_service::https::HttpsListener;
use skiff_store::{BlobStore, FsBlobStore, FsRecordStore, RecordStore, S3BlobStore, StoreError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::ControllerAuthorizer;
use crate::http::{Config, Registry, serve};

/// Where blobs and repository records live.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Files under a directory (`store/` for blobs, `registry/repositories/` for records).
    Files(PathBuf),
    /// An S3 bucket (`s3://BUCKET?endpoint=…`), with uploads staged in a local directory;
    /// records live in the bucket, so that every registry on it sees the same repositories.
    S3 { url: String, staging: PathBuf },
}

/// Everything the registry needs to run.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub registry: Config,
    pub storage: Storage,
    /// The controller, which decides what users may pull and push.
    pub controller_url: String,
}

/// Why the registry stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot use the store (SKIFF_STORE_URL): {0}")]
    Store(#[from] StoreError),
    #[error("the server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// Opens the store and serves on `listener` (and over HTTPS on `https`) until `shutdown`.
///
/// # Errors
/// When the store cannot be used or the server fails.
pub async fn run(
    config: ServiceConfig,
    listener: TcpListener,
    https: Option<HttpsListener>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let (store, records): (Arc<dyn BlobStore>, Arc<dyn RecordStore>) = match &config.storage {
        Storage::Files(dir) => (
            Arc::new(FsBlobStore::open(dir.join("store")).await?),
            Arc::new(FsRecordStore::new(dir.join("registry/repositories"))),
        ),
        Storage::S3 { url, staging } => {
            let store = S3BlobStore::open(url, staging).await?;
            let records = store.records("repositories");
            (Arc::new(store), Arc::new(records))
        }
    };
    let token = config.registry.service_token.clone();
    let authorizer = ControllerAuthorizer::new(&config.controller_url, &token);
    let registry = Registry::new(config.registry, store, records, Arc::new(authorizer));
    serve(listener, https, registry, shutdown).await?;
    Ok(())
}
