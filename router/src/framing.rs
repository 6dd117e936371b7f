//! Request heads that say a body's length two ways, `Content-Length` beside
//! `Transfer-Encoding`, are refused with 400, as nginx refuses them: a proxy in front of
//! the router that trusted the `Content-Length` would disagree with the router about
//! where the request ends, and the bytes in between could pass for a request of their
//! own (request smuggling).
//!
//! hyper frames such a request by its chunks, closes the connection after the answer
//! (RFC 9112 §6.3) and hands the router the head without its `Content-Length`, so the
//! router cannot tell from the request. [`Scan`] reads the HTTP/1 byte stream as it
//! arrives, following its framing (heads, bodies of a given length, chunked bodies), and
//! notes the first request whose head has both; [`Screen`] feeds it every byte read from
//! a client connection, and [`Verdict`] tells the request path, request by request, which
//! one to refuse. Whatever the scan does not understand (an HTTP/2 preface, an upgrade, a
//! head hyper refuses itself) ends it without a verdict: a request is refused only for the
//! two lengths in its own head, never because the scan lost its place.
//!
//! The same scan follows apps' chunked answers: where one ends, for the relay that passes
//! the chunks on as they are ([`Scan::chunked_end`]), and where its data is, for the
//! answers that hyper's server frames again ([`Scan::next_data`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The most header fields a head may have for the scan (hyper takes 100).
const MAX_FIELDS: usize = 128;

/// Where the scan is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// Body bytes still to come.
    Body(u64),
    /// A chunk-size line; `extension` once past the size (`;name=value` or spaces).
    ChunkSize {
        size: u64,
        digits: bool,
        extension: bool,
    },
    /// Chunk data bytes still to come.
    ChunkData(u64),
    /// The line end after a chunk's data.
    ChunkEnd,
    /// Trailer fields after the last chunk; `blank` while the line so far is empty.
    Trailers {
        blank: bool,
    },
    /// Nothing more is read.
    Stopped,
}

/// Follows the framing of an HTTP/1 request stream.
#[derive(Debug)]
pub struct Scan {
    state: State,
    /// A head that arrived in pieces, kept until it is whole.
    partial: Vec<u8>,
    /// Heads read whole.
    heads: u64,
    /// The number (from 1) of the first request whose head gives both lengths.
    conflicted: Option<u64>,
}

impl Default for Scan {
    fn default() -> Self {
        Self { state: State::Head, partial: Vec::new(), heads: 0, conflicted: None }
    }
}

/// What a complete head says about framing.
struct Head {
    content_length: Option<u64>,
    chunked: bool,
    /// Whether both length headers are there.
    conflicting: bool,
    /// An Upgrade or CONNECT: what follows may be no HTTP at all.
    tunnel: bool,
}

enum Parsed {
    Complete(Head, usize),
    Partial,
    Invalid,
}

fn parse_head(bytes: &[u8]) -> Parsed {
    // Left uninitialised: httparse writes the fields it finds (initialising all 128, 4 KiB,
    // cost more than parsing a typical head).
    let mut fields = [const { std::mem::MaybeUninit::uninit() }; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut []);
    let length = match request.parse_with_uninit_headers(bytes, &mut fields) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let mut head =
        Head { content_length: None, chunked: false, conflicting: false, tunnel: request.method == Some("CONNECT") };
    let mut lengths = 0;
    for field in request.headers.iter() {
        if field.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            let Some(value) = std::str::from_utf8(field.value).ok().and_then(|v| v.trim().parse().ok()) else {
                return Parsed::Invalid;
            };
            head.content_length = Some(value);
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = true;
        } else if field.name.eq_ignore_ascii_case("upgrade") {
            head.tunnel = true;
        }
    }
    head.conflicting = lengths > 0 && head.chunked;
    Parsed::Complete(head, length)
}

/// Where a chunked body ends, as far as its bytes have come.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunked {
    /// After this many of the bytes (its last chunk and trailers).
    Ended(usize),
    /// Not within them.
    More,
    Malformed,
}

/// The next part of a chunked body's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkPart {
    /// `framing` bytes (sizes, line ends), then `data` bytes of the body (0: none yet).
    Data {
        framing: usize,
        data: usize,
    },
    /// The body ends after this many bytes (its last chunk and trailers).
    End(usize),
    Malformed,
}

impl Scan {
    /// A scan at the start of a chunked body (an answer's, which the relay passes on).
    pub fn chunked_body() -> Self {
        Self { state: State::ChunkSize { size: 0, digits: false, extension: false }, ..Self::default() }
    }

    /// Follows the next bytes of a chunked body begun with [`Scan::chunked_body`].
    pub fn chunked_end(&mut self, bytes: &[u8]) -> Chunked {
        let mut at = 0;
        loop {
            match self.next_data(&bytes[at..]) {
                ChunkPart::Data { framing, data } => {
                    at += framing + data;
                    if at == bytes.len() {
                        return Chunked::More;
                    }
                }
                ChunkPart::End(framing) => return Chunked::Ended(at + framing),
                ChunkPart::Malformed => return Chunked::Malformed,
            }
        }
    }

    /// Finds the next data in the bytes of a chunked body begun with
    /// [`Scan::chunked_body`] (the chunks undone).
    pub fn next_data(&mut self, bytes: &[u8]) -> ChunkPart {
        let mut rest = bytes;
        loop {
            match self.state {
                State::ChunkData(left) if !rest.is_empty() => {
                    let data = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    let left = left - data as u64;
                    self.state = if left == 0 { State::ChunkEnd } else { State::ChunkData(left) };
                    return ChunkPart::Data { framing: bytes.len() - rest.len(), data };
                }
                State::Head => return ChunkPart::End(bytes.len() - rest.len()),
                State::Stopped => return ChunkPart::Malformed,
                _ if rest.is_empty() => return ChunkPart::Data { framing: bytes.len(), data: 0 },
                _ => rest = self.body(rest),
            }
        }
    }

    /// Reads the next bytes of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.state != State::Stopped {
            bytes = if self.state == State::Head { self.head(bytes) } else { self.body(bytes) };
        }
    }

    /// Reads body bytes; returns what follows the part of the body they hold.
    fn body<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        match self.state {
            State::Body(left) => {
                let (rest, left) = skip(bytes, left);
                self.state = if left == 0 { State::Head } else { State::Body(left) };
                rest
            }
            State::ChunkData(left) => {
                let (rest, left) = skip(bytes, left);
                self.state = if left == 0 { State::ChunkEnd } else { State::ChunkData(left) };
                rest
            }
            _ => {
                self.line_byte(bytes[0]);
                &bytes[1..]
            }
        }
    }

    /// Whether the scan has ended: it found a request to refuse, or lost the framing.
    pub fn stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// One byte of a chunk-size line, a chunk's line end, or the trailers.
    fn line_byte(&mut self, byte: u8) {
        self.state = match (self.state, byte) {
            (State::ChunkSize { digits: true, size: 0, .. }, b'\n') => State::Trailers { blank: true },
            (State::ChunkSize { digits: true, size, .. }, b'\n') => State::ChunkData(size),
            (State::ChunkSize { size, extension: false, .. }, _) if byte.is_ascii_hexdigit() => {
                let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
                match size.checked_mul(16).and_then(|size| size.checked_add(digit)) {
                    Some(size) => State::ChunkSize { size, digits: true, extension: false },
                    None => State::Stopped,
                }
            }
            (State::ChunkSize { size, digits: true, .. }, b';' | b' ' | b'\t' | b'\r') => {
                State::ChunkSize { size, digits: true, extension: true }
            }
            (State::ChunkSize { extension: true, .. }, _) => self.state,
            (State::ChunkEnd, b'\r') => State::ChunkEnd,
            (State::ChunkEnd, b'\n') => State::ChunkSize { size: 0, digits: false, extension: false },
            (State::Trailers { blank: true }, b'\n') => State::Head,
            (State::Trailers { .. }, b'\n') => State::Trailers { blank: true },
            (State::Trailers { blank }, b'\r') => State::Trailers { blank },
            (State::Trailers { .. }, _) => State::Trailers { blank: false },
            // Anything else is malformed: hyper refuses it and closes the connection.
            _ => State::Stopped,
        };
    }

    /// Reads head bytes; returns what follows the head once it is whole.
    fn head<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let kept = self.partial.len();
        let parsed = if kept == 0 {
            parse_head(bytes)
        } else {
            self.partial.extend_from_slice(bytes);
            // Until a line ends, the head cannot.
            if bytes.contains(&b'\n') { parse_head(&self.partial) } else { Parsed::Partial }
        };
        match parsed {
            Parsed::Complete(head, length) => {
                self.partial.clear();
                self.heads += 1;
                self.state = if head.conflicting {
                    self.conflicted = Some(self.heads);
                    // hyper closes the connection after this request: nothing more to read.
                    State::Stopped
                } else if head.tunnel {
                    State::Stopped
                } else if head.chunked {
                    State::ChunkSize { size: 0, digits: false, extension: false }
                } else {
                    match head.content_length {
                        Some(length) if length > 0 => State::Body(length),
                        _ => State::Head,
                    }
                };
                bytes.get(length.saturating_sub(kept)..).unwrap_or_default()
            }
            Parsed::Partial => {
                if kept == 0 {
                    self.partial.extend_from_slice(bytes);
                }
                if self.partial.len() > crate::proxy::MAX_HEAD_BYTES {
                    self.stop();
                }
                &[]
            }
            Parsed::Invalid => {
                self.stop();
                &[]
            }
        }
    }

    fn stop(&mut self) {
        self.state = State::Stopped;
        self.partial = Vec::new();
    }
}

/// Skips up to `left` bytes; returns the rest and how many are still to skip.
fn skip(bytes: &[u8], left: u64) -> (&[u8], u64) {
    let taken = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
    (&bytes[taken..], left - taken as u64)
}

/// Which request of a connection the request path refuses: the scan of the connection's
/// bytes sets it, the request path counts requests as they come.
#[derive(Debug, Default)]
pub struct Verdict {
    /// The number (from 1) of the request to refuse; 0 for none.
    conflicted: AtomicU64,
    /// Requests of the connection seen by the request path.
    seen: AtomicU64,
}

impl Verdict {
    /// Counts a request of the connection; whether it is the one to refuse.
    pub fn refuses_next(&self) -> bool {
        let number = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        self.conflicted.load(Ordering::Relaxed) == number
    }
}

/// A client connection's scan and the verdict it feeds.
#[derive(Debug)]
pub struct Screen {
    scan: Scan,
    verdict: Arc<Verdict>,
}

impl Screen {
    pub fn new(verdict: Arc<Verdict>) -> Self {
        Self { scan: Scan::default(), verdict }
    }

    /// Reads bytes the client sent.
    pub fn read(&mut self, bytes: &[u8]) {
        if self.scan.stopped() {
            return;
        }
        self.scan.feed(bytes);
        if let Some(number) = self.scan.conflicted {
            self.verdict.conflicted.store(number, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan's verdict on a stream fed whole, then fed one byte at a time.
    fn conflicted(stream: &str) -> Option<u64> {
        let mut whole = Scan::default();
        whole.feed(stream.as_bytes());
        let mut bytewise = Scan::default();
        for byte in stream.as_bytes() {
            bytewise.feed(std::slice::from_ref(byte));
        }
        assert_eq!(whole.conflicted, bytewise.conflicted, "fed whole and byte by byte: {stream:?}");
        whole.conflicted
    }

    const GET: &str = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    const CONFLICTED: &str =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

    #[test]
    fn a_head_with_both_lengths_is_found_in_either_order() {
        assert_eq!(conflicted(CONFLICTED), Some(1));
        let reversed = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n";
        assert_eq!(conflicted(reversed), Some(1));
    }

    #[test]
    fn requests_are_counted_across_bodies_of_every_framing() {
        let sized = "POST /a HTTP/1.1\r\nContent-Length: 28\r\n\r\nGET /not-a-head HTTP/1.1\r\n\r\n";
        let chunked = "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                       5;name=value\r\nhello\r\n1C\r\nGET /not-a-head HTTP/1.1\r\n\r\n\r\n0\r\nX-Trailer: 1\r\n\r\n";
        assert_eq!(conflicted(&format!("{GET}{sized}{chunked}{CONFLICTED}")), Some(4));
        assert_eq!(conflicted(&format!("{GET}{sized}{chunked}{GET}")), None);
    }

    #[test]
    fn body_bytes_that_look_like_a_head_are_not_read_as_one() {
        let hidden = "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let sized = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{hidden}", hidden.len());
        assert_eq!(conflicted(&format!("{sized}{GET}")), None);
        let chunked =
            format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{hidden}\r\n0\r\n\r\n", hidden.len());
        assert_eq!(conflicted(&format!("{chunked}{GET}")), None);
    }

    #[test]
    fn what_the_scan_does_not_understand_ends_it_without_a_verdict() {
        let cases = [
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
            "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            "GET / HTTP/1.1\r\nFolded: a\r\n b\r\n\r\n",
        ];
        for case in cases {
            let mut scan = Scan::default();
            scan.feed(format!("{case}{CONFLICTED}").as_bytes());
            assert!(scan.stopped(), "{case:?}");
            assert_eq!(scan.conflicted, None, "{case:?}");
        }
        // A tunnel's bytes are not HTTP: the scan ends at its head.
        let mut scan = Scan::default();
        scan.feed(
            format!("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n{CONFLICTED}").as_bytes(),
        );
        assert!(scan.stopped());
        assert_eq!(scan.conflicted, None);
    }

    #[test]
    fn a_head_past_the_limit_ends_the_scan_and_frees_what_it_kept() {
        let mut scan = Scan::default();
        scan.feed(b"GET / HTTP/1.1\r\n");
        for _ in 0..2000 {
            scan.feed(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(scan.stopped());
        assert_eq!(scan.partial.capacity(), 0);
    }

    #[test]
    fn a_chunked_body_ends_after_its_last_chunk_and_trailers_however_it_is_split() {
        let body = b"3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Sum: 1\r\n\r\n";
        let mut whole = Scan::chunked_body();
        let stream = [&body[..], b"HTTP/1.1 200 OK\r\n"].concat();
        assert_eq!(whole.chunked_end(&stream), Chunked::Ended(body.len()));
        for split in 1..body.len() {
            let mut parts = Scan::chunked_body();
            assert_eq!(parts.chunked_end(&body[..split]), Chunked::More, "split at {split}");
            assert_eq!(parts.chunked_end(&stream[split..]), Chunked::Ended(body.len() - split), "split at {split}");
        }
        assert_eq!(Scan::chunked_body().chunked_end(b"0\r\n\r\n"), Chunked::Ended(5));
        for malformed in [&b"zz\r\n"[..], b"3\r\nabcX", b"ffffffffffffffffff\r\n"] {
            assert_eq!(Scan::chunked_body().chunked_end(malformed), Chunked::Malformed, "{malformed:?}");
        }
    }

    #[test]
    fn a_chunked_body_is_undone_into_its_data_however_it_is_split() {
        let body = b"3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
        for split in 1..body.len() {
            let mut scan = Scan::chunked_body();
            let (mut data, mut ended) = (Vec::new(), None);
            let mut offset = 0;
            for part in [&body[..split], &body[split..]] {
                let mut at = 0;
                while at < part.len() && ended.is_none() {
                    match scan.next_data(&part[at..]) {
                        ChunkPart::Data { framing, data: length } => {
                            data.extend_from_slice(&part[at + framing..at + framing + length]);
                            at += framing + length;
                        }
                        ChunkPart::End(framing) => ended = Some(offset + at + framing),
                        ChunkPart::Malformed => panic!("split at {split}"),
                    }
                }
                offset += part.len();
            }
            assert_eq!(data, b"abc0123456789abcdef", "split at {split}");
            assert_eq!(ended, Some(body.len() - 4), "split at {split}");
        }
        assert_eq!(Scan::chunked_body().next_data(b"zz\r\n"), ChunkPart::Malformed);
    }

    #[test]
    fn the_verdict_names_the_request_to_refuse() {
        let verdict = Arc::new(Verdict::default());
        let mut screen = Screen::new(verdict.clone());
        screen.read(format!("{GET}{GET}{CONFLICTED}").as_bytes());
        let refused: Vec<bool> = (0..4).map(|_| verdict.refuses_next()).collect();
        assert_eq!(refused, [false, false, true, false]);
    }
}
