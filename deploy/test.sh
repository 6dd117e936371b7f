#!/usr/bin/env bash
# Skiff's second command: installs and starts what the tests need (git, the OpenSSH
# client, busybox-static, a Docker engine), then runs the whole test suite.
#
#   deploy/test.sh [extra cargo test arguments]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$here/lib.sh"

skiff_install_missing git:git ssh:openssh-client ssh-keygen:openssh-client curl:curl tar:tar skopeo:skopeo logger:bsdutils
skiff_ensure_docker
skiff_require_cargo

cd "$root"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --all-targets "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite.
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '^test result: .* ([0-9]+) failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s += $1} END {print s + 0}')
echo
echo "tests: $passed passed, $failed failed"
exit "$status"
