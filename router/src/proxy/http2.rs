//! HTTP/2 clients (over TLS by ALPN, or in plain text with prior knowledge), served by the
//! router's own HTTP/2 server (RFC 9113).
//!
//! A connection is one task: it reads frames, hands each request to the request path
//! (a task per stream, as the app's answer may take a while) and writes the answers back
//! as their bodies come, within the windows the client gives. Between requests it holds
//! the least it can: no buffer for reading (frames are read into the stack, and only a
//! frame cut off by a read is kept), none for writing (given back once written), no
//! encoder table (answers' fields are written literally), and the client's HPACK table,
//! which is the client's to size: about 3 KiB in all with its task and its socket's
//! registration, where hyper's server (the h2 crate) kept 21.5 KiB of buffers and stream
//! slots.
//!
//! What it does not do: server push, priorities (taken and ignored, as RFC 9113 allows),
//! and CONNECT (answered 405: the router tunnels WebSockets over HTTP/1.1 only).

use std::collections::VecDeque;
use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Either;
use hyper::body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;

use super::{Accepted, IDLE_GOODBYE, MAX_STREAMS, Origin, Proxy, ProxyBody, page};
use crate::idle::{Activity, Watched};

mod fields;

use fields::{Gathered, Unmade};

/// What an HTTP/2 client sends first (RFC 9113 §3.4), before its SETTINGS.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEAD: usize = 9;
/// The largest frame payload taken and sent: HTTP/2's default, which the router keeps.
const MAX_FRAME: usize = 16_384;
/// How much of a request's body a client may send ahead of the app reading it, on one
/// stream and on the whole connection: what the router holds for it at most.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// The windows HTTP/2 starts with.
const DEFAULT_WINDOW: u32 = 65_535;
const MAX_WINDOW: i64 = (1 << 31) - 1;
/// What the app has read of a body goes back to the client in WINDOW_UPDATEs of at least
/// this much.
const RELEASE_AT: u32 = 16 * 1024;
/// Output waiting for a client that reads slowly, past which the router stops reading
/// its frames and taking more of the apps' answers.
const OUT_LIMIT: usize = 256 * 1024;
/// Bytes read from a client at a time, on the stack.
const READ_SIZE: usize = 16 * 1024;
/// The largest encoded header block taken (its decoded fields are held to the request
/// head limit); a larger one ends the connection.
const MAX_BLOCK: usize = 2 * super::MAX_HEAD_BYTES;
/// Streams a client may reset before their answers, beyond those answered, before the
/// connection is closed (the "rapid reset" attack: each reset stream cost a request).
const SPARE_RESETS: u32 = 100;

// Frame types (RFC 9113 §6).
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;

// Flags.
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

// Settings (RFC 9113 §6.5.2).
const ENABLE_PUSH: u16 = 2;
const MAX_CONCURRENT_STREAMS: u16 = 3;
const INITIAL_WINDOW_SIZE: u16 = 4;
const MAX_FRAME_SIZE: u16 = 5;
const MAX_HEADER_LIST_SIZE: u16 = 6;

/// Error codes (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    NoError = 0,
    Protocol = 1,
    Internal = 2,
    FlowControl = 3,
    StreamClosed = 5,
    FrameSize = 6,
    Refused = 7,
    Compression = 9,
    EnhanceYourCalm = 0xb,
}

/// Why a connection ends with a GOAWAY.
struct Fault {
    code: Code,
    why: &'static str,
}

fn fault<T>(code: Code, why: &'static str) -> Result<T, Fault> {
    Err(Fault { code, why })
}

/// Serves an HTTP/2 connection; `read` is what was read of it before (the preface, or
/// part of it), until the client closes it, it goes idle, or the router shuts down (then
/// the streams under way finish after a GOAWAY).
pub(super) async fn serve<I>(io: I, read: Bytes, accepted: Accepted)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Accepted { proxy, origin, timeouts, shutdown } = accepted;
    let activity = Activity::new();
    let mut connection = Connection::new(Watched::new(io, activity.clone()), proxy, origin);
    if let Err(fault) = connection.take(&read) {
        connection.fail(fault);
    }
    // The relay's buffer (a few KiB) is not kept for the connection's life.
    drop(read);
    let goodbye = tokio::select! {
        () = std::future::poll_fn(|cx| connection.poll_drive(cx)) => return,
        () = activity.idle_for(timeouts.idle) => Some(IDLE_GOODBYE),
        () = shutdown.cancelled() => None,
    };
    connection.go_away();
    let finished = std::future::poll_fn(|cx| connection.poll_drive(cx));
    match goodbye {
        Some(goodbye) => {
            let _ = tokio::time::timeout(goodbye, finished).await;
        }
        None => finished.await,
    }
}

/// Whether a connection that begins with `bytes` is an HTTP/2 one (with prior knowledge).
pub(super) fn begins(bytes: &[u8]) -> bool {
    !bytes.is_empty() && (bytes.starts_with(PREFACE) || PREFACE.starts_with(bytes))
}

/// A request body an HTTP/2 client sends, as the app reads it.
pub struct RequestBody(Option<Arc<Inbound>>);

/// The body failed because the client reset its stream (or the connection ended) before
/// sending all of it.
#[derive(Debug, thiserror::Error)]
#[error("the client reset the stream before its request body ended")]
pub struct StreamReset;

/// A request body between the connection, which receives it, and the app's request,
/// which reads it.
#[derive(Default)]
struct Inbound(Mutex<Flow>);

#[derive(Default)]
struct Flow {
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    queued: u32,
    /// Bytes read by the app and not yet given back to the client's window.
    read: u32,
    ended: bool,
    trailers: Option<HeaderMap>,
    reset: bool,
    reader: Option<Waker>,
    connection: Option<Waker>,
}

impl Inbound {
    fn flow(&self) -> MutexGuard<'_, Flow> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Flow {
    /// Ends the body: with its trailers, or broken off (`reset`).
    fn end(&mut self, trailers: Option<HeaderMap>, reset: bool) {
        self.ended = true;
        self.trailers = trailers;
        self.reset = reset;
        if let Some(reader) = self.reader.take() {
            reader.wake();
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = StreamReset;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StreamReset>>> {
        let Some(inbound) = &self.0 else { return Poll::Ready(None) };
        let mut flow = inbound.flow();
        if flow.reset {
            return Poll::Ready(Some(Err(StreamReset)));
        }
        if let Some(chunk) = flow.chunks.pop_front() {
            let length = chunk.len() as u32;
            flow.queued -= length;
            flow.read += length;
            // The connection gives the window back.
            if let Some(connection) = flow.connection.take() {
                connection.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if flow.ended {
            return Poll::Ready(flow.trailers.take().map(|trailers| Ok(Frame::trailers(trailers))));
        }
        if !flow.reader.as_ref().is_some_and(|reader| reader.will_wake(cx.waker())) {
            flow.reader = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(|inbound| {
            let flow = inbound.flow();
            flow.ended && !flow.reset && flow.chunks.is_empty() && flow.trailers.is_none()
        })
    }
}

/// What the connection writes, and its windows.
struct Link {
    out: Vec<u8>,
    /// How much of `out` is written.
    written: usize,
    /// What the client lets the router send on the connection.
    send_window: i64,
    /// What the client may send on the connection.
    recv: RecvWindow,
    /// What the client lets the router send on a new stream.
    stream_send_window: i64,
}

impl Link {
    fn frame_head(&mut self, length: usize, kind: u8, flags: u8, stream: u32) {
        let length = (length as u32).to_be_bytes();
        self.out.extend_from_slice(&length[1..]);
        self.out.extend_from_slice(&[kind, flags]);
        self.out.extend_from_slice(&stream.to_be_bytes());
    }

    fn data(&mut self, stream: u32, bytes: &[u8], end: bool) {
        self.frame_head(bytes.len(), DATA, if end { END_STREAM } else { 0 }, stream);
        self.out.extend_from_slice(bytes);
    }

    /// A header block, in a HEADERS frame and as many CONTINUATIONs as it takes.
    fn block(&mut self, stream: u32, end_stream: bool, encode: impl FnOnce(&mut Vec<u8>)) {
        let start = self.out.len();
        self.out.extend_from_slice(&[0; FRAME_HEAD]);
        encode(&mut self.out);
        let block = self.out.split_off(start + FRAME_HEAD);
        self.out.truncate(start);
        let end_stream = if end_stream { END_STREAM } else { 0 };
        let mut parts = block.chunks(MAX_FRAME).peekable();
        let mut kind = HEADERS;
        let mut flags = end_stream;
        loop {
            let part = parts.next().unwrap_or_default();
            let last = parts.peek().is_none();
            self.frame_head(part.len(), kind, if last { flags | END_HEADERS } else { flags }, stream);
            self.out.extend_from_slice(part);
            if last {
                return;
            }
            (kind, flags) = (CONTINUATION, 0);
        }
    }

    fn window_update(&mut self, stream: u32, increment: u32) {
        self.frame_head(4, WINDOW_UPDATE, 0, stream);
        self.out.extend_from_slice(&increment.to_be_bytes());
    }

    fn reset(&mut self, stream: u32, code: Code) {
        self.frame_head(4, RST_STREAM, 0, stream);
        self.out.extend_from_slice(&(code as u32).to_be_bytes());
    }

    fn go_away(&mut self, last_stream: u32, code: Code) {
        self.frame_head(8, GOAWAY, 0, 0);
        self.out.extend_from_slice(&last_stream.to_be_bytes());
        self.out.extend_from_slice(&(code as u32).to_be_bytes());
    }

    /// Gives `bytes` of the connection's window back to the client, once there is enough
    /// to be worth a frame.
    fn release(&mut self, bytes: u32) {
        if let Some(increment) = self.recv.give_back(bytes) {
            self.window_update(0, increment);
        }
    }
}

/// What a client may send, on the connection or on a stream, before the router gives it
/// more; and what was read (or dropped) of it and not yet given back.
struct RecvWindow {
    open: i64,
    released: u32,
}

impl RecvWindow {
    fn new(size: u32) -> Self {
        Self { open: i64::from(size), released: 0 }
    }

    /// Takes `size` bytes of the window; false if the client sent past it.
    fn take(&mut self, size: u32) -> bool {
        if i64::from(size) > self.open {
            return false;
        }
        self.open -= i64::from(size);
        true
    }

    /// Gives `bytes` back; the WINDOW_UPDATE's increment once there is enough to be worth
    /// a frame.
    fn give_back(&mut self, bytes: u32) -> Option<u32> {
        self.released += bytes;
        (self.released >= RELEASE_AT).then(|| {
            let increment = std::mem::take(&mut self.released);
            self.open += i64::from(increment);
            increment
        })
    }
}

/// A stream: its request, on its way to the app, and the app's answer.
struct Stream {
    id: u32,
    /// The request's body on its way to the app.
    inbound: Option<Arc<Inbound>>,
    /// Whether the client is still sending the request (its body or trailers).
    receiving: bool,
    /// What the client may send on the stream.
    recv: RecvWindow,
    /// The body's length by `Content-Length`, and what came of it so far.
    declared: Option<u64>,
    received: u64,
    answer: Answer,
    /// What the client lets the router send on the stream.
    send_window: i64,
    /// A HEAD request: its answer has no body.
    bodiless: bool,
}

enum Answer {
    /// The request path is at work on it.
    Awaited(JoinHandle<Response<ProxyBody>>),
    /// Its head is sent; `held` is what was taken of the body and waits for window.
    Sending {
        body: ProxyBody,
        held: Bytes,
    },
    Sent,
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Answer::Awaited(handler) = &self.answer {
            handler.abort();
        }
        if let Some(inbound) = &self.inbound {
            let mut flow = inbound.flow();
            if !flow.ended {
                flow.end(None, true);
            }
        }
    }
}

impl Stream {
    fn new(id: u32, send_window: i64) -> Self {
        Self {
            id,
            inbound: None,
            receiving: false,
            recv: RecvWindow::new(STREAM_WINDOW),
            declared: None,
            received: 0,
            answer: Answer::Sent,
            send_window,
            bodiless: false,
        }
    }

    /// Moves the stream on: gives back the window its body's reader freed, takes the
    /// app's answer and writes as much of it as the windows allow. True once the stream
    /// is done with (the client sent all, the answer is written, or it is reset).
    fn serve(&mut self, cx: &mut Context<'_>, link: &mut Link) -> bool {
        self.give_back(cx, link);
        if let Answer::Awaited(handler) = &mut self.answer {
            match Pin::new(handler).poll(cx) {
                Poll::Pending => return false,
                Poll::Ready(Ok(response)) => self.answer(response, link),
                Poll::Ready(Err(error)) => {
                    tracing::warn!(%error, "router.http2: the request path failed");
                    link.reset(self.id, Code::Internal);
                    self.answer = Answer::Sent;
                    self.receiving = false;
                    return true;
                }
            }
        }
        if let Answer::Sending { .. } = self.answer {
            self.send_body(cx, link);
        }
        if !matches!(self.answer, Answer::Sent) {
            return false;
        }
        if self.receiving {
            // Answered before the client sent its whole request: it need not send the
            // rest (RFC 9113 §8.1).
            link.reset(self.id, Code::NoError);
            self.receiving = false;
        }
        true
    }

    /// Gives the client back the window of what the app read of the body (all of it once
    /// the app dropped the body).
    fn give_back(&mut self, cx: &mut Context<'_>, link: &mut Link) {
        let Some(inbound) = &self.inbound else { return };
        let unread = Arc::strong_count(inbound) == 1;
        let mut flow = inbound.flow();
        if unread {
            flow.read += flow.queued;
            flow.queued = 0;
            flow.chunks.clear();
        } else if !flow.connection.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
            flow.connection = Some(cx.waker().clone());
        }
        let read = std::mem::take(&mut flow.read);
        drop(flow);
        if read == 0 {
            return;
        }
        link.release(read);
        if self.receiving
            && let Some(increment) = self.recv.give_back(read)
        {
            link.window_update(self.id, increment);
        }
    }

    /// Writes the answer's head; its body follows as it comes.
    fn answer(&mut self, response: Response<ProxyBody>, link: &mut Link) {
        let (mut parts, body) = response.into_parts();
        if !parts.headers.contains_key(header::DATE) {
            super::relay::with_date(|date| {
                if let Ok(date) = HeaderValue::from_str(date) {
                    parts.headers.insert(header::DATE, date);
                }
            });
        }
        let status = parts.status;
        if let Some(length) = body.size_hint().exact()
            && !parts.headers.contains_key(header::CONTENT_LENGTH)
            && status != StatusCode::NO_CONTENT
            && status != StatusCode::NOT_MODIFIED
        {
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        let end = self.bodiless
            || body.is_end_stream()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        link.block(self.id, end, |out| fields::encode_head(out, status, &parts.headers));
        self.answer = if end { Answer::Sent } else { Answer::Sending { body, held: Bytes::new() } };
    }

    /// Writes the answer's body as far as it has come and the windows allow.
    fn send_body(&mut self, cx: &mut Context<'_>, link: &mut Link) {
        let Answer::Sending { body, held } = &mut self.answer else { return };
        let sent = loop {
            if link.out.len() >= OUT_LIMIT {
                break false;
            }
            if held.is_empty() {
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Pending => break false,
                    Poll::Ready(None) => {
                        link.data(self.id, &[], true);
                        break true;
                    }
                    Poll::Ready(Some(Err(error))) => {
                        tracing::debug!(%error, "router.http2: an answer's body broke off");
                        link.reset(self.id, Code::Internal);
                        self.receiving = false;
                        break true;
                    }
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => *held = data,
                        Err(frame) => {
                            if let Ok(trailers) = frame.into_trailers() {
                                link.block(self.id, true, |out| fields::encode_fields(out, &trailers));
                                break true;
                            }
                        }
                    },
                }
                continue;
            }
            let window = self.send_window.min(link.send_window);
            if window <= 0 {
                // The client's WINDOW_UPDATE is read, and the stream served again.
                break false;
            }
            let length = held.len().min(window as usize).min(MAX_FRAME);
            let chunk = held.split_to(length);
            let end = held.is_empty() && body.is_end_stream();
            link.data(self.id, &chunk, end);
            self.send_window -= length as i64;
            link.send_window -= length as i64;
            if end {
                break true;
            }
        };
        if sent {
            self.answer = Answer::Sent;
        }
    }
}

/// A header block waiting for its CONTINUATION frames.
struct Block {
    stream: u32,
    end_stream: bool,
    bytes: Vec<u8>,
}

/// Why the connection stopped reading.
enum Stop {
    /// The client closed it, or it broke.
    Gone,
    Fault(Fault),
}

struct Connection<I> {
    io: I,
    proxy: Arc<Proxy>,
    origin: Arc<Origin>,
    link: Link,
    streams: Vec<Stream>,
    decoder: loona_hpack::Decoder<'static>,
    /// Bytes read that do not make a whole frame yet.
    pending: Vec<u8>,
    preface_read: bool,
    settings_read: bool,
    block: Option<Block>,
    /// The highest stream the client opened.
    last_stream: u32,
    /// The highest stream taken: all until the router says GOAWAY.
    taking_up_to: u32,
    /// Streams the client reset before they were answered, and streams answered.
    resets: u32,
    answered: u32,
    /// Output written but maybe not yet flushed (TLS holds records until flushed).
    unflushed: bool,
    /// The connection closes once its output is written.
    closing: bool,
}

impl<I: AsyncRead + AsyncWrite + Unpin> Connection<I> {
    fn new(io: I, proxy: Arc<Proxy>, origin: Arc<Origin>) -> Self {
        let mut link = Link {
            out: Vec::new(),
            written: 0,
            send_window: i64::from(DEFAULT_WINDOW),
            recv: RecvWindow::new(CONNECTION_WINDOW),
            stream_send_window: i64::from(DEFAULT_WINDOW),
        };
        let settings = [
            (MAX_CONCURRENT_STREAMS, MAX_STREAMS),
            (INITIAL_WINDOW_SIZE, STREAM_WINDOW),
            (MAX_HEADER_LIST_SIZE, super::MAX_HEAD_BYTES as u32),
        ];
        link.frame_head(settings.len() * 6, SETTINGS, 0, 0);
        for (setting, value) in settings {
            link.out.extend_from_slice(&setting.to_be_bytes());
            link.out.extend_from_slice(&value.to_be_bytes());
        }
        link.window_update(0, CONNECTION_WINDOW - DEFAULT_WINDOW);
        Self {
            io,
            proxy,
            origin,
            link,
            streams: Vec::new(),
            decoder: loona_hpack::Decoder::new(),
            pending: Vec::new(),
            preface_read: false,
            settings_read: false,
            block: None,
            last_stream: 0,
            taking_up_to: u32::MAX,
            resets: 0,
            answered: 0,
            unflushed: false,
            closing: false,
        }
    }

    /// Takes no new streams; the connection ends once those under way do.
    fn go_away(&mut self) {
        if self.taking_up_to == u32::MAX {
            self.taking_up_to = self.last_stream;
            self.link.go_away(self.last_stream, Code::NoError);
        }
    }

    /// Ends the connection with a GOAWAY saying why, once it is written.
    fn fail(&mut self, fault: Fault) {
        tracing::debug!(code = ?fault.code, why = fault.why, "router.http2: the connection is closed");
        self.link.go_away(self.last_stream, fault.code);
        self.streams.clear();
        self.closing = true;
    }

    /// Reads, serves the streams and writes until nothing moves; ready once the
    /// connection is over.
    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let mut moved = false;
            if !self.closing && self.link.out.len() < OUT_LIMIT {
                match self.read(cx) {
                    Ok(read) => moved |= read,
                    Err(Stop::Gone) => return Poll::Ready(()),
                    Err(Stop::Fault(fault)) => self.fail(fault),
                }
            }
            if !self.closing {
                self.serve_streams(cx);
            }
            match self.write(cx) {
                Err(()) => return Poll::Ready(()),
                Ok(wrote) => moved |= wrote,
            }
            let over = self.closing || (self.taking_up_to != u32::MAX && self.streams.is_empty());
            if over && self.link.out.is_empty() && !self.unflushed {
                let _ = Pin::new(&mut self.io).poll_shutdown(cx);
                return Poll::Ready(());
            }
            if !moved {
                return Poll::Pending;
            }
        }
    }

    /// Reads what the client sent, and takes its frames; whether anything was read.
    fn read(&mut self, cx: &mut Context<'_>) -> Result<bool, Stop> {
        let mut space = [MaybeUninit::<u8>::uninit(); READ_SIZE];
        let mut read = false;
        while !self.closing && self.link.out.len() < OUT_LIMIT {
            let mut buffer = ReadBuf::uninit(&mut space);
            match Pin::new(&mut self.io).poll_read(cx, &mut buffer) {
                Poll::Pending => break,
                Poll::Ready(Err(_)) => return Err(Stop::Gone),
                Poll::Ready(Ok(())) if buffer.filled().is_empty() => return Err(Stop::Gone),
                Poll::Ready(Ok(())) => {
                    read = true;
                    self.take(buffer.filled()).map_err(Stop::Fault)?;
                }
            }
        }
        Ok(read)
    }

    /// Takes the whole frames in what was kept and `bytes`, and keeps the rest.
    fn take(&mut self, bytes: &[u8]) -> Result<(), Fault> {
        if self.pending.is_empty() {
            let used = self.frames(bytes)?;
            self.pending.extend_from_slice(&bytes[used..]);
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(bytes);
            let used = self.frames(&pending)?;
            pending.drain(..used);
            if !pending.is_empty() {
                self.pending = pending;
            }
        }
        Ok(())
    }

    /// Takes the whole frames at the start of `bytes`; how many bytes they were.
    fn frames(&mut self, bytes: &[u8]) -> Result<usize, Fault> {
        let mut used = 0;
        if !self.preface_read {
            if bytes.len() < PREFACE.len() {
                return if PREFACE.starts_with(bytes) { Ok(0) } else { fault(Code::Protocol, "not HTTP/2's preface") };
            }
            if &bytes[..PREFACE.len()] != PREFACE {
                return fault(Code::Protocol, "not HTTP/2's preface");
            }
            self.preface_read = true;
            used = PREFACE.len();
        }
        while let Some(head) = bytes.get(used..used + FRAME_HEAD) {
            let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            if length > MAX_FRAME {
                return fault(Code::FrameSize, "a frame larger than the router's SETTINGS allow");
            }
            let Some(payload) = bytes.get(used + FRAME_HEAD..used + FRAME_HEAD + length) else { break };
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            self.frame(head[3], head[4], stream, payload)?;
            used += FRAME_HEAD + length;
        }
        Ok(used)
    }

    fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Result<(), Fault> {
        if self.block.as_ref().is_some_and(|block| kind != CONTINUATION || block.stream != stream) {
            return fault(Code::Protocol, "a header block broken off by another frame");
        }
        if !self.settings_read && kind != SETTINGS {
            return fault(Code::Protocol, "the client's first frame is not SETTINGS");
        }
        match kind {
            DATA => self.data(flags, stream, payload),
            HEADERS => self.headers(flags, stream, payload),
            CONTINUATION => self.continuation(flags, stream, payload),
            PRIORITY if stream == 0 => fault(Code::Protocol, "PRIORITY for the connection"),
            PRIORITY if payload.len() != 5 => fault(Code::FrameSize, "a PRIORITY frame's length"),
            RST_STREAM => self.client_reset(stream, payload),
            SETTINGS => self.settings(flags, stream, payload),
            PUSH_PROMISE => fault(Code::Protocol, "a client sent PUSH_PROMISE"),
            PING if stream != 0 => fault(Code::Protocol, "PING on a stream"),
            PING if payload.len() != 8 => fault(Code::FrameSize, "a PING frame's length"),
            PING => {
                if flags & ACK == 0 {
                    self.link.frame_head(8, PING, ACK, 0);
                    self.link.out.extend_from_slice(payload);
                }
                Ok(())
            }
            GOAWAY if stream != 0 || payload.len() < 8 => fault(Code::Protocol, "a malformed GOAWAY"),
            GOAWAY => {
                self.go_away();
                Ok(())
            }
            WINDOW_UPDATE => self.window_update(stream, payload),
            // PRIORITY frames, and frames of extensions the router does not know.
            _ => Ok(()),
        }
    }

    fn index(&self, stream: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == stream)
    }

    /// Resets a stream the router will not serve further.
    fn reset(&mut self, index: usize, code: Code) {
        let stream = self.remove(index);
        self.link.reset(stream.id, code);
    }

    /// Takes a stream out, giving back the window its unread body held.
    fn remove(&mut self, index: usize) -> Stream {
        let stream = self.streams.swap_remove(index);
        if let Some(inbound) = &stream.inbound {
            let mut flow = inbound.flow();
            let unread = flow.queued + std::mem::take(&mut flow.read);
            flow.chunks.clear();
            flow.queued = 0;
            drop(flow);
            self.link.release(unread);
        }
        stream
    }

    fn data(&mut self, flags: u8, stream: u32, payload: &[u8]) -> Result<(), Fault> {
        if stream == 0 {
            return fault(Code::Protocol, "DATA for the connection");
        }
        let size = payload.len() as u32;
        if !self.link.recv.take(size) {
            return fault(Code::FlowControl, "DATA past the connection's window");
        }
        let content = unpadded(flags, payload)?;
        let Some(index) = self.index(stream) else {
            if stream > self.last_stream {
                return fault(Code::Protocol, "DATA on a stream not opened");
            }
            // A stream reset or done with: what it sends is dropped.
            self.link.release(size);
            return Ok(());
        };
        let entry = &mut self.streams[index];
        if !entry.receiving {
            self.link.release(size);
            self.reset(index, Code::StreamClosed);
            return Ok(());
        }
        if !entry.recv.take(size) {
            self.link.release(size);
            self.reset(index, Code::FlowControl);
            return Ok(());
        }
        entry.received += content.len() as u64;
        let end = flags & END_STREAM != 0;
        if entry.declared.is_some_and(|declared| entry.received > declared || (end && entry.received != declared)) {
            // A body longer or shorter than its Content-Length is malformed (RFC 9113 §8.1.1).
            self.link.release(size);
            self.reset(index, Code::Protocol);
            return Ok(());
        }
        // Padding is given back at once: no app reads it.
        let padding = size - content.len() as u32;
        if let Some(increment) = entry.recv.give_back(padding) {
            self.link.window_update(stream, increment);
        }
        self.link.release(padding);
        match &entry.inbound {
            Some(inbound) => {
                let mut flow = inbound.flow();
                if !content.is_empty() {
                    flow.chunks.push_back(Bytes::copy_from_slice(content));
                    flow.queued += content.len() as u32;
                }
                if end {
                    flow.end(None, false);
                } else if let Some(reader) = flow.reader.take() {
                    reader.wake();
                }
            }
            // The router answered it itself: nobody reads the body.
            None => self.link.release(content.len() as u32),
        }
        if end {
            entry.receiving = false;
        }
        Ok(())
    }

    fn headers(&mut self, flags: u8, stream: u32, payload: &[u8]) -> Result<(), Fault> {
        if stream == 0 {
            return fault(Code::Protocol, "HEADERS for the connection");
        }
        let mut block = unpadded(flags, payload)?;
        if flags & PRIORITY_FLAG != 0 {
            block = block.get(5..).map_or_else(|| fault(Code::FrameSize, "a HEADERS frame's priority"), Ok)?;
        }
        let end_stream = flags & END_STREAM != 0;
        if flags & END_HEADERS == 0 {
            self.block = Some(Block { stream, end_stream, bytes: block.to_vec() });
            return Ok(());
        }
        self.header_block(stream, end_stream, block)
    }

    fn continuation(&mut self, flags: u8, stream: u32, payload: &[u8]) -> Result<(), Fault> {
        let Some(block) = &mut self.block else {
            return fault(Code::Protocol, "CONTINUATION without HEADERS");
        };
        block.bytes.extend_from_slice(payload);
        if block.bytes.len() > MAX_BLOCK {
            return fault(Code::EnhanceYourCalm, "a header block larger than the router takes");
        }
        if flags & END_HEADERS == 0 {
            return Ok(());
        }
        let block = self.block.take().expect("a block under way");
        self.header_block(stream, block.end_stream, &block.bytes)
    }

    /// A whole header block: a new request, or the trailers of one under way.
    fn header_block(&mut self, stream: u32, end_stream: bool, block: &[u8]) -> Result<(), Fault> {
        let index = self.index(stream);
        let trailers = index.is_some();
        let mut gathered = Gathered::default();
        // Decoded whatever becomes of the stream: the client's table changes with it.
        self.decoder
            .decode_with_cb(block, |name, value| gathered.field(&name, &value, trailers))
            .or_else(|_| fault(Code::Compression, "a header block that does not decode"))?;
        if let Some(index) = index {
            let entry = &mut self.streams[index];
            let taken = match gathered.trailers() {
                Ok(_) if !entry.receiving => Err(Code::StreamClosed),
                Ok(_) if !end_stream => Err(Code::Protocol),
                Ok(_) if entry.declared.is_some_and(|declared| declared != entry.received) => Err(Code::Protocol),
                Ok(trailers) => Ok(trailers),
                Err(_) => Err(Code::Protocol),
            };
            match taken {
                Ok(trailers) => {
                    entry.receiving = false;
                    if let Some(inbound) = &entry.inbound {
                        inbound.flow().end(Some(trailers), false);
                    }
                }
                Err(code) => self.reset(index, code),
            }
            return Ok(());
        }
        if stream.is_multiple_of(2) {
            return fault(Code::Protocol, "a client opened an even-numbered stream");
        }
        if stream <= self.last_stream {
            // A stream the router reset, or one done with.
            return fault(Code::StreamClosed, "HEADERS on a closed stream");
        }
        self.last_stream = stream;
        if stream > self.taking_up_to {
            // After the router's GOAWAY: not taken, and the client may send it again.
            return Ok(());
        }
        if self.streams.len() >= MAX_STREAMS as usize {
            self.link.reset(stream, Code::Refused);
            return Ok(());
        }
        let request = match gathered.request() {
            Ok(request) => request,
            Err(Unmade::TooLarge) => {
                let answer = page(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "the request's fields are too large");
                self.answer_at_once(stream, end_stream, answer);
                return Ok(());
            }
            Err(Unmade::Malformed(why)) => {
                tracing::debug!(why, "router.http2: a malformed request");
                self.link.reset(stream, Code::Protocol);
                return Ok(());
            }
        };
        if request.method() == Method::CONNECT {
            let answer = page(StatusCode::METHOD_NOT_ALLOWED, "the router does not tunnel CONNECT over HTTP/2");
            self.answer_at_once(stream, end_stream, answer);
            return Ok(());
        }
        let declared = match request.headers().get(header::CONTENT_LENGTH).map(|v| v.to_str().ok()?.parse::<u64>().ok())
        {
            None => None,
            Some(Some(length)) if !end_stream || length == 0 => Some(length),
            Some(_) => {
                self.link.reset(stream, Code::Protocol);
                return Ok(());
            }
        };
        let mut entry = Stream::new(stream, self.link.stream_send_window);
        entry.bodiless = request.method() == Method::HEAD;
        entry.declared = declared;
        entry.receiving = !end_stream;
        let body = if end_stream {
            RequestBody(None)
        } else {
            let inbound = Arc::new(Inbound::default());
            entry.inbound = Some(inbound.clone());
            RequestBody(Some(inbound))
        };
        let request = request.map(|()| Either::Right(body));
        let (proxy, origin) = (self.proxy.clone(), self.origin.clone());
        entry.answer = Answer::Awaited(tokio::spawn(async move { proxy.handle(request, &origin).await }));
        self.streams.push(entry);
        Ok(())
    }

    /// Opens a stream the router answers itself.
    fn answer_at_once(&mut self, stream: u32, end_stream: bool, answer: Response<ProxyBody>) {
        let mut entry = Stream::new(stream, self.link.stream_send_window);
        entry.receiving = !end_stream;
        entry.answer(answer, &mut self.link);
        self.streams.push(entry);
    }

    fn client_reset(&mut self, stream: u32, payload: &[u8]) -> Result<(), Fault> {
        if stream == 0 || stream > self.last_stream {
            return fault(Code::Protocol, "RST_STREAM on the connection or a stream not opened");
        }
        if payload.len() != 4 {
            return fault(Code::FrameSize, "a RST_STREAM frame's length");
        }
        let Some(index) = self.index(stream) else { return Ok(()) };
        // Reset by the client: nothing more is said of it.
        let stream = self.remove(index);
        if matches!(stream.answer, Answer::Awaited(_)) {
            self.resets += 1;
            if self.resets > self.answered.saturating_add(SPARE_RESETS) {
                return fault(Code::EnhanceYourCalm, "streams reset faster than they are answered");
            }
        }
        Ok(())
    }

    fn settings(&mut self, flags: u8, stream: u32, payload: &[u8]) -> Result<(), Fault> {
        if stream != 0 {
            return fault(Code::Protocol, "SETTINGS on a stream");
        }
        if flags & ACK != 0 {
            return if payload.is_empty() { Ok(()) } else { fault(Code::FrameSize, "a SETTINGS ACK with settings") };
        }
        if !payload.len().is_multiple_of(6) {
            return fault(Code::FrameSize, "a SETTINGS frame's length");
        }
        for setting in payload.chunks_exact(6) {
            let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            match u16::from_be_bytes([setting[0], setting[1]]) {
                ENABLE_PUSH if value > 1 => return fault(Code::Protocol, "ENABLE_PUSH neither 0 nor 1"),
                INITIAL_WINDOW_SIZE if i64::from(value) > MAX_WINDOW => {
                    return fault(Code::FlowControl, "INITIAL_WINDOW_SIZE past the largest window");
                }
                INITIAL_WINDOW_SIZE => {
                    // The streams under way gain or lose the difference (RFC 9113 §6.9.2).
                    let change = i64::from(value) - self.link.stream_send_window;
                    self.link.stream_send_window = i64::from(value);
                    for stream in &mut self.streams {
                        stream.send_window += change;
                    }
                }
                MAX_FRAME_SIZE if !(16_384..=16_777_215).contains(&value) => {
                    return fault(Code::Protocol, "MAX_FRAME_SIZE out of its range");
                }
                // The router sends no larger frames, opens no streams and keeps no
                // encoder table whatever the client allows.
                _ => {}
            }
        }
        self.settings_read = true;
        self.link.frame_head(0, SETTINGS, ACK, 0);
        Ok(())
    }

    fn window_update(&mut self, stream: u32, payload: &[u8]) -> Result<(), Fault> {
        let [a, b, c, d] = payload else {
            return fault(Code::FrameSize, "a WINDOW_UPDATE frame's length");
        };
        let increment = i64::from(u32::from_be_bytes([*a, *b, *c, *d]) & 0x7fff_ffff);
        if stream == 0 {
            if increment == 0 {
                return fault(Code::Protocol, "a WINDOW_UPDATE of nothing");
            }
            self.link.send_window += increment;
            if self.link.send_window > MAX_WINDOW {
                return fault(Code::FlowControl, "the connection's window past its largest");
            }
            return Ok(());
        }
        if stream > self.last_stream {
            return fault(Code::Protocol, "WINDOW_UPDATE on a stream not opened");
        }
        let Some(index) = self.index(stream) else { return Ok(()) };
        let entry = &mut self.streams[index];
        entry.send_window += increment;
        if increment == 0 {
            self.reset(index, Code::Protocol);
        } else if entry.send_window > MAX_WINDOW {
            self.reset(index, Code::FlowControl);
        }
        Ok(())
    }

    fn serve_streams(&mut self, cx: &mut Context<'_>) {
        let mut index = 0;
        while index < self.streams.len() {
            let stream = &mut self.streams[index];
            let awaited = matches!(stream.answer, Answer::Awaited(_));
            let done = stream.serve(cx, &mut self.link);
            if awaited && !matches!(stream.answer, Answer::Awaited(_)) {
                self.answered += 1;
            }
            if done {
                self.remove(index);
            } else {
                index += 1;
            }
        }
    }

    /// Writes what there is to write; whether anything was written. An error ends the
    /// connection.
    fn write(&mut self, cx: &mut Context<'_>) -> Result<bool, ()> {
        let mut wrote = false;
        let link = &mut self.link;
        while link.written < link.out.len() {
            match Pin::new(&mut self.io).poll_write(cx, &link.out[link.written..]) {
                Poll::Ready(Ok(0) | Err(_)) => return Err(()),
                Poll::Ready(Ok(written)) => {
                    link.written += written;
                    wrote = true;
                    self.unflushed = true;
                }
                Poll::Pending => return Ok(wrote),
            }
        }
        if link.written > 0 {
            link.written = 0;
            if self.streams.is_empty() {
                // Given back: an idle connection keeps no buffer, and no room for streams.
                link.out = Vec::new();
                self.streams = Vec::new();
            } else {
                link.out.clear();
            }
        }
        if self.unflushed {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(_)) => return Err(()),
                Poll::Pending => {}
            }
        }
        Ok(wrote)
    }
}

/// A DATA or HEADERS frame's content, without its padding.
fn unpadded(flags: u8, payload: &[u8]) -> Result<&[u8], Fault> {
    if flags & PADDED == 0 {
        return Ok(payload);
    }
    match payload.split_first() {
        Some((&padding, rest)) if usize::from(padding) <= rest.len() => Ok(&rest[..rest.len() - usize::from(padding)]),
        _ => fault(Code::Protocol, "padding longer than its frame"),
    }
}
