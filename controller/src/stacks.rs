//! Stacks: base images made from a root filesystem, since no image can be pulled from a
//! public registry. A tarball of the root filesystem (plain or gzip) becomes a one-layer
//! image `stacks/<name>:latest` in Skiff's registry.

use std::io::Read as _;

use skiff_api::StackName;
use skiff_registry_client::image::{Layer, push_image};
use skiff_registry_client::{RegistryClient, RegistryError};

use crate::scheduler::ContainerRuntime;

/// The environment every stack image starts with.
const STACK_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The registry repository of a stack.
pub fn repository(name: &StackName) -> String {
    format!("stacks/{name}")
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the upload is not a tar archive (plain or gzip)")]
    NotTar,
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Turns `archive` (a tar of a root filesystem, optionally gzip-compressed) into the
/// stack image; returns `stacks/<name>@<digest>`.
///
/// # Errors
/// When the archive is not a tar, or the registry refuses the image.
pub async fn import(registry: &RegistryClient, name: &StackName, archive: &[u8]) -> Result<String, ImportError> {
    let tar = if archive.starts_with(&[0x1f, 0x8b]) {
        let mut tar = Vec::with_capacity(archive.len() * 3);
        flate2::read::GzDecoder::new(archive).read_to_end(&mut tar).map_err(|_| ImportError::NotTar)?;
        tar
    } else {
        archive.to_vec()
    };
    // A ustar header carries "ustar" at offset 257.
    if tar.len() < 512 || &tar[257..262] != b"ustar" {
        return Err(ImportError::NotTar);
    }
    let repo = repository(name);
    let layer = Layer::from_tar(&tar);
    let digest = push_image(registry, &repo, "latest", None, layer, |config| {
        config["config"] = serde_json::json!({"Env": [STACK_PATH], "Cmd": ["/bin/sh"]});
    })
    .await?;
    Ok(format!("{repo}@{digest}"))
}

/// Has the engine hold stack `image` (`stacks/<name>@<digest>`, in the registry engines
/// reach at `registry_host`): pulled, and where the backend can, pause containers of it
/// started for the next apps, returning once the first waits. A failure is logged: an app
/// on the stack pulls it then.
pub async fn hold(runtime: &dyn ContainerRuntime, registry_host: &str, image: &str) {
    let reference = format!("{registry_host}/{image}");
    if let Err(error) = runtime.hold(&reference).await {
        tracing::info!(%error, image = %reference, "controller.stack.unpulled");
    }
}
