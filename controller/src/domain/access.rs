//! What the router lets through to an app: the largest request body, and the client
//! addresses allowed and denied.

use skiff_api::{AccessPolicy, Cidr};

/// Entries an allow or deny list may hold.
const MAX_ENTRIES: usize = 100;
/// The largest body limit that may be set (10 GiB).
const MAX_BODY_LIMIT: u64 = 10 << 30;

/// Checks a policy, saying what is wrong with it.
///
/// # Errors
/// An address that does not parse, too many entries, or a body limit out of range.
pub fn check(policy: &AccessPolicy) -> Result<(), String> {
    for list in [&policy.allow, &policy.deny] {
        if list.len() > MAX_ENTRIES {
            return Err(format!("at most {MAX_ENTRIES} addresses may be allowed or denied"));
        }
        for entry in list {
            entry.parse::<Cidr>()?;
        }
    }
    match policy.max_body_bytes {
        Some(limit) if limit == 0 || limit > MAX_BODY_LIMIT => {
            Err(format!("the body limit must be between 1 byte and {} GiB", MAX_BODY_LIMIT >> 30))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_checked() {
        let good = AccessPolicy {
            max_body_bytes: Some(1 << 20),
            allow: vec!["10.0.0.0/8".into()],
            deny: vec!["10.0.0.7".into()],
        };
        assert!(check(&good).is_ok());
        assert!(check(&AccessPolicy { allow: vec!["10.0.0.0/40".into()], ..Default::default() }).is_err());
        assert!(check(&AccessPolicy { max_body_bytes: Some(0), ..Default::default() }).is_err());
        let many = AccessPolicy { deny: vec!["192.0.2.1".into(); MAX_ENTRIES + 1], ..Default::default() };
        assert!(check(&many).is_err());
    }
}
