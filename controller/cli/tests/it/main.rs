//! The CLI without a platform: its help, usage errors and the messages for common mistakes.

use std::path::Path;

fn context(dir: &Path, url: &str) -> skiff_cli::Context {
    skiff_cli::Context {
        config_dir: dir.join("config"),
        cwd: dir.to_owned(),
        home: dir.to_owned(),
        url: Some(url.to_owned()),
        token: None,
        colour: false,
        live_progress: false,
        server_version: Default::default(),
    }
}

async fn run(context: &skiff_cli::Context, args: &[&str]) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status =
        skiff_cli::run(std::iter::once("skiff").chain(args.iter().copied()), context, &mut out, &mut err).await;
    (status, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

/// Compares with a stored snapshot; `SKIFF_UPDATE_SNAPSHOTS=1` rewrites it instead.
fn assert_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name);
    if std::env::var_os("SKIFF_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(actual, expected, "{name} changed; rerun with SKIFF_UPDATE_SNAPSHOTS=1 if that is intended");
}

#[tokio::test]
async fn help_lists_every_verb() {
    let dir = tempfile::tempdir().unwrap();
    let (status, out, _) = run(&context(dir.path(), "http://127.0.0.1:9"), &["--help"]).await;
    assert_eq!(status, 0);
    assert_snapshot("help.txt", &out);
    let (status, out, _) = run(&context(dir.path(), "http://127.0.0.1:9"), &["logs", "--help"]).await;
    assert_eq!(status, 0);
    assert_snapshot("logs-help.txt", &out);
}

#[tokio::test]
async fn every_verbs_help_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), "http://127.0.0.1:9");
    let (_, help, _) = run(&ctx, &["--help"]).await;
    let verbs = help.lines().skip_while(|l| *l != "Commands:").skip(1).take_while(|l| !l.is_empty());
    let mut all = String::new();
    for verb in verbs.filter_map(|line| line.split_whitespace().next()) {
        let (status, out, err) = run(&ctx, &[verb, "--help"]).await;
        assert_eq!(status, 0, "{verb}: {err}");
        all.push_str(&format!("== skiff {verb} --help\n{out}\n"));
    }
    assert_snapshot("verbs-help.txt", &all);
}

#[tokio::test]
async fn common_mistakes_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), "http://127.0.0.1:9");

    let (status, _, err) = run(&ctx, &["apps"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("not logged in; run `skiff auth:login`"), "{err}");

    let (status, _, err) = run(&ctx, &["nosuchverb"]).await;
    assert_eq!(status, 2, "usage errors exit 2: {err}");

    let (status, _, err) = run(&ctx, &["ps:scale", "-a", "Bad_Name", "web=1"]).await;
    assert_eq!(status, 2, "{err}");
    assert!(err.contains("invalid app name"), "{err}");

    let with_token = skiff_cli::Context { token: Some("t".into()), ..ctx.clone() };
    let (status, _, err) = run(&with_token, &["config"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("no `skiff` git remote here; pass `-a APP`"), "{err}");

    // Port 9 (discard) has no controller on loopback: the network is "down".
    let (status, _, err) = run(&with_token, &["apps"]).await;
    assert_eq!(status, 1);
    assert!(
        err.contains("cannot reach the controller at http://127.0.0.1:9") && err.contains("is Skiff running?"),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_values_are_usage_errors_that_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = skiff_cli::Context { token: Some("t".into()), ..context(dir.path(), "http://127.0.0.1:9") };
    let cases: &[(&[&str], &str)] = &[
        (&["config:set", "FOO", "-a", "shop"], "`FOO` is not KEY=VALUE"),
        (&["config:set", "=1", "-a", "shop"], "has no key"),
        (&["ps:scale", "web=abc", "-a", "shop"], "`abc` is not a number"),
        (&["ps:scale", "web", "-a", "shop"], "`web` is not TYPE=N"),
        (&["limits:set", "web", "memory=lots", "-a", "shop"], "`lots` is not a size"),
        (&["limits:set", "web", "cpu=-1", "-a", "shop"], "is not a number of cores"),
        (&["limits:set", "web", "disk=1g", "-a", "shop"], "is not memory=SIZE or cpu=CORES"),
        (&["access:max-body", "huge", "-a", "shop"], "is not a size"),
        (&["releases:info", "three", "-a", "shop"], "is not a release version"),
        (&["releases:rollback", "vx", "-a", "shop"], "is not a release version"),
    ];
    for (args, message) in cases {
        let (status, _, err) = run(&ctx, args).await;
        assert_eq!(status, 2, "{args:?}: {err}");
        assert!(err.contains(message) && err.contains("--help"), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn completions_are_generated_for_the_usual_shells() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let (status, out, err) = run(&context(dir.path(), "http://127.0.0.1:9"), &["completions", shell]).await;
        assert_eq!(status, 0, "{err}");
        assert!(out.contains("config:set"), "{shell}");
    }
}

/// A controller that answers `[]` to every request, saying it is `version`.
async fn controller_of_version(version: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nskiff-version: {version}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n[]"
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    url
}

#[tokio::test]
async fn an_older_cli_says_so_and_a_current_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let newer =
        skiff_cli::Context { token: Some("t".into()), ..context(dir.path(), &controller_of_version("99.0.0").await) };
    let (status, out, err) = run(&newer, &["apps"]).await;
    assert_eq!(status, 0, "{err}");
    assert!(out.is_empty() || out.contains("NAME"), "{out}");
    assert!(err.contains("older than the controller (99.0.0); update it"), "{err}");
    let same = skiff_cli::Context {
        token: Some("t".into()),
        ..context(dir.path(), &controller_of_version(skiff_cli::VERSION).await)
    };
    let (status, _, err) = run(&same, &["apps"]).await;
    assert_eq!((status, err.as_str()), (0, ""));
}
