//! Image references as the engine reads them, and which registry they name: what decides
//! whether a build or a deploy may use an image.

use std::net::IpAddr;

/// An image reference, qualified the way the engine resolves it: `nginx:1` is
/// `docker.io/library/nginx:1`, `team/api` is `docker.io/team/api`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]` of the registry.
    pub registry: String,
    /// The repository within it (`library/nginx`, `shop`, `stacks/busybox`).
    pub repository: String,
    /// `:tag` or `@sha256:…`, as written; empty for the default tag.
    pub reference: String,
}

/// Why text is not an image reference the platform takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("`{}` is not an image reference", .0.escape_debug())]
    Malformed(String),
    /// The engine reads a bare ID as the image it holds under it, whoever's it is.
    #[error("`{0}` is an image ID; name an image by its registry and repository")]
    ImageId(String),
    #[error("`{0}` names no repository")]
    NoRepository(String),
}

impl ImageRef {
    /// Reads a reference.
    ///
    /// # Errors
    /// When it is not one: empty, over 512 bytes, or with characters no reference has.
    pub fn parse(text: &str) -> Result<Self, ImageRefError> {
        let valid = !text.is_empty()
            && text.len() <= 512
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"./:@_-[]".contains(&b))
            && !text.starts_with(['-', '/', ':', '@'])
            && !text.contains("//");
        if !valid {
            return Err(ImageRefError::Malformed(text.to_owned()));
        }
        // The engine reads a bare ID as the image it holds under that ID, whoever's it is.
        let hex = |s: &str| s.len() >= 12 && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if hex(text) || text.strip_prefix("sha256:").is_some_and(hex) {
            return Err(ImageRefError::ImageId(text.to_owned()));
        }
        let (registry, rest) = match text.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
            Some(_) => ("docker.io", text),
            None => ("docker.io", text),
        };
        // The reference starts at `@`, or at the last `:` after the last `/`.
        let name_end = rest.find('@').unwrap_or_else(|| {
            let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
            rest[last_slash..].find(':').map_or(rest.len(), |i| last_slash + i)
        });
        let (repository, reference) = rest.split_at(name_end);
        if repository.is_empty() {
            return Err(ImageRefError::NoRepository(text.to_owned()));
        }
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_owned()
        };
        Ok(Self { registry: registry.to_owned(), repository, reference: reference.to_owned() })
    }

    /// Whether it names the registry at `platform` (`host:port`): the same host, or, for a
    /// registry on a loopback address, any loopback name for it (`localhost`, `127.0.0.1`,
    /// `127.1`, `[::1]`) on the same port.
    pub fn is_on(&self, platform: &str) -> bool {
        if self.registry.eq_ignore_ascii_case(platform) {
            return true;
        }
        let split = |host: &str| -> Option<(String, String)> {
            let (name, port) = host.rsplit_once(':')?;
            Some((name.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase(), port.to_owned()))
        };
        match (split(&self.registry), split(platform)) {
            (Some((name, port)), Some((platform_name, platform_port))) => {
                port == platform_port && is_loopback(&name) && is_loopback(&platform_name)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}{}", self.registry, self.repository, self.reference)
    }
}

/// `localhost` or a loopback address, including the short forms (`127.1`) that the
/// resolver reads as IPv4.
fn is_loopback(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Ok(address) = host.parse::<IpAddr>() {
        return address.is_loopback();
    }
    // inet_aton's short forms: `127.1`, `127.0.1`.
    host.split('.').next() == Some("127") && host.split('.').all(|part| part.parse::<u32>().is_ok())
}

/// Whether images of `registry` may be used, given the operator's list of allowed
/// registries (`*` allows every one).
pub fn registry_allowed(registry: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_qualified_as_the_engine_reads_them() {
        let cases = [
            ("nginx", "docker.io", "library/nginx", ""),
            ("nginx:1.25", "docker.io", "library/nginx", ":1.25"),
            ("team/api@sha256:abc", "docker.io", "team/api", "@sha256:abc"),
            ("127.0.0.1:7701/shop:git-abc1234", "127.0.0.1:7701", "shop", ":git-abc1234"),
            ("localhost:7701/stacks/busybox", "localhost:7701", "stacks/busybox", ""),
            ("registry.example.com/a/b/c:v1", "registry.example.com", "a/b/c", ":v1"),
        ];
        for (text, registry, repository, reference) in cases {
            let image = ImageRef::parse(text).unwrap();
            assert_eq!(
                (image.registry.as_str(), image.repository.as_str(), image.reference.as_str()),
                (registry, repository, reference),
                "{text}"
            );
        }
        for bad in [
            "",
            "-x",
            "a b",
            "a//b",
            "/x",
            "registry.example.com/:v1",
            "x\n",
            "5d0da3dc9764",
            "sha256:5d0da3dc9764abcd",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_references_are_checked_and_qualified() {
        assert!(ImageRef::parse("127.0.0.1:7701/app@sha256:abc").is_ok());
        assert!(ImageRef::parse("nginx; rm -rf /").is_err());
        assert!(ImageRef::parse("-flag").is_err());
        let qualified = |text: &str| ImageRef::parse(text).unwrap().to_string();
        assert_eq!(qualified("nginx:1"), "docker.io/library/nginx:1");
        assert_eq!(qualified("team/api"), "docker.io/team/api");
        assert_eq!(qualified("127.0.0.1:7701/app:v1"), "127.0.0.1:7701/app:v1");
        assert_eq!(qualified("localhost/app"), "localhost/app");
    }

    #[test]
    fn the_platform_registry_is_recognised_under_its_loopback_names() {
        for name in [
            "127.0.0.1:7701/x",
            "localhost:7701/x",
            "127.1:7701/x",
            "127.0.0.2:7701/x",
            "[::1]:7701/x",
            "LOCALHOST:7701/x",
        ] {
            assert!(ImageRef::parse(name).unwrap().is_on("127.0.0.1:7701"), "{name}");
        }
        for name in ["127.0.0.1:7702/x", "10.0.0.1:7701/x", "docker.io/x", "localhost/x"] {
            assert!(!ImageRef::parse(name).unwrap().is_on("127.0.0.1:7701"), "{name}");
        }
        assert!(ImageRef::parse("10.0.0.5:7701/x").unwrap().is_on("10.0.0.5:7701"));
        assert!(!ImageRef::parse("127.0.0.1:7701/x").unwrap().is_on("10.0.0.5:7701"));
    }

    #[test]
    fn other_registries_are_allowed_only_when_listed() {
        assert!(!registry_allowed("docker.io", &[]));
        assert!(registry_allowed("docker.io", &["*".to_owned()]));
        assert!(registry_allowed("Registry.Example.com", &["registry.example.com".to_owned()]));
    }
}
