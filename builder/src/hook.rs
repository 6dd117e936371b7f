//! The pre-receive hook's two ends.
//!
//! git runs the hook program (`skiffd hook pre-receive`) with the ref updates on stdin and
//! two variables the builder set for `git receive-pack`: `SKIFF_HOOK_SOCKET` (the builder's
//! Unix socket) and `SKIFF_PUSH` (this push's id). The hook sends the updates and git's
//! quarantine variables (new objects are only visible through them until the hook
//! succeeds) as one JSON line; the builder answers with JSON lines of output and a final
//! exit status, which the hook prints and returns.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The variables git sets for hooks that the build needs to see pushed objects.
pub const GIT_ENV: &[&str] = &["GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH"];

/// One ref update as git reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

impl RefUpdate {
    /// Parses a `<old> <new> <ref>` line.
    pub fn parse(line: &str) -> Option<Self> {
        let mut parts = line.split_whitespace();
        let update =
            Self { old: parts.next()?.to_owned(), new: parts.next()?.to_owned(), name: parts.next()?.to_owned() };
        let is_sha = |s: &str| s.len() >= 40 && s.bytes().all(|b| b.is_ascii_hexdigit());
        (is_sha(&update.old) && is_sha(&update.new) && parts.next().is_none()).then_some(update)
    }

    /// Whether the update deletes the ref.
    pub fn is_delete(&self) -> bool {
        self.new.bytes().all(|b| b == b'0')
    }
}

/// What the hook sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookRequest {
    pub push: String,
    pub updates: Vec<RefUpdate>,
    pub git_env: Vec<(String, String)>,
}

/// What the builder answers, line by line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookReply {
    Out(String),
    Exit(i32),
}

/// The hook program's side: returns the exit status git should see.
pub async fn pre_receive() -> i32 {
    let (Ok(socket), Ok(push)) = (std::env::var("SKIFF_HOOK_SOCKET"), std::env::var("SKIFF_PUSH")) else {
        println!("skiff: this repository only takes pushes through the Skiff builder");
        return 1;
    };
    let mut updates = Vec::new();
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = stdin.next_line().await {
        if let Some(update) = RefUpdate::parse(&line) {
            updates.push(update);
        }
    }
    let git_env = GIT_ENV.iter().filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?))).collect();
    match relay(&socket, HookRequest { push, updates, git_env }).await {
        Ok(status) => status,
        Err(error) => {
            println!("skiff: lost the builder ({error}); nothing was deployed");
            1
        }
    }
}

/// How long a build may be silent before the pusher hears that it is still going.
const DEFAULT_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(10);

async fn relay(socket: &str, request: HookRequest) -> std::io::Result<i32> {
    let stream = UnixStream::connect(socket).await?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(&request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut replies = BufReader::new(read).lines();
    let mut stdout = tokio::io::stdout();
    // A silent step (a long compile, a big upload) still shows signs of life.
    let keepalive = std::env::var("SKIFF_HOOK_KEEPALIVE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(DEFAULT_KEEPALIVE, std::time::Duration::from_secs);
    let mut silent = std::time::Duration::ZERO;
    loop {
        let Ok(line) = tokio::time::timeout(keepalive, replies.next_line()).await else {
            silent += keepalive;
            stdout.write_all(format!("       ... still working ({}s)\n", silent.as_secs()).as_bytes()).await?;
            stdout.flush().await?;
            continue;
        };
        let Some(line) = line? else { break };
        silent = std::time::Duration::ZERO;
        match serde_json::from_str(&line) {
            Ok(HookReply::Out(text)) => {
                stdout.write_all(text.as_bytes()).await?;
                stdout.flush().await?;
            }
            Ok(HookReply::Exit(status)) => return Ok(status),
            Err(_) => continue,
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the build ended without a result"))
}

/// The builder's side of one hook connection: output goes back as JSON lines, and is kept
/// as the build's log.
pub struct Output {
    /// The pusher's end; none for a build nobody watches (from a source repository).
    write: Option<tokio::net::unix::OwnedWriteHalf>,
    log: String,
}

impl Output {
    pub fn new(write: tokio::net::unix::OwnedWriteHalf) -> Self {
        Self { write: Some(write), log: String::new() }
    }

    /// Output that is only kept as the build's log.
    pub fn detached() -> Self {
        Self { write: None, log: String::new() }
    }

    /// Everything shown so far.
    pub fn log(&self) -> &str {
        &self.log
    }

    async fn send(&mut self, reply: &HookReply) {
        if let HookReply::Out(text) = reply {
            self.log.push_str(text);
        }
        let mut line = serde_json::to_vec(reply).expect("replies serialize");
        line.push(b'\n');
        // A pusher that went away cannot read anything more; the build still finishes.
        if let Some(write) = &mut self.write {
            let _ = write.write_all(&line).await;
        }
    }

    /// A step heading: `-----> text`.
    pub async fn step(&mut self, text: &str) {
        self.send(&HookReply::Out(format!("-----> {text}\n"))).await;
    }

    /// A detail line, indented under its step.
    pub async fn detail(&mut self, text: &str) {
        self.send(&HookReply::Out(format!("       {text}\n"))).await;
    }

    /// Ends the hook with a status.
    pub async fn exit(mut self, status: i32) {
        self.send(&HookReply::Exit(status)).await;
        if let Some(write) = &mut self.write {
            let _ = write.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_update_lines_parse() {
        let z = "0".repeat(40);
        let a = "a".repeat(40);
        let update = RefUpdate::parse(&format!("{z} {a} refs/heads/main")).unwrap();
        assert_eq!(update.name, "refs/heads/main");
        assert!(!update.is_delete());
        assert!(RefUpdate::parse(&format!("{a} {z} refs/heads/x")).unwrap().is_delete());
        assert_eq!(RefUpdate::parse("garbage"), None);
        assert_eq!(RefUpdate::parse(&format!("{a} {a} refs/heads/main extra")), None);
    }

    #[test]
    fn replies_are_one_json_object_per_line() {
        let text = serde_json::to_string(&HookReply::Out("hi\n".into())).unwrap();
        assert_eq!(text, r#"{"out":"hi\n"}"#);
        assert_eq!(serde_json::from_str::<HookReply>(r#"{"exit":1}"#).unwrap(), HookReply::Exit(1));
    }
}
