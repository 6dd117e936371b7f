//! The router benchmark's upstream: answers every HTTP/1.1 request with a 12-byte page,
//! doing as little as it can (one thread, no parsing beyond finding the end of each head),
//! so that what a benchmark through a proxy measures is the proxy. Requests must have no
//! body (the benchmark sends GETs); pipelined requests are answered in one write.
//!
//!     tiny_upstream ADDRESS...

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: tiny\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n";

async fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut filled = 0;
    let mut answers = Vec::new();
    loop {
        let read = stream.read(&mut buffer[filled..]).await?;
        if read == 0 {
            return Ok(());
        }
        filled += read;
        // Answer every whole head; keep a partial one for the next read.
        let mut start = 0;
        while let Some(end) = buffer[start..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            answers.extend_from_slice(ANSWER);
            start += end + 4;
        }
        buffer.copy_within(start..filled, 0);
        filled -= start;
        if filled == buffer.len() {
            return Err(std::io::Error::other("a request head larger than 16 KiB"));
        }
        if !answers.is_empty() {
            stream.write_all(&answers).await?;
            answers.clear();
        }
    }
}

fn main() -> std::io::Result<()> {
    let addresses: Vec<String> = std::env::args().skip(1).collect();
    if addresses.is_empty() {
        eprintln!("usage: tiny_upstream ADDRESS...");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    runtime.block_on(async {
        let mut listeners = Vec::new();
        for address in &addresses {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(address.parse().map_err(std::io::Error::other)?)?;
            listeners.push(socket.listen(4096)?);
        }
        let accepting = listeners.into_iter().map(|listener: TcpListener| {
            tokio::spawn(async move {
                loop {
                    if let Ok((stream, _)) = listener.accept().await {
                        tokio::spawn(serve(stream));
                    }
                }
            })
        });
        for task in accepting.collect::<Vec<_>>() {
            let _ = task.await;
        }
        Ok(())
    })
}
