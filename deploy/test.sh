#!/usr/bin/env bash
# Skiff's second command: installs and starts what the tests need (git, the OpenSSH
# client, busybox-static, skopeo, Debian's docker-registry, rsyslog, Prometheus, pebble (an ACME server),
# Chromium and its WebDriver, a Docker engine, a private Postgres server and a
# private Redis server, a private S3-compatible server, a three-node Docker Swarm of this
# host's engine and two more in network namespaces) and the previous release's skiffd,
# then runs the whole test suite.
#
#   deploy/test.sh [extra cargo test arguments, before the test binaries' `--`]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$here/lib.sh"

skiff_install_missing ip:iproute2 nsenter:util-linux git:git ssh:openssh-client ssh-keygen:openssh-client curl:curl tar:tar skopeo:skopeo docker-registry:docker-registry python3:python3 logger:bsdutils rsyslogd:rsyslog prometheus:prometheus pebble:pebble pebble-challtestsrv:pebble chromium:chromium chromedriver:chromium-driver \
  "/usr/lib/$(uname -m)-linux-gnu/rsyslog/lmnsd_gtls.so:rsyslog-gnutls"
skiff_ensure_docker
skiff_require_cargo
# The router's gRPC test runs a real gRPC client and server (grpcio, from PyPI).
python3 -c 'import grpc' 2>/dev/null || { echo "==> installing grpcio from PyPI"; python3 -m pip install --quiet grpcio; }

cd "$root"
log=$(mktemp)
pg=$(mktemp -d)
redis=$(mktemp -d)
s3=$(mktemp -d)
swarm=$(mktemp -d)
made_swarm=false
trap 'skiff_stop_postgres "$pg"; skiff_stop_redis "$redis"; skiff_stop_s3 "$s3"; ! $made_swarm || bash "$here/swarm.sh" down "$swarm"; rm -rf "$log" "$pg" "$redis" "$s3" "$swarm"' EXIT
# Ports below the kernel's ephemeral range (32768 and up), so that no outgoing connection
# of the tests or anything else on the machine can be holding them.
SKIFF_TEST_POSTGRES_URL=$(skiff_start_postgres "$pg" "${SKIFF_TEST_POSTGRES_PORT:-25432}")
SKIFF_TEST_REDIS_URL=$(skiff_start_redis "$redis" "${SKIFF_TEST_REDIS_PORT:-26379}")
SKIFF_TEST_S3_ENDPOINT=$(skiff_start_s3 "$s3" "${SKIFF_TEST_S3_PORT:-25900}")
export SKIFF_TEST_POSTGRES_URL SKIFF_TEST_REDIS_URL SKIFF_TEST_S3_ENDPOINT
# The cluster tests' swarm (deploy/tests/it/swarm.rs says what they need of it).
if docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null | grep -qx active; then
  echo "==> this host's engine is in a swarm already: the cluster tests use it"
else
  echo "==> making a three-node swarm"
  made_swarm=true
  bash "$here/swarm.sh" up "$swarm" >/dev/null || echo "==> no swarm (see above): the cluster tests will fail and say so"
  export SKIFF_TEST_SWARM_DIR=$swarm
fi
# The upgrade-in-place test runs the previous release's skiffd (deploy/upgrade/previous).
if previous=$(bash "$here/upgrade/build-previous.sh"); then
  export SKIFF_TEST_PREVIOUS_SKIFFD=$previous
else
  echo "==> no skiffd of the previous release (see above): the upgrade-in-place test will fail and say so"
fi
# The router's tests hold a thousand idle client connections open at once.
[ "$(ulimit -n)" -ge 8192 ] || ulimit -n 8192 2>/dev/null || true
status=0
# Tests that need Docker, Postgres, Redis, S3 or the peers above are marked #[ignore], so
# that a plain `cargo test --workspace` passes without them; here every one of them runs.
cargo test --workspace --locked --all-targets "$@" -- --include-ignored 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite.
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '^test result: .* ([0-9]+) failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s += $1} END {print s + 0}')
echo
echo "tests: $passed passed, $failed failed"
exit "$status"
