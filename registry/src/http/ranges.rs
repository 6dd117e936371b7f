//! The byte ranges of requests, pure: `Range` on blob reads and `Content-Range` on chunked
//! uploads. Both are inclusive `(first, last)` byte positions.

use http::{HeaderMap, StatusCode, header};

use crate::error::OciError;

/// Why a range is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unsatisfiable;

/// `Range: bytes=…` (one range: `a-b`, `a-` or the last `-n` bytes) against a blob of
/// `size` bytes; the end is cut to the blob's.
pub(super) fn parse_range(value: &str, size: u64) -> Result<(u64, u64), Unsatisfiable> {
    let spec = value.trim().strip_prefix("bytes=").ok_or(Unsatisfiable)?;
    let (start, end) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let number = |text: &str| text.parse::<u64>().map_err(|_| Unsatisfiable);
    let last = size.saturating_sub(1);
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => (size.saturating_sub(number(suffix)?), last),
        (start, "") => (number(start)?, last),
        (start, end) => (number(start)?, number(end)?.min(last)),
    };
    if start >= size || start > end { Err(Unsatisfiable) } else { Ok((start, end)) }
}

/// `Content-Range: [bytes ]a-b[/total]` of an upload chunk.
pub(super) fn parse_content_range(value: &str) -> Result<(u64, u64), Unsatisfiable> {
    let text = value.trim();
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let text = text.split('/').next().unwrap_or_default();
    let (start, end) = text.split_once('-').ok_or(Unsatisfiable)?;
    match (start.parse::<u64>(), end.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => Ok((start, end)),
        _ => Err(Unsatisfiable),
    }
}

/// A request's `Range` against a blob of `size` bytes: `None` without one; 416 when it
/// cannot be served.
pub(super) fn byte_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, OciError> {
    let Some(value) = headers.get(header::RANGE) else { return Ok(None) };
    parse_range(value.to_str().unwrap_or_default(), size)
        .map(Some)
        .map_err(|_| OciError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UNKNOWN", "range not satisfiable"))
}

/// A request's `Content-Range`: `None` without one; 416 when it is malformed.
pub(super) fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, OciError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else { return Ok(None) };
    parse_content_range(value.to_str().unwrap_or_default())
        .map(Some)
        .map_err(|_| OciError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID", "invalid Content-Range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<(u64, u64), Unsatisfiable>;

    #[test]
    fn ranges_of_a_blob_are_read_and_cut_to_its_size() {
        let cases: [(&str, u64, Parsed); 12] = [
            ("bytes=0-9", 100, Ok((0, 9))),
            ("bytes=90-", 100, Ok((90, 99))),
            ("bytes=-10", 100, Ok((90, 99))),
            ("bytes=-500", 100, Ok((0, 99))),
            ("bytes=50-1000", 100, Ok((50, 99))),
            (" bytes=1-1 ", 100, Ok((1, 1))),
            ("bytes=100-", 100, Err(Unsatisfiable)),
            ("bytes=9-1", 100, Err(Unsatisfiable)),
            ("bytes=0-0", 0, Err(Unsatisfiable)),
            ("items=0-9", 100, Err(Unsatisfiable)),
            ("bytes=a-b", 100, Err(Unsatisfiable)),
            ("bytes=5", 100, Err(Unsatisfiable)),
        ];
        for (value, size, expected) in cases {
            assert_eq!(parse_range(value, size), expected, "{value} of {size}");
        }
    }

    #[test]
    fn content_ranges_of_upload_chunks_are_read() {
        let cases: [(&str, Parsed); 7] = [
            ("0-9", Ok((0, 9))),
            ("bytes 10-19", Ok((10, 19))),
            ("bytes 10-19/100", Ok((10, 19))),
            ("10-9", Err(Unsatisfiable)),
            ("", Err(Unsatisfiable)),
            ("10", Err(Unsatisfiable)),
            ("-1-5", Err(Unsatisfiable)),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_content_range(value), expected, "{value}");
        }
    }
}
