//! A corpus of real-world and malformed syslog lines (`tests/corpus/syslog.jsonl`), each
//! checked field by field: the app name, the timestamp and the message text.

use skiff_logger::syslog::parse;

#[derive(serde::Deserialize)]
struct Case {
    case: String,
    raw: String,
    app_name: String,
    timestamp: Option<String>,
    text: String,
}

#[test]
fn every_corpus_line_parses_field_by_field() {
    let corpus = include_str!("../corpus/syslog.jsonl");
    let mut failures = Vec::new();
    let mut count = 0;
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let case: Case = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let parsed = parse(&case.raw);
        count += 1;
        if (parsed.app_name.as_str(), parsed.timestamp.as_deref(), parsed.text.as_str())
            != (case.app_name.as_str(), case.timestamp.as_deref(), case.text.as_str())
        {
            failures.push(format!("{}: got {parsed:?}", case.case));
        }
    }
    assert!(count >= 20, "the corpus has {count} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
