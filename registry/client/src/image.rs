//! Docker v2 schema 2 images: manifests, gzip layers, and assembling an image as a base
//! image's layers plus one new layer.
//!
//! The Docker engine checks `config.rootfs.diff_ids` against the *uncompressed* layers,
//! while manifest descriptors name the blobs as stored (gzip). Both are computed here.

use std::io::Write as _;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use skiff_api::{Digest, DigestAlgorithm};

use crate::{RegistryClient, RegistryError};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The sha256 digest of some bytes.
pub fn sha256(bytes: &[u8]) -> Digest {
    Digest::from_hash(DigestAlgorithm::Sha256, &Sha256::digest(bytes))
}

/// A content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// An image manifest (Docker v2 schema 2 or OCI; the shapes agree).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A layer ready to push: the gzip blob and the digest of the uncompressed tar.
#[derive(Debug, Clone)]
pub struct Layer {
    pub blob: Bytes,
    pub digest: Digest,
    pub diff_id: Digest,
}

impl Layer {
    /// Compresses a tar archive into a layer (fast gzip: layers are pushed over loopback).
    pub fn from_tar(tar: &[u8]) -> Self {
        let diff_id = sha256(tar);
        let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(tar.len() / 2), flate2::Compression::fast());
        // Writing into a Vec cannot fail.
        encoder.write_all(tar).expect("gzip into memory");
        let blob = Bytes::from(encoder.finish().expect("gzip into memory"));
        Self { digest: sha256(&blob), diff_id, blob }
    }
}

/// An image already in the registry that a new one builds on.
#[derive(Debug, Clone)]
pub struct BaseImage {
    pub repo: String,
    pub manifest: Manifest,
    pub config: serde_json::Value,
}

impl BaseImage {
    /// Fetches an image manifest and its config.
    ///
    /// # Errors
    /// When the registry fails, or the reference names something other than an image
    /// manifest (an index, say).
    pub async fn fetch(client: &RegistryClient, repo: &str, reference: &str) -> Result<Self, RegistryError> {
        let (media_type, bytes) = client.manifest(repo, reference).await?;
        let invalid = |reason: String| RegistryError::Invalid { what: format!("manifest {repo}:{reference}"), reason };
        if media_type != DOCKER_MANIFEST && media_type != OCI_MANIFEST {
            return Err(invalid(format!("expected an image manifest, got {media_type}")));
        }
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        let config_bytes = client.blob(repo, &manifest.config.digest).await?;
        let config = serde_json::from_slice(&config_bytes).map_err(|e| invalid(format!("config: {e}")))?;
        Ok(Self { repo: repo.to_owned(), manifest, config })
    }
}

/// A config for an image without a base.
pub fn empty_config() -> serde_json::Value {
    serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    })
}

/// Pushes `base`'s layers (mounted, not re-uploaded) plus `layer` as a new image in `repo`
/// tagged `tag`, with the config `configure` shapes. Returns the manifest digest.
///
/// # Errors
/// When the registry refuses a blob or the manifest.
pub async fn push_image(
    client: &RegistryClient,
    repo: &str,
    tag: &str,
    base: Option<&BaseImage>,
    layer: Layer,
    configure: impl FnOnce(&mut serde_json::Value),
) -> Result<Digest, RegistryError> {
    let mut layers = Vec::new();
    let mut config = match base {
        Some(base) => {
            for descriptor in &base.manifest.layers {
                if !client.mount(repo, &descriptor.digest, &base.repo).await? {
                    let blob = client.blob(&base.repo, &descriptor.digest).await?;
                    client.push_blob(repo, &descriptor.digest, blob).await?;
                }
                layers.push(descriptor.clone());
            }
            base.config.clone()
        }
        None => empty_config(),
    };
    layers.push(Descriptor {
        media_type: DOCKER_LAYER_GZIP.to_owned(),
        digest: layer.digest.clone(),
        size: layer.blob.len() as u64,
    });
    client.push_blob(repo, &layer.digest, layer.blob).await?;

    if let Some(diff_ids) = config.pointer_mut("/rootfs/diff_ids").and_then(|v| v.as_array_mut()) {
        diff_ids.push(serde_json::Value::String(layer.diff_id.to_string()));
    }
    if let Some(history) = config.get_mut("history").and_then(|v| v.as_array_mut()) {
        history.push(serde_json::json!({"created_by": "skiff"}));
    }
    configure(&mut config);
    let config_bytes = Bytes::from(serde_json::to_vec(&config).expect("JSON values serialize"));
    let config_digest = sha256(&config_bytes);
    let config_size = config_bytes.len() as u64;
    client.push_blob(repo, &config_digest, config_bytes).await?;

    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(DOCKER_MANIFEST.to_owned()),
        config: Descriptor { media_type: DOCKER_CONFIG.to_owned(), digest: config_digest, size: config_size },
        layers,
    };
    let bytes = Bytes::from(serde_json::to_vec(&manifest).expect("manifests serialize"));
    client.put_manifest(repo, tag, DOCKER_MANIFEST, bytes).await
}
