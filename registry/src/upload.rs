//! Blob upload sessions.
//!
//! State machine: `POST` opens a session (an empty staging file) → zero or more `PATCH`es
//! append at the current offset (a `Content-Range` must start exactly there, else 416) →
//! `PUT ?digest=` appends an optional last chunk, verifies the digest and moves the file
//! into the store, closing the session. `DELETE` closes it without storing anything. A
//! session belongs to the repository it was opened under and is unknown anywhere else.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::endpoint::RepoName;

/// One open upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub repo: RepoName,
    /// Who opened it; nobody else may continue it.
    pub principal: String,
    pub path: PathBuf,
    /// Bytes received so far.
    pub size: u64,
}

/// The open uploads, by id.
#[derive(Debug)]
pub struct Uploads {
    dir: PathBuf,
    open: Mutex<HashMap<String, Upload>>,
}

impl Uploads {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, open: Mutex::new(HashMap::new()) }
    }

    /// Opens a session under `repo` for `principal`; returns its id.
    pub async fn start(&self, repo: &RepoName, principal: &str) -> std::io::Result<String> {
        let id = format!("{:032x}", rand::random::<u128>());
        let path = self.dir.join(&id);
        tokio::fs::create_dir_all(&self.dir).await?;
        tokio::fs::write(&path, b"").await?;
        self.lock().insert(id.clone(), Upload { repo: repo.clone(), principal: principal.to_owned(), path, size: 0 });
        Ok(id)
    }

    /// The session `id` if it belongs to `repo` and `principal`.
    pub fn get(&self, repo: &RepoName, principal: &str, id: &str) -> Option<Upload> {
        self.lock().get(id).filter(|u| &u.repo == repo && u.principal == principal).cloned()
    }

    /// Records the new size after an append.
    pub fn set_size(&self, id: &str, size: u64) {
        if let Some(upload) = self.lock().get_mut(id) {
            upload.size = size;
        }
    }

    /// Closes a session, returning it; its file is the caller's to consume or remove.
    pub fn close(&self, repo: &RepoName, principal: &str, id: &str) -> Option<Upload> {
        let mut open = self.lock();
        if open.get(id).is_some_and(|u| &u.repo == repo && u.principal == principal) { open.remove(id) } else { None }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Upload>> {
        // A poisoned map only means a handler panicked mid-insert; the map itself is fine.
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
