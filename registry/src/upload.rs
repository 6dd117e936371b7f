//! Blob upload sessions.
//!
//! State machine: `POST` opens a session (an empty staged blob in the store) → zero or
//! more `PATCH`es append at the current offset (a `Content-Range` must start exactly
//! there, else 416; a body that breaks off is cut back, so the client can resume) →
//! `PUT ?digest=` appends an optional last chunk and commits the blob, which the store
//! verifies against the digest; the session closes either way. `DELETE` closes it and
//! discards the bytes. A session belongs to the repository and the principal that opened
//! it and is unknown to anyone else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use skiff_store::Staged;

use crate::endpoint::RepoName;

/// A session's blob; `None` once committed or discarded.
pub type SessionBlob = Arc<tokio::sync::Mutex<Option<Staged>>>;

struct Session {
    repo: RepoName,
    principal: String,
    blob: SessionBlob,
}

/// The open uploads, by id.
#[derive(Default)]
pub struct Uploads {
    open: Mutex<HashMap<String, Session>>,
}

impl Uploads {
    /// Opens a session for `principal` under `repo`; returns its id.
    pub fn open(&self, repo: &RepoName, principal: &str, staged: Staged) -> String {
        let id = format!("{:032x}", rand::random::<u128>());
        let session = Session {
            repo: repo.clone(),
            principal: principal.to_owned(),
            blob: Arc::new(tokio::sync::Mutex::new(Some(staged))),
        };
        self.lock().insert(id.clone(), session);
        id
    }

    /// The blob of session `id`, if the session belongs to `repo` and `principal`.
    pub fn get(&self, repo: &RepoName, principal: &str, id: &str) -> Option<SessionBlob> {
        self.lock().get(id).filter(|s| &s.repo == repo && s.principal == principal).map(|s| s.blob.clone())
    }

    /// Closes a session, returning its blob to commit or discard.
    pub fn close(&self, repo: &RepoName, principal: &str, id: &str) -> Option<SessionBlob> {
        let mut open = self.lock();
        let owned = open.get(id).is_some_and(|s| &s.repo == repo && s.principal == principal);
        if owned { open.remove(id).map(|s| s.blob) } else { None }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A poisoned map only means a handler panicked mid-insert; the map itself is fine.
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
