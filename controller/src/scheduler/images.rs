//! The images app containers run: pulled from Skiff's registry with the platform's
//! credentials (and anonymously from any other), and read for the port their app listens
//! on.

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptions;
use futures_util::TryStreamExt;

use super::runtime::{CONTAINER_PORT, RuntimeError};

/// Images through one engine, with the credentials engines present to Skiff's registry.
#[derive(Debug, Clone)]
pub struct Images {
    docker: Docker,
    credentials: DockerCredentials,
}

impl Images {
    /// Images of the registry at `registry_host`, where the engine signs in with the
    /// platform's service token.
    pub fn new(docker: Docker, registry_host: &str, service_token: &str) -> Self {
        let credentials = DockerCredentials {
            username: Some("skiff".into()),
            password: Some(service_token.into()),
            serveraddress: Some(registry_host.into()),
            ..Default::default()
        };
        Self { docker, credentials }
    }

    /// What an engine presents to the platform's registry (Swarm hands it to the nodes).
    pub fn credentials(&self) -> &DockerCredentials {
        &self.credentials
    }

    /// Pulls an image (a no-op when the engine has it). The platform's credentials go
    /// only to the platform's registry; other registries are asked anonymously.
    pub async fn pull(&self, image: &str) -> Result<(), RuntimeError> {
        let (from_image, tag) = pull_args(image);
        let pull = CreateImageOptions { from_image: Some(from_image), tag: Some(tag), ..Default::default() };
        let ours = self
            .credentials
            .serveraddress
            .as_deref()
            .is_some_and(|registry| skiff_api::ImageRef::parse(image).is_ok_and(|image| image.is_on(registry)));
        self.docker
            .create_image(Some(pull), None, ours.then(|| self.credentials.clone()))
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// Pulls an image the engine does not hold (by digest, what it holds is what it names);
    /// the port its app listens on, as [`Self::app_port`] reads it.
    pub async fn held_port(&self, image: &str) -> Result<u16, RuntimeError> {
        let inspected = match self.docker.inspect_image(image).await {
            Ok(inspected) => inspected,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                self.pull(image).await?;
                self.docker.inspect_image(image).await?
            }
            Err(error) => return Err(error.into()),
        };
        Ok(listening_port(inspected))
    }

    /// The platform's registry, as engines reach it.
    pub fn registry_host(&self) -> &str {
        self.credentials.serveraddress.as_deref().unwrap_or_default()
    }

    /// The port the app of a pulled image listens on: the image's lowest exposed TCP port
    /// (a Dockerfile's `EXPOSE`, as Deis and Dokku use it), else [`CONTAINER_PORT`].
    pub async fn app_port(&self, image: &str) -> u16 {
        let Ok(inspected) = self.docker.inspect_image(image).await else { return CONTAINER_PORT };
        listening_port(inspected)
    }
}

/// The port the app of an inspected image listens on (see [`Images::app_port`]).
fn listening_port(inspected: bollard::models::ImageInspect) -> u16 {
    let exposed = inspected.config.and_then(|c| c.exposed_ports).unwrap_or_default();
    exposed_port(&exposed).unwrap_or(CONTAINER_PORT)
}

/// Splits `name@digest` or `name:tag` into what `POST /images/create` wants.
fn pull_args(image: &str) -> (String, String) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name.to_owned(), digest.to_owned());
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
        _ => (image.to_owned(), "latest".to_owned()),
    }
}

/// The lowest TCP port of an image's exposed ports (`8080/tcp`, `53/udp`, …).
pub(super) fn exposed_port(exposed: &[String]) -> Option<u16> {
    exposed.iter().filter_map(|p| p.strip_suffix("/tcp").unwrap_or(p).parse().ok()).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_exposed_tcp_port_is_the_apps() {
        let exposed = ["9090/tcp".to_owned(), "53/udp".to_owned(), "8080/tcp".to_owned()];
        assert_eq!(exposed_port(&exposed), Some(8080));
        assert_eq!(exposed_port(&["7000".to_owned()]), Some(7000));
        assert_eq!(exposed_port(&[]), None);
    }

    #[test]
    fn image_references_split_for_pulling() {
        assert_eq!(pull_args("127.0.0.1:7701/app@sha256:abc"), ("127.0.0.1:7701/app".into(), "sha256:abc".into()));
        assert_eq!(pull_args("127.0.0.1:7701/app:v1"), ("127.0.0.1:7701/app".into(), "v1".into()));
        assert_eq!(pull_args("127.0.0.1:7701/app"), ("127.0.0.1:7701/app".into(), "latest".into()));
    }
}
