//! `skiff-load`: load for Skiff's benchmarks (`deploy/bench/`) that the packaged clients
//! cannot make.
//!
//! - `skiff-load http URL --rate R`: open-loop HTTP/1.1 at a fixed rate (see
//!   [`open_loop`]), for latency at equal load: every proxy is offered the same requests
//!   at the same times, and a stall shows in the percentiles instead of slowing the
//!   client down. Prints one line: `requests= errors= reconnects= offered= achieved= p50=
//!   p90= p99= p999= max= client_late_p99=` (milliseconds).

mod open_loop;
mod report;
mod response;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "skiff-load", about = "Load for Skiff's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open-loop HTTP/1.1 requests at a fixed rate; latency from each request's due time.
    Http(open_loop::Options),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Http(options) => println!("{}", open_loop::run(&options)?),
    }
    Ok(())
}
