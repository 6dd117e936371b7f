//! Dockerfile builds on the Docker engine: the build context goes in as a tar, the engine's
//! output comes back line by line to the pusher, and the image is pushed to Skiff's
//! registry. The engine authenticates to Skiff's registry with the service token, so
//! `FROM <registry>/stacks/<name>` works.

use std::collections::HashMap;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions,
    PushImageOptions, RemoveContainerOptions,
};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use crate::hook::Output;

/// Labels build containers with the app they build.
pub const BUILD_LABEL: &str = "skiff.build";

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

/// How a Dockerfile build fetches its base images from Skiff's registry: with a token that
/// may pull only what the pusher may, and, when every base image is in Skiff's registry,
/// always from the registry (so an image the engine already holds is not taken on trust).
#[derive(Debug, Clone)]
pub struct BasePulls {
    pub token: String,
    pub always: bool,
}

/// The local Docker engine, with credentials for Skiff's registry.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    registry_host: String,
    credentials: DockerCredentials,
}

/// A throwaway container of a build: `command` (run by `sh -c`) in `image`, pulled from
/// Skiff's registry, with `binds` (`host:container[:ro]`) mounted and `env` set.
pub struct BuildContainer<'a> {
    /// The app it builds (its label, for cleaning up after an abandoned build).
    pub app: &'a str,
    pub image: &'a str,
    pub binds: Vec<String>,
    pub env: Vec<String>,
    pub command: &'a str,
}

impl Engine {
    /// Whether the engine answers.
    ///
    /// # Errors
    /// The engine's error.
    pub async fn ping(&self) -> Result<(), bollard::errors::Error> {
        self.docker.ping().await.map(drop)
    }

    /// Connects to the local engine (lazily: nothing is sent until a build).
    ///
    /// # Errors
    /// When the engine's socket settings are unusable.
    pub fn connect(registry_host: &str, service_token: &str) -> Result<Self, EngineError> {
        let docker = skiff_service::docker::local().map_err(EngineError::Unreachable)?;
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
        pulls: &BasePulls,
        out: &mut Output,
    ) -> Result<(), EngineError> {
        let docker = self.docker.clone().negotiate_version().await.map_err(EngineError::Unreachable)?;
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(tag.to_owned()),
            rm: true,
            forcerm: true,
            buildargs: Some(build_args),
            pull: pulls.always.then(|| "true".to_owned()),
            ..Default::default()
        };
        let as_pusher = DockerCredentials {
            registrytoken: Some(pulls.token.clone()),
            serveraddress: Some(self.registry_host.clone()),
            ..Default::default()
        };
        let credentials = HashMap::from([(self.registry_host.clone(), as_pusher)]);
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

    /// Runs a throwaway build container, streaming its output to `out` (its standard
    /// output to `keep` instead, when given); returns its exit status. The container is
    /// removed afterwards.
    ///
    /// # Errors
    /// When the engine fails.
    pub async fn run(
        &self,
        container: BuildContainer<'_>,
        out: &mut Output,
        mut keep: Option<&mut String>,
    ) -> Result<i64, EngineError> {
        let BuildContainer { app, image, binds, env, command } = container;
        let docker = self.docker.clone().negotiate_version().await.map_err(EngineError::Unreachable)?;
        let fail = |e: bollard::errors::Error| EngineError::Build(e.to_string());
        let (from_image, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
        let pull =
            CreateImageOptions { from_image: Some(from_image.into()), tag: Some(tag.into()), ..Default::default() };
        docker
            .create_image(Some(pull), None, Some(self.credentials.clone()))
            .try_collect::<Vec<_>>()
            .await
            .map_err(fail)?;
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), command.to_owned()]),
            entrypoint: Some(Vec::new()),
            env: Some(env),
            labels: Some(HashMap::from([(BUILD_LABEL.to_owned(), app.to_owned())])),
            host_config: Some(HostConfig { binds: Some(binds), init: Some(true), ..Default::default() }),
            ..Default::default()
        };
        let id = docker.create_container(None::<CreateContainerOptions>, body).await.map_err(fail)?.id;
        let run = async {
            docker.start_container(&id, None).await?;
            let options = LogsOptions { follow: true, stdout: true, stderr: true, ..Default::default() };
            let mut logs = docker.logs(&id, Some(options));
            while let Some(item) = logs.next().await {
                match (item?, keep.as_deref_mut()) {
                    (LogOutput::StdOut { message }, Some(kept)) => kept.push_str(&String::from_utf8_lossy(&message)),
                    (LogOutput::StdOut { message } | LogOutput::StdErr { message }, _) => {
                        for line in String::from_utf8_lossy(&message).lines() {
                            out.detail(line).await;
                        }
                    }
                    _ => {}
                }
            }
            let state = docker.inspect_container(&id, None).await?.state;
            Ok::<_, bollard::errors::Error>(state.and_then(|s| s.exit_code).unwrap_or(-1))
        };
        let status = run.await;
        let remove = RemoveContainerOptions { force: true, ..Default::default() };
        let _ = docker.remove_container(&id, Some(remove)).await;
        status.map_err(fail)
    }

    /// Removes the build containers of `app` (those of a build that was abandoned).
    pub async fn remove_builds(&self, app: &str) {
        let Ok(docker) = self.docker.clone().negotiate_version().await else { return };
        let filters = HashMap::from([("label".to_owned(), vec![format!("{BUILD_LABEL}={app}")])]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        for container in docker.list_containers(Some(options)).await.unwrap_or_default() {
            if let Some(id) = container.id {
                let remove = RemoveContainerOptions { force: true, ..Default::default() };
                let _ = docker.remove_container(&id, Some(remove)).await;
            }
        }
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
