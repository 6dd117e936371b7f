//! The images a Dockerfile builds from, read the way the engine's builder reads them: every
//! `FROM` that is not an earlier stage, and every `COPY --from=` that names an image rather
//! than a stage, with `ARG`s substituted (their defaults, or the build arguments given for
//! them). A build may use only images its pusher may pull, so each of them is checked
//! before the engine sees the Dockerfile. An `ONBUILD COPY --from=` names an image too: the
//! image being built carries it into every build on top of it. Pure: table-tested below.

use std::collections::BTreeMap;

/// An image a Dockerfile uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub image: String,
    /// Built upon (`FROM`): its own `ONBUILD` triggers run in this build.
    pub base: bool,
}

/// A `FROM` without an image, on the Dockerfile's line `line`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: FROM names no image")]
pub struct FromWithoutImage {
    pub line: usize,
}

/// The images `text` uses, in order, each once.
///
/// # Errors
/// When an instruction that names an image cannot be read.
pub fn images(text: &str, build_args: &BTreeMap<String, String>) -> Result<Vec<Named>, FromWithoutImage> {
    // ARGs before the first FROM are the ones FROM may use; a stage sees only its own
    // (an `ARG NAME` in a stage takes the earlier value of NAME).
    let mut global: BTreeMap<String, String> = BTreeMap::new();
    let mut stage: Option<BTreeMap<String, String>> = None;
    let mut stages: Vec<String> = Vec::new();
    let mut found: Vec<Named> = Vec::new();
    let mut add = |image: String, base: bool| {
        if !found.iter().any(|named| named.image == image) {
            found.push(Named { image, base });
        }
    };
    for (number, instruction) in instructions(text) {
        let mut words: Vec<&str> = instruction.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let mut keyword = words.remove(0).to_ascii_uppercase();
        // A trigger is read as the instruction it will be.
        if keyword == "ONBUILD" && !words.is_empty() {
            keyword = words.remove(0).to_ascii_uppercase();
        }
        match keyword.as_str() {
            "ARG" => {
                for declaration in &words {
                    let (name, default) = match declaration.split_once('=') {
                        Some((name, default)) => (name, Some(default)),
                        None => (*declaration, None),
                    };
                    let value = match (build_args.get(name), default) {
                        (Some(given), _) => given.clone(),
                        (None, Some(default)) => substitute(default, stage.as_ref().unwrap_or(&global)),
                        (None, None) => global.get(name).cloned().unwrap_or_default(),
                    };
                    stage.as_mut().unwrap_or(&mut global).insert(name.to_owned(), value);
                }
            }
            "FROM" => {
                let mut operands = words.iter().filter(|w| !w.starts_with("--"));
                let image = operands.next().ok_or(FromWithoutImage { line: number })?;
                let image = substitute(image, &global);
                if !image.eq_ignore_ascii_case("scratch") && !is_stage(&image, &stages) {
                    add(image, true);
                }
                match (operands.next(), operands.next()) {
                    (Some(r#as), Some(name)) if r#as.eq_ignore_ascii_case("as") => {
                        stages.push(name.to_ascii_lowercase())
                    }
                    _ => stages.push(String::new()),
                }
                stage = Some(BTreeMap::new());
            }
            "COPY" | "ADD" => {
                let scope = stage.as_ref().unwrap_or(&global);
                for from in words.iter().filter_map(|w| w.strip_prefix("--from=")) {
                    let from = substitute(from, scope);
                    if !is_stage(&from, &stages) {
                        add(from, false);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(found)
}

/// Whether `name` is an earlier stage: by its `AS` name or its index.
fn is_stage(name: &str, stages: &[String]) -> bool {
    let lower = name.to_ascii_lowercase();
    stages.iter().any(|stage| !stage.is_empty() && *stage == lower)
        || name.parse::<usize>().is_ok_and(|index| index < stages.len())
}

/// The Dockerfile's instructions with their line numbers: comments and blank lines left
/// out, lines ending in the escape character (`\`, or what an `# escape=` directive at
/// the top says) joined to the next.
fn instructions(text: &str) -> Vec<(usize, String)> {
    let mut escape = '\\';
    let mut directives = true;
    let mut found = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if directives {
            let directive = trimmed.strip_prefix('#').and_then(|d| d.split_once('='));
            match directive {
                Some((name, value)) if name.trim().eq_ignore_ascii_case("escape") => {
                    escape = value.trim().chars().next().unwrap_or('\\');
                    continue;
                }
                Some((name, _)) if !name.trim().contains(' ') => continue,
                _ => directives = false,
            }
        }
        if current.is_none() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        let (start, mut joined) = current.take().unwrap_or((index + 1, String::new()));
        match trimmed.strip_suffix(escape) {
            Some(part) => {
                joined.push_str(part);
                joined.push(' ');
                current = Some((start, joined));
            }
            None => {
                joined.push_str(trimmed);
                found.push((start, joined));
            }
        }
    }
    found.extend(current);
    found
}

/// `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alternative}` replaced as the
/// builder replaces them; an unknown name is empty.
fn substitute(word: &str, args: &BTreeMap<String, String>) -> String {
    let set = |name: &str| args.get(name).filter(|v| !v.is_empty());
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(braced) = after.strip_prefix('{')
            && let Some(end) = braced.find('}')
        {
            let expression = &braced[..end];
            let value = if let Some((name, default)) = expression.split_once(":-") {
                set(name).map_or_else(|| default.to_owned(), Clone::clone)
            } else if let Some((name, alternative)) = expression.split_once(":+") {
                set(name).map_or_else(String::new, |_| alternative.to_owned())
            } else {
                args.get(expression).cloned().unwrap_or_default()
            };
            out.push_str(&value);
            rest = &braced[end + 1..];
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            if end == 0 {
                out.push('$');
            } else {
                out.push_str(args.get(&after[..end]).map_or("", String::as_str));
            }
            rest = &after[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Dockerfile, the build arguments given, and the images it builds from.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);

    fn read(text: &str, build_args: &[(&str, &str)]) -> Vec<String> {
        let build_args = build_args.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        images(text, &build_args).unwrap().into_iter().map(|named| named.image).collect()
    }

    #[test]
    fn every_image_a_dockerfile_builds_from_is_found() {
        let cases: &[Case<'_>] = &[
            ("FROM r:1/stacks/busybox\nRUN true\n", &[], &["r:1/stacks/busybox"]),
            ("# comment\n\nfrom --platform=linux/amd64 r:1/a AS build\n", &[], &["r:1/a"]),
            // Stages by name (any case) and by index are not images; scratch is nothing.
            (
                "FROM r:1/a AS Build\nFROM build\nCOPY --from=BUILD /x /x\nCOPY --from=0 /y /y\nFROM scratch\n",
                &[],
                &["r:1/a"],
            ),
            // COPY --from an image, multi-stage, each image once.
            (
                "FROM r:1/a AS one\nFROM r:1/b\nCOPY --from=r:1/victim:git-abc /secret /s\nCOPY --from=r:1/victim:git-abc /t /t\n",
                &[],
                &["r:1/a", "r:1/b", "r:1/victim:git-abc"],
            ),
            // ARG defaults, build arguments (the app's config), braces, defaults in braces.
            ("ARG BASE=r:1/a\nFROM $BASE\n", &[], &["r:1/a"]),
            ("ARG BASE=r:1/a\nFROM ${BASE}\n", &[("BASE", "r:1/victim")], &["r:1/victim"]),
            ("ARG TAG\nFROM r:1/app:${TAG:-latest}\n", &[], &["r:1/app:latest"]),
            ("ARG HOST=r:1\nARG IMAGE=$HOST/victim\nFROM ${IMAGE}\n", &[], &["r:1/victim"]),
            // A build argument the Dockerfile does not declare is not used.
            ("FROM r:1/app${SUFFIX}\n", &[("SUFFIX", "-other")], &["r:1/app"]),
            // Continuation lines.
            ("FROM \\\n  r:1/a \\\n  AS x\nCOPY \\\n --from=r:1/b /a /a\n", &[], &["r:1/a", "r:1/b"]),
            // A stage's own ARG serves COPY --from.
            ("FROM r:1/a\nARG SRC=r:1/victim\nCOPY --from=$SRC /x /x\n", &[], &["r:1/a", "r:1/victim"]),
            // A stage does not see the ARGs before FROM unless it declares them again.
            ("ARG X=r:1/mine\nFROM r:1/a\nCOPY --from=${X:-r:1/victim} /x /x\n", &[], &["r:1/a", "r:1/victim"]),
            ("ARG X=r:1/mine\nFROM r:1/a\nARG X\nCOPY --from=$X /x /x\n", &[], &["r:1/a", "r:1/mine"]),
            // A trigger carried by the image being built.
            ("FROM r:1/a\nONBUILD COPY --from=r:1/victim /x /x\n", &[], &["r:1/a", "r:1/victim"]),
            // Another escape character continues lines with it.
            ("# escape=`\nFROM r:1/a\nCOPY `\n  --from=r:1/victim /x /x\n", &[], &["r:1/a", "r:1/victim"]),
        ];
        for (text, build_args, expected) in cases {
            assert_eq!(read(text, build_args), *expected, "{text}");
        }
        assert_eq!(images("FROM\n", &BTreeMap::new()), Err(FromWithoutImage { line: 1 }));
        let named = images("FROM r:1/a AS b\nCOPY --from=r:1/c /x /x\n", &BTreeMap::new()).unwrap();
        let bases: Vec<(&str, bool)> = named.iter().map(|n| (n.image.as_str(), n.base)).collect();
        assert_eq!(bases, [("r:1/a", true), ("r:1/c", false)], "only FROM images are built upon");
    }
}
