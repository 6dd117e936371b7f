//! Procfiles: `<process type>: <command>` per line; `#` comments and blank lines ignored.

use std::collections::BTreeMap;

use skiff_api::ProcessType;

/// Why a Procfile was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcfileError {
    #[error("Procfile line {line}: expected `type: command`")]
    Shape { line: usize },
    #[error("Procfile line {line}: {reason}")]
    Type { line: usize, reason: String },
    #[error("Procfile line {line}: process type `{name}` appears twice")]
    Duplicate { line: usize, name: String },
    #[error("Procfile declares no process types")]
    Empty,
}

/// Parses a Procfile.
///
/// # Errors
/// A line that is not `type: command`, an invalid or repeated type, or no types at all.
pub fn parse(text: &str) -> Result<BTreeMap<ProcessType, String>, ProcfileError> {
    let mut processes = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (name, command) = trimmed.split_once(':').ok_or(ProcfileError::Shape { line })?;
        let command = command.trim();
        if command.is_empty() {
            return Err(ProcfileError::Shape { line });
        }
        let process: ProcessType = name
            .trim()
            .parse()
            .map_err(|e: skiff_api::NameError| ProcfileError::Type { line, reason: e.to_string() })?;
        if processes.insert(process, command.to_owned()).is_some() {
            return Err(ProcfileError::Duplicate { line, name: name.trim().to_owned() });
        }
    }
    if processes.is_empty() { Err(ProcfileError::Empty) } else { Ok(processes) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procfiles_map_types_to_commands() {
        let parsed = parse("# comment\nweb: httpd -f -p $PORT\n\nworker:  ./work --fast \n").unwrap();
        let pairs: Vec<(&str, &str)> = parsed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("web", "httpd -f -p $PORT"), ("worker", "./work --fast")]);
    }

    #[test]
    fn bad_procfiles_say_which_line() {
        assert_eq!(parse("web httpd"), Err(ProcfileError::Shape { line: 1 }));
        assert_eq!(parse("\nweb:"), Err(ProcfileError::Shape { line: 2 }));
        assert!(matches!(parse("Web: x"), Err(ProcfileError::Type { line: 1, .. })));
        assert!(matches!(parse("web: a\nweb: b"), Err(ProcfileError::Duplicate { line: 2, .. })));
        assert_eq!(parse("# nothing"), Err(ProcfileError::Empty));
    }
}
