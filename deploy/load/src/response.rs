//! Finding where an HTTP/1.1 response ends in what a connection has read so far.

/// A whole response at the start of a buffer: its status and how many bytes it took.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub length: usize,
    /// The server said `Connection: close`: the connection ends after this response.
    pub closes: bool,
}

/// Why what was read is not an HTTP/1.1 response.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// A response's head: its status, how long it is, and how its body is sized.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes of the head, its blank line included.
    pub length: usize,
    /// `Content-Length`, when it was given.
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// The server said `Connection: close`.
    pub closes: bool,
}

/// The head at the start of `buffer`, `Ok(None)` while it is incomplete.
pub fn head(buffer: &[u8]) -> Result<Option<Head>, Malformed> {
    let Some(length) = find(buffer, b"\r\n\r\n").map(|at| at + 4) else { return Ok(None) };
    let text = std::str::from_utf8(&buffer[..length]).map_err(|_| Malformed("the head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or(Malformed("no HTTP/1.x status line"))?;
    let mut head = Head { status, length, content_length: None, chunked: false, closes: false };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(value.parse().map_err(|_| Malformed("a bad Content-Length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().ends_with("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            head.closes = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(Some(head))
}

/// The value of header `name` in a response head's text.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .find(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
}

/// The response at the start of `buffer`, `Ok(None)` while it is incomplete. Bodies are
/// sized by `Content-Length` or chunked (trailers included); a response with neither has
/// none (the load generator only sends GET requests).
pub fn parse(buffer: &[u8]) -> Result<Option<Response>, Malformed> {
    let Some(head) = head(buffer)? else { return Ok(None) };
    let body = &buffer[head.length..];
    let body_length = if head.chunked {
        match chunked_length(body)? {
            Some(length) => length,
            None => return Ok(None),
        }
    } else {
        let length =
            usize::try_from(head.content_length.unwrap_or(0)).map_err(|_| Malformed("a bad Content-Length"))?;
        if body.len() < length {
            return Ok(None);
        }
        length
    };
    Ok(Some(Response { status: head.status, length: head.length + body_length, closes: head.closes }))
}

/// How long a chunked body is, up to and including its last CRLF; `None` while incomplete.
pub fn chunked_length(body: &[u8]) -> Result<Option<usize>, Malformed> {
    let mut at = 0;
    loop {
        let Some(line_end) = find(&body[at..], b"\r\n") else { return Ok(None) };
        let size_line = std::str::from_utf8(&body[at..at + line_end]).map_err(|_| Malformed("a bad chunk size"))?;
        let size_text = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| Malformed("a bad chunk size"))?;
        at += line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(line_end) = find(&body[at..], b"\r\n") else { return Ok(None) };
                at += line_end + 2;
                if line_end == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if body.len() < at + size + 2 {
            return Ok(None);
        }
        at += size + 2;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_ends_where_its_length_says() {
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1";
        assert_eq!(parse(sized), Ok(Some(Response { status: 200, length: 43, closes: false })));
        assert_eq!(parse(&sized[..40]), Ok(None), "the body is not all here");
        assert_eq!(parse(&sized[..20]), Ok(None), "the head is not all here");
        let bodiless = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
        assert_eq!(parse(bodiless), Ok(Some(Response { status: 204, length: bodiless.len(), closes: true })));
    }

    #[test]
    fn a_chunked_response_ends_after_its_last_chunk_and_trailers() {
        let chunked = b"HTTP/1.1 503 Busy\r\ntransfer-encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nA: b\r\n\r\n";
        assert_eq!(parse(chunked), Ok(Some(Response { status: 503, length: chunked.len(), closes: false })));
        for cut in [50, 60, chunked.len() - 1] {
            assert_eq!(parse(&chunked[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn what_is_not_http_is_said_to_be_so() {
        assert_eq!(parse(b"SSH-2.0-OpenSSH\r\n\r\n"), Err(Malformed("no HTTP/1.x status line")));
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), Err(Malformed("a bad Content-Length")));
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Err(Malformed("a bad chunk size"))
        );
    }
}
