//! What the platform accepts of what users set, checked where every component can reach
//! it (the controller before it stores, the CLI before it sends): config vars, custom
//! domains, and what the router lets through to an app.

use std::collections::BTreeMap;

use crate::wire::{AccessPolicy, Cidr};

/// The longest config value, in bytes.
const MAX_CONFIG_VALUE: usize = 32 * 1024;
/// The largest config, names and values together, in bytes.
const MAX_CONFIG: usize = 256 * 1024;

/// What is wrong with a config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("`{0}` is not a valid config name; use letters, digits and `_`, not starting with a digit")]
    Name(String),
    #[error("PORT is set by Skiff; listen on $PORT instead")]
    Port,
    #[error("the value of {0} is longer than 32 KiB or holds a NUL byte")]
    Value(String),
    #[error("the config would exceed 256 KiB")]
    TooLarge,
}

/// Checks a whole config: names follow the shell's rules (`PORT` is Skiff's), values and
/// the whole are bounded.
///
/// # Errors
/// The first thing wrong.
pub fn check_config(config: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, value) in config {
        let valid = name.len() <= 256
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ConfigError::Name(name.chars().take(64).collect()));
        }
        if name == "PORT" {
            return Err(ConfigError::Port);
        }
        if value.len() > MAX_CONFIG_VALUE || value.contains('\0') {
            return Err(ConfigError::Value(name.clone()));
        }
    }
    if config.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > MAX_CONFIG {
        return Err(ConfigError::TooLarge);
    }
    Ok(())
}

/// What is wrong with a custom domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("`{0}` is not a domain name like www.example.com or *.example.com")]
    NotAName(String),
    #[error("`{0}` is an IP address; custom domains are names like www.example.com")]
    Address(String),
    #[error("names under {0} belong to apps by name; pick another domain")]
    Platform(String),
}

/// A custom domain: lowercase labels of letters, digits and dashes, at least two, with an
/// optional leading `*.` for every name under it, never an IP address. Read case and a
/// trailing dot aside.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomDomain(String);

impl CustomDomain {
    /// Reads a domain that must not be under the platform's own domain `platform` (whose
    /// names belong to apps by name).
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(text: &str, platform: &str) -> Result<Self, DomainError> {
        let domain = text.trim().trim_end_matches('.').to_ascii_lowercase();
        let name = domain.strip_prefix("*.").unwrap_or(&domain);
        if name == platform || name.ends_with(&format!(".{platform}")) {
            return Err(DomainError::Platform(platform.to_owned()));
        }
        let labels: Vec<&str> = name.split('.').collect();
        let valid = name.len() <= 253
            && labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if !valid {
            return Err(DomainError::NotAName(domain));
        }
        // No top-level domain is numeric: all-number labels are an IP address.
        if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
            return Err(DomainError::Address(domain));
        }
        Ok(Self(domain))
    }

    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this domain and `other` (stored text, exact or wildcard) can both match one
    /// host name (`*.example.com` matches every name under example.com).
    pub fn overlaps(&self, other: &str) -> bool {
        let under = |name: &str, wildcard: &str| name.ends_with(&wildcard[1..]);
        let this = self.as_str();
        match (this.strip_prefix('*'), other.strip_prefix('*')) {
            (None, None) => this == other,
            (Some(_), None) => under(other, this),
            (None, Some(_)) => under(this, other),
            (Some(_), Some(_)) => under(this, other) || under(other, this),
        }
    }
}

impl std::fmt::Display for CustomDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Entries an allow or deny list may hold.
const MAX_ACCESS_ENTRIES: usize = 100;
/// The largest body limit that may be set (10 GiB).
const MAX_BODY_LIMIT: u64 = 10 << 30;

/// What is wrong with an access policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("at most {MAX_ACCESS_ENTRIES} addresses may be allowed or denied")]
    TooMany,
    #[error(transparent)]
    Address(#[from] crate::wire::CidrError),
    #[error("the body limit must be between 1 byte and {} GiB", MAX_BODY_LIMIT >> 30)]
    BodyLimit,
}

impl AccessPolicy {
    /// Checks the policy: addresses or blocks that parse, at most a hundred of each, a
    /// body limit from 1 byte to 10 GiB.
    ///
    /// # Errors
    /// The first thing wrong.
    pub fn check(&self) -> Result<(), AccessError> {
        for list in [&self.allow, &self.deny] {
            if list.len() > MAX_ACCESS_ENTRIES {
                return Err(AccessError::TooMany);
            }
            for entry in list {
                entry.parse::<Cidr>()?;
            }
        }
        match self.max_body_bytes {
            Some(limit) if limit == 0 || limit > MAX_BODY_LIMIT => Err(AccessError::BodyLimit),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked() {
        let config = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        assert_eq!(check_config(&config(&[("GREETING", "hi"), ("_X1", "")])), Ok(()));
        assert_eq!(check_config(&config(&[("1X", "a")])), Err(ConfigError::Name("1X".into())));
        assert_eq!(check_config(&config(&[("A-B", "a")])), Err(ConfigError::Name("A-B".into())));
        assert_eq!(check_config(&config(&[("PORT", "80")])), Err(ConfigError::Port));
        assert_eq!(check_config(&config(&[("A", "x\0y")])), Err(ConfigError::Value("A".into())));
        let long = "x".repeat(MAX_CONFIG_VALUE + 1);
        assert_eq!(check_config(&config(&[("A", &long)])), Err(ConfigError::Value("A".into())));
        let many: BTreeMap<String, String> = (0..9).map(|i| (format!("K{i}"), "x".repeat(30_000))).collect();
        assert_eq!(check_config(&many), Err(ConfigError::TooLarge));
    }

    #[test]
    fn domains_are_checked_and_kept_off_the_platform_domain() {
        assert_eq!(CustomDomain::parse("WWW.Example.com.", "localhost").unwrap().as_str(), "www.example.com");
        assert_eq!(CustomDomain::parse("*.example.com", "localhost").unwrap().as_str(), "*.example.com");
        for bad in ["example", "-a.example.com", "a..com", "a b.com", "*.com", "é.com"] {
            assert!(matches!(CustomDomain::parse(bad, "localhost"), Err(DomainError::NotAName(_))), "{bad}");
        }
        for address in ["127.0.0.1", "10.1.2.3", "*.0.0.1", "1.2"] {
            assert!(matches!(CustomDomain::parse(address, "localhost"), Err(DomainError::Address(_))), "{address}");
        }
        for platform in ["x.localhost", "localhost", "*.localhost"] {
            assert!(matches!(CustomDomain::parse(platform, "localhost"), Err(DomainError::Platform(_))), "{platform}");
        }
        assert!(CustomDomain::parse("3com.example", "localhost").is_ok(), "digits in a name are fine");
    }

    #[test]
    fn domains_overlap_when_one_host_name_could_match_both() {
        let cases = [
            ("www.example.com", "www.example.com", true),
            ("www.example.com", "api.example.com", false),
            ("*.example.com", "www.example.com", true),
            ("*.example.com", "a.b.example.com", true),
            ("www.example.com", "*.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "*.api.example.com", true),
            ("*.api.example.com", "*.example.com", true),
            ("*.example.com", "*.example.org", false),
            ("*.example.com", "www.notexample.com", false),
        ];
        for (a, b, expected) in cases {
            assert_eq!(CustomDomain::parse(a, "localhost").unwrap().overlaps(b), expected, "{a} / {b}");
        }
    }

    #[test]
    fn access_policies_are_checked() {
        let good = AccessPolicy {
            max_body_bytes: Some(1 << 20),
            allow: vec!["10.0.0.0/8".into()],
            deny: vec!["10.0.0.7".into()],
        };
        assert_eq!(good.check(), Ok(()));
        let bad_block = AccessPolicy { allow: vec!["10.0.0.0/40".into()], ..Default::default() };
        assert!(matches!(bad_block.check(), Err(AccessError::Address(_))));
        assert_eq!(AccessPolicy { max_body_bytes: Some(0), ..Default::default() }.check(), Err(AccessError::BodyLimit));
        let many = AccessPolicy { deny: vec!["192.0.2.1".into(); MAX_ACCESS_ENTRIES + 1], ..Default::default() };
        assert_eq!(many.check(), Err(AccessError::TooMany));
    }
}
