//! The WebSocket benchmark's upstream: takes every connection's upgrade (RFC 6455, with the
//! accept key), then sends back every message it gets, as it came, doing as little as it
//! can (one thread, messages up to 64 KiB, no fragmentation, no extensions).
//!
//!     echo_upstream ADDRESS...

use base64::Engine as _;
use sha1::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What RFC 6455 appends to the client's key before hashing it.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Key` of a request head.
fn client_key(head: &str) -> Option<&str> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, value)| value.trim())
}

/// One whole frame at the start of `bytes`: its length, and where its payload starts and
/// with which mask (client frames are masked).
fn frame(bytes: &[u8]) -> Option<(usize, usize, Option<[u8; 4]>)> {
    let second = *bytes.get(1)?;
    let rest = &bytes[2..];
    let masked = second & 0x80 != 0;
    let (length, mut at) = match second & 0x7f {
        126 => (usize::from(u16::from_be_bytes(*rest.first_chunk::<2>()?)), 4),
        127 => (usize::try_from(u64::from_be_bytes(*rest.first_chunk::<8>()?)).ok()?, 10),
        short => (usize::from(short), 2),
    };
    let mask = if masked {
        let mask = *bytes.get(at..at + 4)?.first_chunk::<4>()?;
        at += 4;
        Some(mask)
    } else {
        None
    };
    (bytes.len() >= at + length).then_some((at + length, at, mask))
}

async fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = vec![0u8; 80 * 1024];
    let mut filled = 0;
    // The upgrade.
    let head_end = loop {
        let read = stream.read(&mut buffer[filled..]).await?;
        if read == 0 {
            return Ok(());
        }
        filled += read;
        if let Some(end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let Some(key) = client_key(&head) else {
        return stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
    };
    let accept = base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(format!("{key}{ACCEPT_GUID}")));
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(answer.as_bytes()).await?;
    buffer.copy_within(head_end..filled, 0);
    filled -= head_end;
    // The echo: every whole frame back, unmasked.
    let mut out = Vec::new();
    loop {
        let mut start = 0;
        while let Some((length, payload, mask)) = frame(&buffer[start..filled]) {
            let frame = &buffer[start..start + length];
            if frame[0] & 0x0f == 0x8 {
                return stream.write_all(&[0x88, 0]).await;
            }
            let size = length - payload;
            out.push(frame[0]);
            match size {
                0..=125 => out.push(size as u8),
                126..=65535 => {
                    out.push(126);
                    out.extend_from_slice(&(size as u16).to_be_bytes());
                }
                _ => {
                    out.push(127);
                    out.extend_from_slice(&(size as u64).to_be_bytes());
                }
            }
            let body = &frame[payload..];
            match mask {
                Some(mask) => out.extend(body.iter().enumerate().map(|(i, b)| b ^ mask[i % 4])),
                None => out.extend_from_slice(body),
            }
            start += length;
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        buffer.copy_within(start..filled, 0);
        filled -= start;
        if filled == buffer.len() {
            return Err(std::io::Error::other("a message larger than 64 KiB"));
        }
        let read = stream.read(&mut buffer[filled..]).await?;
        if read == 0 {
            return Ok(());
        }
        filled += read;
    }
}

fn main() -> std::io::Result<()> {
    let addresses: Vec<String> = std::env::args().skip(1).collect();
    if addresses.is_empty() {
        eprintln!("usage: echo_upstream ADDRESS...");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    runtime.block_on(async {
        for address in addresses {
            let listener = TcpListener::bind(&address).await?;
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream));
                }
            });
        }
        std::future::pending::<std::io::Result<()>>().await
    })
}
