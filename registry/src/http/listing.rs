//! Lists: the catalog, a repository's tags, the referrers of a manifest; paginated with `n`
//! and `last`.

use std::collections::HashMap;

use axum::response::{IntoResponse, Response};
use http::header;
use skiff_api::Digest;

use super::{Caller, Identity, Registry, set_header};
use crate::endpoint::RepoName;
use crate::error::OciError;
use crate::oci::OCI_INDEX;

/// The most entries one catalog, tags or referrers page returns.
pub(super) const MAX_PAGE: usize = 1000;

/// `n` from a query, capped at [`MAX_PAGE`].
pub(super) fn page_size(query: &HashMap<String, String>) -> usize {
    query.get("n").and_then(|n| n.parse().ok()).unwrap_or(MAX_PAGE).min(MAX_PAGE)
}

/// One page of a sorted list: entries after `last`, at most `n`, and whether more remain.
pub(super) fn paginate(items: Vec<String>, query: &HashMap<String, String>) -> (Vec<String>, Option<String>) {
    let limit = page_size(query);
    let mut after: Vec<String> = match query.get("last") {
        Some(last) => items.into_iter().filter(|t| t > last).collect(),
        None => items,
    };
    let more = after.len() > limit && limit > 0;
    after.truncate(limit);
    let next = if more { after.last().cloned() } else { None };
    (after, next)
}

pub(super) fn link_next(response: &mut Response, path: &str, limit: usize, last: Option<String>) {
    if let Some(last) = last {
        set_header(response, "link", &format!("<{path}?n={limit}&last={last}>; rel=\"next\""));
    }
}

pub(super) async fn catalog(
    registry: &Registry,
    caller: &Caller,
    query: &HashMap<String, String>,
) -> Result<Response, OciError> {
    let mut visible = Vec::new();
    for repo in registry.meta.repositories().await? {
        let has_manifests = match RepoName::parse(&repo) {
            Some(name) => !registry.meta.manifests(&name).await?.is_empty(),
            None => false,
        };
        if !has_manifests {
            continue;
        }
        let readable = match (&caller.identity, RepoName::parse(&repo)) {
            (Identity::Service, _) => true,
            (_, Some(name)) => registry.may_pull(caller, &name).await,
            (_, None) => false,
        };
        if readable {
            visible.push(repo);
        }
    }
    let (page, next) = paginate(visible, query);
    let mut response = axum::Json(serde_json::json!({ "repositories": page })).into_response();
    link_next(&mut response, "/v2/_catalog", page_size(query), next);
    Ok(response)
}

pub(super) async fn tags_list(
    registry: &Registry,
    repo: &RepoName,
    query: &HashMap<String, String>,
) -> Result<Response, OciError> {
    let tags = registry.meta.tags(repo).await?.ok_or_else(OciError::name_unknown)?;
    let (page, next) = paginate(tags, query);
    let mut response = axum::Json(serde_json::json!({ "name": repo.as_str(), "tags": page })).into_response();
    link_next(&mut response, &format!("/v2/{}/tags/list", repo.as_str()), page_size(query), next);
    Ok(response)
}

pub(super) async fn referrers(
    registry: &Registry,
    repo: &RepoName,
    subject: &Digest,
    query: &HashMap<String, String>,
) -> Result<Response, OciError> {
    let filter = query.get("artifactType");
    let manifests: Vec<serde_json::Value> = registry
        .meta
        .referrers(repo, subject)
        .await?
        .iter()
        .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(bytes).ok())
        .filter(|d| filter.is_none_or(|f| d.get("artifactType").and_then(|a| a.as_str()) == Some(f.as_str())))
        .take(MAX_PAGE)
        .collect();
    let index = serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut response =
        ([(header::CONTENT_TYPE, OCI_INDEX)], serde_json::to_vec(&index).expect("JSON values serialize"))
            .into_response();
    if filter.is_some() {
        set_header(&mut response, "oci-filters-applied", "artifactType");
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_last_and_are_capped() {
        let items = || ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let query = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        /// The query; the page and the `last` of the next one.
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], Option<&'a str>);
        let cases: [Case<'_>; 7] = [
            (&[], &["a", "b", "c", "d", "e"], None),
            (&[("n", "2")], &["a", "b"], Some("b")),
            (&[("n", "2"), ("last", "b")], &["c", "d"], Some("d")),
            (&[("n", "2"), ("last", "d")], &["e"], None),
            (&[("last", "e")], &[], None),
            (&[("n", "0")], &[], None),
            (&[("n", "many")], &["a", "b", "c", "d", "e"], None),
        ];
        for (pairs, page, next) in cases {
            let (got, more) = paginate(items(), &query(pairs));
            assert_eq!(got, page.to_vec(), "{pairs:?}");
            assert_eq!(more.as_deref(), next, "{pairs:?}");
        }
        assert_eq!(page_size(&query(&[("n", "100000")])), MAX_PAGE);
    }
}
