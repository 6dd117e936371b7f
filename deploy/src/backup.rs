//! `skiffd backup` and `skiffd restore`: the platform's state copied out to a directory or
//! an S3 bucket, and brought back onto an empty data directory (or database).
//!
//! A snapshot holds the controller's database (an online copy of SQLite's file, or a
//! logical dump of Postgres: `skiff_controller::db::dump`), the files that give the platform
//! its identity (service token, platform id, the local CA, the builder's host key) and the
//! registry: its records (repositories' tags and links) and blobs when they live in the data
//! directory, or only the name of the store they live in (blobs are referenced, not copied,
//! out of a store that outlives the machine). The database is read first: every image a
//! release in it names was pushed before the release was made, so the registry, copied
//! after, holds it.
//!
//! At the target, under `snapshots/<id>/`: `database`, `files/…`, `registry/…`, and last
//! `manifest.json`, which names every part with its digest; a snapshot without one is
//! unfinished and never restored. Blobs go to the target's own blob store, shared by its
//! snapshots, so each is copied once. A restore checks every part against its digest
//! before anything is put in place: a damaged backup changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use skiff_controller::db::Db;
use skiff_controller::db::dump::{Backend, Dump};
use skiff_store::{BlobStore, Digest, FsBlobStore, FsRecordStore, RecordStore, S3BlobStore};
use tokio_util::sync::CancellationToken;

use crate::Settings;

/// The layout of snapshots this code writes and reads.
const FORMAT: u32 = 1;

/// Files of the data directory that make the platform itself: without them a restored
/// platform would name its containers differently, and clients would distrust its
/// certificates and the builder's host key.
const IDENTITY_FILES: &[&str] =
    &["service-token", "platform-id", "router/ca.crt", "router/ca.key", "builder/ssh_host_ed25519_key"];

/// Where the registry keeps its records in a data directory.
const REGISTRY_RECORDS: &str = "registry/repositories";

/// What a snapshot holds, each part with its digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub taken_at: String,
    pub skiff_version: String,
    pub database: DatabasePart,
    /// Paths in the data directory.
    pub files: BTreeMap<String, Digest>,
    /// The registry's records, by name.
    pub registry: BTreeMap<String, Digest>,
    pub images: Images,
}

/// The database in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabasePart {
    pub backend: Backend,
    pub schema_version: i64,
    pub digest: Digest,
    pub bytes: u64,
}

/// Where a snapshot's images are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kept", rename_all = "snake_case")]
pub enum Images {
    /// Copied into the target's blob store.
    Copied { blobs: Vec<Digest> },
    /// Left in the registry's own store (named without credentials).
    InStore { store: String },
}

impl Images {
    fn copied(&self) -> &[Digest] {
        match self {
            Self::Copied { blobs } => blobs,
            Self::InStore { .. } => &[],
        }
    }
}

impl std::fmt::Display for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let database = &self.database;
        write!(
            f,
            "snapshot {} (taken {} by Skiff {}): {:?} database at schema {} ({} bytes), {} platform files, {} registry records, ",
            self.id,
            self.taken_at,
            self.skiff_version,
            database.backend,
            database.schema_version,
            database.bytes,
            self.files.len(),
            self.registry.len()
        )?;
        match &self.images {
            Images::Copied { blobs } => write!(f, "{} image blobs", blobs.len()),
            Images::InStore { store } => write!(f, "images left in {store}"),
        }
    }
}

/// A backup target: records and blobs in a directory or a bucket.
struct Target {
    records: Arc<dyn RecordStore>,
    blobs: Arc<dyn BlobStore>,
    /// Where an S3 target stages what it uploads.
    _staging: tempfile::TempDir,
}

impl Target {
    async fn open(url: &str) -> anyhow::Result<Self> {
        let staging = tempfile::tempdir().context("cannot make a staging directory")?;
        if url.starts_with("s3://") {
            let store = S3BlobStore::open(url, staging.path().join("uploads"))
                .await
                .with_context(|| format!("cannot use {}", without_credentials(url)))?;
            return Ok(Self { records: Arc::new(store.records("backups")), blobs: Arc::new(store), _staging: staging });
        }
        anyhow::ensure!(!url.contains("://"), "`{url}` is neither a directory nor an s3:// URL");
        let dir = PathBuf::from(url);
        let blobs = FsBlobStore::open(&dir).await.with_context(|| format!("cannot use {}", dir.display()))?;
        Ok(Self { records: Arc::new(FsRecordStore::new(&dir)), blobs: Arc::new(blobs), _staging: staging })
    }

    /// Writes a record; returns its digest.
    async fn put(&self, name: &str, bytes: Vec<u8>) -> anyhow::Result<Digest> {
        let digest = skiff_store::digest::sha256(&bytes);
        self.records.put(name, Bytes::from(bytes)).await.with_context(|| format!("cannot write {name}"))?;
        Ok(digest)
    }

    /// Reads a record and checks it against its digest.
    async fn checked(&self, name: &str, digest: &Digest) -> anyhow::Result<Bytes> {
        let bytes = self.records.get(name).await.with_context(|| format!("cannot read {name}"))?;
        let bytes = bytes.with_context(|| format!("the backup is damaged: {name} is missing"))?;
        let actual = skiff_store::digest::sha256(&bytes);
        anyhow::ensure!(
            &actual == digest,
            "the backup is damaged: {name} does not match its digest ({} bytes hash to {actual}, not {digest})",
            bytes.len()
        );
        Ok(bytes)
    }

    /// Complete snapshots, oldest first, and unfinished ones.
    async fn snapshots(&self) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let names = self.records.list("snapshots").await.context("cannot list the snapshots")?;
        let mut ids: BTreeMap<String, bool> = BTreeMap::new();
        for (name, _) in names {
            if let Some((id, rest)) = name.split_once('/') {
                *ids.entry(id.to_owned()).or_default() |= rest == "manifest.json";
            }
        }
        let (complete, unfinished): (Vec<_>, Vec<_>) = ids.into_iter().partition(|(_, complete)| *complete);
        Ok((complete.into_iter().map(|(id, _)| id).collect(), unfinished.into_iter().map(|(id, _)| id).collect()))
    }

    async fn manifest(&self, id: &str) -> anyhow::Result<Manifest> {
        let name = format!("snapshots/{id}/manifest.json");
        let bytes = self.records.get(&name).await.with_context(|| format!("cannot read {name}"))?;
        let bytes = bytes.with_context(|| format!("there is no snapshot {id}"))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("the backup is damaged: snapshot {id}'s manifest does not read"))?;
        anyhow::ensure!(
            manifest.format == FORMAT,
            "snapshot {id} is in format {}, which this skiffd does not read (it reads {FORMAT})",
            manifest.format
        );
        Ok(manifest)
    }

    /// Removes every record of a snapshot, its manifest first (so that a removal cut short
    /// leaves an unfinished snapshot, never a complete one with parts missing).
    async fn remove(&self, id: &str) -> anyhow::Result<()> {
        let _ = self.records.delete(&format!("snapshots/{id}/manifest.json")).await;
        for (name, _) in self.records.list(&format!("snapshots/{id}")).await? {
            self.records.delete(&format!("snapshots/{id}/{name}")).await?;
        }
        Ok(())
    }
}

/// An S3 URL as it may be shown: bucket and endpoint, no keys.
fn without_credentials(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let endpoint = query.split('&').find(|pair| pair.starts_with("endpoint="));
    endpoint.map_or_else(|| base.to_owned(), |endpoint| format!("{base}?{endpoint}"))
}

/// Copies one blob between stores (the receiving one checks its digest); nothing when the
/// blob is there already or has gone from the source since it was listed.
async fn copy_blob(from: &dyn BlobStore, to: &dyn BlobStore, digest: &Digest) -> anyhow::Result<bool> {
    let Some(mut reader) = from.open(digest).await? else { return Ok(false) };
    if to.size(digest).await? == Some(reader.size) {
        return Ok(false);
    }
    let mut staged = to.stage(digest.algorithm()).await?;
    while let Some(piece) = reader.body.next().await {
        staged.write(piece?).await?;
    }
    to.commit(staged, digest).await?;
    Ok(true)
}

/// A snapshot id: when it was taken, to the millisecond (so that ids sort by age), and a
/// random tail.
fn snapshot_id(taken_at: &str) -> String {
    let digits: String = taken_at.chars().filter(char::is_ascii_digit).chain(std::iter::repeat('0')).take(17).collect();
    format!("{}T{}.{}Z-{:04x}", &digits[..8], &digits[8..14], &digits[14..], rand::random::<u16>())
}

/// Takes a snapshot of the platform `settings` describe into `to`, then keeps the newest
/// `settings.backup_keep` snapshots there (all when 0).
///
/// # Errors
/// When the database, data directory or target cannot be read or written.
pub async fn backup(settings: &Settings, to: &str) -> anyhow::Result<Manifest> {
    let data_dir = settings.data_dir();
    if !to.contains("://") {
        let (target, data) = (std::path::absolute(to)?, std::path::absolute(&data_dir)?);
        anyhow::ensure!(!target.starts_with(&data), "back up to a directory outside the data directory");
    }
    let target = Target::open(to).await?;
    let taken_at = skiff_controller::db::now();
    let id = snapshot_id(&taken_at);
    let prefix = format!("snapshots/{id}");

    let url = settings.database_url(&data_dir);
    anyhow::ensure!(
        settings.database_url.is_some() || data_dir.join("skiff.db").is_file(),
        "there is no Skiff database in {} (set SKIFF_DATA_DIR or SKIFF_DATABASE_URL)",
        data_dir.display()
    );
    let db = Db::open(&url).await.context("cannot open the database")?;
    let scratch = tempfile::tempdir_in(&data_dir).context("cannot make a scratch directory in the data directory")?;
    let Dump { backend, schema_version, bytes } = db.dump(scratch.path()).await.context("cannot copy the database")?;
    let size = bytes.len() as u64;
    let digest = target.put(&format!("{prefix}/database"), bytes).await?;
    let database = DatabasePart { backend, schema_version, digest, bytes: size };

    let mut files = BTreeMap::new();
    for name in IDENTITY_FILES {
        if let Ok(bytes) = tokio::fs::read(data_dir.join(name)).await {
            files.insert((*name).to_owned(), target.put(&format!("{prefix}/files/{name}"), bytes).await?);
        }
    }

    let mut registry = BTreeMap::new();
    let images = match &settings.store_url {
        Some(store) => Images::InStore { store: without_credentials(store) },
        None => {
            let records = FsRecordStore::new(data_dir.join(REGISTRY_RECORDS));
            for (name, _) in records.list("").await.context("cannot list the registry's records")? {
                if let Some(value) = records.get(&name).await? {
                    registry
                        .insert(name.clone(), target.put(&format!("{prefix}/registry/{name}"), value.to_vec()).await?);
                }
            }
            let blobs = FsBlobStore::in_use(data_dir.join("store"));
            let mut copied = Vec::new();
            for (digest, _) in blobs.list().await.context("cannot list the registry's blobs")? {
                copy_blob(&blobs, target.blobs.as_ref(), &digest)
                    .await
                    .with_context(|| format!("cannot copy blob {digest}"))?;
                copied.push(digest);
            }
            Images::Copied { blobs: copied }
        }
    };

    let manifest = Manifest {
        format: FORMAT,
        id: id.clone(),
        taken_at,
        skiff_version: env!("CARGO_PKG_VERSION").to_owned(),
        database,
        files,
        registry,
        images,
    };
    let json = serde_json::to_vec_pretty(&manifest)?;
    target.put(&format!("{prefix}/manifest.json"), json).await?;
    prune(&target, settings.backup_keep).await.context("the snapshot was taken, but older ones were not pruned")?;
    Ok(manifest)
}

/// Keeps the newest `keep` complete snapshots (all when 0), removes unfinished ones older
/// than the newest complete one, and the blobs only removed snapshots held.
async fn prune(target: &Target, keep: usize) -> anyhow::Result<()> {
    let (complete, unfinished) = target.snapshots().await?;
    let newest = complete.last().cloned().unwrap_or_default();
    let cut = if keep == 0 { 0 } else { complete.len().saturating_sub(keep) };
    let (removed, kept) = complete.split_at(cut);
    let mut orphans = BTreeSet::new();
    for id in removed {
        if let Ok(manifest) = target.manifest(id).await {
            orphans.extend(manifest.images.copied().iter().cloned());
        }
        target.remove(id).await?;
    }
    for id in unfinished.iter().filter(|id| **id < newest) {
        target.remove(id).await?;
    }
    if orphans.is_empty() {
        return Ok(());
    }
    for id in kept {
        for digest in target.manifest(id).await?.images.copied() {
            orphans.remove(digest);
        }
    }
    for digest in orphans {
        target.blobs.delete(&digest).await?;
    }
    Ok(())
}

/// The snapshots at `from`, oldest first.
///
/// # Errors
/// When the target cannot be read.
pub async fn list(from: &str) -> anyhow::Result<Vec<Manifest>> {
    let target = Target::open(from).await?;
    let mut manifests = Vec::new();
    for id in target.snapshots().await?.0 {
        match target.manifest(&id).await {
            Ok(manifest) => manifests.push(manifest),
            // Pruned since it was listed (by a backup running now).
            Err(_) if target.records.get(&format!("snapshots/{id}/manifest.json")).await?.is_none() => {}
            Err(error) => return Err(error),
        }
    }
    Ok(manifests)
}

/// Brings back snapshot `snapshot` (the newest when `None`) from `from` onto the empty data
/// directory (and database) `settings` describe. Every part is checked before anything is
/// put in place; a restore that fails leaves the data directory empty and the database
/// untouched.
///
/// # Errors
/// When the data directory or database is not empty, the backup is damaged or does not fit
/// the settings.
pub async fn restore(settings: &Settings, from: &str, snapshot: Option<&str>) -> anyhow::Result<Manifest> {
    if !from.contains("://") {
        anyhow::ensure!(Path::new(from).is_dir(), "there is no backup at {from}");
    }
    let data_dir = settings.data_dir();
    if let Ok(mut entries) = std::fs::read_dir(&data_dir) {
        anyhow::ensure!(
            entries.next().is_none(),
            "{} is not empty: restore onto an empty data directory (a new one, or move this one away first)",
            data_dir.display()
        );
    }
    let target = Target::open(from).await?;
    let id = match snapshot {
        Some(id) => id.to_owned(),
        None => target.snapshots().await?.0.pop().with_context(|| format!("there is no snapshot at {from}"))?,
    };
    let manifest = target.manifest(&id).await?;
    let url = settings.database_url(&data_dir);
    let backend = Backend::of_url(&url);
    anyhow::ensure!(
        manifest.database.backend == backend,
        "snapshot {id} holds a {:?} database, but this platform is set to use {backend:?} (SKIFF_DATABASE_URL)",
        manifest.database.backend
    );
    anyhow::ensure!(
        backend == Backend::Postgres || settings.database_url.is_none(),
        "restore a SQLite database into the data directory's own skiff.db (leave SKIFF_DATABASE_URL unset)"
    );
    if let (Images::InStore { store }, None) = (&manifest.images, &settings.store_url) {
        anyhow::bail!("snapshot {id}'s images are in {store}: set SKIFF_STORE_URL to that store");
    }

    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".restoring-")
        .tempdir_in(&data_dir)
        .context("cannot stage the restore in the data directory")?;
    let restored = stage(&target, &manifest, staging.path(), &url).await;
    if restored.is_ok() {
        let mut entries = tokio::fs::read_dir(staging.path()).await?;
        while let Some(entry) = entries.next_entry().await? {
            tokio::fs::rename(entry.path(), data_dir.join(entry.file_name())).await?;
        }
    }
    staging.close()?;
    restored.map(|()| manifest)
}

/// Writes a snapshot's parts under `staging`, each checked; loads a Postgres dump last.
async fn stage(target: &Target, manifest: &Manifest, staging: &Path, url: &str) -> anyhow::Result<()> {
    let prefix = format!("snapshots/{}", manifest.id);
    for (name, digest) in &manifest.files {
        let bytes = target.checked(&format!("{prefix}/files/{name}"), digest).await?;
        write_private(&staging.join(name), &bytes).await?;
    }
    for (name, digest) in &manifest.registry {
        let bytes = target.checked(&format!("{prefix}/registry/{name}"), digest).await?;
        write_private(&staging.join(REGISTRY_RECORDS).join(name), &bytes).await?;
    }
    if let Images::Copied { blobs } = &manifest.images {
        let store = FsBlobStore::open(staging.join("store")).await?;
        for digest in blobs {
            anyhow::ensure!(
                copy_blob(target.blobs.as_ref(), &store, digest)
                    .await
                    .with_context(|| format!("the backup is damaged: image blob {digest} does not read"))?,
                "the backup is damaged: image blob {digest} is missing"
            );
        }
    }
    let database = &manifest.database;
    let bytes = target.checked(&format!("{prefix}/database"), &database.digest).await?;
    let dump = Dump { backend: database.backend, schema_version: database.schema_version, bytes: bytes.to_vec() };
    match dump.backend {
        Backend::Sqlite => {
            let file = staging.join("skiff.db");
            write_private(&file, &dump.bytes).await?;
            skiff_controller::db::dump::check_sqlite(&file).await.context("the backup's database cannot be used")?;
        }
        Backend::Postgres => Db::load_postgres(url, &dump).await.context("cannot load the database")?,
    }
    Ok(())
}

/// Writes a file only its owner reads (keys, tokens, the database), making its directory.
async fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
        .with_context(|| format!("cannot write {}", path.display()))?;
    tokio::io::AsyncWriteExt::write_all(&mut file, bytes).await?;
    file.sync_all().await?;
    Ok(())
}

/// Takes a snapshot into `settings.backup_to` every `settings.backup_interval` seconds
/// until `shutdown`. A failed snapshot is logged and tried again at the next turn.
pub async fn every_interval(settings: Settings, shutdown: CancellationToken) -> Result<(), std::convert::Infallible> {
    let Some(to) = settings.backup_to.clone() else { return Ok(()) };
    let period = Duration::from_secs(settings.backup_interval.max(1));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(period) => {}
        }
        match backup(&settings, &to).await {
            Ok(manifest) => tracing::info!(snapshot = %manifest.id, to = %without_credentials(&to), "skiffd.backup"),
            Err(error) => tracing::error!(error = format!("{error:#}"), "skiffd.backup_failed"),
        }
    }
}
