#!/usr/bin/env bash
# Skiff's benchmarks: one entry point that runs each component's benchmark and prints one
# table. Each benchmark starts every process it needs on 127.0.0.1 and stops what it
# started.
#
#   deploy/bench/run.sh [RUNS]        (default RUNS: 3)
#
# Push-to-first-200 through the router (first push, and a second push with one changed
# file), the registry against Debian's docker-registry, the router against nginx and
# HAProxy (plain HTTP/1.1 and HTTP/2, latency at equal load, HTTPS: keep-alive, handshakes,
# idle TLS connections; WebSocket echoes; instructions per request in each proxy's own
# code, counted by callgrind), the deployed path (router → a real app container) against nginx as Dokku sets it up,
# the cluster (a three-node swarm on this machine: spread, drain, a node lost), the logger against rsyslog, and the controller (API throughput with 1,000 apps
# and 10,000 releases on SQLite and Postgres, scaling, rollouts under load), and the
# dashboard (the apps page with 1,000 apps, an app page with 10,000 releases).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/deploy/lib.sh"
runs=${1:-3}

skiff_install_missing git:git ssh:openssh-client ssh-keygen:openssh-client curl:curl tar:tar
skiff_ensure_docker
skiff_require_cargo
(cd "$root" && cargo build --release --locked -q -p skiffd -p skiff-cli)
# Apart, so that its features do not change skiffd's build.
(cd "$root" && cargo build --release --locked -q -p skiff-load)
(cd "$root" && cargo build --release --locked -q -p skiff-logger --example syslog_flood)
(cd "$root" && cargo build --release --locked -q -p skiff-router --example tiny_upstream --example echo_upstream)
# The same upstream linked statically, for a one-file app image.
(cd "$root" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked -q -p skiff-router \
  --example tiny_upstream --target "$(uname -m)-unknown-linux-gnu")

echo
echo "| benchmark | median | min | max | runs |"
echo "|---|---|---|---|---|"
"$here/push.sh" "$root/target/release" "$runs"
"$here/registry.sh" "$root/target/release" "$runs"
"$here/router.sh" "$root/target/release" "$runs"
"$here/https.sh" "$root/target/release" "$runs"
"$here/instructions.sh" "$root/target/release"
"$here/websocket.sh" "$root/target/release" "$runs"
"$here/deployed.sh" "$root/target/release" "$runs" "$root/target/$(uname -m)-unknown-linux-gnu/release/examples/tiny_upstream"
"$here/cluster.sh" "$root/target/release" "$runs" "$root/target/$(uname -m)-unknown-linux-gnu/release/examples/tiny_upstream"
"$here/logger.sh" "$root/target/release" "$runs"
"$here/controller.sh" "$root/target/release" "$runs"
"$here/dashboard.sh" "$root/target/release" "$runs"
