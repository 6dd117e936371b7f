//! Printing: aligned tables (bold headers and coloured states on a terminal), relative
//! times, and pretty JSON.

use std::io::Write;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Whether to colour what goes to standard output: only on a terminal, and not when
/// `NO_COLOR` is set or `TERM` is `dumb`.
pub fn colour_wanted() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// `text` in the colour its meaning calls for: green for what is well, red for what
/// failed, yellow for what is under way; others unchanged.
fn paint(text: &str) -> String {
    let word = text.split([':', ' ']).next().unwrap_or("").to_ascii_lowercase();
    let code = match word.as_str() {
        "succeeded" | "deployed" | "current" | "running" | "up" | "ok" => "32",
        "failed" | "failing" | "crashed" | "exited" | "dead" => "31",
        "pending" | "building" | "starting" | "restarting" | "created" | "unknown" => "33",
        _ => return text.to_owned(),
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// An RFC 3339 time as people say it: `just now`, `5 minutes ago`, `in 89 days`; the
/// date itself beyond a month. Text that is not a time is returned as it is.
pub fn relative(time: &str, now: OffsetDateTime) -> String {
    let Ok(then) = OffsetDateTime::parse(time, &Rfc3339) else { return time.to_owned() };
    let seconds = (now - then).whole_seconds();
    let (amount, future) = (seconds.unsigned_abs(), seconds < 0);
    if amount < 10 {
        return "just now".into();
    }
    let (count, unit) = match amount {
        0..60 => (amount, "second"),
        60..3600 => (amount / 60, "minute"),
        3600..86_400 => (amount / 3600, "hour"),
        86_400..2_592_000 => (amount / 86_400, "day"),
        _ => return then.date().to_string(),
    };
    let plural = if count == 1 { "" } else { "s" };
    if future { format!("in {count} {unit}{plural}") } else { format!("{count} {unit}{plural} ago") }
}

/// [`relative`] to the present moment.
pub fn ago(time: &str) -> String {
    relative(time, OffsetDateTime::now_utc())
}

/// Prints rows under headers, each column as wide as its widest cell; with `colour`, the
/// headers are bold and state words coloured.
///
/// # Errors
/// When the output cannot be written.
pub fn table(out: &mut impl Write, colour: bool, headers: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header_cells: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for (index, row) in std::iter::once(&header_cells).chain(rows.iter()).enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| {
                let padded = format!("{cell:<width$}");
                match (colour, index) {
                    (false, _) => padded,
                    (true, 0) => format!("\x1b[1m{padded}\x1b[0m"),
                    (true, _) => paint(cell) + &" ".repeat(width - cell.chars().count()),
                }
            })
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

/// A long piece of work shown on standard error: a spinner with the seconds so far on a
/// terminal; elsewhere one line, `what... result`.
pub struct Progress<'a, W: Write> {
    out: &'a mut W,
    live: bool,
    what: String,
    started: std::time::Instant,
    frame: usize,
}

impl<'a, W: Write> Progress<'a, W> {
    const SPINNER: [char; 4] = ['|', '/', '-', '\\'];

    pub fn start(out: &'a mut W, live: bool, what: String) -> Self {
        let _ = if live { write!(out, "{} {what}", Self::SPINNER[0]) } else { write!(out, "{what}... ") };
        let _ = out.flush();
        Self { out, live, what, started: std::time::Instant::now(), frame: 0 }
    }

    /// How long the work has taken so far.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Moves the spinner on (on a terminal).
    pub fn tick(&mut self) {
        if self.live {
            self.frame += 1;
            let spinner = Self::SPINNER[self.frame % Self::SPINNER.len()];
            let _ = write!(self.out, "\r{spinner} {} ({:.0}s)", self.what, self.started.elapsed().as_secs_f64());
            let _ = self.out.flush();
        }
    }

    /// Ends the line with how it went.
    pub fn finish(self, result: &str) {
        let _ = if self.live {
            writeln!(self.out, "\r\x1b[2K{}... {result}", self.what)
        } else {
            writeln!(self.out, "{result}")
        };
    }
}

/// Prints a value as pretty JSON.
///
/// # Errors
/// When the output cannot be written.
pub fn json(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut out = Vec::new();
        let rows = vec![vec!["a".into(), "http://a".into()], vec!["longer".into(), "x".into()]];
        table(&mut out, false, &["NAME", "URL"], rows).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "NAME    URL\na       http://a\nlonger  x\n");
    }

    #[test]
    fn colour_marks_headers_and_states_without_breaking_alignment() {
        let mut out = Vec::new();
        let rows =
            vec![vec!["v2".into(), "failed".into(), "x".into()], vec!["v1".into(), "deployed".into(), "y".into()]];
        table(&mut out, true, &["VERSION", "STATE", "BY"], rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("\x1b[1mVERSION\x1b[0m"), "{text:?}");
        assert!(text.contains("\x1b[31mfailed\x1b[0m    x"), "{text:?}");
        assert!(text.contains("\x1b[32mdeployed\x1b[0m  y"), "{text:?}");
    }

    #[test]
    fn progress_off_a_terminal_is_one_line() {
        let mut out = Vec::new();
        let mut progress = Progress::start(&mut out, false, "Waiting for v2".into());
        progress.tick();
        progress.finish("up in 1.0s");
        assert_eq!(String::from_utf8(out).unwrap(), "Waiting for v2... up in 1.0s\n");
    }

    #[test]
    fn times_read_relative_to_now() {
        let now = OffsetDateTime::parse("2026-11-24T12:00:00Z", &Rfc3339).unwrap();
        for (time, said) in [
            ("2026-11-24T11:59:58Z", "just now"),
            ("2026-11-24T11:59:00Z", "1 minute ago"),
            ("2026-11-24T09:00:00Z", "3 hours ago"),
            ("2026-11-22T12:00:00Z", "2 days ago"),
            ("2027-01-01T00:00:00Z", "2027-01-01"),
            ("2026-12-01T12:00:00Z", "in 7 days"),
            ("not a time", "not a time"),
        ] {
            assert_eq!(relative(time, now), said, "{time}");
        }
    }
}
