//! Validated names. Every external string that may reach a path, a process argument, a
//! container name or a registry repository passes through one of these first.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} `{value}`: {rule}")]
pub struct NameError {
    kind: &'static str,
    value: String,
    rule: &'static str,
}

/// `true` when `value` is a lowercase letter followed by at most `max_rest` lowercase
/// letters, digits or dashes (and `extra` characters), not ending with a dash.
fn is_slug(value: &str, max_rest: usize, extra: &[u8]) -> bool {
    let bytes = value.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            first.is_ascii_lowercase()
                && rest.len() <= max_rest
                && rest.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || extra.contains(b))
                && !value.ends_with('-')
        }
        None => false,
    }
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $rule:literal, $pattern:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(value: &str) -> Result<Self, NameError> {
                let check: fn(&str) -> bool = $check;
                if check(value) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(NameError { kind: $kind, value: value.chars().take(80).collect(), rule: $rule })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, NameError> {
                value.parse()
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "pattern": $pattern, "description": $rule})
            }
        }
    };
}

validated_name!(
    /// An app name: `^[a-z][a-z0-9-]{0,62}$`, not ending with `-`. Safe in paths, process
    /// arguments, host names, container names and registry repositories.
    AppName,
    "app name",
    "use 1 to 63 lowercase letters, digits and dashes, starting with a letter",
    "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$",
    |v| is_slug(v, 62, b"")
);

validated_name!(
    /// A user name: `^[a-z][a-z0-9_.-]{0,31}$`.
    Username,
    "user name",
    "use 1 to 32 lowercase letters, digits, `.`, `_` and `-`, starting with a letter",
    "^[a-z]([a-z0-9_.-]{0,30}[a-z0-9_.])?$",
    |v| is_slug(v, 31, b"._")
);

validated_name!(
    /// A stack name (the base image an app builds on): `^[a-z][a-z0-9-]{0,30}$`.
    StackName,
    "stack name",
    "use 1 to 31 lowercase letters, digits and dashes, starting with a letter",
    "^[a-z]([a-z0-9-]{0,29}[a-z0-9])?$",
    |v| is_slug(v, 30, b"")
);

validated_name!(
    /// A pipeline name: `^[a-z][a-z0-9-]{0,62}$`, not ending with `-`, as app names.
    PipelineName,
    "pipeline name",
    "use 1 to 63 lowercase letters, digits and dashes, starting with a letter",
    "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$",
    |v| is_slug(v, 62, b"")
);

validated_name!(
    /// A Procfile process type such as `web` or `worker`: `^[a-z][a-z0-9-]{0,30}$`.
    ProcessType,
    "process type",
    "use 1 to 31 lowercase letters, digits and dashes, starting with a letter",
    "^[a-z]([a-z0-9-]{0,29}[a-z0-9])?$",
    |v| is_slug(v, 30, b"")
);

impl ProcessType {
    /// The process type that gets the app's HTTP traffic, as on Heroku: one container of it
    /// runs by default, and the router sends requests to its containers.
    pub const WEB: &'static str = "web";

    /// The `web` process type.
    pub fn web() -> Self {
        Self(Self::WEB.to_owned())
    }

    /// Whether `name` is the web process type.
    pub fn is_web(name: &str) -> bool {
        name == Self::WEB
    }

    /// The process type that runs once for every new release, before it gets any traffic
    /// (Heroku's release phase: migrations and the like); no container of it keeps running.
    pub const RELEASE: &'static str = "release";

    /// Whether `name` is the release phase's process type.
    pub fn is_release(name: &str) -> bool {
        name == Self::RELEASE
    }
}

/// A content digest, `sha256:<64 hex>` or `sha512:<128 hex>`, lowercase. Safe as a file
/// name or a storage key once parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

/// The hash functions a [`Digest`] may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Sha256,
    Sha512,
}

impl Digest {
    /// The digest as `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hash function.
    pub fn algorithm(&self) -> DigestAlgorithm {
        if self.0.starts_with("sha512:") { DigestAlgorithm::Sha512 } else { DigestAlgorithm::Sha256 }
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, hex)| hex)
    }

    /// Builds a digest from an algorithm and raw hash bytes.
    pub fn from_hash(algorithm: DigestAlgorithm, hash: &[u8]) -> Self {
        let name = match algorithm {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        };
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("{name}:{hex}"))
    }
}

impl FromStr for Digest {
    type Err = NameError;
    fn from_str(value: &str) -> Result<Self, NameError> {
        let valid = match value.split_once(':') {
            Some(("sha256", hex)) => hex.len() == 64,
            Some(("sha512", hex)) => hex.len() == 128,
            _ => false,
        } && value
            .split_once(':')
            .is_some_and(|(_, hex)| hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(NameError {
                kind: "digest",
                value: value.chars().take(80).collect(),
                rule: "use sha256:<64 lowercase hex> or sha512:<128 lowercase hex>",
            })
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, NameError> {
        value.parse()
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> String {
        digest.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AppName {
    /// The name of the review app of `branch` of this app: `<app>-<branch>`, the branch
    /// lowercased with every run of other characters made one `-`; when that is longer
    /// than an app name may be, the branch is cut and six hexadecimal digits of its hash
    /// keep names of different branches apart. `None` for a branch with no letter or digit.
    pub fn review_app(&self, branch: &str) -> Option<AppName> {
        let mut slug = String::new();
        for c in branch.chars().map(|c| c.to_ascii_lowercase()) {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                slug.push(c);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let slug = slug.trim_end_matches('-');
        if slug.is_empty() {
            return None;
        }
        let whole = format!("{self}-{slug}");
        if whole.len() <= 63 {
            return whole.parse().ok();
        }
        // FNV-1a: stable across builds and platforms, unlike the standard hasher.
        let hash =
            branch.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let room = 63usize.saturating_sub(self.as_str().len() + 1 + 7);
        let cut = slug[..room.min(slug.len())].trim_end_matches('-');
        let name = if cut.is_empty() {
            format!("{}-{:06x}", &self.as_str()[..self.as_str().len().min(56)], hash & 0xff_ffff)
        } else {
            format!("{self}-{cut}-{:06x}", hash & 0xff_ffff)
        };
        name.trim_end_matches('-').parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_follow_the_design_rule() {
        for good in ["a", "my-app", "app2", &format!("a{}", "b".repeat(62))] {
            assert!(good.parse::<AppName>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "-app",
            "App",
            "9app",
            "app-",
            "a;rm -rf /",
            "$(id)",
            "`id`",
            "a\nb",
            "../etc",
            "a/b",
            "a b",
            "app.git",
            &format!("a{}", "b".repeat(63)),
        ] {
            assert!(bad.parse::<AppName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_deserialize_only_when_valid() {
        assert!(serde_json::from_str::<AppName>("\"ok\"").is_ok());
        let err = serde_json::from_str::<AppName>("\"Not OK\"").unwrap_err();
        assert!(err.to_string().contains("invalid app name"));
    }

    #[test]
    fn digests_are_validated_before_they_reach_a_path() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(good.parse::<Digest>().unwrap().hex(), "a".repeat(64));
        assert!(format!("sha512:{}", "0".repeat(128)).parse::<Digest>().is_ok());
        for bad in [
            "sha256:baddigeststring".to_owned(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("md5:{}", "a".repeat(32)),
            format!("sha256:../{}", "a".repeat(61)),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
    }

    #[test]
    fn user_names_allow_dots_and_underscores() {
        assert!("alice.b_c".parse::<Username>().is_ok());
        assert!("Alice".parse::<Username>().is_err());
    }

    #[test]
    fn review_app_names_are_valid_app_names_that_tell_branches_apart() {
        let shop: AppName = "shop".parse().unwrap();
        assert_eq!(shop.review_app("feature-x").unwrap().as_str(), "shop-feature-x");
        assert_eq!(shop.review_app("Fix/Login_Page!").unwrap().as_str(), "shop-fix-login-page");
        assert_eq!(shop.review_app("--/--"), None);
        let long = "a-very-long-branch-name-that-goes-on-and-on-past-what-fits-in-a-name";
        let (one, two) = (shop.review_app(long).unwrap(), shop.review_app(&format!("{long}-2")).unwrap());
        assert!(one.as_str().len() <= 63 && two.as_str().len() <= 63, "{one} {two}");
        assert_ne!(one, two, "cut names of different branches differ");
        assert!(one.as_str().starts_with("shop-a-very-long-branch"), "{one}");
        let longest: AppName = "a".repeat(63).parse().unwrap();
        let review = longest.review_app("feature").unwrap();
        assert!(review.as_str().len() <= 63, "{review}");
    }
}
