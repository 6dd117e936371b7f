//! Arguments several verbs share, and the parsers of argument values (sizes, limits, `KEY=VALUE`).

use clap::Args;
use skiff_api::{AppName, ProcessType, Username};

#[derive(Debug, Args)]
pub(crate) struct AuthArgs {
    /// Controller URL (default: the stored one, else http://127.0.0.1:7700).
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// User name (asked for when absent).
    #[arg(long, short)]
    pub(crate) username: Option<Username>,
    /// Password (read from standard input when absent).
    #[arg(long, short)]
    pub(crate) password: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct AppArg {
    /// The app (default: the one the `skiff` git remote names).
    #[arg(long = "app", short = 'a')]
    pub(crate) app: Option<AppName>,
}

/// An app, or with `--platform` the whole platform.
#[derive(Debug, Args)]
pub(crate) struct ScopeArg {
    #[command(flatten)]
    pub(crate) app: AppArg,
    /// The platform's instead of an app's (admins).
    #[arg(long, conflicts_with = "app")]
    pub(crate) platform: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WaitArg {
    /// Wait until the new release runs (or fails), showing progress.
    #[arg(long)]
    pub(crate) wait: bool,
}

#[derive(Debug, Args)]
pub(crate) struct JsonArg {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A request body limit: a size, or none (`off`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) Option<u64>);

pub(crate) fn parse_body_limit(text: &str) -> Result<BodyLimit, String> {
    if text == "off" { Ok(BodyLimit(None)) } else { parse_bytes(text).map(|b| BodyLimit(Some(b))) }
}

/// One `limits:set` setting.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    MemoryMb(u64),
    Cpu(f64),
}

/// `memory=256m` or `cpu=0.5`.
pub(crate) fn parse_limit(text: &str) -> Result<Limit, String> {
    match text.split_once('=') {
        Some(("memory", size)) => parse_memory(size).map(Limit::MemoryMb),
        Some(("cpu", cores)) => match cores.parse::<f64>() {
            Ok(cores) if cores.is_finite() && cores > 0.0 => Ok(Limit::Cpu(cores)),
            _ => Err(format!("`{cores}` is not a number of cores like 0.5 or 2")),
        },
        _ => Err(format!("`{text}` is not memory=SIZE or cpu=CORES")),
    }
}

/// `KEY=VALUE` (the value may be empty and may hold `=`).
pub(crate) fn parse_config_pair(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("`{text}` has no key before `=`"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// `TYPE=N`.
pub(crate) fn parse_scale_pair(text: &str) -> Result<(ProcessType, u32), String> {
    let (process, quantity) = text.split_once('=').ok_or_else(|| format!("`{text}` is not TYPE=N"))?;
    let process: ProcessType = process.parse().map_err(|e| format!("{e}"))?;
    let quantity = quantity.parse().map_err(|_| format!("`{quantity}` is not a number of containers"))?;
    Ok((process, quantity))
}

/// `512k`, `10m`, `1g` or a number of bytes.
pub(crate) fn parse_bytes(size: &str) -> Result<u64, String> {
    let lower = size.to_ascii_lowercase();
    let (number, shift) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 10),
        Some('m') => (&lower[..lower.len() - 1], 20),
        Some('g') => (&lower[..lower.len() - 1], 30),
        _ => (lower.as_str(), 0),
    };
    let number: u64 = number.parse().map_err(|_| format!("`{size}` is not a size like 512k, 10m or 1g"))?;
    number.checked_shl(shift).filter(|n| n >> shift == number).ok_or_else(|| format!("`{size}` is too large"))
}

/// `256m`, `1g` or `512` (MiB) as MiB.
pub(crate) fn parse_memory(size: &str) -> Result<u64, String> {
    let lower = size.to_ascii_lowercase();
    let (number, factor) = match lower.strip_suffix('g') {
        Some(number) => (number, 1024),
        None => (lower.strip_suffix('m').unwrap_or(&lower), 1),
    };
    let number: u64 = number.parse().map_err(|_| format!("`{size}` is not a size like 256m or 1g"))?;
    number.checked_mul(factor).ok_or_else(|| format!("`{size}` is too large"))
}

/// `v3` or `3`.
pub(crate) fn parse_version(text: &str) -> Result<u32, String> {
    text.trim_start_matches(['v', 'V']).parse().map_err(|_| format!("`{text}` is not a release version like v3"))
}

/// `90s`, `10m`, `2h`, `1d` or `600` (seconds) as seconds.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (number, factor) = match lower.char_indices().last() {
        Some((at, 's')) => (&lower[..at], 1),
        Some((at, 'm')) => (&lower[..at], 60),
        Some((at, 'h')) => (&lower[..at], 3600),
        Some((at, 'd')) => (&lower[..at], 86_400),
        _ => (lower.as_str(), 1),
    };
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration like 90s, 10m or 2h"))?;
    number.checked_mul(factor).ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_seconds() {
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("10m").unwrap(), 600);
        assert_eq!(parse_duration("2H").unwrap(), 7200);
        assert_eq!(parse_duration("1d").unwrap(), 86_400);
        assert_eq!(parse_duration("45").unwrap(), 45);
        assert!(parse_duration("soon").unwrap_err().contains("like 90s"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes_read_in_bytes_and_mebibytes() {
        assert_eq!(parse_bytes("512k").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("10M").unwrap(), 10 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert!(parse_bytes("ten").is_err() && parse_bytes("99999999999999g").is_err() && parse_bytes("").is_err());
        assert_eq!(parse_memory("1g").unwrap(), 1024);
        assert_eq!(parse_memory("256m").unwrap(), 256);
    }
}
