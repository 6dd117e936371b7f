//! WebSocket for skiff-load (RFC 6455): the upgrade, the client's messages (masked binary
//! frames of one size), and where an echoed message ends in what was read.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use sha1::Digest as _;

use crate::response::Malformed;

/// What RFC 6455 appends to the client's key before hashing it.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The client's key: any 16 bytes, base64 (a benchmark needs no fresh ones).
const KEY: &str = "c2tpZmYtbG9hZC1rZXkhIQ==";
/// The mask of every message the client sends.
const MASK: [u8; 4] = [0x5a, 0x3c, 0x96, 0x0f];

/// Upgrades a fresh (blocking) connection to a WebSocket at `path` of `host`, checking the
/// server's accept key.
pub fn upgrade(stream: &mut TcpStream, host: &str, path: &str) -> anyhow::Result<()> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).context("cannot send the upgrade")?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // A byte at a time: nothing of the first echo may be read here.
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).context("no answer to the upgrade")? == 0 {
            bail!("the server closed the connection instead of upgrading it");
        }
        head.push(byte[0]);
        if head.len() > 16 * 1024 {
            bail!("the answer to the upgrade has no end");
        }
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("HTTP/1.1 101") {
        bail!("the server did not upgrade: {}", head.lines().next().unwrap_or_default());
    }
    let expected = base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(format!("{KEY}{ACCEPT_GUID}")));
    let accepted = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .any(|(name, value)| name.eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == expected);
    if !accepted {
        bail!("the server's Sec-WebSocket-Accept is not the one for the key sent");
    }
    Ok(())
}

/// A binary message of `size` bytes, masked as a client's must be.
pub fn message(size: usize) -> Vec<u8> {
    let mut frame = vec![0x82];
    match size {
        0..=125 => frame.push(0x80 | size as u8),
        126..=65535 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(size as u16).to_be_bytes());
        }
        _ => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(size as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend((0..size).map(|i| (i as u8) ^ MASK[i % 4]));
    frame
}

/// The length of the whole (unmasked) frame at the start of `bytes`, `Ok(None)` while it
/// is incomplete; a close frame is an error.
pub fn parse(bytes: &[u8]) -> Result<Option<usize>, Malformed> {
    let [first, second, ..] = *bytes else { return Ok(None) };
    if first & 0x0f == 0x8 {
        return Err(Malformed("the server closed the WebSocket"));
    }
    if second & 0x80 != 0 {
        return Err(Malformed("a server's frame is masked"));
    }
    let (length, header) = match second & 0x7f {
        126 => match bytes.get(2..4) {
            Some(size) => (usize::from(u16::from_be_bytes([size[0], size[1]])), 4),
            None => return Ok(None),
        },
        127 => match bytes.get(2..10).and_then(|size| size.try_into().ok()) {
            Some(size) => (usize::try_from(u64::from_be_bytes(size)).map_err(|_| Malformed("a huge frame"))?, 10),
            None => return Ok(None),
        },
        short => (usize::from(short), 2),
    };
    Ok((bytes.len() >= header + length).then_some(header + length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_masked_and_echoes_found_whole() {
        let short = message(3);
        assert_eq!(short[..2], [0x82, 0x83]);
        assert_eq!(short[6..], [MASK[0], 1 ^ MASK[1], 2 ^ MASK[2]]);
        assert_eq!(message(300)[1..4], [0x80 | 126, 1, 44]);
        assert_eq!(parse(&[0x82, 3, 0, 1, 2, 0x82]), Ok(Some(5)));
        assert_eq!(parse(&[0x82, 3, 0]), Ok(None));
        let mut long = vec![0x82, 126, 1, 44];
        long.resize(4 + 300, 0);
        assert_eq!(parse(&long), Ok(Some(304)));
        assert_eq!(parse(&long[..100]), Ok(None));
        assert_eq!(parse(&[0x88, 0]), Err(Malformed("the server closed the WebSocket")));
        assert_eq!(parse(&[0x82, 0x83, 1, 2, 3, 4, 0, 0, 0]), Err(Malformed("a server's frame is masked")));
    }
}
