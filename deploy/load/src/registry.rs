//! Registry load: many images pushed or pulled at once over the OCI distribution API, by
//! a client whose own work stays small beside the registry's (see [`crate::client`]), so
//! that registries can be told apart by what they do rather than by what their client
//! costs.
//!
//! A push is what Docker and skopeo send for each blob of an image (layers, then the
//! config): `HEAD` (is it there already?), `POST` (an upload), `PATCH` (the bytes), `PUT
//! ?digest=` (done); then the manifest under its tag. A pull fetches the manifest and
//! every blob it names, checking each one's length (and digest, with `--verify`).
//! Prints one line: `images= bytes= seconds= images_per_s= mib_per_s= p50= p99= max=`
//! (latency of whole images, milliseconds).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sha2::Digest as _;

use crate::client::{Body, Client, Sink, split_url};
use crate::report::quantile;

/// What `skiff-load registry` is asked to do.
#[derive(Debug, clap::Args)]
pub struct Options {
    #[command(subcommand)]
    pub operation: Operation,
}

#[derive(Debug, clap::Subcommand)]
pub enum Operation {
    /// Pushes OCI image layouts, each to repositories of its own (`REPOSITORY-N`, tag
    /// `latest`), so that every push uploads every blob.
    Push {
        #[command(flatten)]
        common: Common,
        /// Directories holding OCI image layouts (the image of their index's first
        /// manifest); pushed in turn.
        #[arg(long = "layout", required = true)]
        layouts: Vec<PathBuf>,
    },
    /// Pulls `REPOSITORY:latest` (manifest and blobs) over and over.
    Pull {
        #[command(flatten)]
        common: Common,
        /// Hash every blob and compare it with its digest.
        #[arg(long)]
        verify: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// The registry: `http://HOST:PORT`.
    pub registry: String,
    /// The repository pulled, or the prefix of those pushed to.
    #[arg(long)]
    pub repository: String,
    /// `USER:PASSWORD`, for a registry that asks (Basic, or Docker's token flow).
    #[arg(long)]
    pub user: Option<String>,
    /// Images pushed or pulled at once, each over a kept-alive connection of its own.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Images in all (pushes: the layouts over and over).
    #[arg(long, default_value_t = 8)]
    pub images: usize,
}

/// A blob of an image: where its bytes are, its digest and size.
struct Blob {
    digest: String,
    size: u64,
    path: PathBuf,
}

/// An image read from an OCI layout.
struct Image {
    manifest: Vec<u8>,
    media_type: String,
    /// Layers, then the config: the order clients push in.
    blobs: Vec<Blob>,
}

const MANIFEST_TYPES: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

fn read_layout(layout: &Path) -> anyhow::Result<Image> {
    let json = |path: &Path| -> anyhow::Result<serde_json::Value> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))
    };
    let blob_path = |digest: &str| {
        let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        layout.join("blobs").join(algorithm).join(hex)
    };
    let index = json(&layout.join("index.json"))?;
    let entry = &index["manifests"][0];
    let digest = entry["digest"].as_str().context("the layout's index names no manifest")?;
    let media_type = entry["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json").to_owned();
    let manifest_path = blob_path(digest);
    let manifest = std::fs::read(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?;
    let parsed = json(&manifest_path)?;
    let blobs = blobs_of(&parsed)?.into_iter().map(|(digest, size)| Blob { path: blob_path(&digest), digest, size });
    Ok(Image { manifest, media_type, blobs: blobs.collect() })
}

/// The digest and size of each blob a manifest names: layers, then the config.
fn blobs_of(manifest: &serde_json::Value) -> anyhow::Result<Vec<(String, u64)>> {
    let descriptors = manifest["layers"].as_array().into_iter().flatten().chain(std::iter::once(&manifest["config"]));
    descriptors
        .map(|descriptor| {
            let digest = descriptor["digest"].as_str().context("a descriptor without a digest")?.to_owned();
            let size = descriptor["size"].as_u64().context("a descriptor without a size")?;
            Ok((digest, size))
        })
        .collect()
}

/// Pushes `image` to `repository` under `latest`.
fn push(client: &mut Client, repository: &str, image: &Image) -> anyhow::Result<u64> {
    let mut bytes = 0;
    for blob in &image.blobs {
        let blob_target = format!("/v2/{repository}/blobs/{}", blob.digest);
        if client.send("HEAD", &blob_target, repository, &[], Body::Empty, Sink::Drop)?.status == 200 {
            continue;
        }
        let started = client
            .send("POST", &format!("/v2/{repository}/blobs/uploads/"), repository, &[], Body::Empty, Sink::Keep)?
            .expect(202, "starting an upload")?;
        let location = upload_target(started.header("location").context("an upload without a Location")?)?;
        let file = File::open(&blob.path).with_context(|| format!("opening {}", blob.path.display()))?;
        let content_type = [("Content-Type", "application/octet-stream")];
        let patched = client
            .send("PATCH", &location, repository, &content_type, Body::File(&file, blob.size), Sink::Keep)?
            .expect(202, "uploading a blob")?;
        let location = upload_target(patched.header("location").unwrap_or(&location))?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let done = format!("{location}{separator}digest={}", blob.digest);
        client.send("PUT", &done, repository, &[], Body::Empty, Sink::Keep)?.expect(201, "finishing an upload")?;
        bytes += blob.size;
    }
    let headers = [("Content-Type", image.media_type.as_str())];
    let target = format!("/v2/{repository}/manifests/latest");
    client
        .send("PUT", &target, repository, &headers, Body::Bytes(&image.manifest), Sink::Keep)?
        .expect(201, "putting the manifest")?;
    Ok(bytes + image.manifest.len() as u64)
}

/// The path and query of an upload's `Location` (absolute or not).
fn upload_target(location: &str) -> anyhow::Result<String> {
    Ok(match location.starts_with("http://") {
        true => split_url(location)?.1.to_owned(),
        false => location.to_owned(),
    })
}

/// Pulls `repository:latest`, every blob read to its end; returns the bytes read.
fn pull(client: &mut Client, repository: &str, verify: bool) -> anyhow::Result<u64> {
    let accept = [("Accept", MANIFEST_TYPES)];
    let target = format!("/v2/{repository}/manifests/latest");
    let manifest =
        client.send("GET", &target, repository, &accept, Body::Empty, Sink::Keep)?.expect(200, "the manifest")?;
    let parsed: serde_json::Value = serde_json::from_slice(&manifest.body).context("a manifest that is not JSON")?;
    let mut bytes = manifest.body_length;
    for (digest, size) in blobs_of(&parsed)? {
        let mut hasher = sha2::Sha256::new();
        let sink = if verify { Sink::Hash(&mut hasher) } else { Sink::Drop };
        let target = format!("/v2/{repository}/blobs/{digest}");
        let answer = client.send("GET", &target, repository, &[], Body::Empty, sink)?.expect(200, "a blob")?;
        if answer.body_length != size {
            bail!("{digest}: {} bytes, the manifest says {size}", answer.body_length);
        }
        if verify && format!("sha256:{:x}", hasher.finalize()) != digest {
            bail!("{digest}: the bytes do not hash to their digest");
        }
        bytes += size;
    }
    Ok(bytes)
}

/// What a run did.
#[derive(Debug)]
pub struct Outcome {
    pub images: usize,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Nanoseconds per image, sorted.
    pub latencies: Vec<u64>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "images={} bytes={} seconds={:.3} images_per_s={:.1} mib_per_s={:.1} p50={:.3} p99={:.3} max={:.3}",
            self.images,
            self.bytes,
            seconds,
            self.images as f64 / seconds,
            self.bytes as f64 / seconds / (1024.0 * 1024.0),
            quantile(&self.latencies, 0.5),
            quantile(&self.latencies, 0.99),
            quantile(&self.latencies, 1.0),
        )
    }
}

pub fn run(options: &Options) -> anyhow::Result<Outcome> {
    let (common, images, verify) = match &options.operation {
        Operation::Push { common, layouts } => {
            (common, layouts.iter().map(|l| read_layout(l)).collect::<anyhow::Result<Vec<_>>>()?, false)
        }
        Operation::Pull { common, verify } => (common, Vec::new(), *verify),
    };
    let (authority, _) = split_url(&common.registry)?;
    if common.concurrency == 0 || common.images == 0 {
        bail!("--concurrency and --images must be at least 1");
    }
    let next = AtomicUsize::new(0);
    let done = Mutex::new((0u64, Vec::with_capacity(common.images)));
    let start = Instant::now();
    let failures: Vec<anyhow::Error> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..common.concurrency.min(common.images))
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let mut client = Client::new(authority, common.user.as_deref());
                    loop {
                        let number = next.fetch_add(1, Ordering::Relaxed);
                        if number >= common.images {
                            return Ok(());
                        }
                        let began = Instant::now();
                        let bytes = if images.is_empty() {
                            pull(&mut client, &common.repository, verify)
                        } else {
                            let repository = format!("{}-{number}", common.repository);
                            push(&mut client, &repository, &images[number % images.len()])
                        }
                        .with_context(|| format!("image {number}"))?;
                        let mut done = done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        done.0 += bytes;
                        done.1.push(began.elapsed().as_nanos() as u64);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| w.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked"))).err())
            .collect()
    });
    let elapsed = start.elapsed();
    if let Some(failure) = failures.into_iter().next() {
        return Err(failure);
    }
    let (bytes, mut latencies) = done.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    latencies.sort_unstable();
    Ok(Outcome { images: latencies.len(), bytes, elapsed, latencies })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::Arc;

    use base64::Engine as _;

    use super::*;

    fn sha256(bytes: &[u8]) -> String {
        format!("sha256:{:x}", sha2::Sha256::digest(bytes))
    }

    /// Writes an OCI layout of one image whose layer is `layer`.
    fn layout(dir: &Path, layer: &[u8]) -> PathBuf {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let blob = |bytes: &[u8]| {
            let digest = sha256(bytes);
            std::fs::write(blobs.join(&digest[7..]), bytes).unwrap();
            serde_json::json!({"digest": digest, "size": bytes.len()})
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": blob(b"{\"architecture\":\"amd64\",\"os\":\"linux\"}"),
            "layers": [blob(layer)],
        });
        let manifest = blob(manifest.to_string().as_bytes());
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest]});
        std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
        dir.to_owned()
    }

    /// What the fake registry holds (blobs by `repository@digest`) and counts.
    #[derive(Default)]
    struct Held {
        blobs: HashMap<String, Vec<u8>>,
        uploads: HashMap<String, Vec<u8>>,
        uploads_started: usize,
        manifests: HashMap<String, Vec<u8>>,
        tokens_given: usize,
    }

    /// A registry of the API's push and pull requests, behind Docker's token flow: every
    /// `/v2/` request needs a token, which `/token` gives for Basic `user:secret` and the
    /// scope the challenge named (writes need one given for `pull,push`).
    /// With `corrupt`, blobs come back with their first byte changed.
    fn fake_registry(corrupt: bool) -> (SocketAddr, Arc<Mutex<Held>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let held = Arc::new(Mutex::new(Held::default()));
        let shared = held.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let held = shared.clone();
                std::thread::spawn(move || serve(stream.unwrap(), address, &held, corrupt));
            }
        });
        (address, held)
    }

    fn serve(stream: TcpStream, address: SocketAddr, held: &Mutex<Held>, corrupt: bool) {
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = line.split_whitespace();
            let (method, target) = (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned());
            let mut headers = HashMap::new();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let Some((name, value)) = header.trim_end().split_once(':') else { break };
                headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
            }
            let mut body = vec![0; headers.get("content-length").map_or(0, |l| l.parse().unwrap())];
            reader.read_exact(&mut body).unwrap();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let (status, extra, content) = answer(&method, path, query, &headers, body, address, held, corrupt);
            let head = format!("HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\n\r\n", content.len());
            writer.write_all(head.as_bytes()).unwrap();
            if method != "HEAD" {
                writer.write_all(&content).unwrap();
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        method: &str,
        path: &str,
        query: &str,
        headers: &HashMap<String, String>,
        body: Vec<u8>,
        address: SocketAddr,
        held: &Mutex<Held>,
        corrupt: bool,
    ) -> (u16, String, Vec<u8>) {
        let mut held = held.lock().unwrap();
        let authorization = headers.get("authorization").map(String::as_str);
        if path == "/token" {
            let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("user:secret"));
            if authorization != Some(basic.as_str()) || !query.contains("scope=repository%3A") {
                return (401, String::new(), Vec::new());
            }
            held.tokens_given += 1;
            let token = if query.ends_with("%3Apull%2Cpush") { "push" } else { "pull" };
            return (200, String::new(), format!(r#"{{"token":"{token}"}}"#).into_bytes());
        }
        let repository =
            path.trim_start_matches("/v2/").split("/blobs/").next().unwrap().split("/manifests/").next().unwrap();
        // Reads take either token; writes only one given for pushing.
        let (needed, allowed): (&str, &[&str]) = match method {
            "GET" | "HEAD" => ("pull", &["Bearer pull", "Bearer push"]),
            _ => ("pull,push", &["Bearer push"]),
        };
        if !authorization.is_some_and(|a| allowed.contains(&a)) {
            let challenge = format!(
                "WWW-Authenticate: Bearer realm=\"http://{address}/token\",service=\"fake\",scope=\"repository:{repository}:{needed}\"\r\n"
            );
            return (401, challenge, br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_vec());
        }
        let digest_in_query = query.strip_prefix("digest=").map(|d| d.to_owned());
        match (method, path.rsplit('/').next().unwrap()) {
            ("POST", "") => {
                held.uploads_started += 1;
                let id = format!("u{}", held.uploads_started);
                held.uploads.insert(id.clone(), Vec::new());
                (202, format!("Location: /v2/{repository}/blobs/uploads/{id}\r\n"), Vec::new())
            }
            ("PATCH", id) => {
                held.uploads.get_mut(id).unwrap().extend_from_slice(&body);
                (202, format!("Location: http://{address}{path}\r\n"), Vec::new())
            }
            ("PUT", id) if path.contains("/blobs/uploads/") => {
                let bytes = held.uploads.remove(id).unwrap();
                let digest = digest_in_query.unwrap();
                if sha256(&bytes) != digest {
                    return (400, String::new(), b"DIGEST_INVALID".to_vec());
                }
                held.blobs.insert(format!("{repository}@{digest}"), bytes);
                (201, String::new(), Vec::new())
            }
            ("PUT", _) => {
                held.manifests.insert(repository.to_owned(), body);
                (201, String::new(), Vec::new())
            }
            ("GET", _) if path.contains("/manifests/") => match held.manifests.get(repository) {
                Some(manifest) => (200, String::new(), manifest.clone()),
                None => (404, String::new(), Vec::new()),
            },
            ("GET" | "HEAD", digest) => match held.blobs.get(&format!("{repository}@{digest}")) {
                Some(bytes) => {
                    let mut bytes = bytes.clone();
                    if corrupt && method == "GET" {
                        bytes[0] ^= 1;
                    }
                    (200, String::new(), bytes)
                }
                None => (404, String::new(), Vec::new()),
            },
            _ => (405, String::new(), Vec::new()),
        }
    }

    fn common(address: SocketAddr, repository: &str, concurrency: usize, images: usize) -> Common {
        Common {
            registry: format!("http://{address}"),
            repository: repository.to_owned(),
            user: Some("user:secret".to_owned()),
            concurrency,
            images,
        }
    }

    #[test]
    fn images_pushed_through_the_token_flow_are_pulled_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let layouts = vec![layout(&dir.path().join("big"), &big), layout(&dir.path().join("small"), b"tiny layer")];
        let (address, held) = fake_registry(false);

        let pushed =
            run(&Options { operation: Operation::Push { common: common(address, "bench/a", 2, 4), layouts } }).unwrap();
        assert_eq!(pushed.images, 4);
        let held_now = held.lock().unwrap();
        assert_eq!(held_now.manifests.len(), 4, "bench/a-0 … bench/a-3");
        // A token to pull (the first HEAD's), then one to push, for each repository.
        assert_eq!(held_now.tokens_given, 8);
        let manifest_bytes: u64 = held_now.manifests.values().map(|m| m.len() as u64).sum();
        drop(held_now);
        let config = br#"{"architecture":"amd64","os":"linux"}"#.len() as u64;
        // Every repository is new, so every blob is sent to each.
        assert_eq!(pushed.bytes, 2 * big.len() as u64 + 2 * 10 + 4 * config + manifest_bytes);

        let pull = |verify, images| Operation::Pull { common: common(address, "bench/a-0", 3, images), verify };
        let pulled = run(&Options { operation: pull(true, 6) }).unwrap();
        assert_eq!(pulled.images, 6);
        let manifest = held.lock().unwrap().manifests["bench/a-0"].len() as u64;
        assert_eq!(pulled.bytes, 6 * (big.len() as u64 + config + manifest));
        assert_eq!(pulled.latencies.len(), 6);
        assert!(pulled.to_string().starts_with("images=6 bytes="));
    }

    #[test]
    fn wrong_bytes_wrong_credentials_and_missing_images_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let layouts = vec![layout(dir.path(), b"some layer")];
        let (address, _) = fake_registry(true);
        let push = Operation::Push { common: common(address, "bench/b", 1, 1), layouts: layouts.clone() };
        run(&Options { operation: push }).unwrap();

        let pull = |verify| Operation::Pull { common: common(address, "bench/b-0", 1, 1), verify };
        run(&Options { operation: pull(false) }).expect("without --verify only lengths are checked");
        let error = run(&Options { operation: pull(true) }).unwrap_err();
        assert!(format!("{error:#}").contains("do not hash to their digest"), "{error:#}");

        let mut wrong = common(address, "bench/c", 1, 1);
        wrong.user = Some("user:wrong".to_owned());
        let error = run(&Options { operation: Operation::Push { common: wrong, layouts } }).unwrap_err();
        assert!(format!("{error:#}").contains("token: 401"), "{error:#}");

        let missing = Operation::Pull { common: common(address, "bench/none", 1, 1), verify: false };
        let error = run(&Options { operation: missing }).unwrap_err();
        assert!(format!("{error:#}").contains("the manifest: 404"), "{error:#}");
    }
}
