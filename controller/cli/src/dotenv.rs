//! `.env` files: `KEY=value` lines, `#` comments, optional `export `, values optionally in
//! single or double quotes (double quotes understand `\\n`, `\\"` and `\\\\`).

use std::collections::BTreeMap;

use anyhow::bail;

/// Parses a `.env` file.
///
/// # Errors
/// A line that is not `KEY=value`, with its number.
pub fn parse(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            bail!("line {}: expected KEY=value", index + 1);
        };
        let value = value.trim();
        let value = if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            unescape(inner)
        } else if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            inner.to_owned()
        } else {
            value.to_owned()
        };
        pairs.push((key.trim().to_owned(), value));
    }
    Ok(pairs)
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// Renders a config as a `.env` file that [`parse`] reads back.
pub fn render(config: &BTreeMap<String, String>) -> String {
    config
        .iter()
        .map(|(key, value)| {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            format!("{key}=\"{escaped}\"\n")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_round_trip() {
        let config: BTreeMap<String, String> = [
            ("PLAIN".to_owned(), "value".to_owned()),
            ("TRICKY".to_owned(), "a \"quoted\" \\ line\nnext".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ]
        .into();
        let parsed: BTreeMap<String, String> = parse(&render(&config)).unwrap().into_iter().collect();
        assert_eq!(parsed, config);
    }

    #[test]
    fn common_shapes_parse() {
        let text = "# comment\nexport A=1\nB = 'two words'\nC=\"x\\ny\"\n\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed, [("A".into(), "1".into()), ("B".into(), "two words".into()), ("C".into(), "x\ny".into())]);
        assert!(parse("NOEQUALS").unwrap_err().to_string().contains("line 1"));
    }
}
