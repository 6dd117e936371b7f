//! Dockerfile builds on the Docker engine: the build context goes in as a tar, the engine's
//! output comes back line by line to the pusher, and the image is pushed to Skiff's
//! registry. The engine authenticates to Skiff's registry with the service token, so
//! `FROM <registry>/stacks/<name>` works.

use std::collections::HashMap;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptions, PushImageOptions};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::hook::Output;

/// Why the engine failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the Docker engine is unreachable: {0}")]
    Unreachable(bollard::errors::Error),
    #[error("docker build failed: {0}")]
    Build(String),
    #[error("pushing the built image failed: {0}")]
    Push(String),
}

/// The local Docker engine, with credentials for Skiff's registry.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    registry_host: String,
    credentials: DockerCredentials,
}

impl Engine {
    /// Connects to the local engine (lazily: nothing is sent until a build).
    ///
    /// # Errors
    /// When the engine's socket settings are unusable.
    pub fn connect(registry_host: &str, service_token: &str) -> Result<Self, EngineError> {
        let docker = Docker::connect_with_local_defaults().map_err(EngineError::Unreachable)?;
        let credentials = DockerCredentials {
            username: Some("skiff".into()),
            password: Some(service_token.into()),
            serveraddress: Some(registry_host.into()),
            ..Default::default()
        };
        Ok(Self { docker, registry_host: registry_host.to_owned(), credentials })
    }

    /// The registry host images are tagged with, e.g. `127.0.0.1:7701`.
    pub fn registry_host(&self) -> &str {
        &self.registry_host
    }

    /// Builds `context` (a tar with a Dockerfile at its root) as `tag`, streaming the
    /// engine's output to `out`.
    ///
    /// # Errors
    /// When the engine fails or the Dockerfile does.
    pub async fn build(
        &self,
        context: Vec<u8>,
        tag: &str,
        build_args: HashMap<String, String>,
        out: &mut Output,
    ) -> Result<(), EngineError> {
        let docker = self.docker.clone().negotiate_version().await.map_err(EngineError::Unreachable)?;
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(tag.to_owned()),
            rm: true,
            forcerm: true,
            buildargs: Some(build_args),
            ..Default::default()
        };
        let credentials = HashMap::from([(self.registry_host.clone(), self.credentials.clone())]);
        let mut stream = docker.build_image(options, Some(credentials), Some(bollard::body_full(Bytes::from(context))));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| EngineError::Build(e.to_string()))?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(EngineError::Build(error.trim().to_owned()));
            }
            if let Some(text) = info.stream {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    out.detail(line).await;
                }
            }
        }
        Ok(())
    }

    /// Pushes `repository:tag` (tagged with the registry host) to Skiff's registry.
    ///
    /// # Errors
    /// When the engine or the registry refuses.
    pub async fn push(&self, repository: &str, tag: &str) -> Result<(), EngineError> {
        let docker = self.docker.clone().negotiate_version().await.map_err(EngineError::Unreachable)?;
        let options = PushImageOptions { tag: Some(tag.to_owned()), ..Default::default() };
        let mut stream = docker.push_image(repository, Some(options), Some(self.credentials.clone()));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| EngineError::Push(e.to_string()))?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(EngineError::Push(error));
            }
        }
        Ok(())
    }
}
