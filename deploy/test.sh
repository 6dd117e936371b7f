#!/usr/bin/env bash
# Skiff's second command: installs and starts what the tests need (git, the OpenSSH
# client, busybox-static, a Docker engine), then runs the whole test suite.
#
#   deploy/test.sh [extra cargo test arguments]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$here/lib.sh"

skiff_install_missing git:git ssh:openssh-client ssh-keygen:openssh-client curl:curl tar:tar skopeo:skopeo
skiff_ensure_docker
skiff_require_cargo

cd "$root"
cargo test --workspace --locked "$@"
