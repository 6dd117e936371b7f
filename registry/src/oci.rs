//! OCI documents, pure: image manifests and indexes (Docker's schema 2 manifest and
//! manifest list too), the descriptors they hold, and the one walk over what a document
//! refers to, which both push validation and garbage collection use.

use serde::Deserialize;
use skiff_api::Digest;

/// The OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's manifest list, an index by another name.
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Whether `media_type` is an index's (whose descriptors are manifests, not blobs).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// A descriptor: what a document points at.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: Digest,
}

/// A manifest or an index, as far as the registry reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// An image manifest's config.
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// An image manifest's layers.
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
    /// An index's manifests.
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
    /// What the document is about (a signature's image, say): the referrers API lists it
    /// under its subject, which need not exist.
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default)]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What a document refers to, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference<'a> {
    /// A blob: an image manifest's config or a layer. Must be in the repository.
    Blob(&'a Digest),
    /// A manifest an index lists. Must be in the repository.
    Manifest(&'a Digest),
    /// The subject; may be missing.
    Subject(&'a Digest),
}

impl Reference<'_> {
    pub fn digest(&self) -> &Digest {
        match self {
            Self::Blob(digest) | Self::Manifest(digest) | Self::Subject(digest) => digest,
        }
    }
}

/// Why a pushed document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Document {
    /// Reads a pushed document and checks its shape against the media type it was pushed
    /// with: an index lists manifests and has no config or layers; an image manifest has a
    /// config and no `manifests`; a `mediaType` field, when present, agrees.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Self, Invalid> {
        let document: Self = serde_json::from_slice(bytes).map_err(|e| Invalid(format!("manifest is invalid: {e}")))?;
        if let Some(declared) = &document.media_type
            && declared != media_type
        {
            return Err(Invalid(format!(
                "Content-Type {media_type} does not match the manifest's mediaType {declared}"
            )));
        }
        if is_index(media_type) {
            if document.layers.is_some() || document.config.is_some() {
                return Err(Invalid("an index has no config or layers".into()));
            }
        } else {
            if document.manifests.is_some() {
                return Err(Invalid("an image manifest has no `manifests`; push it as an index".into()));
            }
            if document.config.is_none() {
                return Err(Invalid("manifest has no config".into()));
            }
        }
        Ok(document)
    }

    /// Reads a stored document whatever its type, for what it refers to; `None` for bytes
    /// that are no document.
    pub fn read(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// Everything the document refers to: config and layers, or manifests, then subject.
    pub fn references(&self) -> impl Iterator<Item = Reference<'_>> {
        let blobs = self.config.iter().chain(self.layers.iter().flatten()).map(|d| Reference::Blob(&d.digest));
        let manifests = self.manifests.iter().flatten().map(|d| Reference::Manifest(&d.digest));
        let subject = self.subject.iter().map(|d| Reference::Subject(&d.digest));
        blobs.chain(manifests).chain(subject)
    }

    /// The referrers API's descriptor of this document, stored as `digest` with `size`
    /// bytes of `media_type`: its artifact type (or config media type) and annotations.
    pub fn referrer_descriptor(&self, media_type: &str, digest: &Digest, size: usize) -> Vec<u8> {
        let artifact_type =
            self.artifact_type.as_deref().or_else(|| self.config.as_ref().and_then(|c| c.media_type.as_deref()));
        let mut descriptor = serde_json::json!({ "mediaType": media_type, "digest": digest, "size": size });
        if let Some(artifact_type) = artifact_type {
            descriptor["artifactType"] = artifact_type.into();
        }
        if let Some(annotations) = &self.annotations {
            descriptor["annotations"] = serde_json::Value::Object(annotations.clone());
        }
        serde_json::to_vec(&descriptor).expect("JSON values serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    fn digest(byte: char) -> String {
        format!("sha256:{}", byte.to_string().repeat(64))
    }

    #[test]
    fn documents_are_checked_against_the_type_they_were_pushed_as() {
        let (a, b, c) = (digest('a'), digest('b'), digest('c'));
        let manifest = format!(r#"{{"config":{{"digest":"{a}"}},"layers":[{{"digest":"{b}"}}]}}"#);
        let index = format!(r#"{{"manifests":[{{"digest":"{a}"}}],"subject":{{"digest":"{c}"}}}}"#);
        let cases: [(&str, &str, Option<&str>); 8] = [
            (MANIFEST, &manifest, None),
            (OCI_INDEX, &index, None),
            (DOCKER_MANIFEST_LIST, &index, None),
            (OCI_INDEX, &manifest, Some("an index has no config or layers")),
            (MANIFEST, &index, Some("push it as an index")),
            (MANIFEST, r#"{"layers":[]}"#, Some("manifest has no config")),
            (OCI_INDEX, r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#, Some("does not match")),
            (MANIFEST, r#"{"config":{"digest":"md5:nope"}}"#, Some("invalid")),
        ];
        for (media_type, body, refused) in cases {
            match (Document::parse(media_type, body.as_bytes()), refused) {
                (Ok(_), None) => {}
                (Err(Invalid(why)), Some(expected)) => assert!(why.contains(expected), "{why}"),
                (outcome, _) => panic!("{media_type} {body}: {outcome:?}"),
            }
        }
    }

    #[test]
    fn references_name_blobs_manifests_and_the_subject() {
        let (a, b, c) = (digest('a'), digest('b'), digest('c'));
        let manifest =
            format!(r#"{{"config":{{"digest":"{a}"}},"layers":[{{"digest":"{b}"}}],"subject":{{"digest":"{c}"}}}}"#);
        let read = Document::read(manifest.as_bytes()).unwrap();
        let kinds: Vec<String> = read
            .references()
            .map(|r| match r {
                Reference::Blob(d) => format!("blob {d}"),
                Reference::Manifest(d) => format!("manifest {d}"),
                Reference::Subject(d) => format!("subject {d}"),
            })
            .collect();
        assert_eq!(kinds, [format!("blob {a}"), format!("blob {b}"), format!("subject {c}")]);
        let index = format!(r#"{{"manifests":[{{"digest":"{a}"}},{{"digest":"{b}"}}]}}"#);
        assert_eq!(Document::read(index.as_bytes()).unwrap().references().count(), 2);
        assert!(Document::read(b"not json").is_none());
    }

    #[test]
    fn referrer_descriptors_carry_the_artifact_type_and_annotations() {
        let a = digest('a');
        let body = format!(
            r#"{{"config":{{"mediaType":"application/vnd.example.sig","digest":"{a}"}},"annotations":{{"k":"v"}}}}"#
        );
        let document = Document::parse(MANIFEST, body.as_bytes()).unwrap();
        let descriptor: serde_json::Value =
            serde_json::from_slice(&document.referrer_descriptor(MANIFEST, &a.parse().unwrap(), 42)).unwrap();
        assert_eq!(descriptor["artifactType"], "application/vnd.example.sig");
        assert_eq!(descriptor["annotations"]["k"], "v");
        assert_eq!(descriptor["size"], 42);
    }
}
