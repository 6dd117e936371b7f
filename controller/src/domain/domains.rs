//! Custom domains: which names an app answers to besides its own under the platform's
//! domain. A name, or a wildcard over names, that another owner's app holds is theirs.

use std::collections::HashMap;

use skiff_api::Domain;

use crate::db::{AppRow, UserRow};
use crate::error::ApiError;
use crate::state::Controller;

/// An app's custom domains.
pub struct Domains<'a>(&'a Controller);

impl Controller {
    pub fn domains(&self) -> Domains<'_> {
        Domains(self)
    }
}

/// A custom domain: lowercase labels of letters, digits and dashes, at least two, an
/// optional leading `*.` for every name under it, and not under the platform's domain.
pub fn check_domain(domain: &str, platform: &str) -> Result<String, ApiError> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let name = domain.strip_prefix("*.").unwrap_or(&domain);
    if name == platform || name.ends_with(&format!(".{platform}")) {
        return Err(ApiError::BadRequest(format!(
            "names under {platform} belong to apps by name; pick another domain"
        )));
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
        return Err(ApiError::BadRequest(format!(
            "`{domain}` is not a domain name like www.example.com or *.example.com"
        )));
    }
    // No top-level domain is numeric: all-number labels are an IP address.
    if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        return Err(ApiError::BadRequest(format!(
            "`{domain}` is an IP address; custom domains are names like www.example.com"
        )));
    }
    Ok(domain)
}

/// Whether two domains, exact or wildcard, can both match one host name (`*.example.com`
/// matches every name under example.com).
pub fn overlaps(a: &str, b: &str) -> bool {
    let under = |name: &str, wildcard: &str| name.ends_with(&wildcard[1..]);
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (None, None) => a == b,
        (Some(_), None) => under(b, a),
        (None, Some(_)) => under(a, b),
        (Some(_), Some(_)) => under(a, b) || under(b, a),
    }
}

impl Domains<'_> {
    /// The app's domains.
    pub async fn list(&self, app: &AppRow) -> Result<Vec<Domain>, ApiError> {
        let domains = self.0.db.domains(Some(app.id)).await?;
        Ok(domains.into_iter().map(|(_, domain, created_at)| Domain { domain, created_at }).collect())
    }

    /// Adds a domain, unless another owner's app holds it or a name it covers.
    pub async fn add(&self, user: &UserRow, app: &AppRow, domain: &str) -> Result<(), ApiError> {
        let c = self.0;
        let domain = check_domain(domain, &c.config.domain)?;
        let owners: HashMap<i64, i64> = c.db.apps(None).await?.into_iter().map(|a| (a.id, a.owner_id)).collect();
        let taken = c.db.domains(None).await?.into_iter().find(|(app_id, held, _)| {
            owners.get(app_id).is_some_and(|owner| *owner != app.owner_id) && overlaps(&domain, held)
        });
        if let Some((_, held, _)) = taken {
            return Err(ApiError::Conflict(format!("{domain} is already in use by another app ({held})")));
        }
        if !c.db.add_domain(app.id, &domain).await? {
            return Err(ApiError::Conflict(format!("{domain} is already in use")));
        }
        c.announce_change(&app.name, &format!("{} added domain {domain}", user.username)).await;
        Ok(())
    }

    /// Removes a domain.
    pub async fn remove(&self, user: &UserRow, app: &AppRow, domain: &str) -> Result<(), ApiError> {
        let c = self.0;
        let domain = domain.to_ascii_lowercase();
        if !c.db.remove_domain(app.id, &domain).await? {
            return Err(ApiError::NotFound(format!("{} has no domain {domain}; see `skiff domains`", app.name)));
        }
        c.announce_change(&app.name, &format!("{} removed domain {domain}", user.username)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_checked_and_kept_off_the_platform_domain() {
        assert_eq!(check_domain("WWW.Example.com.", "localhost").unwrap(), "www.example.com");
        assert_eq!(check_domain("*.example.com", "localhost").unwrap(), "*.example.com");
        for bad in ["example", "-a.example.com", "a..com", "a b.com", "*.com", "x.localhost", "localhost", "é.com"] {
            assert!(check_domain(bad, "localhost").is_err(), "{bad}");
        }
        for address in ["127.0.0.1", "10.1.2.3", "*.0.0.1", "1.2"] {
            assert!(check_domain(address, "localhost").is_err(), "{address}");
        }
        assert!(check_domain("*.localhost", "localhost").is_err(), "a wildcard over the platform's domain");
        assert!(check_domain("3com.example", "localhost").is_ok(), "digits in a name are fine");
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
            assert_eq!(overlaps(a, b), expected, "{a} / {b}");
        }
    }
}
