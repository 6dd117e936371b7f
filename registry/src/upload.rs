//! Blob upload sessions.
//!
//! State machine: `POST` opens a session (an empty staged blob in the store) → zero or
//! more `PATCH`es append at the current offset (a `Content-Range` must start exactly
//! there, else 416; a body that breaks off is cut back, so the client can resume) →
//! `PUT ?digest=` appends an optional last chunk and commits the blob, which the store
//! verifies against the digest; the session closes either way. `DELETE` closes it and
//! discards the bytes. A session belongs to the repository and the principal that opened
//! it and is unknown to anyone else. A session nobody has touched for a day is closed and
//! its bytes discarded when the next one opens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skiff_store::Staged;

use crate::endpoint::RepoName;

/// A session's blob; `None` once committed or discarded.
pub type SessionBlob = Arc<tokio::sync::Mutex<Option<Staged>>>;

/// How long an upload session may go untouched before it is abandoned.
pub(crate) const IDLE_LIMIT: Duration = Duration::from_secs(24 * 60 * 60);

struct Session {
    repo: RepoName,
    principal: String,
    blob: SessionBlob,
    touched: Instant,
}

/// The open uploads, by id.
pub struct Uploads {
    open: Mutex<HashMap<String, Session>>,
    idle_limit: Duration,
}

impl Default for Uploads {
    fn default() -> Self {
        Self::with_idle_limit(IDLE_LIMIT)
    }
}

impl Uploads {
    /// Uploads whose sessions are abandoned after `idle_limit` untouched.
    pub fn with_idle_limit(idle_limit: Duration) -> Self {
        Self { open: Mutex::default(), idle_limit }
    }

    /// Opens a session for `principal` under `repo`; returns its id. Sessions idle past the
    /// limit are closed first and their bytes discarded in the background.
    pub fn open(&self, repo: &RepoName, principal: &str, staged: Staged) -> String {
        let id = format!("{:032x}", rand::random::<u128>());
        let session = Session {
            repo: repo.clone(),
            principal: principal.to_owned(),
            blob: Arc::new(tokio::sync::Mutex::new(Some(staged))),
            touched: Instant::now(),
        };
        let mut open = self.lock();
        let idle: Vec<String> =
            open.iter().filter(|(_, s)| s.touched.elapsed() > self.idle_limit).map(|(id, _)| id.clone()).collect();
        for abandoned in idle.iter().filter_map(|id| open.remove(id)) {
            tokio::spawn(async move {
                if let Some(staged) = abandoned.blob.lock().await.take() {
                    staged.discard().await;
                }
            });
        }
        open.insert(id.clone(), session);
        id
    }

    /// The blob of session `id`, if the session belongs to `repo` and `principal`.
    pub fn get(&self, repo: &RepoName, principal: &str, id: &str) -> Option<SessionBlob> {
        let mut open = self.lock();
        let session = open.get_mut(id).filter(|s| &s.repo == repo && s.principal == principal)?;
        session.touched = Instant::now();
        Some(session.blob.clone())
    }

    /// Whether session `id` is open here.
    pub fn holds(&self, id: &str) -> bool {
        self.lock().contains_key(id)
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

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::DigestAlgorithm;

    async fn staged(dir: &std::path::Path, name: &str) -> Staged {
        Staged::create(dir.join(name), DigestAlgorithm::Sha256).await.unwrap()
    }

    #[tokio::test]
    async fn sessions_belong_to_their_owner_and_idle_ones_are_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let repo = RepoName::parse("shop/web").unwrap();
        let other = RepoName::parse("shop/api").unwrap();

        let uploads = Uploads::default();
        let id = uploads.open(&repo, "alice", staged(dir.path(), "kept").await);
        assert!(uploads.get(&other, "alice", &id).is_none());
        assert!(uploads.get(&repo, "bob", &id).is_none());
        uploads.open(&repo, "alice", staged(dir.path(), "second").await);
        assert!(uploads.get(&repo, "alice", &id).is_some(), "a fresh session survives others opening");

        let uploads = Uploads::with_idle_limit(Duration::ZERO);
        let idle = uploads.open(&repo, "alice", staged(dir.path(), "idle").await);
        tokio::time::sleep(Duration::from_millis(5)).await;
        uploads.open(&repo, "alice", staged(dir.path(), "next").await);
        assert!(uploads.get(&repo, "alice", &idle).is_none(), "the idle session is closed");
        for _ in 0..100 {
            if !dir.path().join("idle").exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!dir.path().join("idle").exists(), "and its bytes are discarded");
        assert!(dir.path().join("next").exists());
    }
}
