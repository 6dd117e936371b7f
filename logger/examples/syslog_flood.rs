//! The logger benchmark's generator: sequence-numbered RFC 5424 messages of 100 bytes,
//! over one TCP connection with octet counting (as fast as the receiver takes them), or
//! over UDP at a fixed rate.
//!
//!   syslog_flood tcp ADDR COUNT
//!   syslog_flood udp ADDR COUNT RATE_PER_SECOND
//!
//! Prints the seconds the sending took.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Every message is this long, framing aside.
const MESSAGE_BYTES: usize = 100;

fn message(seq: u64) -> String {
    let head = format!("<14>1 2026-11-24T00:00:00.000000Z bench bench.web.1 - - - seq={seq:010} ");
    let pad = MESSAGE_BYTES.saturating_sub(head.len());
    format!("{head}{}", "x".repeat(pad))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: syslog_flood tcp ADDR COUNT | syslog_flood udp ADDR COUNT RATE_PER_SECOND";
    let (Some(mode), Some(address), Some(count)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let address: SocketAddr = address.parse().expect("ADDR is IP:PORT");
    let count: u64 = count.parse().expect("COUNT is a number");
    let started = Instant::now();
    match mode.as_str() {
        "tcp" => {
            let stream = TcpStream::connect(address).expect("the receiver accepts");
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, stream);
            for seq in 0..count {
                let message = message(seq);
                write!(writer, "{} {message}", message.len()).expect("the receiver reads");
            }
            writer.flush().expect("the receiver reads");
        }
        "udp" => {
            let rate: u64 = args.get(4).and_then(|r| r.parse().ok()).expect(usage);
            let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
            // Paced in slices of a millisecond.
            let per_slice = (rate / 1000).max(1);
            for seq in 0..count {
                let _ = socket.send_to(message(seq).as_bytes(), address);
                if (seq + 1) % per_slice == 0 {
                    let due = Duration::from_micros((seq + 1) * 1_000_000 / rate);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
    println!("{:.3}", started.elapsed().as_secs_f64());
}
