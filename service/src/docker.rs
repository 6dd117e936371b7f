//! The connection to the local Docker engine (the `docker` feature), made the same way by
//! every component that uses the engine: the local socket (or `DOCKER_HOST`).

use bollard::Docker;

/// The local engine, lazily: nothing is sent until the first call.
///
/// # Errors
/// When the engine's socket settings are unusable.
pub fn local() -> Result<Docker, bollard::errors::Error> {
    Docker::connect_with_local_defaults()
}

/// The local engine, reached now, at the API version both ends speak.
///
/// # Errors
/// When the engine cannot be reached.
pub async fn connect() -> Result<Docker, bollard::errors::Error> {
    local()?.negotiate_version().await
}
