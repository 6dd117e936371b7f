//! Warm containers: an app's next web container, started before its release exists.
//!
//! On this kind of engine most of a deploy is `docker start` (a fifth to a third of a
//! second), and a container can only be made once its image exists. So an app is warmed
//! when it is created, when a push to it arrives (the builder asks), and each time a warm
//! container of it is adopted (for the next push or config change): a container of the
//! app's stack image is made and started with every label of the web container the app's
//! next release will need (its version, the formation's generation, the limits), under a
//! name that hides it from the scheduler (`skiff-warm-…`), on no network: it joins the
//! app's network (made meanwhile) as it is adopted, which spares a push at once after
//! `apps:create` the engine's making of the network and of the container's end of it.
//! The one made for an app's first release joins as soon as it runs instead (nothing of
//! the app answers to its process type yet), so a first push finds it on the network; it
//! starts in the network namespace of a pause container started ahead when there is one
//! (`pause.rs`), which joins the network as the warm container starts. If a web container
//! of the app starts another way (a Dockerfile build, an image deploy), it goes. It runs a
//! launcher, `tar -x -C /` on its standard input, then `/.skiff/start`.
//!
//! When that release's web container is to start and the release's image is the stack plus
//! one layer (every Procfile and buildpack build), the scheduler adopts the warm container
//! instead of pulling, creating and starting one: it attaches to the launcher's input and
//! sends `/.skiff/start` (the image's working directory and env, then the container's env,
//! then the command, as Docker would run them) followed by the app layer (uncompressed as
//! it goes, a part at a time: the controller never holds it whole uncompressed) while the
//! container joins the app's network as `web`, then renames it to a web container's
//! name (and the engine pulls the release's image in the background, for the release's
//! other containers). Anything else (another version or generation, other limits, a stack
//! imported again meanwhile, a Dockerfile build, a stack without `sh` and `tar`, an app
//! layer over 64 MiB) leaves it unused, and the release starts as any other. One made for
//! an older release goes when the app is warmed again; one unused for 15 minutes goes at
//! the controller's next sweep; an app's go when it is destroyed.
//!
//! An adopted container differs from one made from the release's image in two ways only
//! `docker inspect` shows: its image is the stack's, and its configured env is `PORT`
//! alone (the app's process gets the full env from `/.skiff/start`). Warm containers are
//! not made where the routers reach containers through published ports.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::HostConfig;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, EndpointSettings, NetworkConnectRequest,
    NetworkDisconnectRequest,
};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, ListContainersOptions, RenameContainerOptions,
};
use bytes::Bytes;
use skiff_api::{AppName, Digest, ImageRef};
use skiff_registry_client::RegistryError;
use skiff_registry_client::image::Manifest;
use tokio::io::AsyncWriteExt as _;

use super::{Addressing, DockerRuntime, PORT_LABEL, labelled_port, labels, pause, platform_filter};
use crate::scheduler::images::exposed_port;
use crate::scheduler::runtime::{
    APP_ID_LABEL, CONTAINER_PORT, Container, ContainerRuntime as _, RuntimeError, StartSpec,
};

/// Warm containers are named with this until they are adopted; the scheduler does not see
/// them.
pub(super) const UNADOPTED: &str = "skiff-warm-";
/// The label naming the stack image (by digest) a warm container runs.
const STACK_LABEL: &str = "skiff.warm.stack";
/// The label recording the limits a warm container was made with.
const LIMITS_LABEL: &str = "skiff.warm.limits";
/// The label of a warm container made for its app's first release: no container of the app
/// runs yet, so it joins the app's network (answering to its process type) as soon as it
/// runs, and its adoption has no network to join.
const FIRST_RELEASE_LABEL: &str = "skiff.warm.first";
/// The network mode of a container on no network (it has a loopback device only).
const NO_NETWORK: &str = "none";
/// An unused warm container older than this is removed when its app is warmed again.
const UNUSED_FOR: Duration = Duration::from_secs(15 * 60);
/// How long a release's start waits for a warm container still being made for it.
const MAKING_WAIT: Duration = Duration::from_secs(10);
/// The largest app layer sent into a warm container (held in memory, compressed, on the way);
/// a release with a larger one starts as any other.
const MAX_LAYER_BYTES: u64 = 64 << 20;
/// How much of an app layer is uncompressed at a time on its way into a warm container.
const LAYER_CHUNK: usize = 256 * 1024;
/// What a warm container runs: until it is adopted, `tar` reads its input; started again
/// later (the engine restarted), it runs what it was given.
const LAUNCHER: &str = "{ [ -e /.skiff/start ] || tar -x -C /; } && exec /bin/sh /.skiff/start";

/// The stack a warm container is made of: its image by digest, on the engine, and the
/// port its apps listen on.
struct HeldStack {
    image: String,
    port: u16,
}

/// A warm container, as listed.
struct Warm {
    id: String,
    running: bool,
    created: i64,
    labels: HashMap<String, String>,
    /// The networks it sits on: `none` (those made on an app's network before keep it).
    networks: Vec<String>,
    /// The pause container whose network namespace it runs in, if it does.
    namespace: Option<String>,
}

impl Warm {
    fn of(summary: ContainerSummary) -> Option<Self> {
        is_unadopted(summary.names.as_ref()).then_some(())?;
        Some(Self {
            id: summary.id?,
            running: summary.state == Some(ContainerSummaryStateEnum::RUNNING),
            created: summary.created.unwrap_or(0),
            labels: summary.labels.unwrap_or_default(),
            networks: summary
                .network_settings
                .and_then(|settings| settings.networks)
                .unwrap_or_default()
                .into_keys()
                .collect(),
            namespace: pause::namespace_owner(summary.host_config.and_then(|h| h.network_mode).as_deref())
                .map(str::to_owned),
        })
    }

    /// Whether it sits on `network` (its app's) alone, having joined it as it ran (in a
    /// pause container's namespace, only once the pause container joined).
    fn joined(&self, network: &str) -> bool {
        self.labels.contains_key(FIRST_RELEASE_LABEL) && (self.networks == [network] || self.namespace.is_some())
    }

    fn fresh(&self) -> bool {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.running && now - self.created < UNUSED_FOR.as_secs() as i64
    }

    /// Whether it was made for `spec`: the same release, generation, process and limits.
    fn made_for(&self, spec: &StartSpec) -> bool {
        let label = |key: &str| self.labels.get(key).map(String::as_str);
        label(APP_ID_LABEL) == Some(spec.app_id.to_string().as_str())
            && label("skiff.release") == Some(spec.release.to_string().as_str())
            && label("skiff.generation") == Some(spec.generation.to_string().as_str())
            && label("skiff.process") == Some(spec.process.as_str())
            && label(LIMITS_LABEL) == Some(limits_label(&spec.limits).as_str())
    }
}

/// How limits read in [`LIMITS_LABEL`].
fn limits_label(limits: &skiff_api::Limits) -> String {
    serde_json::to_string(limits).expect("limits serialize")
}

/// Whether a container's name marks it as warm and not yet adopted.
pub(super) fn is_unadopted(names: Option<&Vec<String>>) -> bool {
    names.into_iter().flatten().any(|name| name.trim_start_matches('/').starts_with(UNADOPTED))
}

/// What starting a release in a warm container of its stack needs of the release's image.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OnStack {
    /// The layer above the stack's: its blob's digest, and whether it is gzip.
    layer: Digest,
    gzip: bool,
    working_dir: String,
    /// The image's env, `NAME=value`.
    env: Vec<String>,
    /// Where its app listens.
    port: u16,
}

/// Reads a release image (its manifest and config) as its stack image (the stack's layer
/// diff ids and user) plus one layer; the reason it is not one otherwise.
pub(super) fn on_stack(
    manifest: &Manifest,
    config: &serde_json::Value,
    stack_layers: &[String],
    stack_user: &str,
) -> Result<OnStack, &'static str> {
    let diff_ids: Vec<&str> =
        config["rootfs"]["diff_ids"].as_array().into_iter().flatten().filter_map(|id| id.as_str()).collect();
    if diff_ids.len() != stack_layers.len() + 1 || diff_ids.iter().zip(stack_layers).any(|(a, b)| a != b) {
        return Err("its layers are not the stack's plus one");
    }
    let (Some(layer), true) = (manifest.layers.last(), manifest.layers.len() == diff_ids.len()) else {
        return Err("its manifest and config disagree");
    };
    let gzip = match layer.media_type.as_str() {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" | "application/vnd.oci.image.layer.v1.tar+gzip" => true,
        "application/vnd.oci.image.layer.v1.tar" => false,
        _ => return Err("its top layer is neither tar nor gzip"),
    };
    let settings = &config["config"];
    if settings["User"].as_str().unwrap_or_default() != stack_user {
        return Err("it runs as another user than its stack");
    }
    let exposed: Vec<String> =
        settings["ExposedPorts"].as_object().into_iter().flat_map(|ports| ports.keys().cloned()).collect();
    Ok(OnStack {
        layer: layer.digest.clone(),
        gzip,
        working_dir: settings["WorkingDir"].as_str().filter(|dir| !dir.is_empty()).unwrap_or("/").to_owned(),
        env: settings["Env"].as_array().into_iter().flatten().filter_map(|e| e.as_str().map(str::to_owned)).collect(),
        port: exposed_port(&exposed).unwrap_or(CONTAINER_PORT),
    })
}

/// Quotes text for `sh`.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The script that becomes a warm container's process: the image's working directory and
/// env, then the container's `env` over it (as Docker orders them), then the command, as
/// `/bin/sh -c` runs it in any other container. `None` when a variable's name is not one
/// `sh` can export.
pub(super) fn start_script(image: &OnStack, env: &[String], command: &str) -> Option<String> {
    let mut script = format!("cd {} || exit 1\n", quoted(&image.working_dir));
    for variable in image.env.iter().chain(env) {
        let name = variable.split('=').next().unwrap_or_default();
        let exportable = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !exportable || !variable.contains('=') {
            return None;
        }
        script.push_str(&format!("export {}\n", quoted(variable)));
    }
    script.push_str(&format!("exec /bin/sh -c {}\n", quoted(command)));
    Some(script)
}

/// Tar entries (without the archive's end) holding `.skiff/start`, executable.
pub(super) fn script_entries(script: &str) -> Vec<u8> {
    let mut entries = tar_header(".skiff/", 0, b'5');
    entries.extend(tar_header(".skiff/start", script.len(), b'0'));
    entries.extend(script.as_bytes());
    entries.resize(entries.len().next_multiple_of(512), 0);
    entries
}

/// A ustar header: root's, mode 755.
fn tar_header(path: &str, size: usize, kind: u8) -> Vec<u8> {
    let mut header = vec![0u8; 512];
    let mut put = |at: usize, field: &[u8]| header[at..at + field.len()].copy_from_slice(field);
    put(0, path.as_bytes());
    put(100, b"0000755\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{size:011o}\0").as_bytes());
    put(136, b"00000000000\0");
    put(148, b"        ");
    put(156, &[kind]);
    put(257, b"ustar\x0000");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    header
}

/// The app layer `blob` uncompressed (when `gzip`), a chunk at a time as a blocking
/// thread uncompresses it: at most a few chunks are held while the container extracts
/// them, never the whole uncompressed layer; a layer that does not uncompress ends with
/// the error.
fn uncompressed(blob: Bytes, gzip: bool) -> tokio::sync::mpsc::Receiver<std::io::Result<Bytes>> {
    let (chunks, receiver) = tokio::sync::mpsc::channel(4);
    if !gzip {
        let _ = chunks.try_send(Ok(blob));
        return receiver;
    }
    tokio::task::spawn_blocking(move || {
        let mut decoder = flate2::read::GzDecoder::new(&blob[..]);
        loop {
            let mut chunk = vec![0u8; LAYER_CHUNK];
            let next = match std::io::Read::read(&mut decoder, &mut chunk) {
                Ok(0) => return,
                Ok(read) => {
                    chunk.truncate(read);
                    Ok(Bytes::from(chunk))
                }
                Err(error) => Err(error),
            };
            let failed = next.is_err();
            if chunks.blocking_send(next).is_err() || failed {
                return;
            }
        }
    });
    receiver
}

/// Why an adoption stopped.
enum Unfit {
    /// The release cannot run in the warm container; it was left as it was.
    Skipped(String),
    /// The warm container was changed, then something failed: it must go.
    Broken(String),
}

impl From<RuntimeError> for Unfit {
    fn from(error: RuntimeError) -> Self {
        Self::Skipped(error.to_string())
    }
}

impl From<RegistryError> for Unfit {
    fn from(error: RegistryError) -> Self {
        Self::Skipped(error.to_string())
    }
}

impl DockerRuntime {
    /// `app`'s warm containers not yet adopted, running or not.
    async fn warm_containers(&self, app: &AppName) -> Result<Vec<Warm>, RuntimeError> {
        let mut filters = platform_filter(&self.platform);
        filters.entry("label".into()).or_default().push(format!("skiff.app={app}"));
        filters.insert("name".into(), vec![UNADOPTED.into()]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        Ok(self.docker.list_containers(Some(options)).await?.into_iter().filter_map(Warm::of).collect())
    }

    /// Makes and starts a warm container for `spec` (whose image is the app's stack, by
    /// tag), unless one runs for it already; unused ones of the app that stopped or waited
    /// too long go.
    pub(super) async fn make_warm(&self, spec: &StartSpec) -> Result<(), RuntimeError> {
        let (made, making) = tokio::sync::watch::channel(false);
        {
            let mut warming = self.warming.lock().expect("warming");
            if warming.contains_key(&spec.app) {
                return Ok(());
            }
            warming.insert(spec.app.clone(), making);
        }
        let result = self.make_warm_now(spec).await;
        let _ = made.send(true);
        self.warming.lock().expect("warming").remove(&spec.app);
        // The next app made finds a namespace waiting too.
        self.replenish_pause_when_quiet();
        result
    }

    async fn make_warm_now(&self, spec: &StartSpec) -> Result<(), RuntimeError> {
        // It joins its app's network when it is adopted, which a published port would not
        // survive.
        if self.networks.addressing() == Addressing::Published {
            return Ok(());
        }
        // Releases only count up: one made for another release will never be used. It goes
        // meanwhile (stopping it takes the engine a while). The stack is looked up meanwhile.
        let (warm, stack) = tokio::join!(self.warm_containers(&spec.app), self.held_stack(&spec.image));
        let (ready, unusable): (Vec<Warm>, Vec<Warm>) = warm?
            .into_iter()
            .filter(|warm| !self.is_adopting(&warm.id))
            .partition(|warm| warm.fresh() && warm.made_for(spec));
        if !unusable.is_empty() {
            let runtime = self.clone();
            tokio::spawn(async move {
                for warm in unusable {
                    if let Err(error) = runtime.remove(&warm.id).await {
                        tracing::info!(%error, "controller.warm.unremoved");
                    }
                }
            });
        }
        if !ready.is_empty() {
            return Ok(());
        }
        let stack = stack?;
        // Releases count from 1: before the first, nothing of the app answers on its network.
        let first_release = spec.release == 1;
        if first_release && let Some(pause) = self.take_pause() {
            match self.make_warm_in(&pause, spec, &stack).await {
                Ok(()) => return Ok(()),
                Err(error) => tracing::info!(app = %spec.app, %error, "controller.pause.unused"),
            }
        }
        // The app's network is made meanwhile, for the adoption to join.
        let (made, network) = tokio::join!(self.start_warm(spec, &stack, None), self.networks.ensure(&spec.app));
        let id = made?;
        network?;
        // The first release's container joins now rather than as it is adopted (a first join
        // takes the engine a tenth of a second); should it fail, the adoption joins.
        if first_release && let Err(error) = self.join_app_network(&id, &[NO_NETWORK.to_owned()], spec).await {
            tracing::info!(app = %spec.app, %error, "controller.warm.unjoined");
        }
        Ok(())
    }

    /// Makes and starts the warm container for an app's first release in the namespace of
    /// pause container `pause`, which joins the app's network (made first) meanwhile. Nothing
    /// half made stays.
    async fn make_warm_in(&self, pause: &str, spec: &StartSpec, stack: &HeldStack) -> Result<(), RuntimeError> {
        let joined = async {
            self.networks.ensure(&spec.app).await?;
            self.join_app_network(pause, &[], spec).await
        };
        let (made, joined) = tokio::join!(self.start_warm(spec, stack, Some(pause)), joined);
        self.settled(pause, &spec.app);
        match (made, joined) {
            (Ok(_), Ok(())) => Ok(()),
            (Ok(id), Err(error)) => {
                self.discard(&id, Some(pause)).await;
                Err(error)
            }
            (Err(error), _) => {
                self.force_remove(pause).await;
                Err(error)
            }
        }
    }

    /// Makes and starts a warm container for `spec` of `stack`, in the network namespace of
    /// pause container `pause` if given, else on no network; returns its id.
    async fn start_warm(
        &self,
        spec: &StartSpec,
        stack: &HeldStack,
        pause: Option<&str>,
    ) -> Result<String, RuntimeError> {
        let HeldStack { image, port } = stack;
        let mut labels = labels(spec, &self.platform);
        labels.insert(PORT_LABEL.to_owned(), port.to_string());
        labels.insert(STACK_LABEL.to_owned(), image.clone());
        labels.insert(LIMITS_LABEL.to_owned(), limits_label(&spec.limits));
        if spec.release == 1 {
            labels.insert(FIRST_RELEASE_LABEL.to_owned(), "true".to_owned());
        }
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), LAUNCHER.into()]),
            entrypoint: Some(Vec::new()),
            env: Some(vec![format!("PORT={port}")]),
            open_stdin: Some(true),
            stdin_once: Some(true),
            labels: Some(labels),
            // The engine exposes no port of a container in another's namespace.
            exposed_ports: pause.is_none().then(|| vec![format!("{port}/tcp")]),
            host_config: Some(HostConfig {
                network_mode: Some(pause.map_or_else(|| NO_NETWORK.to_owned(), |pause| format!("container:{pause}"))),
                ..self.confined(&spec.limits)
            }),
            ..Default::default()
        };
        let name = format!("{UNADOPTED}{}-v{}-{:06x}", spec.app, spec.release, rand::random::<u32>() & 0xff_ffff);
        let options = CreateContainerOptions { name: Some(name), ..Default::default() };
        let id = self.docker.create_container(Some(options), body).await?.id;
        self.docker.start_container(&id, None).await?;
        Ok(id)
    }

    /// Moves container `id` from the networks it is `on` to its app's network, where it
    /// answers to its process type (an alias is given only as a container joins a network).
    /// The app's network is made again if it went meanwhile (with the app's last container).
    async fn join_app_network(&self, id: &str, on: &[String], spec: &StartSpec) -> Result<(), RuntimeError> {
        for network in on {
            let leave = NetworkDisconnectRequest { container: id.to_owned(), force: Some(true) };
            self.docker.disconnect_network(network, leave).await?;
        }
        let network = self.networks.name(&spec.app);
        let join = || {
            let endpoint = EndpointSettings { aliases: Some(vec![spec.process.clone()]), ..Default::default() };
            let join = NetworkConnectRequest { container: id.to_owned(), endpoint_config: Some(endpoint) };
            self.docker.connect_network(&network, join)
        };
        match join().await {
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                self.networks.ensure(&spec.app).await?;
                Ok(join().await?)
            }
            joined => Ok(joined?),
        }
    }

    /// A web container of `app` starts from its release's image: a warm container made for
    /// the app's first release will not be adopted now, and it goes (it answers to the
    /// process type on the app's network, where the app's containers would reach it). The
    /// network stays: the container starting needs it (the engine lets a network with only
    /// created containers go).
    pub(super) fn forgo_first_release_warm(&self, app: &AppName) {
        let (runtime, app) = (self.clone(), app.clone());
        tokio::spawn(async move {
            runtime.made(&app).await;
            let Ok(warm) = runtime.warm_containers(&app).await else { return };
            for warm in warm {
                if !warm.labels.contains_key(FIRST_RELEASE_LABEL) || runtime.is_adopting(&warm.id) {
                    continue;
                }
                runtime.discard(&warm.id, warm.namespace.as_deref()).await;
            }
        });
    }

    /// Removes a warm container that was not adopted, and the pause container whose
    /// namespace it runs in, by force and at once, leaving the app's network.
    async fn discard(&self, id: &str, namespace: Option<&str>) {
        self.force_remove(id).await;
        if let Some(pause) = namespace {
            self.force_remove(pause).await;
        }
    }

    /// Returns once the warm container of `app` being made (if one is) is made, or after
    /// [`MAKING_WAIT`].
    async fn made(&self, app: &AppName) {
        let making = self.warming.lock().expect("warming").get(app).cloned();
        if let Some(mut making) = making {
            let _ = tokio::time::timeout(MAKING_WAIT, making.wait_for(|made| *made)).await;
        }
    }

    /// Whether this process is adopting the warm container `id`.
    fn is_adopting(&self, id: &str) -> bool {
        self.adopting.lock().expect("adoptions").contains(id)
    }

    /// Removes `app`'s warm containers that were not adopted.
    pub(super) async fn remove_warm(&self, app: &AppName) -> Result<(), RuntimeError> {
        for warm in self.warm_containers(app).await? {
            self.remove(&warm.id).await?;
        }
        Ok(())
    }

    /// Removes the warm containers of every app that waited too long or stopped (unless
    /// this process is making them), of the platform's `containers` as listed.
    pub(super) async fn remove_expired_warm(&self, containers: &[ContainerSummary]) -> Result<(), RuntimeError> {
        for warm in containers.iter().cloned().filter_map(Warm::of) {
            let app = warm.labels.get("skiff.app").and_then(|app| app.parse::<AppName>().ok());
            let making = app.is_some_and(|app| self.warming.lock().expect("warming").contains_key(&app));
            if !warm.fresh() && !making && !self.is_adopting(&warm.id) {
                self.remove(&warm.id).await?;
            }
        }
        Ok(())
    }

    /// The stack `image` (by tag) names now, pulled if the engine lacks it.
    async fn held_stack(&self, image: &str) -> Result<HeldStack, RuntimeError> {
        let image = self.by_digest(image).await?;
        let port = self.images.held_port(&image).await?;
        Ok(HeldStack { image, port })
    }

    /// A reference by digest to the image a reference names now.
    async fn by_digest(&self, image: &str) -> Result<String, RuntimeError> {
        let reference = ImageRef::parse(image).map_err(|e| RuntimeError::Warm(e.to_string()))?;
        if reference.reference.starts_with('@') {
            return Ok(image.to_owned());
        }
        let tag = reference.reference.trim_start_matches(':');
        let tag = if tag.is_empty() { "latest" } else { tag };
        let digest = self.registry.manifest_digest(&reference.repository, tag).await?;
        Ok(format!("{}/{}@{digest}", reference.registry, reference.repository))
    }

    /// Starts `spec` in a warm container made for it, when one runs and the release's
    /// image is its stack plus one layer; `None` otherwise (the caller starts one as
    /// usual).
    pub(super) async fn adopt(&self, spec: &StartSpec) -> Option<Container> {
        // One being made is ready sooner than a container made now would be.
        self.made(&spec.app).await;
        let warm = self.warm_containers(&spec.app).await.ok()?;
        let warm = warm.into_iter().find(|w| w.fresh() && w.made_for(spec))?;
        if !self.adopting.lock().expect("adoptions").insert(warm.id.clone()) {
            return None;
        }
        let adopted = self.launch(&warm, spec).await;
        self.adopting.lock().expect("adoptions").remove(&warm.id);
        match adopted {
            Ok(container) => {
                // The app's next push (or config change) finds a warm container waiting
                // too, and the engine gets the release's image after all (other containers
                // of the release start from it).
                let release_image = spec.image.clone();
                let next = StartSpec {
                    release: spec.release + 1,
                    image: warm.labels.get(STACK_LABEL).cloned().unwrap_or_default(),
                    command: String::new(),
                    env: Vec::new(),
                    ..spec.clone()
                };
                let runtime = self.clone();
                tokio::spawn(async move {
                    // The warm container first: a push at once after this one waits for it.
                    if let Err(error) = runtime.make_warm(&next).await {
                        tracing::info!(app = %next.app, %error, "controller.warm.failed");
                    }
                    if let Err(error) = runtime.images.pull(&release_image).await {
                        tracing::info!(app = %next.app, %error, "controller.warm.unpulled");
                    }
                });
                Some(container)
            }
            Err(Unfit::Skipped(reason)) => {
                tracing::info!(app = %spec.app, release = spec.release, %reason, "controller.warm.unused");
                None
            }
            Err(Unfit::Broken(reason)) => {
                tracing::warn!(app = %spec.app, release = spec.release, %reason, "controller.warm.broken");
                let _ = self.remove(&warm.id).await;
                None
            }
        }
    }

    /// Sends the release into a warm container and names it as a web container.
    async fn launch(&self, warm: &Warm, spec: &StartSpec) -> Result<Container, Unfit> {
        let skipped = |reason: &str| Unfit::Skipped(reason.to_owned());
        let release = ImageRef::parse(&spec.image).map_err(|e| Unfit::Skipped(e.to_string()))?;
        if !release.is_on(self.images.registry_host()) {
            return Err(skipped("the release's image is not in the platform's registry"));
        }
        let repository = release.repository.as_str();
        let (_, manifest) =
            self.registry.manifest(repository, release.reference.trim_start_matches(['@', ':'])).await?;
        let manifest: Manifest = serde_json::from_slice(&manifest).map_err(|e| Unfit::Skipped(e.to_string()))?;
        let config = self.registry.blob(repository, &manifest.config.digest).await?;
        let config: serde_json::Value = serde_json::from_slice(&config).map_err(|e| Unfit::Skipped(e.to_string()))?;
        let stack = warm.labels.get(STACK_LABEL).ok_or_else(|| skipped("it names no stack"))?;
        let stack = self.docker.inspect_image(stack).await.map_err(RuntimeError::from)?;
        let stack_layers = stack.root_fs.and_then(|fs| fs.layers).unwrap_or_default();
        let stack_user = stack.config.and_then(|c| c.user).unwrap_or_default();
        let image = on_stack(&manifest, &config, &stack_layers, &stack_user).map_err(skipped)?;
        if manifest.layers.last().is_some_and(|layer| layer.size > MAX_LAYER_BYTES) {
            return Err(skipped("the app layer is too large to send"));
        }
        let port = labelled_port(&warm.labels);
        if image.port != port {
            return Err(skipped("the release listens on another port"));
        }
        let mut env = vec![format!("PORT={port}")];
        env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
        let script =
            start_script(&image, &env, &spec.command).ok_or_else(|| skipped("a variable cannot be exported"))?;
        let mut tar = uncompressed(self.registry.blob(repository, &image.layer).await?, image.gzip);

        let broken = |error: &dyn std::fmt::Display| Unfit::Broken(error.to_string());
        let send = async {
            let options = AttachContainerOptions { stdin: true, stream: true, ..Default::default() };
            let mut attached = self.docker.attach_container(&warm.id, Some(options)).await?;
            attached.input.write_all(&script_entries(&script)).await?;
            while let Some(chunk) = tar.recv().await {
                // Left without closing its input: the container goes (a tar cut short
                // might otherwise look whole).
                let chunk =
                    chunk.map_err(|e| std::io::Error::other(format!("the app layer does not uncompress: {e}")))?;
                attached.input.write_all(&chunk).await?;
            }
            attached.input.shutdown().await?;
            Ok::<_, bollard::errors::Error>(())
        };
        // Meanwhile it joins its app's network, unless it did as it ran.
        let rejoin = async {
            if warm.joined(&self.networks.name(&spec.app)) {
                return Ok(());
            }
            self.join_app_network(&warm.id, &warm.networks, spec).await
        };
        let send = async { send.await.map_err(|e| broken(&e)) };
        let rejoin = async { rejoin.await.map_err(|e| broken(&e)) };
        tokio::try_join!(send, rejoin)?;
        let name = container_name(spec);
        let rename = RenameContainerOptions { name };
        self.docker.rename_container(&warm.id, rename).await.map_err(|e| broken(&e))?;
        let mut labels = labels(spec, &self.platform);
        labels.insert(PORT_LABEL.to_owned(), port.to_string());
        self.started(&warm.id, spec, port, &labels).await.map_err(|e| broken(&e))
    }
}

/// A web or worker container's name.
pub(super) fn container_name(spec: &StartSpec) -> String {
    format!("skiff-{}-{}-v{}-{:06x}", spec.app, spec.process, spec.release, rand::random::<u32>() & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_registry_client::image::Descriptor;

    fn descriptor(media_type: &str, digest: &str) -> Descriptor {
        Descriptor { media_type: media_type.into(), digest: digest.parse().unwrap(), size: 1 }
    }

    fn release(layers: &[&str], user: &str) -> (Manifest, serde_json::Value) {
        let sha = |n: usize| format!("sha256:{:064x}", n);
        let manifest = Manifest {
            schema_version: 2,
            media_type: None,
            config: descriptor("application/vnd.docker.container.image.v1+json", &sha(99)),
            layers: (0..layers.len())
                .map(|n| descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", &sha(n)))
                .collect(),
        };
        let config = serde_json::json!({
            "rootfs": { "type": "layers", "diff_ids": layers },
            "config": { "User": user, "WorkingDir": "/app", "Env": ["PATH=/bin", "GREETING=hi"],
                        "ExposedPorts": { "8080/tcp": {} } },
        });
        (manifest, config)
    }

    #[test]
    fn a_release_fits_its_stack_only_as_the_stack_plus_one_layer() {
        let stack = ["sha256:a".to_owned(), "sha256:b".to_owned()];
        let (manifest, config) = release(&["sha256:a", "sha256:b", "sha256:app"], "");
        let image = on_stack(&manifest, &config, &stack, "").unwrap();
        assert_eq!(image.working_dir, "/app");
        assert_eq!(image.env, ["PATH=/bin", "GREETING=hi"]);
        assert_eq!(image.port, 8080);
        assert!(image.gzip);
        assert_eq!(image.layer, manifest.layers[2].digest);

        let (other, config_of_other) = release(&["sha256:x", "sha256:b", "sha256:app"], "");
        assert!(on_stack(&other, &config_of_other, &stack, "").is_err(), "another stack underneath");
        let (two, config_of_two) = release(&["sha256:a", "sha256:b", "sha256:app", "sha256:more"], "");
        assert!(on_stack(&two, &config_of_two, &stack, "").is_err(), "two layers on top");
        let (stack_only, config_of_stack) = release(&["sha256:a", "sha256:b"], "");
        assert!(on_stack(&stack_only, &config_of_stack, &stack, "").is_err(), "no layer on top");
        assert!(on_stack(&manifest, &config, &stack, "nobody").is_err(), "another user");
        let mut zstd = manifest.clone();
        zstd.layers[2].media_type = "application/vnd.oci.image.layer.v1.tar+zstd".into();
        assert!(on_stack(&zstd, &config, &stack, "").is_err(), "a compression the launcher cannot take");
    }

    #[test]
    fn the_start_script_sets_the_image_env_then_the_containers_and_quotes_everything() {
        let image = OnStack {
            layer: format!("sha256:{:064x}", 1).parse().unwrap(),
            gzip: true,
            working_dir: "/app".into(),
            env: vec!["PATH=/bin".into(), "GREETING=image's".into()],
            port: 5000,
        };
        let env = ["PORT=5000".to_owned(), "GREETING=it's $HOME `x`".to_owned()];
        let script = start_script(&image, &env, "exec httpd -f -p \"$PORT\"").unwrap();
        assert_eq!(
            script,
            "cd '/app' || exit 1\nexport 'PATH=/bin'\nexport 'GREETING=image'\\''s'\nexport 'PORT=5000'\n\
             export 'GREETING=it'\\''s $HOME `x`'\nexec /bin/sh -c 'exec httpd -f -p \"$PORT\"'\n"
        );
        // What sh makes of it: the container's value wins, nothing in it is expanded.
        let image = OnStack { working_dir: "/".into(), env: vec!["GREETING=image's".into()], ..image };
        let script = start_script(&image, &env, "printf '%s|%s' \"$GREETING\" \"$PORT\"").unwrap();
        let output = std::process::Command::new("sh").arg("-c").arg(script).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "it's $HOME `x`|5000");
        let odd = ["NOT-A-NAME=1".to_owned()];
        assert_eq!(start_script(&image, &odd, "true"), None, "sh cannot export it");
    }

    #[test]
    fn the_script_entries_are_a_tar_that_tar_extracts() {
        let dir = std::env::temp_dir().join(format!("skiff-warm-{:08x}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut archive = script_entries("echo started\n");
        archive.extend([0u8; 1024]);
        std::fs::write(dir.join("start.tar"), &archive).unwrap();
        let status =
            std::process::Command::new("tar").args(["-x", "-f", "start.tar"]).current_dir(&dir).status().unwrap();
        assert!(status.success());
        let start = dir.join(".skiff/start");
        assert_eq!(std::fs::read_to_string(&start).unwrap(), "echo started\n");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&start).unwrap().permissions().mode() & 0o777, 0o755);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn the_app_layer_is_uncompressed_a_chunk_at_a_time_and_a_cut_one_ends_in_an_error() {
        async fn received(
            mut chunks: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
        ) -> Vec<std::io::Result<Bytes>> {
            let mut all = Vec::new();
            while let Some(chunk) = chunks.recv().await {
                all.push(chunk);
            }
            all
        }
        let tar: Vec<u8> = (0..LAYER_CHUNK * 3 + 77).map(|i| (i % 7) as u8).collect();
        let blob = skiff_registry_client::image::Layer::from_tar(&tar).blob;
        let chunks = received(uncompressed(blob.clone(), true)).await;
        assert!(chunks.len() > 1, "in chunks");
        let whole: Vec<u8> = chunks.into_iter().flat_map(|chunk| chunk.unwrap()).collect();
        assert!(whole == tar, "uncompressed as it was");

        let cut = received(uncompressed(blob.slice(..blob.len() / 2), true)).await;
        assert!(cut.last().is_some_and(Result::is_err), "a cut layer ends in an error");
        let plain = received(uncompressed(Bytes::from(tar.clone()), false)).await;
        assert!(plain.len() == 1 && plain[0].as_ref().unwrap()[..] == tar[..], "an uncompressed layer as it is");
    }
}
