//! `skiff-load`: load for Skiff's benchmarks (`deploy/bench/`) that the packaged clients
//! cannot make.
//!
//! - `skiff-load http URL --rate R`: open-loop HTTP/1.1 at a fixed rate (see [`http`]),
//!   for latency at equal load: every proxy is offered the same requests at the same
//!   times, and a stall shows in the percentiles instead of slowing the client down.
//!   `--rate 0` is closed loop (a server's maximum); `https://` URLs speak TLS (1.2 or
//!   1.3), `--reconnect` (with `--resume` or not) measures handshakes, and `--websocket`
//!   sends messages over upgraded connections and times their echoes. Prints one line:
//!   `requests= errors= reconnects= offered= achieved= p50= p90= p99= p999= max=
//!   client_late_p99=` (milliseconds).
//! - `skiff-load registry push|pull URL`: many images pushed or pulled at once (see
//!   [`registry`]), by a client that costs little beside the registry. Prints
//!   `images= bytes= seconds= images_per_s= mib_per_s= p50= p99= max=`.

mod client;
mod http;
mod registry;
mod report;
mod response;
mod tls;
mod websocket;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "skiff-load", about = "Load for Skiff's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// HTTP/1.1 (or HTTPS) requests at a fixed rate, latency from each one's due time; or
    /// closed loop (`--rate 0`).
    Http(http::Options),
    /// Images pushed to or pulled from an OCI registry, many at once.
    Registry(registry::Options),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Http(options) => println!("{}", http::run(&options)?),
        Command::Registry(options) => println!("{}", registry::run(&options)?),
    }
    Ok(())
}
