//! Printing: aligned tables and pretty JSON.

use std::io::Write;

use serde::Serialize;

/// Prints rows under headers, each column as wide as its widest cell.
///
/// # Errors
/// When the output cannot be written.
pub fn table(out: &mut impl Write, headers: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header_cells: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header_cells).chain(rows.iter()) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
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
        table(&mut out, &["NAME", "URL"], vec![vec!["a".into(), "http://a".into()], vec!["longer".into(), "x".into()]])
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "NAME    URL\na       http://a\nlonger  x\n");
    }
}
